-- core.participants: one row per enrolled participant (current, non-deleted EDC enrollment record),
-- with treatment milestones and follow-up. Ages are completed years (derivations §6.1): at consent as computed
-- from the date of birth when the file was read; at the infusion, that age plus the birthdays since, from the
-- days from consent to the next birthday (also computed as the file was read). The date of birth never reaches
-- the warehouse (trial.md). BSA by Mosteller (derivations §6.2).
DELETE FROM core.participants;
INSERT INTO core.participants BY NAME
WITH enrollment AS (
    SELECT * FROM staging.edc_enrollment_current
    WHERE NOT deleted
    QUALIFY row_number() OVER (PARTITION BY participant_id ORDER BY export_time DESC, event, instance) = 1
), treatment AS (
    SELECT * FROM staging.edc_treatment_current WHERE NOT deleted
), car AS (
    SELECT participant_id, min(admin_date) AS infusion_date,
           arg_min(car_cells_per_kg, admin_date) AS cells_per_kg
    FROM treatment WHERE agent = 'cd22_car' GROUP BY participant_id
), lymphodepletion AS (
    SELECT participant_id, min(admin_date) AS ld_start_date
    FROM treatment WHERE agent IN ('fludarabine', 'cyclophosphamide') GROUP BY participant_id
), followup AS (
    SELECT * FROM staging.edc_followup_current
    WHERE NOT deleted
    QUALIFY row_number() OVER (PARTITION BY participant_id ORDER BY export_time DESC, event, instance) = 1
)
SELECT
    e.participant_id,
    e.sex,
    e.consent_date,
    e.age_at_consent_years,
    CAST(e.age_at_consent_years + CASE
        WHEN car.infusion_date < e.consent_date + e.days_to_next_birthday THEN 0
        -- one more year at the next birthday, then one per anniversary of it (its month and day)
        ELSE 1 + year(car.infusion_date) - year(e.consent_date + e.days_to_next_birthday)
             - CASE WHEN strftime(car.infusion_date, '%m-%d')
                         < strftime(e.consent_date + e.days_to_next_birthday, '%m-%d') THEN 1 ELSE 0 END
        END AS INTEGER) AS age_at_infusion_years,
    e.weight_kg,
    e.height_cm,
    sqrt(e.height_cm * e.weight_kg / 3600) AS bsa_m2,
    e.cd19_product,
    e.cd19_infusion_date,
    e.hsct_eligible,
    ld.ld_start_date,
    car.infusion_date,
    car.cells_per_kg,
    car.infusion_date IS NOT NULL AS infused,
    f.hsct_date,
    f.next_therapy_date,
    f.vital_status,
    f.death_date,
    f.death_cause,
    f.last_contact_date,
    f.off_study_date
FROM enrollment e
LEFT JOIN car USING (participant_id)
LEFT JOIN lymphodepletion ld USING (participant_id)
LEFT JOIN followup f USING (participant_id);

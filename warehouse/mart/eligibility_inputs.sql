-- eligibility_inputs (TEMP, never published): one row per enrolled participant with the screening values
-- that derivations §6.1 judges; car22/rules/eligibility.py applies the criteria and writes mart.eligibility.
-- "Latest value before lymphodepletion": collected on a date before ld_start_date (a result drawn on the first
-- lymphodepletion day may be post-dose: the dose time is not recorded); a participant never lymphodepleted
-- (screen failure) gets the latest value available. A lab result counts when it carries a number or is below
-- the limit of quantitation (Cancelled/Hemolyzed rows are not results, derivations §1.2), with its own ULN.
-- Screening marrow: the latest evaluable (QC-passed) BM sample after the CD19 CAR infusion and before
-- lymphodepletion (mart.mrd_assessments, derivations §2).
CREATE OR REPLACE TEMP TABLE eligibility_inputs AS
WITH p AS (
    SELECT participant_id, consent_date, age_at_consent_years, cd19_infusion_date, ld_start_date
    FROM core.participants
), lab AS (
    SELECT l.participant_id, l.test_code, l.value, l.comparator, coalesce(l.below_lloq, FALSE) AS below_lloq,
           l.ref_high, l.unit, l.accession, CAST(l.collected_at AS DATE) AS collected_on
    FROM core.lab_results l
    JOIN p USING (participant_id)
    WHERE l.test_code IN ('TBILI', 'AST', 'ALT', 'CREAT')
      AND (l.value IS NOT NULL OR l.below_lloq)
      AND l.collected_at IS NOT NULL
      AND (p.ld_start_date IS NULL OR CAST(l.collected_at AS DATE) < p.ld_start_date)
    QUALIFY row_number() OVER (PARTITION BY l.participant_id, l.test_code
                               ORDER BY l.collected_at DESC, l.resulted_at DESC NULLS LAST, l.accession DESC) = 1
), marrow AS (
    SELECT m.participant_id, m.sample_id, m.collected_on, m.mrd_status, m.mrd_fraction
    FROM mart.mrd_assessments m
    JOIN p USING (participant_id)
    WHERE m.specimen = 'BM'
      AND m.mrd_status <> 'NOT_EVALUABLE'
      AND m.collected_on IS NOT NULL
      AND (p.ld_start_date IS NULL OR m.collected_on < p.ld_start_date)
      AND (p.cd19_infusion_date IS NULL OR m.collected_on > p.cd19_infusion_date)
    QUALIFY row_number() OVER (PARTITION BY m.participant_id ORDER BY m.collected_on DESC, m.sample_id DESC) = 1
), form AS (
    SELECT participant_id, event, lvef_pct, fs_pct, spo2_pct, crcl_measured,
           count(*) OVER (PARTITION BY participant_id) AS n_forms
    FROM core.eligibility_assessments
    QUALIFY row_number() OVER (PARTITION BY participant_id ORDER BY event DESC NULLS LAST) = 1
)
SELECT
    p.participant_id,
    p.consent_date,
    p.age_at_consent_years,
    p.cd19_infusion_date,
    p.ld_start_date,
    p.ld_start_date - p.cd19_infusion_date AS cd19_to_ld_days,
    m.sample_id AS mrd_sample_id, m.collected_on AS mrd_collected_on, m.mrd_status, m.mrd_fraction,
    tb.value AS tbili_value, tb.comparator AS tbili_comparator, tb.below_lloq AS tbili_below_lloq,
    tb.ref_high AS tbili_uln, tb.unit AS tbili_unit, tb.collected_on AS tbili_collected_on,
    tb.accession AS tbili_accession,
    ast.value AS ast_value, ast.comparator AS ast_comparator, ast.below_lloq AS ast_below_lloq,
    ast.ref_high AS ast_uln, ast.unit AS ast_unit, ast.collected_on AS ast_collected_on,
    ast.accession AS ast_accession,
    alt.value AS alt_value, alt.comparator AS alt_comparator, alt.below_lloq AS alt_below_lloq,
    alt.ref_high AS alt_uln, alt.unit AS alt_unit, alt.collected_on AS alt_collected_on,
    alt.accession AS alt_accession,
    cr.value AS creat_value, cr.comparator AS creat_comparator, cr.below_lloq AS creat_below_lloq,
    cr.ref_high AS creat_uln, cr.unit AS creat_unit, cr.collected_on AS creat_collected_on,
    cr.accession AS creat_accession,
    f.event AS form_event, coalesce(f.n_forms, 0) AS n_forms,
    f.lvef_pct, f.fs_pct, f.spo2_pct, f.crcl_measured
FROM p
LEFT JOIN marrow m USING (participant_id)
LEFT JOIN lab tb ON tb.participant_id = p.participant_id AND tb.test_code = 'TBILI'
LEFT JOIN lab ast ON ast.participant_id = p.participant_id AND ast.test_code = 'AST'
LEFT JOIN lab alt ON alt.participant_id = p.participant_id AND alt.test_code = 'ALT'
LEFT JOIN lab cr ON cr.participant_id = p.participant_id AND cr.test_code = 'CREAT'
LEFT JOIN form f USING (participant_id)
ORDER BY p.participant_id;

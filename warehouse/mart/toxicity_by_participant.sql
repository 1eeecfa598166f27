-- mart.toxicity_by_participant: each infused participant's worst grade per toxicity, scale and window
-- (derivations §4.4): CRS and ICANS (ASTCT) from the daily grades, CTCAE lab terms from mart.lab_toxicity,
-- investigator-reported AE terms from core.adverse_events, ICAHT (EHA/EBMT) from mart.icaht. Windows: day_0_28
-- (study days 0-28, setting) and overall (everything graded). Grade 5 for CRS counts in the window of the death day.
CREATE OR REPLACE TABLE mart.toxicity_by_participant AS
WITH infused AS (
    SELECT participant_id, infusion_date, death_date, death_cause FROM core.participants WHERE infused
), graded AS (
    SELECT participant_id, 'Cytokine release syndrome' AS toxicity, 'ASTCT' AS scale, study_day, grade
    FROM mart.crs_daily
    UNION ALL
    SELECT participant_id, 'Cytokine release syndrome', 'ASTCT', death_date - infusion_date, 5
    FROM infused WHERE death_cause = 'CRS'
    UNION ALL
    SELECT participant_id, 'ICANS', 'ASTCT', study_day, grade FROM mart.icans_daily
    UNION ALL
    SELECT participant_id, ctcae_term, 'CTCAE v' || ctcae_version, study_day, grade
    FROM mart.lab_toxicity WHERE grade IS NOT NULL
    UNION ALL
    SELECT participant_id, ae_term, 'CTCAE v5.0 (investigator)', onset_day, ae_grade
    FROM core.adverse_events WHERE ae_grade IS NOT NULL
    UNION ALL
    -- ICAHT grades a phase, not a day: each phase's grade sits on its first day (early 0, late 31)
    SELECT participant_id, scale || ' ' || phase, 'ICAHT (EHA/EBMT)', CASE phase WHEN 'early' THEN 0 ELSE 31 END, grade
    FROM mart.icaht WHERE grade IS NOT NULL
), windowed AS (
    SELECT *, 'overall' AS "window" FROM graded
    UNION ALL
    SELECT *, 'day_0_28' FROM graded
    WHERE study_day BETWEEN getvariable('toxicity_window_day_0_28')[1] AND getvariable('toxicity_window_day_0_28')[2]
)
SELECT w.participant_id, w.toxicity, w.scale, w."window", CAST(max(w.grade) AS INTEGER) AS max_grade,
       CAST(min(w.study_day) FILTER (WHERE w.grade >= 1) AS INTEGER) AS onset_day
FROM windowed w JOIN infused USING (participant_id)
GROUP BY ALL;

COMMENT ON TABLE mart.toxicity_by_participant IS 'Worst grade per infused participant, toxicity, scale and window (derivations §4.4).';
COMMENT ON COLUMN mart.toxicity_by_participant.participant_id IS 'Infused participant.';
COMMENT ON COLUMN mart.toxicity_by_participant.toxicity IS 'Cytokine release syndrome, ICANS, a CTCAE lab term, an investigator-reported AE term, or N-ICAHT/T-ICAHT early/late.';
COMMENT ON COLUMN mart.toxicity_by_participant.scale IS 'ASTCT | CTCAE v5.0 (derived from labs) | CTCAE v5.0 (investigator) | ICAHT (EHA/EBMT).';
COMMENT ON COLUMN mart.toxicity_by_participant."window" IS 'day_0_28 (study days 0-28) | overall.';
COMMENT ON COLUMN mart.toxicity_by_participant.max_grade IS 'Worst grade in the window (0 when graded but never >= 1).';
COMMENT ON COLUMN mart.toxicity_by_participant.onset_day IS 'First study day with grade >= 1 in the window (ICAHT: the first day of the graded phase, 0 or 31).';

-- SDTM CP (cdisc.md SDTM): one record per flow sample and measure of its panel (MRD: events, MRD fraction,
-- antigen expression; CAR: CD3, CAR22+/CAR19+ % of CD3+, CD19+ B cells). A measure not reported is no record
-- (a missing value is never a negative, derivations §2); a QC-failed sample has every measure of its panel
-- as NOT DONE with no result.
WITH measures(panel, source, unit) AS (VALUES
    ('MRD', 'events_leukemic', 'EVENTS'), ('MRD', 'events_total', 'EVENTS'), ('MRD', 'mrd_fraction', 'FRACTION'),
    ('MRD', 'cd19_pos_pct', '%'), ('MRD', 'cd22_pos_pct', '%'), ('MRD', 'cd22_abc', 'ABC'),
    ('CAR', 'cd3_abs_cells_ul', 'cells/uL'), ('CAR', 'car22_pct', '%'), ('CAR', 'car19_pct', '%'),
    ('CAR', 'cd19b_pct', '%'), ('CAR', 'cd19b_abs_cells_ul', 'cells/uL')
), samples AS (
    SELECT f.participant_id, f.sample_id, f.panel, f.specimen, f.collected_on, f.study_day, f.qc,
           CAST(f.events_leukemic AS DOUBLE) AS events_leukemic, CAST(f.events_total AS DOUBLE) AS events_total,
           m.mrd_fraction, f.cd19_pos_pct, f.cd22_pos_pct, f.cd22_abc, f.cd3_abs_cells_ul, f.car22_pct,
           f.car19_pct, f.cd19b_pct, f.cd19b_abs_cells_ul
    FROM core.flow_samples f
    LEFT JOIN mart.mrd_assessments m USING (participant_id, sample_id)
), long AS (
    SELECT * FROM samples UNPIVOT INCLUDE NULLS (result FOR source IN (
        events_leukemic, events_total, mrd_fraction, cd19_pos_pct, cd22_pos_pct, cd22_abc, cd3_abs_cells_ul,
        car22_pct, car19_pct, cd19b_pct, cd19b_abs_cells_ul))
), kept AS (
    SELECT l.*, ms.unit, l.qc IS DISTINCT FROM 'PASS' AS failed
    FROM long l JOIN measures ms USING (panel, source)
    WHERE l.qc IS DISTINCT FROM 'PASS' OR l.result IS NOT NULL
)
SELECT
    getvariable('cdisc_studyid') AS STUDYID,
    'CP' AS DOMAIN,
    usubjid(k.participant_id) AS USUBJID,
    k.sample_id AS CPREFID,
    c.value AS CPTESTCD,
    c.decode AS CPTEST,
    k.panel AS CPCAT,
    CASE WHEN NOT k.failed THEN num(k.result) END AS CPORRES,
    CASE WHEN NOT k.failed THEN k.unit END AS CPORRESU,
    CASE WHEN NOT k.failed THEN num(k.result) END AS CPSTRESC,
    CASE WHEN NOT k.failed THEN k.result END AS CPSTRESN,
    CASE WHEN NOT k.failed THEN k.unit END AS CPSTRESU,
    CASE WHEN k.failed THEN 'NOT DONE' END AS CPSTAT,
    CASE WHEN k.failed THEN 'QC FAILED' END AS CPREASND,
    spec(k.specimen) AS CPSPEC,
    'FLOW CYTOMETRY' AS CPMETHOD,
    iso(k.collected_on) AS CPDTC,
    sdy(k.study_day) AS CPDY
FROM kept k
JOIN codelist c ON c.codelist = 'CPTESTCD' AND c.source = k.source

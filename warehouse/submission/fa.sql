-- SDTM FA (cdisc.md SDTM): every item of every daily CRS and ICANS assessment (pre-infusion days
-- included: they are collected, though never graded, derivations §4.1-4.2). Levels are the EDC codes as
-- the core schema documents them; booleans Y/N.
WITH crs AS (
    SELECT participant_id, event, instance, assess_date, study_day, 'CYTOKINE RELEASE SYNDROME' AS obj,
           [{'item': 'tmax_c', 'orres': num(tmax_c), 'stresn': CAST(tmax_c AS DOUBLE)},
            {'item': 'hypotension', 'orres': CAST(hypotension AS VARCHAR), 'stresn': CAST(hypotension AS DOUBLE)},
            {'item': 'vasopressin', 'orres': yn(vasopressin), 'stresn': CAST(NULL AS DOUBLE)},
            {'item': 'oxygen', 'orres': CAST(oxygen AS VARCHAR), 'stresn': CAST(oxygen AS DOUBLE)},
            {'item': 'tocilizumab', 'orres': yn(tocilizumab), 'stresn': CAST(NULL AS DOUBLE)},
            {'item': 'steroids', 'orres': yn(steroids), 'stresn': CAST(NULL AS DOUBLE)},
            {'item': 'inv_grade', 'orres': CAST(inv_crs_grade AS VARCHAR), 'stresn': CAST(inv_crs_grade AS DOUBLE)}] AS items
    FROM core.crs_assessments
), icans AS (
    SELECT participant_id, event, instance, assess_date, study_day,
           'IMMUNE EFFECTOR CELL-ASSOCIATED NEUROTOXICITY SYNDROME' AS obj,
           [{'item': 'tool', 'orres': tool, 'stresn': CAST(NULL AS DOUBLE)},
            {'item': 'score', 'orres': CAST(score AS VARCHAR), 'stresn': CAST(score AS DOUBLE)},
            {'item': 'unable_to_assess', 'orres': yn(unable_to_assess), 'stresn': CAST(NULL AS DOUBLE)},
            {'item': 'consciousness', 'orres': CAST(consciousness AS VARCHAR), 'stresn': CAST(consciousness AS DOUBLE)},
            {'item': 'seizure', 'orres': CAST(seizure AS VARCHAR), 'stresn': CAST(seizure AS DOUBLE)},
            {'item': 'motor_weakness', 'orres': yn(motor_weakness), 'stresn': CAST(NULL AS DOUBLE)},
            {'item': 'cerebral_edema', 'orres': CAST(cerebral_edema AS VARCHAR), 'stresn': CAST(cerebral_edema AS DOUBLE)},
            {'item': 'inv_grade', 'orres': CAST(inv_icans_grade AS VARCHAR), 'stresn': CAST(inv_icans_grade AS DOUBLE)}] AS items
    FROM core.icans_assessments
), long AS (
    SELECT participant_id, event, instance, assess_date, study_day, obj, unnest(items, recursive := true)
    FROM (SELECT * FROM crs UNION ALL SELECT * FROM icans)
)
SELECT
    getvariable('cdisc_studyid') AS STUDYID,
    'FA' AS DOMAIN,
    usubjid(l.participant_id) AS USUBJID,
    l.event || '-' || l.instance AS FASPID,
    c.value AS FATESTCD,
    c.decode AS FATEST,
    l.obj AS FAOBJ,
    l.orres AS FAORRES,
    CASE WHEN l.item = 'tmax_c' THEN 'C' END AS FAORRESU,
    l.orres AS FASTRESC,
    l.stresn AS FASTRESN,
    CASE WHEN l.item = 'tmax_c' THEN 'C' END AS FASTRESU,
    iso(l.assess_date) AS FADTC,
    sdy(l.study_day) AS FADY
FROM long l
JOIN codelist c ON c.codelist = 'FATESTCD' AND c.source = l.item
WHERE l.orres IS NOT NULL

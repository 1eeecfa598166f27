-- SDTM RS (cdisc.md SDTM): the EDC disease assessment (investigator's overall response, marrow blasts by
-- morphology, CNS status, extramedullary disease) and every bone marrow MRD status by flow cytometry
-- (mart.mrd_assessments, derivations §2; NOT_EVALUABLE kept).
WITH edc AS (
    SELECT participant_id, NULL AS refid, assess_date AS on_date, study_day, 'EDC DISEASE ASSESSMENT' AS cat,
           'INVESTIGATOR' AS eval, unnest([
               {'item': 'inv_response', 'orres': inv_response, 'stresn': CAST(NULL AS DOUBLE), 'unit': NULL},
               {'item': 'bm_blasts_pct', 'orres': num(bm_blasts_pct), 'stresn': bm_blasts_pct, 'unit': '%'},
               {'item': 'cns_status', 'orres': cns_status, 'stresn': CAST(NULL AS DOUBLE), 'unit': NULL},
               {'item': 'extramedullary', 'orres': yn(extramedullary), 'stresn': CAST(NULL AS DOUBLE), 'unit': NULL}
           ], recursive := true)
    FROM core.disease_assessments
), mrd AS (
    SELECT participant_id, sample_id AS refid, collected_on AS on_date, study_day, 'BONE MARROW MRD' AS cat,
           'INDEPENDENT ASSESSOR' AS eval, 'mrd_status' AS item, mrd_status AS orres,
           CAST(NULL AS DOUBLE) AS stresn, NULL AS unit
    FROM mart.mrd_assessments WHERE specimen = 'BM'
), items AS (
    SELECT * FROM edc WHERE orres IS NOT NULL UNION ALL BY NAME SELECT * FROM mrd
)
SELECT
    getvariable('cdisc_studyid') AS STUDYID,
    'RS' AS DOMAIN,
    usubjid(i.participant_id) AS USUBJID,
    i.refid AS RSREFID,
    c.value AS RSTESTCD,
    c.decode AS RSTEST,
    i.cat AS RSCAT,
    i.orres AS RSORRES,
    i.unit AS RSORRESU,
    i.orres AS RSSTRESC,
    i.stresn AS RSSTRESN,
    i.unit AS RSSTRESU,
    i.eval AS RSEVAL,
    iso(i.on_date) AS RSDTC,
    sdy(i.study_day) AS RSDY
FROM items i
JOIN codelist c ON c.codelist = 'RSTESTCD' AND c.source = i.item

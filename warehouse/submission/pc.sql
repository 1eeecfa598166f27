-- SDTM PC (cdisc.md SDTM): CAR levels as concentrations. qPCR transgene copies/µg gDNA from core.qpcr_results
-- (every result; the exported text kept, BLQ/ND with no number; a QC-failed run NOT DONE) and flow CAR+
-- cells/µL from mart.car_levels (assay flow_abs: CAR+ % of CD3+ × CD3+ cells/µL, derivations §3; QC-passed
-- samples; a failed flow sample is in CP).
WITH qpcr AS (
    SELECT participant_id, sample_id, target, 'qpcr' AS assay, specimen, collected_on, study_day,
           orig_result AS orres, CASE WHEN NOT below_lloq THEN copies_per_ug END AS stresn,
           CASE WHEN below_lloq THEN orig_result ELSE num(copies_per_ug) END AS stresc,
           'copies/ug gDNA' AS unit, lloq_copies_per_ug AS lloq, qc IS DISTINCT FROM 'PASS' AS failed,
           'QUANTITATIVE POLYMERASE CHAIN REACTION' AS method
    FROM core.qpcr_results
), flow AS (
    SELECT participant_id, sample_id, target, assay, specimen, collected_on, study_day,
           num(value) AS orres, value AS stresn, num(value) AS stresc, 'cells/uL' AS unit, NULL AS lloq,
           FALSE AS failed, 'FLOW CYTOMETRY' AS method
    FROM mart.car_levels WHERE assay = 'flow_abs'
), levels AS (
    SELECT * FROM qpcr UNION ALL SELECT * FROM flow
)
SELECT
    getvariable('cdisc_studyid') AS STUDYID,
    'PC' AS DOMAIN,
    usubjid(l.participant_id) AS USUBJID,
    l.sample_id AS PCREFID,
    t.value AS PCTESTCD,
    t.decode AS PCTEST,
    c.value AS PCCAT,
    CASE WHEN NOT l.failed THEN l.orres END AS PCORRES,
    CASE WHEN NOT l.failed THEN l.unit END AS PCORRESU,
    CASE WHEN NOT l.failed THEN l.stresc END AS PCSTRESC,
    CASE WHEN NOT l.failed THEN l.stresn END AS PCSTRESN,
    CASE WHEN NOT l.failed THEN l.unit END AS PCSTRESU,
    CASE WHEN l.failed THEN 'NOT DONE' END AS PCSTAT,
    CASE WHEN l.failed THEN 'QC FAILED' END AS PCREASND,
    spec(l.specimen) AS PCSPEC,
    l.method AS PCMETHOD,
    l.lloq AS PCLLOQ,
    iso(l.collected_on) AS PCDTC,
    sdy(l.study_day) AS PCDY
FROM levels l
JOIN codelist c ON c.codelist = 'PCCAT' AND c.source = l.assay
JOIN codelist t ON t.codelist = 'PCTESTCD' AND t.value = l.target

-- ADaM ADTTE (cdisc.md ADaM): relapse-free survival from mart.rfs (derivations §5), one record per
-- participant and analysis. AVAL is the warehouse's time_days (end date - infusion date): a Kaplan-Meier
-- estimate from these records alone reproduces mart.endpoints.
SELECT
    getvariable('cdisc_studyid') AS STUDYID,
    usubjid(r.participant_id) AS USUBJID,
    c.value AS PARAMCD,
    c.decode AS PARAM,
    r.start_date AS STARTDT,
    r.end_date AS ADT,
    CAST(r.time_days AS DOUBLE) AS AVAL,
    'DAYS' AS AVALU,
    CASE WHEN r.event THEN 0 ELSE 1 END AS CNSR,
    CASE WHEN r.event THEN r.event_type ELSE r.censor_reason END AS EVNTDESC,
    CASE WHEN NOT r.event THEN r.censor_reason END AS CNSDTDSC,
    p.infusion_date AS TRTSDT
FROM mart.rfs r
JOIN core.participants p USING (participant_id)
JOIN codelist c ON c.codelist = 'PARAMRFS' AND c.source = r.analysis

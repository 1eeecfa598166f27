-- SDTM AE (cdisc.md SDTM): every investigator-reported AE of core.adverse_events. The exports carry no
-- MedDRA coding: AEDECOD is the reported term (declared uncoded in the Define-XML). An AE without a
-- resolution date has no AEENDTC.
SELECT
    getvariable('cdisc_studyid') AS STUDYID,
    'AE' AS DOMAIN,
    usubjid(a.participant_id) AS USUBJID,
    a.event || '-' || a.instance AS AESPID,
    a.ae_term AS AETERM,
    a.ae_term AS AEDECOD,
    CAST(a.ae_grade AS VARCHAR) AS AETOXGR,
    yn(a.serious) AS AESER,
    yn(a.related) AS AEREL,
    iso(a.onset_date) AS AESTDTC,
    iso(a.resolution_date) AS AEENDTC,
    sdy(a.onset_day) AS AESTDY,
    dy(a.resolution_date, p.infusion_date) AS AEENDY
FROM core.adverse_events a
JOIN core.participants p USING (participant_id)

-- ADaM ADAE (cdisc.md ADaM, OCCDS): one record per AE record. Treatment-emergent = onset on or after the
-- CD22 CAR infusion; an AE without an end date keeps AENDT null.
SELECT
    a.STUDYID, a.USUBJID, a.AESEQ, a.AETERM, a.AEDECOD, a.AETOXGR, a.AESER, a.AEREL, a.AESTDTC, a.AEENDTC,
    CAST(a.AESTDTC AS DATE) AS ASTDT,
    CAST(a.AEENDTC AS DATE) AS AENDT,
    a.AESTDY AS ASTDY,
    p.infusion_date AS TRTSDT,
    CASE WHEN CAST(a.AESTDTC AS DATE) >= p.infusion_date THEN 'Y' END AS TRTEMFL,
    CAST(a.AETOXGR AS INTEGER) AS ATOXGR
FROM sdtm_ae a
JOIN core.participants p ON usubjid(p.participant_id) = a.USUBJID

-- SDTM LB (cdisc.md SDTM): every current lab result of core.lab_results. Original result and units as
-- exported; standard result in the canonical unit (derivations §1.1); a censored or below-LLOQ result has
-- no LBSTRESN and keeps its text in LBSTRESC (§1.2); not-a-result rows are NOT DONE. The baseline flag is
-- the CTCAE baseline: the last plain value collected before the day of the first lymphodepletion dose (§4.3).
WITH labs AS (
    SELECT l.*, p.ld_start_date,
           l.result_kind = 'VALUE' AND p.ld_start_date IS NOT NULL
               AND CAST(l.collected_at AS DATE) < p.ld_start_date AS before_ld
    FROM core.lab_results l JOIN core.participants p USING (participant_id)
), baseline AS (
    SELECT participant_id, test_code, arg_max(accession, strftime(collected_at, '%Y-%m-%d %H:%M:%S') || accession) AS accession
    FROM labs WHERE before_ld GROUP BY participant_id, test_code
)
SELECT
    getvariable('cdisc_studyid') AS STUDYID,
    'LB' AS DOMAIN,
    usubjid(l.participant_id) AS USUBJID,
    l.accession AS LBREFID,
    c.value AS LBTESTCD,
    c.decode AS LBTEST,
    l.orig_result AS LBORRES,
    l.orig_unit AS LBORRESU,
    num(l.orig_ref_low) AS LBORNRLO,
    num(l.orig_ref_high) AS LBORNRHI,
    CASE l.result_kind WHEN 'VALUE' THEN num(l.value)
                       WHEN 'CENSORED' THEN l.comparator || num(l.value)
                       WHEN 'BELOW_LLOQ' THEN l.orig_result END AS LBSTRESC,
    CASE WHEN l.result_kind = 'VALUE' THEN l.value END AS LBSTRESN,
    CASE WHEN l.result_kind <> 'NO_RESULT' THEN l.unit END AS LBSTRESU,
    l.ref_low AS LBSTNRLO,
    l.ref_high AS LBSTNRHI,
    CASE WHEN l.result_kind <> 'VALUE' THEN NULL
         WHEN l.value < l.ref_low THEN 'LOW'
         WHEN l.value > l.ref_high THEN 'HIGH'
         WHEN l.ref_low IS NOT NULL OR l.ref_high IS NOT NULL THEN 'NORMAL' END AS LBNRIND,
    CASE WHEN l.result_kind = 'NO_RESULT' THEN 'NOT DONE' END AS LBSTAT,
    CASE WHEN l.result_kind = 'NO_RESULT' THEN coalesce(nullif(trim(l.orig_result), ''), 'NO RESULT') END AS LBREASND,
    l.loinc AS LBLOINC,
    CASE WHEN b.accession IS NOT NULL THEN 'Y' END AS LBLOBXFL,
    isotime(l.collected_at) AS LBDTC,
    sdy(l.study_day) AS LBDY
FROM labs l
JOIN codelist c ON c.codelist = 'LBTESTCD' AND c.source = l.test_code
LEFT JOIN baseline b ON b.participant_id = l.participant_id AND b.test_code = l.test_code
                    AND b.accession = l.accession

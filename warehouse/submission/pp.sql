-- SDTM PP (cdisc.md SDTM): the kinetic parameters of mart.car_kinetics (derivations §3), one record per
-- participant, assay, target and parameter with a value (a parameter that is NULL, e.g. Cmax when every
-- value is 0, has no record). AUCINT is the area from day 0 to day kinetics.auc_end_day.
WITH long AS (
    UNPIVOT (SELECT participant_id, assay, target, unit, cmax, CAST(tmax_day AS DOUBLE) AS tmax_day, auc_0_28,
                    auc_0_last, CAST(tlast_day AS DOUBLE) AS tlast_day, clast
             FROM mart.car_kinetics)
    ON cmax, tmax_day, auc_0_28, auc_0_last, tlast_day, clast
    INTO NAME parameter VALUE result
), units AS (
    SELECT *, CASE WHEN parameter IN ('tmax_day', 'tlast_day') THEN 'day'
                   WHEN parameter IN ('auc_0_28', 'auc_0_last') THEN replace(unit, 'µ', 'u') || '*day'
                   ELSE replace(unit, 'µ', 'u') END AS ppunit
    FROM long
)
SELECT
    getvariable('cdisc_studyid') AS STUDYID,
    'PP' AS DOMAIN,
    usubjid(u.participant_id) AS USUBJID,
    p.value AS PPTESTCD,
    p.decode AS PPTEST,
    a.value AS PPCAT,
    u.target AS PPSCAT,
    num(u.result) AS PPORRES,
    u.ppunit AS PPORRESU,
    num(u.result) AS PPSTRESC,
    u.result AS PPSTRESN,
    u.ppunit AS PPSTRESU,
    CASE WHEN p.value = 'AUCINT' THEN 'P0D' END AS PPSTINT,
    CASE WHEN p.value = 'AUCINT' THEN 'P' || getvariable('kinetics_auc_end_day') || 'D' END AS PPENINT,
    'BLOOD' AS PPSPEC
FROM units u
JOIN codelist p ON p.codelist = 'PPTESTCD' AND p.source = u.parameter
JOIN codelist a ON a.codelist = 'PPCAT' AND a.source = u.assay

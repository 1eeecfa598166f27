-- ADaM ADCI (cdisc.md ADaM): the derived daily ASTCT grades from day 0 on (derivations §4.1-4.2: days
-- before the infusion are never graded), one record per participant, day and parameter.
WITH daily AS (
    SELECT participant_id, 'crs' AS source, assess_date, study_day, grade, episode FROM mart.crs_daily
    UNION ALL
    SELECT participant_id, 'icans', assess_date, study_day, grade, episode FROM mart.icans_daily
)
SELECT
    getvariable('cdisc_studyid') AS STUDYID,
    usubjid(d.participant_id) AS USUBJID,
    c.value AS PARAMCD,
    c.decode AS PARAM,
    d.grade AS AVAL,
    d.assess_date AS ADT,
    sdy(d.study_day) AS ADY,
    d.episode AS AEPISODE,
    p.infusion_date AS TRTSDT
FROM daily d
JOIN core.participants p USING (participant_id)
JOIN codelist c ON c.codelist = 'PARAMCI' AND c.source = d.source
WHERE d.study_day >= 0

-- SDTM DS (cdisc.md SDTM): the disposition events of core.participants: death (with the collected cause),
-- HSCT, start of the next anti-leukemic therapy, off study. Study days count from the infusion, no day 0.
WITH events AS (
    UNPIVOT (SELECT participant_id, infusion_date, death_cause, death_date, hsct_date, next_therapy_date,
                    off_study_date FROM core.participants)
    ON death_date, hsct_date, next_therapy_date, off_study_date
    INTO NAME source VALUE on_date
)
SELECT
    getvariable('cdisc_studyid') AS STUDYID,
    'DS' AS DOMAIN,
    usubjid(e.participant_id) AS USUBJID,
    CASE WHEN e.source = 'death_date' THEN upper(coalesce('DEATH: ' || e.death_cause, 'DEATH'))
         ELSE c.value END AS DSTERM,
    c.value AS DSDECOD,
    CASE WHEN e.source IN ('death_date', 'off_study_date') THEN 'DISPOSITION EVENT' ELSE 'OTHER EVENT' END AS DSCAT,
    iso(e.on_date) AS DSSTDTC,
    dy(e.on_date, e.infusion_date) AS DSSTDY
FROM events e
JOIN codelist c ON c.codelist = 'DSDECOD' AND c.source = e.source

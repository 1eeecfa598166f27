-- SDTM DM (cdisc.md SDTM): one record per enrolled participant. Reference dates are the CD22 CAR infusion
-- (a single infusion: start = end); no date of birth exists, AGE is completed years at consent (§6.1).
SELECT
    getvariable('cdisc_studyid') AS STUDYID,
    'DM' AS DOMAIN,
    usubjid(participant_id) AS USUBJID,
    participant_id AS SUBJID,
    iso(infusion_date) AS RFSTDTC,
    iso(infusion_date) AS RFENDTC,
    iso(infusion_date) AS RFXSTDTC,
    iso(infusion_date) AS RFXENDTC,
    iso(consent_date) AS RFICDTC,
    iso(CASE WHEN death_date IS NULL THEN last_contact_date
             ELSE greatest(death_date, coalesce(last_contact_date, death_date)) END) AS RFPENDTC,
    iso(death_date) AS DTHDTC,
    CASE WHEN death_date IS NOT NULL THEN 'Y' END AS DTHFL,
    getvariable('cdisc_siteid') AS SITEID,
    CAST(floor(age_at_consent_years) AS INTEGER) AS AGE,
    CASE WHEN age_at_consent_years IS NOT NULL THEN 'YEARS' END AS AGEU,
    sex AS SEX,
    CASE WHEN ld_start_date IS NOT NULL OR infused THEN 'CD22CAR' END AS ARMCD,
    CASE WHEN ld_start_date IS NOT NULL OR infused THEN 'CD22 CAR T-cells' END AS ARM,
    CASE WHEN infused THEN 'CD22CAR' END AS ACTARMCD,
    CASE WHEN infused THEN 'CD22 CAR T-cells' END AS ACTARM,
    CASE WHEN infused THEN NULL
         WHEN ld_start_date IS NULL THEN 'SCREEN FAILURE'
         ELSE 'ASSIGNED, NOT TREATED' END AS ARMNRS,
    getvariable('cdisc_country') AS COUNTRY
FROM core.participants

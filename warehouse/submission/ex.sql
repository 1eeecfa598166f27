-- SDTM EX (cdisc.md SDTM): one record per administered dose from core.treatments; chemotherapy in mg,
-- the CD22 CAR product in CAR+ cells/kg; all intravenous (trial.md).
SELECT
    getvariable('cdisc_studyid') AS STUDYID,
    'EX' AS DOMAIN,
    usubjid(t.participant_id) AS USUBJID,
    t.event || '-' || t.instance AS EXSPID,
    c.value AS EXTRT,
    CASE WHEN t.agent = 'cd22_car' THEN t.car_cells_per_kg ELSE t.dose_mg END AS EXDOSE,
    CASE WHEN t.agent = 'cd22_car' THEN 'cells/kg' ELSE 'mg' END AS EXDOSU,
    'INTRAVENOUS' AS EXROUTE,
    iso(t.admin_date) AS EXSTDTC,
    iso(t.admin_date) AS EXENDTC,
    sdy(t.study_day) AS EXSTDY
FROM core.treatments t
JOIN codelist c ON c.codelist = 'EXTRT' AND c.source = t.agent

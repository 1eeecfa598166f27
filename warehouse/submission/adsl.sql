-- ADaM ADSL (cdisc.md ADaM): one record per enrolled participant, from DM and core/mart. Populations:
-- enrolled; safety and efficacy = infused (derivations §5); hematotoxicity from mart.icaht and
-- mart.hematotox (derivations §4.5-4.6).
SELECT
    d.STUDYID, d.USUBJID, d.SUBJID, d.SITEID, d.AGE, d.AGEU, d.SEX, d.ARM, d.ACTARM,
    'CD22 CAR T-cells' AS TRT01P,
    d.ACTARM AS TRT01A,
    p.infusion_date AS TRTSDT,
    p.infusion_date AS TRTEDT,
    p.ld_start_date AS LDSTDT,
    'Y' AS ENRLFL,
    CASE WHEN p.infused THEN 'Y' ELSE 'N' END AS SAFFL,
    CASE WHEN p.infused THEN 'Y' ELSE 'N' END AS EFFFL,
    p.death_date AS DTHDT,
    d.DTHFL,
    p.hsct_date AS HSCTDT,
    p.next_therapy_date AS NXTTHDT,
    p.last_contact_date AS LSTALVDT,
    CASE WHEN p.infused THEN c.max_grade END AS CRSMXGR,
    CASE WHEN p.infused THEN i.max_grade END AS ICNSMXGR,
    h.n_early AS NICAHTE,
    h.n_late AS NICAHTL,
    h.t_early AS TICAHTE,
    h.t_late AS TICAHTL,
    x.score AS HTOXSC,
    x.risk AS HTOXRSK
FROM sdtm_dm d
JOIN core.participants p ON p.participant_id = d.SUBJID
LEFT JOIN mart.crs_summary c ON c.participant_id = d.SUBJID
LEFT JOIN mart.icans_summary i ON i.participant_id = d.SUBJID
LEFT JOIN (
    SELECT participant_id,
           max(grade) FILTER (WHERE scale = 'N-ICAHT' AND phase = 'early') AS n_early,
           max(grade) FILTER (WHERE scale = 'N-ICAHT' AND phase = 'late') AS n_late,
           max(grade) FILTER (WHERE scale = 'T-ICAHT' AND phase = 'early') AS t_early,
           max(grade) FILTER (WHERE scale = 'T-ICAHT' AND phase = 'late') AS t_late
    FROM mart.icaht GROUP BY participant_id
) h ON h.participant_id = d.SUBJID
LEFT JOIN mart.hematotox x ON x.participant_id = d.SUBJID

-- ADaM ADLB (cdisc.md ADaM): one record per LB record of an analyte CTCAE grades (mart.ctcae_criteria),
-- with mart.lab_toxicity's grade and term by direction (L: ATOXGRL, H: ATOXGRH, as admiral names them;
-- derivations §4.3). A grade the warehouse left NULL stays null with its reason; a record never graded
-- (before the first lymphodepletion dose, or no result) says so.
WITH graded_tests AS (
    SELECT DISTINCT c.value AS testcd, t.test_code, t.direction
    FROM mart.ctcae_criteria t JOIN codelist c ON c.codelist = 'LBTESTCD' AND c.source = t.test_code
), lb AS (
    SELECT l.*, g.test_code, g.direction, CAST(substr(l.LBDTC, 1, 10) AS DATE) AS adt
    FROM sdtm_lb l JOIN graded_tests g ON g.testcd = l.LBTESTCD
), tox AS (
    SELECT accession, test_code, max(grade) AS grade, min(ctcae_term) AS term,
           min(null_reason) AS null_reason, count(*) AS n
    FROM mart.lab_toxicity GROUP BY accession, test_code
), rows AS (
    SELECT lb.*, t.grade, t.term, t.null_reason, t.n IS NOT NULL AS was_graded, p.infusion_date
    FROM lb
    LEFT JOIN tox t ON t.accession = lb.LBREFID AND t.test_code = lb.test_code
    JOIN core.participants p ON usubjid(p.participant_id) = lb.USUBJID
), baselines AS (
    -- the baseline record's value and grades, per subject and test (an aggregate joined back: windows over the
    -- whole records sorted every column of 7 million records)
    SELECT USUBJID, LBTESTCD, max(LBSTRESN) AS base,
           max(CASE WHEN direction = 'L' THEN CAST(grade AS VARCHAR) END) AS btoxgrl,
           max(CASE WHEN direction = 'H' THEN CAST(grade AS VARCHAR) END) AS btoxgrh
    FROM rows WHERE LBLOBXFL = 'Y' GROUP BY USUBJID, LBTESTCD
), based AS (
    SELECT r.*, b.base, b.btoxgrl, b.btoxgrh
    FROM rows r LEFT JOIN baselines b ON b.USUBJID = r.USUBJID AND b.LBTESTCD = r.LBTESTCD
)
SELECT
    STUDYID, USUBJID,
    LBTESTCD AS PARAMCD,
    LBTEST || coalesce(' (' || LBSTRESU || ')', '') AS PARAM,
    LBSTRESN AS AVAL,
    LBSTRESC AS AVALC,
    adt AS ADT,
    LBDY AS ADY,
    LBLOBXFL AS ABLFL,
    base AS BASE,
    CASE WHEN direction = 'L' AND was_graded THEN term END AS ATOXDSCL,
    CASE WHEN direction = 'L' THEN CAST(grade AS VARCHAR) END AS ATOXGRL,
    CASE WHEN direction = 'H' AND was_graded THEN term END AS ATOXDSCH,
    CASE WHEN direction = 'H' THEN CAST(grade AS VARCHAR) END AS ATOXGRH,
    CASE WHEN was_graded THEN null_reason
         ELSE 'not graded: before the first lymphodepletion dose or no result (derivations section 4.3)' END AS ATOXRSN,
    btoxgrl AS BTOXGRL,
    btoxgrh AS BTOXGRH,
    CASE WHEN adt >= infusion_date THEN 'Y' END AS ONTRTFL,
    infusion_date AS TRTSDT,
    'LB' AS SRCDOM,
    'LBSTRESN' AS SRCVAR,
    LBSEQ AS SRCSEQ
FROM based

-- mart.toxicity_tally: the safety table (derivations §4.4): per toxicity, scale and window, over the infused
-- population N, each participant counted once at the worst grade. Every toxicity of a graded scale (CRS and
-- ICANS by ASTCT, each CTCAE lab term of mart.ctcae_criteria, the four ICAHT grades of EHA/EBMT) has its rows in
-- both windows even when nobody has it; investigator-reported AE terms appear once reported.
CREATE OR REPLACE TABLE mart.toxicity_tally AS
WITH population AS (
    SELECT count(*) AS n FROM core.participants WHERE infused
), toxicities AS (
    SELECT 'Cytokine release syndrome' AS toxicity, 'ASTCT' AS scale
    UNION SELECT 'ICANS', 'ASTCT'
    UNION SELECT DISTINCT term, 'CTCAE v' || getvariable('ctcae_version') FROM mart.ctcae_criteria
    UNION SELECT unnest(['N-ICAHT early', 'N-ICAHT late', 'T-ICAHT early', 'T-ICAHT late']), 'ICAHT (EHA/EBMT)'
    UNION SELECT DISTINCT toxicity, scale FROM mart.toxicity_by_participant
), windows AS (
    SELECT unnest(['day_0_28', 'overall']) AS "window"
), counts AS (
    SELECT toxicity, scale, "window",
           count(*) FILTER (WHERE max_grade >= 1) AS n_any,
           count(*) FILTER (WHERE max_grade >= 3) AS n_grade_ge3,
           count(*) FILTER (WHERE max_grade = 1) AS n_grade_1,
           count(*) FILTER (WHERE max_grade = 2) AS n_grade_2,
           count(*) FILTER (WHERE max_grade = 3) AS n_grade_3,
           count(*) FILTER (WHERE max_grade = 4) AS n_grade_4,
           count(*) FILTER (WHERE max_grade = 5) AS n_grade_5
    FROM mart.toxicity_by_participant GROUP BY ALL
)
SELECT t.toxicity, t.scale, w."window", CAST(p.n AS INTEGER) AS n_participants,
       CAST(coalesce(c.n_any, 0) AS INTEGER) AS n_any,
       round(100.0 * coalesce(c.n_any, 0) / nullif(p.n, 0), 1) AS pct_any,
       CAST(coalesce(c.n_grade_ge3, 0) AS INTEGER) AS n_grade_ge3,
       round(100.0 * coalesce(c.n_grade_ge3, 0) / nullif(p.n, 0), 1) AS pct_grade_ge3,
       CAST(coalesce(c.n_grade_1, 0) AS INTEGER) AS n_grade_1, CAST(coalesce(c.n_grade_2, 0) AS INTEGER) AS n_grade_2,
       CAST(coalesce(c.n_grade_3, 0) AS INTEGER) AS n_grade_3, CAST(coalesce(c.n_grade_4, 0) AS INTEGER) AS n_grade_4,
       CAST(coalesce(c.n_grade_5, 0) AS INTEGER) AS n_grade_5
FROM toxicities t CROSS JOIN windows w CROSS JOIN population p
LEFT JOIN counts c ON c.toxicity = t.toxicity AND c.scale = t.scale AND c."window" = w."window"
ORDER BY t.scale, t.toxicity, w."window";

COMMENT ON TABLE mart.toxicity_tally IS 'Safety tally per toxicity, scale and window over the infused population (derivations §4.4); each participant once at the worst grade; every toxicity of a graded scale has its rows, zeros included.';
COMMENT ON COLUMN mart.toxicity_tally.toxicity IS 'Toxicity (CRS, ICANS, CTCAE lab term, investigator AE term).';
COMMENT ON COLUMN mart.toxicity_tally.scale IS 'Grading scale.';
COMMENT ON COLUMN mart.toxicity_tally."window" IS 'day_0_28 | overall.';
COMMENT ON COLUMN mart.toxicity_tally.n_participants IS 'N: infused participants (the denominator).';
COMMENT ON COLUMN mart.toxicity_tally.n_any IS 'Participants with grade >= 1.';
COMMENT ON COLUMN mart.toxicity_tally.pct_any IS '100 x n_any / N, one decimal.';
COMMENT ON COLUMN mart.toxicity_tally.n_grade_ge3 IS 'Participants with worst grade >= 3.';
COMMENT ON COLUMN mart.toxicity_tally.pct_grade_ge3 IS '100 x n_grade_ge3 / N, one decimal.';
COMMENT ON COLUMN mart.toxicity_tally.n_grade_1 IS 'Participants whose worst grade is 1.';
COMMENT ON COLUMN mart.toxicity_tally.n_grade_2 IS 'Participants whose worst grade is 2.';
COMMENT ON COLUMN mart.toxicity_tally.n_grade_3 IS 'Participants whose worst grade is 3.';
COMMENT ON COLUMN mart.toxicity_tally.n_grade_4 IS 'Participants whose worst grade is 4.';
COMMENT ON COLUMN mart.toxicity_tally.n_grade_5 IS 'Participants whose worst grade is 5.';

-- mart.lab_toxicity: CTCAE v5.0 grade of every lab result collected from the first lymphodepletion dose on
-- (derivations §4.3), by a join of core.lab_results to the criteria table mart.ctcae_criteria
-- (warehouse/ctcae_criteria.csv, translated from the reference's admiral criteria).
-- Grade = the highest grade whose criterion is met; NULL (with null_reason) when a higher grade could not be
-- decided because a limit it needs (LLN, ULN) is missing: never a silent 0. Values and limits are compared
-- after rounding both to ctcae_significant_digits significant digits, so 1.5 x ULN equals 1.5 x ULN.
-- Below-LLOQ results are graded as a measured 0 (derivations §1.2): every decrease criterion met, no increase
-- one; a censored <x meets a "below t" criterion when x <= t, a censored >x an "above t" one when x >= t, and a
-- censored result that meets no criterion decides nothing (NULL with the reason).
-- A result is one row of core.lab_results (one per accession and test): its rowid, lab_row, is the key the
-- criteria checks are grouped by (at 20,000 participants, 29 million checks: an integer key costs less to
-- group by than the accession text and test code).
CREATE OR REPLACE TEMP MACRO signif(x, digits) AS
    CASE WHEN x IS NULL OR x = 0 THEN x
         ELSE round(x, CAST(digits - 1 - floor(log10(abs(x))) AS INTEGER)) END;

CREATE OR REPLACE TABLE mart.lab_toxicity AS
WITH terms AS (
    SELECT DISTINCT term, test_code, direction FROM mart.ctcae_criteria
), labs AS (
    SELECT l.*, l.rowid AS lab_row, p.ld_start_date
    FROM core.lab_results l JOIN core.participants p USING (participant_id)
    WHERE l.test_code IN (SELECT test_code FROM terms) AND p.ld_start_date IS NOT NULL
), baseline AS (
    -- the last value collected before the day of the first lymphodepletion dose, with that result's own ULN
    -- (NULL when it has none: never one borrowed from an older result)
    SELECT participant_id, test_code, value AS baseline_value, ref_high AS baseline_uln
    FROM labs
    WHERE CAST(collected_at AS DATE) < ld_start_date AND result_kind = 'VALUE' AND value IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY participant_id, test_code
                               ORDER BY collected_at DESC, accession DESC) = 1
), graded AS (
    SELECT l.lab_row, l.participant_id, l.accession, l.collected_at, l.study_day, l.test_code, t.term, t.direction,
           CASE WHEN l.result_kind = 'BELOW_LLOQ' THEN 0 ELSE l.value END AS value, l.result_kind = 'BELOW_LLOQ' AS blq,
           l.unit, l.comparator, l.ref_low, l.ref_high, b.baseline_value,
           -- above the baseline's own ULN; when it has none, the graded result's ULN
           b.baseline_value > coalesce(b.baseline_uln, l.ref_high) AS baseline_abnormal,
           (l.comparator = '<' AND t.direction = 'H') OR (l.comparator = '>' AND t.direction = 'L') AS ambiguous
    FROM labs l
    JOIN terms t USING (test_code)
    LEFT JOIN baseline b USING (participant_id, test_code)
    WHERE CAST(l.collected_at AS DATE) >= l.ld_start_date
      AND ((l.result_kind IN ('VALUE', 'CENSORED') AND l.value IS NOT NULL) OR l.result_kind = 'BELOW_LLOQ')
), checks AS (
    SELECT g.lab_row, c.grade, c.basis, c.required = 'yes' AS required, c.operator,
           g.comparator IS NOT NULL AS censored,
           -- a below-LLOQ result (0) meets no increase criterion, whatever its limit
           g.blq AND g.direction = 'H' AS never,
           CASE c.basis WHEN 'ABSOLUTE' THEN c.factor WHEN 'ULN' THEN c.factor * g.ref_high
                        WHEN 'LLN' THEN c.factor * g.ref_low WHEN 'BASELINE' THEN c.factor * g.baseline_value
                        WHEN 'PCHG' THEN c.factor END AS threshold,
           CASE WHEN c.basis <> 'PCHG' THEN g.value
                -- fibrinogen "if abnormal": a fall from baseline counts only below the LLN
                WHEN g.baseline_value > 0 AND g.value < g.ref_low
                    THEN 100 * (g.value - g.baseline_value) / g.baseline_value END AS observed
    FROM graded g JOIN mart.ctcae_criteria c USING (test_code)
    WHERE c.baseline = 'any'
       OR (c.baseline = 'abnormal' AND coalesce(g.baseline_abnormal, FALSE))
       OR (c.baseline = 'normal' AND NOT coalesce(g.baseline_abnormal, FALSE))
), evaluated AS (
    SELECT lab_row, grade, basis, required, threshold IS NULL AND NOT never AS missing,
           CASE WHEN never OR threshold IS NULL OR observed IS NULL THEN FALSE
                -- a censored result (<x for a decrease, >x for an increase) meets the criterion when its limit does
                WHEN operator = '<' AND censored THEN signif(observed, getvariable('ctcae_significant_digits'))
                                                   <= signif(threshold, getvariable('ctcae_significant_digits'))
                WHEN operator = '<' THEN signif(observed, getvariable('ctcae_significant_digits'))
                                       < signif(threshold, getvariable('ctcae_significant_digits'))
                WHEN operator = '<=' THEN signif(observed, getvariable('ctcae_significant_digits'))
                                        <= signif(threshold, getvariable('ctcae_significant_digits'))
                WHEN operator = '>' AND censored THEN signif(observed, getvariable('ctcae_significant_digits'))
                                                   >= signif(threshold, getvariable('ctcae_significant_digits'))
                WHEN operator = '>' THEN signif(observed, getvariable('ctcae_significant_digits'))
                                       > signif(threshold, getvariable('ctcae_significant_digits'))
                WHEN operator = '>=' THEN signif(observed, getvariable('ctcae_significant_digits'))
                                        >= signif(threshold, getvariable('ctcae_significant_digits'))
           END AS met
    FROM checks
), per_result AS (
    -- one group per result, not per result and grade (25 million groups at 20,000 participants): the grades with
    -- a criterion met are a bit set (bit g = grade g), the required criteria whose limit is missing a list
    SELECT lab_row,
           coalesce(max(grade) FILTER (WHERE met), 0) AS best,
           coalesce(bit_or(1 << grade) FILTER (WHERE met), 0) AS met_grades,
           -- the criterion that gave the grade: the highest grade met, the first basis by name among its criteria
           arg_min(basis, (-grade, basis)) FILTER (WHERE met) AS basis,
           list({'grade': grade, 'basis': basis}) FILTER (WHERE missing AND required) AS missing_limits
    FROM evaluated GROUP BY lab_row
), decided AS (
    -- a grade is undecided when a limit one of its required criteria needs is missing and none of its criteria
    -- is met: unknown_above is the highest such grade, missing names those grades' missing limits (each once, in
    -- alphabetical order)
    SELECT lab_row, best, basis,
           list_max(list_transform(undecided, lambda m: m.grade)) AS unknown_above,
           array_to_string(list_sort(list_distinct(list_transform(undecided, lambda m: m.basis))), '/') AS missing
    FROM (SELECT lab_row, best, basis,
                 list_filter(missing_limits, lambda m: (met_grades >> m.grade) & 1 = 0) AS undecided
          FROM per_result)
)
SELECT g.participant_id, g.collected_at, g.study_day, g.test_code, g.term AS ctcae_term, g.value, g.unit,
       CAST(CASE WHEN g.ambiguous OR d.unknown_above > d.best OR (g.comparator IS NOT NULL AND d.best = 0) THEN NULL
                 ELSE d.best END AS INTEGER) AS grade,
       CASE WHEN g.ambiguous OR d.unknown_above > d.best OR d.best = 0 THEN NULL
            WHEN d.basis = 'PCHG' THEN 'BASELINE' ELSE d.basis END AS grade_basis,
       CASE WHEN g.ambiguous THEN 'censored result ' || g.comparator || g.value || ' cannot be graded for '
                                  || CASE g.direction WHEN 'H' THEN 'an increase' ELSE 'a decrease' END
            WHEN d.unknown_above > d.best THEN 'reference limit missing (' || d.missing || '): grade '
                                               || d.unknown_above || ' or lower cannot be decided'
            WHEN g.comparator IS NOT NULL AND d.best = 0
                THEN 'censored result ' || g.comparator || g.value || ' meets no criterion: the grade cannot be decided'
       END AS null_reason,
       getvariable('ctcae_version') AS ctcae_version,
       g.comparator, g.blq AS below_lloq, g.baseline_value, coalesce(g.baseline_abnormal, FALSE) AS baseline_abnormal,
       g.ref_low AS lln, g.ref_high AS uln, g.accession
FROM graded g JOIN decided d USING (lab_row);

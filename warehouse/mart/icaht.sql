-- mart.icaht: immune effector cell-associated hematotoxicity (ICAHT, EHA/EBMT; derivations §4.5), one row per
-- infused participant, scale (N-ICAHT: ANC, T-ICAHT: platelets) and phase (early: days 0-30, late: 31-100).
-- Set-based: a calendar of study days per participant (generate_series) ASOF-joined to the daily lowest result,
-- carried forward for at most icaht_carry_days; unstable recovery by runs over the known days; the grade is
-- the highest row of `criteria` met. Below-LLOQ results are a measured 0; a censored <x meets "<= t"/"< t" when
-- x <= t, a censored >x with x >= t is not below t; any other censored result decides nothing (§1.2).
CREATE OR REPLACE TEMP MACRO signif(x, digits) AS
    CASE WHEN x IS NULL OR x = 0 THEN x
         ELSE round(x, CAST(digits - 1 - floor(log10(abs(x))) AS INTEGER)) END;

CREATE OR REPLACE TABLE mart.icaht AS
WITH scales(scale, test_code) AS (
    VALUES ('N-ICAHT', 'ANC'), ('T-ICAHT', 'PLT')
), levels(scale, level, operator, threshold) AS (
    -- primary and severe are counted in days (durations); late_1, late_2 and both others also in results
    SELECT scale, level, operator, CAST(threshold AS DOUBLE) FROM (VALUES
        ('N-ICAHT', 'primary', '<=', 0.5), ('N-ICAHT', 'severe', '<=', 0.1),
        ('N-ICAHT', 'late_1', '<=', 1.5), ('N-ICAHT', 'late_2', '<=', 1.0),
        ('T-ICAHT', 'primary', '<', 50), ('T-ICAHT', 'severe', '<', 20), ('T-ICAHT', 'late_1', '<', 100))
        AS t(scale, level, operator, threshold)
), criteria(scale, phase, grade, measure, level, at_least) AS (
    -- grade g is met when `measure` reaches at_least: days = days below the level in the window (after carry
    -- forward and unstable recovery), results = results meeting the level on different days
    VALUES ('N-ICAHT', 'early', 1, 'days', 'primary', 1), ('N-ICAHT', 'early', 2, 'days', 'primary', 7),
           ('N-ICAHT', 'early', 3, 'days', 'primary', 14), ('N-ICAHT', 'early', 3, 'days', 'severe', 7),
           ('N-ICAHT', 'early', 4, 'days', 'primary', 30), ('N-ICAHT', 'early', 4, 'days', 'severe', 14),
           ('N-ICAHT', 'late', 1, 'results', 'late_1', 2), ('N-ICAHT', 'late', 2, 'results', 'late_2', 2),
           ('N-ICAHT', 'late', 3, 'results', 'primary', 2), ('N-ICAHT', 'late', 4, 'results', 'severe', 2),
           ('T-ICAHT', 'early', 1, 'days', 'primary', 1), ('T-ICAHT', 'early', 2, 'days', 'primary', 7),
           ('T-ICAHT', 'early', 3, 'days', 'severe', 1), ('T-ICAHT', 'early', 4, 'days', 'severe', 14),
           ('T-ICAHT', 'late', 1, 'results', 'late_1', 2), ('T-ICAHT', 'late', 2, 'results', 'primary', 2),
           ('T-ICAHT', 'late', 3, 'days', 'severe', 1), ('T-ICAHT', 'late', 4, 'days', 'severe', 14)
), phases(phase, first_day, last_day) AS (
    VALUES ('early', 0, 30), ('late', 31, 100)
), people AS (
    SELECT participant_id FROM core.participants WHERE infused AND infusion_date IS NOT NULL
), ends AS (
    -- the window ends early at the first of: an RFS event (primary analysis), HSCT, next therapy, death
    SELECT participant_id, time_days AS day,
           CASE event_type WHEN 'DEATH' THEN 'DEATH' ELSE 'RELAPSE_' || event_type END AS reason, 1 AS priority
    FROM mart.rfs WHERE analysis = 'primary' AND event
    UNION ALL
    SELECT participant_id, hsct_date - infusion_date, 'HSCT', 2 FROM core.participants WHERE hsct_date IS NOT NULL
    UNION ALL
    SELECT participant_id, next_therapy_date - infusion_date, 'NEXT_THERAPY', 3
    FROM core.participants WHERE next_therapy_date IS NOT NULL
    UNION ALL
    SELECT participant_id, death_date - infusion_date, 'DEATH', 4 FROM core.participants WHERE death_date IS NOT NULL
), first_end AS (
    SELECT participant_id, min(day) AS end_day, arg_min(reason, day * 10 + priority) AS end_reason
    FROM ends WHERE day >= 0 GROUP BY participant_id
), windows AS (
    SELECT p.participant_id, s.scale, s.test_code, ph.phase, ph.first_day, ph.last_day,
           least(ph.last_day, coalesce(e.end_day, ph.last_day)) AS end_day,
           CASE WHEN e.end_day <= ph.last_day THEN e.end_reason ELSE 'PHASE_END' END AS end_reason
    FROM people p LEFT JOIN first_end e USING (participant_id) CROSS JOIN scales s CROSS JOIN phases ph
), results AS (
    -- every ANC and platelet result (a number, a censored value or below the LLOQ) that can reach a window
    SELECT l.participant_id, s.scale, l.study_day AS day, l.value, l.comparator,
           coalesce(l.below_lloq, FALSE) OR l.result_kind = 'BELOW_LLOQ' AS below_lloq
    FROM core.lab_results l JOIN people USING (participant_id) JOIN scales s USING (test_code)
    WHERE l.study_day BETWEEN -getvariable('icaht_carry_days') AND (SELECT max(last_day) FROM phases)
      AND (coalesce(l.below_lloq, FALSE) OR l.result_kind = 'BELOW_LLOQ'
           OR (l.result_kind IN ('VALUE', 'CENSORED') AND l.value IS NOT NULL))
), status AS (
    -- per result and level: TRUE below, FALSE not below, NULL undecided (§1.2)
    SELECT r.participant_id, r.scale, v.level, r.day,
           CASE WHEN r.below_lloq THEN TRUE
                WHEN r.comparator = '<' THEN CASE WHEN signif(r.value, getvariable('ctcae_significant_digits'))
                                                       <= signif(v.threshold, getvariable('ctcae_significant_digits'))
                                                  THEN TRUE END
                WHEN r.comparator = '>' THEN CASE WHEN signif(r.value, getvariable('ctcae_significant_digits'))
                                                       >= signif(v.threshold, getvariable('ctcae_significant_digits'))
                                                  THEN FALSE END
                WHEN v.operator = '<=' THEN signif(r.value, getvariable('ctcae_significant_digits'))
                                            <= signif(v.threshold, getvariable('ctcae_significant_digits'))
                ELSE signif(r.value, getvariable('ctcae_significant_digits'))
                     < signif(v.threshold, getvariable('ctcae_significant_digits')) END AS below
    FROM results r JOIN levels v USING (scale)
), daily AS (
    -- the day's lowest result: below when any result is; not below only when every result decides so
    SELECT participant_id, scale, level, day,
           CASE WHEN bool_or(below) THEN TRUE WHEN count(below) = count(*) THEN FALSE END AS below
    FROM status WHERE level IN ('primary', 'severe') GROUP BY ALL
), calendar AS (
    -- study days 0 .. the end of the late window (or the earlier end), per participant, scale and level
    SELECT w.participant_id, w.scale, v.level, d.day
    FROM windows w JOIN levels v USING (scale)
    CROSS JOIN generate_series(0, (SELECT max(last_day) FROM phases)) AS d(day)
    WHERE w.phase = 'late' AND v.level IN ('primary', 'severe') AND d.day <= w.end_day
), carried AS (
    SELECT c.participant_id, c.scale, c.level, c.day,
           CASE WHEN c.day - d.day <= getvariable('icaht_carry_days') THEN d.below END AS below
    FROM calendar c ASOF LEFT JOIN daily d
      ON c.participant_id = d.participant_id AND c.scale = d.scale AND c.level = d.level AND c.day >= d.day
), known AS (
    -- unknown days (nothing within the carry limit, or undecided) neither count nor break a run
    SELECT *, row_number() OVER w AS k,
           row_number() OVER w - row_number() OVER (PARTITION BY participant_id, scale, level, below ORDER BY day) AS run,
           count(*) OVER (PARTITION BY participant_id, scale, level) AS n_known
    FROM carried WHERE below IS NOT NULL
    WINDOW w AS (PARTITION BY participant_id, scale, level ORDER BY day)
), runs AS (
    SELECT participant_id, scale, level, below, run, min(k) AS first_k, max(k) AS last_k, any_value(n_known) AS n_known
    FROM known GROUP BY ALL
), counted AS (
    -- unstable recovery: fewer than 3 known days not below, between two days below, count as below
    SELECT k.participant_id, k.scale, k.level, k.day,
           k.below OR (r.last_k - r.first_k + 1 < 3 AND r.first_k > 1 AND r.last_k < r.n_known) AS below
    FROM known k JOIN runs r USING (participant_id, scale, level, below, run)
), measures AS (
    SELECT w.participant_id, w.scale, w.phase, 'days' AS measure, c.level, count(*) FILTER (WHERE c.below) AS n
    FROM windows w JOIN counted c
      ON c.participant_id = w.participant_id AND c.scale = w.scale AND c.day BETWEEN w.first_day AND w.end_day
    GROUP BY ALL
    UNION ALL
    SELECT w.participant_id, w.scale, w.phase, 'results', s.level, count(DISTINCT s.day) FILTER (WHERE s.below)
    FROM windows w JOIN status s
      ON s.participant_id = w.participant_id AND s.scale = w.scale AND s.day BETWEEN w.first_day AND w.end_day
    GROUP BY ALL
), graded AS (
    SELECT m.participant_id, m.scale, m.phase, max(c.grade) AS grade
    FROM measures m JOIN criteria c
      ON c.scale = m.scale AND c.phase = m.phase AND c.measure = m.measure AND c.level = m.level AND m.n >= c.at_least
    GROUP BY ALL
), counts AS (
    SELECT w.participant_id, w.scale, w.phase, count(r.day) AS n_results
    FROM windows w LEFT JOIN results r
      ON r.participant_id = w.participant_id AND r.scale = w.scale AND r.day BETWEEN w.first_day AND w.end_day
    GROUP BY ALL
)
SELECT w.participant_id, w.scale, w.phase,
       CAST(CASE WHEN w.end_day >= w.first_day AND n.n_results > 0 THEN coalesce(g.grade, 0) END AS INTEGER) AS grade,
       CAST(CASE WHEN w.end_day >= w.first_day THEN coalesce(dp.n, 0) END AS INTEGER) AS days_below_primary,
       CAST(CASE WHEN w.end_day >= w.first_day THEN coalesce(ds.n, 0) END AS INTEGER) AS days_below_severe,
       CAST(n.n_results AS INTEGER) AS n_results,
       CAST(w.end_day AS INTEGER) AS window_end_day,
       w.end_reason AS window_end_reason,
       CASE WHEN w.end_day < w.first_day
                THEN 'window ended on day ' || w.end_day || ' (' || w.end_reason || '), before the ' || w.phase
                     || ' phase (days ' || w.first_day || '-' || w.last_day || ')'
            WHEN n.n_results = 0
                THEN 'no ' || w.test_code || ' result in days ' || w.first_day || '-' || w.end_day END AS null_reason,
       'ICAHT EHA/EBMT (Rejeski 2023; T-ICAHT 2025): daily lowest ' || w.test_code || ' carried forward at most '
       || getvariable('icaht_carry_days') || ' days; unstable recovery (< 3 days not below) counted as below; '
       || 'transfusion independence not applied (transfusions and growth factors are not recorded)' AS method
FROM windows w
JOIN counts n USING (participant_id, scale, phase)
LEFT JOIN graded g USING (participant_id, scale, phase)
LEFT JOIN measures dp ON dp.participant_id = w.participant_id AND dp.scale = w.scale AND dp.phase = w.phase
                     AND dp.measure = 'days' AND dp.level = 'primary'
LEFT JOIN measures ds ON ds.participant_id = w.participant_id AND ds.scale = w.scale AND ds.phase = w.phase
                     AND ds.measure = 'days' AND ds.level = 'severe'
ORDER BY w.participant_id, w.scale, w.phase;

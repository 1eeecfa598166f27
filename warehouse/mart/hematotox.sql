-- mart.hematotox: the CAR-HEMATOTOX score (Rejeski et al., Blood 2021; derivations §4.6), one row per participant
-- who started lymphodepletion. Each marker: the last result collected on a day before the first lymphodepletion
-- day and at most hematotox_baseline_days before it; its points are the band (table `bands`, the boundaries
-- exactly as the spec writes them) that holds it. Below the LLOQ is a measured 0 (§1.2); a censored <x scores
-- when every value below x falls in the lowest band, >x when every value above x falls in the highest band;
-- otherwise, or with no result, the score and risk are NULL and null_reason names the marker.
CREATE OR REPLACE TEMP MACRO signif(x, digits) AS
    CASE WHEN x IS NULL OR x = 0 THEN x
         ELSE round(x, CAST(digits - 1 - floor(log10(abs(x))) AS INTEGER)) END;

CREATE OR REPLACE TABLE mart.hematotox AS
WITH bands(marker, points, low, low_inclusive, high, high_inclusive) AS (
    SELECT marker, points, CAST(low AS DOUBLE), low_inclusive, CAST(high AS DOUBLE), high_inclusive FROM (VALUES
        ('plt', 2, NULL, NULL, 75, FALSE), ('plt', 1, 75, TRUE, 175, TRUE), ('plt', 0, 175, FALSE, NULL, NULL),
        ('anc', 1, NULL, NULL, 1.2, FALSE), ('anc', 0, 1.2, TRUE, NULL, NULL),
        ('hgb', 1, NULL, NULL, 90, FALSE), ('hgb', 0, 90, TRUE, NULL, NULL),
        ('crp', 0, NULL, NULL, 30, TRUE), ('crp', 1, 30, FALSE, NULL, NULL),
        ('ferritin', 0, NULL, NULL, 650, FALSE), ('ferritin', 1, 650, TRUE, 2000, TRUE),
        ('ferritin', 2, 2000, FALSE, NULL, NULL)) AS t(marker, points, low, low_inclusive, high, high_inclusive)
), markers(marker, test_code, label, position) AS (
    VALUES ('plt', 'PLT', 'platelets', 1), ('anc', 'ANC', 'ANC', 2), ('hgb', 'HGB', 'hemoglobin', 3),
           ('crp', 'CRP', 'CRP', 4), ('ferritin', 'FERR', 'ferritin', 5)
), people AS (
    SELECT participant_id, ld_start_date FROM core.participants WHERE ld_start_date IS NOT NULL
), latest AS (
    SELECT p.participant_id, m.marker, l.value, l.comparator,
           coalesce(l.below_lloq, FALSE) OR l.result_kind = 'BELOW_LLOQ' AS below_lloq,
           CAST(l.collected_at AS DATE) AS collected_on
    FROM people p JOIN core.lab_results l USING (participant_id) JOIN markers m USING (test_code)
    WHERE CAST(l.collected_at AS DATE) < p.ld_start_date
      AND CAST(l.collected_at AS DATE) >= p.ld_start_date - CAST(getvariable('hematotox_baseline_days') AS INTEGER)
      AND (coalesce(l.below_lloq, FALSE) OR l.result_kind = 'BELOW_LLOQ'
           OR (l.result_kind IN ('VALUE', 'CENSORED') AND l.value IS NOT NULL))
    QUALIFY row_number() OVER (PARTITION BY p.participant_id, m.marker
                               ORDER BY l.collected_at DESC, l.resulted_at DESC NULLS LAST, l.accession DESC) = 1
), scored AS (
    SELECT l.*, b.points
    FROM latest l LEFT JOIN bands b ON b.marker = l.marker AND CASE
        WHEN l.below_lloq THEN b.low IS NULL
        WHEN l.comparator = '<' THEN b.low IS NULL AND signif(l.value, getvariable('ctcae_significant_digits'))
                                                       <= signif(b.high, getvariable('ctcae_significant_digits'))
        WHEN l.comparator = '>' THEN b.high IS NULL AND signif(l.value, getvariable('ctcae_significant_digits'))
                                                        >= signif(b.low, getvariable('ctcae_significant_digits'))
        ELSE (b.low IS NULL OR CASE WHEN b.low_inclusive
                                    THEN signif(l.value, getvariable('ctcae_significant_digits'))
                                         >= signif(b.low, getvariable('ctcae_significant_digits'))
                                    ELSE signif(l.value, getvariable('ctcae_significant_digits'))
                                         > signif(b.low, getvariable('ctcae_significant_digits')) END)
         AND (b.high IS NULL OR CASE WHEN b.high_inclusive
                                     THEN signif(l.value, getvariable('ctcae_significant_digits'))
                                          <= signif(b.high, getvariable('ctcae_significant_digits'))
                                     ELSE signif(l.value, getvariable('ctcae_significant_digits'))
                                          < signif(b.high, getvariable('ctcae_significant_digits')) END) END
), grid AS (
    SELECT p.participant_id, m.marker, m.label, m.position, s.value, s.comparator, s.below_lloq, s.collected_on,
           s.points,
           CASE WHEN s.marker IS NULL
                    THEN 'no ' || m.label || ' result in the ' || getvariable('hematotox_baseline_days')
                         || ' days before lymphodepletion'
                WHEN s.points IS NULL
                    THEN m.label || ' ' || s.comparator || s.value || ' cannot be scored (censored across a cut-off)'
           END AS missing
    FROM people p CROSS JOIN markers m
    LEFT JOIN scored s ON s.participant_id = p.participant_id AND s.marker = m.marker
), per_participant AS (
    SELECT participant_id,
           CASE WHEN count(points) = count(*) THEN sum(points) END AS score,
           string_agg(missing, '; ' ORDER BY position) AS null_reason,
           any_value(value) FILTER (WHERE marker = 'plt') AS plt_value,
           any_value(CASE WHEN below_lloq THEN 'BLQ' ELSE comparator END) FILTER (WHERE marker = 'plt') AS plt_qualifier,
           any_value(collected_on) FILTER (WHERE marker = 'plt') AS plt_date,
           any_value(points) FILTER (WHERE marker = 'plt') AS points_plt,
           any_value(value) FILTER (WHERE marker = 'anc') AS anc_value,
           any_value(CASE WHEN below_lloq THEN 'BLQ' ELSE comparator END) FILTER (WHERE marker = 'anc') AS anc_qualifier,
           any_value(collected_on) FILTER (WHERE marker = 'anc') AS anc_date,
           any_value(points) FILTER (WHERE marker = 'anc') AS points_anc,
           any_value(value) FILTER (WHERE marker = 'hgb') AS hgb_value,
           any_value(CASE WHEN below_lloq THEN 'BLQ' ELSE comparator END) FILTER (WHERE marker = 'hgb') AS hgb_qualifier,
           any_value(collected_on) FILTER (WHERE marker = 'hgb') AS hgb_date,
           any_value(points) FILTER (WHERE marker = 'hgb') AS points_hgb,
           any_value(value) FILTER (WHERE marker = 'crp') AS crp_value,
           any_value(CASE WHEN below_lloq THEN 'BLQ' ELSE comparator END) FILTER (WHERE marker = 'crp') AS crp_qualifier,
           any_value(collected_on) FILTER (WHERE marker = 'crp') AS crp_date,
           any_value(points) FILTER (WHERE marker = 'crp') AS points_crp,
           any_value(value) FILTER (WHERE marker = 'ferritin') AS ferritin_value,
           any_value(CASE WHEN below_lloq THEN 'BLQ' ELSE comparator END) FILTER (WHERE marker = 'ferritin')
               AS ferritin_qualifier,
           any_value(collected_on) FILTER (WHERE marker = 'ferritin') AS ferritin_date,
           any_value(points) FILTER (WHERE marker = 'ferritin') AS points_ferritin
    FROM grid GROUP BY participant_id
)
SELECT participant_id, CAST(score AS INTEGER) AS score,
       CASE WHEN score >= 2 THEN 'HIGH' WHEN score IS NOT NULL THEN 'LOW' END AS risk,
       plt_value, plt_qualifier, plt_date, CAST(points_plt AS INTEGER) AS points_plt,
       anc_value, anc_qualifier, anc_date, CAST(points_anc AS INTEGER) AS points_anc,
       hgb_value, hgb_qualifier, hgb_date, CAST(points_hgb AS INTEGER) AS points_hgb,
       crp_value, crp_qualifier, crp_date, CAST(points_crp AS INTEGER) AS points_crp,
       ferritin_value, ferritin_qualifier, ferritin_date, CAST(points_ferritin AS INTEGER) AS points_ferritin,
       null_reason,
       'CAR-HEMATOTOX (Rejeski 2021): last result of each marker collected 1-'
       || getvariable('hematotox_baseline_days') || ' days before the first lymphodepletion day; '
       || 'risk LOW 0-1, HIGH >= 2; below the LLOQ scored as 0' AS method
FROM per_participant
ORDER BY participant_id;

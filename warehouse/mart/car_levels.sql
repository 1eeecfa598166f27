-- mart.car_levels: one tidy series of CAR levels (derivations §3), QC-failed samples excluded.
-- flow_pct: CAR+ % of CD3+; flow_abs: CAR+ % / 100 x CD3+ cells/µL of the same sample; qpcr: copies/µg gDNA,
-- below-limit results as 0 with below_lloq. CD19CAR (the prior product) is tracked beside, never mixed in.
CREATE OR REPLACE TABLE mart.car_levels AS
WITH car AS (
    SELECT * FROM core.flow_samples WHERE panel = 'CAR' AND qc = 'PASS'
), flow AS (
    SELECT participant_id, sample_id, specimen, collected_on, study_day, 'flow_pct' AS assay, 'CD22CAR' AS target,
           car22_pct AS value, '%' AS unit FROM car WHERE car22_pct IS NOT NULL
    UNION ALL
    SELECT participant_id, sample_id, specimen, collected_on, study_day, 'flow_pct', 'CD19CAR', car19_pct, '%'
    FROM car WHERE car19_pct IS NOT NULL
    UNION ALL
    SELECT participant_id, sample_id, specimen, collected_on, study_day, 'flow_abs', 'CD22CAR',
           car22_pct / 100 * cd3_abs_cells_ul, 'cells/uL'
    FROM car WHERE car22_pct IS NOT NULL AND cd3_abs_cells_ul IS NOT NULL
    UNION ALL
    SELECT participant_id, sample_id, specimen, collected_on, study_day, 'flow_abs', 'CD19CAR',
           car19_pct / 100 * cd3_abs_cells_ul, 'cells/uL'
    FROM car WHERE car19_pct IS NOT NULL AND cd3_abs_cells_ul IS NOT NULL
)
SELECT participant_id, collected_on, study_day, assay, target, value, unit, FALSE AS below_lloq, sample_id, specimen
FROM flow
UNION ALL
SELECT participant_id, collected_on, study_day, 'qpcr', target,
       CASE WHEN below_lloq THEN 0 ELSE copies_per_ug END, 'copies/ug gDNA', below_lloq, sample_id, specimen
FROM core.qpcr_results
WHERE qc = 'PASS' AND (copies_per_ug IS NOT NULL OR below_lloq);

COMMENT ON TABLE mart.car_levels IS 'CAR T-cell levels as one tidy series per participant, assay and target (derivations §3); QC-failed samples excluded.';
COMMENT ON COLUMN mart.car_levels.participant_id IS 'Participant.';
COMMENT ON COLUMN mart.car_levels.collected_on IS 'Collection date.';
COMMENT ON COLUMN mart.car_levels.study_day IS 'Collection date - CD22 CAR infusion date.';
COMMENT ON COLUMN mart.car_levels.assay IS 'flow_pct (CAR+ % of CD3+) | flow_abs (CAR+ cells/uL) | qpcr (transgene copies/ug gDNA).';
COMMENT ON COLUMN mart.car_levels.target IS 'CD22CAR (the product under study) | CD19CAR (the prior commercial product, tracked, never mixed in).';
COMMENT ON COLUMN mart.car_levels.value IS 'Level in unit; below-limit qPCR results are 0.';
COMMENT ON COLUMN mart.car_levels.unit IS '% | cells/uL | copies/ug gDNA.';
COMMENT ON COLUMN mart.car_levels.below_lloq IS 'TRUE when the result was BLQ, ND or <LLOQ (value 0).';
COMMENT ON COLUMN mart.car_levels.sample_id IS 'Source sample (FCS file name or qPCR sample ID).';
COMMENT ON COLUMN mart.car_levels.specimen IS 'Specimen of the sample (PB expected).';

-- core.flow_samples: one row per flow sample (identity: the FCS sample name), both panels (exports.md §B).
DELETE FROM core.flow_samples;
INSERT INTO core.flow_samples BY NAME
SELECT m.participant_id, m.sample_id, 'MRD' AS panel, m.specimen, m.collected_on, m.acquired_on,
       m.collected_on - p.infusion_date AS study_day, m.qc,
       m.events_total, m.events_leukemic, m.blasts_pct, m.cd19_pos_pct, m.cd22_pos_pct, m.cd22_abc,
       m.version, m.file_id
FROM staging.flow_mrd_current m
JOIN core.participants p USING (participant_id)
UNION ALL BY NAME
SELECT c.participant_id, c.sample_id, 'CAR' AS panel, c.specimen, c.collected_on, c.acquired_on,
       c.collected_on - p.infusion_date AS study_day, c.qc,
       c.cd3_count, c.cd3_abs_cells_ul, c.cd3_abs, c.car22_pct, c.car22_count, c.car19_pct,
       c.cd19b_pct, c.cd19b_abs_cells_ul, c.cd19b_abs,
       c.version, c.file_id
FROM staging.flow_car_current c
JOIN core.participants p USING (participant_id);

-- core.qpcr_results: current result per (sample, target); a rerun supersedes (exports.md §C).
DELETE FROM core.qpcr_results;
INSERT INTO core.qpcr_results BY NAME
SELECT q.participant_id, q.sample_id, q.target, q.specimen, q.collected_on,
       q.collected_on - p.infusion_date AS study_day,
       q.copies_per_ug, q.below_lloq, q.orig_result, q.lloq_copies_per_ug, q.gdna_input_ng, q.run_id, q.qc,
       q.version, q.file_id
FROM staging.qpcr_current q
JOIN core.participants p USING (participant_id);

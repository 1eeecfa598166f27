-- core.disease_assessments: current, non-deleted records of the EDC disease_assessment instrument (exports.md §D), enrolled
-- participants, with the study day of assess_date.
DELETE FROM core.disease_assessments;
INSERT INTO core.disease_assessments BY NAME
SELECT s.* EXCLUDE (file_id, row_number, export_time, content_hash, repeat_instrument, deleted, version),
       s.assess_date - p.infusion_date AS study_day, s.version, s.file_id
FROM staging.edc_disease_assessment_current s
JOIN core.participants p USING (participant_id)
WHERE NOT s.deleted;

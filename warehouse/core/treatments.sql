-- core.treatments: current, non-deleted records of the EDC treatment instrument (exports.md §D), enrolled
-- participants, with the study day of admin_date.
DELETE FROM core.treatments;
INSERT INTO core.treatments BY NAME
SELECT s.* EXCLUDE (file_id, row_number, export_time, content_hash, repeat_instrument, deleted, version),
       s.admin_date - p.infusion_date AS study_day, s.version, s.file_id
FROM staging.edc_treatment_current s
JOIN core.participants p USING (participant_id)
WHERE NOT s.deleted;

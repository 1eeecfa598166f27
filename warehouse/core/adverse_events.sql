-- core.adverse_events: current, non-deleted records of the EDC adverse_events instrument (exports.md §D), enrolled
-- participants, with the study day of onset_date.
DELETE FROM core.adverse_events;
INSERT INTO core.adverse_events BY NAME
SELECT s.* EXCLUDE (file_id, row_number, export_time, content_hash, repeat_instrument, deleted, version),
       s.onset_date - p.infusion_date AS onset_day, s.version, s.file_id
FROM staging.edc_adverse_events_current s
JOIN core.participants p USING (participant_id)
WHERE NOT s.deleted;

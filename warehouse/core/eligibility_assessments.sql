-- core.eligibility_assessments: screening measures of the EDC eligibility form, enrolled participants.
DELETE FROM core.eligibility_assessments;
INSERT INTO core.eligibility_assessments BY NAME
SELECT s.participant_id, s.event, s.lvef_pct, s.fs_pct, s.spo2_pct, s.crcl_measured, s.eligible_investigator,
       s.version, s.file_id
FROM staging.edc_eligibility_current s
JOIN core.participants p USING (participant_id)
WHERE NOT s.deleted;

-- core.lab_results: current version of every lab result (exports.md §A identity ACCESSION + TEST_CODE),
-- canonical units (derivations §1.1), study day from the collection date.
DELETE FROM core.lab_results;
INSERT INTO core.lab_results BY NAME
SELECT l.participant_id, l.accession, l.test_code, l.loinc, l.test_name, l.collected_at, l.resulted_at,
       CAST(l.collected_at AS DATE) - p.infusion_date AS study_day,
       l.value, l.unit, l.comparator, l.below_lloq, l.result_kind, l.ref_low, l.ref_high, l.flag,
       l.orig_result, l.orig_unit, l.orig_ref_low, l.orig_ref_high, l.status, l.version, l.file_id
FROM staging.labs_current l
JOIN core.participants p USING (participant_id);

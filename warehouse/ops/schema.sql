-- ops: what the pipeline did (warehouse.md §ops). Appended by the nightly run; never rebuilt.
CREATE SCHEMA IF NOT EXISTS ops;
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA IF NOT EXISTS mart;

CREATE TABLE IF NOT EXISTS ops.runs (
    run_id            INTEGER NOT NULL,
    flow_run_id       VARCHAR,
    started_at        TIMESTAMP NOT NULL,
    finished_at       TIMESTAMP,
    status            VARCHAR NOT NULL,
    files_seen        INTEGER,
    files_loaded      INTEGER,
    files_duplicate   INTEGER,
    files_quarantined INTEGER,
    rows_loaded       BIGINT,
    rows_rejected     BIGINT,
    config_hash       VARCHAR,
    code_version      VARCHAR
);
COMMENT ON TABLE ops.runs IS 'One row per nightly or on-demand run: what it saw and did (warehouse.md §ops).';
COMMENT ON COLUMN ops.runs.run_id IS 'Sequential run number in this warehouse.';
COMMENT ON COLUMN ops.runs.flow_run_id IS 'Prefect flow run id, to find the run and its artifacts in the Prefect UI.';
COMMENT ON COLUMN ops.runs.started_at IS 'When the run started (site local time).';
COMMENT ON COLUMN ops.runs.finished_at IS 'When the run finished (site local time).';
COMMENT ON COLUMN ops.runs.status IS 'completed (published) or failed.';
COMMENT ON COLUMN ops.runs.files_seen IS 'Files found in the inbox by this run.';
COMMENT ON COLUMN ops.runs.files_loaded IS 'Files of this run with status loaded, partially_loaded or rejected (read and recorded row by row).';
COMMENT ON COLUMN ops.runs.files_duplicate IS 'Files of this run already loaded before (same SHA-256): nothing loaded.';
COMMENT ON COLUMN ops.runs.files_quarantined IS 'Files of this run that could not be parsed at all.';
COMMENT ON COLUMN ops.runs.rows_loaded IS 'Rows of this run''s files loaded into staging (participants enrolled).';
COMMENT ON COLUMN ops.runs.rows_rejected IS 'Rows of this run''s files rejected, skipped or held (see ops.rejected_rows).';
COMMENT ON COLUMN ops.runs.config_hash IS 'SHA-256 of the protocol settings file used by the run.';
COMMENT ON COLUMN ops.runs.code_version IS 'Version of the car22 package (and git commit when known).';

CREATE TABLE IF NOT EXISTS ops.files (
    file_id       VARCHAR NOT NULL,
    file_name     VARCHAR NOT NULL,
    sha256        VARCHAR NOT NULL,
    bytes         BIGINT NOT NULL,
    source        VARCHAR,
    export_time   TIMESTAMP,
    received_at   TIMESTAMP NOT NULL,
    run_id        INTEGER NOT NULL,
    status        VARCHAR NOT NULL,
    rows_read     BIGINT NOT NULL DEFAULT 0,
    rows_loaded   BIGINT NOT NULL DEFAULT 0,
    rows_rejected BIGINT NOT NULL DEFAULT 0,
    reason        VARCHAR,
    archive_path  VARCHAR,
    report_path   VARCHAR
);
COMMENT ON TABLE ops.files IS 'Every file ever received, with its fate. rows_read = rows_loaded + rows_rejected for every file.';
COMMENT ON COLUMN ops.files.file_id IS 'First 16 hex digits of the SHA-256 (a repeat of the same bytes gets a .N suffix): the same content has the same id whatever the arrival order.';
COMMENT ON COLUMN ops.files.file_name IS 'Name of the file as dropped in the inbox.';
COMMENT ON COLUMN ops.files.sha256 IS 'SHA-256 of the file bytes: a file seen before is a duplicate.';
COMMENT ON COLUMN ops.files.bytes IS 'Size of the file in bytes.';
COMMENT ON COLUMN ops.files.source IS 'Source recognised from the header (labs, flow_mrd, flow_car, qpcr, edc_<instrument>, dm_decisions); for a quarantined file the source its name or header points to, NULL when neither does.';
COMMENT ON COLUMN ops.files.export_time IS 'Export time from the file name <prefix>_YYYYMMDDTHHMM (site local time): orders versions between files.';
COMMENT ON COLUMN ops.files.received_at IS 'When the run took the file from the inbox.';
COMMENT ON COLUMN ops.files.run_id IS 'Run that received the file.';
COMMENT ON COLUMN ops.files.status IS 'loaded | partially_loaded (some rows rejected or held) | rejected (rows read, none loaded: every row rejected by a blocking check or held) | duplicate | quarantined (unparseable, nothing loaded).';
COMMENT ON COLUMN ops.files.rows_read IS 'Data rows in the file (header and LIMS trailer excluded).';
COMMENT ON COLUMN ops.files.rows_loaded IS 'Rows loaded into staging for enrolled participants; updated when held rows are released.';
COMMENT ON COLUMN ops.files.rows_rejected IS 'Rows rejected by a blocking check, skipped (controls, summaries) or held (participant not enrolled).';
COMMENT ON COLUMN ops.files.reason IS 'Why the file was quarantined or is a duplicate of which file.';
COMMENT ON COLUMN ops.files.archive_path IS 'Byte-for-byte copy of the original file in the archive.';
COMMENT ON COLUMN ops.files.report_path IS 'The file''s validation page in the Data Docs (relative to the reports folder).';

CREATE TABLE IF NOT EXISTS ops.rejected_rows (
    file_id     VARCHAR NOT NULL,
    row_number  INTEGER NOT NULL,
    raw_record  VARCHAR,
    check_name  VARCHAR NOT NULL,
    reason      VARCHAR NOT NULL,
    severity    VARCHAR NOT NULL,
    run_id      INTEGER NOT NULL
);
COMMENT ON TABLE ops.rejected_rows IS 'One row per input row not loaded, with the reason. Held rows (participant not enrolled yet) are re-evaluated every run and leave this table once the enrollment arrives.';
COMMENT ON COLUMN ops.rejected_rows.file_id IS 'File the row came from (ops.files).';
COMMENT ON COLUMN ops.rejected_rows.row_number IS 'Line number of the row in the file (the header is line 1).';
COMMENT ON COLUMN ops.rejected_rows.raw_record IS 'The original row as JSON (column -> text); identifying fields left out.';
COMMENT ON COLUMN ops.rejected_rows.check_name IS 'The check that rejected the row (the validation suite''s check name, row_shape, not_a_sample or participant_enrolled).';
COMMENT ON COLUMN ops.rejected_rows.reason IS 'What is wrong, in plain words; every failing blocking check is listed.';
COMMENT ON COLUMN ops.rejected_rows.severity IS 'blocking (rejected), skip (not a participant record: controls, Mean/SD) or held (participant not enrolled yet).';
COMMENT ON COLUMN ops.rejected_rows.run_id IS 'Run that rejected the row.';

CREATE TABLE IF NOT EXISTS ops.row_warnings (
    file_id     VARCHAR NOT NULL,
    row_number  INTEGER NOT NULL,
    check_name  VARCHAR NOT NULL,
    reason      VARCHAR NOT NULL,
    run_id      INTEGER NOT NULL
);
COMMENT ON TABLE ops.row_warnings IS 'Findings of warning checks: the row loaded, the finding is recorded for review.';
COMMENT ON COLUMN ops.row_warnings.file_id IS 'File the row came from (ops.files).';
COMMENT ON COLUMN ops.row_warnings.row_number IS 'Line number of the row in the file.';
COMMENT ON COLUMN ops.row_warnings.check_name IS 'The warning check that fired.';
COMMENT ON COLUMN ops.row_warnings.reason IS 'What looks wrong, in plain words.';
COMMENT ON COLUMN ops.row_warnings.run_id IS 'Run that validated the file.';

CREATE TABLE IF NOT EXISTS ops.validation_results (
    run_id           INTEGER NOT NULL,
    file_id          VARCHAR NOT NULL,
    suite            VARCHAR NOT NULL,
    expectation      VARCHAR NOT NULL,
    column_name      VARCHAR,
    success          BOOLEAN NOT NULL,
    unexpected_count BIGINT,
    severity         VARCHAR NOT NULL,
    report_path      VARCHAR
);
COMMENT ON TABLE ops.validation_results IS 'Great Expectations results per run, file and expectation: the history monitors query.';
COMMENT ON COLUMN ops.validation_results.run_id IS 'Run that validated the file.';
COMMENT ON COLUMN ops.validation_results.file_id IS 'Validated file (ops.files).';
COMMENT ON COLUMN ops.validation_results.suite IS 'Expectation suite (one per source, expectations/<source>.json).';
COMMENT ON COLUMN ops.validation_results.expectation IS 'Check name of the expectation.';
COMMENT ON COLUMN ops.validation_results.column_name IS 'Column checked, when the expectation is about one column.';
COMMENT ON COLUMN ops.validation_results.success IS 'TRUE when every row met the expectation.';
COMMENT ON COLUMN ops.validation_results.unexpected_count IS 'Rows that failed the expectation.';
COMMENT ON COLUMN ops.validation_results.severity IS 'blocking (failing rows rejected) or warning (rows loaded, finding recorded).';
COMMENT ON COLUMN ops.validation_results.report_path IS 'The file''s Data Docs page (relative to the reports folder).';

CREATE TABLE IF NOT EXISTS ops.data_issues (
    issue_id            VARCHAR NOT NULL,
    source              VARCHAR NOT NULL,
    participant_id      VARCHAR,
    record_key          VARCHAR NOT NULL,
    check_name          VARCHAR NOT NULL,
    severity            VARCHAR NOT NULL,
    status              VARCHAR NOT NULL,
    first_seen_at       TIMESTAMP,
    first_seen_file_id  VARCHAR,
    last_seen_at        TIMESTAMP,
    last_seen_file_id   VARCHAR,
    times_seen          INTEGER NOT NULL,
    resolved_at         TIMESTAMP,
    resolved_by_file_id VARCHAR,
    age_days            INTEGER,
    reason              VARCHAR,
    decided_by          VARCHAR,
    decision_reason     VARCHAR
);
COMMENT ON TABLE ops.data_issues IS 'The data manager''s work list (warehouse.md §ops): one row per finding that needs someone, recomputed every run from ops.files, ops.rejected_rows, ops.row_warnings, staging and the decisions, so that any file order gives the same issues (car22/loading/data_issues.py).';
COMMENT ON COLUMN ops.data_issues.issue_id IS 'Stable id: the first 16 hex digits of md5(source | record_key | check_name).';
COMMENT ON COLUMN ops.data_issues.source IS 'Source of the finding (labs, flow_mrd, ..., edc_<instrument>; for a quarantined file the source its name or header points to, or unknown).';
COMMENT ON COLUMN ops.data_issues.participant_id IS 'Participant of the record, as sent (NULL for a file-level finding).';
COMMENT ON COLUMN ops.data_issues.record_key IS 'Record identity (its identity fields joined by |), or <file_id>:<line> when the row has none, the source for a file-level warning, <source>_<export time> (or the file name) for a quarantined file.';
COMMENT ON COLUMN ops.data_issues.check_name IS 'The check: a validation check, row_shape, participant_enrolled (held row), file_quarantined, extra_columns or export_time_after_run.';
COMMENT ON COLUMN ops.data_issues.severity IS 'blocking (row or file not loaded), warning (loaded, to review) or held (waits for the enrollment).';
COMMENT ON COLUMN ops.data_issues.status IS 'OPEN | RESOLVED (a later version of the record, a newer file or the enrollment came without the finding) | ACCEPTED (a data manager''s decision, exports.md §E).';
COMMENT ON COLUMN ops.data_issues.first_seen_at IS 'Export time of the earliest file with the finding (received time when the name carries none).';
COMMENT ON COLUMN ops.data_issues.first_seen_file_id IS 'That file (ops.files).';
COMMENT ON COLUMN ops.data_issues.last_seen_at IS 'Export time of the latest file with the finding.';
COMMENT ON COLUMN ops.data_issues.last_seen_file_id IS 'That file (ops.files): its Data Docs page shows the row.';
COMMENT ON COLUMN ops.data_issues.times_seen IS 'Number of files with the finding.';
COMMENT ON COLUMN ops.data_issues.resolved_at IS 'Export time of the file that resolved the finding; NULL while the finding stands.';
COMMENT ON COLUMN ops.data_issues.resolved_by_file_id IS 'The file that resolved it: the later version, the newer snapshot, the enrollment or the replacing file.';
COMMENT ON COLUMN ops.data_issues.age_days IS 'Open issues: days from first_seen_at to the run; NULL otherwise.';
COMMENT ON COLUMN ops.data_issues.reason IS 'What is wrong, in plain words (the latest occurrence).';
COMMENT ON COLUMN ops.data_issues.decided_by IS 'User of the latest data manager decision on the issue (ACCEPT or REOPEN), if any.';
COMMENT ON COLUMN ops.data_issues.decision_reason IS 'Reason given with that decision.';

CREATE TABLE IF NOT EXISTS ops.data_issue_events (
    issue_id   VARCHAR NOT NULL,
    event      VARCHAR NOT NULL,
    "at"       TIMESTAMP NOT NULL,
    run_id     INTEGER NOT NULL,
    file_id    VARCHAR,
    decided_by VARCHAR,
    reason     VARCHAR
);
COMMENT ON TABLE ops.data_issue_events IS 'History of every data issue, append-only (warehouse.md §ops): what each run saw change.';
COMMENT ON COLUMN ops.data_issue_events.issue_id IS 'The issue (ops.data_issues).';
COMMENT ON COLUMN ops.data_issue_events.event IS 'OPENED | SEEN_AGAIN (one more file with the finding) | RESOLVED | ACCEPTED (decision) | REOPENED (the finding came back, or a REOPEN decision).';
COMMENT ON COLUMN ops.data_issue_events."at" IS 'When: the run''s start, or decided_at for a decision.';
COMMENT ON COLUMN ops.data_issue_events.run_id IS 'Run that recorded the event.';
COMMENT ON COLUMN ops.data_issue_events.file_id IS 'The file behind the event: the finding''s file, the resolving file or the decisions file.';
COMMENT ON COLUMN ops.data_issue_events.decided_by IS 'The data manager''s user id (decisions only).';
COMMENT ON COLUMN ops.data_issue_events.reason IS 'The finding''s reason, or the decision''s.';

CREATE TABLE IF NOT EXISTS ops.rebuilt_participants (
    run_id         INTEGER NOT NULL,
    scope          VARCHAR NOT NULL,
    participant_id VARCHAR
);
COMMENT ON TABLE ops.rebuilt_participants IS 'Whose core and mart rows each completed run rebuilt: one row per run with participant_id NULL naming its scope, then one row per participant of a touched run. The submission package rewrites only these participants'' records (docs/submission.md).';
COMMENT ON COLUMN ops.rebuilt_participants.run_id IS 'The run (ops.runs).';
COMMENT ON COLUMN ops.rebuilt_participants.scope IS 'everything (settings or code changed, or the first run: every participant rebuilt) | touched (the participants of the run''s rows) | nothing (no rows loaded).';
COMMENT ON COLUMN ops.rebuilt_participants.participant_id IS 'NULL on the run''s scope row; else a participant whose rows the run rebuilt.';

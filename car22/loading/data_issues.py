"""The data manager's work list (warehouse.md `ops.data_issues`, `ops.data_issue_events`; exports.md §E).

Every blocking rejection, warning, held row and quarantined file is a finding; findings of one record and
check are one issue with a stable id. The issues are recomputed every run as a pure function of what is
loaded (ops.files, ops.rejected_rows, ops.row_warnings, staging and the decisions), with times taken from
the files' export times, so the same files in any order, in one run or several, give the same issues
(exports.md "Order does not matter"). Only the events are history: each run compares the recomputed issues
with the previous ones and appends what changed.

When a finding stands (docs/ingestion.md "Data issues"):
- a row finding of a record stands while the latest file (by export time, then file id) holding that
  record holds the finding; for an EDC instrument (full snapshots), while the newest snapshot holds it, so
  a corrected or deleted record resolves it. A row without a record identity stands until accepted.
- a held row (participant not enrolled when its file was exported) stands while the row is held.
- a file warning (schema drift) stands while the source's newest file carries it.
- a quarantined file stands until a file of the same source and export time loads.

A night that loads a few files recomputes only the issues those files can change (`_scope`); every other
issue keeps its row, so the result equals the full recompute at a cost that follows tonight's files.
"""
from __future__ import annotations

from datetime import datetime

import duckdb

from car22.intake.sources import (
    DM_DECISIONS,
    EDC_ENROLLMENT,
    PARTICIPANT_SOURCES,
    Field,
    Source,
)
from car22.loading.load import FILE_WARNINGS, LOADED, quote

HELD = "participant_enrolled"
QUARANTINED = "file_quarantined"
STATUSES = ("OPEN", "RESOLVED", "ACCEPTED")


def _part(alias: str, f: Field, raw: bool) -> str:
    """One identity field as text, the same from raw text and from the typed staging value."""
    if raw:
        text = f"nullif(trim({alias}.{quote(f.raw)}), '')"
        return f"coalesce(CAST(TRY_CAST({text} AS BIGINT) AS VARCHAR), {text})" if f.kind == "int" else text
    return f"CAST({alias}.{quote(f.name)} AS VARCHAR)"


def _key(source: Source, alias: str, raw: bool) -> str:
    """SQL: the record identity as one text (fields joined by |), NULL when a required part is empty."""
    fields = {f.name: f for f in source.fields}
    parts = [_part(alias, fields[name], raw) for name in source.identity]
    required = [p for name, p in zip(source.identity, parts) if fields[name].required]
    joined = "concat_ws('|', " + ", ".join(f"coalesce({p}, '')" for p in parts) + ")"
    if not required:
        return joined
    return f"CASE WHEN {' OR '.join(f'{p} IS NULL' for p in required)} THEN NULL ELSE {joined} END"


def _participant(source: Source, alias: str) -> str:
    column = next(f.raw for f in source.fields if f.name == "participant_id")
    return f"nullif(trim({alias}.{quote(column)}), '')"


def _findings_sql(source: Source) -> str:
    """Occurrences of row findings of one source: blocking rejections and warnings (from raw), and rows
    held for their enrollment (from staging)."""
    name = source.name
    rows = f"""
        SELECT '{name}' AS source, {_participant(source, 'r')} AS participant_id,
               CASE WHEN x.check_name <> 'row_shape' THEN {_key(source, 'r', raw=True)} END AS identity_key,
               x.file_id, x.row_number, x.check_name, x.severity, x.reason, NULL AS currently_held
        FROM (SELECT file_id, row_number, check_name, reason, 'blocking' AS severity FROM ops.rejected_rows
              WHERE severity = 'blocking'
              UNION ALL
              SELECT file_id, row_number, check_name, reason, 'warning' FROM ops.row_warnings
              WHERE check_name <> '{HELD}' AND check_name NOT IN {FILE_WARNINGS}) x
        JOIN ops.files f ON f.file_id = x.file_id AND f.source = '{name}'
        JOIN {source.raw_table} r ON r.file_id = x.file_id AND r.row_number = x.row_number"""
    if source is EDC_ENROLLMENT:
        return rows
    # Held when its file was exported before the participant's first enrollment (or there is none), or held
    # now (an enrollment deleted later): a function of the files, not of the order they arrived in. The reason of
    # a row held no longer is written once per issue (`_held_reason`), not carried with each of 10 million rows.
    held = f"""
        SELECT '{name}', s.participant_id, {_key(source, 's', raw=False)}, s.file_id, s.row_number, '{HELD}',
               'held', h.reason, h.file_id IS NOT NULL
        FROM {source.staging_table} s
        JOIN file_times t ON t.file_id = s.file_id
        LEFT JOIN enrolled_since e ON e.participant_id = s.participant_id
        LEFT JOIN ops.rejected_rows h ON h.file_id = s.file_id AND h.row_number = s.row_number
                                      AND h.severity = 'held'
        WHERE h.file_id IS NOT NULL OR e.since IS NULL OR e.since > t.seen_at"""
    return rows + "\nUNION ALL" + held


def _held_reason(check_name: str, reason: str, participant_id: str) -> str:
    """SQL: the reason of a finding: the held row's own while it is held, else the words below."""
    return (f"CASE WHEN {check_name} = '{HELD}' AND {reason} IS NULL "
            f"THEN 'participant ' || {participant_id} || ' is not enrolled in the EDC (yet): the row is held "
            f"and loads once the enrollment is exported' ELSE {reason} END")


def _observations_sql(source: Source) -> str:
    """Every file that holds a version of a record (loaded, held or rejected), by record key."""
    return f"""
        SELECT '{source.name}' AS source, {_key(source, 's', raw=False)} AS identity_key, s.file_id
        FROM {source.staging_table} s
        UNION ALL
        SELECT '{source.name}', {_key(source, 'r', raw=True)}, x.file_id
        FROM ops.rejected_rows x
        JOIN ops.files f ON f.file_id = x.file_id AND f.source = '{source.name}'
        JOIN {source.raw_table} r ON r.file_id = x.file_id AND r.row_number = x.row_number
        WHERE x.severity = 'blocking' AND x.check_name <> 'row_shape'"""


def _export_key(alias: str) -> str:
    """SQL: `<source>_<YYYYMMDDTHHMM>` of a file, the record key of its quarantine issue."""
    return f"{alias}.source || '_' || strftime({alias}.export_time, '%Y%m%dT%H%M')"


def _quarantine_key(alias: str) -> str:
    """SQL: the record key of a quarantined file (its file name when its source or export time is unknown)."""
    return (f"CASE WHEN {alias}.source IS NOT NULL AND {alias}.export_time IS NOT NULL "
            f"THEN {_export_key(alias)} ELSE {alias}.file_name END")


def _age_days(first_seen: str) -> str:
    """SQL: an open issue's age, calendar days from its first finding to the run time (the one parameter)."""
    return f"CAST(date_diff('day', {first_seen}, CAST(? AS TIMESTAMP)) AS INTEGER)"


def _keyed_findings_sql() -> str:
    """Every finding occurrence with its record key, source and time."""
    rows = "\nUNION ALL".join(_findings_sql(s) for s in PARTICIPANT_SOURCES)
    return f"""
        WITH found AS ({rows}
            UNION ALL
            SELECT f.source, NULL, f.source, w.file_id, w.row_number, w.check_name, 'warning', w.reason, NULL
            FROM ops.row_warnings w JOIN ops.files f USING (file_id) WHERE w.check_name IN {FILE_WARNINGS}
            UNION ALL
            SELECT coalesce(q.source, 'unknown'), NULL, {_quarantine_key('q')},
                   q.file_id, NULL, '{QUARANTINED}', 'blocking', q.reason, NULL
            FROM ops.files q WHERE q.status = 'quarantined')
        SELECT found.*, coalesce(identity_key, found.file_id || ':' || found.row_number) AS record_key,
               identity_key IS NULL AND check_name NOT IN {FILE_WARNINGS + (QUARANTINED,)} AS keyless,
               t.seen_at
        FROM found JOIN file_times t USING (file_id)"""


def _observed_sql() -> str:
    """Every file holding a version of a record of a source judged by its latest file (not a snapshot)."""
    return "\nUNION ALL".join(_observations_sql(s) for s in PARTICIPANT_SOURCES if not s.snapshot)


SNAPSHOTS = tuple(s.name for s in PARTICIPANT_SOURCES if s.snapshot) + ("",)


def _in_scope(alias: str) -> str:
    """SQL: the issue (or finding) `alias` is one tonight can change (the temp tables of `_scope`)."""
    return (f"(EXISTS (SELECT 1 FROM scope_keys c WHERE c.source = {alias}.source "
            f"AND c.record_key = {alias}.record_key) "
            f"OR {alias}.source IN (SELECT source FROM scope_sources))")


def _scope(con: duckdb.DuckDBPyConnection, run_id: int) -> None:
    """The temp tables `scope_keys` (source, record_key) and `scope_sources`: the issues run `run_id` can
    change when it loaded no enrollment and no decision (`_scoped`). Every input of an issue is then fixed
    but these: its own findings (tonight's finding keys), the latest file holding its record (the records
    tonight's files hold a version of), the newest file of its source for a file warning or an EDC snapshot
    (when tonight's file is that newest: the source's file warnings, the whole snapshot source), a file
    loading with a quarantined file's source and export time (the quarantines it resolves)."""
    tonight = f"SELECT file_id FROM ops.files WHERE run_id = {int(run_id)}"
    newest = f"SELECT source FROM newest_file WHERE file_id IN ({tonight})"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE scope_keys AS
        SELECT source, record_key FROM ({_keyed_findings_sql()}) WHERE file_id IN ({tonight})
        UNION SELECT source, identity_key FROM ({_observed_sql()}) WHERE file_id IN ({tonight})
        UNION SELECT source, source FROM ({newest})
        UNION SELECT coalesce(q.source, 'unknown'), {_quarantine_key('q')} FROM ops.files q
              WHERE q.status = 'quarantined' AND {_quarantine_key('q')} IN (
                  SELECT {_export_key('f')} FROM ops.files f
                  WHERE f.run_id = {int(run_id)} AND f.status IN {LOADED})""")
    con.execute(f"CREATE OR REPLACE TEMP TABLE scope_sources AS {newest} AND source IN {SNAPSHOTS}")


def compute(con: duckdb.DuckDBPyConnection, run_time: datetime, run_id: int | None = None) -> None:
    """The temp table `issues_now`: every issue with its state, as of everything loaded; with `run_id`, only
    the issues that run's files can change (`_scope`)."""
    con.execute("""CREATE OR REPLACE TEMP TABLE file_times AS
                    SELECT file_id, coalesce(export_time, received_at) AS seen_at, source, status, export_time
                    FROM ops.files""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE enrolled_since AS
                    SELECT s.participant_id, min(t.seen_at) AS since FROM {EDC_ENROLLMENT.staging_table} s
                    JOIN file_times t USING (file_id) GROUP BY ALL""")
    # The newest loaded file of each source: what a snapshot or a file warning is judged by.
    con.execute(f"""CREATE OR REPLACE TEMP TABLE newest_file AS
                    SELECT source, arg_max(file_id, (seen_at, file_id)) AS file_id FROM file_times
                    WHERE status IN {LOADED} AND source IS NOT NULL GROUP BY ALL""")
    if run_id is not None:
        _scope(con, run_id)
    where = "" if run_id is None else f"WHERE {_in_scope('k')}"
    # The findings in the order (seen_at, file_id, row_number), NULL last as in a struct comparison, so that the
    # rowid is one integer key for the latest/earliest picks below, much cheaper than comparing structs. The
    # table is written in that order (DuckDB keeps insertion order): a sort of the rows as they are written is a
    # third of the cost of numbering them with row_number() over the same order (10 million findings: 14 s
    # against 41 s).
    con.execute(f"""CREATE OR REPLACE TEMP TABLE finding_rows AS
                    SELECT *, substr(md5(source || '|' || record_key || '|' || check_name), 1, 16) AS issue_id
                    FROM ({_keyed_findings_sql()}) k {where}
                    ORDER BY seen_at NULLS LAST, file_id NULLS LAST, row_number NULLS LAST""")
    # The latest file holding each record with a finding judged by it (sources other than EDC snapshots): not a
    # held row's, which stands while the row is held. Held rows are nearly all the findings of a first night
    # (10 million at 20,000 participants): without them the table holds hundreds of records, not millions.
    con.execute(f"""CREATE OR REPLACE TEMP TABLE latest_word AS
        SELECT o.source, o.identity_key, arg_max(o.file_id, (t.seen_at, o.file_id)) AS file_id
        FROM ({_observed_sql()}) o JOIN file_times t USING (file_id)
        WHERE EXISTS (SELECT 1 FROM finding_rows k WHERE k.source = o.source AND k.identity_key = o.identity_key
                                                      AND k.check_name <> '{HELD}')
        GROUP BY ALL""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE last_decision AS
        SELECT d.issue_id, arg_max(d.decision, (d.decided_at, t.seen_at, d.file_id, d.row_number)) AS decision,
               arg_max(d.decided_by, (d.decided_at, t.seen_at, d.file_id, d.row_number)) AS decided_by,
               arg_max(d.reason, (d.decided_at, t.seen_at, d.file_id, d.row_number)) AS reason
        FROM {DM_DECISIONS.staging_table} d JOIN file_times t USING (file_id) GROUP BY ALL""")
    # Every issue in one statement over its findings: what it is, the file that judges it (each finding of an issue
    # has the same one: same source and record), whether a finding is in that file, its numbers (its first
    # finding's file, when it was seen, in how many files), its latest finding's texts, and the file that resolved
    # it. One statement: at 20,000 participants, the 10 million issues written to a table, then joined to their
    # latest findings and to their resolutions, took 42-45 s against 14-15 s (bench/RESULTS.md).
    con.execute(f"""CREATE OR REPLACE TEMP TABLE issues_now AS
        WITH judged AS (
            SELECT i.rowid AS finding, i.*,
                   -- the file a finding must be in to stand, and the file that resolves it otherwise
                   CASE WHEN i.check_name = '{HELD}' THEN NULL
                        WHEN i.check_name IN {FILE_WARNINGS} OR i.source IN {SNAPSHOTS} THEN n.file_id
                        ELSE l.file_id END AS judge_file
            FROM finding_rows i
            LEFT JOIN newest_file n ON n.source = i.source
            LEFT JOIN latest_word l ON l.source = i.source AND l.identity_key = i.identity_key),
        repeated AS (
            SELECT issue_id FROM finding_rows GROUP BY issue_id HAVING count(*) > 1),
        issues AS (
            -- An issue with one finding (nearly every issue) is that finding: only the others are aggregated, and
            -- only theirs need the distinct count of files (a distinct count over every issue stood at the night's
            -- memory limit). source, record_key and check_name make the issue id; the latest finding's other texts
            -- are shown.
            SELECT issue_id, source, check_name, record_key, keyless, judge_file, currently_held AS held_now,
                   participant_id, file_id = judge_file AS in_judge_file, file_id AS first_file_id,
                   seen_at AS first_seen_at, seen_at AS last_seen_at, 1 AS times_seen,
                   participant_id AS latest_participant_id, severity AS latest_severity, file_id AS latest_file_id,
                   reason AS latest_reason
            FROM judged WHERE issue_id NOT IN (SELECT issue_id FROM repeated)
            UNION ALL
            SELECT issue_id, any_value(source), any_value(check_name), any_value(record_key), bool_or(keyless),
                   any_value(judge_file), bool_or(currently_held), any_value(participant_id),
                   bool_or(file_id = judge_file), arg_min(file_id, finding), min(seen_at), max(seen_at),
                   CAST(count(DISTINCT file_id) AS INTEGER), arg_max_null(participant_id, finding),
                   arg_max_null(severity, finding), arg_max_null(file_id, finding), arg_max_null(reason, finding)
            FROM judged WHERE issue_id IN (SELECT issue_id FROM repeated) GROUP BY issue_id),
        standing AS (
            -- whether the issue stands, and the file loaded for a quarantined file (its source and export time)
            SELECT s.*, CASE WHEN s.keyless THEN TRUE
                             WHEN s.check_name = '{HELD}' THEN s.held_now
                             WHEN s.check_name = '{QUARANTINED}' THEN q.file_id IS NULL
                             ELSE coalesce(s.in_judge_file, FALSE) END AS present,
                   q.file_id AS replacing_file
            FROM issues s
            LEFT JOIN (SELECT {_export_key('f')} AS record_key, min(f.file_id) AS file_id FROM ops.files f
                       WHERE f.status IN {LOADED} GROUP BY ALL) q ON q.record_key = s.record_key),
        state AS (
            -- the file that resolved an issue no longer standing: for a held row, the participant's latest
            -- enrollment file; for a quarantined file, the first file loaded in its place; else the file that
            -- judges it
            SELECT s.*, CASE WHEN NOT s.present THEN
                            CASE WHEN s.check_name = '{HELD}' THEN e.file_id
                                 WHEN s.check_name = '{QUARANTINED}' THEN s.replacing_file
                                 ELSE s.judge_file END END AS resolved_by_file_id
            FROM standing s
            LEFT JOIN (SELECT participant_id, arg_max(file_id, (export_time, file_id)) AS file_id
                       FROM {EDC_ENROLLMENT.staging_table} GROUP BY ALL) e ON e.participant_id = s.participant_id)
        SELECT s.issue_id, s.source, s.latest_participant_id AS participant_id, s.record_key, s.check_name,
               s.latest_severity AS severity,
               CASE WHEN NOT s.present THEN 'RESOLVED'
                    WHEN d.decision = 'ACCEPT' THEN 'ACCEPTED' ELSE 'OPEN' END AS status,
               s.first_seen_at, s.first_file_id AS first_seen_file_id,
               s.last_seen_at, s.latest_file_id AS last_seen_file_id, s.times_seen,
               t.seen_at AS resolved_at, s.resolved_by_file_id,
               CASE WHEN s.present AND coalesce(d.decision, '') <> 'ACCEPT'
                    THEN {_age_days('s.first_seen_at')} END AS age_days,
               {_held_reason('s.check_name', 's.latest_reason', 's.latest_participant_id')} AS reason,
               d.decided_by, d.reason AS decision_reason
        FROM state s
        LEFT JOIN file_times t ON t.file_id = s.resolved_by_file_id
        LEFT JOIN last_decision d ON d.issue_id = s.issue_id""", [run_time])
    _drop(con, "finding_rows", "latest_word", "last_decision", "enrolled_since")


def _drop(con: duckdb.DuckDBPyConnection, *temp_tables: str) -> None:
    """Let go of temp tables no longer needed: the night's connection lives on, and DuckDB would hold them in
    its memory through the rest of the night (859 MB for the million findings of 2,000 participants)."""
    for name in temp_tables:
        con.execute(f"DROP TABLE IF EXISTS temp.{name}")


def known_issue_ids(con: duckdb.DuckDBPyConnection) -> frozenset[str]:
    """Every issue a decision may name: those of everything loaded so far (exports.md §E)."""
    compute(con, datetime.now())
    known = frozenset(row[0] for row in con.execute("SELECT issue_id FROM issues_now").fetchall())
    _drop(con, "issues_now", "file_times", "newest_file")
    return known


def update(con: duckdb.DuckDBPyConnection, run_id: int, run_time: datetime) -> None:
    """Recompute ops.data_issues and append to ops.data_issue_events what changed since the last run.

    The issues are a function of the files and the code. A night that took no file, with the settings and
    code of the last completed run, has nothing to recompute: only the open issues' ages move on. A night
    that took files but no enrollment or decision, on those settings and code, recomputes only the issues
    its files can change (`_scope`); any other night, everything."""
    if nothing_new(con, run_id):
        _age_open_issues(con, run_time)
        return
    scoped = _scoped(con, run_id)
    compute(con, run_time, run_id if scoped else None)
    tonight = f"SELECT file_id FROM ops.files WHERE run_id = {int(run_id)} AND status IN {LOADED}"
    con.execute(f"""
        INSERT INTO ops.data_issue_events
        SELECT issue_id, event, event_at, ?, file_id, decided_by, reason FROM (
            SELECT n.issue_id, 'OPENED' AS event, ?::TIMESTAMP AS event_at, n.first_seen_file_id AS file_id,
                   NULL AS decided_by, n.reason, 1 AS step
            FROM issues_now n WHERE n.issue_id NOT IN (SELECT issue_id FROM ops.data_issues)
            UNION ALL
            SELECT n.issue_id, 'SEEN_AGAIN', ?, n.last_seen_file_id, NULL, n.reason, 2
            FROM issues_now n JOIN ops.data_issues p USING (issue_id)
            WHERE n.times_seen > p.times_seen AND n.resolved_at IS NULL AND p.resolved_at IS NULL
            UNION ALL
            SELECT n.issue_id, 'REOPENED', ?, n.last_seen_file_id, NULL, n.reason, 2
            FROM issues_now n JOIN ops.data_issues p USING (issue_id)
            WHERE n.status <> 'RESOLVED' AND p.status = 'RESOLVED'
            UNION ALL
            SELECT n.issue_id, 'RESOLVED', ?, n.resolved_by_file_id, NULL, n.reason, 3
            FROM issues_now n LEFT JOIN ops.data_issues p USING (issue_id)
            WHERE n.status = 'RESOLVED' AND coalesce(p.status, '') <> 'RESOLVED'
            UNION ALL
            SELECT d.issue_id, CASE d.decision WHEN 'ACCEPT' THEN 'ACCEPTED' ELSE 'REOPENED' END, d.decided_at,
                   d.file_id, d.decided_by, d.reason, 4
            FROM {DM_DECISIONS.staging_table} d WHERE d.file_id IN ({tonight})
        ) ORDER BY step, event_at, issue_id, event
    """, [run_id, run_time, run_time, run_time, run_time])
    con.execute(f"DELETE FROM ops.data_issues d {'WHERE ' + _in_scope('d') if scoped else ''}")
    con.execute("INSERT INTO ops.data_issues BY NAME SELECT * FROM issues_now")
    if scoped:
        _age_open_issues(con, run_time)
    _drop(con, "issues_now", "file_times", "newest_file", "scope_keys", "scope_sources")


def _age_open_issues(con: duckdb.DuckDBPyConnection, run_time: datetime) -> None:
    """The open issues' ages move on with the run time; nothing else about an issue does."""
    con.execute(f"UPDATE ops.data_issues SET age_days = {_age_days('first_seen_at')} WHERE status = 'OPEN'",
                [run_time])


def _same_settings_and_code(con: duckdb.DuckDBPyConnection, run_id: int) -> bool:
    """This run has the settings and code of the last completed run (False when none completed)."""
    return con.execute("""
        SELECT coalesce((SELECT (config_hash, code_version) FROM ops.runs WHERE run_id = $run)
                        = (SELECT (config_hash, code_version) FROM ops.runs WHERE status = 'completed'
                           ORDER BY run_id DESC LIMIT 1), FALSE)""", {"run": run_id}).fetchall()[0][0]


def nothing_new(con: duckdb.DuckDBPyConnection, run_id: int) -> bool:
    """No file recorded by this run, and the last completed run had the same settings and code."""
    return (not con.execute("SELECT count(*) FROM ops.files WHERE run_id = ?", [run_id]).fetchall()[0][0]
            and _same_settings_and_code(con, run_id))


def _scoped(con: duckdb.DuckDBPyConnection, run_id: int) -> bool:
    """Whether `_scope` holds every issue this run can change: same settings and code as the last completed
    run, and no file of the enrollment (it moves held findings of any record: "enrolled since", held rows,
    the resolving file) or of the decisions (they name issues by id, which only the full recompute knows)."""
    return not con.execute("SELECT count(*) FROM ops.files WHERE run_id = ? AND source IN (?, ?)",
                           [run_id, EDC_ENROLLMENT.name, DM_DECISIONS.name]).fetchall()[0][0] \
        and _same_settings_and_code(con, run_id)


def open_issues(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Open issues, by source and check, oldest first: what the Data Docs index and the Prefect artifact show.
    (source, check_name, issue_id, participant_id, record_key, severity, first_seen_at, age_days, times_seen,
    reason, report_path of the latest file with the finding)."""
    return con.execute("""
        SELECT i.source, i.check_name, i.issue_id, i.participant_id, i.record_key, i.severity, i.first_seen_at,
               i.age_days, i.times_seen, i.reason, f.report_path
        FROM ops.data_issues i LEFT JOIN ops.files f ON f.file_id = i.last_seen_file_id
        WHERE i.status = 'OPEN'
        ORDER BY i.source, i.check_name, i.first_seen_at, i.issue_id""").fetchall()

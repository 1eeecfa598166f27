"""From everything loaded to the current state: versions, deletions, enrollment holds, core tables.

"Append, then derive" (design.md): staging holds every version of every record; which one is current is a
pure function of staging, so corrections, EDC deletions, late enrollments and any arrival order need no
special case (exports.md "Versions", "Order does not matter").
"""
from __future__ import annotations

import duckdb

from car22.intake.sources import EDC_ENROLLMENT, PARTICIPANT_SOURCES, Source
from car22.loading.load import (
    LOADED,
    column_comments,
    comment_columns,
    file_status,
    quote,
)
from car22.night import faults
from car22.sql import run_sql_file

CORE_MODELS = (
    "participants", "eligibility_assessments", "lab_results", "flow_samples", "qpcr_results",
    "treatments", "crs_assessments", "icans_assessments", "adverse_events", "disease_assessments",
)


def current_versions_sql(source: Source, only: str | None = None) -> str:
    """The winning version of each record identity, numbered, with `deleted` (staging.<source>_current rows).

    Versions are ordered by the source's rule (labs: RESULTED_AT then status C > F > P then export time;
    other sources: export time), ties broken by file id and line so the result never depends on arrival
    order. `version` counts content changes along that order (1 = the earliest version); a repeat of
    identical content in a later export is not a new version. `only` names a table of identities: the
    versions of those records only (an incremental night).

    The versions are ranked on their identity, order terms and content hash alone, and only the winners'
    whole rows are read back, by file and line: the three windows then sort a few narrow columns instead of
    every column of every lab row (bench/RESULTS.md, 2026-12-07 night).
    """
    identity = ", ".join(quote(c) for c in source.identity)
    terms = source.version_order + ("file_id", "row_number")
    named = ", ".join(f"{term} AS order_{i}" for i, term in enumerate(terms))
    order = ", ".join(f"order_{i}" for i in range(len(terms)))
    order_desc = ", ".join(f"order_{i} DESC" for i in range(len(terms)))
    rows = source.staging_table if only is None else (
        f"(SELECT * FROM {source.staging_table} s "
        f"WHERE EXISTS (SELECT 1 FROM {only} t WHERE {_same_record(source)}))")
    deleted = "FALSE"
    if source.snapshot:
        # exports.md §D: each export is a full snapshot; a record missing from the newest one was deleted.
        deleted = f"""NOT EXISTS (
            SELECT 1 FROM {source.raw_table} r
            WHERE r.file_id = (SELECT file_id FROM ops.files
                               WHERE source = '{source.name}' AND status IN {LOADED}
                               ORDER BY export_time DESC, file_id DESC LIMIT 1)
              AND trim(r.record_id) = v.participant_id
              AND coalesce(trim(r.redcap_event_name), '') = coalesce(v.event, '')
              AND TRY_CAST(trim(r.redcap_repeat_instance) AS INTEGER) IS NOT DISTINCT FROM v.instance)"""
    return f"""
    WITH ranked AS (
        SELECT {identity}, file_id AS version_file, row_number AS version_row, content_hash, {named}
        FROM {rows}
    ), changes AS (
        SELECT *, CASE WHEN lag(content_hash) OVER w IS DISTINCT FROM content_hash THEN 1 ELSE 0 END AS changed
        FROM ranked
        WINDOW w AS (PARTITION BY {identity} ORDER BY {order})
    ), numbered AS (
        SELECT *, CAST(sum(changed) OVER (PARTITION BY {identity} ORDER BY {order}
                                           ROWS UNBOUNDED PRECEDING) AS INTEGER) AS version
        FROM changes
    ), winners AS (
        SELECT version_file, version_row, version FROM numbered
        QUALIFY row_number() OVER (PARTITION BY {identity} ORDER BY {order_desc}) = 1
    )
    SELECT v.*, w.version, {deleted} AS deleted
    FROM {rows} v
    JOIN winners w ON v.file_id = w.version_file AND v.row_number = w.version_row
    """


def _same_record(source: Source) -> str:
    """SQL: staging row `s` is a version of the record identified by row `t` (NULL-safe on the identity)."""
    return " AND ".join(f"t.{quote(c)} IS NOT DISTINCT FROM s.{quote(c)}" for c in source.identity)


def build_current_versions(con: duckdb.DuckDBPyConnection) -> None:
    for source in PARTICIPANT_SOURCES:
        con.execute(f"CREATE OR REPLACE TABLE staging.{source.name}_current AS {current_versions_sql(source)}")
        _comment_current(con, source)


def _comment_current(con: duckdb.DuckDBPyConnection, source: Source) -> None:
    current = f"staging.{source.name}_current"
    con.execute(f"COMMENT ON TABLE {current} IS 'Current version of each {source.name} "
                f"record (recomputed from staging.{source.name} for the records each run touched); deleted = "
                f"missing from the newest EDC snapshot.'")
    comment_columns(con, [(current, column, text) for table, column, text in column_comments(source)
                          if table == source.staging_table] + [
        (current, "version", "Versions of the record along the version order up to this one (1 = the earliest "
                             "content; a repeat of identical content is not a new version)."),
        (current, "deleted", "TRUE when the record is missing from the newest EDC snapshot of its instrument.")])


def update_current_versions(con: duckdb.DuckDBPyConnection, run_id: int) -> None:
    """Recompute the current versions of the records tonight's files touched, and collect in the temp table
    `touched` every participant whose records may have changed (incremental night, car22.loading.incremental).

    A record's participants are those of all its versions (a correction may move a result to another
    participant). EDC snapshots are small and a new one can delete any record: they are recomputed whole and
    compared with the previous state.
    """
    con.execute("CREATE OR REPLACE TEMP TABLE touched (participant_id VARCHAR)")
    tonight = f"SELECT file_id FROM ops.files WHERE run_id = {int(run_id)} AND status IN {LOADED}"
    for source in PARTICIPANT_SOURCES:
        current = f"staging.{source.name}_current"
        identity = ", ".join(quote(c) for c in source.identity)
        if source.snapshot:  # whole rows compared: core also carries the file and version of a record
            con.execute(f"CREATE OR REPLACE TEMP TABLE snapshot_before AS SELECT * FROM {current}")
            con.execute(f"CREATE OR REPLACE TABLE {current} AS {current_versions_sql(source)}")
            _comment_current(con, source)
            con.execute(f"""INSERT INTO touched SELECT participant_id FROM (
                                (SELECT * FROM snapshot_before EXCEPT SELECT * FROM {current})
                                UNION ALL (SELECT * FROM {current} EXCEPT SELECT * FROM snapshot_before))""")
            continue
        con.execute(f"CREATE OR REPLACE TEMP TABLE touched_records AS SELECT DISTINCT {identity} "
                    f"FROM {source.staging_table} WHERE file_id IN ({tonight})")
        same_record = _same_record(source)
        con.execute(f"INSERT INTO touched SELECT DISTINCT s.participant_id FROM {source.staging_table} s "
                    f"WHERE EXISTS (SELECT 1 FROM touched_records t WHERE {same_record})")
        con.execute(f"DELETE FROM {current} s WHERE EXISTS (SELECT 1 FROM touched_records t WHERE {same_record})")
        con.execute(f"INSERT INTO {current} BY NAME {current_versions_sql(source, only='touched_records')}")
    con.execute("CREATE OR REPLACE TEMP TABLE touched AS SELECT DISTINCT participant_id FROM touched "
                "WHERE participant_id IS NOT NULL")


def build_core(con: duckdb.DuckDBPyConnection) -> None:
    """Refill every core table from the current versions, enrolled participants only."""
    for model in CORE_MODELS:
        run_sql_file(con, f"core/{model}.sql")


def hold_unenrolled(con: duckdb.DuckDBPyConnection, run_id: int) -> None:
    """Rows of participants not (or no longer) enrolled are held, and released once enrolled (exports.md).

    Held rows sit in ops.rejected_rows with severity 'held'; they are recomputed every run from staging,
    so an enrollment that arrives later releases them and their files' counts follow.
    """
    held = " UNION ALL ".join(
        f"SELECT s.file_id, s.row_number, s.participant_id, '{source.name}' AS source "
        f"FROM {source.staging_table} s "
        f"WHERE s.participant_id NOT IN (SELECT participant_id FROM core.participants)"
        for source in PARTICIPANT_SOURCES if source is not EDC_ENROLLMENT)
    con.execute(f"CREATE OR REPLACE TEMP TABLE held_now AS {held}")
    con.execute("""
        DELETE FROM ops.rejected_rows r
        WHERE r.severity = 'held'
          AND NOT EXISTS (SELECT 1 FROM held_now h WHERE h.file_id = r.file_id AND h.row_number = r.row_number)
    """)
    for source in PARTICIPANT_SOURCES:
        if source is EDC_ENROLLMENT:
            continue
        con.execute(f"""
            INSERT INTO ops.rejected_rows
            SELECT h.file_id, h.row_number,
                   to_json(r)::VARCHAR,
                   'participant_enrolled',
                   'participant ' || h.participant_id || ' is not enrolled in the EDC (yet): the row is held '
                   || 'and loads automatically once the enrollment is exported',
                   'held', ?
            FROM held_now h
            JOIN {source.raw_table} r ON r.file_id = h.file_id AND r.row_number = h.row_number
            WHERE h.source = '{source.name}'
              AND NOT EXISTS (SELECT 1 FROM ops.rejected_rows x
                              WHERE x.file_id = h.file_id AND x.row_number = h.row_number)
        """, [run_id])


def refresh_file_counts(con: duckdb.DuckDBPyConnection) -> None:
    """rows_loaded and status of every loaded file follow the held rows (rows_read never changes); the
    status by the same rule as at loading (car22.loading.load.file_status)."""
    counts = con.execute(f"""
        SELECT f.file_id, f.rows_read, count(r.file_id) AS rejected, list(DISTINCT r.severity) AS severities
        FROM ops.files f LEFT JOIN ops.rejected_rows r USING (file_id)
        WHERE f.status IN {LOADED} GROUP BY ALL""").fetchall()
    changed = []
    for file_id, rows_read, rejected, severities in counts:
        changed.append((rejected, rows_read - rejected,
                        file_status(rows_read - rejected, [s for s in severities if s is not None]), file_id))
    con.execute("CREATE OR REPLACE TEMP TABLE refreshed_counts (rows_rejected BIGINT, rows_loaded BIGINT, "
                "status VARCHAR, file_id VARCHAR)")
    if changed:
        con.executemany("INSERT INTO refreshed_counts VALUES (?, ?, ?, ?)", changed)
    con.execute("""
        UPDATE ops.files SET rows_rejected = c.rows_rejected, rows_loaded = c.rows_loaded, status = c.status
        FROM refreshed_counts c
        WHERE ops.files.file_id = c.file_id AND (ops.files.rows_rejected, ops.files.rows_loaded, ops.files.status)
              IS DISTINCT FROM (c.rows_rejected, c.rows_loaded, c.status)
    """)


def resolve(con: duckdb.DuckDBPyConnection, run_id: int) -> None:
    """Current versions, core tables, enrollment holds and file counts, in that order."""
    build_current_versions(con)
    faults.checkpoint("current versions")
    build_core(con)
    faults.checkpoint("core")
    hold_unenrolled(con, run_id)
    refresh_file_counts(con)

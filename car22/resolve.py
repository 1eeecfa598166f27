"""From everything loaded to the current state: versions, deletions, enrollment holds, core tables.

"Append, then derive" (design.md): staging holds every version of every record; which one is current is a
pure function of staging, so corrections, EDC deletions, late enrollments and any arrival order need no
special case (exports.md "Versions", "Order does not matter").
"""
from __future__ import annotations

import duckdb

from car22 import faults
from car22.ingest import quote
from car22.sources import EDC_ENROLLMENT, SOURCES, Source
from car22.sql import run_sql_file

CORE_MODELS = (
    "participants", "eligibility_assessments", "lab_results", "flow_samples", "qpcr_results",
    "treatments", "crs_assessments", "icans_assessments", "adverse_events", "disease_assessments",
)


def current_versions_sql(source: Source) -> str:
    """staging.<source>_current: the winning version of each record identity, numbered, with `deleted`.

    Versions are ordered by the source's rule (labs: RESULTED_AT then status C > F > P then export time;
    other sources: export time), ties broken by file id and line so the result never depends on arrival
    order. `version` counts content changes along that order (1 = the earliest version); a repeat of
    identical content in a later export is not a new version.
    """
    identity = ", ".join(quote(c) for c in source.identity)
    order = ", ".join(source.version_order + ("file_id", "row_number"))
    order_desc = ", ".join(f"{term} DESC" for term in source.version_order + ("file_id", "row_number"))
    deleted = "FALSE"
    if source.snapshot:
        # exports.md §D: each export is a full snapshot; a record missing from the newest one was deleted.
        deleted = f"""NOT EXISTS (
            SELECT 1 FROM {source.raw_table} r
            WHERE r.file_id = (SELECT file_id FROM ops.files
                               WHERE source = '{source.name}' AND status IN ('loaded', 'partially_loaded')
                               ORDER BY export_time DESC, file_id DESC LIMIT 1)
              AND trim(r.record_id) = v.participant_id
              AND coalesce(trim(r.redcap_event_name), '') = coalesce(v.event, '')
              AND TRY_CAST(trim(r.redcap_repeat_instance) AS INTEGER) IS NOT DISTINCT FROM v.instance)"""
    return f"""
    CREATE OR REPLACE TABLE staging.{source.name}_current AS
    WITH changes AS (
        SELECT *, CASE WHEN lag(content_hash) OVER w IS DISTINCT FROM content_hash THEN 1 ELSE 0 END AS changed
        FROM {source.staging_table}
        WINDOW w AS (PARTITION BY {identity} ORDER BY {order})
    ), numbered AS (
        SELECT * EXCLUDE (changed),
               CAST(sum(changed) OVER (PARTITION BY {identity} ORDER BY {order}
                                        ROWS UNBOUNDED PRECEDING) AS INTEGER) AS version
        FROM changes
    )
    SELECT v.*, {deleted} AS deleted
    FROM (SELECT * FROM numbered
          QUALIFY row_number() OVER (PARTITION BY {identity} ORDER BY {order_desc}) = 1) v
    """


def build_current_versions(con: duckdb.DuckDBPyConnection) -> None:
    for source in SOURCES:
        con.execute(current_versions_sql(source))
        con.execute(f"COMMENT ON TABLE staging.{source.name}_current IS 'Current version of each "
                    f"{source.name} record (rebuilt every run from staging.{source.name}); deleted = "
                    f"missing from the newest EDC snapshot.'")


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
        for source in SOURCES if source is not EDC_ENROLLMENT)
    con.execute(f"CREATE OR REPLACE TEMP TABLE held_now AS {held}")
    con.execute("""
        DELETE FROM ops.rejected_rows r
        WHERE r.severity = 'held'
          AND NOT EXISTS (SELECT 1 FROM held_now h WHERE h.file_id = r.file_id AND h.row_number = r.row_number)
    """)
    for source in SOURCES:
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
    """rows_loaded and status of every loaded file follow the held rows (rows_read never changes)."""
    con.execute("""
        UPDATE ops.files SET
            rows_rejected = coalesce((SELECT count(*) FROM ops.rejected_rows r
                                      WHERE r.file_id = ops.files.file_id), 0),
            rows_loaded = rows_read - coalesce((SELECT count(*) FROM ops.rejected_rows r
                                                WHERE r.file_id = ops.files.file_id), 0),
            status = CASE WHEN EXISTS (SELECT 1 FROM ops.rejected_rows r
                                       WHERE r.file_id = ops.files.file_id AND r.severity <> 'skip')
                          THEN 'partially_loaded' ELSE 'loaded' END
        WHERE status IN ('loaded', 'partially_loaded')
    """)


def resolve(con: duckdb.DuckDBPyConnection, run_id: int) -> None:
    """Current versions, core tables, enrollment holds and file counts, in that order."""
    build_current_versions(con)
    faults.checkpoint("current versions")
    build_core(con)
    faults.checkpoint("core")
    hold_unenrolled(con, run_id)
    refresh_file_counts(con)

"""The run summary, read back from ops tables (design.md: what a monitor sees comes from tables)."""
from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from car22.reports.clinical_events import Tonight, format_tonight, new_tonight
from car22.sql import table_exists


@dataclass(frozen=True)
class RunSummary:
    run_id: int
    status: str
    files_seen: int
    files_loaded: int
    files_partial: int
    files_duplicate: int
    files_quarantined: int
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    rows_held: int
    quarantined: list[tuple[str, str]]
    rejections_by_check: list[tuple[str, str, int]]
    endpoints: list[tuple[str, float | None, float | None, float | None, int | None, str | None]]
    new_events: Tonight
    files_rejected: int = 0
    # Files of the run a data manager must act on: (file name, status, what is wrong).
    needs_action: tuple[tuple[str, str, str], ...] = ()
    # ops.data_issues by status after the run.
    issues: tuple[tuple[str, int], ...] = ()


# The counts of every file, one query for every place that shows them (ops.files, the Data Docs page and
# index, the Prefect log line, the run summary): rows_rejected split by why the rows did not load.
FILE_COUNTS = """
    SELECT f.file_id, f.file_name, f.source, f.status, f.received_at, f.run_id, f.rows_read, f.rows_loaded,
           f.rows_rejected, f.reason, f.report_path,
           count(r.file_id) FILTER (WHERE r.severity = 'blocking') AS rows_blocking,
           count(r.file_id) FILTER (WHERE r.severity = 'skip') AS rows_skipped,
           count(r.file_id) FILTER (WHERE r.severity = 'held') AS rows_held
    FROM ops.files f LEFT JOIN ops.rejected_rows r USING (file_id)
    WHERE f.run_id = coalesce(?, f.run_id)
    GROUP BY ALL ORDER BY f.received_at, f.file_id"""


def file_counts(con: duckdb.DuckDBPyConnection, run_id: int | None = None) -> pd.DataFrame:
    """Every file (or the run's) with its counts as ops.files has them and the split of the rejected rows."""
    return con.execute(FILE_COUNTS, [run_id]).df()


def rejected_split(blocking: int, skipped: int, held: int) -> str:
    """Why a file's rows did not load, in words ('' when all loaded)."""
    return ", ".join(f"{n} {what}" for n, what in ((blocking, "rejected by a blocking check"),
                                                    (skipped, "skipped: not a sample (controls, Mean/SD)"),
                                                    (held, "held: participant not enrolled yet")) if n)


def counts_text(rows_read: int, rows_loaded: int, rows_rejected: int, blocking: int, skipped: int,
                held: int) -> str:
    """The counts of a file in words, the same wherever they are shown."""
    split = rejected_split(blocking, skipped, held)
    return f"{rows_read} rows read, {rows_loaded} loaded, {rows_rejected} not loaded" + (f" ({split})" if split else "")


def file_lines(con: duckdb.DuckDBPyConnection, run_id: int) -> list[str]:
    """One line per file of the run: its status and counts (the Prefect log)."""
    lines = []
    for f in file_counts(con, run_id).itertuples(index=False):
        if f.status in ("quarantined", "duplicate"):
            lines.append(f"{f.file_name}: {f.status} ({f.source or '-'}): {f.reason}")
        else:
            lines.append(f"{f.file_name}: {f.status} ({f.source}), " + counts_text(
                f.rows_read, f.rows_loaded, f.rows_rejected, f.rows_blocking, f.rows_skipped, f.rows_held))
    return lines


def run_summary(con: duckdb.DuckDBPyConnection, run_id: int) -> RunSummary:
    """Files and rows of one run; rejection counts by check over this run's files."""
    files = con.execute("""
        SELECT count(*),
               count(*) FILTER (WHERE status = 'loaded'),
               count(*) FILTER (WHERE status = 'partially_loaded'),
               count(*) FILTER (WHERE status = 'duplicate'),
               count(*) FILTER (WHERE status = 'quarantined'),
               coalesce(sum(rows_read), 0), coalesce(sum(rows_loaded), 0), coalesce(sum(rows_rejected), 0),
               count(*) FILTER (WHERE status = 'rejected')
        FROM ops.files WHERE run_id = ?""", [run_id]).fetchall()[0]
    held = con.execute("""
        SELECT count(*) FROM ops.rejected_rows r JOIN ops.files f USING (file_id)
        WHERE f.run_id = ? AND r.severity = 'held'""", [run_id]).fetchall()[0][0]
    status = con.execute("SELECT status FROM ops.runs WHERE run_id = ?", [run_id]).fetchall()[0][0]
    quarantined = con.execute("SELECT file_name, reason FROM ops.files WHERE run_id = ? AND status = 'quarantined' "
                              "ORDER BY file_name", [run_id]).fetchall()
    by_check = con.execute("""
        SELECT r.severity, r.check_name, count(*) AS n
        FROM ops.rejected_rows r JOIN ops.files f USING (file_id)
        WHERE f.run_id = ? GROUP BY ALL ORDER BY n DESC, r.check_name""", [run_id]).fetchall()
    endpoints = con.execute("""
        SELECT analysis, estimate, ci_lower, ci_upper, n_at_risk, null_reason FROM mart.endpoints
        WHERE endpoint = 'RFS_1Y' ORDER BY analysis""").fetchall() if table_exists(con, "mart", "endpoints") else []
    events = new_tonight(con, run_id) if table_exists(con, "ops", "clinical_events") else Tonight([], [])
    action = tuple(
        (f.file_name, f.status, f.reason if f.status == "quarantined" else counts_text(
            f.rows_read, f.rows_loaded, f.rows_rejected, f.rows_blocking, f.rows_skipped, f.rows_held))
        for f in file_counts(con, run_id).itertuples(index=False)
        if f.status == "quarantined" or f.rows_blocking or f.rows_held)
    issues = tuple(con.execute("SELECT status, count(*) FROM ops.data_issues GROUP BY ALL ORDER BY 1").fetchall()
                   ) if table_exists(con, "ops", "data_issues") else ()
    return RunSummary(run_id, status, files[0], files[1], files[2], files[3], files[4], int(files[5]),
                      int(files[6]), int(files[7]), held, quarantined, by_check, endpoints, events,
                      files_rejected=files[8], needs_action=action, issues=issues)


def format_summary(summary: RunSummary) -> str:
    """Plain text for the terminal: what came in and what happened to it."""
    lines = [
        f"Run {summary.run_id}: {summary.status}",
        f"  files: {summary.files_seen} seen, {summary.files_loaded} loaded, {summary.files_partial} partially "
        f"loaded, {summary.files_rejected} rejected, {summary.files_duplicate} duplicate, "
        f"{summary.files_quarantined} quarantined",
        f"  rows:  {summary.rows_read} read = {summary.rows_loaded} loaded + {summary.rows_rejected} rejected "
        f"(of which {summary.rows_held} held until the participant is enrolled)",
    ]
    if summary.needs_action:
        lines.append(f"  files that need action: {len(summary.needs_action)}")
    for name, status, detail in summary.needs_action:
        lines.append(f"    {name}: {status}: {detail}")
    for severity, check, count in summary.rejections_by_check:
        lines.append(f"  {count:>6} rows {severity:<8} {check}")
    for analysis, estimate, low, high, at_risk, reason in summary.endpoints:
        value = "NULL" if estimate is None else f"{estimate:.3f}"
        interval = f" (95% CI {low:.3f}-{high:.3f})" if low is not None and high is not None else ""
        lines.append(f"  1-year RFS, {analysis}: {value}{interval}, {at_risk} at risk at day 365"
                     + (f" [{reason}]" if reason else ""))
    if summary.issues:
        lines.append("  data issues: " + ", ".join(f"{n} {status.lower()}" for status, n in summary.issues)
                     + " (`car22 data-issues` lists the open ones)")
    if summary.new_events:
        lines.append(f"  new clinical events tonight: {len(summary.new_events)}, most serious first")
        lines += [f"    {line}" for line in format_tonight(summary.new_events, shown=15)]
    return "\n".join(lines)

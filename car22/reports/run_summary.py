"""The run summary, read back from ops tables (design.md: what a monitor sees comes from tables)."""
from __future__ import annotations

from dataclasses import dataclass

import duckdb

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


def run_summary(con: duckdb.DuckDBPyConnection, run_id: int) -> RunSummary:
    """Files and rows of one run; rejection counts by check over this run's files."""
    files = con.execute("""
        SELECT count(*),
               count(*) FILTER (WHERE status = 'loaded'),
               count(*) FILTER (WHERE status = 'partially_loaded'),
               count(*) FILTER (WHERE status = 'duplicate'),
               count(*) FILTER (WHERE status = 'quarantined'),
               coalesce(sum(rows_read), 0), coalesce(sum(rows_loaded), 0), coalesce(sum(rows_rejected), 0)
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
    return RunSummary(run_id, status, files[0], files[1], files[2], files[3], files[4], int(files[5]),
                      int(files[6]), int(files[7]), held, quarantined, by_check, endpoints, events)


def format_summary(summary: RunSummary) -> str:
    """Plain text for the terminal: what came in and what happened to it."""
    lines = [
        f"Run {summary.run_id}: {summary.status}",
        f"  files: {summary.files_seen} seen, {summary.files_loaded} loaded, {summary.files_partial} partially "
        f"loaded, {summary.files_duplicate} duplicate, {summary.files_quarantined} quarantined",
        f"  rows:  {summary.rows_read} read = {summary.rows_loaded} loaded + {summary.rows_rejected} rejected "
        f"(of which {summary.rows_held} held until the participant is enrolled)",
    ]
    for name, reason in summary.quarantined:
        lines.append(f"  quarantined {name}: {reason}")
    for severity, check, count in summary.rejections_by_check:
        lines.append(f"  {count:>6} rows {severity:<8} {check}")
    for analysis, estimate, low, high, at_risk, reason in summary.endpoints:
        value = "NULL" if estimate is None else f"{estimate:.3f}"
        interval = f" (95% CI {low:.3f}-{high:.3f})" if low is not None and high is not None else ""
        lines.append(f"  1-year RFS, {analysis}: {value}{interval}, {at_risk} at risk at day 365"
                     + (f" [{reason}]" if reason else ""))
    if summary.new_events:
        lines.append(f"  new clinical events tonight: {len(summary.new_events)}, most serious first")
        lines += [f"    {line}" for line in format_tonight(summary.new_events, shown=15)]
    return "\n".join(lines)

"""What monitors read after a run, rendered from ops tables: the run's markdown summary and file table."""
from __future__ import annotations

import duckdb

from car22.reports.clinical_events import CYTOPENIA_TABLE, format_tonight
from car22.reports.data_issues import list_issues
from car22.reports.run_summary import format_summary, run_summary

ISSUES_IN_ARTIFACT = 500


def files_table(con: duckdb.DuckDBPyConnection, run_id: int) -> list[dict]:
    """One row per file received by the run: its fate and row counts."""
    frame = con.execute("""
        SELECT file_name, coalesce(source, '') AS source, status, rows_read, rows_loaded, rows_rejected,
               coalesce(reason, '') AS reason
        FROM ops.files WHERE run_id = ? ORDER BY file_name""", [run_id]).df()
    return frame.to_dict(orient="records")


def open_issues_table(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """The open data issues, by source and check, oldest first (the first 500; `car22 data-issues` has all)."""
    return [{k: "" if v is None else str(v) if not isinstance(v, int) else v for k, v in issue.items()}
            for issue in list_issues(con, status="open")[:ISSUES_IN_ARTIFACT]]


def failures_by_expectation(con: duckdb.DuckDBPyConnection, run_id: int) -> list[tuple]:
    return con.execute("""
        SELECT suite, expectation, severity, count(*) AS files, sum(unexpected_count) AS rows
        FROM ops.validation_results WHERE run_id = ? AND NOT success
        GROUP BY ALL ORDER BY severity, rows DESC, suite, expectation""", [run_id]).fetchall()


def markdown_summary(con: duckdb.DuckDBPyConnection, run_id: int, report_uri: str | None = None) -> str:
    """The run in markdown: files and rows, failed expectations, what changed clinically tonight (the expected
    cytopenias linked to their table in the trial report at `report_uri`)."""
    summary = run_summary(con, run_id)
    lines = [f"# car22 run {run_id}", "", "```", format_summary(summary), "```", "",
             "## Failed expectations", ""]
    failures = failures_by_expectation(con, run_id)
    if failures:
        lines += ["| suite | expectation | severity | files | rows |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {s} | {e} | {sev} | {f} | {r} |" for s, e, sev, f, r in failures]
    else:
        lines.append("None: every row of every new file met every expectation.")
    lines += ["", "## New clinical events tonight", ""]
    table = f"[{CYTOPENIA_TABLE}]({report_uri}#cytopenias)" if report_uri else CYTOPENIA_TABLE
    lines += [f"- {line}" for line in format_tonight(summary.new_events, table=table)] or ["None."]
    return "\n".join(lines) + "\n"

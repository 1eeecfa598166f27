"""Data Docs: one static page per validated file and an index of every file received, for monitors and
data managers (docs/validation.md). Our own HTML rendered from the GX results and ops.files: GX's site
renderer is heavier and not needed offline."""
from __future__ import annotations

import html
import os
import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from car22.night.storage import write_whole
from car22.validation.checks.fields import BLOCKING, WARNING

if TYPE_CHECKING:
    from car22.validation.runner import ExpectationOutcome, RowFinding

DATA_DOCS = "data_docs"
EXAMPLES = 10


def _describe(e: dict[str, Any], parameters: dict[str, Any]) -> str:
    """The rule of an expectation in a line, parameters filled in (the enrolled set by its size)."""
    kwargs = e["kwargs"]

    def value(v: Any) -> str:
        if isinstance(v, dict) and "$PARAMETER" in v:
            resolved = parameters[v["$PARAMETER"]]
            return f"{len(resolved)} enrolled participants" if isinstance(resolved, list) else show(resolved, False)
        return ", ".join(map(str, v)) if isinstance(v, list) else show(v, False)

    column = kwargs.get("column")
    rule = {
        "expect_column_values_to_not_be_null": lambda: f"{column} is not empty and parses",
        "expect_column_values_to_match_regex": lambda: f"{column} matches {value(kwargs['regex'])}",
        "expect_column_values_to_not_match_regex": lambda: f"{column} does not match {value(kwargs['regex'])}",
        "expect_column_values_to_be_in_set": lambda: f"{column} in {{{value(kwargs['value_set'])}}}",
        "expect_column_values_to_be_between": lambda: " ≤ ".join(
            p for p in (value(kwargs["min_value"]) if kwargs.get("min_value") is not None else "",
                        column, value(kwargs["max_value"]) if kwargs.get("max_value") is not None else "") if p),
        "expect_column_pair_values_a_to_be_greater_than_b": lambda: f"{kwargs['column_A']} ≥ {kwargs['column_B']}",
        "expect_compound_columns_to_be_unique": lambda: f"({', '.join(kwargs['column_list'])}) unique in the file",
        "expect_column_values_to_be_unique": lambda: f"{column} unique in the file",
    }[e["type"]]()
    if condition := kwargs.get("row_condition"):
        rule += f", on rows where {_condition_text(condition)}"
    return rule


def _condition_text(c: dict[str, Any]) -> str:
    if c["type"] in ("and", "or"):
        return f" {c['type']} ".join(_condition_text(x) for x in c["conditions"])
    if c["type"] == "nullity":
        return f"{c['column']['name']} is {'empty' if c['is_null'] else 'not empty'}"
    parameter = c["parameter"]
    return f"{c['column']['name']} {c['operator']} {repr(parameter) if isinstance(parameter, str) else parameter}"


_STYLE = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f0f0f0}td.n{text-align:right}
tr.failed td,tr.quarantined td{background:#fde2e2}tr.warning td,tr.partially_loaded td{background:#fff4d6}
tr.duplicate td{color:#777}code{background:#f4f4f4}ul{margin:0;padding-left:1.2em}.summary{font-weight:600}"""


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}</body></html>\n")




def show(value: Any, quoted: bool) -> str:
    """A value as a reason shows it: raw text quoted, numbers and dates plain, missing as (empty)."""
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value):
        return "(empty)"
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.strftime("%Y-%m-%d %H:%M" if (value.hour, value.minute) != (0, 0) else "%Y-%m-%d")
    if isinstance(value, str):
        return f"'{value}'" if quoted else value
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


class DataDocs:
    """The Data Docs folder under the reports folder."""

    def __init__(self, reports_dir: Path):
        self.pages = reports_dir / DATA_DOCS
        self.pages.mkdir(parents=True, exist_ok=True)

    def write_page(self, suite: str, checks: dict[str, dict[str, Any]], file_id: str, file_name: str,
                   export_time: datetime | None, run_time: datetime, rows: int, outcomes: list[ExpectationOutcome], findings: list[RowFinding],
                    parameters: dict[str, Any]) -> str:
        """One static page per validated file: every expectation, its rule, severity, result and examples."""
        by_check: dict[str, list[RowFinding]] = {}
        for finding in findings:
            by_check.setdefault(finding.check_name, []).append(finding)
        lines = []
        for o in outcomes:
            shown = by_check.get(o.expectation, [])[:EXAMPLES]
            examples = "".join(f"<li>line {f.row_number}: {html.escape(f.reason)}</li>" for f in shown)
            more = o.unexpected_count - len(shown)
            if more > 0:
                examples += f"<li>… and {more} more rows</li>"
            state = "passed" if o.success else ("failed" if o.severity == BLOCKING else "warning")
            lines.append(
                f"<tr class='{state}'><td><code>{html.escape(o.expectation)}</code></td><td>{o.severity}</td>"
                f"<td>{html.escape(_describe(checks[o.expectation], parameters))}</td>"
                f"<td>{state}</td><td class='n'>{o.unexpected_count}</td>"
                f"<td>{f'<ul>{examples}</ul>' if examples else ''}</td></tr>")
        rejected = len({f.row_number for f in findings if f.severity == BLOCKING})
        failed = Counter(o.severity for o in outcomes if not o.success)
        body = (
            f"<p><a href='index.html'>← all files</a></p><h1>{html.escape(file_name)}</h1>"
            f"<p>Source <b>{html.escape(suite)}</b> · suite <code>expectations/{html.escape(suite)}.json"
            f"</code> · file id <code>{html.escape(file_id)}</code> · exported "
            f"{html.escape(show(export_time, False) if export_time else 'unknown (run time used)')} · validated "
            f"{html.escape(show(run_time, False))}</p>"
            f"<p class='summary'>{rows} rows validated · {len(outcomes)} expectations · "
            f"{failed[BLOCKING]} blocking not met ({rejected} rows rejected) · {failed[WARNING]} warnings</p>"
            "<table><tr><th>check</th><th>severity</th><th>rule</th><th>result</th><th>rows</th>"
            f"<th>examples (line in the file)</th></tr>{''.join(lines)}</table>")
        name = re.sub(r"[^A-Za-z0-9._-]", "_", file_id) + ".html"
        write_whole(self.pages / name, _page(f"Validation of {file_name}", body).encode("utf-8"))
        return f"{DATA_DOCS}/{name}"

    def write_index(self, files: pd.DataFrame) -> Path:
        """Rebuild the Data Docs index from ops data: `files` has file_id, file_name, source, status, received_at,
        run_id, rows_read, rows_loaded, rows_rejected, reason, report_path (one row per file ever received).
        Returns the index path."""
        rows = []
        ordered = files.sort_values(["received_at", "file_name", "file_id"], ascending=[False, True, True])
        for f in ordered.itertuples(index=False):
            name = html.escape(str(f.file_name))
            if isinstance(f.report_path, str) and f.report_path:
                target = os.path.relpath(self.pages.parent / f.report_path, self.pages)
                name = f"<a href='{html.escape(Path(target).as_posix())}'>{name}</a>"
            cells = [name] + [html.escape(show(v, False)) if v is not None and not pd.isna(v) else "" for v in (
                f.source, f.status, f.received_at, f.run_id, f.rows_read, f.rows_loaded, f.rows_rejected, f.reason)]
            rows.append(f"<tr class='{html.escape(str(f.status))}'>" + "".join(
                f"<td{' class=n' if 5 <= i <= 7 else ''}>{c}</td>" for i, c in enumerate(cells)) + "</tr>")
        counts = ", ".join(f"{n} {html.escape(str(s))}" for s, n in sorted(Counter(files["status"]).items()))
        body = ("<h1>car22 Data Docs: the validation of every export</h1>"
                f"<p class='summary'>{len(files)} files received: {counts or 'none yet'}. A file name links to its "
                "validation page; duplicates and quarantined files were never validated.</p>"
                "<table><tr><th>file</th><th>source</th><th>status</th><th>received</th><th>run</th>"
                "<th>rows read</th><th>loaded</th><th>rejected</th><th>reason</th></tr>"
                f"{''.join(rows)}</table>")
        index = self.pages / "index.html"
        write_whole(index, _page("car22 Data Docs", body).encode("utf-8"))
        return index

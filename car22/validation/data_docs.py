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
from car22.reports.run_summary import counts_text, rejected_split
from car22.validation.checks.fields import BLOCKING, WARNING

if TYPE_CHECKING:
    from car22.validation.runner import ExpectationOutcome, RowFinding

DATA_DOCS = "data_docs"
EXAMPLES = 10
ISSUES_SHOWN = 200
# The page's counts, rewritten from ops.files whenever they change (car22.reports.run_summary.FILE_COUNTS).
COUNTS_START, COUNTS_END = "<div id='counts'>", "</div>"


def _split(f: Any) -> str:
    return rejected_split(f.rows_blocking, f.rows_skipped, f.rows_held)


def _counts(f: Any) -> str:
    return counts_text(f.rows_read, f.rows_loaded, f.rows_rejected, f.rows_blocking, f.rows_skipped, f.rows_held)


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
tr.failed td,tr.quarantined td{background:#fde2e2}tr.warning td,tr.partially_loaded td{background:#fff4d6}tr.rejected td{background:#fde2e2}
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
        failed = Counter(o.severity for o in outcomes if not o.success)
        body = (
            f"<p><a href='index.html'>← all files</a></p><h1>{html.escape(file_name)}</h1>"
            f"<p>Source <b>{html.escape(suite)}</b> · suite <code>expectations/{html.escape(suite)}.json"
            f"</code> · file id <code>{html.escape(file_id)}</code> · exported "
            f"{html.escape(show(export_time, False) if export_time else 'unknown (run time used)')} · validated "
            f"{html.escape(show(run_time, False))}</p>"
            f"{COUNTS_START}{COUNTS_END}"
            f"<p>{rows} rows validated (controls, summary rows and malformed lines are not) · "
            f"{len(outcomes)} expectations · {failed[BLOCKING]} blocking not met · {failed[WARNING]} warnings</p>"
            "<table><tr><th>check</th><th>severity</th><th>rule</th><th>result</th><th>rows</th>"
            f"<th>examples (line in the file)</th></tr>{''.join(lines)}</table>")
        name = re.sub(r"[^A-Za-z0-9._-]", "_", file_id) + ".html"
        write_whole(self.pages / name, _page(f"Validation of {file_name}", body).encode("utf-8"))
        return f"{DATA_DOCS}/{name}"

    def _link(self, report_path: Any, text: str) -> str:
        if not isinstance(report_path, str) or not report_path:
            return text
        target = os.path.relpath(self.pages.parent / report_path, self.pages)
        return f"<a href='{html.escape(Path(target).as_posix())}'>{text}</a>"

    def write_counts(self, f: Any) -> None:
        """The file's counts on its page, as ops.files has them now (held rows are released later)."""
        page = self.pages.parent / f.report_path
        if not page.is_file():
            return
        text = page.read_text(encoding="utf-8")
        block = (f"{COUNTS_START}<p class='summary'>{html.escape(_counts(f))}</p>{COUNTS_END}")
        start = text.find(COUNTS_START)
        end = text.find(COUNTS_END, start)
        if start < 0 or end < 0 or text[start:end + len(COUNTS_END)] == block:
            return
        write_whole(page, (text[:start] + block + text[end + len(COUNTS_END):]).encode("utf-8"))

    def write_index(self, files: pd.DataFrame, issues: list[tuple] | tuple = ()) -> Path:
        """Rebuild the Data Docs index from ops data and bring every page's counts up to date.

        `files`: one row per file ever received, as car22.reports.run_summary.file_counts gives it (ops.files
        and the split of the rejected rows). `issues`: the open data issues, by source and check, oldest first
        (car22.loading.data_issues.open_issues). Returns the index path."""
        rows = []
        ordered = files.sort_values(["received_at", "file_name", "file_id"], ascending=[False, True, True])
        for f in ordered.itertuples(index=False):
            if isinstance(f.report_path, str) and f.report_path:
                self.write_counts(f)
            name = self._link(f.report_path, html.escape(str(f.file_name)))
            cells = [name] + [html.escape(show(v, False)) if v is not None and not pd.isna(v) else "" for v in (
                f.source, f.status, f.received_at, f.run_id, f.rows_read, f.rows_loaded, f.rows_rejected)]
            why = f.reason if isinstance(f.reason, str) else (_split(f) if f.rows_rejected else "")
            cells.append(html.escape(why))
            rows.append(f"<tr class='{html.escape(str(f.status))}'>" + "".join(
                f"<td{' class=n' if 5 <= i <= 7 else ''}>{c}</td>" for i, c in enumerate(cells)) + "</tr>")
        counts = ", ".join(f"{n} {html.escape(str(s))}" for s, n in sorted(Counter(files["status"]).items()))
        body = ("<h1>car22 Data Docs: the validation of every export</h1>" + self._issues(issues) +
                "<h2>Files</h2>"
                f"<p class='summary'>{len(files)} files received: {counts or 'none yet'}. A file name links to its "
                "validation page; duplicates and quarantined files were never validated.</p>"
                "<table><tr><th>file</th><th>source</th><th>status</th><th>received</th><th>run</th>"
                "<th>rows read</th><th>loaded</th><th>not loaded</th><th>reason</th></tr>"
                f"{''.join(rows)}</table>")
        index = self.pages / "index.html"
        write_whole(index, _page("car22 Data Docs", body).encode("utf-8"))
        return index

    def _issues(self, issues: list[tuple] | tuple) -> str:
        """The open data issues first: a count per source and check, then each issue, oldest first."""
        if not issues:
            return "<h2>Open data issues</h2><p class='summary'>None open.</p>"
        groups = Counter((i[0], i[1]) for i in issues)
        oldest = {}
        for i in issues:
            oldest.setdefault((i[0], i[1]), i[6])
        summary = "".join(f"<tr><td>{html.escape(s)}</td><td><code>{html.escape(c)}</code></td><td class=n>{n}</td>"
                          f"<td>{html.escape(show(oldest[(s, c)], False))}</td></tr>"
                          for (s, c), n in groups.items())
        shown = sorted(issues, key=lambda i: (i[0], i[1], i[6], i[2]))[:ISSUES_SHOWN]
        detail = "".join(
            "<tr class='warning'>" + "".join(f"<td>{c}</td>" for c in (
                html.escape(source), f"<code>{html.escape(check)}</code>",
                self._link(report, f"<code>{html.escape(issue_id)}</code>"), html.escape(participant or ""),
                html.escape(record), html.escape(severity), html.escape(show(first, False)),
                "" if age is None or pd.isna(age) else str(int(age)), str(seen), html.escape(reason or ""))) + "</tr>"
            for source, check, issue_id, participant, record, severity, first, age, seen, reason, report in shown)
        more = (f"<p>The first {ISSUES_SHOWN} of {len(issues)} are listed: `car22 data-issues` lists them all.</p>"
                if len(issues) > ISSUES_SHOWN else "")
        return ("<h2>Open data issues</h2>"
                f"<p class='summary'>{len(issues)} open, by source and check, oldest first. An issue closes when a "
                "corrected export loads, or by a data manager's decision (`car22 data-issues --decide`).</p>"
                "<table><tr><th>source</th><th>check</th><th>open</th><th>oldest</th></tr>"
                f"{summary}</table><p></p>"
                "<table><tr><th>source</th><th>check</th><th>issue (the row's page)</th><th>participant</th>"
                "<th>record</th><th>severity</th><th>first seen</th><th>age (days)</th><th>files</th>"
                f"<th>reason</th></tr>{detail}</table>{more}")

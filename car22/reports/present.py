"""How the monitors' pages write things (issue 18: a report that cannot mislead): numbers as people read
them, words instead of codes (the code in a tooltip), tables that fit a narrow window, one shared style.
Used by the trial report and the participant profiles; no script, no external request."""
from __future__ import annotations

import html
import re
from datetime import date, datetime

import numpy as np
import pandas as pd

# Codes of the warehouse as words; a code not listed reads as its words in lower case. The code itself
# stays in the cell's tooltip (title), so a reader can still find it in the warehouse.
WORDS = {
    # mart.mrd_assessments.mrd_status (derivations §2)
    "NEGATIVE": "negative", "POSITIVE": "positive (≥ 0.01 %)", "POSITIVE_LOW": "positive, below 0.01 %",
    "POSITIVE_NOT_QUANTIFIABLE": "positive, not quantifiable",
    "NEGATIVE_INSUFFICIENT_SENSITIVITY": "negative, sensitivity too low", "NOT_EVALUABLE": "not evaluable",
    # mart.eligibility.result and criterion (derivations §6.1)
    "MET": "met", "NOT_MET": "not met", "NOT_ASSESSABLE": "cannot be assessed",
    "AGE": "age", "CD19_CAR_INTERVAL": "CD19 CAR to lymphodepletion interval", "SCREENING_MRD": "screening MRD",
    "TBILI": "total bilirubin", "AST": "AST", "ALT": "ALT", "CREATININE": "creatinine or clearance",
    "CARDIAC": "cardiac function (LVEF or FS)", "SPO2": "oxygen saturation",
    # mart.ld_dosing.flag (derivations §6.2)
    "OK": "within tolerance", "UNKNOWN_DAY": "no date", "WRONG_DAY": "on a day not in the schedule",
    "EXTRA_DOSE": "extra dose on a scheduled day", "DOSE_OUT_OF_RANGE": "dose outside tolerance",
    "MISSING_DOSE": "scheduled dose missing",
    # ops.files.status, ops.rejected_rows.severity
    "loaded": "loaded", "partially_loaded": "partly loaded", "duplicate": "duplicate (nothing loaded)",
    "quarantined": "quarantined (not read)", "blocking": "rejected", "held": "held until enrolled",
    "skip": "skipped (not a sample)", "warning": "warning",
    # sources (ops.files.source)
    "labs": "clinical lab", "flow_mrd": "flow cytometry, MRD", "flow_car": "flow cytometry, CAR panel",
    "qpcr": "qPCR (CAR transgene)", "flow_abs": "flow, CAR+ cells/µL", "flow_pct": "flow, CAR+ % of T cells",
    # analyses and targets
    "primary": "primary (censored at next therapy)", "sensitivity": "sensitivity (next therapy ignored)",
    "CD22CAR": "CD22 CAR (study product)", "CD19CAR": "CD19 CAR (prior product)",
}


class Html(str):
    """Text that is already HTML: a table cell shows it as is."""


def words(code: object) -> str:
    """The words for a code (plain text)."""
    text = str(code)
    if text in WORDS:
        return WORDS[text]
    if text.startswith("edc_"):
        return "EDC " + text[4:].replace("_", " ")
    return text.replace("_", " ").lower() if text.isupper() or "_" in text else text


def coded(code: object) -> Html:
    """Words with the code in a tooltip; a missing code stays empty."""
    if code is None or (not isinstance(code, str) and pd.isna(code)):
        return Html("")
    return Html(f"<span title='{html.escape(str(code))}'>{html.escape(words(code))}</span>")


_CODE = re.compile(r"\b(?:[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|POSITIVE|NEGATIVE)\b")


def prose(text: str) -> Html:
    """A sentence written by the warehouse (e.g. a clinical event's detail) with its codes as words, each
    code in a tooltip."""
    return Html(_CODE.sub(lambda m: coded(m.group(0)), html.escape(text)))


def number(value: object) -> str:
    """Integers as integers with thousands separators; other numbers to 3 significant digits (no 1e+03)."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    value = float(value)  # type: ignore[arg-type]
    if value.is_integer():
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def percent(value: object, digits: int = 0) -> str:
    """A percentage (already in percent) with its sign; empty when missing."""
    if value is None or pd.isna(value):
        return ""
    return f"{round(float(value), digits) or 0.0:.{digits}f}\u00a0%"  # no "-0.0 %"; the sign stays with its number


def unit(text: object) -> str:
    """A warehouse unit (ASCII: cells/uL, copies/ug gDNA) as printed: cells/µL, copies/µg gDNA."""
    return "" if text is None or pd.isna(text) else str(text).replace("uL", "µL").replace("ug", "µg")


def moment(value: object) -> str:
    """Timestamps to the minute, dates as dates."""
    if isinstance(value, (datetime, pd.Timestamp)):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def cell(value: object) -> str:
    """One table cell as HTML (plain text, the commonest, first: thousands of profile pages)."""
    if type(value) is str:
        return html.escape(value)
    if isinstance(value, Html):
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        return html.escape(", ".join(str(v) for v in value))
    if value is None or (not isinstance(value, (str, bytes)) and pd.isna(value)):
        return ""
    if isinstance(value, (datetime, date, pd.Timestamp)):
        return html.escape(moment(value))
    if isinstance(value, (int, float, np.integer, np.floating, bool, np.bool_)):
        return number(value)
    return html.escape(str(value))


def table(frame: pd.DataFrame, empty: str = "None.", rows: int | None = None, source: str | None = None) -> str:
    """An HTML table of a frame (see `grid`): the first `rows` rows, saying where the rest are."""
    if frame.empty:
        return grid([], [], empty)
    shown = frame if rows is None else frame.head(rows)
    more = (f"<p class='meta'>First {rows} of {len(frame):,} rows; all of them are in "
            f"{html.escape(source or 'the warehouse')}.</p>" if rows is not None and len(frame) > rows else "")
    return grid(list(frame.columns), list(shown.itertuples(index=False)), empty) + more


def grid(columns: list, rows: list, empty: str = "None.") -> str:
    """An HTML table in a box that scrolls sideways inside itself when the window is narrow."""
    if not rows:
        return f"<p class='empty'>{html.escape(empty)}</p>"
    head = "".join(f"<th>{cell(c) if isinstance(c, Html) else html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<div class='table'><table><tr>{head}</tr>{body}</table></div>"


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style></head><body>{body}</body></html>\n")


STYLE = """body{font:14px system-ui,sans-serif;margin:2em auto;max-width:1150px;padding:0 1em;color:#222}
h1{font-size:22px}h2{border-bottom:2px solid #1565c0;padding-bottom:4px;margin-top:2em}.meta,.empty{color:#666}
.table{max-width:100%;overflow-x:auto}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top;overflow-wrap:break-word}
td{max-width:28em}th{background:#eef3f8}svg{max-width:100%;height:auto}nav a{margin-right:.6em;white-space:nowrap}
span[title]{text-decoration:underline dotted #999}li{margin:.2em 0}"""

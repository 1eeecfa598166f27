"""The CAR-HEMATOTOX score (Rejeski et al., Blood 2021; derivations §4.6): five markers before
lymphodepletion (platelets, ANC, hemoglobin, CRP, ferritin), points per marker, LOW (0-1) or HIGH (>= 2) risk.
One set-based SQL model (warehouse/mart/hematotox.sql) with the bands as a table; the baseline window is
`hematotox.baseline_days`. A missing marker is never 0 points: the score is NULL and null_reason names it."""
from __future__ import annotations

import duckdb

from car22.config import Protocol
from car22.sql import comment_table, run_sql_file

_MARKERS = {"plt": "Platelets (10^9/L)", "anc": "ANC (10^9/L)", "hgb": "Hemoglobin (g/L)", "crp": "CRP (mg/L)",
            "ferritin": "Ferritin (ng/mL)"}

COMMENTS = {
    "": "CAR-HEMATOTOX score per participant who started lymphodepletion (derivations §4.6).",
    "participant_id": "Participant with a lymphodepletion start date.",
    "score": "Sum of the five points, 0-7; NULL when a marker is missing or cannot be scored (null_reason).",
    "risk": "LOW (score 0-1) | HIGH (score >= 2); NULL with the score.",
    **{column: text for marker, label in _MARKERS.items() for column, text in (
        (f"{marker}_value", f"{label} used: the last result collected 1-14 days (setting) before the first "
                            "lymphodepletion day, canonical unit; a censored result's limit; NULL below the LLOQ."),
        (f"{marker}_qualifier", "< or > for a censored result, BLQ below the LLOQ (scored as 0), NULL for a number."),
        (f"{marker}_date", "Collection date of the result used."),
        (f"points_{marker}", "Points of the marker; NULL when there is no result or it cannot be scored."))},
    "null_reason": "Why the score is NULL: each missing or unscorable marker, named.",
    "method": "Score, version and settings used (baseline window, risk cut-off).",
}


def build(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    run_sql_file(con, "mart/hematotox.sql")
    comment_table(con, "mart.hematotox", COMMENTS)

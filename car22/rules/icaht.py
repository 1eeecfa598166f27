"""ICAHT, immune effector cell-associated hematotoxicity (EHA/EBMT consensus; derivations §4.5): depth and
duration of neutropenia (N-ICAHT) and thrombocytopenia (T-ICAHT), early (days 0-30) and late (31-100).
One set-based SQL model (warehouse/mart/icaht.sql): a calendar of study days per participant, the daily lowest
result carried forward at most `icaht.carry_days`, unstable recovery, the grading criteria as a table. Runs
after survival: a window ends at the RFS event (mart.rfs), HSCT, next therapy or death."""
from __future__ import annotations

import duckdb

from car22.config import Protocol
from car22.sql import comment_table, run_sql_file

COMMENTS = {
    "": "ICAHT grade per infused participant, scale and phase (EHA/EBMT consensus, derivations §4.5).",
    "participant_id": "Infused participant.",
    "scale": "N-ICAHT (ANC, 10^9/L) | T-ICAHT (platelets, 10^9/L).",
    "phase": "early (study days 0-30) | late (study days 31-100).",
    "grade": "0-4; NULL when the window has no result or ended before the phase (null_reason).",
    "days_below_primary": "Days of the window below the primary threshold (ANC <= 0.5, platelets < 50), after "
                          "carry-forward and unstable recovery.",
    "days_below_severe": "Days of the window below the severe threshold (ANC <= 0.1, platelets < 20), likewise.",
    "n_results": "ANC or platelet results collected in the window (numbers, censored and below-LLOQ results).",
    "window_end_day": "Last study day of the window (it counts): the phase end or an earlier event.",
    "window_end_reason": "PHASE_END | RELAPSE_MORPHOLOGIC | RELAPSE_EXTRAMEDULLARY | RELAPSE_MRD (the RFS event, "
                         "primary analysis) | HSCT | NEXT_THERAPY | DEATH.",
    "null_reason": "Why the grade is NULL.",
    "method": "Scale, version and settings used (carry-forward limit; transfusion independence not applied).",
}


def build(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    run_sql_file(con, "mart/icaht.sql")
    comment_table(con, "mart.icaht", COMMENTS)

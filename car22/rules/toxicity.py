"""Toxicity tallies, derivations §4.4: worst grade per participant, then the safety table (both set-based SQL
in warehouse/mart/). Runs after crs, icans and ctcae."""
from __future__ import annotations

import duckdb

from car22.config import Protocol
from car22.sql import run_sql_file


def build(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    run_sql_file(con, "mart/toxicity_by_participant.sql")
    cohort(con, protocol)


def cohort(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    """The safety table over the infused population (also after an incremental night)."""
    run_sql_file(con, "mart/toxicity_tally.sql")

"""The clinical rules in the order the mart needs them: each rule is one module of car22.rules with a
`build(con, protocol)` that rebuilds its mart tables from core (derivations.md)."""
from __future__ import annotations

import importlib

import duckdb

from car22.config import Protocol
from car22.night import faults
from car22.sql import set_protocol_variables

# Derivations in dependency order (survival and eligibility read mart.mrd_assessments; icaht reads mart.rfs;
# toxicity reads the graded tables, icaht included).
DERIVATIONS: tuple[str, ...] = ("car22.rules.mrd", "car22.rules.survival", "car22.rules.eligibility", "car22.rules.dosing",
                                "car22.rules.kinetics", "car22.rules.crs", "car22.rules.icans", "car22.rules.ctcae",
                                "car22.rules.icaht", "car22.rules.hematotox", "car22.rules.toxicity")


def derive_all(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    """Rebuild every mart table from core (derivations.md), each rule in its own module."""
    set_protocol_variables(con, protocol)
    for name in DERIVATIONS:
        importlib.import_module(name).build(con, protocol)
        faults.checkpoint(f"derived {name}")


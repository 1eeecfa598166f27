"""An incremental night: core and mart rebuilt for the participants tonight's files touched, not the whole
history (issue #8, "work should follow the new data").

Every core and mart table is per participant (it has a participant_id column) except the cohort summaries,
which are recomputed over everyone from the per-participant tables. The touched participants' tables are
computed by the very same models and derivations as a full rebuild, run in an in-memory `scope` database
whose `staging.*_current` and `core.*` show only those participants; their rows then replace the old ones.
A full rebuild still runs when the settings or the code changed (car22.night.transaction.rebuild_scope), and tests hold
the incremental result equal to a full rebuild (tests/test_incremental.py).
"""
from __future__ import annotations

import importlib

import duckdb

from car22.config import Protocol
from car22.intake.sources import PARTICIPANT_SOURCES
from car22.loading import versions
from car22.night import faults
from car22.sql import column_names, set_protocol_variables, table_names

# Cohort summaries (no participant_id), recomputed over everyone after the per-participant merge.
# mart.ctcae_criteria is neither: it follows the settings only, and a settings change rebuilds everything.
COHORT_STEPS: tuple[str, ...] = ("car22.rules.survival", "car22.rules.kinetics", "car22.rules.toxicity")
SCOPE = "scope"


def open_scope(con: duckdb.DuckDBPyConnection) -> str:
    """Attach the in-memory scope database: staging current versions and empty core tables of the touched
    participants. Returns the work database's name."""
    work = con.execute("SELECT current_database()").fetchall()[0][0]
    con.execute(f"ATTACH ':memory:' AS {SCOPE}")
    for schema in ("staging", "core", "mart"):
        con.execute(f"CREATE SCHEMA {SCOPE}.{schema}")
    con.execute(f"CREATE TABLE {SCOPE}.main.touched AS SELECT participant_id FROM temp.touched")
    for source in PARTICIPANT_SOURCES:
        con.execute(f"CREATE VIEW {SCOPE}.staging.{source.name}_current AS SELECT * FROM "
                    f"{work}.staging.{source.name}_current WHERE participant_id IN "
                    f"(SELECT participant_id FROM {SCOPE}.main.touched)")
    for table in table_names(con, "core", work):
        con.execute(f"CREATE TABLE {SCOPE}.core.{table} AS SELECT * FROM {work}.core.{table} LIMIT 0")
    return work


def merge(con: duckdb.DuckDBPyConnection, work: str, schema: str) -> None:
    """Replace the touched participants' rows of every per-participant table of `schema` with the scope's."""
    computed = set(table_names(con, schema, SCOPE))
    for table in table_names(con, schema, work):
        columns = column_names(con, schema, table, work)
        if "participant_id" not in columns:
            continue
        con.execute(f"DELETE FROM {work}.{schema}.{table} WHERE participant_id IN "
                    f"(SELECT participant_id FROM {SCOPE}.main.touched)")
        if table in computed and "participant_id" in column_names(con, schema, table, SCOPE):
            con.execute(f"INSERT INTO {work}.{schema}.{table} BY NAME SELECT * FROM {SCOPE}.{schema}.{table}")


def rebuild_touched(con: duckdb.DuckDBPyConnection, protocol: Protocol, run_id: int,
                    derivations: tuple[str, ...]) -> int:
    """Current versions, core and mart of the participants tonight touched; returns how many there were."""
    versions.update_current_versions(con, run_id)
    faults.checkpoint("current versions")
    count = con.execute("SELECT count(*) FROM temp.touched").fetchall()[0][0]
    work = open_scope(con)
    try:
        con.execute(f"USE {SCOPE}")
        try:
            versions.build_core(con)
        finally:
            con.execute(f"USE {work}")
        merge(con, work, "core")
        faults.checkpoint("core")
        versions.hold_unenrolled(con, run_id)
        versions.refresh_file_counts(con)
        set_protocol_variables(con, protocol)
        con.execute(f"USE {SCOPE}")
        try:
            for name in derivations:
                importlib.import_module(name).build(con, protocol)
        finally:
            con.execute(f"USE {work}")
        merge(con, work, "mart")
        for name in COHORT_STEPS:
            importlib.import_module(name).cohort(con, protocol)
        faults.checkpoint("derived incrementally")
    finally:
        con.execute(f"DETACH {SCOPE}")
    return count


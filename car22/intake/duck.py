"""The in-memory DuckDB that reads and types exports (car22.intake.reading, car22.intake.sources).

One database per process, opened on first use: opening one costs milliseconds, a night reads hundreds of
files. Each reading or typing takes its own cursor, which has its own temporary tables (read_csv's reject
tables) and registered frames, and closes it.
"""
from __future__ import annotations

import threading

import duckdb

_database: duckdb.DuckDBPyConnection | None = None
_opening = threading.Lock()


def cursor() -> duckdb.DuckDBPyConnection:
    """A new connection to the process's in-memory database; close it (use it as a context manager)."""
    global _database
    with _opening:
        if _database is None:
            _database = duckdb.connect(":memory:")
        return _database.cursor()

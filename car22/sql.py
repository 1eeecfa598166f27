"""Running the SQL models of warehouse/ against a DuckDB connection."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from car22.config import Protocol

SQL_DIR = Path(__file__).resolve().parent.parent / "warehouse"


def run_sql_file(con: duckdb.DuckDBPyConnection, relative_path: str) -> None:
    """Execute every statement of warehouse/<relative_path>."""
    con.execute((SQL_DIR / relative_path).read_text(encoding="utf-8"))


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}_{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


def protocol_variables(protocol: Protocol) -> dict[str, Any]:
    """Protocol settings as flat names: mrd.threshold -> mrd_threshold."""
    flat: dict[str, Any] = {}
    _flatten("", protocol.settings, flat)
    return flat


def set_protocol_variables(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    """Expose every protocol setting to SQL models as getvariable('<section>_<name>')."""
    for name, value in protocol_variables(protocol).items():
        con.execute(f"SET VARIABLE {name} = ?", [value])


def comment_table(con: duckdb.DuckDBPyConnection, table: str, comments: dict[str, str]) -> None:
    """COMMENT ON the table ('' key) and each column, so duckdb_tables()/duckdb_columns() explain it."""
    for column, text in comments.items():
        quoted = text.replace("'", "''")
        target = f"TABLE {table}" if column == "" else f'COLUMN {table}."{column}"'
        con.execute(f"COMMENT ON {target} IS '{quoted}'")

"""Running the SQL models of warehouse/ against a DuckDB connection."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

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


def replace_table(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, comments: dict[str, str],
                  types: dict[str, str], default_type: str | None = None) -> None:
    """Replace a mart table with a frame: the documented columns in order, cast to their types, commented."""
    columns = [c for c in comments if c]
    frame = frame.reindex(columns=columns)
    select = ", ".join(f'CAST("{c}" AS {types.get(c, default_type)}) AS "{c}"' if c in types or default_type
                       else f'"{c}"' for c in columns)
    con.register("replace_frame", frame.astype(object).where(frame.notna(), None))
    try:
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT {select} FROM replace_frame")
    finally:
        con.unregister("replace_frame")
    comment_table(con, table, comments)


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether schema.table exists (a warehouse published before a table was added has none)."""
    return table in table_names(con, schema)


def table_names(con: duckdb.DuckDBPyConnection, schema: str, database: str | None = None) -> list[str]:
    """The tables of a schema, in the connection's current database unless another attached one is named."""
    return [name for name, in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = coalesce(?, current_database()) "
        "AND schema_name = ? ORDER BY 1", [database, schema]).fetchall()]


def column_names(con: duckdb.DuckDBPyConnection, schema: str, table: str, database: str | None = None) -> list[str]:
    """The columns of a table in their order (current database unless another attached one is named)."""
    return [name for name, in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = coalesce(?, current_database()) "
        "AND schema_name = ? AND table_name = ? ORDER BY column_index", [database, schema, table]).fetchall()]

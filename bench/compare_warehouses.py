"""Compare two warehouses table by table: every row of every table in raw, staging, core, mart and ops.

Used to show that a change of code changes no value (issue #13's move, issue #19's set-based night):
`python bench/compare_warehouses.py BEFORE.duckdb AFTER.duckdb`. The clock of a run (when a file was
received, when a run started and finished, its Prefect id and code version) differs from run to run and is
left out; everything else must be equal. Exit code 0 when equal, 1 when not (the differences are printed),
2 on a usage error.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb
import pandas as pd

SCHEMAS = ("raw", "staging", "core", "mart", "ops")
# The clock and identity of a run: different at every run by design.
RUN_CLOCK = {"received_at", "started_at", "finished_at", "flow_run_id", "code_version", "recorded_at", "at",
             "first_seen_at", "last_seen_at", "resolved_at", "age_days"}
# Where a run's data folder is: compared from the data folder on (the archive's dated folder and file name).
LOCATIONS = {"archive_path"}


def table_frames(path: Path) -> dict[str, pd.DataFrame]:
    """Every table as a frame sorted on all its columns (row order is not part of a table's meaning)."""
    frames = {}
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name IN "
                             f"({', '.join('?' * len(SCHEMAS))}) ORDER BY 1, 2", list(SCHEMAS)).fetchall()
        for schema, table in tables:
            columns = [c for c, in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
                "ORDER BY column_index", [schema, table]).fetchall() if c not in RUN_CLOCK]
            listed = ", ".join(f'"{c}"' for c in columns)
            frame = con.execute(f'SELECT {listed} FROM "{schema}"."{table}" ORDER BY ALL').df()
            for column in LOCATIONS & set(frame.columns):
                frame[column] = frame[column].map(lambda p: "/".join(Path(p).parts[-2:]) if isinstance(p, str) else p)
            frames[f"{schema}.{table}"] = frame.astype(object).where(frame.notna(), None).astype(str)
    return frames


def differences(before: Path, after: Path) -> list[str]:
    """What differs, one line per table; empty when the warehouses hold the same values."""
    a, b = table_frames(before), table_frames(after)
    found = [f"{name}: only in {before}" for name in sorted(set(a) - set(b))]
    found += [f"{name}: only in {after}" for name in sorted(set(b) - set(a))]
    for name in sorted(set(a) & set(b)):
        x, y = a[name], b[name]
        if list(x.columns) != list(y.columns):
            found.append(f"{name}: columns differ: {list(x.columns)} vs {list(y.columns)}")
        elif len(x) != len(y):
            found.append(f"{name}: {len(x)} rows vs {len(y)}")
        elif not x.equals(y):
            unequal = (x != y).any()
            found.append(f"{name}: values differ in {list(unequal[unequal].index)}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    for path in (args.before, args.after):
        if not path.is_file():
            print(f"compare_warehouses: no warehouse at {path}", file=sys.stderr)
            return 2
    found = differences(args.before, args.after)
    for line in found:
        print(line)
    print("identical" if not found else f"{len(found)} table(s) differ")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())

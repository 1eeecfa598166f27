"""The suites' expectations compiled to DuckDB SQL: the same GX suite JSON (expectations/), run set-based.

GX's own pandas engine stays the oracle: tests/validation/test_sql_engine.py runs both on the demo, the
fuzzed cases and hand-made NULL, boundary and type cases, and requires the same failing rows for every
expectation of every suite. The semantics pinned here are GX pandas' (docs/validation.md "Two engines"):
- a column map expectation never counts a NULL as unexpected (only `not_be_null` looks at NULLs);
- `match_regex` searches (GX pandas uses `str.contains`), with Python's regex meaning: `\\d` is any Unicode
  decimal digit and `$` also matches before a final newline, so both are translated for DuckDB's RE2;
- a row condition keeps the rows where it is true (a comparison with NULL is not true);
- the pair `a ≥ b` with `ignore_row_if = either_value_is_missing` skips rows where either is NULL;
- uniqueness counts NULLs as equal within a compound key (pandas `duplicated`), skips rows whose whole key is
  NULL, and ignores NULL for a single column.
An expectation type not listed in `_UNEXPECTED` is refused: a check is never silently skipped.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import duckdb
import pandas as pd

Condition = dict[str, Any]
# A value set checked against this many (rows x values) or fewer is searched as a list (see _in_set).
SET_AS_LIST_UP_TO = 1_000_000


class _Query:
    """Collects the parameters of one compiled query, so that no value is ever spliced into SQL text."""

    def __init__(self, parameters: dict[str, Any], rows: int):
        self.parameters = parameters
        self.rows = rows
        self.values: dict[str, Any] = {}

    def value(self, given: Any) -> str:
        if isinstance(given, dict) and "$PARAMETER" in given:
            given = self.parameters[given["$PARAMETER"]]
        if isinstance(given, pd.Timestamp):
            given = given.to_pydatetime()
        name = f"p{len(self.values)}"
        self.values[name] = given
        return f"${name}"


def _column(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def python_regex_for_re2(pattern: str) -> str:
    """Python's `re.search` meaning in RE2 syntax: `\\d` → any Unicode decimal digit; an unescaped `$`
    → end of text or before a final newline."""
    pattern = pattern.replace(r"\d", r"\p{Nd}")
    return re.sub(r"(?<!\\)\$", r"(?:\\n?\\z)", pattern)


def _condition(c: Condition, q: _Query) -> str:
    if c["type"] in ("and", "or"):
        return "(" + f" {c['type'].upper()} ".join(_condition(x, q) for x in c["conditions"]) + ")"
    column = _column(c["column"]["name"])
    if c["type"] == "nullity":
        return f"({column} IS {'' if c['is_null'] else 'NOT '}NULL)"
    operator = {"==": "=", "!=": "<>"}.get(c["operator"], c["operator"])
    return f"coalesce({column} {operator} {q.value(c['parameter'])}, false)"


def _between(k: dict[str, Any], q: _Query) -> str:
    column, bounds = _column(k["column"]), []
    if k.get("min_value") is not None:
        bounds.append(f"{column} {'>' if k.get('strict_min') else '>='} {q.value(k['min_value'])}")
    if k.get("max_value") is not None:
        bounds.append(f"{column} {'<' if k.get('strict_max') else '<='} {q.value(k['max_value'])}")
    return f"{column} IS NOT NULL AND NOT ({' AND '.join(bounds)})"


def _regex(k: dict[str, Any], q: _Query, matching: bool) -> str:
    regex = k["regex"]
    if isinstance(regex, dict):
        regex = q.parameters[regex["$PARAMETER"]]
    column = _column(k["column"])
    found = f"regexp_matches(CAST({column} AS VARCHAR), {q.value(python_regex_for_re2(regex))})"
    return f"{column} IS NOT NULL AND {'NOT ' if matching else ''}{found}"


def _in_set(k: dict[str, Any], q: _Query) -> str:
    """`list_contains` compares a row with each value of the set in turn: 8 s for a file of 300,000 lab rows
    against 20,000 enrolled participants, 30 ms as a semi-join. A join costs about 2 ms more to plan and run, so
    it is taken only for a large set on many rows. A NULL in the set matches no value either way."""
    column, values = _column(k["column"]), list(_resolve(k["value_set"], q))
    if len(values) * q.rows <= SET_AS_LIST_UP_TO:
        return f"{column} IS NOT NULL AND NOT list_contains({q.value(values)}, {column})"
    return f"{column} IS NOT NULL AND NOT coalesce({column} IN (SELECT unnest({q.value(values)})), false)"


def _pair(k: dict[str, Any], q: _Query) -> str:
    if k.get("ignore_row_if", "both_values_are_missing") != "either_value_is_missing":
        raise ValueError("only ignore_row_if='either_value_is_missing' is compiled for column pairs")
    a, b = _column(k["column_A"]), _column(k["column_B"])
    return f"{a} IS NOT NULL AND {b} IS NOT NULL AND NOT ({a} {'>=' if k.get('or_equal') else '>'} {b})"


def _compound_unique(k: dict[str, Any], q: _Query) -> str:
    columns = [_column(c) for c in k["column_list"]]
    key = ", ".join(columns)
    all_missing = " AND ".join(f"{c} IS NULL" for c in columns)
    return f"NOT ({all_missing}) AND count(*) OVER (PARTITION BY {key}) > 1"


def _unique(k: dict[str, Any], q: _Query) -> str:
    column = _column(k["column"])
    return f"{column} IS NOT NULL AND count(*) OVER (PARTITION BY {column}) > 1"


_UNEXPECTED: dict[str, Callable[[dict[str, Any], _Query], str]] = {
    "expect_column_values_to_not_be_null": lambda k, q: f"{_column(k['column'])} IS NULL",
    "expect_column_values_to_match_regex": lambda k, q: _regex(k, q, matching=True),
    "expect_column_values_to_not_match_regex": lambda k, q: _regex(k, q, matching=False),
    "expect_column_values_to_be_in_set": lambda k, q: _in_set(k, q),
    "expect_column_values_to_be_between": _between,
    "expect_column_pair_values_a_to_be_greater_than_b": _pair,
    "expect_compound_columns_to_be_unique": _compound_unique,
    "expect_column_values_to_be_unique": _unique,
}


def _resolve(given: Any, q: _Query) -> Any:
    return q.parameters[given["$PARAMETER"]] if isinstance(given, dict) and "$PARAMETER" in given else given


def compile_suite(expectations: list[dict[str, Any]], relation: str, parameters: dict[str, Any],
                  rows: int) -> tuple[str, dict[str, Any]]:
    """One query over `relation` (which has `row_number` and the suite's columns, and `rows` rows) returning
    (check_name, row_number) for every unexpected row of every expectation, in one scan."""
    q = _Query(parameters, rows)
    flags = []
    for e in expectations:
        compile_one = _UNEXPECTED.get(e["type"])
        if compile_one is None:
            raise ValueError(f"expectation type {e['type']} has no SQL form: add it to car22.validation.sql_engine")
        unexpected = compile_one(e["kwargs"], q)
        if condition := e["kwargs"].get("row_condition"):
            # A window (uniqueness) counts only the rows the condition keeps.
            if "OVER (" in unexpected:
                raise ValueError(f"{e['meta']['check_name']}: a row condition on a uniqueness check is not compiled")
            unexpected = f"{_condition(condition, q)} AND ({unexpected})"
        flags.append(f"coalesce({unexpected}, false) AS {_column(e['meta']['check_name'])}")
    if not flags:
        return "SELECT NULL::VARCHAR AS check_name, NULL::INTEGER AS row_number WHERE false", {}
    sql = (f"WITH flags AS (SELECT row_number, {', '.join(flags)} FROM {relation}) "
           "SELECT check_name, row_number FROM (UNPIVOT flags ON COLUMNS(* EXCLUDE (row_number)) "
           "INTO NAME check_name VALUE unexpected) WHERE unexpected ORDER BY check_name, row_number")
    return sql, q.values


def unexpected_rows(frame: pd.DataFrame, expectations: list[dict[str, Any]],
                    parameters: dict[str, Any]) -> dict[str, list[int]]:
    """The failing row numbers of each expectation that fails on the frame (as GX's pandas engine finds them)."""
    sql, values = compile_suite(expectations, "validation_frame", parameters, len(frame))
    with _database().cursor() as con:  # a cursor per call: DuckDB's way for threads; its frame goes with it
        con.register("validation_frame", frame)
        found: dict[str, list[int]] = {}
        for check, row in con.execute(sql, values).fetchall():
            found.setdefault(check, []).append(int(row))
        return found


_DATABASES: dict[int, duckdb.DuckDBPyConnection] = {}
# A suite's query is one projection of some forty flags over one frame: these two optimizers only rewrite its
# expressions, which cost 8 of a small file's 24 ms to plan, and made a file of 300,000 ICANS rows 4x slower
# to check (7.2 s against 1.6 s). Measured with DuckDB 2.0.1 (bench/RESULTS.md).
UNUSED_OPTIMIZERS = "expression_rewriter,common_subexpressions"


def _database() -> duckdb.DuckDBPyConnection:
    """This process's in-memory database for the compiled checks: opening one per file cost about 15 ms, as
    much as checking a small file (a cursor on it costs 0.3 ms). It is never closed or let go, and a forked child
    opens its own: a DuckDB connection inherited through fork() must not be used, nor destroyed (a Validator's
    connection collected in a forked night crashed it)."""
    pid = os.getpid()
    if pid not in _DATABASES:
        _DATABASES[pid] = duckdb.connect(config={"disabled_optimizers": UNUSED_OPTIMIZERS})
    return _DATABASES[pid]

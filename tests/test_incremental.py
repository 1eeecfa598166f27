"""An incremental night (car22.loading.incremental) leaves exactly the warehouse a full rebuild leaves: every
staging current-version table, every core table and every mart table, cohort summaries included."""
from __future__ import annotations

import random
import shutil

import duckdb
import pandas as pd
import pytest
from conftest import run
from test_nightly import data_issues, exports, write

from car22.demo import generate
from car22.night.paths import Paths

SCHEMAS = ("staging", "core", "mart")


def derived_tables(warehouse) -> dict[str, pd.DataFrame]:
    """Every current-version, core and mart table, rows in a canonical order."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        names = [f"{schema}.{table}" for schema, table in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name IN ('core', 'mart') "
            "OR (schema_name = 'staging' AND table_name LIKE '%\\_current' ESCAPE '\\') ORDER BY 1, 2").fetchall()]
        tables = {}
        for name in names:
            tables[name] = con.sql(f"SELECT * FROM {name} ORDER BY ALL").df()
        return tables


def assert_same(expected_warehouse, actual_warehouse) -> None:
    expected, actual = derived_tables(expected_warehouse), derived_tables(actual_warehouse)
    assert sorted(expected) == sorted(actual)
    for name in expected:
        assert len(expected[name]) == len(actual[name]), name
        pd.testing.assert_frame_equal(expected[name], actual[name], check_exact=False, rtol=1e-12, obj=name)


def test_demo_night_by_night_equals_one_full_rebuild(demo_night, tmp_path):
    full = demo_night[0]
    written = generate(tmp_path / "exports")                             # the same bytes (same seed)
    files = sorted(written, key=lambda p: p.name.rsplit("_", 1)[-1])      # by export time, as they arrived
    paths = Paths.under(tmp_path / "nightly")
    nights = [files[:len(files) // 2], files[len(files) // 2:]]        # (one file a night: the test below)
    for night in nights:
        paths.inbox.mkdir(parents=True, exist_ok=True)
        for path in night:
            shutil.copyfile(path, paths.inbox / path.name)
        run(paths)
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM mart.rfs").fetchall()[0][0] > 0
    assert_same(full.warehouse, paths.warehouse)


@pytest.mark.parametrize("seed", [3])
def test_corrections_deletions_and_late_enrollment_one_file_a_night(prefect, tmp_path, seed):
    """Each file its own night, in a random order: P -> F -> C corrections, an EDC deletion, a participant
    enrolled after their labs arrived."""
    files = list(exports().items())
    random.Random(seed).shuffle(files)
    one, nightly = Paths.under(tmp_path / "one"), Paths.under(tmp_path / "nightly")
    write(one.inbox, dict(files))
    run(one)
    for name, text in files:
        write(nightly.inbox, {name: text})
        run(nightly)
    assert_same(one.warehouse, nightly.warehouse)
    pd.testing.assert_frame_equal(data_issues(one.warehouse), data_issues(nightly.warehouse))


def test_tables_have_their_types_before_any_data(prefect, tmp_path):
    """A night with enrollments only (nobody infused, no samples) still creates every table with its real
    column types: later nights append to them."""
    paths = Paths.under(tmp_path)
    write(paths.inbox, {name: text for name, text in exports().items() if name.startswith("edc_enrollment")})
    run(paths)
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        untyped = con.execute("""SELECT schema_name || '.' || table_name || '.' || column_name FROM duckdb_columns()
                                 WHERE schema_name IN ('staging', 'core', 'mart') AND data_type = '"NULL"'
                                 ORDER BY 1""").fetchall()
    assert untyped == []

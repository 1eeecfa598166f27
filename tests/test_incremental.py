"""An incremental night (car22.loading.incremental) leaves exactly the warehouse a full rebuild leaves: every
staging current-version table, every core table and every mart table, cohort summaries included; and the
submission package it writes, rebuilding only the records of the participants it touched, is byte for byte the
one written whole (apart from the times the files carry)."""
from __future__ import annotations

import random
import re
import shutil

import duckdb
import pandas as pd
import pytest
from conftest import run
from test_nightly import data_issues, exports, write

from car22.demo import generate
from car22.night.paths import Paths
from car22.submission.manifest import package_folder, read_manifest
from car22.submission.package import rebuilt_since

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


# The times a package's files carry: the transport file's creation, Dataset-JSON's and define.xml's.
TIMES = re.compile(rb'\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d|"(datasetJSONCreationDateTime|dbLastModifiedDateTime)":"[^"]*"'
                   rb'|(CreationDateTime|AsOfDateTime)="[^"]*"')


def package_files(warehouse) -> dict[str, bytes]:
    """The package written beside the warehouse, without its manifest, index and times."""
    folder = package_folder(warehouse)
    return {str(p.relative_to(folder)): TIMES.sub(b"", p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "manifest.json" and ".records" not in p.parts}


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
        first_package = read_manifest(package_folder(paths.warehouse))
        run(paths)
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM mart.rfs").fetchall()[0][0] > 0
        assert rebuilt_since(con, first_package, 2) is not None  # the second night said whom it rebuilt
    assert_same(full.warehouse, paths.warehouse)
    assert package_files(paths.warehouse) == package_files(full.warehouse)


@pytest.mark.parametrize("seed", [3])
def test_corrections_deletions_and_late_enrollment_one_file_a_night(prefect, tmp_path, seed, caplog):
    """Each file its own night, in a random order: P -> F -> C corrections, an EDC deletion, a participant
    enrolled after their labs arrived. Some nights' packages build a few participants' records only (on so few
    records, a new longest text value often makes a night build everyone's)."""
    files = list(exports().items())
    random.Random(seed).shuffle(files)
    one, nightly = Paths.under(tmp_path / "one"), Paths.under(tmp_path / "nightly")
    write(one.inbox, dict(files))
    run(one)
    caplog.set_level("INFO", logger="prefect.task_runs")
    caplog.clear()
    for name, text in files:
        write(nightly.inbox, {name: text})
        run(nightly)
    built = [int(found) for found in re.findall(r"the records of the (\d+) participant\(s\) rebuilt", caplog.text)]
    with duckdb.connect(str(nightly.warehouse), read_only=True) as con:
        everyone = con.execute("SELECT count(*) FROM core.participants").fetchall()[0][0]
    assert len(built) >= 2 and max(built) < everyone
    assert_same(one.warehouse, nightly.warehouse)
    pd.testing.assert_frame_equal(data_issues(one.warehouse), data_issues(nightly.warehouse))
    assert package_files(nightly.warehouse) == package_files(one.warehouse)


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

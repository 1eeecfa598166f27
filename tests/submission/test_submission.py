"""The package the demo night writes (cdisc.md): every conformance check, the warehouse's numbers in the files,
Kaplan-Meier from ADTTE alone equal to mart.endpoints, the same bytes from the same warehouse, the command."""
from __future__ import annotations

import re
import shutil
from datetime import datetime, timezone

import duckdb
import pyreadstat
import pytest
from scipy.stats import CensoredData, ecdf
from submission.conformance import check_package

from car22 import cli
from car22.night.paths import Paths
from car22.submission.manifest import package_folder, read_manifest
from car22.submission.package import write_package

SDTM = ["DM", "EX", "LB", "CP", "PC", "PP", "AE", "FA", "RS", "DS"]
ADAM = ["ADSL", "ADTTE", "ADLB", "ADAE", "ADCI"]


@pytest.fixture(scope="module")
def demo(demo_night):
    """(paths, the package folder the night wrote, the datasets built from its warehouse)."""
    paths, _written, _summary = demo_night
    folder = package_folder(paths.warehouse)
    return paths, folder, check_package(folder, paths.warehouse)


def query(paths, sql: str) -> list[tuple]:
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        return con.sql(sql).fetchall()


def test_the_night_writes_every_dataset_and_the_report_says_when(demo):
    paths, folder, tables = demo
    manifest = read_manifest(folder)
    assert [d["name"] for d in manifest["datasets"]] == SDTM + ADAM
    for standard, names in (("sdtm", SDTM), ("adam", ADAM)):
        assert sorted(p.name for p in (folder / standard).iterdir()) == sorted(
            [f"{n.lower()}.{ext}" for n in names for ext in ("xpt", "json")] + ["define.xml"])
    assert not list(folder.parent.glob(".submission.*"))  # no staging or old package left
    assert f"written {manifest['written_at'][:16].replace('T', ' ')}" in (
        paths.reports / "trial_report.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("dataset, sql", [
    ("DM", "SELECT count(*) FROM core.participants"),
    ("ADSL", "SELECT count(*) FROM core.participants"),
    ("LB", "SELECT count(*) FROM core.lab_results"),
    ("EX", "SELECT count(*) FROM core.treatments"),
    ("AE", "SELECT count(*) FROM core.adverse_events"),
    ("ADAE", "SELECT count(*) FROM core.adverse_events"),
    ("ADTTE", "SELECT count(*) FROM mart.rfs"),
    ("ADLB", "SELECT count(*) FROM core.lab_results WHERE test_code IN (SELECT test_code FROM mart.ctcae_criteria)"),
    ("ADCI", "SELECT (SELECT count(*) FROM mart.crs_daily WHERE study_day >= 0)"
             " + (SELECT count(*) FROM mart.icans_daily WHERE study_day >= 0)"),
    ("PP", "SELECT count(cmax) + count(tmax_day) + count(auc_0_28) + count(auc_0_last) + count(tlast_day)"
           " + count(clast) FROM mart.car_kinetics"),
])
def test_every_record_of_the_warehouse_is_there(demo, dataset, sql):
    paths, _, tables = demo
    assert tables[dataset].records == query(paths, sql)[0][0]


def test_numbers_are_the_warehouses(demo):
    paths, folder, _ = demo
    lb, _ = pyreadstat.read_xport(str(folder / "sdtm" / "lb.xpt"))
    values = dict(((u, ref, code), v) for u, ref, code, v in query(paths, """
        SELECT 'NCT07328503-' || participant_id, accession, test_code, value FROM core.lab_results
        WHERE result_kind = 'VALUE'"""))
    codes = {"ANC": "NEUT", "ALC": "LYM", "PLT": "PLAT", "TBILI": "BILI", "FERR": "FERRITIN", "FIBR": "FIBRINO"}
    read = {(r.USUBJID, r.LBREFID, r.LBTESTCD): r.LBSTRESN for r in lb.itertuples() if r.LBSTRESN == r.LBSTRESN}
    assert read == {(u, ref, codes.get(code, code)): v for (u, ref, code), v in values.items()}
    adtte, _ = pyreadstat.read_xport(str(folder / "adam" / "adtte.xpt"))
    rfs = {("NCT07328503-" + p, "RFS" if a == "primary" else "RFSSENS"): (t, 0 if e else 1)
           for p, a, t, e in query(paths, "SELECT participant_id, analysis, time_days, event FROM mart.rfs")}
    assert {(r.USUBJID, r.PARAMCD): (r.AVAL, r.CNSR) for r in adtte.itertuples()} == rfs
    adlb, _ = pyreadstat.read_xport(str(folder / "adam" / "adlb.xpt"))
    graded = query(paths, "SELECT grade, count(*) FROM mart.lab_toxicity GROUP BY grade ORDER BY grade NULLS FIRST")
    grades = (adlb.ATOXGRL + adlb.ATOXGRH)[adlb.ATOXRSN.str.startswith("not graded") == False]  # noqa: E712
    assert sorted(grades.value_counts().items()) == sorted(("" if g is None else str(g), n) for g, n in graded)


@pytest.mark.parametrize("paramcd, analysis", [("RFS", "primary"), ("RFSSENS", "sensitivity")])
def test_kaplan_meier_from_adtte_alone_equals_the_endpoint(demo, paramcd, analysis):
    paths, folder, _ = demo
    adtte, _ = pyreadstat.read_xport(str(folder / "adam" / "adtte.xpt"))
    chosen = adtte[adtte.PARAMCD == paramcd]
    data = CensoredData(uncensored=chosen.AVAL[chosen.CNSR == 0].to_numpy(),
                        right=chosen.AVAL[chosen.CNSR == 1].to_numpy())
    expected = query(paths, f"SELECT estimate FROM mart.endpoints WHERE endpoint = 'RFS_1Y' AND analysis = '{analysis}'")
    assert ecdf(data).sf.evaluate(365) == pytest.approx(expected[0][0], abs=1e-12)


def test_the_same_warehouse_gives_the_same_bytes(demo, tmp_path):
    paths, _, _ = demo
    now = datetime(2026, 12, 2, 3, 0, tzinfo=timezone.utc)
    first = write_package(paths.warehouse, tmp_path / "one", now=now).folder
    second = write_package(paths.warehouse, tmp_path / "two", now=now).folder
    stamp = re.compile(rb"\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d")  # the transport file's own creation time
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for name in files:
        assert stamp.sub(b"", (first / name).read_bytes()) == stamp.sub(b"", (second / name).read_bytes()), name


def test_the_command_writes_on_demand_and_replaces_the_package_whole(demo, tmp_path, capsys):
    paths, _, _ = demo
    out = tmp_path / "package"
    (out / "sdtm").mkdir(parents=True)
    (out / "sdtm" / "stale.xpt").write_bytes(b"old")
    assert cli.main(["submission", "--warehouse", str(paths.warehouse), "--out", str(out)]) == cli.EXIT_OK
    assert "15 datasets" in capsys.readouterr().out
    assert not (out / "sdtm" / "stale.xpt").exists() and (out / "adam" / "adsl.xpt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["package"]
    assert cli.main(["submission", "--warehouse", str(tmp_path / "none.duckdb")]) == cli.EXIT_USAGE


def test_a_night_with_nothing_new_keeps_the_package_and_writes_a_missing_one(demo, tmp_path):
    from conftest import run

    paths, _, _ = demo
    copied = Paths.under(tmp_path / "data")
    shutil.copytree(paths.warehouse.parent, tmp_path / "data")
    manifest = package_folder(copied.warehouse) / "manifest.json"
    before = manifest.read_bytes()
    run(copied)                                  # empty inbox: scope "nothing", the package stays as it was
    assert manifest.read_bytes() == before
    shutil.rmtree(package_folder(copied.warehouse))
    run(copied)                                  # no package yet: written even though nothing changed
    assert read_manifest(package_folder(copied.warehouse))["warehouse_run_id"] == 3

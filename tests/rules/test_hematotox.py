"""CAR-HEMATOTOX (derivations §4.6), hand-computed: every cut-off exactly on its boundary and just past it (core
rows in canonical units: Hb g/L, CRP mg/L), the LOW/HIGH edge, below-LLOQ and censored results (§1.2), a missing
marker, the 14-day window; and the conventional units (Hb 9.0 g/dL, CRP 3.0 mg/dL) through car22.intake.units."""
import duckdb
import pandas as pd
import pytest

from car22.config import load_protocol
from car22.intake.units import convert
from car22.rules import hematotox
from car22.sql import run_sql_file, set_protocol_variables

LD_START = "2026-03-01"
# a baseline that scores 0 on every marker, collected the day before lymphodepletion
NORMAL = {"PLT": 200.0, "ANC": 2.0, "HGB": 120.0, "CRP": 5.0, "FERR": 300.0}
MARKER = {"PLT": "plt", "ANC": "anc", "HGB": "hgb", "CRP": "crp", "FERR": "ferritin"}

# name, results replacing the normal ones {test: [(days before lymphodepletion, result)]}, expected score, risk,
# expected points of the changed markers, null_reason
CASES = [
    ("normal", {}, 0, "LOW", {}, None),
    ("plt-175.1", {"PLT": [(1, 175.1)]}, 0, "LOW", {"plt": 0}, None),
    ("plt-175", {"PLT": [(1, 175)]}, 1, "LOW", {"plt": 1}, None),
    ("plt-75", {"PLT": [(1, 75)]}, 1, "LOW", {"plt": 1}, None),
    ("plt-74.9", {"PLT": [(1, 74.9)]}, 2, "HIGH", {"plt": 2}, None),
    ("anc-1.2", {"ANC": [(1, 1.2)]}, 0, "LOW", {"anc": 0}, None),
    ("anc-1.19", {"ANC": [(1, 1.19)]}, 1, "LOW", {"anc": 1}, None),
    ("hgb-90", {"HGB": [(1, 90)]}, 0, "LOW", {"hgb": 0}, None),
    ("hgb-89.9", {"HGB": [(1, 89.9)]}, 1, "LOW", {"hgb": 1}, None),
    ("crp-30", {"CRP": [(1, 30)]}, 0, "LOW", {"crp": 0}, None),
    ("crp-30.1", {"CRP": [(1, 30.1)]}, 1, "LOW", {"crp": 1}, None),
    ("ferritin-649.9", {"FERR": [(1, 649.9)]}, 0, "LOW", {"ferritin": 0}, None),
    ("ferritin-650", {"FERR": [(1, 650)]}, 1, "LOW", {"ferritin": 1}, None),
    ("ferritin-2000", {"FERR": [(1, 2000)]}, 1, "LOW", {"ferritin": 1}, None),
    ("ferritin-2000.1", {"FERR": [(1, 2000.1)]}, 2, "HIGH", {"ferritin": 2}, None),
    # the LOW/HIGH edge: 1 point LOW, 2 points HIGH; all seven points
    ("score-2", {"ANC": [(1, 1.19)], "CRP": [(1, 30.1)]}, 2, "HIGH", {"anc": 1, "crp": 1}, None),
    ("score-7", {"PLT": [(1, 50)], "ANC": [(1, 0.5)], "HGB": [(1, 80)], "CRP": [(1, 100)], "FERR": [(1, 3000)]},
     7, "HIGH", {"plt": 2, "anc": 1, "hgb": 1, "crp": 1, "ferritin": 2}, None),
    # below the LLOQ is a measured 0: lowest band (platelets 2 points, ANC 1, CRP 0)
    ("plt-BLQ", {"PLT": [(1, "BLQ")]}, 2, "HIGH", {"plt": 2}, None),
    ("anc-BLQ", {"ANC": [(1, "BLQ")]}, 1, "LOW", {"anc": 1}, None),
    ("crp-BLQ", {"CRP": [(1, "BLQ")]}, 0, "LOW", {"crp": 0}, None),
    # censored: <x scores when x reaches the lowest band's bound, >x the highest band's; otherwise NULL
    ("plt-<75", {"PLT": [(1, "<75")]}, 2, "HIGH", {"plt": 2}, None),
    ("plt->175", {"PLT": [(1, ">175")]}, 0, "LOW", {"plt": 0}, None),
    ("plt-<100", {"PLT": [(1, "<100")]}, None, None, {"plt": None}, "platelets <100.0 cannot be scored (censored across a cut-off)"),
    ("crp-<30", {"CRP": [(1, "<30")]}, 0, "LOW", {"crp": 0}, None),
    ("crp->30", {"CRP": [(1, ">30")]}, 1, "LOW", {"crp": 1}, None),
    ("crp->20", {"CRP": [(1, ">20")]}, None, None, {"crp": None}, "CRP >20.0 cannot be scored (censored across a cut-off)"),
    ("ferritin->2000", {"FERR": [(1, ">2000")]}, 2, "HIGH", {"ferritin": 2}, None),
    ("ferritin-<650", {"FERR": [(1, "<650")]}, 0, "LOW", {"ferritin": 0}, None),
    # a missing marker is never 0 points; several are all named
    ("no-ferritin", {"FERR": []}, None, None, {"ferritin": None},
     "no ferritin result in the 14 days before lymphodepletion"),
    ("no-plt-no-crp", {"PLT": [], "CRP": []}, None, None, {"plt": None, "crp": None},
     "no platelets result in the 14 days before lymphodepletion; no CRP result in the 14 days before lymphodepletion"),
    # the window: 14 days before the first lymphodepletion day counts, 15 does not, the day itself does not
    ("ferritin-14-days-before", {"FERR": [(14, 3000)]}, 2, "HIGH", {"ferritin": 2}, None),
    ("ferritin-15-days-before", {"FERR": [(15, 3000)]}, None, None, {"ferritin": None},
     "no ferritin result in the 14 days before lymphodepletion"),
    ("ferritin-on-ld-day", {"FERR": [(0, 3000)]}, None, None, {"ferritin": None},
     "no ferritin result in the 14 days before lymphodepletion"),
    # the last result wins; a non-result (Cancelled) is skipped
    ("ferritin-latest", {"FERR": [(10, 3000), (2, 300)]}, 0, "LOW", {"ferritin": 0}, None),
    ("ferritin-cancelled", {"FERR": [(10, 3000), (2, "Cancelled")]}, 2, "HIGH", {"ferritin": 2}, None),
]


def _result(text):
    """core.lab_results fields (value, comparator, below_lloq, result_kind) of a result as §1.2 reads it."""
    if text == "BLQ":
        return None, None, True, "BELOW_LLOQ"
    if text == "Cancelled":
        return None, None, False, "NO_RESULT"
    if isinstance(text, str):
        return float(text[1:]), text[0], False, "CENSORED"
    return float(text), None, False, "VALUE"


def _build(rows):
    """mart.hematotox over participants given as {pid: {test: [(days before lymphodepletion, result)]}}."""
    con = duckdb.connect()
    run_sql_file(con, "ops/schema.sql")
    run_sql_file(con, "core/schema.sql")
    protocol = load_protocol()
    set_protocol_variables(con, protocol)
    for pid, results in rows.items():
        con.execute(f"INSERT INTO core.participants (participant_id, infused, ld_start_date) "
                    f"VALUES (?, TRUE, DATE '{LD_START}')", [pid])
        for code, series in results.items():
            for j, (before, text) in enumerate(series):
                value, comparator, below, kind = _result(text)
                con.execute(f"INSERT INTO core.lab_results (participant_id, accession, test_code, collected_at, value, "
                            f"comparator, below_lloq, result_kind) VALUES (?, ?, ?, DATE '{LD_START}' - "
                            f"INTERVAL (?) DAY + INTERVAL 8 HOUR, ?, ?, ?, ?)",
                            [pid, f"{pid}-{code}-{j}", code, before, value, comparator, below, kind])
    hematotox.build(con, protocol)
    return con


@pytest.fixture(scope="module")
def scored():
    rows = {f"CD22-{i:03d}": {code: [(1, value)] for code, value in NORMAL.items()} | changed
            for i, (_, changed, *_) in enumerate(CASES)}
    return _build(rows)


def _row(con, pid):
    frame = con.execute("SELECT * FROM mart.hematotox WHERE participant_id = ?", [pid]).df()
    assert len(frame) == 1
    return frame.iloc[0].astype(object).where(frame.iloc[0].notna(), None).to_dict()


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c[0] for c in CASES])
def test_score(scored, i):
    _, changed, score, risk, points, null_reason = CASES[i]
    row = _row(scored, f"CD22-{i:03d}")
    assert (row["score"], row["risk"], row["null_reason"]) == (score, risk, null_reason)
    expected = {marker: 0 for marker in MARKER.values()} | points
    assert {marker: row[f"points_{marker}"] for marker in MARKER.values()} == expected
    assert "14 days" in row["method"]


def test_the_result_used_is_on_the_row(scored):
    row = _row(scored, f"CD22-{[c[0] for c in CASES].index('ferritin-latest'):03d}")
    assert (row["ferritin_value"], row["ferritin_qualifier"]) == (300.0, None)
    assert f"{row['ferritin_date']:%Y-%m-%d}" == "2026-02-27"
    row = _row(scored, f"CD22-{[c[0] for c in CASES].index('plt-BLQ'):03d}")
    assert (row["plt_value"], row["plt_qualifier"]) == (None, "BLQ")
    row = _row(scored, f"CD22-{[c[0] for c in CASES].index('plt-<75'):03d}")
    assert (row["plt_value"], row["plt_qualifier"]) == (75.0, "<")


# conventional units (g/dL, mg/dL) converted at load by car22.intake.units, then scored
UNIT_CASES = [
    ("HGB", "g/dL", 9.0, "hgb", 0),
    ("HGB", "g/dL", 8.99, "hgb", 1),
    ("HGB", "g/L", 90, "hgb", 0),
    ("CRP", "mg/dL", 3.0, "crp", 0),
    ("CRP", "mg/dL", 3.01, "crp", 1),
    ("CRP", "mg/L", 30, "crp", 0),
    ("PLT", "cells/uL", 75_000, "plt", 1),
    ("ANC", "cells/uL", 1_200, "anc", 0),
    ("FERR", "ug/L", 650, "ferritin", 1),
]


@pytest.mark.parametrize("code, unit, value, marker, points", UNIT_CASES,
                         ids=[f"{c[0]}-{c[2]}-{c[1]}" for c in UNIT_CASES])
def test_conventional_units_are_converted_at_load(code, unit, value, marker, points):
    (canonical,), canonical_unit = convert(pd.Series([code]), pd.Series([unit]), pd.Series([float(value)]))
    assert canonical_unit[0] == {"HGB": "g/L", "CRP": "mg/L", "FERR": "ng/mL"}.get(code, "10^9/L")
    results = {c: [(1, v)] for c, v in NORMAL.items()} | {code: [(1, float(canonical[0]))]}
    row = _row(_build({"CD22-001": results}), "CD22-001")
    assert row[f"points_{marker}"] == points and row["score"] == points


def test_only_lymphodepleted_participants_and_every_column_commented():
    con = _build({"CD22-001": {c: [(1, v)] for c, v in NORMAL.items()}})
    con.execute("INSERT INTO core.participants (participant_id, infused) VALUES ('CD22-002', FALSE)")
    hematotox.build(con, load_protocol())
    assert con.execute("SELECT participant_id FROM mart.hematotox").fetchall() == [("CD22-001",)]
    assert not con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'hematotox' "
                           "AND comment IS NULL").fetchall()
    assert con.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'hematotox'").fetchall()[0][0]

"""Lymphodepletion dose compliance (derivations §6.2): Mosteller BSA, ±10 % at its edges, day flags, build()."""
import math

import duckdb
import pandas as pd
import pytest

from car22.config import load_protocol
from car22.rules import dosing
from car22.sql import run_sql_file

FLU_DAYS, CY_DAYS = [-5, -4, -3, -2], [-3, -2]
BSA_170_70 = 1.818118685772619     # sqrt(170 x 70 / 3600) = sqrt(3.30555...) by hand: 1.8181186857...


@pytest.mark.parametrize("height, weight, bsa", [
    (170, 70, BSA_170_70),
    (180, 80, 2.0),            # 14400 / 3600 = 4
    (100, 36, 1.0),            # 3600 / 3600 = 1
    (None, 70, None), (170, None, None), (0, 70, None),
])
def test_mosteller_bsa(height, weight, bsa):
    assert dosing.mosteller_bsa(height, weight) == (bsa if bsa is None else pytest.approx(bsa, rel=1e-15))


def assess(days, doses, expected_days=FLU_DAYS, expected_mg=60.0, infused=True, ld_start="2026-03-02"):
    """mart.ld_dosing rows of one participant (180 cm, 80 kg: BSA exactly 2.0 m2) and one agent, whose protocol
    dose is expected_mg / 2.0 mg/m2 on expected_days."""
    participants = pd.DataFrame({"participant_id": ["CD22-001"], "height_cm": [None if expected_mg is None else 180],
                                 "weight_kg": [80], "ld_start_date": [pd.Timestamp(ld_start)], "infused": [infused]})
    base = pd.Timestamp(ld_start) + pd.Timedelta(days=5)
    treatments = pd.DataFrame({
        "participant_id": "CD22-001", "agent": "fludarabine",
        "admin_date": [pd.NaT if d is None else base + pd.Timedelta(days=d) for d in days],
        "study_day": pd.array(days if infused else [None] * len(days), dtype="Int64"),
        "dose_mg": pd.array(doses, dtype="Float64"), "bsa_used_m2": 2.0})
    settings = {"tolerance_pct": 10, "fludarabine_mg_m2": (expected_mg or 60.0) / 2.0,
                "fludarabine_days": expected_days, "cyclophosphamide_mg_m2": 500, "cyclophosphamide_days": []}
    rows = dosing.ld_dosing(participants, treatments, settings)
    return rows[rows.agent == "fludarabine"]


@pytest.mark.parametrize("dose, expected_mg, deviation, flag", [
    (66.0, 60.0, 10.0, "OK"),                       # fludarabine 30 x 2.0 m2: exactly +10 %
    (54.0, 60.0, -10.0, "OK"),                      # exactly -10 %
    (66.01, 60.0, 10.016666666666667, "DOSE_OUT_OF_RANGE"),
    (53.99, 60.0, -10.016666666666663, "DOSE_OUT_OF_RANGE"),
    (1100.0, 1000.0, 10.0, "OK"),                   # cyclophosphamide 500 x 2.0 m2
    (1100.1, 1000.0, 10.009999999999991, "DOSE_OUT_OF_RANGE"),
    (900.0, 1000.0, -10.0, "OK"),
    (899.9, 1000.0, -10.010000000000002, "DOSE_OUT_OF_RANGE"),
    (60.0, 60.0, 0.0, "OK"),
])
def test_dose_within_ten_percent(dose, expected_mg, deviation, flag):
    row = assess([-5], [dose], expected_days=[-5], expected_mg=expected_mg).iloc[0]
    assert row["deviation_pct"] == pytest.approx(deviation, abs=1e-9)
    assert row["flag"] == flag


def test_exactly_ten_percent_with_an_irrational_bsa():
    expected = 30 * BSA_170_70                      # 54.5435605731...
    high = expected * 1.1                           # 10.000000000000004 % in floating point
    assert dosing.deviation_pct(high, expected) != 10.0
    assert dosing.within_tolerance(dosing.deviation_pct(high, expected), 10)
    assert dosing.within_tolerance(dosing.deviation_pct(expected * 0.9, expected), 10)
    assert not dosing.within_tolerance(dosing.deviation_pct(expected * 1.1001, expected), 10)


def flags(days, doses, expected_days=FLU_DAYS, expected_mg=60.0, **given):
    """(study day, dose, flag) of each row, in the mart's order (study day, then administration order)."""
    rows = assess(days, doses, expected_days, expected_mg, **given)
    return [(None if pd.isna(d) else int(d), None if pd.isna(m) else m, f)
            for d, m, f in zip(rows.study_day, rows.dose_mg, rows.flag)]


def test_full_schedule_is_ok():
    assert flags([-5, -4, -3, -2], [60, 60, 60, 60]) == [(-5, 60, "OK"), (-4, 60, "OK"), (-3, 60, "OK"),
                                                           (-2, 60, "OK")]


def test_missing_day():
    assert flags([-5, -4, -2], [60, 60, 60]) == [(-5, 60, "OK"), (-4, 60, "OK"), (-3, None, "MISSING_DOSE"),
                                                 (-2, 60, "OK")]


def test_extra_dose_on_an_expected_day():
    # the first dose of the day keeps its own flag (here out of range); the second is the extra one
    assert flags([-5, -4, -4, -3, -2], [60, 70, 60, 60, 60]) == [
        (-5, 60, "OK"), (-4, 70, "DOSE_OUT_OF_RANGE"), (-4, 60, "EXTRA_DOSE"), (-3, 60, "OK"), (-2, 60, "OK")]


def test_wrong_day_and_the_day_it_should_have_been():
    # cyclophosphamide on days -4 and -2: -4 is not a cyclophosphamide day, -3 is missing
    assert flags([-4, -2], [1000, 1000], CY_DAYS, 1000.0) == [(-4, 1000, "WRONG_DAY"), (-3, None, "MISSING_DOSE"),
                                                              (-2, 1000, "OK")]


def test_wrong_day_takes_precedence_over_the_dose():
    assert flags([-1], [500], CY_DAYS, 1000.0)[-1] == (-1, 500, "WRONG_DAY")


def test_unknown_day_dose_missing_and_bsa_missing():
    assert flags([None, -5, -4, -3, -2], [60, None, 60, 60, 60]) == [
        (-5, None, "NOT_ASSESSABLE"), (-4, 60, "OK"), (-3, 60, "OK"), (-2, 60, "OK"), (None, 60, "UNKNOWN_DAY")]
    assert flags([-5, -6], [60, 60], expected_mg=None)[:2] == [(-6, 60, "WRONG_DAY"), (-5, 60, "NOT_ASSESSABLE")]


def test_study_days_of_a_participant_never_infused_count_from_the_planned_day_0():
    # LD start 2026-03-02 = planned day -5: doses on 03-02 and 03-05 are days -5 and -2
    assert flags([-5, -2], [60, 60], infused=False) == [(-5, 60, "OK"), (-4, None, "MISSING_DOSE"),
                                                        (-3, None, "MISSING_DOSE"), (-2, 60, "OK")]
    assert set(assess([-5, -2], [60, 60], infused=False).study_day_basis) == {"PLANNED_DAY_0"}
    assert set(assess([-5, -2], [60, 60]).study_day_basis) == {"INFUSION"}


def test_build_on_a_hand_made_core():
    con = duckdb.connect()
    run_sql_file(con, "ops/schema.sql")
    run_sql_file(con, "core/schema.sql")
    # bsa_m2 as the ingestion computes it (warehouse/core/participants.sql): the same Mosteller value
    con.execute("""INSERT INTO core.participants (participant_id, height_cm, weight_kg, bsa_m2, ld_start_date,
                   infusion_date, infused) VALUES
        ('CD22-001', 170, 70, sqrt(170 * 70 / 3600), '2026-03-02', '2026-03-07', TRUE),
        ('CD22-002', 150, 40, sqrt(150 * 40 / 3600), NULL, NULL, FALSE),
        ('CD22-003', 180, 80, sqrt(180 * 80 / 3600), '2026-04-03', NULL, FALSE),
        ('CD22-004', 180, 80, sqrt(180 * 80 / 3600), NULL, '2026-05-01', TRUE)""")
    con.execute("""INSERT INTO core.treatments (participant_id, instance, agent, admin_date, study_day, dose_mg,
                   bsa_used_m2) VALUES
        ('CD22-001', 1, 'fludarabine', '2026-03-02', -5, 54.5, 1.82),
        ('CD22-001', 2, 'fludarabine', '2026-03-03', -4, 54.5, 1.82),
        ('CD22-001', 3, 'fludarabine', '2026-03-04', -3, 54.5, 1.82),
        ('CD22-001', 4, 'fludarabine', '2026-03-05', -2, 60.1, 1.82),
        ('CD22-001', 5, 'cyclophosphamide', '2026-03-04', -3, 909, 1.82),
        ('CD22-001', 6, 'cyclophosphamide', '2026-03-05', -2, 1091, 1.82),
        ('CD22-001', 7, 'cd22_car', '2026-03-07', 0, NULL, NULL),
        ('CD22-003', 1, 'fludarabine', '2026-04-03', NULL, 60, 2.0),
        ('CD22-003', 2, 'fludarabine', '2026-04-04', NULL, 60, 2.0),
        ('CD22-003', 3, 'cyclophosphamide', '2026-04-04', NULL, 1000, 2.0)""")
    dosing.build(con, load_protocol())
    core_bsa = dict(con.sql("SELECT participant_id, bsa_m2 FROM core.participants").fetchall())
    mart_bsa = dict(con.sql("SELECT DISTINCT participant_id, bsa_m2 FROM mart.ld_dosing").fetchall())
    assert mart_bsa == {pid: pytest.approx(core_bsa[pid], rel=1e-12) for pid in mart_bsa}
    rows = con.sql("""SELECT participant_id, agent, study_day, dose_mg, round(expected_mg, 4),
                             round(deviation_pct, 4), flag, study_day_basis
                      FROM mart.ld_dosing ORDER BY ALL""").fetchall()
    # 001: BSA 1.8181186858; fludarabine 30 x BSA = 54.5436, 60.1 is +10.1872 %; cyclophosphamide 909.0593,
    # 1091 is +20.0142 %; 909 is -0.0065 %
    assert rows == [
        ("CD22-001", "cyclophosphamide", -3, 909.0, 909.0593, -0.0065, "OK", "INFUSION"),
        ("CD22-001", "cyclophosphamide", -2, 1091.0, 909.0593, 20.0142, "DOSE_OUT_OF_RANGE", "INFUSION"),
        ("CD22-001", "fludarabine", -5, 54.5, 54.5436, -0.0799, "OK", "INFUSION"),
        ("CD22-001", "fludarabine", -4, 54.5, 54.5436, -0.0799, "OK", "INFUSION"),
        ("CD22-001", "fludarabine", -3, 54.5, 54.5436, -0.0799, "OK", "INFUSION"),
        ("CD22-001", "fludarabine", -2, 60.1, 54.5436, 10.1872, "DOSE_OUT_OF_RANGE", "INFUSION"),
        # 003: lymphodepleted, never infused: planned day 0 = 2026-04-03 + 5 = 2026-04-08
        ("CD22-003", "cyclophosphamide", -4, 1000.0, 1000.0, 0.0, "WRONG_DAY", "PLANNED_DAY_0"),
        ("CD22-003", "cyclophosphamide", -3, None, 1000.0, None, "MISSING_DOSE", "PLANNED_DAY_0"),
        ("CD22-003", "cyclophosphamide", -2, None, 1000.0, None, "MISSING_DOSE", "PLANNED_DAY_0"),
        ("CD22-003", "fludarabine", -5, 60.0, 60.0, 0.0, "OK", "PLANNED_DAY_0"),
        ("CD22-003", "fludarabine", -4, 60.0, 60.0, 0.0, "OK", "PLANNED_DAY_0"),
        ("CD22-003", "fludarabine", -3, None, 60.0, None, "MISSING_DOSE", "PLANNED_DAY_0"),
        ("CD22-003", "fludarabine", -2, None, 60.0, None, "MISSING_DOSE", "PLANNED_DAY_0"),
        # 004: infused with no lymphodepletion recorded; 002 (screen failure) has no rows
        ("CD22-004", "cyclophosphamide", -3, None, 1000.0, None, "MISSING_DOSE", "INFUSION"),
        ("CD22-004", "cyclophosphamide", -2, None, 1000.0, None, "MISSING_DOSE", "INFUSION"),
        ("CD22-004", "fludarabine", -5, None, 60.0, None, "MISSING_DOSE", "INFUSION"),
        ("CD22-004", "fludarabine", -4, None, 60.0, None, "MISSING_DOSE", "INFUSION"),
        ("CD22-004", "fludarabine", -3, None, 60.0, None, "MISSING_DOSE", "INFUSION"),
        ("CD22-004", "fludarabine", -2, None, 60.0, None, "MISSING_DOSE", "INFUSION"),
    ]
    assert con.sql("SELECT expected_days, mg_per_m2, tolerance_pct FROM mart.ld_dosing WHERE participant_id = "
                   "'CD22-001' AND agent = 'cyclophosphamide' LIMIT 1").fetchall() == [([-3, -2], 500.0, 10.0)]
    assert con.sql("SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'mart' AND table_name = 'ld_dosing' "
                   "AND comment IS NULL").fetchall() == [(0,)]
    assert math.isclose(con.sql("SELECT bsa_m2 FROM mart.ld_dosing LIMIT 1").fetchall()[0][0], BSA_170_70)

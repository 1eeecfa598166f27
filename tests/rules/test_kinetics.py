"""CAR kinetics (derivations §3): hand-computed metrics, persistence windows, B-cell aplasia, cohort table."""
import math

import duckdb
import numpy as np
import pytest

from car22.config import load_protocol
from car22.rules import kinetics
from car22.sql import run_sql_file

WINDOWS = {"detect_d28": (21, 35), "detect_m3": (76, 104), "detect_m6": (150, 210), "detect_m12": (335, 395)}


def metrics(days, values, cd22=True, method="linear"):
    return kinetics.profile_metrics(days, values, assume_zero_at_day0=cd22, auc_method=method, windows=WINDOWS)


def test_worked_example_of_the_spec():
    # 7*(0+5)/2 + 7*(5+40)/2 + 7*(40+15)/2 + 7*(15+3)/2 = 17.5 + 157.5 + 192.5 + 63 = 430.5
    m = metrics([7, 14, 21, 28, 61, 91], [5, 40, 15, 3, 0, 0])
    assert (m["cmax"], m["tmax_day"], m["auc_0_28"], m["tlast_day"], m["clast"]) == (40, 14, 430.5, 28, 3)
    assert m["auc_0_last"] == 430.5 and m["n_samples"] == 6
    assert (m["detect_d28"], m["detect_m3"], m["detect_m6"]) == (True, False, None)


def test_all_zero_profile():
    m = metrics([7, 14, 28, 35], [0, 0, 0, 0])
    assert m["cmax"] is None and m["tmax_day"] is None and m["tlast_day"] is None
    assert m["auc_0_28"] == 0 and m["auc_0_last"] == 0 and m["detect_d28"] is False


def test_intermittent_below_limit_counts_as_zero():
    # 0 at 0, 10 at 7, 0 (BLQ) at 14, 4 at 21, 0 at 28: 35 + 35 + 14 + 14 = 98
    m = metrics([7, 14, 21, 28], [10, 0, 4, 0])
    assert m["auc_0_28"] == 98 and m["tlast_day"] == 21 and m["clast"] == 4
    # auc_0_last stops at tlast (day 21): 35 + 35 + 14 = 84
    assert m["auc_0_last"] == 84


def test_day_28_interpolated_between_neighbours():
    # samples 7:10, 21:20, 35:6 -> C28 = 20 + (6-20)*(7/14) = 13
    # area 0-7: 35; 7-21: 14*15 = 210; 21-28: 7*(20+13)/2 = 115.5 -> 360.5
    assert metrics([7, 21, 35], [10, 20, 6])["auc_0_28"] == pytest.approx(360.5)


def test_no_sample_after_day_28_leaves_auc_0_28_null():
    m = metrics([7, 14, 21], [5, 40, 15])
    assert m["auc_0_28"] is None and m["auc_0_last"] == pytest.approx(17.5 + 157.5 + 192.5)


def test_lin_up_log_down_by_hand():
    # rising 0-7, 7-14 linear: 17.5 + 157.5; falling 14-21: (40-15)*7/ln(40/15) = 175/0.980829 = 178.4205;
    # 21-28: (15-3)*7/ln(5) = 84/1.609438 = 52.1920 -> 405.6125
    m = metrics([7, 14, 21, 28], [5, 40, 15, 3], method="lin-up/log-down")
    expected = 17.5 + 157.5 + 25 * 7 / math.log(40 / 15) + 12 * 7 / math.log(5)
    assert m["auc_0_28"] == pytest.approx(expected, abs=1e-9) and m["auc_0_28"] == pytest.approx(405.6125, abs=1e-4)
    assert m["auc_method"] == "lin-up/log-down"


def test_same_day_samples_are_averaged_in_the_order_a_hand_sum_adds_them():
    # (0.1 + 0.2) + 0.3 = 0.6000000000000001 (a compensated sum gives 0.6); / 3 = 0.20000000000000004
    m = metrics([7, 7, 7], [0.1, 0.2, 0.3])
    assert m["n_samples"] == 1 and m["cmax"] == (0.1 + 0.2 + 0.3) / 3 == 0.20000000000000004


def test_running_sums_restart_at_each_profile_and_add_in_row_order():
    values = np.array([0.1, 0.2, 0.3, 1.0, 0.1, 0.2])
    starts = np.array([True, False, False, True, True, False])
    assert kinetics.running_sums(values, starts).tolist() == [0.1, 0.1 + 0.2, 0.1 + 0.2 + 0.3, 1.0, 0.1, 0.1 + 0.2]


def test_ties_at_cmax_take_the_first_day():
    assert metrics([7, 14, 21], [30, 30, 5])["tmax_day"] == 7


def test_baseline_samples_are_not_in_the_profile_and_cd19_gets_no_assumed_zero():
    m = metrics([-5, 7, 14, 28], [50, 2, 4, 1], cd22=False)
    # CD19CAR: area from the first sample (day 7): 7*(2+4)/2 + 14*(4+1)/2 = 21 + 35 = 56
    assert m["auc_0_28"] == 56 and m["n_samples"] == 3 and m["cmax"] == 4


@pytest.mark.parametrize("day, expected", [(20, None), (21, True), (35, True), (36, None)])
def test_persistence_window_edges(day, expected):
    assert metrics([day], [1.0])["detect_d28"] is expected


@pytest.mark.parametrize("pct, absolute, state", [
    (0.5, 20, "APLASTIC"), (0.99, None, "APLASTIC"), (1.0, 50, "RECOVERED"), (1.0, None, "RECOVERED"),
    (0.5, 60, "INDETERMINATE"), (2.0, 49.9, "INDETERMINATE"),
])
def test_b_cell_states(pct, absolute, state):
    assert kinetics.b_cell_states([pct], [absolute], max_pct=1.0, max_abs=50).tolist() == [state]


def test_loss_of_aplasia_needs_confirmation():
    days = [7, 14, 28, 91, 182, 274]
    states = ["APLASTIC", "APLASTIC", "APLASTIC", "RECOVERED", "APLASTIC", "RECOVERED"]
    result = kinetics.b_cell_aplasia(days, states, confirm=True)
    assert result == {"aplasia_at_d28": True, "bca_loss_day": None, "bca_status": "ONGOING", "last_aplastic_day": 182,
                      "n_samples": 6}
    assert kinetics.b_cell_aplasia(days, states, confirm=False)["bca_loss_day"] == 91
    confirmed = kinetics.b_cell_aplasia(days + [365], states + ["RECOVERED"], confirm=True)
    assert confirmed["bca_loss_day"] == 274


A, R, I = "APLASTIC", "RECOVERED", "INDETERMINATE"


# B-cell aplasia loss needs aplasia first, on or after day 0 (derivations §3): (days, states, confirm) ->
# (bca_loss_day, bca_status)
BCA_CASES = [
    ([0, 7, 14, 28], [R, R, R, R], True, (None, "NEVER_APLASTIC")),     # B cells never gone: not a loss
    ([7, 14, 28, 91, 182], [R, R, A, R, R], True, (91, "LOST")),         # present before the CAR took effect
    ([7, 14, 28, 91], [R, R, A, R], False, (91, "LOST")),                # unconfirmed setting, same rule
    ([-5, 7, 14], [A, R, R], True, (None, "NEVER_APLASTIC")),            # aplastic only before day 0
    ([0, 7, 14], [A, R, R], True, (7, "LOST")),                          # aplasia on day 0 counts
    ([7, 14, 28], [I, R, R], True, (None, "NEVER_APLASTIC")),            # indeterminate is not aplasia
    ([7, 14], [A, R], True, (None, "ONGOING")),                          # the last recovery is unconfirmed
    ([7, 14, 28], [A, A, A], True, (None, "ONGOING")),
    ([], [], True, (None, None)),                                        # no sample: unknown
]


@pytest.mark.parametrize("days, states, confirm, expected", BCA_CASES)
def test_loss_of_aplasia_needs_aplasia_first(days, states, confirm, expected):
    result = kinetics.b_cell_aplasia(days, states, confirm=confirm)
    assert (result["bca_loss_day"], result["bca_status"]) == expected


def test_geometric_mean_and_cv_by_hand():
    # logs of 10, 100, 1000: mean ln 100 -> 100; sd = ln 10 = 2.302585; CV = 100*sqrt(exp(5.301898)-1) = 1413.5 %
    mean, cv = kinetics.geometric_summary([10, 100, 1000, 0])
    assert mean == pytest.approx(100) and cv == pytest.approx(100 * math.sqrt(math.exp(math.log(10) ** 2) - 1))


def test_build_keeps_cd19_car_apart():
    con = duckdb.connect()
    run_sql_file(con, "ops/schema.sql")
    run_sql_file(con, "core/schema.sql")
    con.execute("INSERT INTO core.participants (participant_id, infused, infusion_date) VALUES "
                "('CD22-001', TRUE, '2026-03-01')")
    rows = [(7, 5, 1), (14, 40, 50), (21, 15, 0), (28, 3, 0)]
    for day, car22, car19 in rows:
        con.execute("""INSERT INTO core.flow_samples (participant_id, sample_id, panel, specimen, study_day, qc,
                       cd3_abs_cells_ul, car22_pct, car19_pct, cd19b_pct, cd19b_abs_cells_ul)
                       VALUES ('CD22-001', ?, 'CAR', 'PB', ?, 'PASS', 100, ?, ?, 0.1, 1)""",
                    [f"s{day}", day, car22, car19])
    con.execute("""INSERT INTO core.flow_samples (participant_id, sample_id, panel, specimen, study_day, qc,
                   cd3_abs_cells_ul, car22_pct) VALUES ('CD22-001', 'bad', 'CAR', 'PB', 10, 'FAIL', 100, 99)""")
    kinetics.build(con, load_protocol())
    cd22 = con.sql("SELECT cmax, tmax_day, auc_0_28 FROM mart.car_kinetics "
                   "WHERE assay = 'flow_abs' AND target = 'CD22CAR'").fetchall()
    assert cd22 == [(40.0, 14, 430.5)]       # 100 cells/uL x pct/100 = the worked example; the QC failure is out
    cd19 = con.sql("SELECT cmax FROM mart.car_kinetics WHERE assay = 'flow_pct' AND target = 'CD19CAR'").fetchall()
    assert cd19 == [(50.0,)]
    assert con.sql("SELECT n, n_expanded FROM mart.car_kinetics_summary WHERE assay = 'flow_abs' "
                   "AND target = 'CD22CAR'").fetchall() == [(1, 1)]
    assert con.sql("SELECT aplasia_at_d28 FROM mart.b_cell_aplasia").fetchall() == [(True,)]


# CAR kinetics from blood only (derivations §3): a marrow sample on the same day is stored, never averaged in.
# Blood flow_abs is the worked example (100 cells/uL x %); marrow samples on days 14 and 28 would change it.
SPECIMEN_CASES = [
    # assay, cmax, tmax_day, auc_0_28 of the blood profile
    ("flow_pct", 40.0, 14, 430.5),
    ("flow_abs", 40.0, 14, 430.5),
    # qPCR blood 1000 on day 7, 0 (BLQ) on day 28: 7*1000/2 + 21*1000/2 = 14000
    ("qpcr", 1000.0, 7, 14000.0),
]


@pytest.fixture(scope="module")
def with_marrow():
    con = duckdb.connect()
    run_sql_file(con, "ops/schema.sql")
    run_sql_file(con, "core/schema.sql")
    con.execute("INSERT INTO core.participants (participant_id, infused, infusion_date) VALUES "
                "('CD22-001', TRUE, '2026-03-01')")
    flow = [("PB", 7, 5, 0.1), ("PB", 14, 40, 0.1), ("PB", 21, 15, 0.1), ("PB", 28, 3, 0.1),
            ("BM", 14, 90, 5.0), ("BM", 28, 60, 5.0), ("BM", 35, 60, 5.0)]
    for specimen, day, car22, b_pct in flow:
        con.execute("""INSERT INTO core.flow_samples (participant_id, sample_id, panel, specimen, study_day, qc,
                       cd3_abs_cells_ul, car22_pct, cd19b_pct, cd19b_abs_cells_ul)
                       VALUES ('CD22-001', ?, 'CAR', ?, ?, 'PASS', 100, ?, ?, NULL)""",
                    [f"{specimen}{day}", specimen, day, car22, b_pct])
    qpcr = [("PB", 7, 1000, False), ("PB", 28, None, True), ("BM", 7, 90000, False), ("BM", 28, 5000, False)]
    for specimen, day, copies, blq in qpcr:
        con.execute("""INSERT INTO core.qpcr_results (participant_id, sample_id, target, specimen, study_day,
                       copies_per_ug, below_lloq, qc) VALUES ('CD22-001', ?, 'CD22CAR', ?, ?, ?, ?, 'PASS')""",
                    [f"Q{specimen}{day}", specimen, day, copies, blq])
    kinetics.build(con, load_protocol())
    return con


@pytest.mark.parametrize("assay, cmax, tmax_day, auc", SPECIMEN_CASES)
def test_kinetics_from_blood_samples_only(with_marrow, assay, cmax, tmax_day, auc):
    rows = with_marrow.execute("SELECT cmax, tmax_day, auc_0_28 FROM mart.car_kinetics WHERE assay = ? "
                               "AND target = 'CD22CAR'", [assay]).fetchall()
    assert rows == [(cmax, tmax_day, auc)]


def test_marrow_samples_are_stored_and_b_cells_read_from_blood(with_marrow):
    assert with_marrow.sql("SELECT count(*) FROM mart.car_levels WHERE specimen = 'BM'").fetchall() == [(8,)]
    # marrow B cells at 5 % (above the limit) are not a recovery: blood stays aplastic
    assert with_marrow.sql("SELECT bca_status, bca_loss_day, n_samples FROM mart.b_cell_aplasia").fetchall() == [
        ("ONGOING", None, 4)]

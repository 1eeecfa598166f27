"""Relapse-free survival (derivations §5): outcomes per participant, Kaplan-Meier by hand, the 1-year estimate."""
from datetime import date, timedelta

import duckdb
import numpy as np
import pytest
from scipy.stats import CensoredData, ecdf

from car22.config import load_protocol
from car22.rules import mrd, survival
from car22.sql import run_sql_file

DAY0 = date(2026, 3, 1)


def d(day: int) -> date:
    return DAY0 + timedelta(days=day)


@pytest.mark.parametrize("events, assessments, therapy, censor, expected", [
    # earliest event wins
    ([(d(200), "DEATH"), (d(91), "MRD")], [d(28), d(91)], [], True, (d(91), True, "MRD", None)),
    # same day: morphologic before extramedullary before MRD before death
    ([(d(182), "MRD"), (d(182), "MORPHOLOGIC")], [d(182)], [], True, (d(182), True, "MORPHOLOGIC", None)),
    ([(d(182), "DEATH"), (d(182), "EXTRAMEDULLARY")], [], [], True, (d(182), True, "EXTRAMEDULLARY", None)),
    # no event: censored at the last disease assessment, not the last contact
    ([], [d(28), d(91), d(182)], [], True, (d(182), False, None, "LAST_DISEASE_ASSESSMENT")),
    # HSCT before the event: primary censors at HSCT, sensitivity keeps the event
    ([(d(300), "MRD")], [d(91), d(300)], [(d(120), "HSCT")], True, (d(120), False, None, "HSCT")),
    ([(d(300), "MRD")], [d(91), d(300)], [(d(120), "HSCT")], False, (d(300), True, "MRD", None)),
    # event on the day therapy starts counts
    ([(d(120), "MRD")], [d(120)], [(d(120), "SUBSEQUENT_THERAPY")], True, (d(120), True, "MRD", None)),
    # therapy after the last assessment: censored at the last assessment (the earlier)
    ([], [d(91)], [(d(120), "SUBSEQUENT_THERAPY")], True, (d(91), False, None, "LAST_DISEASE_ASSESSMENT")),
    ([], [d(91), d(182)], [(d(120), "SUBSEQUENT_THERAPY")], True, (d(120), False, None, "SUBSEQUENT_THERAPY")),
    # nothing after infusion
    ([], [], [], True, (d(0), False, None, "NO_ASSESSMENT_AFTER_INFUSION")),
])
def test_rfs_outcome(events, assessments, therapy, censor, expected):
    outcome = survival.rfs_outcome(DAY0, events, assessments, therapy, censor_at_subsequent_therapy=censor)
    assert (outcome.end_date, outcome.event, outcome.event_type, outcome.censor_reason) == expected


# Hand calculation, times 2E 3C 4E 4E 6C 8E (n = 6):
#   t=2: n=6 d=1  S = 5/6 = 0.833333;          Greenwood = 1/(6*5) = 0.033333
#   t=4: n=4 d=2  S = 5/6 * 2/4 = 0.416667;    Greenwood = 1/30 + 2/(4*2) = 0.283333
#   t=8: n=1 d=1  S = 0 (no interval)
#   log-log at t=4: ln S = -0.875469; spread = 1.959964 * sqrt(0.283333) / 0.875469 = 1.191676
#   lower = S^exp(1.191676) = 0.416667^3.292700 = 0.05598;  upper = S^exp(-1.191676) = 0.416667^0.303701 = 0.76654
TIMES = np.array([2, 3, 4, 4, 6, 8])
EVENTS = np.array([1, 0, 1, 1, 0, 1], dtype=bool)


def test_kaplan_meier_by_hand():
    curve = survival.kaplan_meier(TIMES, EVENTS).set_index("time_days")
    assert curve.loc[0, "survival"] == 1.0 and curve.loc[0, "n_at_risk"] == 6
    assert curve.loc[2, "survival"] == pytest.approx(5 / 6, abs=1e-12)
    assert curve.loc[3, ["n_at_risk", "n_censored", "n_events"]].tolist() == [5, 1, 0]
    assert curve.loc[4, "survival"] == pytest.approx(5 / 12, abs=1e-12)
    assert curve.loc[4, "greenwood"] == pytest.approx(17 / 60, abs=1e-12)
    assert curve.loc[4, "ci_lower"] == pytest.approx(0.05598, abs=5e-5)
    assert curve.loc[4, "ci_upper"] == pytest.approx(0.76654, abs=5e-5)
    assert curve.loc[8, "survival"] == 0.0 and np.isnan(curve.loc[8, "ci_lower"])


def test_kaplan_meier_agrees_with_scipy():
    curve = survival.kaplan_meier(TIMES, EVENTS).set_index("time_days")
    fit = ecdf(CensoredData(uncensored=TIMES[EVENTS], right=TIMES[~EVENTS])).sf
    interval = fit.confidence_interval(method="log-log")
    for t, s, low, high in zip(fit.quantiles, fit.probabilities, interval.low.probabilities,
                               interval.high.probabilities):
        assert curve.loc[int(t), "survival"] == pytest.approx(s, abs=1e-12)
        if 0 < s < 1:
            assert curve.loc[int(t), "ci_lower"] == pytest.approx(low, abs=1e-9)
            assert curve.loc[int(t), "ci_upper"] == pytest.approx(high, abs=1e-9)


def test_landmark_reads_the_step_function():
    times, events = np.array([100, 200, 400, 500]), np.array([True, False, False, False])
    result = survival.landmark(survival.kaplan_meier(times, events), times, events, 365)
    assert result["estimate"] == pytest.approx(0.75) and result["n_at_risk"] == 2 and result["n_events"] == 1
    assert result["null_reason"] is None and result["ci_lower"] is not None


def test_s_equal_one_has_no_interval():
    times, events = np.array([400, 500]), np.array([False, False])
    result = survival.landmark(survival.kaplan_meier(times, events), times, events, 365)
    assert result["estimate"] == 1.0 and result["ci_lower"] is None and "S(365) = 1" in result["null_reason"]


def test_nobody_at_risk_at_day_365_gives_null_with_reason():
    times, events = np.array([100, 200]), np.array([True, False])
    result = survival.landmark(survival.kaplan_meier(times, events), times, events, 365)
    assert result["estimate"] is None and result["null_reason"].startswith("nobody at risk at day 365")


def test_build_on_a_small_cohort_never_counts_the_uninfused():
    con = duckdb.connect()
    run_sql_file(con, "ops/schema.sql")
    run_sql_file(con, "core/schema.sql")
    con.execute("""INSERT INTO core.participants (participant_id, infused, infusion_date, death_date, hsct_date) VALUES
        ('CD22-001', TRUE, '2026-03-01', NULL, NULL),
        ('CD22-002', FALSE, NULL, NULL, NULL),
        ('CD22-003', TRUE, '2026-03-01', '2026-09-01', NULL),
        ('CD22-004', TRUE, '2026-03-01', NULL, '2026-05-01')""")
    con.execute("""INSERT INTO core.flow_samples (participant_id, sample_id, panel, specimen, collected_on, study_day,
                   qc, events_total, events_leukemic) VALUES
        ('CD22-001', 'a', 'MRD', 'BM', '2027-03-06', 370, 'PASS', 500000, 0),
        ('CD22-001', 'b', 'MRD', 'PB', '2026-06-01', 92, 'PASS', 500000, 300),
        ('CD22-003', 'c', 'MRD', 'BM', '2026-05-30', 90, 'PASS', 500000, 150),
        ('CD22-004', 'd', 'MRD', 'BM', '2026-06-01', 92, 'PASS', 500000, 0)""")
    protocol = load_protocol()
    mrd.build(con, protocol)
    survival.build(con, protocol)
    rfs = con.sql("SELECT participant_id, analysis, time_days, event, event_type, censor_reason FROM mart.rfs "
                  "ORDER BY 1, 2").fetchall()
    assert rfs == [
        ("CD22-001", "primary", 370, False, None, "LAST_DISEASE_ASSESSMENT"),   # the PB positive is ignored
        ("CD22-001", "sensitivity", 370, False, None, "LAST_DISEASE_ASSESSMENT"),
        ("CD22-003", "primary", 90, True, "MRD", None),
        ("CD22-003", "sensitivity", 90, True, "MRD", None),
        ("CD22-004", "primary", 61, False, None, "HSCT"),
        ("CD22-004", "sensitivity", 92, False, None, "LAST_DISEASE_ASSESSMENT"),
    ]
    # primary: times 61C 90E 370C -> S(90) = 1 - 1/2 = 0.5, one at risk at 365
    endpoint = con.sql("SELECT estimate, n, n_events, n_at_risk, null_reason FROM mart.endpoints "
                       "WHERE analysis = 'primary'").fetchall()
    assert endpoint == [(0.5, 3, 1, 1, None)]

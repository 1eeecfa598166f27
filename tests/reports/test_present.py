"""How the monitors' pages write numbers, codes and times (issue 18), and what the trial report draws when
the warehouse is empty or a result is below the limit."""
from __future__ import annotations

import re
import warnings
from datetime import date, datetime

import duckdb
import numpy as np
import pandas as pd
import pytest

from car22.reports import present, trial_report


@pytest.mark.parametrize("value, shown", [
    (11201, "11,201"), (11201.0, "11,201"), (np.int64(3), "3"), (np.float64(2.0), "2"), (0.0, "0"),
    (0.8923, "0.892"), (16.4, "16.4"), (99.74, "99.7"), (1323.4, "1,323"), (55078.2, "55,078"),
    (True, "yes"), (np.bool_(False), "no"), (-2, "-2"),
])
def test_number(value, shown):
    assert present.cell(value) == shown


@pytest.mark.parametrize("value, digits, shown", [
    (53.0, 0, "53\u00a0%"), (52.63, 0, "53\u00a0%"), (20.04, 1, "20.0\u00a0%"), (-0.01, 1, "0.0\u00a0%"),
    (-1.26, 1, "-1.3\u00a0%"), (None, 0, ""), (float("nan"), 1, ""),
])
def test_percent(value, digits, shown):
    assert present.percent(value, digits) == shown


@pytest.mark.parametrize("value, shown", [
    (datetime(2026, 12, 2, 7, 58, 31, 123456), "2026-12-02 07:58"),
    (pd.Timestamp("2026-12-02 07:58:59.999"), "2026-12-02 07:58"),
    (date(2026, 12, 2), "2026-12-02"),
])
def test_times_to_the_minute(value, shown):
    assert present.cell(value) == shown


@pytest.mark.parametrize("code, shown", [
    ("NOT_ASSESSABLE", "<span title='NOT_ASSESSABLE'>cannot be assessed</span>"),
    ("DOSE_OUT_OF_RANGE", "<span title='DOSE_OUT_OF_RANGE'>dose outside tolerance</span>"),
    ("edc_crs_daily", "<span title='edc_crs_daily'>EDC crs daily</span>"),
    ("participant_id_pattern", "<span title='participant_id_pattern'>participant id pattern</span>"),
    ("SOME_NEW_CODE", "<span title='SOME_NEW_CODE'>some new code</span>"),
    (None, ""),
])
def test_codes_as_words_with_the_code_in_a_tooltip(code, shown):
    assert present.coded(code) == shown


def test_prose_turns_codes_into_words():
    assert present.prose("POSITIVE_LOW marrow MRD on day 5 <b>") == (
        "<span title='POSITIVE_LOW'>positive, below 0.01 %</span> marrow MRD on day 5 &lt;b&gt;")


@pytest.mark.parametrize("assay, values, lloq, line, label", [
    ("qpcr", [0, 400], [50, 50], 50.0, "LLOQ 50 copies/µg: BLQ results drawn on it"),
    ("qpcr", [0, 400, 0], [50, 100, 20], 50.0, "LLOQ 50 copies/µg (median of the samples): BLQ results drawn on it"),
    ("qpcr", [0, 3.2], [None, None], 0.1, "below the limit: drawn on this line, not a level"),
    ("flow_abs", [0, 0.05, 12], [None, None, None], 0.001,
     "not detected (0 cells/µL): drawn on this line, not a level"),
    ("flow_abs", [0, 0], [None, None], 1.0, "not detected (0 cells/µL): drawn on this line, not a level"),
])
def test_results_below_the_limit_go_on_a_drawn_line(assay, values, lloq, line, label):
    rows = pd.DataFrame({"value": values, "lloq": pd.array(lloq, dtype="Float64")})
    found = trial_report._limit_line(rows, assay)
    assert found[0] == pytest.approx(line) and found[1] == label


@pytest.fixture(scope="module")
def empty_warehouse():
    from car22.config import load_protocol
    from car22.loading import versions
    from car22.loading.load import ensure_schema
    from car22.rules.derive import derive_all

    con = duckdb.connect()
    ensure_schema(con)
    versions.resolve(con, 1)
    derive_all(con, load_protocol(None))
    return con


def test_an_empty_warehouse_draws_no_empty_axes_and_warns_nothing(empty_warehouse):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        page = trial_report.render(empty_warehouse)
    sections = dict(re.findall(r"<section id='(\w+)'>(.*?)</section>", page))
    assert [key for key, content in sections.items() if "<svg" in content] == []
    assert "No participant infused yet: a lane appears" in sections["swimmer"]
    assert "No participant infused yet: the curve starts" in sections["endpoint"]
    assert "No CD22 CAR level measured after infusion yet." in sections["expansion"]
    assert "No CRS or ICANS assessment" in sections["toxicity"]

"""The hematotoxicity planted in the default demo (car22.demo.PLANTED_LABS), through the whole night: one
participant per early N-ICAHT grade 0-4, one late N-ICAHT, CAR-HEMATOTOX LOW, HIGH and NULL (a marker missing),
and ICAHT in the tallies and tonight's clinical events."""
import duckdb
import pytest

# participant -> (grade, days_below_primary, days_below_severe) of early N-ICAHT, hand-computed from PLANTED_LABS
EARLY_N_ICAHT = {
    "CD22-013": (0, 0, 0),     # ANC 0.8 through the nadir
    "CD22-014": (1, 3, 0),     # days 3-5
    "CD22-015": (2, 10, 0),    # days 2-11
    "CD22-016": (3, 18, 0),    # days 0-16, day 17 carried from 16
    "CD22-017": (4, 24, 24),   # 0.05 (one <0.1, one BLQ) on days 0-21, carried to 23
}
# participant -> (score, risk, points plt, anc, hgb, crp, ferritin, null_reason)
HEMATOTOX = {
    "CD22-013": (1, "LOW", 1, 0, 0, 0, 0, None),
    "CD22-014": (0, "LOW", 0, 0, 0, 0, 0, None),
    "CD22-019": (4, "HIGH", 2, 0, 0, 0, 2, None),
    "CD22-020": (None, None, 0, 0, 0, 0, None, "no ferritin result in the 14 days before lymphodepletion"),
}


@pytest.fixture(scope="module")
def con(demo_night):
    paths, _, _ = demo_night
    with duckdb.connect(str(paths.warehouse), read_only=True) as connection:
        yield connection


@pytest.mark.parametrize("pid", EARLY_N_ICAHT)
def test_early_n_icaht_grades_as_planted(con, pid):
    assert con.execute("SELECT grade, days_below_primary, days_below_severe FROM mart.icaht WHERE participant_id = ? "
                       "AND scale = 'N-ICAHT' AND phase = 'early'", [pid]).fetchall() == [EARLY_N_ICAHT[pid]]


def test_late_n_icaht_as_planted(con):
    # ANC 0.4 on days 61 and 91, each carried 7 days: two results <= 0.5 -> grade 3
    assert con.execute("SELECT grade, days_below_primary, days_below_severe, n_results, window_end_day, "
                       "window_end_reason FROM mart.icaht WHERE participant_id = 'CD22-018' AND scale = 'N-ICAHT' "
                       "AND phase = 'late'").fetchall() == [(3, 16, 0, 2, 100, "PHASE_END")]


@pytest.mark.parametrize("pid", HEMATOTOX)
def test_hematotox_as_planted(con, pid):
    assert con.execute("SELECT score, risk, points_plt, points_anc, points_hgb, points_crp, points_ferritin, "
                       "null_reason FROM mart.hematotox WHERE participant_id = ?", [pid]).fetchall() == [HEMATOTOX[pid]]


def test_every_infused_participant_is_graded_and_tallied(con):
    assert con.execute("SELECT count(*), count(DISTINCT participant_id) FROM mart.icaht").fetchall() == [(76, 19)]
    assert con.execute("SELECT count(*) FROM mart.hematotox").fetchall() == [(19,)]
    assert con.execute("SELECT DISTINCT toxicity FROM mart.toxicity_tally WHERE scale = 'ICAHT (EHA/EBMT)' "
                       "ORDER BY 1").fetchall() == [("N-ICAHT early",), ("N-ICAHT late",), ("T-ICAHT early",),
                                                    ("T-ICAHT late",)]
    assert con.execute("SELECT detail FROM ops.clinical_events WHERE kind = 'ICAHT_GRADE_3_OR_MORE' "
                       "AND participant_id = 'CD22-017' AND item = 'N-ICAHT early'").fetchall() == [
        ("N-ICAHT early grade 4 (ANC <= 0.5 for 24 days, <= 0.1 for 24 days, study days 0-30)",)]

"""ICAHT grades (derivations §4.5), hand-computed at every boundary: durations 6/7, 13/14, 29/30 days; ANC exactly
0.5 and 0.1; platelets exactly 50 and 20 (and 100); two results vs one in the late phase; carry-forward 7 vs 8
days; unstable recovery 2 vs 3 days; windows ended by relapse, HSCT, next therapy, death; below-LLOQ as 0."""
import duckdb
import pytest

from car22.config import load_protocol
from car22.rules import icaht
from car22.sql import run_sql_file, set_protocol_variables

NORMAL = {"ANC": 2.0, "PLT": 200.0}


def run(first, last, value):
    """One result a day from study day `first` to `last` inclusive."""
    return [(d, value) for d in range(first, last + 1)]


def course(code, *runs, until=30):
    """Daily results: the given runs, normal values on every other day 0..until."""
    given = {d: v for r in runs for d, v in r}
    return [(d, given.get(d, NORMAL[code])) for d in sorted(set(range(0, until + 1)) | set(given))]


# name, test, results [(study day, result text or number)], window ends {kind: day}, phase,
# expected (grade, days_below_primary, days_below_severe, window_end_day, window_end_reason)
CASES = [
    # early N-ICAHT, duration of ANC <= 0.5
    ("N-6d", "ANC", course("ANC", run(0, 5, 0.3)), {}, "early", (1, 6, 0, 30, "PHASE_END")),
    ("N-7d", "ANC", course("ANC", run(0, 6, 0.3)), {}, "early", (2, 7, 0, 30, "PHASE_END")),
    ("N-13d", "ANC", course("ANC", run(0, 12, 0.3)), {}, "early", (2, 13, 0, 30, "PHASE_END")),
    ("N-14d", "ANC", course("ANC", run(0, 13, 0.3)), {}, "early", (3, 14, 0, 30, "PHASE_END")),
    ("N-29d", "ANC", course("ANC", run(0, 28, 0.3)), {}, "early", (3, 29, 0, 30, "PHASE_END")),
    ("N-30d", "ANC", course("ANC", run(0, 29, 0.3)), {}, "early", (4, 30, 0, 30, "PHASE_END")),
    ("N-none", "ANC", course("ANC"), {}, "early", (0, 0, 0, 30, "PHASE_END")),
    # ANC exactly 0.5 is <= 0.5; 0.51 is not
    ("N-0.5-7d", "ANC", course("ANC", run(0, 6, 0.5)), {}, "early", (2, 7, 0, 30, "PHASE_END")),
    ("N-0.51-7d", "ANC", course("ANC", run(0, 6, 0.51)), {}, "early", (0, 0, 0, 30, "PHASE_END")),
    # ANC exactly 0.1 is <= 0.1: 6 days only grade 1, 7 days grade 3, 13 days 3, 14 days 4
    ("N-0.1-6d", "ANC", course("ANC", run(0, 5, 0.1)), {}, "early", (1, 6, 6, 30, "PHASE_END")),
    ("N-0.1-7d", "ANC", course("ANC", run(0, 6, 0.1)), {}, "early", (3, 7, 7, 30, "PHASE_END")),
    ("N-0.11-7d", "ANC", course("ANC", run(0, 6, 0.11)), {}, "early", (2, 7, 0, 30, "PHASE_END")),
    ("N-0.1-13d", "ANC", course("ANC", run(0, 12, 0.1)), {}, "early", (3, 13, 13, 30, "PHASE_END")),
    ("N-0.1-14d", "ANC", course("ANC", run(0, 13, 0.1)), {}, "early", (4, 14, 14, 30, "PHASE_END")),
    # below the LLOQ is a measured 0; a censored <x meets <= t when x <= t; >x with x >= t is not below
    ("N-BLQ-14d", "ANC", course("ANC", run(0, 13, "BLQ")), {}, "early", (4, 14, 14, 30, "PHASE_END")),
    ("N-<0.1-14d", "ANC", course("ANC", run(0, 13, "<0.1")), {}, "early", (4, 14, 14, 30, "PHASE_END")),
    ("N-<0.5-7d", "ANC", course("ANC", run(0, 6, "<0.5")), {}, "early", (2, 7, 0, 30, "PHASE_END")),
    ("N->0.5-between", "ANC", course("ANC", run(0, 2, 0.3), run(3, 5, ">0.5"), run(6, 7, 0.3)), {}, "early",
     (1, 5, 0, 30, "PHASE_END")),
    # <0.6 decides nothing about <= 0.5: those days are unknown (not counted, and they do not end a run)
    ("N-<0.6-unknown", "ANC", course("ANC", run(0, 2, 0.3), run(3, 4, "<0.6"), run(5, 6, 0.3)), {}, "early",
     (1, 5, 0, 30, "PHASE_END")),
    # the daily value is the day's lowest result
    ("N-lowest-of-day", "ANC", course("ANC", run(0, 6, 0.3)) + run(0, 6, 3.0), {}, "early",
     (2, 7, 0, 30, "PHASE_END")),
    # carry-forward: a day without a result takes the last one for at most 7 days (day 13 is the 8th after 5)
    ("carry-7-not-8", "ANC", [(0, 0.3), (5, 0.3), (25, 2.0)], {}, "early", (2, 13, 0, 30, "PHASE_END")),
    ("carry-7-reaches-14", "ANC", [(0, 0.3), (6, 0.3), (25, 2.0)], {}, "early", (3, 14, 0, 30, "PHASE_END")),
    # a result before the window carries into it: from day -7 it reaches day 0, from day -8 it does not
    ("carry-from-day-minus-7", "ANC", [(-7, 0.3), (1, 2.0)], {}, "early", (1, 1, 0, 30, "PHASE_END")),
    ("carry-from-day-minus-8", "ANC", [(-8, 0.3), (1, 2.0)], {}, "early", (0, 0, 0, 30, "PHASE_END")),
    # unstable recovery: 2 days above between two below count as below (3+2+2 = 7); 3 days do not (3+2 = 5)
    ("recovery-2d-counted", "ANC", course("ANC", run(0, 2, 0.3), run(5, 6, 0.3)), {}, "early",
     (2, 7, 0, 30, "PHASE_END")),
    ("recovery-3d-not", "ANC", course("ANC", run(0, 2, 0.3), run(6, 7, 0.3)), {}, "early",
     (1, 5, 0, 30, "PHASE_END")),
    # a recovery that is not followed by a day below is a recovery
    ("recovery-at-the-end", "ANC", course("ANC", run(0, 5, 0.3)), {"death": 7}, "early", (1, 6, 0, 7, "DEATH")),
    # windows ended early: the end day counts, and the late window is empty
    ("relapse-day-12", "ANC", course("ANC", run(0, 30, 0.3)), {"relapse": 12}, "early",
     (2, 13, 0, 12, "RELAPSE_MRD")),
    ("relapse-day-12-late", "ANC", course("ANC", run(0, 30, 0.3)), {"relapse": 12}, "late",
     (None, None, None, 12, "RELAPSE_MRD")),
    ("hsct-day-13", "ANC", course("ANC", run(0, 30, 0.3)), {"hsct": 13}, "early", (3, 14, 0, 13, "HSCT")),
    ("next-therapy-day-6", "ANC", course("ANC", run(0, 30, 0.3)), {"next_therapy": 6}, "early",
     (2, 7, 0, 6, "NEXT_THERAPY")),
    ("death-day-40", "ANC", course("ANC", run(0, 30, 0.3), until=100), {"death": 40}, "late",
     (0, 0, 0, 40, "DEATH")),
    # the first end wins; relapse before HSCT on the same day
    ("relapse-and-hsct-same-day", "ANC", course("ANC", run(0, 30, 0.3)), {"relapse": 9, "hsct": 9}, "early",
     (2, 10, 0, 9, "RELAPSE_MRD")),
    ("no-result", "ANC", [], {}, "early", (None, 0, 0, 30, "PHASE_END")),
    # late N-ICAHT: the highest grade met by at least two results on different days (the durations still carry
    # each result forward 7 days: day 40 counts days 40-47)
    ("late-N-one-0.5", "ANC", [(40, 0.5), (60, 2.0)], {}, "late", (0, 8, 0, 100, "PHASE_END")),
    ("late-N-two-0.5", "ANC", [(40, 0.5), (60, 0.5)], {}, "late", (3, 16, 0, 100, "PHASE_END")),
    ("late-N-two-1.5", "ANC", [(40, 1.5), (60, 1.5)], {}, "late", (1, 0, 0, 100, "PHASE_END")),
    ("late-N-two-1.51", "ANC", [(40, 1.51), (60, 1.51)], {}, "late", (0, 0, 0, 100, "PHASE_END")),
    ("late-N-two-1.0", "ANC", [(40, 1.0), (60, 1.0)], {}, "late", (2, 0, 0, 100, "PHASE_END")),
    ("late-N-two-0.1", "ANC", [(40, 0.1), (60, 0.1)], {}, "late", (4, 16, 16, 100, "PHASE_END")),
    ("late-N-0.1-and-0.5", "ANC", [(40, 0.1), (60, 0.5)], {}, "late", (3, 16, 8, 100, "PHASE_END")),
    ("late-N-same-day", "ANC", [(40, 0.05), (40, 0.05), (70, 2.0)], {}, "late", (0, 8, 8, 100, "PHASE_END")),
    # no result in days 31-100: NULL, although day 30's result carries into days 31-37
    ("late-N-none", "ANC", course("ANC", run(0, 30, 0.3)), {}, "late", (None, 7, 0, 100, "PHASE_END")),
    # early T-ICAHT: < 50 for 6/7 days; < 20 for 1/13/14 days; exactly 50 and 20 are not below
    ("T-6d", "PLT", course("PLT", run(0, 5, 40)), {}, "early", (1, 6, 0, 30, "PHASE_END")),
    ("T-7d", "PLT", course("PLT", run(0, 6, 40)), {}, "early", (2, 7, 0, 30, "PHASE_END")),
    ("T-50-10d", "PLT", course("PLT", run(0, 9, 50)), {}, "early", (0, 0, 0, 30, "PHASE_END")),
    ("T-49.9-10d", "PLT", course("PLT", run(0, 9, 49.9)), {}, "early", (2, 10, 0, 30, "PHASE_END")),
    ("T-<20-1d", "PLT", course("PLT", run(0, 0, 19.9)), {}, "early", (3, 1, 1, 30, "PHASE_END")),
    ("T-20-14d", "PLT", course("PLT", run(0, 13, 20)), {}, "early", (2, 14, 0, 30, "PHASE_END")),
    ("T-<20-13d", "PLT", course("PLT", run(0, 12, 19.9)), {}, "early", (3, 13, 13, 30, "PHASE_END")),
    ("T-<20-14d", "PLT", course("PLT", run(0, 13, 19.9)), {}, "early", (4, 14, 14, 30, "PHASE_END")),
    ("T-BLQ-14d", "PLT", course("PLT", run(0, 13, "BLQ")), {}, "early", (4, 14, 14, 30, "PHASE_END")),
    # late T-ICAHT: < 100 / < 50 on two results; < 20 for 1-13 / >= 14 days
    ("late-T-two-100", "PLT", [(40, 100), (60, 100)], {}, "late", (0, 0, 0, 100, "PHASE_END")),
    ("late-T-two-99", "PLT", [(40, 99), (60, 99)], {}, "late", (1, 0, 0, 100, "PHASE_END")),
    ("late-T-one-49", "PLT", [(40, 49), (60, 99)], {}, "late", (1, 8, 0, 100, "PHASE_END")),
    ("late-T-two-50", "PLT", [(40, 50), (60, 50)], {}, "late", (1, 0, 0, 100, "PHASE_END")),
    ("late-T-two-49", "PLT", [(40, 49), (60, 49)], {}, "late", (2, 16, 0, 100, "PHASE_END")),
    ("late-T-one-19", "PLT", [(40, 19), (41, 150)], {}, "late", (3, 1, 1, 100, "PHASE_END")),
    ("late-T-13d", "PLT", course("PLT", run(40, 52, 19), until=100), {}, "late", (3, 13, 13, 100, "PHASE_END")),
    ("late-T-14d", "PLT", course("PLT", run(40, 53, 19), until=100), {}, "late", (4, 14, 14, 100, "PHASE_END")),
]

SCALE = {"ANC": "N-ICAHT", "PLT": "T-ICAHT"}
INFUSION = "2026-03-06"


def _result(text):
    """core.lab_results fields (value, comparator, below_lloq, result_kind) of a result as §1.2 reads it."""
    if text == "BLQ":
        return None, None, True, "BELOW_LLOQ"
    if isinstance(text, str):
        return float(text[1:]), text[0], False, "CENSORED"
    return float(text), None, False, "VALUE"


@pytest.fixture(scope="module")
def graded():
    con = duckdb.connect()
    run_sql_file(con, "ops/schema.sql")
    run_sql_file(con, "core/schema.sql")
    con.execute("CREATE TABLE mart.rfs (participant_id VARCHAR, analysis VARCHAR, time_days INTEGER, "
                "event BOOLEAN, event_type VARCHAR)")
    protocol = load_protocol()
    set_protocol_variables(con, protocol)
    for i, (_, code, results, ends, _, _) in enumerate(CASES):
        pid = f"CD22-{i:03d}"
        day = f"DATE '{INFUSION}' + INTERVAL (?) DAY"
        con.execute(f"INSERT INTO core.participants (participant_id, infused, ld_start_date, infusion_date, hsct_date, "
                    f"next_therapy_date, death_date) VALUES (?, TRUE, DATE '{INFUSION}' - 5, DATE '{INFUSION}', "
                    f"{day}, {day}, {day})", [pid, ends.get("hsct"), ends.get("next_therapy"), ends.get("death")])
        if "relapse" in ends:
            con.execute("INSERT INTO mart.rfs VALUES (?, 'primary', ?, TRUE, 'MRD')", [pid, ends["relapse"]])
        for j, (d, text) in enumerate(results):
            value, comparator, below, kind = _result(text)
            con.execute(f"INSERT INTO core.lab_results (participant_id, accession, test_code, collected_at, study_day, "
                        f"value, comparator, below_lloq, result_kind) VALUES (?, ?, ?, {day} + INTERVAL 8 HOUR, ?, ?, "
                        f"?, ?, ?)", [pid, f"A{i}-{j}", code, d, d, value, comparator, below, kind])
    icaht.build(con, protocol)
    return con


def _row(con, i):
    code, phase = CASES[i][1], CASES[i][4]
    return con.execute("SELECT grade, days_below_primary, days_below_severe, window_end_day, window_end_reason, "
                       "null_reason, n_results, method FROM mart.icaht WHERE participant_id = ? AND scale = ? "
                       "AND phase = ?", [f"CD22-{i:03d}", SCALE[code], phase]).fetchall()


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c[0] for c in CASES])
def test_grade(graded, i):
    rows = _row(graded, i)
    assert len(rows) == 1
    grade, primary, severe, end_day, reason, null_reason, _, method = rows[0]
    assert (grade, primary, severe, end_day, reason) == CASES[i][5]
    assert (null_reason is None) == (grade is not None)
    assert "7 days" in method and "transfusion independence not applied" in method


def test_null_reasons_say_why(graded):
    names = [c[0] for c in CASES]
    assert _row(graded, names.index("no-result"))[0][5] == "no ANC result in days 0-30"
    assert _row(graded, names.index("late-N-none"))[0][5] == "no ANC result in days 31-100"
    assert _row(graded, names.index("relapse-day-12-late"))[0][5] == (
        "window ended on day 12 (RELAPSE_MRD), before the late phase (days 31-100)")


def test_four_rows_per_infused_participant_and_results_counted_in_the_window(graded):
    assert graded.execute("SELECT count(*), count(DISTINCT participant_id) FROM mart.icaht").fetchall() == [
        (4 * len(CASES), len(CASES))]
    names = [c[0] for c in CASES]
    # 31 daily ANC results in days 0-30 and none of platelets
    assert _row(graded, names.index("N-6d"))[0][6] == 31
    assert graded.execute("SELECT grade, null_reason FROM mart.icaht WHERE participant_id = ? AND scale = 'T-ICAHT' "
                          "AND phase = 'early'", [f"CD22-{names.index('N-6d'):03d}"]).fetchall() == [
        (None, "no PLT result in days 0-30")]


def test_every_column_is_commented(graded):
    assert graded.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'icaht'").fetchall()[0][0]
    assert not graded.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'icaht' "
                              "AND comment IS NULL").fetchall()

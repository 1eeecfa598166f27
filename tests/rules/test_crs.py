"""CRS and ICANS, ASTCT consensus (derivations §4.1-4.2): every row of the tables, masked fever, episodes."""
import duckdb
import pytest

from car22.config import load_protocol
from car22.rules import crs, icans
from car22.rules.crs import Day
from car22.sql import run_sql_file


def day(d=1, tmax=38.5, hypotension=0, vasopressin=False, oxygen=0, toci=False, steroids=False):
    return Day(d, tmax, hypotension, vasopressin, oxygen, toci, steroids)


@pytest.mark.parametrize("assessment, grade", [
    (day(tmax=37.9), 0),                                   # no fever, no CRS
    (day(tmax=38.0), 1),                                   # fever exactly 38.0
    (day(hypotension=1), 2),                               # hypotension without vasopressor
    (day(oxygen=1), 2),                                    # low-flow <= 6 L/min
    (day(oxygen=2), 3),                                    # high-flow > 6 L/min: the 6 L/min boundary
    (day(hypotension=2), 3),                               # one vasopressor
    (day(hypotension=2, vasopressin=True), 3),             # one vasopressor with vasopressin
    (day(hypotension=0, vasopressin=True), 3),             # vasopressin alone counts as one
    (day(hypotension=1, vasopressin=True), 3),
    (day(hypotension=3), 4),                               # multiple vasopressors
    (day(oxygen=3), 4),                                    # positive pressure
    (day(hypotension=1, oxygen=2), 3),                     # the worse of the two
    (day(tmax=37.0, hypotension=2, oxygen=3), 0),          # no fever, no established episode
])
def test_astct_crs_table(assessment, grade):
    assert crs.grade_days([assessment], 38.0).grade.tolist() == [grade]


def test_masked_fever_after_tocilizumab_keeps_the_grade_inside_the_episode():
    days = [day(1), day(2, oxygen=1, toci=True), day(3, tmax=37.2, oxygen=1), day(4, tmax=37.0),
            day(5, tmax=37.0, oxygen=1)]
    graded = crs.grade_days(days, 38.0)
    assert graded.grade.tolist() == [1, 2, 2, 0, 0]        # day 4 ends the episode; day 5 is not masked
    assert graded.fever_masked.tolist() == [False, False, True, False, False]
    assert graded.episode.tolist()[:3] == [1, 1, 1]


def test_steroids_mask_too_but_not_without_an_established_episode():
    assert crs.grade_days([day(1, tmax=37.0, hypotension=1, steroids=True)], 38.0).grade.tolist() == [0]
    days = [day(1, hypotension=1, steroids=True), day(2, tmax=37.5, hypotension=1)]
    assert crs.grade_days(days, 38.0).grade.tolist() == [2, 2]


def test_episodes_onset_and_duration():
    days = [day(0, tmax=37), day(1), day(2, hypotension=2), day(3), day(4, tmax=37), day(6), day(7, tmax=37)]
    graded = crs.grade_days(days, 38.0)
    summary = crs.summarise(graded, treated_toci=False, treated_steroids=False, investigator_max=2, grade5=False)
    assert summary["max_grade"] == 3 and summary["onset_day"] == 1 and summary["duration_days"] == 3
    assert summary["n_episodes"] == 2 and summary["grade_discordant"] is True


# assessed days -> day grades, episode numbers, (onset_day, duration_days, n_episodes); a calendar day without an
# assessment neither ends nor extends an episode, an assessed grade-0 day ends it (derivations §4.1)
GAP_CASES = [
    ([day(1), day(3)], [1, 1], [1, 1], (1, 3, 1)),                                  # day 2 missing: one episode
    ([day(1), day(5)], [1, 1], [1, 1], (1, 5, 1)),                                  # days 2-4 missing
    ([day(1), day(2, tmax=37.0), day(4)], [1, 0, 1], [1, None, 2], (1, 1, 2)),      # assessed grade 0 ends it
    ([day(1), day(2, tmax=37.0), day(3, tmax=37.0)], [1, 0, 0], [1, None, None], (1, 1, 1)),
    # the masked-fever state carries over a missing day: tocilizumab on day 1, no fever on day 3, oxygen kept
    ([day(1, oxygen=1, toci=True), day(3, tmax=37.0, oxygen=1)], [2, 2], [1, 1], (1, 3, 1)),
    ([day(1, oxygen=1, toci=True), day(3, tmax=37.0), day(4, tmax=37.0, oxygen=1)], [2, 0, 0], [1, None, None],
     (1, 1, 1)),
]


@pytest.mark.parametrize("days, grades, numbers, summary", GAP_CASES)
def test_a_day_without_assessment_neither_ends_nor_extends_an_episode(days, grades, numbers, summary):
    graded = crs.grade_days(days, 38.0)
    assert graded.grade.tolist() == grades
    assert [None if e != e or e is None else int(e) for e in graded.episode.tolist()] == numbers
    result = crs.summarise(graded, treated_toci=False, treated_steroids=False, investigator_max=None, grade5=False)
    assert (result["onset_day"], result["duration_days"], result["n_episodes"]) == summary


@pytest.mark.parametrize("grades, numbers", [
    ([1, 2, 1], [1, 1, 1]), ([1, 0, 1], [1, None, 2]), ([0, 0, 3], [None, None, 1]), ([], []),
])
def test_icans_episodes_are_runs_of_assessed_days(grades, numbers):
    assert icans.episodes(grades) == numbers


@pytest.mark.parametrize("tool, score, unable, consciousness, grade", [
    ("ICE", 10, False, 0, 0), ("ICE", 9, False, 0, 1), ("ICE", 7, False, 0, 1), ("ICE", 6, False, 0, 2),
    ("ICE", 3, False, 0, 2), ("ICE", 2, False, 0, 3), ("ICE", 0, False, 0, 3), ("ICE", 0, False, 3, 4),
    ("ICE", None, True, 3, 4), ("CAPD", 0, False, 0, 0), ("CAPD", 1, False, 0, 1), ("CAPD", 8, False, 0, 1),
    ("CAPD", 9, False, 0, 3), ("CAPD", None, True, 3, 4), ("CAPD", None, True, 0, 0),
])
def test_icans_encephalopathy_score(tool, score, unable, consciousness, grade):
    assert icans.score_grade(tool, score, unable, consciousness) == grade


@pytest.mark.parametrize("domains, grade", [
    (dict(consciousness=1), 2), (dict(consciousness=2), 3), (dict(consciousness=3), 4),
    (dict(seizure=1), 3), (dict(seizure=2), 4), (dict(motor_weakness=True), 4),
    (dict(cerebral_edema=1), 3), (dict(cerebral_edema=2), 4), (dict(), 0),
])
def test_icans_worst_domain_wins(domains, grade):
    values = dict(consciousness=0, seizure=0, motor_weakness=False, cerebral_edema=0) | domains
    assert icans.day_grade("ICE", 10, False, **values) == grade


def test_build_gives_every_infused_participant_a_row_and_grade_5_from_death():
    con = duckdb.connect()
    run_sql_file(con, "ops/schema.sql")
    run_sql_file(con, "core/schema.sql")
    con.execute("""INSERT INTO core.participants (participant_id, infused, infusion_date, death_cause) VALUES
                   ('CD22-001', TRUE, '2026-03-01', NULL), ('CD22-002', TRUE, '2026-03-01', 'CRS'),
                   ('CD22-003', TRUE, '2026-03-01', NULL), ('CD22-004', FALSE, NULL, NULL)""")
    con.execute("""INSERT INTO core.crs_assessments (participant_id, study_day, tmax_c, hypotension, vasopressin, oxygen,
                   tocilizumab, steroids, inv_crs_grade) VALUES
                   ('CD22-001', 1, 38.5, 0, FALSE, 1, TRUE, FALSE, 2), ('CD22-001', 2, 37.0, 0, FALSE, 1, FALSE, FALSE, 2),
                   ('CD22-002', 1, 39.0, 3, FALSE, 3, TRUE, TRUE, 4)""")
    protocol = load_protocol()
    crs.build(con, protocol)
    icans.build(con, protocol)
    rows = con.sql("SELECT participant_id, max_grade, onset_day, duration_days, tocilizumab, investigator_max_grade, "
                   "grade_discordant FROM mart.crs_summary ORDER BY 1").fetchall()
    assert rows == [("CD22-001", 2, 1, 2, True, 2, False), ("CD22-002", 5, 1, 1, True, 4, True),
                    ("CD22-003", 0, None, None, False, None, None)]
    assert con.sql("SELECT count(*) FROM mart.icans_summary WHERE max_grade = 0").fetchall() == [(3,)]


# CRS and ICANS grading start on the infusion day (derivations §4.1-4.2): assessments before it stay in core and
# make no grade, no episode and no tally row. participant: CRS (day, tmax), ICANS (day, ICE score), then the
# expected CRS (max_grade, onset_day, duration_days, n_episodes), ICANS (max_grade, onset_day, n_episodes) and the
# graded CRS days
START_CASES = [
    ("CD22-001", [(-2, 39.0)], [(-2, 5)], (0, None, None, 0), (0, None, 0), []),
    ("CD22-002", [(-1, 39.0), (0, 38.5), (1, 38.2)], [(-1, 5), (0, 8)], (1, 0, 2, 1), (1, 0, 1), [0, 1]),
    ("CD22-003", [(-1, 38.5), (0, 37.0), (2, 38.0)], [], (1, 2, 1, 1), (0, None, 0), [0, 2]),
    ("CD22-004", [(0, 38.0)], [(0, 9)], (1, 0, 1, 1), (1, 0, 1), [0]),
]


def test_grading_starts_on_the_infusion_day():
    from car22.rules import ctcae, icaht, mrd, survival, toxicity
    from car22.sql import set_protocol_variables

    con = duckdb.connect()
    run_sql_file(con, "ops/schema.sql")
    run_sql_file(con, "core/schema.sql")
    protocol = load_protocol()
    set_protocol_variables(con, protocol)
    for pid, crs_days, icans_days, *_ in START_CASES:
        con.execute("INSERT INTO core.participants (participant_id, infused, infusion_date) "
                    "VALUES (?, TRUE, '2026-03-01')", [pid])
        for d, tmax in crs_days:
            con.execute("INSERT INTO core.crs_assessments (participant_id, study_day, tmax_c, hypotension, vasopressin, "
                        "oxygen, tocilizumab, steroids) VALUES (?, ?, ?, 0, FALSE, 0, FALSE, FALSE)", [pid, d, tmax])
        for d, score in icans_days:
            con.execute("INSERT INTO core.icans_assessments (participant_id, study_day, tool, score, unable_to_assess, "
                        "consciousness, seizure, motor_weakness, cerebral_edema) "
                        "VALUES (?, ?, 'ICE', ?, FALSE, 0, 0, FALSE, 0)", [pid, d, score])
    for rule in (mrd, survival, crs, icans, ctcae, icaht, toxicity):
        rule.build(con, protocol)
    for pid, _, _, crs_expected, icans_expected, crs_graded in START_CASES:
        assert con.execute("SELECT max_grade, onset_day, duration_days, n_episodes FROM mart.crs_summary "
                           "WHERE participant_id = ?", [pid]).fetchall() == [crs_expected]
        assert con.execute("SELECT max_grade, onset_day, n_episodes FROM mart.icans_summary "
                           "WHERE participant_id = ?", [pid]).fetchall() == [icans_expected]
        assert [r[0] for r in con.execute("SELECT study_day FROM mart.crs_daily WHERE participant_id = ? ORDER BY 1",
                                          [pid]).fetchall()] == crs_graded
    # the tally: CRS in 3 of 4 (not CD22-001, whose only fever was on day -2), ICANS in 2 of 4
    tally = dict(con.execute("SELECT toxicity, n_any FROM mart.toxicity_tally WHERE \"window\" = 'overall' "
                             "AND scale = 'ASTCT'").fetchall())
    assert tally == {"Cytokine release syndrome": 3, "ICANS": 2}
    assert con.execute("SELECT count(*) FROM core.crs_assessments WHERE study_day < 0").fetchall() == [(3,)]


def test_a_blank_flag_is_not_given_and_hides_no_other():
    """A blank vasopressin, tocilizumab, steroids, unable-to-assess or motor-weakness cell is not given, and the
    TRUE cells of the same column still count (DuckDB hands a column with a NULL over as nullable booleans)."""
    con = duckdb.connect()
    run_sql_file(con, "ops/schema.sql")
    run_sql_file(con, "core/schema.sql")
    con.execute("""INSERT INTO core.participants (participant_id, infused, infusion_date) VALUES
                   ('CD22-001', TRUE, '2026-03-01'), ('CD22-002', TRUE, '2026-03-01')""")
    con.execute("""INSERT INTO core.crs_assessments (participant_id, study_day, tmax_c, hypotension, vasopressin, oxygen,
                   tocilizumab, steroids) VALUES
                   ('CD22-001', 1, 38.5, 0, NULL, 0, NULL, NULL), ('CD22-002', 1, 38.5, 0, TRUE, 0, TRUE, NULL),
                   ('CD22-002', 2, 37.0, 0, TRUE, 0, FALSE, NULL)""")
    con.execute("""INSERT INTO core.icans_assessments (participant_id, study_day, tool, score, unable_to_assess,
                   consciousness, seizure, motor_weakness, cerebral_edema) VALUES
                   ('CD22-001', 1, 'ICE', 10, NULL, 0, 0, NULL, 0), ('CD22-002', 1, 'ICE', NULL, TRUE, 3, 0, FALSE, 0),
                   ('CD22-002', 2, 'ICE', 10, FALSE, 0, 0, TRUE, 0)""")
    protocol = load_protocol()
    crs.build(con, protocol)
    icans.build(con, protocol)
    # vasopressin alone is one vasopressor (3); on day 2 the fever is masked by day 1's tocilizumab
    assert con.sql("SELECT participant_id, study_day, hypo_lvl, grade, fever_masked FROM mart.crs_daily "
                   "ORDER BY 1, 2").fetchall() == [("CD22-001", 1, 0, 1, False), ("CD22-002", 1, 3, 3, False),
                                                   ("CD22-002", 2, 3, 3, True)]
    assert con.sql("SELECT participant_id, tocilizumab, steroids FROM mart.crs_summary ORDER BY 1").fetchall() == [
        ("CD22-001", False, False), ("CD22-002", True, False)]
    assert con.sql("SELECT participant_id, study_day, score_grade, grade FROM mart.icans_daily "
                   "ORDER BY 1, 2").fetchall() == [("CD22-001", 1, 0, 0), ("CD22-002", 1, 4, 4), ("CD22-002", 2, 0, 4)]

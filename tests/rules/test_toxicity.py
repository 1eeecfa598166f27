"""Toxicity tallies (derivations §4.4) over a small hand-made cohort: N, worst grade once per participant, windows."""
import duckdb
import pytest

from car22.config import load_protocol
from car22.rules import crs, ctcae, icaht, icans, mrd, survival, toxicity
from car22.sql import run_sql_file, set_protocol_variables


def test_tally_of_a_hand_made_cohort():
    con = duckdb.connect()
    run_sql_file(con, "ops/schema.sql")
    run_sql_file(con, "core/schema.sql")
    protocol = load_protocol()
    set_protocol_variables(con, protocol)
    con.execute("""INSERT INTO core.participants (participant_id, infused, infusion_date, death_date, death_cause) VALUES
        ('CD22-001', TRUE, '2026-03-01', NULL, NULL), ('CD22-002', TRUE, '2026-03-01', NULL, NULL),
        ('CD22-003', TRUE, '2026-03-01', '2026-03-21', 'CRS'), ('CD22-004', TRUE, '2026-03-01', NULL, NULL),
        ('CD22-005', FALSE, NULL, NULL, NULL)""")
    con.execute("CREATE TABLE mart.crs_daily (participant_id VARCHAR, study_day INTEGER, grade INTEGER)")
    con.execute("""INSERT INTO mart.crs_daily VALUES ('CD22-001', 2, 1), ('CD22-001', 3, 2), ('CD22-001', 4, 1),
                   ('CD22-002', 5, 0), ('CD22-003', 3, 3), ('CD22-004', 40, 2)""")
    con.execute("CREATE TABLE mart.icans_daily (participant_id VARCHAR, study_day INTEGER, grade INTEGER)")
    ctcae.build(con, protocol)          # the criteria (every CTCAE term) and an empty mart.lab_toxicity
    con.execute("""INSERT INTO mart.lab_toxicity (participant_id, ctcae_term, ctcae_version, study_day, grade) VALUES
        ('CD22-001', 'Neutrophil count decreased', '5.0', -2, 4), ('CD22-001', 'Neutrophil count decreased', '5.0', 5, 3),
        ('CD22-002', 'Neutrophil count decreased', '5.0', 10, 4), ('CD22-005', 'Neutrophil count decreased', '5.0', 10, 4),
        ('CD22-003', 'Neutrophil count decreased', '5.0', 10, NULL)""")
    con.execute("""INSERT INTO core.adverse_events (participant_id, ae_term, ae_grade, onset_day)
                   VALUES ('CD22-004', 'Sepsis', 3, 60)""")
    con.execute("CREATE TABLE mart.icaht (participant_id VARCHAR, scale VARCHAR, phase VARCHAR, grade INTEGER)")
    con.execute("""INSERT INTO mart.icaht VALUES ('CD22-001', 'N-ICAHT', 'early', 3), ('CD22-001', 'N-ICAHT', 'late', 1),
        ('CD22-002', 'N-ICAHT', 'early', 0), ('CD22-002', 'N-ICAHT', 'late', 4), ('CD22-003', 'N-ICAHT', 'early', NULL),
        ('CD22-005', 'N-ICAHT', 'early', 4)""")
    toxicity.build(con, protocol)
    tally = {(r[0], r[1]): r[2:] for r in con.execute(
        "SELECT toxicity, \"window\", n_participants, n_any, pct_any, n_grade_ge3, pct_grade_ge3, n_grade_1, "
        "n_grade_2, n_grade_3, n_grade_4, n_grade_5 FROM mart.toxicity_tally").fetchall()}
    # CRS overall: 001 grade 2, 002 grade 0, 003 grade 5 (death from CRS on day 20), 004 grade 2 -> 3/4 = 75.0 %
    assert tally[("Cytokine release syndrome", "overall")] == (4, 3, 75.0, 1, 25.0, 0, 2, 0, 0, 1)
    # day 0-28: 004's day-40 episode is out -> 2/4 = 50.0 %
    assert tally[("Cytokine release syndrome", "day_0_28")] == (4, 2, 50.0, 1, 25.0, 0, 1, 0, 0, 1)
    # ANC overall: 001 grade 4 (day -2), 002 grade 4; 003 ungraded (NULL); 005 never infused -> 2/4
    assert tally[("Neutrophil count decreased", "overall")] == (4, 2, 50.0, 2, 50.0, 0, 0, 0, 2, 0)
    # day 0-28: 001's worst is grade 3 on day 5
    assert tally[("Neutrophil count decreased", "day_0_28")] == (4, 2, 50.0, 2, 50.0, 0, 0, 1, 1, 0)
    assert tally[("Sepsis", "day_0_28")] == (4, 0, 0.0, 0, 0.0, 0, 0, 0, 0, 0)
    assert tally[("Sepsis", "overall")] == (4, 1, 25.0, 1, 25.0, 0, 0, 1, 0, 0)
    # ICAHT: a phase's grade counts on its first day, early in both windows, late (day 31 on) overall only
    assert tally[("N-ICAHT early", "overall")] == (4, 1, 25.0, 1, 25.0, 0, 0, 1, 0, 0)
    assert tally[("N-ICAHT early", "day_0_28")] == (4, 1, 25.0, 1, 25.0, 0, 0, 1, 0, 0)
    assert tally[("N-ICAHT late", "overall")] == (4, 2, 50.0, 1, 25.0, 1, 0, 0, 1, 0)
    assert tally[("N-ICAHT late", "day_0_28")] == (4, 0, 0.0, 0, 0.0, 0, 0, 0, 0, 0)
    assert con.execute("SELECT DISTINCT scale FROM mart.toxicity_tally WHERE toxicity LIKE '%ICAHT%'").fetchall() == [
        ("ICAHT (EHA/EBMT)",)]
    onset = con.sql("SELECT onset_day FROM mart.toxicity_by_participant WHERE participant_id = 'CD22-001' "
                    "AND toxicity = 'Cytokine release syndrome' AND \"window\" = 'overall'").fetchall()
    assert onset == [(2,)]
    # zeros are rows too (derivations §4.4): nobody has ICANS or hypokalemia, every graded toxicity is there
    assert tally[("ICANS", "overall")] == (4, 0, 0.0, 0, 0.0, 0, 0, 0, 0, 0)
    assert tally[("Hypokalemia", "day_0_28")] == (4, 0, 0.0, 0, 0.0, 0, 0, 0, 0, 0)
    assert sorted(tally) == sorted((t, w) for t in ALL_GRADED + ICAHT + ["Sepsis"] for w in ("day_0_28", "overall"))


ALL_GRADED = ["Cytokine release syndrome", "ICANS", "Neutrophil count decreased", "Platelet count decreased",
              "Anemia", "Lymphocyte count decreased", "White blood cell decreased",
              "Aspartate aminotransferase increased", "Alanine aminotransferase increased", "Blood bilirubin increased",
              "Creatinine increased", "Fibrinogen decreased", "Hypokalemia"]
ICAHT = ["N-ICAHT early", "N-ICAHT late", "T-ICAHT early", "T-ICAHT late"]


@pytest.fixture(scope="module")
def nobody_graded():
    """Two infused participants, one not infused, and no grade anywhere."""
    con = duckdb.connect()
    run_sql_file(con, "ops/schema.sql")
    run_sql_file(con, "core/schema.sql")
    protocol = load_protocol()
    set_protocol_variables(con, protocol)
    con.execute("""INSERT INTO core.participants (participant_id, infused, infusion_date) VALUES
        ('CD22-001', TRUE, '2026-03-01'), ('CD22-002', TRUE, '2026-03-01'), ('CD22-003', FALSE, NULL)""")
    for rule in (mrd, survival, crs, icans, ctcae, icaht, toxicity):
        rule.build(con, protocol)
    return {(r[0], r[1], r[2]): r[3:] for r in con.execute(
        "SELECT toxicity, scale, \"window\", n_participants, n_any, pct_any, n_grade_ge3, pct_grade_ge3, n_grade_1, "
        "n_grade_2, n_grade_3, n_grade_4, n_grade_5 FROM mart.toxicity_tally").fetchall()}


@pytest.mark.parametrize("window", ["day_0_28", "overall"])
@pytest.mark.parametrize("toxicity_name", ALL_GRADED + ICAHT)
def test_every_graded_toxicity_has_its_zero_rows(nobody_graded, toxicity_name, window):
    scale = ("ASTCT" if toxicity_name in ("Cytokine release syndrome", "ICANS") else
             "ICAHT (EHA/EBMT)" if toxicity_name in ICAHT else "CTCAE v5.0")
    assert nobody_graded[(toxicity_name, scale, window)] == (2, 0, 0.0, 0, 0.0, 0, 0, 0, 0, 0)
    assert len(nobody_graded) == 2 * len(ALL_GRADED + ICAHT)

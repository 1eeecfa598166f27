"""A new ICAHT grade >= 3 is a clinical event of its own (with its durations), once, not twice."""
import duckdb

from car22.reports.clinical_events import new_tonight, record_clinical_events
from car22.sql import run_sql_file


def test_icaht_grade_3_is_new_once_and_not_repeated_as_a_tally_row():
    con = duckdb.connect()
    run_sql_file(con, "ops/schema.sql")
    con.execute("CREATE TABLE mart.icaht (participant_id VARCHAR, scale VARCHAR, phase VARCHAR, grade INTEGER, "
                "days_below_primary INTEGER, days_below_severe INTEGER, window_end_day INTEGER)")
    con.execute("INSERT INTO mart.icaht VALUES ('CD22-001', 'N-ICAHT', 'early', 3, 18, 2, 30), "
                "('CD22-001', 'T-ICAHT', 'early', 2, 9, 0, 30), ('CD22-002', 'T-ICAHT', 'late', 4, 20, 15, 100)")
    con.execute("CREATE TABLE mart.toxicity_by_participant (participant_id VARCHAR, toxicity VARCHAR, scale VARCHAR, "
                "\"window\" VARCHAR, max_grade INTEGER, onset_day INTEGER)")
    con.execute("INSERT INTO mart.toxicity_by_participant VALUES "
                "('CD22-001', 'N-ICAHT early', 'ICAHT (EHA/EBMT)', 'overall', 3, 0)")
    record_clinical_events(con, 1)
    assert new_tonight(con, 1).named == [
        ("ICAHT_GRADE_3_OR_MORE", "CD22-001", "N-ICAHT early grade 3 (ANC <= 0.5 for 18 days, <= 0.1 for 2 days, "
                                              "study days 0-30)"),
        ("ICAHT_GRADE_3_OR_MORE", "CD22-002", "T-ICAHT late grade 4 (platelets < 50 for 20 days, < 20 for 15 days, "
                                              "study days 31-100)")]
    record_clinical_events(con, 2)
    assert len(new_tonight(con, 2)) == 0

"""The profile pages read their queries side by side, one participant at a time (profiles._by_participant):
each enrolled participant gets exactly their rows of each query, in the query's order, however the rows are
fetched; rows of someone not enrolled, or of no one, are left out."""
import duckdb
import pytest

from car22.reports import profiles

UNDATED = (None, None, None, None, None, None, None)  # ld start, HSCT, death, cause, next therapy, last day, dose


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA core; CREATE SCHEMA mart")
    con.execute("CREATE TABLE core.participants (participant_id VARCHAR, infused BOOLEAN, ld_start_date DATE, "
                "infusion_date DATE, hsct_date DATE, death_date DATE, death_cause VARCHAR, next_therapy_date DATE, "
                "last_contact_date DATE, cells_per_kg DOUBLE)")
    con.execute("INSERT INTO core.participants (participant_id, infused) VALUES ('CD22-002', true), "
                "('CD22-004', false), ('CD22-005', true)")
    con.execute("CREATE TABLE mart.crs_daily (participant_id VARCHAR, study_day INTEGER, grade INTEGER)")
    con.execute("INSERT INTO mart.crs_daily VALUES ('CD22-001', 1, 1), ('CD22-002', 3, 2), ('CD22-002', 1, 0), "
                "('CD22-003', 1, 1), (NULL, 1, 1), ('CD22-002', 2, 1), ('CD22-006', 4, 4)")
    con.execute("CREATE TABLE mart.icans_daily (participant_id VARCHAR, study_day INTEGER, grade INTEGER)")
    con.execute("INSERT INTO mart.icans_daily VALUES ('CD22-004', 5, 1)")
    return con


def rows_by_participant(con, only=None):
    return {pid: {name: [tuple(r) for r in rows] for name, rows in facts.items()}
            for pid, facts in profiles._by_participant(con, only)}


@pytest.mark.parametrize("rows_at_once", [1, 2, 3, 10_000])
def test_each_enrolled_participant_gets_exactly_their_rows(con, monkeypatch, rows_at_once):
    monkeypatch.setattr(profiles, "ROWS_AT_ONCE", rows_at_once)
    assert rows_by_participant(con) == {
        "CD22-002": {"participants": [("CD22-002", True, *UNDATED)],
                     "crs": [("CD22-002", 1, 0), ("CD22-002", 2, 1), ("CD22-002", 3, 2)]},
        "CD22-004": {"participants": [("CD22-004", False, *UNDATED)], "icans": [("CD22-004", 5, 1)]},
        "CD22-005": {"participants": [("CD22-005", True, *UNDATED)]},
    }
    assert rows_by_participant(con, ["CD22-004"]) == {
        "CD22-004": {"participants": [("CD22-004", False, *UNDATED)], "icans": [("CD22-004", 5, 1)]}}

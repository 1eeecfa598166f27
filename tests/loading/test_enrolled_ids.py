"""The enrolled participants a file is checked against (the `participant_enrolled` warning) are read once a
night and again after each enrollment file, not before every file (car22.loading.load.EnrolledIds)."""
from __future__ import annotations

import duckdb
import pytest

from car22.loading.load import EnrolledIds, FileOutcome, ensure_schema


def enroll(con: duckdb.DuckDBPyConnection, participant: str) -> None:
    con.execute("INSERT INTO staging.edc_enrollment (file_id, participant_id) VALUES ('f', ?)",
                [participant])


def outcome(source: str | None) -> FileOutcome:
    return FileOutcome("f", "x.csv", source, "loaded", 1, 1, 0, None)


@pytest.mark.parametrize("ingested, read_again", [
    ("edc_enrollment", True),
    ("labs", False),
    ("edc_followup", False),
    (None, False),              # a quarantined file of no known source
])
def test_enrolled_participants_are_read_again_after_an_enrollment_file_only(ingested, read_again):
    con = duckdb.connect()
    ensure_schema(con)
    enroll(con, "CD22-001")
    enrolled = EnrolledIds(con)
    assert enrolled.ids == {"CD22-001"}
    enroll(con, "CD22-002")
    enrolled.after(outcome(ingested))
    assert enrolled.ids == ({"CD22-001", "CD22-002"} if read_again else {"CD22-001"})

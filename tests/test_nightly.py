"""The nightly flow end to end on handmade exports: versions, deletions, holds, duplicates, order.

One Prefect test harness for the session (it costs ~13 s); each test runs the real flow on its own folders.
"""
from __future__ import annotations

import random
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from car22.night.paths import Paths

LAB_HEADER = "SUBJECT_ID,ACCESSION,COLLECTED_AT,RESULTED_AT,TEST_CODE,LOINC,TEST_NAME,RESULT,UNITS,REF_LOW,REF_HIGH,FLAG,STATUS"
ENROLLMENT_HEADER = ("record_id,redcap_event_name,consent_date,dob,sex,weight_kg,height_cm,cd19_product,"
                     "cd19_infusion_date,hsct_eligible")
TREATMENT_HEADER = ("record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,agent,admin_date,"
                    "dose_mg,car_cells_per_kg,bsa_used_m2")
AE_HEADER = ("record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,ae_term,ae_grade,"
             "onset_date,resolution_date,serious,related")
DOB = "2016-02-10"


def lab(subject: str, accession: str, result: str, status: str, resulted: str = "2026-03-01 10:00",
        code: str = "ANC", unit: str = "K/uL") -> str:
    return f"{subject},{accession},2026-03-01 08:00,{resulted},{code},751-8,Neutrophils,{result},{unit},1.5,8.0,,{status}"


def exports() -> dict[str, str]:
    """A small trial: two participants, a P -> F -> C correction, an EDC deletion, quirks and defects."""
    enrollment = "\n".join([
        ENROLLMENT_HEADER,
        f"CD22-001,screening_arm_1,2026-02-10,{DOB},1,30,130,1,2025-11-01,0",
        "CD22-002,screening_arm_1,2026-02-12,1990-05-01,2,70,170,2,2025-10-20,0",
    ])
    treatment = "\n".join([
        TREATMENT_HEADER,
        "CD22-001,treatment_arm_1,treatment,1,1,2026-02-25,31,,1.04",
        "CD22-001,treatment_arm_1,treatment,2,3,2026-03-02,,1000000,",
    ])
    ae_first = "\n".join([AE_HEADER,
                          "CD22-001,treatment_arm_1,adverse_events,1,Febrile neutropenia,3,2026-03-05,2026-03-09,1,1",
                          "CD22-001,treatment_arm_1,adverse_events,2,Hypotension,2,2026-03-06,2026-03-07,0,1"])
    ae_second = "\n".join([AE_HEADER,
                           "CD22-001,treatment_arm_1,adverse_events,1,Febrile neutropenia,3,2026-03-05,2026-03-10,1,1"])
    return {
        "edc_enrollment_20260301T0100.csv": enrollment,
        "edc_treatment_20260303T0100.csv": treatment,
        "edc_adverse_events_20260310T0100.csv": ae_first,
        "edc_adverse_events_20260312T0100.csv": ae_second,
        "labs_20260301T1200.csv": "\r\n".join([LAB_HEADER, lab("CD22-001", "A1", "0.4", "P"),
                                               lab("CD22-002", "A2", "<0.5", "F"),
                                               lab("CD22-001", "A3", "400", "F", unit="cells/mm3"),
                                               lab("CD22-099", "A4", "1.0", "F"),
                                               lab("CD-22-7", "A5", "1.0", "F"),
                                               "*** END OF REPORT ***"]) + "\r\n",
        "labs_20260302T1200.csv": "\ufeff" + "\n".join([LAB_HEADER, lab("CD22-001", "A1", "0.45", "F",
                                                                         "2026-03-01 11:00")]),
        "labs_20260303T1200.csv": "\n".join([LAB_HEADER, lab("CD22-001", "A1", "0.5", "C", "2026-03-02 09:00")]),
        "labs_20260304T1200.csv": "\n".join([LAB_HEADER, lab("CD22-001", "A1", "0.5", "C", "2026-03-02 09:00")]),
        "flow_mrd_20260305T0900.csv": "PK\x03\x04 not a csv",
    }


def write(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content.encode("utf-8"))


from conftest import run  # noqa: E402


def core_tables(warehouse: Path) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        names = [row[0] for row in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'core' ORDER BY 1").fetchall()]
        return {name: con.sql(f"SELECT * FROM core.{name}").df().sort_values(
            list(con.sql(f"SELECT * FROM core.{name}").columns)).reset_index(drop=True) for name in names}


@pytest.fixture(scope="session")
def one_night(prefect, tmp_path_factory) -> Paths:
    paths = Paths.under(tmp_path_factory.mktemp("one_night"))
    write(paths.inbox, exports())
    run(paths)
    return paths


def data_issues(warehouse: Path) -> pd.DataFrame:
    """ops.data_issues without age_days (days to the run's clock): the part that depends on the files only."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.sql("SELECT * EXCLUDE (age_days) FROM ops.data_issues ORDER BY issue_id").df()


def query(paths: Paths, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def test_corrections_keep_history_and_core_holds_the_latest(one_night):
    assert query(one_night, "SELECT value, status, version FROM core.lab_results WHERE accession = 'A1'") == [
        (0.5, "C", 3)]
    history = query(one_night, "SELECT status, value FROM staging.labs WHERE accession = 'A1' ORDER BY resulted_at")
    assert history == [("P", 0.4), ("F", 0.45), ("C", 0.5)]


def test_duplicate_file_loads_nothing(one_night):
    rows = query(one_night, "SELECT status, rows_read, reason FROM ops.files WHERE file_name = 'labs_20260304T1200.csv'")
    assert rows[0][0] == "duplicate" and rows[0][1] == 0 and "labs_20260303T1200.csv" in rows[0][2]


def test_a_record_missing_from_the_newer_snapshot_is_deleted(one_night):
    assert query(one_night, "SELECT instance, ae_term, resolution_date::VARCHAR FROM core.adverse_events") == [
        (1, "Febrile neutropenia", "2026-03-10")]
    assert query(one_night, "SELECT count(*) FROM staging.edc_adverse_events WHERE instance = 2") == [(1,)]


def test_unparseable_file_is_quarantined_and_the_run_goes_on(one_night):
    status, reason = query(one_night, "SELECT status, reason FROM ops.files WHERE file_name LIKE 'flow_mrd_%'")[0]
    assert status == "quarantined" and "binary" in reason
    assert query(one_night, "SELECT status FROM ops.runs") == [("completed",)]


def test_every_file_is_archived_byte_for_byte(one_night):
    for name, content in exports().items():
        archived = query(one_night, "SELECT archive_path FROM ops.files WHERE file_name = ?", [name])[0][0]
        assert Path(archived).read_bytes() == content.encode("utf-8")
    assert list(one_night.inbox.iterdir()) == []


def test_row_accounting_balances_for_every_file(one_night):
    for file_id, read, loaded, rejected in query(
            one_night, "SELECT file_id, rows_read, rows_loaded, rows_rejected FROM ops.files"):
        assert read == loaded + rejected
        in_rejected = query(one_night, "SELECT count(*) FROM ops.rejected_rows WHERE file_id = ?", [file_id])[0][0]
        assert in_rejected == rejected


def test_rejections_say_why(one_night):
    reasons = {row[0]: row for row in query(
        one_night, "SELECT json_extract_string(raw_record, '$.ACCESSION'), check_name, severity, reason "
                   "FROM ops.rejected_rows")}
    assert reasons["A3"][2] == "blocking" and "unit" in reasons["A3"][3]
    assert reasons["A4"][2] == "held" and "CD22-099" in reasons["A4"][3]
    assert reasons["A5"][2] == "blocking"


def test_no_date_of_birth_anywhere_in_the_warehouse(one_night):
    with duckdb.connect(str(one_night.warehouse), read_only=True) as con:
        columns = con.execute("SELECT schema_name, table_name, column_name FROM duckdb_columns() "
                              "WHERE data_type IN ('VARCHAR', 'DATE', 'TIMESTAMP')").fetchall()
        assert not [c for c in columns if c[2].lower() in ("dob", "date_of_birth")]
        for schema, table, column in columns:
            hits = con.execute(f'SELECT count(*) FROM "{schema}"."{table}" WHERE CAST("{column}" AS VARCHAR) '
                               f"LIKE '%{DOB}%'").fetchall()[0][0]
            assert hits == 0, f"{schema}.{table}.{column}"


def test_second_run_on_the_same_inbox_changes_nothing(prefect, tmp_path):
    paths = Paths.under(tmp_path)
    write(paths.inbox, exports())
    run(paths)
    before = core_tables(paths.warehouse)
    write(paths.inbox, exports())
    run(paths)
    after = core_tables(paths.warehouse)
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name])
    statuses = query(paths, "SELECT DISTINCT status FROM ops.files WHERE run_id = 2")
    assert statuses == [("duplicate",)] or set(statuses) <= {("duplicate",), ("quarantined",)}


def test_late_enrollment_releases_held_rows(prefect, tmp_path):
    paths = Paths.under(tmp_path)
    files = exports()
    enrollment = {k: v for k, v in files.items() if k.startswith("edc_enrollment")}
    write(paths.inbox, {k: v for k, v in files.items() if k not in enrollment})
    run(paths)
    assert query(paths, "SELECT count(*) FROM core.lab_results") == [(0,)]
    assert query(paths, "SELECT rows_loaded, rows_rejected FROM ops.files WHERE file_name = 'labs_20260301T1200.csv'") \
        == [(0, 5)]
    write(paths.inbox, enrollment)
    run(paths)
    assert query(paths, "SELECT rows_loaded, rows_rejected FROM ops.files WHERE file_name = 'labs_20260301T1200.csv'") \
        == [(2, 3)]


@pytest.mark.parametrize("seed", [1, 2])
def test_any_order_in_one_run_or_several_gives_identical_core(prefect, one_night, tmp_path, seed):
    files = list(exports().items())
    random.Random(seed).shuffle(files)
    paths = Paths.under(tmp_path)
    for batch in (files[:3], files[3:6], files[6:]):
        write(paths.inbox, dict(batch))
        run(paths)
    expected, actual = core_tables(one_night.warehouse), core_tables(paths.warehouse)
    for name in expected:
        pd.testing.assert_frame_equal(expected[name], actual[name], check_like=True)
    pd.testing.assert_frame_equal(data_issues(one_night.warehouse), data_issues(paths.warehouse))
    shutil.rmtree(tmp_path)


def test_monitors_get_a_summary_with_failed_checks_and_prefect_artifacts(one_night):
    from prefect.client.orchestration import get_client

    from car22.reports.artifacts import files_table, markdown_summary

    with duckdb.connect(str(one_night.warehouse), read_only=True) as con:
        markdown = markdown_summary(con, 1)
        files = files_table(con, 1)
    assert "| labs | unit_known | blocking | 1 | 1 |" in markdown
    assert "| labs | participant_id_pattern | blocking | 1 | 1 |" in markdown
    assert len(files) == len(exports())
    with get_client(sync_client=True) as client:
        keys = {artifact.key for artifact in client.read_artifacts()}
    assert {"car22-run-summary", "car22-files", "car22-data-docs"} <= keys


def test_end_to_end_on_the_generated_demo(demo_night):
    paths, written, summary = demo_night
    assert summary.status == "completed" and summary.files_seen == len(written)
    assert summary.files_quarantined == 1
    assert summary.rows_read == summary.rows_loaded + summary.rows_rejected
    checks = dict(((c, s), n) for s, c, n in summary.rejections_by_check)
    assert checks[("unit_known", "blocking")] == 1
    assert checks[("participant_id_pattern", "blocking")] == 1
    assert checks[("participant_enrolled", "held")] == 1
    assert query(paths, "SELECT count(*), count(*) FILTER (WHERE infused) FROM core.participants") == [(20, 19)]
    validated = query(paths, "SELECT report_path FROM ops.files WHERE report_path IS NOT NULL")
    index = (paths.reports / "data_docs" / "index.html").read_text(encoding="utf-8")
    assert len(validated) == summary.files_loaded + summary.files_partial + summary.files_rejected
    for (report_path,) in validated:
        assert f"href='{Path(report_path).name}'" in index
        assert (paths.reports / report_path).exists()
    estimate = query(paths, "SELECT estimate, ci_lower, ci_upper FROM mart.endpoints WHERE analysis = 'primary'")[0]
    assert 0 < estimate[1] < estimate[0] < estimate[2] <= 1
    assert (paths.reports / "trial_report.html").exists()

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
    assert {"car22-run-summary", "car22-files", "car22-data-docs", "car22-submission"} <= keys


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


# Every story car22/demo.py plants in the default demo (20 participants, seed 22), with its exact value in the
# warehouse after the nightly flow: (story, query, rows). Study days are the generator's constants (relapse on
# day 91 or 182, HSCT 120, next therapy 190/200, death 300, B-cell recovery 182); the rest follows its rules.
DEMO_STORIES = [
    ("CD22-002 is the screen failure: never infused",
     "SELECT participant_id FROM core.participants WHERE NOT infused", [("CD22-002",)]),
    ("CD22-002 fails the cardiac criterion (LVEF 38 %, FS 22 %)",
     "SELECT result, value, basis FROM mart.eligibility WHERE participant_id = 'CD22-002' AND criterion = 'CARDIAC'",
     [("NOT_MET", 38.0, "LVEF")]),
    ("CD22-003 MRD relapse on day 91 (3e-4 blasts), then morphologic (25 % blasts) on day 182",
     "SELECT study_day, mrd_status FROM mart.mrd_assessments WHERE participant_id = 'CD22-003' AND specimen = 'BM' "
     "AND study_day > 0 ORDER BY 1", [(28, "NEGATIVE"), (91, "POSITIVE"), (182, "POSITIVE")]),
    ("CD22-003 morphologic relapse in the disease assessment of day 182",
     "SELECT study_day, bm_blasts_pct, inv_response FROM core.disease_assessments WHERE participant_id = 'CD22-003' "
     "AND bm_blasts_pct >= 5", [(182, 25.0, "RELAPSE")]),
    ("CD22-003: the day-91 MRD relapse is the RFS event in both analyses",
     "SELECT analysis, time_days, event, event_type FROM mart.rfs WHERE participant_id = 'CD22-003' ORDER BY 1",
     [("primary", 91, True, "MRD"), ("sensitivity", 91, True, "MRD")]),
    ("CD22-003: next therapy on day 190, death from leukemia on day 300",
     "SELECT next_therapy_date - infusion_date, death_date - infusion_date, death_cause, vital_status "
     "FROM core.participants WHERE participant_id = 'CD22-003'", [(190, 300, "leukemia", "dead")]),
    ("the only death", "SELECT participant_id FROM core.participants WHERE death_date IS NOT NULL", [("CD22-003",)]),
    ("CD22-007 CD22-dim MRD relapse on day 182",
     "SELECT study_day, mrd_status, cd22_category FROM mart.mrd_assessments WHERE participant_id = 'CD22-007' "
     "AND mrd_status = 'POSITIVE'", [(182, "POSITIVE", "DIM")]),
    ("CD22-007: the day-182 MRD relapse is the RFS event; next therapy on day 200",
     "SELECT r.analysis, r.time_days, r.event, r.event_type, p.next_therapy_date - p.infusion_date "
     "FROM mart.rfs r JOIN core.participants p USING (participant_id) WHERE participant_id = 'CD22-007' ORDER BY 1",
     [("primary", 182, True, "MRD", 200), ("sensitivity", 182, True, "MRD", 200)]),
    ("no other RFS event", "SELECT DISTINCT participant_id FROM mart.rfs WHERE event ORDER BY 1",
     [("CD22-003",), ("CD22-007",)]),
    ("CD22-011 HSCT on day 120, after the last marrow (day 91): censored there",
     "SELECT p.hsct_date - p.infusion_date, r.time_days, r.event, r.censor_reason FROM core.participants p "
     "JOIN mart.rfs r USING (participant_id) WHERE participant_id = 'CD22-011' AND analysis = 'primary'",
     [(120, 91, False, "LAST_DISEASE_ASSESSMENT")]),
    ("the only HSCT", "SELECT participant_id FROM core.participants WHERE hsct_date IS NOT NULL", [("CD22-011",)]),
    # CRS: grade g from the onset for d days peaking mid-way; with g >= 2 the last day has no fever, and its
    # oxygen (kept under tocilizumab) decides whether it still counts
    ("CRS per participant (derived grade, onset, duration, investigator grade)",
     "SELECT participant_id, max_grade, onset_day, duration_days, investigator_max_grade FROM mart.crs_summary "
     "WHERE max_grade > 0 ORDER BY 1",
     [("CD22-001", 2, 3, 5, 2), ("CD22-003", 2, 3, 6, 2), ("CD22-007", 2, 3, 2, 2), ("CD22-008", 1, 3, 5, 1),
      ("CD22-009", 2, 2, 3, 3), ("CD22-010", 2, 1, 4, 2), ("CD22-012", 2, 3, 2, 2), ("CD22-013", 2, 4, 5, 2),
      ("CD22-018", 1, 4, 5, 1), ("CD22-019", 2, 5, 5, 2)]),
    ("CD22-009: the investigator reported grade 3 where the ASTCT grade is 2",
     "SELECT participant_id, max_grade, investigator_max_grade FROM mart.crs_summary WHERE grade_discordant",
     [("CD22-009", 2, 3)]),
    ("ICANS on days 4-5: CD22-005 grade 2 (ICE 5), CD22-009 grade 1 (ICE 8)",
     "SELECT participant_id, max_grade, onset_day, duration_days FROM mart.icans_summary WHERE max_grade > 0 "
     "ORDER BY 1", [("CD22-005", 2, 4, 2), ("CD22-009", 1, 4, 2)]),
    ("CD22-006 and CD22-012 lose B-cell aplasia on day 182 (confirmed on day 274)",
     "SELECT participant_id, bca_status, bca_loss_day FROM mart.b_cell_aplasia WHERE bca_status <> 'ONGOING' "
     "ORDER BY 1", [("CD22-006", "LOST", 182), ("CD22-012", "LOST", 182)]),
    ("CD22-006: cyclophosphamide 20 % above the expected dose on day -2",
     "SELECT participant_id, agent, study_day, round(deviation_pct, 1), flag FROM mart.ld_dosing WHERE flag <> 'OK'",
     [("CD22-006", "cyclophosphamide", -2, 20.0, "DOSE_OUT_OF_RANGE")]),
    ("CD22-006 day 274: 60 of 900,000 events, detectable below the threshold",
     "SELECT study_day, mrd_status, round(mrd_fraction, 8) FROM mart.mrd_assessments WHERE participant_id = 'CD22-006' "
     "AND study_day = 274", [(274, "POSITIVE_LOW", 6.667e-05)]),
    ("CD22-010 day 28: 3 of 150,000 events, too few for the 1e-4 threshold",
     "SELECT study_day, mrd_status, round(mrd_fraction, 8) FROM mart.mrd_assessments WHERE participant_id = 'CD22-010' "
     "AND study_day = 28", [(28, "NEGATIVE_INSUFFICIENT_SENSITIVITY", 2e-05)]),
    ("CD22-004 and CD22-008: a referral lab in SI units from day 61, creatinine converted from µmol/L",
     "SELECT participant_id, min(study_day), bool_and(abs(value * 88.42 - CAST(orig_result AS DOUBLE)) < 1e-9) "
     "FROM core.lab_results WHERE test_code = 'CREAT' AND orig_unit = 'µmol/L' GROUP BY 1 ORDER BY 1",
     [("CD22-004", 61, True), ("CD22-008", 61, True)]),
    # the deliberate defects
    ("the corrected lab result: CD22-001's ANC P 0.324, F 0.324, C 1.5 x 0.324; core holds the C",
     "SELECT participant_id, accession, test_code, value, status, version FROM core.lab_results WHERE version > 1",
     [("CD22-001", "A00001022", "ANC", 0.486, "C", 3)]),
    ("the corrected lab result's history",
     "SELECT status, value FROM staging.labs WHERE accession = 'A00001022' AND test_code = 'ANC' ORDER BY resulted_at",
     [("P", 0.324), ("F", 0.324), ("C", 0.486)]),
    ("an unknown unit, a malformed and an unknown participant ID: one row each",
     "SELECT check_name, severity, json_extract_string(raw_record, '$.ACCESSION'), "
     "json_extract_string(raw_record, '$.SUBJECT_ID') FROM ops.rejected_rows WHERE severity <> 'skip' ORDER BY 1",
     [("participant_enrolled", "held", "B2368", "CD22-099"), ("participant_id_pattern", "blocking", "B5749", "CD-22-7"),
      ("unit_known", "blocking", "A00001022X", "CD22-001")]),
    ("the file that is not CSV is quarantined",
     "SELECT file_name, rows_loaded FROM ops.files WHERE status = 'quarantined'", [("flow_mrd_20260601T1000.csv", 0)]),
    ("the qPCR file sent twice under two names loads once",
     "SELECT file_name, status, rows_loaded FROM ops.files WHERE file_name LIKE 'qpcr_%' AND status <> 'loaded'",
     [("qpcr_20260304T1100.csv", "duplicate", 0)]),
    ("the re-gated MRD sample (2 more blast events) is version 2",
     "SELECT sample_id, events_leukemic, version FROM core.flow_samples WHERE version > 1",
     [("CD22-001_BM_D28.fcs", 6, 2)]),
    ("the qPCR rerun is version 2 of its sample",
     "SELECT sample_id, target, run_id, version FROM core.qpcr_results WHERE version > 1",
     [("Q000010017", "CD22CAR", "R202604-RERUN", 2)]),
    ("the AE record deleted between EDC snapshots is deleted in staging and absent from core",
     "SELECT participant_id, instance, ae_term, deleted, (SELECT count(*) FROM core.adverse_events a "
     "WHERE a.ae_term = s.ae_term) FROM staging.edc_adverse_events_current s WHERE deleted",
     [("CD22-001", 99, "Rash maculo-papular", True, 0)]),
]


@pytest.mark.parametrize("story, sql, rows", DEMO_STORIES, ids=[s[0][:60] for s in DEMO_STORIES])
def test_every_planted_demo_story_reaches_the_warehouse(demo_night, story, sql, rows):
    paths, _, _ = demo_night
    assert query(paths, sql) == rows, story

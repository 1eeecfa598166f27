"""The data manager's work list over three nights (warehouse.md ops.data_issues / ops.data_issue_events,
exports.md §E and "Schema drift"): the findings of the small trial of tests/test_nightly.py, then a corrected
re-export, then the enrollment and a decisions file. Every status and event below is computed by hand from
the rules in car22/loading/data_issues.py."""
from __future__ import annotations

import hashlib
import json
import random
import shutil

import duckdb
import pytest
from conftest import run
from test_nightly import (
    DOB,
    ENROLLMENT_HEADER,
    LAB_HEADER,
    data_issues,
    exports,
    lab,
    write,
)

from car22 import cli
from car22.night.paths import Paths

MRD_HEADER = (",$DATE,SUBJECT,COLLECTED,SPECIMEN,QC,CD45+/Viable | Count,CD45+/Viable/Blasts | Count,"
              "CD45+/Viable/Blasts | Freq. of Parent (%),CD45+/Viable/Blasts/CD19+ | Freq. of Parent (%),"
              "CD45+/Viable/Blasts/CD22+ | Freq. of Parent (%),CD22_ABC")


def issue_id(source: str, record_key: str, check: str) -> str:
    """warehouse.md: stable, from the source, the record identity and the check."""
    return hashlib.md5(f"{source}|{record_key}|{check}".encode()).hexdigest()[:16]


UNIT = issue_id("labs", "A3|ANC", "unit_known")                    # A3: 'cells/mm3', corrected on night 2
PATTERN = issue_id("labs", "A5|ANC", "participant_id_pattern")     # A5: 'CD-22-7', sent again, then accepted
HELD = issue_id("labs", "A4|ANC", "participant_enrolled")          # A4: CD22-099, enrolled on night 3
QUARANTINE = issue_id("flow_mrd", "flow_mrd_20260305T0900", "file_quarantined")  # a ZIP, replaced on night 2
DRIFT = issue_id("labs", "labs", "extra_columns")                  # night 2's labs carry a COMMENT column

NIGHT_2 = {
    "labs_20260306T1200.csv": "\n".join([LAB_HEADER + ",COMMENT",
                                         lab("CD22-001", "A3", "0.4", "F") + ",recalculated in K/uL",
                                         lab("CD-22-7", "A5", "1.0", "F") + ","]),
    # the same export time, so it replaces the quarantined file (the name may differ: one inbox holds both)
    "flow_mrd_regated_20260305T0900.csv": "\n".join([
        MRD_HEADER, "CD22-001_BM_D2.fcs,05-MAR-2026,CD22-001,2026-03-04,BM,PASS,4.43E+05,12,0.0027,90,95,3000"]),
}
DECISIONS = "\n".join([
    "issue_id,decision,reason,decided_by,decided_at",
    f'{PATTERN},ACCEPT,"sent by mistake: a proficiency sample, not a participant",AB,2026-03-07 12:00',
    "ffffffffffffffff,ACCEPT,no such issue,AB,2026-03-07 12:00",
    f"{UNIT},ACCEPT,,AB,2026-03-07 12:00",
])
NIGHT_3 = {
    "edc_enrollment_20260307T0100.csv": "\n".join([
        ENROLLMENT_HEADER,
        f"CD22-001,screening_arm_1,2026-02-10,{DOB},1,30,130,1,2025-11-01,0",
        "CD22-002,screening_arm_1,2026-02-12,1990-05-01,2,70,170,2,2025-10-20,0",
        "CD22-099,screening_arm_1,2026-03-06,2001-07-01,1,60,170,1,2025-12-01,0"]),
    "labs_20260307T1200.csv": "\n".join([LAB_HEADER, lab("CD22-001", "A6", "0.6", "F")]),
    "dm_decisions_20260307T1300.csv": DECISIONS,
}


def file_id(paths: Paths, name: str) -> str:
    return query(paths, "SELECT file_id FROM ops.files WHERE file_name = ? AND status <> 'duplicate'", [name])[0][0]


def query(paths: Paths, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def issues(paths: Paths) -> dict[str, tuple]:
    return {row[0]: row[1:] for row in query(paths, """
        SELECT issue_id, status, times_seen, first_seen_file_id, last_seen_file_id, resolved_by_file_id, decided_by
        FROM ops.data_issues""")}


@pytest.fixture(scope="module")
def nights(prefect, tmp_path_factory) -> tuple[Paths, list[dict]]:
    """The three nights, with the issues after each."""
    paths = Paths.under(tmp_path_factory.mktemp("issues"))
    after = []
    for night in (exports(), NIGHT_2, NIGHT_3):
        write(paths.inbox, night)
        run(paths)
        after.append(issues(paths))
    return paths, after


def test_the_first_night_opens_one_issue_per_finding(nights):
    paths, after = nights
    labs, zip_file = file_id(paths, "labs_20260301T1200.csv"), file_id(paths, "flow_mrd_20260305T0900.csv")
    assert after[0] == {
        UNIT: ("OPEN", 1, labs, labs, None, None),
        PATTERN: ("OPEN", 1, labs, labs, None, None),
        HELD: ("OPEN", 1, labs, labs, None, None),
        QUARANTINE: ("OPEN", 1, zip_file, zip_file, None, None),
    }


def test_a_corrected_re_export_resolves_and_a_repeat_is_seen_again(nights):
    paths, after = nights
    labs1, labs2 = file_id(paths, "labs_20260301T1200.csv"), file_id(paths, "labs_20260306T1200.csv")
    zip_file = query(paths, "SELECT file_id FROM ops.files WHERE status = 'quarantined'")[0][0]
    flow = query(paths, "SELECT file_id FROM ops.files WHERE source = 'flow_mrd' AND status = 'loaded'")[0][0]
    assert after[1] == {
        UNIT: ("RESOLVED", 1, labs1, labs1, labs2, None),
        PATTERN: ("OPEN", 2, labs1, labs2, None, None),
        HELD: ("OPEN", 1, labs1, labs1, None, None),
        QUARANTINE: ("RESOLVED", 1, zip_file, zip_file, flow, None),
        DRIFT: ("OPEN", 1, labs2, labs2, None, None),
    }


def test_the_enrollment_a_clean_file_and_a_decision_close_the_rest(nights):
    paths, after = nights
    labs1, labs2, labs3 = (file_id(paths, f"labs_2026030{d}T1200.csv") for d in (1, 6, 7))
    zip_file = query(paths, "SELECT file_id FROM ops.files WHERE status = 'quarantined'")[0][0]
    flow = query(paths, "SELECT file_id FROM ops.files WHERE source = 'flow_mrd' AND status = 'loaded'")[0][0]
    enrollment = file_id(paths, "edc_enrollment_20260307T0100.csv")
    assert after[2] == {
        UNIT: ("RESOLVED", 1, labs1, labs1, labs2, None),
        PATTERN: ("ACCEPTED", 2, labs1, labs2, None, "AB"),
        HELD: ("RESOLVED", 1, labs1, labs1, enrollment, None),
        QUARANTINE: ("RESOLVED", 1, zip_file, zip_file, flow, None),
        DRIFT: ("RESOLVED", 1, labs2, labs2, labs3, None),
    }
    assert query(paths, "SELECT count(*) FROM ops.data_issues WHERE status = 'OPEN' OR age_days IS NOT NULL") == [(0,)]


def test_every_change_is_an_event_once(nights):
    paths, _ = nights
    labs1, labs2, labs3 = (file_id(paths, f"labs_2026030{d}T1200.csv") for d in (1, 6, 7))
    zip_file = query(paths, "SELECT file_id FROM ops.files WHERE status = 'quarantined'")[0][0]
    flow = query(paths, "SELECT file_id FROM ops.files WHERE source = 'flow_mrd' AND status = 'loaded'")[0][0]
    decisions = file_id(paths, "dm_decisions_20260307T1300.csv")
    enrollment = file_id(paths, "edc_enrollment_20260307T0100.csv")
    events = {}
    for issue, event, run_id, file, user in query(paths, """SELECT issue_id, event, run_id, file_id, decided_by
                                                           FROM ops.data_issue_events ORDER BY run_id, "at" """):
        events.setdefault(issue, []).append((event, run_id, file, user))
    assert events == {
        UNIT: [("OPENED", 1, labs1, None), ("RESOLVED", 2, labs2, None)],
        PATTERN: [("OPENED", 1, labs1, None), ("SEEN_AGAIN", 2, labs2, None), ("ACCEPTED", 3, decisions, "AB")],
        HELD: [("OPENED", 1, labs1, None), ("RESOLVED", 3, enrollment, None)],
        QUARANTINE: [("OPENED", 1, zip_file, None), ("RESOLVED", 2, flow, None)],
        DRIFT: [("OPENED", 2, labs2, None), ("RESOLVED", 3, labs3, None)],
    }
    assert query(paths, "SELECT reason FROM ops.data_issue_events WHERE event = 'ACCEPTED'") == [
        ("sent by mistake: a proficiency sample, not a participant",)]


def test_a_held_rows_issue_says_it_is_held_then_why_it_was(nights):
    paths, _ = nights
    assert query(paths, "SELECT event, reason FROM ops.data_issue_events WHERE issue_id = ? ORDER BY run_id",
                 [HELD]) == [
        ("OPENED", "participant CD22-099 is not enrolled in the EDC (yet): the row is held and loads automatically "
                   "once the enrollment is exported"),
        ("RESOLVED", "participant CD22-099 is not enrolled in the EDC (yet): the row is held and loads once the "
                     "enrollment is exported"),
    ]
    assert query(paths, "SELECT reason FROM ops.data_issues WHERE issue_id = ?", [HELD]) == [
        ("participant CD22-099 is not enrolled in the EDC (yet): the row is held and loads once the enrollment is "
         "exported",)]


def test_a_decision_naming_no_issue_or_without_a_reason_is_rejected_with_the_reason(nights):
    paths, _ = nights
    assert query(paths, "SELECT status, rows_read, rows_loaded, rows_rejected FROM ops.files "
                        "WHERE source = 'dm_decisions'") == [("partially_loaded", 3, 1, 2)]
    assert query(paths, """SELECT r.row_number, r.check_name FROM ops.rejected_rows r JOIN ops.files f USING (file_id)
                           WHERE f.source = 'dm_decisions' ORDER BY 1""") == [(3, "issue_known"), (4, "reason_present")]


def test_schema_drift_loads_the_file_and_keeps_the_extra_values_in_raw(nights):
    paths, _ = nights
    labs2 = file_id(paths, "labs_20260306T1200.csv")
    assert query(paths, "SELECT status, rows_loaded FROM ops.files WHERE file_id = ?", [labs2]) == [
        ("partially_loaded", 1)]
    extra = query(paths, "SELECT row_number, extra_columns FROM raw.labs WHERE file_id = ? ORDER BY 1", [labs2])
    assert [(n, json.loads(e)) for n, e in extra] == [(2, {"COMMENT": "recalculated in K/uL"}), (3, {"COMMENT": ""})]
    assert query(paths, "SELECT row_number, check_name FROM ops.row_warnings WHERE file_id = ?", [labs2]) == [
        (1, "extra_columns")]


def test_the_command_lists_from_the_warehouse_and_writes_decisions_into_the_inbox(nights, tmp_path, capsys):
    paths, _ = nights
    warehouse = ["--warehouse", str(paths.warehouse)]
    assert cli.main(["data-issues", *warehouse, "--status", "all", "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("issue_id,status,source,check_name")
    assert sorted(line.split(",")[0] for line in lines[1:]) == sorted([UNIT, PATTERN, HELD, QUARANTINE, DRIFT])
    assert cli.main(["data-issues", *warehouse, "--status", "accepted", "--source", "labs"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 2 and table[1].startswith(PATTERN)
    assert cli.main(["data-issues", *warehouse]) == 0 and len(capsys.readouterr().out.splitlines()) == 1

    inbox = tmp_path / "inbox"
    decide = ["data-issues", *warehouse, "--inbox", str(inbox), "--decide", PATTERN]
    assert cli.main([*decide, "--reopen", "--reason", "the lab says it is a participant", "--by", "CD"]) == 0
    (written,) = inbox.iterdir()
    assert written.name.startswith("dm_decisions_") and written.read_text().splitlines()[0] == (
        "issue_id,decision,reason,decided_by,decided_at")
    assert written.read_text().splitlines()[1].startswith(f"{PATTERN},REOPEN,the lab says it is a participant,CD,")
    assert cli.main([*decide, "--reopen", "--reason", "x", "--by", "Dr Smith"]) == 2          # not a user id
    assert cli.main([*decide, "--accept", "--by", "CD"]) == 2                                # no reason
    assert cli.main([*decide[:-1], "ffffffffffffffff", "--accept", "--reason", "x", "--by", "CD"]) == 1
    assert cli.main(["data-issues", "--warehouse", str(tmp_path / "none.duckdb")]) == 2
    assert len(list(inbox.iterdir())) == 1


def test_the_same_files_in_one_run_give_the_same_issues(nights, tmp_path):
    """exports.md "Order does not matter": the decisions load last, so they may name tonight's issues."""
    paths, _ = nights
    once = Paths.under(tmp_path)
    write(once.inbox, {**exports(), **NIGHT_2, **NIGHT_3})
    run(once)
    assert (data_issues(once.warehouse)["status"] == data_issues(paths.warehouse)["status"]).all()
    assert data_issues(once.warehouse).equals(data_issues(paths.warehouse))


@pytest.mark.parametrize("exported, warned", [
    ("2026-03-07 13:00", False),        # the run's own minute: not later
    ("2026-03-07 13:01", True),         # later than the run: a clock or naming error at the sender
    (None, False),                      # no export time: quarantined before this point
])
def test_an_export_time_later_than_the_run_is_a_file_warning(exported, warned):
    from datetime import datetime

    from car22.intake.reading import read_export
    from car22.loading.load import file_warnings

    rows = read_export(f"{LAB_HEADER}\n{lab('CD22-001', 'A1', '0.4', 'F')}\n".encode())
    when = datetime.fromisoformat(exported) if exported else None
    found = file_warnings(rows, when, datetime(2026, 3, 7, 13, 0, 30))
    assert [check for check, _ in found] == (["export_time_after_run"] if warned else [])


@pytest.fixture(scope="module")
def after_first_night(prefect, tmp_path_factory):
    """A writable copy of the warehouse after the first night (open issues), with a second run started."""
    import shutil
    from datetime import datetime

    from car22.config import load_protocol
    from car22.night import transaction

    folder = tmp_path_factory.mktemp("empty-night")
    paths = Paths.under(folder)
    write(paths.inbox, exports())
    run(paths)
    copy = folder / "copy.duckdb"
    shutil.copyfile(paths.warehouse, copy)
    copy.chmod(0o600)
    con = duckdb.connect(str(copy))
    run_id = transaction.start_run(con, load_protocol(), "", datetime(2026, 4, 1, 2, 0))
    yield con, run_id
    con.close()


def test_a_night_without_files_only_ages_the_open_issues(after_first_night):
    """The shortcut of an empty night gives exactly what a full recompute gives, with no event."""
    from datetime import datetime

    from car22.loading import data_issues as issues_module

    con, run_id = after_first_night
    later = datetime(2026, 4, 1, 2, 0)
    events = con.execute("SELECT count(*) FROM ops.data_issue_events").fetchall()
    assert issues_module.nothing_new(con, run_id)
    issues_module.update(con, run_id, later)
    columns = ", ".join(c for c, in con.execute("SELECT column_name FROM duckdb_columns() WHERE schema_name = "
                                                "'ops' AND table_name = 'data_issues'").fetchall())
    kept = con.execute(f"SELECT {columns} FROM ops.data_issues ORDER BY issue_id").fetchall()
    issues_module.compute(con, later)
    assert kept == con.execute(f"SELECT {columns} FROM issues_now ORDER BY issue_id").fetchall()
    assert con.execute("SELECT count(*) FROM ops.data_issue_events").fetchall() == events
    # the first night's labs were exported 2026-03-01 12:00: 31 calendar days before 2026-04-01
    assert con.execute("SELECT DISTINCT age_days FROM ops.data_issues WHERE source = 'labs' "
                       "AND status = 'OPEN'").fetchall() == [(31,)]


@pytest.mark.parametrize("change, nothing_new", [
    (None, True),
    ("INSERT INTO ops.files (file_id, run_id, file_name, sha256, bytes, received_at, status) VALUES "
     "('f-new', $run, 'x.csv', 'x', 1, TIMESTAMP '2026-04-01 02:00', "
     "'duplicate')", False),                                        # any file tonight: recompute
    ("UPDATE ops.runs SET code_version = 'other' WHERE run_id = $run", False),    # new code: recompute
    ("UPDATE ops.runs SET config_hash = 'other' WHERE run_id = $run", False),     # new settings: recompute
])
def test_only_a_night_without_files_on_the_same_code_and_settings_skips_the_recompute(after_first_night, change,
                                                                                       nothing_new):
    from car22.loading import data_issues as issues_module

    con, run_id = after_first_night
    con.execute("BEGIN")
    try:
        if change:
            con.execute(change, {"run": run_id})
        assert issues_module.nothing_new(con, run_id) is nothing_new
    finally:
        con.execute("ROLLBACK")


@pytest.fixture
def checked_update(monkeypatch) -> list[bool]:
    """Every night's update is run twice from the same state, the full recompute then the scoped one, and the
    two must leave ops.data_issues and ops.data_issue_events exactly equal (every column, events in order), and
    no temp table behind: the night's connection lives on, and at 2,000 participants the recompute's tables held
    859 MB of DuckDB's memory through the rest of the night. Returns, night by night, whether the night was
    scoped."""
    from car22.loading import data_issues as issues_module

    update, scoped = issues_module.update, issues_module._scoped
    nights: list[bool] = []

    def tables(con) -> tuple[list, list]:
        return (con.execute("SELECT * FROM ops.data_issues ORDER BY issue_id").fetchall(),
                con.execute("SELECT * FROM ops.data_issue_events").fetchall())

    def temp_tables(con) -> list[tuple]:
        return con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary ORDER BY 1").fetchall()

    def checked(con, run_id, run_time):
        for table in ("data_issues", "data_issue_events"):
            con.execute(f"CREATE OR REPLACE TEMP TABLE before_{table} AS SELECT * FROM ops.{table}")
        others = temp_tables(con)
        monkeypatch.setattr(issues_module, "_scoped", lambda *_: False)
        update(con, run_id, run_time)
        assert temp_tables(con) == others
        full = tables(con)
        for table in ("data_issues", "data_issue_events"):
            con.execute(f"DELETE FROM ops.{table}")
            con.execute(f"INSERT INTO ops.{table} SELECT * FROM before_{table}")
        monkeypatch.setattr(issues_module, "_scoped", scoped)
        nights.append(scoped(con, run_id))
        update(con, run_id, run_time)
        assert tables(con) == full
        assert temp_tables(con) == others
        for table in ("data_issues", "data_issue_events"):
            con.execute(f"DROP TABLE before_{table}")

    monkeypatch.setattr(issues_module, "update", checked)
    return nights


def shuffled(files: dict[str, str], seed: int, per_night: int) -> list[dict[str, str]]:
    items = list(files.items())
    random.Random(seed).shuffle(items)
    return [dict(items[i:i + per_night]) for i in range(0, len(items), per_night)]


@pytest.mark.parametrize("nights", [
    [exports(), NIGHT_2, NIGHT_3],
    *(shuffled({**exports(), **NIGHT_2, **NIGHT_3}, seed, per_night) for seed, per_night in ((1, 1), (2, 1), (3, 3))),
], ids=["three-nights", "one-a-night-1", "one-a-night-2", "three-a-night"])
def test_a_night_scoped_to_its_files_equals_the_full_recompute(prefect, tmp_path, checked_update, nights):
    """Nights with an enrollment, a decisions file, a quarantined file (the flow_mrd ZIP and its replacement)
    and EDC snapshots (treatment, adverse events) among them: each recompute equals the full one."""
    paths = Paths.under(tmp_path)
    for night in nights:
        write(paths.inbox, night)
        run(paths)
    assert len(checked_update) == len(nights)
    assert True in checked_update


def test_demo_exports_night_by_night_scoped_equal_the_full_recompute(prefect, tmp_path, checked_update):
    """The demo's exports in their export-time order, five nights: the later nights are scoped."""
    from car22.demo import generate

    written = sorted(generate(tmp_path / "exports"), key=lambda p: p.name.rsplit("_", 1)[-1])
    paths = Paths.under(tmp_path / "nightly")
    paths.inbox.mkdir(parents=True, exist_ok=True)
    size = -(-len(written) // 5)
    for start in range(0, len(written), size):
        for path in written[start:start + size]:
            shutil.copyfile(path, paths.inbox / path.name)
        run(paths)
    assert True in checked_update


def test_an_issue_is_seen_once_per_file_however_many_of_its_rows_the_file_holds(prefect, tmp_path):
    """times_seen counts files, not findings (warehouse.md): a record sent twice in one file is one identity_unique
    finding per row, seen once; sent twice again in a later file, seen twice. A record whose unit is wrong in two
    files is seen twice. Issues with more than one finding have their files counted apart from the rest
    (car22.loading.data_issues.compute)."""
    paths = Paths.under(tmp_path)
    twice = lab("CD22-001", "B1", "0.4", "F")
    wrong_unit = lab("CD22-001", "B2", "400", "F", unit="cells/mm3")
    sent_twice, unit = issue_id("labs", "B1|ANC", "identity_unique"), issue_id("labs", "B2|ANC", "unit_known")
    write(paths.inbox, {
        "edc_enrollment_20260301T0100.csv": "\n".join([
            ENROLLMENT_HEADER, f"CD22-001,screening_arm_1,2026-02-10,{DOB},1,30,130,1,2025-11-01,0"]),
        "labs_20260301T1200.csv": "\n".join([LAB_HEADER, twice, twice, wrong_unit])})
    run(paths)
    first = issues(paths)
    assert (first[sent_twice][:2], first[unit][:2]) == (("OPEN", 1), ("OPEN", 1))
    another = lab("CD22-001", "B3", "0.5", "F")  # not the same bytes as the first file, which would load nothing
    write(paths.inbox, {"labs_20260302T1200.csv": "\n".join([LAB_HEADER, twice, twice, wrong_unit, another])})
    run(paths)
    second = issues(paths)
    assert (second[sent_twice][:2], second[unit][:2]) == (("OPEN", 2), ("OPEN", 2))

"""A package written over the previous one copies the records of unchanged subjects (car22.submission.writer):
it must be byte for byte the package written whole from the same warehouse, whatever changed, and a previous
package that cannot be trusted is not used. The slices are made small here so that the demo's larger datasets
are written in several of them."""
from __future__ import annotations

import itertools
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyreadstat
import pytest
from submission.conformance import XPT_STAMP, built, pyreadstat_whole

from car22.submission import writer
from car22.submission.build import datasets
from car22.submission.package import write_package

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=timezone.utc)
FIRST = "(SELECT min(participant_id) FROM core.lab_results)"
MIDDLE = "(SELECT participant_id FROM core.participants ORDER BY participant_id LIMIT 1 OFFSET 3)"

COPIES = itertools.count(1)  # a second more for each copy
FIRST_AE = "(SELECT participant_id FROM core.adverse_events WHERE rowid = (SELECT min(rowid) FROM core.adverse_events))"

# A change to the warehouse, and the participants its run rebuilt (ops.rebuilt_participants), as a night records it.
CHANGES = {
    "nothing": ([], "nothing"),
    "a lab value": ([f"""UPDATE core.lab_results SET value = value + 1, orig_result = orig_result || '0'
                         WHERE participant_id = {FIRST} AND accession = (SELECT min(accession) FROM
                         core.lab_results WHERE participant_id = {FIRST})"""], [FIRST]),
    "a lab result gone": ([f"""DELETE FROM core.lab_results WHERE rowid = (SELECT min(rowid) FROM core.lab_results
                              WHERE participant_id = {MIDDLE})"""], [MIDDLE]),
    "an adverse event term longer than any": (["""UPDATE core.adverse_events SET ae_term = ae_term || ' and more
                                                   words than any other term has' WHERE rowid =
                                                   (SELECT min(rowid) FROM core.adverse_events)"""], [FIRST_AE]),
    "a participant gone, one rebuilt unchanged": ([f"""DELETE FROM core.lab_results WHERE participant_id = {MIDDLE}""",
                                                   f"DELETE FROM core.participants WHERE participant_id = {MIDDLE}"],
                                                  [MIDDLE, FIRST]),
    "a lab value, every participant rebuilt": ([f"""UPDATE core.lab_results SET value = value * 2 WHERE rowid =
                                                    (SELECT min(rowid) FROM core.lab_results WHERE participant_id =
                                                    {MIDDLE} AND result_kind = 'VALUE')"""], "everything"),
    "a lab value, the run did not say what it rebuilt": ([f"""UPDATE core.lab_results SET value = value * 2
                                                              WHERE rowid = (SELECT min(rowid) FROM core.lab_results
                                                              WHERE participant_id = {MIDDLE} AND
                                                              result_kind = 'VALUE')"""], None),
}


# The datasets each change leaves unchanged, of all datasets: their transport files are kept (linked).
UNCHANGED = {
    "nothing": lambda every: every,
    "a lab value": lambda every: every - {"LB", "ADLB"},
    "a lab result gone": lambda every: every - {"LB", "ADLB"},
    "an adverse event term longer than any": lambda every: every - {"AE", "ADAE"},
    # the participant's records are gone from every dataset that had them: those not counted here
    "a participant gone, one rebuilt unchanged": None,
    "a lab value, every participant rebuilt": lambda every: every - {"LB", "ADLB"},
    "a lab value, the run did not say what it rebuilt": lambda every: every - {"LB", "ADLB"},
}


def transport_inodes(folder: Path) -> dict[str, int]:
    """Each dataset's transport file's inode (a file linked, not copied, keeps its inode)."""
    return {p.stem.upper(): p.stat().st_ino for p in folder.rglob("*.xpt")}


@pytest.fixture(autouse=True)
def small_slices(monkeypatch):
    monkeypatch.setattr(writer, "RECORDS_AT_ONCE", 2_000)


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): XPT_STAMP.sub(b"", p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.is_file() and writer.INDEX not in p.parts}


def changed_copy(demo_night, tmp_path: Path, statements: list[str], rebuilt: str | list[str] | None) -> Path:
    """A copy of the demo warehouse changed by `statements` in one more completed run, which records its scope
    ('nothing' or 'everything') or the participants it rebuilt (SQL giving each one), or nothing when None. Each
    copy's run ends at another second, as two warehouses' runs would."""
    paths, _, _ = demo_night
    tmp_path.mkdir(parents=True, exist_ok=True)
    warehouse = tmp_path / "changed.duckdb"
    shutil.copyfile(paths.warehouse, warehouse)
    with duckdb.connect(str(warehouse)) as con:
        run_id = con.execute("SELECT max(run_id) + 1 FROM ops.runs").fetchall()[0][0]
        if isinstance(rebuilt, list):
            participants = [con.execute(f"SELECT {one}").fetchall()[0][0] for one in rebuilt]
            con.executemany("INSERT INTO ops.rebuilt_participants VALUES (?, 'touched', ?)",
                            [(run_id, None), *((run_id, participant) for participant in participants)])
        elif rebuilt is not None:
            con.execute("INSERT INTO ops.rebuilt_participants VALUES (?, ?, NULL)", [run_id, rebuilt])
        for statement in statements:
            con.execute(statement)
        con.execute("INSERT INTO ops.runs (run_id, started_at, finished_at, status) SELECT ?, max(finished_at) + "
                    "INTERVAL 1 HOUR, max(finished_at) + INTERVAL 2 HOUR + to_seconds(?), 'completed' FROM ops.runs",
                    [run_id, next(COPIES)])
    return warehouse


@pytest.mark.parametrize("change", CHANGES)
def test_written_over_the_previous_package_equals_written_whole(demo_night, tmp_path, change):
    paths, _, _ = demo_night
    over = tmp_path / "over"
    whole_before = write_package(paths.warehouse, over, now=NOW)
    warehouse = changed_copy(demo_night, tmp_path, *CHANGES[change])
    inodes = transport_inodes(over)

    reused = write_package(warehouse, over, now=NOW)
    whole = write_package(warehouse, tmp_path / "whole", now=NOW)

    assert files_of(over) == files_of(tmp_path / "whole")
    # An unchanged dataset's transport file is the previous one itself; every other is a new file.
    assert {name for name, inode in transport_inodes(over).items() if inodes[name] == inode} == set(reused.kept)
    unchanged = UNCHANGED[change]
    if unchanged is None:
        assert {"DM", "LB"}.isdisjoint(reused.kept)
        assert set(reused.kept) == {name for name, n in whole.records.items() if n == whole_before.records[name]}
    else:
        assert set(reused.kept) == unchanged(set(whole.records))
    assert whole_before.kept == whole.kept == []
    assert sum(whole_before.copied.values()) == 0 and sum(whole.copied.values()) == 0
    assert whole_before.rebuilt is None and whole.rebuilt is None
    assert reused.records == whole.records
    statements, rebuilt = CHANGES[change]
    if change == "an adverse event term longer than any":
        assert reused.rebuilt is None  # a new length: built whole, every AE record written anew
        assert reused.copied["AE"] == reused.copied["ADAE"] == 0
        assert reused.copied["LB"] == reused.records["LB"]
        return
    assert reused.rebuilt == (len(rebuilt) if isinstance(rebuilt, list) else 0 if rebuilt == "nothing" else None)
    if change in ("nothing", "a participant gone, one rebuilt unchanged"):
        assert reused.copied == reused.records
        assert reused.records["DM"] == whole_before.records["DM"] - (change != "nothing")
    else:
        assert 0 < reused.copied["LB"] < reused.records["LB"]
        assert reused.copied["DM"] == reused.records["DM"]


def test_whole_builds_and_encodes_everything(demo_night, tmp_path):
    paths, _, _ = demo_night
    over = tmp_path / "over"
    write_package(paths.warehouse, over, now=NOW)
    again = write_package(paths.warehouse, over, now=NOW, whole=True)
    assert again.rebuilt is None and sum(again.copied.values()) == 0 and again.kept == []
    assert files_of(over) == files_of(write_package(paths.warehouse, tmp_path / "whole", now=NOW).folder)


@pytest.mark.parametrize("other", ["another warehouse's run", "an older warehouse"])
def test_a_package_of_another_warehouse_is_not_taken_for_this_ones(demo_night, tmp_path, other):
    """The previous package's run must be this warehouse's (same number, same end): else everyone is built."""
    lab_value = CHANGES["a lab value"][0]
    first = changed_copy(demo_night, tmp_path / "first", lab_value if other == "an older warehouse" else [], "nothing")
    if other == "an older warehouse":
        second = demo_night[0].warehouse
    else:
        # the same run number, but another end; its run says nothing changed, which is true of its own history only
        second = changed_copy(demo_night, tmp_path / "second", lab_value, "nothing")
    over = tmp_path / "over"
    write_package(first, over, now=NOW)
    again = write_package(second, over, now=NOW)
    assert again.rebuilt is None and again.copied["LB"] < again.records["LB"]
    assert files_of(over) == files_of(write_package(second, tmp_path / "whole", now=NOW).folder)


def nth(n: int) -> str:
    return f"(SELECT participant_id FROM core.participants ORDER BY participant_id LIMIT 1 OFFSET {n})"


def test_subjects_rebuilt_apart_are_encoded_together(demo_night, tmp_path, monkeypatch):
    """Three participants' lab values changed, a fourth rebuilt unchanged among them: their LB records lie apart in
    the files, between copied subjects, but are one stretch of the built table, encoded in one batch."""
    paths, _, _ = demo_night
    over = tmp_path / "over"
    write_package(paths.warehouse, over, now=NOW)
    changed = [nth(1), nth(3), nth(6)]
    first_result = ("(SELECT min(accession) FROM core.lab_results WHERE participant_id = {p} "
                    "AND result_kind = 'VALUE')")
    warehouse = changed_copy(demo_night, tmp_path, [
        f"UPDATE core.lab_results SET value = value + 1 WHERE participant_id = {p} AND accession = "
        f"{first_result.format(p=p)} AND result_kind = 'VALUE'" for p in changed], [*changed, nth(4)])
    calls = []
    encode = writer.xpt_records
    monkeypatch.setattr(writer, "xpt_records", lambda table, *rest: calls.append((table.dataset.name, table.records))
                        or encode(table, *rest))

    reused = write_package(warehouse, over, now=NOW)
    lb = [records for name, records in calls if name == "LB"]

    assert files_of(over) == files_of(write_package(warehouse, tmp_path / "whole", now=NOW).folder)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rebuilt_lb = con.execute(f"""SELECT count(*) FROM core.lab_results WHERE participant_id IN
                                     ({", ".join([*changed, nth(4)])})""").fetchall()[0][0]
    # one batch: the four rebuilt participants' LB records, the unchanged one's encoded for nothing
    assert lb == [rebuilt_lb]
    assert 0 < reused.records["LB"] - reused.copied["LB"] < rebuilt_lb
    assert set(reused.kept) == set(reused.records) - {"LB", "ADLB"}


def test_where_a_file_cannot_be_linked_it_is_written(demo_night, tmp_path, monkeypatch):
    paths, _, _ = demo_night
    over = tmp_path / "over"
    write_package(paths.warehouse, over, now=NOW)
    inodes = transport_inodes(over)

    def refuse(source, target):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(writer.os, "link", refuse)
    again = write_package(paths.warehouse, over, now=NOW)

    assert again.kept == [] and again.copied == again.records
    assert all(inodes[name] != inode for name, inode in transport_inodes(over).items())
    assert files_of(over) == files_of(write_package(paths.warehouse, tmp_path / "whole", now=NOW).folder)


@pytest.mark.parametrize("damage", ["a record's byte gone from the json", "xpt longer", "index of other code",
                                    "index gone"])
def test_a_previous_package_that_cannot_be_trusted_is_not_used(demo_night, tmp_path, damage):
    paths, _, _ = demo_night
    over = tmp_path / "over"
    write_package(paths.warehouse, over, now=NOW)
    lb = over / "sdtm" / "lb"
    index = over / writer.INDEX / "LB.json"
    if damage == "a record's byte gone from the json":
        lb.with_suffix(".json").write_bytes(lb.with_suffix(".json").read_bytes().replace(b'"rows":[[', b'"rows":[', 1))
    elif damage == "xpt longer":
        lb.with_suffix(".xpt").write_bytes(lb.with_suffix(".xpt").read_bytes() + b" " * 80)
    elif damage == "index of other code":
        index.write_text(index.read_text().replace('"key": "', '"key": "0'))
    else:
        index.unlink()

    again = write_package(paths.warehouse, over, now=NOW)

    assert again.copied["LB"] == 0 and again.copied["DM"] == again.records["DM"]
    assert files_of(over) == files_of(write_package(paths.warehouse, tmp_path / "whole", now=NOW).folder)


@pytest.mark.parametrize("name", [d.name for d in datasets()])
def test_the_transport_file_is_pyreadstats_of_the_whole_dataset(demo_night, tmp_path, name):
    """The records laid out by car22 a column at a time, their numbers' bytes pyreadstat's, and the slices joined,
    equal one pyreadstat call on every record (the way the package was written before)."""
    paths, _, _ = demo_night
    folder = write_package(paths.warehouse, tmp_path / "package", now=NOW).folder
    table = built(paths.warehouse)[name]
    whole = pyreadstat_whole(table, tmp_path / "whole.xpt")
    written = folder / table.dataset.folder / f"{name.lower()}.xpt"
    assert XPT_STAMP.sub(b"", written.read_bytes()) == XPT_STAMP.sub(b"", whole)


def test_a_zero_turned_negative_zero_is_written_again(demo_night, tmp_path):
    """-0.0 equals 0.0 and hashes alike in DuckDB, but its transport and JSON bytes differ: the digest has the sign."""
    one = f"""participant_id = {FIRST} AND accession = (SELECT min(accession) FROM core.lab_results
              WHERE participant_id = {FIRST} AND result_kind = 'VALUE')"""
    zero = changed_copy(demo_night, tmp_path / "zero", [f"UPDATE core.lab_results SET value = 0.0::DOUBLE WHERE {one}"],
                        "everything")
    negative = changed_copy(demo_night, tmp_path / "negative",
                            [f"UPDATE core.lab_results SET value = -(0.0::DOUBLE) WHERE {one}"], "everything")
    over = tmp_path / "over"
    write_package(zero, over, now=NOW)
    reused = write_package(negative, over, now=NOW)
    assert files_of(over) == files_of(write_package(negative, tmp_path / "whole", now=NOW).folder)
    assert reused.copied["LB"] < reused.records["LB"] and reused.copied["DM"] == reused.records["DM"]
    with duckdb.connect(str(negative), read_only=True) as con:
        assert set(con.sql(f"SELECT signbit(value) FROM core.lab_results WHERE {one}").fetchall()) == {(True,)}


@pytest.mark.parametrize("term, declared", [
    ("x" * 200, 200),             # the transport limit itself
    ("x" * 201, None),            # one byte over: refused
    ("µ" * 150, 150),             # 300 bytes in UTF-8, 150 in transport ASCII ('u')
    ("é" * 201, None),            # accents dropped: 201 transport bytes, refused
])
def test_a_text_value_over_200_transport_bytes_is_refused_naming_it(demo_night, tmp_path, term, declared):
    warehouse = changed_copy(demo_night, tmp_path, [f"""UPDATE core.adverse_events SET ae_term = '{term}' WHERE
                                                        rowid = (SELECT max(rowid) FROM core.adverse_events)"""],
                             [FIRST_AE])
    if declared is None:
        with pytest.raises(ValueError, match=r"AE\.AETERM: a value longer than 200 bytes cannot go into SAS "
                                             r"transport v5: (x|e){40}\.\.\."):
            write_package(warehouse, tmp_path / "package", now=NOW)
        return
    written = write_package(warehouse, tmp_path / "package", now=NOW).folder
    index = json.loads((written / writer.INDEX / "AE.json").read_text())
    assert index["lengths"]["AETERM"] == declared
    assert pyreadstat.read_xport(str(written / "sdtm" / "ae.xpt"))[0]["AETERM"].str.len().max() == declared

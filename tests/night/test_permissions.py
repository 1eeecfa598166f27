"""Who may read what (README): the folders that can hold the EDC originals, dates of birth included (the
archive, pending and work), are owner-only, 0700 folders and 0600 files, whatever the umask; the reports
are for readers."""
from __future__ import annotations

import os
import stat
from datetime import datetime
from pathlib import Path

import pytest

from car22.intake.take import take_inbox
from car22.loading.load import archive
from car22.night.paths import Paths
from car22.night.storage import write_whole


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    """The most permissive umask a service account could have."""
    previous = os.umask(0o000)
    yield
    os.umask(previous)


@pytest.mark.parametrize("folder, expected", [
    ("archive", 0o700), ("work", 0o700), ("work/pending", 0o700), ("inbox", 0o777), ("reports", 0o777),
])
def test_create_makes_the_private_folders_owner_only(tmp_path, open_umask, folder, expected):
    (tmp_path / "inbox").mkdir()   # the data managers' folder: the night never creates it (Paths.check_inbox)
    Paths.under(tmp_path).create()
    assert mode(tmp_path / folder) == expected


def test_create_tightens_a_private_folder_an_earlier_version_left_open(tmp_path):
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive").chmod(0o755)
    (tmp_path / "inbox").mkdir()
    Paths.under(tmp_path).create()
    assert mode(tmp_path / "archive") == 0o700


def test_archived_original_is_owner_only(tmp_path, open_umask):
    (tmp_path / "inbox").mkdir()
    Paths.under(tmp_path).create()
    kept = archive(b"record_id,dob\n", tmp_path / "archive", datetime(2026, 12, 2, 3, 0), "abc", "edc_x.csv")
    assert (mode(kept), mode(kept.parent), mode(tmp_path / "archive")) == (0o600, 0o700, 0o700)


def test_a_file_taken_from_the_inbox_is_owner_only_while_pending(tmp_path, open_umask):
    paths = Paths.under(tmp_path)
    paths.inbox.mkdir()
    paths.create()
    dropped = paths.inbox / "edc_enrollment_20260101T0100.csv"
    dropped.write_bytes(b"record_id,dob\n")
    dropped.chmod(0o644)
    pending = take_inbox(paths)
    assert [(p.name, mode(p)) for p in pending] == [(dropped.name, 0o600)]


@pytest.mark.parametrize("given, expected", [(None, 0o644), (0o600, 0o600), (0o640, 0o640)])
def test_write_whole_sets_the_mode_asked_for(tmp_path, given, expected):
    previous = os.umask(0o022)
    try:
        assert mode(write_whole(tmp_path / "page.html", b"x", mode=given)) == expected
    finally:
        os.umask(previous)


def test_after_a_night_nothing_private_is_readable_by_others(demo_night):
    """Every folder and file under the archive and the work folder of the demo night."""
    paths, _, _ = demo_night
    found = [(p, mode(p)) for root in (paths.archive, paths.work) for p in [root, *root.rglob("*")]]
    assert [p for p, m in found if p.is_dir() and m != 0o700] == []
    assert [p for p, m in found if p.is_file() and m != 0o600] == []
    assert len([p for p, _ in found if p.is_file() and p.parent.parent == paths.archive]) > 10

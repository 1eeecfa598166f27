"""The inbox check shared by the command and the deployed flow: a night over a missing or unreadable inbox
refuses to run, says why, creates nothing and publishes nothing."""
from __future__ import annotations

import errno
import os

import pytest

from car22.night.paths import InboxUnusable, Paths

ADVICE = ("create it (or give it read access) and drop the exports there, or point CAR22_INBOX / CAR22_DATA_DIR "
          "(or the flags) at the right folder")


def unreadable(monkeypatch, inbox):
    """The inbox exists but listing it is denied (a chmod does not stop root, who runs CI)."""
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path) == os.fspath(inbox):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


@pytest.mark.parametrize("inbox_state, why", [
    ("missing", "does not exist"),
    ("a file", "is not a folder"),
    ("unreadable", "cannot be read (Permission denied)"),
])
def test_an_unusable_inbox_is_refused_and_nothing_is_created(tmp_path, monkeypatch, inbox_state, why):
    paths = Paths.under(tmp_path / "data")
    if inbox_state == "a file":
        paths.inbox.parent.mkdir()
        paths.inbox.write_text("not a folder")
    elif inbox_state == "unreadable":
        paths.inbox.mkdir(parents=True)
        unreadable(monkeypatch, paths.inbox)
    with pytest.raises(InboxUnusable) as refusal:
        paths.create()
    assert str(refusal.value) == f"inbox {paths.inbox} {why}: {ADVICE}"
    left = sorted(p.name for p in (tmp_path / "data").iterdir()) if (tmp_path / "data").exists() else []
    assert left == ([] if inbox_state == "missing" else ["inbox"])


@pytest.mark.parametrize("files", [0, 2])
def test_a_readable_inbox_empty_or_not_is_accepted_and_the_other_folders_are_created(tmp_path, files):
    paths = Paths.under(tmp_path)
    paths.inbox.mkdir()
    for n in range(files):
        (paths.inbox / f"f{n}.csv").write_text("x\n")
    paths.create()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive", "inbox", "reports", "work"]
    assert (paths.work / "pending").is_dir()
    assert len(list(paths.inbox.iterdir())) == files


def test_the_flow_fails_with_the_reason_and_publishes_nothing(prefect, tmp_path):
    """What a deployment does when CAR22_DATA_DIR points at a folder without an inbox (issue 18)."""
    from flows.nightly import nightly

    paths = Paths.under(tmp_path / "data")
    state = nightly(data_dir=str(tmp_path / "data"), return_state=True)
    assert state.is_failed()
    assert state.message == f"inbox {paths.inbox} does not exist: {ADVICE}"
    assert not (tmp_path / "data").exists()        # no inbox made up, no warehouse published

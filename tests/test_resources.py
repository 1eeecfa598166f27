"""Resources: an archive, reports or work folder that cannot be used fails the run with a clear message, publishes nothing and
leaves yesterday's warehouse and the night's files intact. (Root ignores permission bits, so 'cannot be
written' is an archive path that is a file, not a folder.)"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest
from conftest import run
from test_nightly import exports, write

from car22.night.paths import Paths, explain_failure


@pytest.mark.parametrize("where", ["archive", "reports", "work"])
def test_unusable_folder_fails_cleanly(prefect, tmp_path, where):
    paths = Paths.under(tmp_path)
    files = sorted(exports().items())
    write(paths.inbox, dict(files[:3]))
    run(paths)
    yesterday = hashlib.sha256(paths.warehouse.read_bytes()).hexdigest()
    write(paths.inbox, dict(files[3:]))
    broken = getattr(paths, where)
    shutil.rmtree(broken)
    broken.write_text("not a folder")
    with pytest.raises(Exception) as failure:
        run(paths)
    assert f"cannot use folder {broken}" in str(failure.value)
    assert hashlib.sha256(paths.warehouse.read_bytes()).hexdigest() == yesterday
    waiting = sorted(p.name for folder in (paths.inbox, paths.work / "pending") if folder.is_dir()
                     for p in folder.iterdir())
    assert waiting == sorted(name for name, _ in files[3:])
    broken.unlink()
    run(paths)                                           # fixed: the next night takes the waiting files
    assert not list((paths.work / "pending").iterdir())


# --- A disk that fills up during the night (a small tmpfs mounted over one folder; needs root) ---------------

@contextmanager
def small_disk(folder: Path, room: int):
    """Mount a tmpfs over `folder` holding what the folder's top level held plus `room` free bytes; unmounted
    on exit (what lies deeper is hidden meanwhile)."""
    keep = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}
    folder.mkdir(parents=True, exist_ok=True)
    size = room + sum(-(-len(data) // 4096) * 4096 for data in keep.values())
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"cannot mount a small tmpfs here ({error}): the disk-full test needs root")
    try:
        for name, data in keep.items():
            (folder / name).write_bytes(data)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


def grow(folder: Path, size: int) -> None:
    """Free space on the full disk (as a data manager would) by making the tmpfs larger."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True, capture_output=True)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith((".partial", ".publishing")))


@pytest.mark.parametrize("where, room", [
    ("archive", 3 * 4096),            # fills after a few of the night's files are archived
    ("reports", 24 * 1024),           # fills while writing the Data Docs pages
    ("work", 16 * 1024),              # fills while taking the files from the inbox
    ("work", "warehouse+64k"),        # the work copy fits, the night's writes to it do not
    ("published", 64 * 1024),         # the new warehouse cannot be staged next to the published one
])
def test_disk_full_mid_run_fails_cleanly(prefect, tmp_path, where, room):
    paths = Paths(tmp_path / "inbox", tmp_path / "published" / "warehouse.duckdb", tmp_path / "archive",
                  tmp_path / "reports", tmp_path / "work")
    files = sorted(exports().items())
    write(paths.inbox, dict(files[:3]))
    run(paths)
    yesterday = hashlib.sha256(paths.warehouse.read_bytes()).hexdigest()
    write(paths.inbox, dict(files[3:]))
    folder = paths.warehouse.parent if where == "published" else getattr(paths, where)
    room = room if isinstance(room, int) else paths.warehouse.stat().st_size + 64 * 1024
    with small_disk(folder, room):
        with pytest.raises(Exception) as failure:
            run(paths)
        assert "No space left on device" in str(failure.value)
        assert "disk full" in explain_failure(failure.value)
        assert hashlib.sha256(paths.warehouse.read_bytes()).hexdigest() == yesterday
        waiting = {p.name: p.read_bytes() for f in (paths.inbox, paths.work / "pending") if f.is_dir()
                   for p in f.iterdir() if p.is_file()}
        assert waiting == {name: text.encode() for name, text in files[3:]}   # whole, not truncated copies
        assert leftovers(folder) == []                                        # no half-written file left
        grow(folder, 64 * 1024 * 1024)
        summary = run(paths)                                                  # space freed: the night goes on
        assert summary.files_seen == len(files) - 3
        assert not list((paths.work / "pending").iterdir()) and not list(paths.inbox.iterdir())
        archived = {p.name.split("__", 1)[1]: p.read_bytes() for p in paths.archive.rglob("*__*")}
        assert all(archived[name] == text.encode() for name, text in files[3:])
        with duckdb.connect(str(paths.warehouse), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM ops.files").fetchall()[0][0] == len(files)


@pytest.mark.parametrize("error, told", [
    (OSError(28, "No space left on device", "/archive/x.csv.partial"), "disk full at /archive/x.csv.partial:"),
    (duckdb.TransactionException('Failed to commit: Could not write file "/work/warehouse.duckdb.wal": No space '
                                 'left on device'), "disk full at /work/warehouse.duckdb.wal:"),
    (RuntimeError("wrapped"), "fix the cause, then run again"),
])
def test_failures_are_explained(error, told):
    assert explain_failure(error).startswith(told)
    wrapped = RuntimeError("task failed")
    wrapped.__cause__ = error
    assert explain_failure(wrapped).startswith(told)

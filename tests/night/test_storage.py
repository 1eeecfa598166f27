"""The kernel copies behind the night's work copy and the submission's copied records (car22.night.storage):
the same bytes whichever way the kernel takes, and a clear failure when it cannot."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from car22.night import storage

MB = 1 << 20


def _bytes(size: int) -> bytes:
    """Bytes that differ at every position of a 16 MB fallback chunk, so a misplaced chunk shows."""
    return (bytes(range(251)) * (size // 251 + 1))[:size]


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 16 * MB + 3])
@pytest.mark.parametrize("kernel", ["copy_file_range", "falls back: two file systems", "falls back: no syscall"])
def test_clone_file_is_byte_for_byte(tmp_path: Path, monkeypatch, size: int, kernel: str) -> None:
    if kernel != "copy_file_range":
        code = errno.EXDEV if "two" in kernel else errno.ENOSYS

        def refused(*_args, **_kwargs):
            raise OSError(code, os.strerror(code))
        monkeypatch.setattr(storage.os, "copy_file_range", refused)
    source, target = tmp_path / "warehouse.duckdb", tmp_path / "work.duckdb"
    source.write_bytes(_bytes(size))
    target.write_bytes(b"stale work copy, longer than some sources" * 10)  # truncated, not overwritten in place
    storage.clone_file(source, target)
    assert target.read_bytes() == source.read_bytes()


@pytest.mark.parametrize(("offset", "size"), [(0, 0), (0, 10), (7, 100), (4096, 4096), (5000, 1)])
def test_copy_range_appends_the_range(tmp_path: Path, offset: int, size: int) -> None:
    data = _bytes(9000)
    source, target = tmp_path / "old.json", tmp_path / "new.json"
    source.write_bytes(data)
    with open(source, "rb") as reading, open(target, "wb", buffering=0) as writing:  # as the writer opens it
        writing.write(b"head,")
        storage.copy_range(reading.fileno(), writing.fileno(), offset, size)
        writing.write(b",tail")
    assert target.read_bytes() == b"head," + data[offset:offset + size] + b",tail"


def test_copy_range_past_the_end_says_so(tmp_path: Path) -> None:
    source, target = tmp_path / "old.xpt", tmp_path / "new.xpt"
    source.write_bytes(b"x" * 100)
    with open(source, "rb") as reading, open(target, "wb") as writing, \
            pytest.raises(EOFError, match="ended 20 bytes before"):
        storage.copy_range(reading.fileno(), writing.fileno(), 50, 70)


def test_a_full_disk_names_the_copy(tmp_path: Path, monkeypatch) -> None:
    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(storage.os, "copy_file_range", full)
    source, target = tmp_path / "warehouse.duckdb", tmp_path / "work.duckdb"
    source.write_bytes(b"x" * 10)
    with pytest.raises(OSError) as raised:
        storage.clone_file(source, target)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(target)


@pytest.mark.parametrize(("written", "offset", "size", "aligned_from"), [
    (100, 100, 10_000, 4096),       # the same place within a block: the rest starts on a boundary in both
    (4196, 100, 10_000, 4096),      # a block further on in the new file: still the same place
    (5, 5, 3000, None),             # all of it before the next boundary: nothing to share
    (0, 8192, 8192, 8192),          # already on a boundary in both
    (100, 101, 10_000, None),       # another place within a block: no block can be shared, one copy
])
def test_copy_range_lines_up_the_blocks_a_file_system_can_share(tmp_path: Path, monkeypatch, written: int,
                                                                offset: int, size: int, aligned_from) -> None:
    calls: list[tuple[int, int]] = []
    kernel = os.copy_file_range

    def recorded(source, target, count, offset_src=None, offset_dst=None):
        calls.append((offset_src, os.lseek(target, 0, os.SEEK_CUR)))
        return kernel(source, target, count, offset_src, offset_dst)
    monkeypatch.setattr(storage.os, "copy_file_range", recorded)
    data = _bytes(offset + size)
    source, target = tmp_path / "old.json", tmp_path / "new.json"
    source.write_bytes(data)
    with open(source, "rb") as reading, open(target, "wb", buffering=0) as writing:
        writing.write(b"h" * written)
        storage.copy_range(reading.fileno(), writing.fileno(), offset, size)
    assert target.read_bytes() == b"h" * written + data[offset:offset + size]
    block = os.stat(target).st_blksize
    assert block == 4096, "the cases are written for 4 KiB blocks"
    boundaries = [(at, to) for at, to in calls if at % block == 0 and to % block == 0]
    if aligned_from is None:
        assert len(calls) == 1 and not (calls[0][0] % block == 0 and calls[0][1] % block == 0)
    else:
        assert boundaries[0][0] == aligned_from

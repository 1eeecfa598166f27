"""Writing files so that a crash or a full disk leaves either the whole new file or none (RELIABILITY.md)."""
from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_whole(path: Path, data: bytes) -> Path:
    """Write under a temporary name, flush to disk, rename into place; on failure remove the temporary."""
    _into_place(path, path.with_name(path.name + ".partial"), lambda handle: handle.write(data))
    return path


def move_whole(source: Path, target: Path) -> None:
    """Move a file so that `target` is either absent or complete: a rename on one file system; across file
    systems a copy under a hidden temporary name, flushed, renamed into place, and only then the source
    removed (a disk that fills mid-copy leaves the source untouched and no partial target)."""
    try:
        os.rename(source, target)
        return
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
    with open(source, "rb") as reading:
        _into_place(target, target.with_name(f".{target.name}.partial"),
                    lambda handle: shutil.copyfileobj(reading, handle, 1 << 20))
    source.unlink()


def _into_place(target: Path, partial: Path, fill: Callable[[BinaryIO], object]) -> None:
    try:
        with open(partial, "wb") as handle:
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, target)
    except BaseException as error:
        partial.unlink(missing_ok=True)
        raise _naming(error, target)


def _naming(error: BaseException, path: Path) -> BaseException:
    """A failed write (ENOSPC) names no file: name the one we were writing, so the person knows which disk."""
    if isinstance(error, OSError) and not error.filename:
        named = OSError(error.errno, error.strerror, str(path))
        named.__cause__ = error
        return named
    return error

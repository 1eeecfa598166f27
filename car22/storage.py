"""Writing files so that a crash or a full disk leaves either the whole new file or none (RELIABILITY.md)."""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path


def write_whole(path: Path, data: bytes) -> Path:
    """Write under a temporary name, flush to disk, rename into place; on failure remove the temporary."""
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException as error:
        partial.unlink(missing_ok=True)
        raise _naming(error, path)
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
    partial = target.with_name(f".{target.name}.partial")
    try:
        with open(source, "rb") as reading, open(partial, "wb") as writing:
            shutil.copyfileobj(reading, writing, 1 << 20)
            writing.flush()
            os.fsync(writing.fileno())
        os.replace(partial, target)
    except BaseException as error:
        partial.unlink(missing_ok=True)
        raise _naming(error, target)
    source.unlink()


def _naming(error: BaseException, path: Path) -> BaseException:
    """A failed write (ENOSPC) names no file: name the one we were writing, so the person knows which disk."""
    if isinstance(error, OSError) and not error.filename:
        named = OSError(error.errno, error.strerror, str(path))
        named.__cause__ = error
        return named
    return error

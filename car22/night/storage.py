"""Writing files so that a crash or a full disk leaves either the whole new file or none (RELIABILITY.md)."""
from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_whole(path: Path, data: bytes, mode: int | None = None) -> Path:
    """Write under a temporary name, flush to disk, rename into place; on failure remove the temporary.
    `mode` (e.g. owner-only 0o600 for the archive) is set before a byte is written; else the umask's."""
    _into_place(path, path.with_name(path.name + ".partial"), lambda handle: handle.write(data), mode)
    return path


def move_whole(source: Path, target: Path, mode: int | None = None) -> None:
    """Move a file so that `target` is either absent or complete: a rename on one file system; across file
    systems a copy under a hidden temporary name, flushed, renamed into place, and only then the source
    removed (a disk that fills mid-copy leaves the source untouched and no partial target). With `mode`,
    the moved file gets it (a file another account dropped into the inbox keeps its owner's mode: the
    owner-only folder it moves into still keeps it private)."""
    try:
        os.rename(source, target)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
    else:
        if mode is not None:
            try:
                os.chmod(target, mode)
            except PermissionError:
                pass
        return
    with open(source, "rb") as reading:
        _into_place(target, target.with_name(f".{target.name}.partial"),
                    lambda handle: shutil.copyfileobj(reading, handle, 1 << 20), mode)
    source.unlink()


def clone_file(source: Path, target: Path) -> None:
    """A copy of `source` at `target` (created or truncated), made by the kernel (copy_range). On a file system
    whose files can share blocks (XFS with reflink, the default of RHEL 8 and later; Btrfs) the copy shares
    them and costs next to nothing whatever the size; elsewhere (ext4, tmpfs) the bytes are copied. A failed
    copy names `target` (a full disk: which one)."""
    try:
        with open(source, "rb") as reading, open(target, "wb") as writing:
            copy_range(reading.fileno(), writing.fileno(), 0, os.fstat(reading.fileno()).st_size)
    except OSError as error:
        raise _naming(error, target) from error


def copy_range(source: int, target: int, offset: int, size: int) -> None:
    """`size` bytes of the open file `source` from `offset`, appended to the open file `target`: with
    copy_file_range, which shares whole blocks where the file system can and otherwise copies in the kernel;
    read and written where the kernel cannot (files on two file systems, an old kernel).

    Blocks are shared only where the range starts on a block boundary in both files. When the range sits at
    the same place within a block in both (a Dataset-JSON whose rows are the previous file's, after a head of
    the same length), the bytes up to the next boundary go first, so that the rest starts on one in both."""
    block = os.fstat(target).st_blksize
    same_place = (offset - os.lseek(target, 0, os.SEEK_CUR)) % block == 0
    lead = min(-offset % block, size) if same_place else 0
    _copy_in_kernel(source, target, offset, lead)
    _copy_in_kernel(source, target, offset + lead, size - lead)


def _copy_in_kernel(source: int, target: int, offset: int, size: int) -> None:
    while size:
        try:
            done = os.copy_file_range(source, target, size, offset)
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            done = os.write(target, os.pread(source, min(size, 1 << 24), offset))
        if done == 0:
            raise EOFError(f"the file ended {size} bytes before the end of the range to copy")
        offset += done
        size -= done


def _into_place(target: Path, partial: Path, fill: Callable[[BinaryIO], object], mode: int | None = None) -> None:
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 if mode is None else mode)
        if mode is not None:
            os.fchmod(descriptor, mode)  # also when a stale temporary of another mode was there
        with open(descriptor, "wb") as handle:
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

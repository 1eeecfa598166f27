"""Where a night reads and writes (README "Paths and settings"), and what a failed night tells its starter."""
from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path

WORK_DB = "warehouse.duckdb"
PENDING = "pending"
# The archive keeps the EDC originals, dates of birth included, and the work folder holds them pending and
# the unpublished copy: owner-only (README "Who may read what"). Reports and the warehouse are for readers.
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def private_folder(folder: Path) -> Path:
    """Create `folder` (and missing parents) owner-only; tighten it if an earlier version left it open."""
    folder.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    if folder.stat().st_mode & 0o777 != PRIVATE_DIR:
        folder.chmod(PRIVATE_DIR)
    return folder


class InboxUnusable(OSError):
    """The inbox cannot be read: the night refuses to run (nothing is taken, nothing is published)."""


@dataclass(frozen=True)
class Paths:
    """Where a night reads and writes. Defaults live under ./data (README: "Paths and settings")."""

    inbox: Path
    warehouse: Path
    archive: Path
    reports: Path
    work: Path

    @classmethod
    def under(cls, root: Path) -> Paths:
        return cls(root / "inbox", root / "warehouse.duckdb", root / "archive", root / "reports", root / "work")

    @classmethod
    def resolve(cls, data_dir: str | Path | None = None, **given: str | Path | None) -> Paths:
        """Each path from its argument, else its CAR22_* variable, else under the data folder
        (argument, else CAR22_DATA_DIR, else ./data). Keys: inbox, warehouse, archive, reports, work."""
        root = Path(data_dir or os.environ.get("CAR22_DATA_DIR") or "data")
        defaults = cls.under(root)
        chosen = {}
        for name in ("inbox", "warehouse", "archive", "reports", "work"):
            value = given.get(name) or os.environ.get(f"CAR22_{name.upper()}")
            chosen[name] = Path(value) if value else getattr(defaults, name)
        return cls(**chosen)

    def check_inbox(self) -> None:
        """Refuse an inbox that is missing, not a folder or cannot be listed: a night over the wrong folder
        would load nothing and publish an empty warehouse as if all were well. The inbox is never created."""
        try:
            with os.scandir(self.inbox) as entries:
                next(entries, None)
        except OSError as error:
            why = {errno.ENOENT: "does not exist", errno.ENOTDIR: "is not a folder"}.get(
                error.errno, f"cannot be read ({error.strerror})")
            raise InboxUnusable(
                f"inbox {self.inbox} {why}: create it (or give it read access) and drop the exports there, or "
                f"point CAR22_INBOX / CAR22_DATA_DIR (or the flags) at the right folder") from None

    def create(self) -> None:
        """Check the inbox, create the other folders, or say which one cannot be used and why. The archive,
        the work folder and its pending folder are owner-only (PRIVATE_DIR)."""
        self.check_inbox()
        private = (self.archive, self.work, self.work / PENDING)
        for folder in (self.archive, self.reports, self.work, self.work / PENDING, self.warehouse.parent):
            try:
                if folder in private:
                    private_folder(folder)
                else:
                    folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise OSError(f"cannot use folder {folder}: {error.strerror} (is it a file, read-only, or the disk "
                              f"full?): fix it or point CAR22_* / the flags elsewhere, then run again") from None


def explain_failure(error: BaseException) -> str:
    """What a failed run means for the person who started it, and what to do next."""
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    if any(isinstance(e, OSError) and e.errno == errno.ENOSPC or "No space left on device" in str(e)
           for e in seen):
        where = next((e.filename for e in seen if isinstance(e, OSError) and e.filename), None)
        if where is None:  # DuckDB names the file in its message
            where = next((m.group(1) for e in seen if (m := re.search(r'"([^"]+)": No space left', str(e)))), None)
        return (f"disk full{f' at {where}' if where else ''}: free space on that disk (or point the CAR22_WORK, "
                f"CAR22_ARCHIVE, CAR22_REPORTS or CAR22_WAREHOUSE folder elsewhere), then run again")
    return "fix the cause, then run again"


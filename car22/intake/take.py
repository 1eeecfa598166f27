"""Taking tonight's files from the inbox (the first stage of the night, exports.md "Arrival rules").

Files move whole from the inbox to the work folder's pending folder and stay there until the warehouse
that records them is published: a crash at any point loses no file (RELIABILITY.md).
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from car22.intake.reading import export_time
from car22.intake.sources import DM_DECISIONS
from car22.night import faults
from car22.night.paths import PENDING, PRIVATE_FILE, Paths
from car22.night.storage import move_whole


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()



def inbox_files(inbox: Path) -> list[Path]:
    """Files waiting in the inbox: EDC enrollment first (so tonight's labs see tonight's enrollments),
    then by export time and name, the data managers' decisions last (so that they may name the issues of
    tonight's files, exports.md §E). Hidden and partially copied files are left for later."""
    def order(path: Path) -> tuple:
        exported = export_time(path.name)
        return (not path.name.startswith("edc_enrollment"), path.name.startswith(DM_DECISIONS.prefix + "_"),
                exported or datetime.max, path.name)
    candidates: Iterable[Path] = (p for p in inbox.iterdir() if p.is_file())
    return sorted((p for p in candidates if not p.name.startswith(".") and not p.name.endswith(".partial")),
                  key=order)



def take_inbox(paths: Paths) -> list[Path]:
    """Move tonight's files from the inbox to the pending folder; return every pending file, in load order.

    Files left pending by an interrupted run come first in the same order rules; nothing is ever deleted
    before the warehouse that records it is published.
    """
    pending = paths.work / PENDING
    for path in inbox_files(paths.inbox):
        target = pending / path.name
        if target.exists():  # a file of the same name is still pending: keep both, the later one renamed
            target = pending / f"{path.stem}.{sha256_of(path.read_bytes())[:8]}{path.suffix}"
        move_whole(path, target, mode=PRIVATE_FILE)
        faults.checkpoint("taken from the inbox")
    return inbox_files(pending)


def clear_pending(files: list[Path]) -> None:
    """After publishing, the pending files are recorded and archived: remove them."""
    for path in files:
        path.unlink(missing_ok=True)
        faults.checkpoint("pending file cleared")


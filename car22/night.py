"""The steps of a night, as plain functions: the Prefect flow (flows/nightly.py) only orders them.

The night is a transaction (design.md): files are taken from the inbox into a pending folder, the run works
on a private copy of the published warehouse, and publishes it by an atomic rename only when every step
succeeded. A crash leaves yesterday's warehouse published and the pending files for the next run.
"""
from __future__ import annotations

import errno
import importlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import duckdb

from car22 import faults
from car22.config import Protocol
from car22.ingest import ensure_schema, inbox_files, sha256_of
from car22.storage import move_whole
from car22.sql import set_protocol_variables

# Derivations in dependency order (survival and eligibility read mart.mrd_assessments; toxicity reads the
# graded tables).
DERIVATIONS: tuple[str, ...] = ("car22.mrd", "car22.survival", "car22.eligibility", "car22.dosing",
                                "car22.kinetics", "car22.crs", "car22.icans", "car22.ctcae", "car22.toxicity")

WORK_DB = "warehouse.duckdb"
PENDING = "pending"


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

    def create(self) -> None:
        """Create the folders, or say which one cannot be used and why."""
        for folder in (self.inbox, self.archive, self.reports, self.work, self.work / PENDING,
                       self.warehouse.parent):
            try:
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


def code_version() -> str:
    """The package version and, when run from a git checkout, its commit."""
    try:
        package = version("car22")
    except PackageNotFoundError:
        package = "unknown"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return package
    return f"{package}+{commit}"


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
        move_whole(path, target)
        faults.checkpoint("taken from the inbox")
    return inbox_files(pending)


def open_work_copy(paths: Paths) -> duckdb.DuckDBPyConnection:
    """A private writable copy of the published warehouse (or a new one on the first night)."""
    work_db = paths.work / WORK_DB
    for stale in (work_db, work_db.with_name(WORK_DB + ".wal")):
        stale.unlink(missing_ok=True)
    if paths.warehouse.exists():
        shutil.copyfile(paths.warehouse, work_db)
    # DuckDB may take most of the machine's memory by default: the night's writer stays within a bound and
    # spills to the work folder beyond it (README "Paths and settings").
    con = duckdb.connect(str(work_db), config={"memory_limit": os.environ.get("CAR22_MEMORY_LIMIT") or "2GB"})
    try:
        ensure_schema(con)
    except BaseException:  # e.g. a full disk: close, so that a later run does not reuse this cached instance
        con.close()
        raise
    return con


def already_recorded(con: duckdb.DuckDBPyConnection, pending: list[Path]) -> tuple[list[Path], list[Path]]:
    """Split pending files into new ones and leftovers of a run that published but crashed before
    clearing its pending folder (same name and bytes already in ops.files)."""
    recorded = set(con.execute("SELECT file_name, sha256 FROM ops.files").fetchall())
    fresh, leftovers = [], []
    for path in pending:
        (leftovers if (path.name, sha256_of(path.read_bytes())) in recorded else fresh).append(path)
    return fresh, leftovers


def start_run(con: duckdb.DuckDBPyConnection, protocol: Protocol, flow_run_id: str | None,
              started_at: datetime) -> int:
    run_id = con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM ops.runs").fetchall()[0][0]
    con.execute("INSERT INTO ops.runs (run_id, flow_run_id, started_at, status, config_hash, code_version) "
                "VALUES (?, ?, ?, 'running', ?, ?)",
                [run_id, flow_run_id, started_at, protocol.config_hash, code_version()])
    return run_id


def enrolled_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Participants with an enrollment record loaded so far, tonight's included (for the warning check;
    the authoritative hold is recomputed from core after loading: car22.resolve.hold_unenrolled)."""
    return {row[0] for row in con.execute("SELECT DISTINCT participant_id FROM staging.edc_enrollment").fetchall()}


def rebuild_scope(con: duckdb.DuckDBPyConnection, run_id: int) -> str:
    """core and mart are a pure function of staging, the protocol and the code. 'everything' when the
    settings or code changed since the last completed run (or none completed); else 'touched' (the
    participants of tonight's rows, car22.incremental) when this run loaded rows; else 'nothing'."""
    loaded = con.execute("SELECT count(*) FROM ops.files WHERE run_id = ? AND status IN ('loaded', "
                         "'partially_loaded')", [run_id]).fetchall()[0][0]
    this = con.execute("SELECT config_hash, code_version FROM ops.runs WHERE run_id = ?", [run_id]).fetchall()[0]
    last = con.execute("SELECT config_hash, code_version FROM ops.runs WHERE status = 'completed' "
                       "ORDER BY run_id DESC LIMIT 1").fetchall()
    if not last or last[0] != this:
        return "everything"
    return "touched" if loaded else "nothing"


def derive(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    """Rebuild every mart table from core (derivations.md), each rule in its own module."""
    set_protocol_variables(con, protocol)
    for name in DERIVATIONS:
        importlib.import_module(name).build(con, protocol)
        faults.checkpoint(f"derived {name}")


def finish_run(con: duckdb.DuckDBPyConnection, run_id: int, finished_at: datetime, files_seen: int) -> None:
    """Record the run's totals from ops.files (rows counts as refreshed after enrollment holds)."""
    con.execute("""
        UPDATE ops.runs SET
            finished_at = ?, status = 'completed', files_seen = ?,
            files_loaded = (SELECT count(*) FROM ops.files f WHERE f.run_id = ops.runs.run_id
                            AND f.status IN ('loaded', 'partially_loaded')),
            files_duplicate = (SELECT count(*) FROM ops.files f WHERE f.run_id = ops.runs.run_id
                               AND f.status = 'duplicate'),
            files_quarantined = (SELECT count(*) FROM ops.files f WHERE f.run_id = ops.runs.run_id
                                 AND f.status = 'quarantined'),
            rows_loaded = (SELECT coalesce(sum(rows_loaded), 0) FROM ops.files f WHERE f.run_id = ops.runs.run_id),
            rows_rejected = (SELECT coalesce(sum(rows_rejected), 0) FROM ops.files f
                             WHERE f.run_id = ops.runs.run_id)
        WHERE run_id = ?
    """, [finished_at, files_seen, run_id])


def publish(con: duckdb.DuckDBPyConnection, paths: Paths) -> None:
    """Checkpoint and close the work copy, then replace the published file atomically (warehouse.md,
    "Readers and the writer"): readers holding the old file keep reading it undisturbed."""
    con.execute("CHECKPOINT")
    con.close()
    staged = paths.warehouse.with_name(paths.warehouse.name + ".publishing")
    try:
        move_whole(paths.work / WORK_DB, staged)
        faults.checkpoint("staged for publishing")
        with open(staged, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(staged, 0o444)
        os.replace(staged, paths.warehouse)
    except OSError:  # e.g. a full disk: yesterday's warehouse stays published, nothing half-written is left
        staged.unlink(missing_ok=True)
        raise
    faults.checkpoint("published")
    directory = os.open(paths.warehouse.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def clear_pending(files: list[Path]) -> None:
    """After publishing, the pending files are recorded and archived: remove them."""
    for path in files:
        path.unlink(missing_ok=True)
        faults.checkpoint("pending file cleared")

"""The night as a transaction (design.md): the run works on a private copy of the published warehouse,
records itself in ops.runs, and publishes the copy by an atomic rename only when every step succeeded. A
crash leaves yesterday's warehouse published and the taken files pending for the next run
(car22.intake.take).
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import duckdb

from car22.config import Protocol
from car22.intake.take import sha256_of
from car22.loading.load import LOADED, ensure_schema
from car22.night import faults
from car22.night.paths import PRIVATE_FILE, WORK_DB, Paths
from car22.night.storage import clone_file, move_whole

MEMORY_LIMIT = "768MB"  # DuckDB's memory during a night unless CAR22_MEMORY_LIMIT says otherwise
# DuckDB checkpoints once its write-ahead log passes 16 MB; while the files are taken in, once it passes this.
INGEST_CHECKPOINT_THRESHOLD = "256MB"


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


def open_work_copy(paths: Paths) -> duckdb.DuckDBPyConnection:
    """A private writable copy of the published warehouse (or a new one on the first night)."""
    work_db = paths.work / WORK_DB
    for stale in (work_db, work_db.with_name(WORK_DB + ".wal")):
        stale.unlink(missing_ok=True)
    if paths.warehouse.exists():
        clone_file(paths.warehouse, work_db)  # blocks shared, not copied, where the file system can
    # DuckDB may take most of the machine's memory by default: the night's writer stays within a bound and
    # spills to the work folder beyond it (README "Paths and settings"). At 20,000 participants the derive
    # stage peaked at 1,805 MB with 768 MB, 2,029 MB with 1 GB, 2,590 MB (the night) with 2 GB (bench/RESULTS.md).
    con = duckdb.connect(str(work_db), config={"memory_limit": os.environ.get("CAR22_MEMORY_LIMIT") or MEMORY_LIMIT})
    try:
        os.chmod(work_db, PRIVATE_FILE)  # the unpublished copy is the writer's alone until it is published
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


@contextmanager
def checkpoints_apart(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Each file is committed on its own (car22.loading.load.ingest_file), and DuckDB checkpoints at a commit
    once its write-ahead log passes 16 MB: every few files. Those commits took 15 s of a 2,000-participant
    night; with a checkpoint per 256 MB, 5 s, and 2 s for the one after the last file (bench/RESULTS.md). That
    last checkpoint stays: with none until the end of the night, its later steps ran slower."""
    con.execute(f"SET checkpoint_threshold = '{INGEST_CHECKPOINT_THRESHOLD}'")
    yield
    con.execute("RESET checkpoint_threshold")
    con.execute("CHECKPOINT")


def start_run(con: duckdb.DuckDBPyConnection, protocol: Protocol, flow_run_id: str | None,
              started_at: datetime) -> int:
    run_id = con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM ops.runs").fetchall()[0][0]
    con.execute("INSERT INTO ops.runs (run_id, flow_run_id, started_at, status, config_hash, code_version) "
                "VALUES (?, ?, ?, 'running', ?, ?)",
                [run_id, flow_run_id, started_at, protocol.config_hash, code_version()])
    return run_id


def rebuild_scope(con: duckdb.DuckDBPyConnection, run_id: int) -> str:
    """core and mart are a pure function of staging, the protocol and the code. 'everything' when the
    settings or code changed since the last completed run (or none completed); else 'touched' (the
    participants of tonight's rows, car22.loading.incremental) when this run loaded rows; else 'nothing'."""
    loaded = con.execute(f"SELECT count(*) FROM ops.files WHERE run_id = ? AND status IN {LOADED}",
                         [run_id]).fetchall()[0][0]
    this = con.execute("SELECT config_hash, code_version FROM ops.runs WHERE run_id = ?", [run_id]).fetchall()[0]
    last = con.execute("SELECT config_hash, code_version FROM ops.runs WHERE status = 'completed' "
                       "ORDER BY run_id DESC LIMIT 1").fetchall()
    if not last or last[0] != this:
        return "everything"
    return "touched" if loaded else "nothing"


def record_rebuilt(con: duckdb.DuckDBPyConnection, run_id: int, scope: str) -> None:
    """Write down whose core and mart rows this run rebuilt (ops.rebuilt_participants): the scope, and for a
    'touched' run its participants (temp.touched, car22.loading.versions). The submission package rewrites
    the records of the participants rebuilt since the run it was written from, and copies the others."""
    con.execute("INSERT INTO ops.rebuilt_participants VALUES (?, ?, NULL)", [run_id, scope])
    if scope == "touched":
        con.execute("INSERT INTO ops.rebuilt_participants SELECT ?, 'touched', participant_id FROM temp.touched "
                    "ORDER BY participant_id", [run_id])


def finish_run(con: duckdb.DuckDBPyConnection, run_id: int, finished_at: datetime, files_seen: int) -> None:
    """Record the run's totals from ops.files (rows counts as refreshed after enrollment holds)."""
    con.execute(f"""
        UPDATE ops.runs SET
            finished_at = ?, status = 'completed', files_seen = ?,
            files_loaded = (SELECT count(*) FROM ops.files f WHERE f.run_id = ops.runs.run_id
                            AND f.status IN {LOADED}),
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



"""Prefect tasks of the night: each a few lines around a plain function of car22 (tested on its own)."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from car22 import night, progress, resolve
from car22.config import Protocol
from car22.ingest import FileOutcome, ingest_file
from car22.validation import Validator


@task(name="take-inbox", cache_policy=NONE)
def take_inbox(paths: night.Paths) -> list[Path]:
    pending = night.take_inbox(paths)
    get_run_logger().info("%d file(s) to process from %s", len(pending), paths.inbox)
    progress.report("total", len(pending))
    return pending


@task(name="open-work-copy", cache_policy=NONE)
def open_work_copy(paths: night.Paths) -> duckdb.DuckDBPyConnection:
    return night.open_work_copy(paths)


@task(name="ingest-file", task_run_name="ingest {path.name}", cache_policy=NONE)
def ingest(con: duckdb.DuckDBPyConnection, path: Path, run_id: int, paths: night.Paths, validator: Validator,
           received_at: datetime) -> FileOutcome:
    outcome = ingest_file(con, path, run_id=run_id, archive_dir=paths.archive, validator=validator,
                          received_at=received_at, enrolled_ids=night.enrolled_ids(con))
    logger = get_run_logger()
    if outcome.status == "quarantined":
        logger.warning("%s: quarantined: %s", outcome.file_name, outcome.reason)
    else:
        logger.info("%s: %s (%s), %d rows read, %d loaded, %d rejected", outcome.file_name, outcome.status,
                    outcome.source or "-", outcome.rows_read, outcome.rows_loaded, outcome.rows_rejected)
    progress.report("file")
    return outcome


@task(name="resolve-versions-and-core", cache_policy=NONE)
def resolve_core(con: duckdb.DuckDBPyConnection, run_id: int) -> None:
    resolve.resolve(con, run_id)


@task(name="derive-mart", cache_policy=NONE)
def derive(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    night.derive(con, protocol)


@task(name="publish", cache_policy=NONE)
def publish(con: duckdb.DuckDBPyConnection, paths: night.Paths, done: list[Path]) -> None:
    night.publish(con, paths)
    night.clear_pending(done)
    get_run_logger().info("published %s", paths.warehouse)

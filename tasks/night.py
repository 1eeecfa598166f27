"""Prefect tasks of the night: each a few lines around a plain function of car22 (tested on its own)."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
from prefect import get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NONE

from car22.config import Protocol
from car22.intake import take
from car22.loading import data_issues, incremental, versions
from car22.loading.load import EnrolledIds, FileOutcome, ingest_file
from car22.night import faults, progress, timing, transaction
from car22.night.paths import Paths
from car22.reports import artifacts, clinical_events, run_summary, trial_report
from car22.rules.derive import DERIVATIONS, derive_all
from car22.submission import package
from car22.submission.manifest import package_folder
from car22.validation.runner import Validator


@task(name="take-inbox", cache_policy=NONE)
def take_inbox(paths: Paths) -> list[Path]:
    pending = take.take_inbox(paths)
    get_run_logger().info("%d file(s) to process from %s", len(pending), paths.inbox)
    progress.report("total", len(pending))
    faults.checkpoint("task take-inbox")
    return pending


@task(name="open-work-copy", cache_policy=NONE)
def open_work_copy(paths: Paths) -> duckdb.DuckDBPyConnection:
    return transaction.open_work_copy(paths)


@task(name="ingest-file", task_run_name="ingest {path.name}", cache_policy=NONE)
def ingest(con: duckdb.DuckDBPyConnection, path: Path, run_id: int, paths: Paths, validator: Validator,
           enrolled: EnrolledIds, received_at: datetime) -> FileOutcome:
    outcome = ingest_file(con, path, run_id=run_id, archive_dir=paths.archive, validator=validator,
                          received_at=received_at, enrolled_ids=enrolled.ids)
    enrolled.after(outcome)
    if outcome.status == "quarantined":
        get_run_logger().warning("%s: quarantined: %s", outcome.file_name, outcome.reason)
    progress.report("file")
    faults.checkpoint("task ingest-file")
    return outcome


@task(name="resolve-versions-and-core", cache_policy=NONE)
def resolve_core(con: duckdb.DuckDBPyConnection, run_id: int) -> None:
    with timing.stage("core"):
        versions.resolve(con, run_id)


@task(name="data-issues", cache_policy=NONE)
def track_data_issues(con: duckdb.DuckDBPyConnection, run_id: int, run_time: datetime) -> None:
    with timing.stage("issues"):
        data_issues.update(con, run_id, run_time)
    counts = con.execute("SELECT status, count(*) FROM ops.data_issues GROUP BY ALL ORDER BY 1").fetchall()
    get_run_logger().info("data issues: %s", ", ".join(f"{n} {status.lower()}" for status, n in counts) or "none")


@task(name="log-files", cache_policy=NONE)
def log_files(con: duckdb.DuckDBPyConnection, run_id: int) -> None:
    """One line per file of the run, from ops.files once the holds are settled (the counts every page shows)."""
    logger = get_run_logger()
    for line in run_summary.file_lines(con, run_id):
        logger.info("%s", line)


@task(name="derive-mart", cache_policy=NONE)
def derive(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    with timing.stage("derive"):
        derive_all(con, protocol)


@task(name="rebuild-touched-participants", cache_policy=NONE)
def rebuild_touched(con: duckdb.DuckDBPyConnection, protocol: Protocol, run_id: int) -> None:
    with timing.stage("derive"):
        count = incremental.rebuild_touched(con, protocol, run_id, DERIVATIONS)
    get_run_logger().info("core and mart rebuilt for the %d participant(s) tonight's files touched", count)


@task(name="record-clinical-events", cache_policy=NONE)
def record_clinical_events(con: duckdb.DuckDBPyConnection, run_id: int) -> None:
    clinical_events.record_clinical_events(con, run_id)


@task(name="monitor-artifacts", cache_policy=NONE)
def publish_artifacts(paths: Paths, run_id: int, data_docs_index: Path) -> None:
    """The run's summary, file table and Data Docs link, under stable keys: the UI shows them night by night.
    Rendered from the published warehouse, like everything a monitor reads."""
    with timing.stage("report"), duckdb.connect(str(paths.warehouse), read_only=True) as con:
        create_markdown_artifact(key="car22-run-summary", markdown=artifacts.markdown_summary(
            con, run_id, (paths.reports / trial_report.REPORT_NAME).resolve().as_uri()),
                                 description=f"car22 run {run_id}")
        create_table_artifact(key="car22-files", table=artifacts.files_table(con, run_id),
                              description=f"Files of car22 run {run_id}")
        create_table_artifact(key="car22-data-issues", table=artifacts.open_issues_table(con),
                              description=f"Open data issues after car22 run {run_id}, oldest first")
    create_link_artifact(key="car22-data-docs", link=data_docs_index.resolve().as_uri(),
                         link_text="Data Docs: validation of every file", description=f"car22 run {run_id}")


@task(name="trial-report", cache_policy=NONE)
def write_report(paths: Paths, data_changed: bool) -> Path:
    """The monitors' page, from the published warehouse, with a link artifact under a stable key."""
    with timing.stage("report"):
        page = trial_report.write_report(paths.warehouse, paths.reports, data_changed=data_changed)
    create_link_artifact(key="car22-trial-report", link=page.resolve().as_uri(),
                         link_text="Trial summary: status, swimmer plot, RFS, expansion, toxicity, data quality")
    return page


@task(name="submission-package", cache_policy=NONE)
def write_submission(paths: Paths, protocol: Protocol) -> Path:
    """The CDISC package from the published warehouse (cdisc.md), with a link artifact under a stable key."""
    with timing.stage("submission"):
        written = package.write_package(paths.warehouse, package_folder(paths.warehouse), protocol)
    create_link_artifact(key="car22-submission", link=(written.folder / "manifest.json").resolve().as_uri(),
                         link_text=f"CDISC submission package: {len(written.records)} datasets (SDTM, ADaM, "
                                   f"define.xml)", description=f"written {written.written_at}")
    get_run_logger().info("submission package written to %s: %s; %s", written.folder, written.reuse(),
                          "every participant's records built" if written.rebuilt is None else
                          f"the records of the {written.rebuilt} participant(s) rebuilt since it built")
    return written.folder


@task(name="publish", cache_policy=NONE)
def publish(con: duckdb.DuckDBPyConnection, paths: Paths, done: list[Path]) -> None:
    with timing.stage("publish"):
        transaction.publish(con, paths)
        take.clear_pending(done)
    get_run_logger().info("published %s", paths.warehouse)

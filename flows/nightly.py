"""The nightly flow: the runbook of the night, step by step (design.md)."""
from __future__ import annotations

import logging
from datetime import datetime

from prefect import flow, get_run_logger
from prefect.exceptions import FailedRun
from prefect.runtime import flow_run
from prefect.states import Failed, State

from car22.config import load_protocol
from car22.loading import data_issues
from car22.loading.load import EnrolledIds
from car22.night import faults, timing, transaction
from car22.night.paths import InboxUnusable, Paths
from car22.reports.run_summary import RunSummary, file_counts, run_summary
from car22.submission.manifest import package_folder, read_manifest
from car22.validation.runner import Validator
from tasks import night as steps


class _RefusalsWithoutTraceback(logging.Filter):
    """Prefect's engine logs a flow that returned a Failed state once more, as an "unexpected exception" with a
    traceback of its own code (FailedRun, prefect.flow_engine.run_flow). A refusal is expected and is already
    logged with its reason and in the run's state: drop that record. Exceptions raised keep their traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], FailedRun))


logging.getLogger("prefect.flow_runs").addFilter(_RefusalsWithoutTraceback())


@flow(name="car22-nightly")
def nightly(inbox: str | None = None, warehouse: str | None = None, archive: str | None = None,
            reports: str | None = None, work: str | None = None, data_dir: str | None = None,
            protocol_file: str | None = None) -> RunSummary | State:
    """Take every new export from the inbox into the warehouse, derive the trial tables, publish.

    Paths not given come from CAR22_* variables, then from the data folder (car22.night.paths.Paths.resolve).
    A missing or unreadable inbox fails the run with the reason (a deployment must not publish an empty night).
    """
    timing.mark("flow_start")
    paths = Paths.resolve(data_dir, inbox=inbox, warehouse=warehouse, archive=archive, reports=reports,
                                work=work)
    try:
        paths.create()
    except InboxUnusable as refusal:
        # A refusal, not a crash: the run is Failed with the reason, without a traceback; nothing is published.
        get_run_logger().error("%s", refusal)
        return Failed(message=str(refusal))
    protocol = load_protocol(protocol_file)
    started_at = datetime.now()

    # 1. Take tonight's files out of the inbox (they stay pending until the warehouse is published).
    pending = steps.take_inbox(paths)
    # 2. Work on a private copy of last night's warehouse.
    con = steps.open_work_copy(paths)
    try:
        new_files, _leftovers = transaction.already_recorded(con, pending)
        run_id = transaction.start_run(con, protocol, str(flow_run.get_id() or ""), started_at)
        # 3. Each file: archive, parse, validate, append to raw and staging (one transaction per file).
        with timing.stage("validate"):
            validator = Validator(paths.reports, protocol)
        enrolled = EnrolledIds(con)
        with transaction.checkpoints_apart(con):
            for path in new_files:
                steps.ingest(con, path, run_id, paths, validator, enrolled, datetime.now())
        scope = transaction.rebuild_scope(con, run_id)
        if scope == "everything":
            # 4. Current versions, core tables, enrollment holds, file counts.
            steps.resolve_core(con, run_id)
            # 5. The clinical derivations (mart).
            steps.derive(con, protocol)
        elif scope == "touched":
            # 4-5. The same, for the participants tonight's files touched only.
            steps.rebuild_touched(con, protocol, run_id)
        transaction.record_rebuilt(con, run_id, scope)
        if scope != "nothing":
            # What changed clinically tonight.
            steps.record_clinical_events(con, run_id)
            faults.checkpoint("clinical events")
        # The data manager's work list, from everything loaded; one log line per file from ops.files.
        steps.track_data_issues(con, run_id, started_at)
        faults.checkpoint("data issues")
        steps.log_files(con, run_id)
        # 6. Close the run, write the monitors' reports, publish atomically, clear the pending files.
        transaction.finish_run(con, run_id, datetime.now(), len(pending))
        faults.checkpoint("run finished")
        summary = run_summary(con, run_id)
        data_docs = validator.docs.write_index(file_counts(con), data_issues.open_issues(con))
        faults.checkpoint("data docs index")
        steps.publish(con, paths, pending)
    except BaseException:
        # A failed night leaves no open handle on its work copy: the next run in this process (a served
        # deployment, a test) must open a fresh copy, not DuckDB's cached instance of this one.
        con.close()
        raise

    # 7. The CDISC submission package (cdisc.md), from the published warehouse, after a night that changed it
    #    (or when none exists yet), before the trial report so the page says when it was written. A failure
    #    is reported; the previous package stays whole and `car22 submission` writes it again.
    if scope != "nothing" or read_manifest(package_folder(paths.warehouse)) is None:
        try:
            steps.write_submission(paths, protocol)
        except Exception as error:  # noqa: BLE001 - the run's data is published; say what failed and how to redo it
            get_run_logger().error("submission package not written (%s: %s): run `car22 submission` to write it",
                                   type(error).__name__, error)

    # 8. What monitors read, from the published warehouse. The night's data is published by now: a failure
    #    here is reported, and the page can be rebuilt with `car22 report`.
    try:
        steps.publish_artifacts(paths, run_id, data_docs)
        steps.write_report(paths, data_changed=scope != "nothing")
    except Exception as error:  # noqa: BLE001 - the run's data is published; say what failed and how to redo it
        get_run_logger().error("monitor reports not written (%s: %s): run `car22 report` to rebuild them",
                               type(error).__name__, error)
    get_run_logger().info("run %d completed: %d rows loaded, %d rejected", run_id, summary.rows_loaded,
                          summary.rows_rejected)
    return summary

"""The Prefect server path as an operator runs it (README "Running on a Prefect server", issue 18).

scripts/prefect-server.sh starts a private PostgreSQL, the server on loopback, the work pool, `deploy --all`
and a worker against a fresh PREFECT_HOME; the deployment `car22-nightly/reingest` then runs over a missing
inbox (refused: FAILED with the reason, nothing published), an empty inbox and a small demo inbox. The server,
worker and flow logs must hold no traceback, no telemetry error and no Python warning. Everything started is
stopped at the end, even on failure; every wait is bounded.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "prefect-server.sh"
ARTIFACTS = {"car22-run-summary", "car22-files", "car22-data-docs", "car22-trial-report", "car22-data-issues",
             "car22-submission"}
REFUSAL_ADVICE = ("create it (or give it read access) and drop the exports there, or point CAR22_INBOX / "
                  "CAR22_DATA_DIR (or the flags) at the right folder")
# A traceback, Prefect's telemetry error, SQLite's lock error, or a Python warning of any category.
PROBLEMS = re.compile(r"Traceback \(most recent call last\)|Failed to send telemetry|database is locked"
                      r"|py\.warnings|\b[A-Z][A-Za-z]*Warning\b")
START_TIMEOUT, RUN_TIMEOUT, STOP_TIMEOUT = 300, 300, 120


def postgres_installed() -> bool:
    return shutil.which("initdb") is not None or any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def demo_inbox(demo: Path, inbox: Path) -> list[str]:
    """A small demo inbox: the last EDC snapshot of 3 participants and the first export of every lab (with
    the demo's duplicate qPCR file), so that the night is short. The whole demo is written to `demo`."""
    from car22.demo import generate

    every = generate(demo, participants=3)
    chosen = [p for p in every if p.name.startswith("edc_") and p.name.endswith("_20280630T0100.csv")]
    for prefix, first in (("labs_", 1), ("flow_mrd_", 1), ("flow_car_", 1), ("qpcr_", 2)):
        chosen += sorted(p for p in every if p.name.startswith(prefix))[:first]
    inbox.mkdir(parents=True)
    for path in chosen:
        shutil.copy2(path, inbox / path.name)
    return sorted(p.name for p in chosen)


def data_rows(path: Path) -> list[list[str]]:
    """The data rows of a plain export: after the header, without the labs' end-of-report trailer."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))[1:]
    return [row for row in rows if row and not row[0].startswith("***")]


# Run in a subprocess with the server's environment (the test session has its own Prefect settings): start a
# run of the deployment, wait for its end, then collect its state, its log (until the engine's last line) and
# its artifacts.
CLIENT = """
import json, logging, sys, time
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId
from prefect.deployments import run_deployment

parameters, timeout = json.loads(sys.argv[1]), float(sys.argv[2])
run = run_deployment("car22-nightly/reingest", parameters=parameters, timeout=timeout, poll_interval=2)
with get_client(sync_client=True) as client:
    deadline = time.monotonic() + 60
    while True:
        logs, offset = [], 0
        while page := client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])), limit=200,
                                       offset=offset):
            logs += page
            offset += len(page)
        if not run.state.is_final() or any("Finished in state" in log.message for log in logs) \\
                or time.monotonic() > deadline:
            break
        time.sleep(1)
    artifacts = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
logs.sort(key=lambda log: log.timestamp)
print("RESULT " + json.dumps({
    "state": run.state.type.value, "message": run.state.message,
    "logs": [f"{logging.getLevelName(log.level)} {log.message}" for log in logs],
    "artifacts": sorted(artifact.key for artifact in artifacts if artifact.key)}))
"""


@dataclass
class Server:
    """scripts/prefect-server.sh running in its own session, with the folders of one test module."""

    base: Path
    port: int = field(default_factory=free_port)
    pg_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    expected_files: list[str] = field(default_factory=list)      # the demo inbox
    flow_logs: list[str] = field(default_factory=list)           # of every run, from the API

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def pgdata(self) -> Path:
        return self.base / "pg"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CAR22_"))}
        env.update(PREFECT_HOME=str(self.base / "prefect"), PREFECT_API_URL=f"http://127.0.0.1:{self.port}/api",
                   PREFECT_SERVER_ANALYTICS_ENABLED="false", GX_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
                   # no 02:00 run of the "nightly" deployment may start while the test runs
                   PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false")
        return env

    def start(self) -> None:
        output = (self.base / "script.out").open("w")
        self.process = subprocess.Popen(
            ["bash", str(SCRIPT), "--data-dir", str(self.data), "--port", str(self.port), "--pgdata",
             str(self.pgdata), "--pg-port", str(self.pg_port), "--logs", str(self.logs)],
            cwd=ROOT, env=self.env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while "prefect-server: ready" not in self.said():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server path did not start:\n{self.said()}")
            time.sleep(1)

    def said(self) -> str:
        return (self.base / "script.out").read_text()

    def run_reingest(self, **parameters: str) -> dict:
        done = subprocess.run([sys.executable, "-c", CLIENT, json.dumps(parameters), str(RUN_TIMEOUT)],
                              cwd=self.base, env=self.env, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT + 120)
        result = next((line[7:] for line in done.stdout.splitlines() if line.startswith("RESULT ")), None)
        assert result, f"no result from the client:\n{done.stdout}\n{done.stderr}"
        outcome = json.loads(result)
        self.flow_logs += outcome["logs"]
        return outcome

    def stop(self) -> bool:
        """SIGTERM to the script, which stops worker, server and PostgreSQL; then anything left, by force.
        True when the script stopped everything by itself in time."""
        if self.process is None:
            return False
        process, self.process = self.process, None
        clean = False
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                clean = process.wait(timeout=STOP_TIMEOUT) == 128 + signal.SIGTERM
            except subprocess.TimeoutExpired:
                pass
        # The script's children share its session's process group, except the server, which has its own.
        server_pid = self.base / "prefect" / "server.pid"
        clean = clean and not server_pid.exists()
        groups = [process.pid] + ([int(server_pid.read_text())] if server_pid.exists() else [])
        for group in groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait()
        # pg_ctl starts PostgreSQL in a session of its own: its pid file says whether it is still up.
        pid_file = self.pgdata / "postmaster.pid"
        clean = clean and not pid_file.exists()
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            for sig in (signal.SIGINT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                time.sleep(5)
        return clean


@pytest.fixture(scope="module")
def server():
    if not postgres_installed():
        missing = "PostgreSQL's server programs are not installed (apt-get install postgresql; .ci/run does)"
        if os.environ.get("CAR22_SERVER_TEST") == "required":
            pytest.fail(missing)
        pytest.skip(missing)
    # Under /tmp and world-traversable: as root, the cluster runs as user postgres, who must reach its folder.
    base = Path(tempfile.mkdtemp(prefix="car22-server-"))
    base.chmod(0o755)
    running = Server(base)
    try:
        running.expected_files = demo_inbox(base / "demo", running.data / "inbox")
        running.start()
        yield running
    finally:
        running.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_a_missing_inbox_fails_the_run_with_the_reason_and_publishes_nothing(server):
    elsewhere = server.base / "elsewhere"
    outcome = server.run_reingest(data_dir=str(elsewhere))
    reason = f"inbox {elsewhere / 'inbox'} does not exist: {REFUSAL_ADVICE}"
    assert outcome["state"] == "FAILED"
    assert outcome["message"] == reason
    assert f"ERROR {reason}" in outcome["logs"]
    assert outcome["artifacts"] == []
    assert not elsewhere.exists()


def test_an_empty_inbox_completes_with_an_empty_warehouse_and_its_reports(server):
    (server.base / "empty" / "inbox").mkdir(parents=True)
    outcome = server.run_reingest(data_dir=str(server.base / "empty"))
    assert outcome["state"] == "COMPLETED"
    assert set(outcome["artifacts"]) == ARTIFACTS
    with duckdb.connect(str(server.base / "empty" / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM ops.files").fetchall() == [(0,)]
        assert con.sql("SELECT status FROM ops.runs").fetchall() == [("completed",)]


def test_the_deployed_night_loads_the_demo_inbox_and_publishes_the_four_artifacts(server):
    outcome = server.run_reingest()                       # the worker's CAR22_DATA_DIR
    assert outcome["state"] == "COMPLETED", outcome["logs"][-20:]
    assert set(outcome["artifacts"]) == ARTIFACTS
    demo = server.base / "demo"
    enrolled = sorted(row[0] for row in data_rows(demo / "edc_enrollment_20280630T0100.csv"))
    assert enrolled == ["CD22-001", "CD22-002", "CD22-003"]
    with duckdb.connect(str(server.data / "warehouse.duckdb"), read_only=True) as con:
        files = {name: (status, read, loaded, rejected) for name, status, read, loaded, rejected in con.sql(
            "SELECT file_name, status, rows_read, rows_loaded, rows_rejected FROM ops.files").fetchall()}
        assert sorted(files) == server.expected_files
        assert con.sql("SELECT participant_id FROM core.participants ORDER BY 1").fetchall() == \
            [(pid,) for pid in enrolled]
        for table in ("lab_results", "flow_samples", "qpcr_results", "treatments", "adverse_events"):
            assert con.sql(f"SELECT count(*) FROM core.{table}").fetchall()[0][0] > 0, table
    duplicate = "qpcr_20260304T1100.csv"            # the demo's same bytes under another name
    assert files.pop(duplicate) == ("duplicate", 0, 0, 0)
    for name, (status, read, loaded, rejected) in files.items():
        assert status in ("loaded", "partially_loaded"), name
        assert read == loaded + rejected, name
        if not name.startswith("flow_"):                  # flow exports add control and summary rows
            assert read == len(data_rows(demo / name)), name
    assert not list((server.data / "inbox").iterdir())
    assert (server.data / "reports" / "trial_report.html").is_file()


def test_server_worker_and_flow_logs_are_clean_through_shutdown(server):
    assert server.stop(), "the script did not stop the worker, the server and PostgreSQL by itself"
    assert "prefect-server: stopped" in server.said()
    logs = {name: (server.logs / f"{name}.log").read_text() for name in ("server", "worker")}
    logs["flow"] = "\n".join(server.flow_logs)
    assert "Finished in state Completed()" in logs["flow"]
    for name, text in logs.items():
        problems = [line for line in text.splitlines() if PROBLEMS.search(line)]
        assert problems == [], f"{name} log"

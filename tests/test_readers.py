"""Readers under load: while consecutive nights run, another process keeps opening the published warehouse
read-only and running analysts' queries; it never meets a lock and always sees one night's consistent state."""
from __future__ import annotations

import json
import subprocess
import sys
import time

from conftest import run
from test_nightly import exports, write

from car22.night.paths import Paths

READER = r"""
import json, sys, time, duckdb
warehouse, stop, out = sys.argv[1:4]
sessions, errors, torn = 0, [], []
import os
while not os.path.exists(stop):
    if not os.path.exists(warehouse):
        time.sleep(0.05); continue
    try:
        with duckdb.connect(warehouse, read_only=True) as con:
            last = con.execute("SELECT run_id, status FROM ops.runs ORDER BY run_id DESC LIMIT 1").fetchall()
            read = con.execute("SELECT coalesce(sum(rows_read), 0) FROM ops.files").fetchall()[0][0]
            raw = sum(con.execute(f"SELECT count(*) FROM raw.{t}").fetchall()[0][0] for (t,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'raw'").fetchall())
            tally = con.execute("SELECT count(*) FROM mart.toxicity_tally").fetchall()[0][0]
            sessions += 1
            if last[0][1] != 'completed' or read != raw:
                torn.append([last[0][0], last[0][1], read, raw])
    except Exception as error:
        errors.append(f"{type(error).__name__}: {error}")
json.dump({"sessions": sessions, "errors": errors, "torn": torn}, open(out, "w"))
"""


def test_readers_never_wait_and_never_see_half_a_night(prefect, tmp_path):
    paths = Paths.under(tmp_path / "night")
    files = sorted(exports().items())
    stop, out = tmp_path / "stop", tmp_path / "reader.json"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(paths.warehouse), str(stop), str(out)])
    try:
        for batch in (files[:3], files[3:6], files[6:]):
            write(paths.inbox, dict(batch))
            run(paths)
            time.sleep(0.3)
    finally:
        stop.touch()
        reader.wait(timeout=60)
    result = json.loads(out.read_text())
    assert result["errors"] == [] and result["torn"] == []
    assert result["sessions"] >= 3

"""The `car22` command: help, exit codes, and what a person reads when a run fails."""
from __future__ import annotations

import subprocess
import sys

import pytest
from test_nightly import exports, write
from test_resources import small_disk

from car22 import cli
from car22.night.paths import Paths


@pytest.mark.parametrize("command", [[], ["ingest"], ["report"], ["submission"], ["demo-data"]])
def test_every_command_has_help(command):
    shown = subprocess.run([sys.executable, "-m", "car22.cli", *command, "--help"], capture_output=True, text=True)
    assert shown.returncode == cli.EXIT_OK and "usage: car22" in shown.stdout and shown.stderr == ""


def test_usage_errors_exit_2(tmp_path, capsys):
    assert cli.main(["ingest", "--inbox", str(tmp_path / "nowhere")]) == cli.EXIT_USAGE
    assert "is not a folder: create it" in capsys.readouterr().err
    assert cli.main(["report", "--warehouse", str(tmp_path / "none.duckdb")]) == cli.EXIT_USAGE
    with pytest.raises(SystemExit) as bad_flag:
        cli.main(["ingest", "--no-such-flag"])
    assert bad_flag.value.code == cli.EXIT_USAGE


def test_a_full_disk_exits_1_and_says_what_to_do(prefect, tmp_path, capsys):
    paths = Paths.under(tmp_path)
    write(paths.inbox, exports())
    with small_disk(paths.archive, 4096):
        assert cli.main(["--quiet", "ingest", "--data-dir", str(tmp_path)]) == cli.EXIT_FAILED
    told = capsys.readouterr().err
    assert "No space left on device" in told and "What to do: disk full at " in told
    assert "Nothing was published" in told and "Traceback" not in told
    assert not paths.warehouse.exists()
    assert cli.main(["--quiet", "ingest", "--data-dir", str(tmp_path)]) == cli.EXIT_OK   # space freed
    assert "warehouse (read-only)" in capsys.readouterr().out

"""The `car22` command: help, exit codes, and what a person reads when a run fails."""
from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest
from test_nightly import exports, write
from test_resources import small_disk

from car22 import cli
from car22.night.paths import Paths


@pytest.mark.parametrize("command", [[], ["ingest"], ["report"], ["submission"], ["demo-data"]])
def test_every_command_has_help(command):
    shown = subprocess.run([sys.executable, "-m", "car22.cli", *command, "--help"], capture_output=True, text=True)
    assert shown.returncode == cli.EXIT_OK and "usage: car22" in shown.stdout and shown.stderr == ""


def _car22(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "car22.cli", *argv], capture_output=True, text=True)


@pytest.mark.parametrize("command, listed, absent", [
    ("ingest", ["--data-dir", "--inbox", "--warehouse", "--archive", "--reports", "--work-dir", "--protocol",
                "--quiet", "--version"], ["--out", "--participants"]),
    ("report", ["--data-dir", "--warehouse", "--out", "--quiet", "--version"],
     ["--inbox", "--archive", "--reports", "--work-dir", "--protocol", "--participants"]),
    ("demo-data", ["--out", "--participants", "--seed", "--as-of", "--quiet", "--version"],
     ["--data-dir", "--inbox", "--warehouse", "--archive", "--work-dir", "--protocol"]),
])
def test_a_command_lists_only_its_own_flags(command, listed, absent):
    shown = _car22(command, "--help").stdout
    assert [flag for flag in listed if flag not in shown] == []
    assert [flag for flag in absent if flag in shown] == []


@pytest.mark.parametrize("argv, quiet", [
    (["ingest"], False),
    (["-q", "ingest"], True),
    (["ingest", "-q"], True),
    (["--quiet", "report"], True),
    (["report", "--quiet"], True),
    (["demo-data", "-q", "--out", "x"], True),
])
def test_quiet_is_accepted_before_and_after_the_command(argv, quiet):
    assert cli.build_parser().parse_args(argv).quiet is quiet


@pytest.mark.parametrize("argv", [["--version"], ["ingest", "--version"], ["report", "--version"],
                                  ["demo-data", "--version"]])
def test_version(argv):
    shown = _car22(*argv)
    assert shown.returncode == cli.EXIT_OK
    assert shown.stdout == f"car22 {version('car22')}\n"


@pytest.mark.parametrize("argv, usage", [
    (["ingest", "--inbx", "x"], "usage: car22 ingest "),
    (["report", "--inbox", "x"], "usage: car22 report "),
    (["demo-data", "--particpants", "3"], "usage: car22 demo-data "),
    (["nonsense"], "usage: car22 "),
])
def test_a_mistyped_flag_shows_the_usage_of_its_command(argv, usage):
    shown = _car22(*argv)
    assert shown.returncode == cli.EXIT_USAGE
    assert shown.stderr.startswith(usage) and shown.stdout == ""


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


def test_demo_data_too_early_says_so(tmp_path, capsys):
    assert cli.main(["demo-data", "--out", str(tmp_path / "inbox"), "--as-of", "2026-04-30"]) == 2
    assert "choose a later --as-of" in capsys.readouterr().err

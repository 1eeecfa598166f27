"""Crash safety: the night killed with SIGKILL at many points, then run again, equals an uninterrupted night.

A killed run is a forked child running the real flow, told by CAR22_CRASH_AT to kill itself at its N-th
checkpoint (car22.night.faults). `make test` tries 20 points spread over the night;
`make reliability` (CAR22_KILL_POINTS=all) tries every one.
"""
from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from conftest import run
from test_incremental import derived_tables as tables
from test_nightly import exports, write

from car22.night import faults
from car22.night.paths import Paths

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def reference(prefect, tmp_path_factory):
    """An uninterrupted night, and how many checkpoints it passes."""
    paths = Paths.under(tmp_path_factory.mktemp("reference"))
    write(paths.inbox, exports())
    faults.reset()
    run(paths)
    return paths, faults.passed()


def kill_points(total: int) -> list[int]:
    if os.environ.get("CAR22_KILL_POINTS") == "all":
        return list(range(1, total + 1))
    count = min(20, total)
    return sorted({1 + round(i * (total - 1) / (count - 1)) for i in range(count)})


def killed_then_recovered(paths: Paths, point: int) -> int:
    """Run the night in a forked child that kills itself at `point`; return its exit code (negative: the
    signal). The fork shares this session's imports and Prefect server, so a kill costs about a second."""
    pid = os.fork()
    if pid == 0:  # the child: run the night until the checkpoint kills it
        signal.alarm(120)
        os.environ["CAR22_CRASH_AT"] = str(point)
        faults.reset()
        try:
            run(paths)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def test_every_kill_point_recovers_to_the_uninterrupted_night(reference, tmp_path):
    expected_paths, total = reference
    expected = tables(expected_paths.warehouse)
    originals = {hashlib.sha256(data.encode()).hexdigest() for data in exports().values()}
    points = kill_points(total)
    assert total >= 20 and len(points) >= 20
    killed = 0
    for point in points:
        paths = Paths.under(tmp_path / f"kill-{point}")
        write(paths.inbox, exports())
        code = killed_then_recovered(paths, point)
        assert code in (-signal.SIGKILL, 0), f"point {point}: exit {code}"
        killed += code == -signal.SIGKILL
        run(paths)                                            # the next night completes the work
        actual = tables(paths.warehouse)
        assert actual.keys() == expected.keys(), point
        for name in expected:
            pd.testing.assert_frame_equal(expected[name], actual[name], check_dtype=False, obj=f"{name}@{point}")
        with duckdb.connect(str(paths.warehouse), read_only=True) as con:
            files = con.execute("SELECT file_name, status, rows_read, rows_loaded, rows_rejected, sha256 "
                                "FROM ops.files").fetchall()
            staged = con.execute("SELECT count(*), count(DISTINCT (file_id, row_number)) FROM staging.labs"
                                 ).fetchall()[0]
        names = [f[0] for f in files]
        assert sorted(names) == sorted(set(names)) == sorted(exports()), f"point {point}: files recorded twice"
        assert all(read == loaded + rejected for _, _, read, loaded, rejected, _ in files)
        assert staged[0] == staged[1], f"point {point}: a row loaded twice"
        assert not list((paths.work / "pending").iterdir()) and not list(paths.inbox.iterdir())
        archived = {hashlib.sha256(p.read_bytes()).hexdigest() for p in paths.archive.rglob("*") if p.is_file()}
        assert originals <= archived, f"point {point}: archive incomplete"
    assert killed >= len(points) - 1


def first_and_second_night() -> tuple[dict[str, str], dict[str, str]]:
    """The exports split over two nights, so that the second one takes the incremental path."""
    files = sorted(exports().items())
    return dict(files[:4]), dict(files[4:])


@pytest.fixture(scope="module")
def incremental_reference(prefect, tmp_path_factory):
    """Two uninterrupted nights, and how many checkpoints the second one passes."""
    paths = Paths.under(tmp_path_factory.mktemp("incremental_reference"))
    first, second = first_and_second_night()
    write(paths.inbox, first)
    run(paths)
    write(paths.inbox, second)
    faults.reset()
    run(paths)
    return paths, faults.passed()


def test_kill_points_of_an_incremental_night_recover(incremental_reference, tmp_path):
    expected_paths, total = incremental_reference
    expected = tables(expected_paths.warehouse)
    first, second = first_and_second_night()
    points = kill_points(total) if os.environ.get("CAR22_KILL_POINTS") == "all" else \
        sorted({1 + round(i * (total - 1) / 7) for i in range(8)})
    for point in points:
        paths = Paths.under(tmp_path / f"kill-{point}")
        write(paths.inbox, first)
        run(paths)
        write(paths.inbox, second)
        assert killed_then_recovered(paths, point) in (-signal.SIGKILL, 0)
        run(paths)
        actual = tables(paths.warehouse)
        assert actual.keys() == expected.keys(), point
        for name in expected:
            pd.testing.assert_frame_equal(expected[name], actual[name], check_dtype=False, obj=f"{name}@{point}")
        assert not list((paths.work / "pending").iterdir()) and not list(paths.inbox.iterdir())

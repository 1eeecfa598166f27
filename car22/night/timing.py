"""Stage timings of a run, for the benchmark (bench/run.py): wall time and peak RSS per stage.

Recording costs a clock read per stage entry; nothing is printed or stored unless a caller reads it.
"""
from __future__ import annotations

import resource
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

seconds: dict[str, float] = defaultdict(float)
peak_rss_mb: dict[str, float] = defaultdict(float)
marks: dict[str, float] = {}


def reset() -> None:
    seconds.clear()
    peak_rss_mb.clear()
    marks.clear()


def mark(name: str) -> None:
    """Remember when something happened (e.g. the flow body started)."""
    marks.setdefault(name, time.perf_counter())


@contextmanager
def stage(name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] += time.perf_counter() - start
        peak_rss_mb[name] = max(peak_rss_mb[name], process_peak_mb())


def process_peak_mb() -> float:
    """This process's peak resident memory, in MB. Linux's ru_maxrss is not its own: a process started by
    another (fork, then exec) begins with its parent's peak, so a benchmark that had generated its exports
    first reported their 2.6 GB as the night's. /proc's VmHWM is the process's own; ru_maxrss elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

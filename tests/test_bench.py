"""The benchmark keeps working: one tiny run of bench/run.py (it asserts nothing about time)."""
import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_runs_at_a_tiny_size(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--participants", "3",
                             "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| **overall** |" in result.stdout and "incremental night (one lab export" in result.stdout
    assert "SQL and GX agree" in result.stdout and "every file" in result.stdout
    assert (tmp_path / "results-3.md").exists()
    assert "- baseline: " in result.stdout and " s after them; the table shows their mean" in result.stdout


def test_the_ratios_are_against_the_mean_of_the_baseline_before_and_after_the_nights():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    bench_run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_run)
    before = {"total": 44.0, "load": 6.0, "derive": 37.0, "process_peak_rss_mb": 10_600.0}
    after = {"total": 60.0, "load": 8.0, "derive": 51.0, "process_peak_rss_mb": 10_400.0}
    assert bench_run.mean_baseline(before, after) == {"total": 52.0, "load": 7.0, "derive": 44.0,
                                                      "process_peak_rss_mb": 10_600.0, "measured": (44.0, 60.0)}


def test_a_measured_process_reports_its_own_peak_memory_not_its_parents():
    """Linux starts a child's ru_maxrss at its parent's peak: the benchmark, having generated 20,000
    participants' exports, reported their 2.6 GB as the night's peak. The child here holds 100 MB."""
    parent = bytearray(600 << 20)
    parent[::4096] = b"\1" * len(parent[::4096])  # resident, not just reserved
    child = ("from car22.night.timing import process_peak_mb; held = bytearray(100 << 20); "
             "held[::4096] = b'\\1' * len(held[::4096]); print(process_peak_mb())")
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, cwd=ROOT, check=True)
    assert 100 <= float(result.stdout) < 400, "the child's own 100 MB and the interpreter, not the parent's 600 MB"
    del parent

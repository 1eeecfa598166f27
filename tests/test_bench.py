"""The benchmark keeps working: one tiny run of bench/run.py (it asserts nothing about time)."""
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

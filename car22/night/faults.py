"""Crash points for the reliability harness (tests/test_crash.py, reliability/): the process kills itself
with SIGKILL at the N-th checkpoint it passes when CAR22_CRASH_AT=N is set. Without it, a checkpoint only
counts. Checkpoints sit between the steps of a night and inside loading, validation, derivation, publishing.
"""
from __future__ import annotations

import os
import signal

_passed = 0


def checkpoint(name: str) -> None:
    global _passed
    _passed += 1
    target = os.environ.get("CAR22_CRASH_AT")
    if target and int(target) == _passed:
        os.kill(os.getpid(), signal.SIGKILL)


def passed() -> int:
    """Checkpoints passed so far in this process (to know how many kill points a night offers)."""
    return _passed


def reset() -> None:
    global _passed
    _passed = 0

"""A progress hook: the terminal shows a bar while the flow logs one line per file in Prefect."""
from __future__ import annotations

from collections.abc import Callable

_listener: Callable[[str, int], None] | None = None


def listen(callback: Callable[[str, int], None] | None) -> None:
    """Install (or remove with None) the callback told of (event, count): 'total' then 'file' per file."""
    global _listener
    _listener = callback


def report(event: str, count: int = 1) -> None:
    if _listener is not None:
        _listener(event, count)

"""The protocol settings file (car22/protocol.yaml): loaded once per run, hashed into ops.runs."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PROTOCOL = Path(__file__).with_name("protocol.yaml")


@dataclass(frozen=True)
class Protocol:
    """Protocol settings as read from YAML, with the SHA-256 of the file's bytes."""

    settings: dict[str, Any]
    config_hash: str
    path: Path = field(default=DEFAULT_PROTOCOL)

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.settings[section]


def load_protocol(path: str | os.PathLike | None = None) -> Protocol:
    """Read the protocol file named by `path`, else $CAR22_PROTOCOL, else the packaged default."""
    chosen = Path(path or os.environ.get("CAR22_PROTOCOL") or DEFAULT_PROTOCOL)
    data = chosen.read_bytes()
    return Protocol(yaml.safe_load(data), hashlib.sha256(data).hexdigest(), chosen)

"""Where the submission package lives and what its manifest says (read by the trial report and the flow
without loading the writers)."""
from __future__ import annotations

import json
from pathlib import Path

MANIFEST = "manifest.json"


def package_folder(warehouse: Path) -> Path:
    """The default package folder: DATA/submission beside the published warehouse (cdisc.md layout)."""
    return Path(warehouse).parent / "submission"


def read_manifest(folder: Path) -> dict | None:
    """The manifest of the package in `folder`, or None when no package was written there."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def submission_note(folder: Path) -> str:
    """One line for the trial report: when the package was written, from which run, how many datasets."""
    manifest = read_manifest(folder)
    if manifest is None:
        return f"no CDISC submission package in {folder} yet (`car22 submission`)"
    run = manifest.get("warehouse_run_id")
    return (f"CDISC submission package ({len(manifest['datasets'])} datasets) written "
            f"{manifest['written_at'][:16].replace('T', ' ')}" + (f" from run {run}" if run is not None else ""))

"""The whole submission package from a published warehouse (cdisc.md "Standards and files"): sdtm/ and adam/,
each with <name>.xpt, <name>.json and define.xml, plus manifest.json (when, which warehouse run, the datasets
and their record counts; the trial report reads it).

The package is written into a hidden sibling folder and swapped in by two renames, so a reader sees the old
package or the new one, never a mix (between the renames, for an instant, none). The same warehouse gives the
same bytes except the creation times inside the files and the manifest.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path

import duckdb

from car22.config import Protocol, load_protocol
from car22.submission.build import build, datasets
from car22.submission.define import define_xml
from car22.submission.manifest import MANIFEST
from car22.submission.writer import previous, write_dataset, writer_key

DUCKDB_MEMORY = "1GB"  # what DuckDB may hold (the datasets' temp tables, its sorts); beyond it, it spills to disk


@dataclass(frozen=True)
class Written:
    folder: Path
    written_at: str
    records: dict[str, int]
    copied: dict[str, int]  # by dataset, the records copied from the previous package (car22.submission.writer)


def _version() -> str:
    try:
        return package_version("car22")
    except PackageNotFoundError:
        return "unknown"


def _last_modified(con: duckdb.DuckDBPyConnection) -> tuple[str | None, int | None]:
    """The last completed run of the warehouse (ops.runs), if it has one: the data's own timestamp."""
    try:
        rows = con.sql("SELECT finished_at, run_id FROM ops.runs WHERE finished_at IS NOT NULL "
                       "ORDER BY finished_at DESC, run_id DESC LIMIT 1").fetchall()
    except duckdb.CatalogException:
        return None, None
    return (rows[0][0].isoformat(timespec="seconds"), rows[0][1]) if rows else (None, None)


def write_package(warehouse: Path, out: Path, protocol: Protocol | None = None,
                  now: datetime | None = None) -> Written:
    """Write the package of the warehouse file `warehouse` (opened read-only) to the folder `out`: each dataset
    is built, written and let go before the next, and the define.xml files need only the text lengths. DuckDB
    spills what it holds past DUCKDB_MEMORY into a temporary folder of its own, never beside the warehouse."""
    protocol = protocol or load_protocol()
    created = (now or datetime.now().astimezone()).isoformat(timespec="seconds")
    version = _version()
    out = Path(out)
    staging = out.with_name(f".{out.name}.partial")
    with tempfile.TemporaryDirectory(prefix="car22-submission-") as spill, \
            duckdb.connect(str(warehouse), read_only=True,
                           config={"memory_limit": DUCKDB_MEMORY, "temp_directory": spill}) as con:
        last_modified, run_id = _last_modified(con)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        try:
            records, lengths, copied, key = {}, {}, {}, writer_key()
            for built in build(con, protocol):
                dataset = built.dataset
                stem = staging / dataset.folder / dataset.name.lower()
                stem.parent.mkdir(parents=True, exist_ok=True)
                lengths[dataset.name] = built.lengths()
                outcome = write_dataset(built, stem, lengths[dataset.name],
                                        previous(out, built, lengths[dataset.name], key), key, created=created,
                                        study_oid=f"STUDY.{protocol['cdisc']['studyid']}",
                                        last_modified=last_modified, version=version)
                records[dataset.name] = outcome.records
                copied[dataset.name] = outcome.copied
            for standard in ("SDTM", "ADaM"):
                chosen = [d for d in datasets() if d.standard == standard]
                (staging / standard.lower() / "define.xml").write_bytes(
                    define_xml(chosen, lengths, standard, protocol, created, version))
            manifest = {"written_at": created, "warehouse_run_id": run_id, "warehouse_last_modified": last_modified,
                        "studyid": protocol["cdisc"]["studyid"], "ct_version": protocol["cdisc"]["ct_version"],
                        "datasets": [{"name": d.name, "standard": d.standard,
                                      "path": f"{d.folder}/{d.name.lower()}.xpt",
                                      "records": records[d.name]} for d in datasets()]}
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            _swap(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return Written(out, created, records, copied)


def _swap(staging: Path, out: Path) -> None:
    """Put the new package in place of the old: rename the old aside, the new in, then delete the old."""
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.rename(out, old)
    os.rename(staging, out)
    shutil.rmtree(old, ignore_errors=True)

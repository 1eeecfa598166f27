"""The whole submission package from a published warehouse (cdisc.md "Standards and files"): sdtm/ and adam/,
each with <name>.xpt, <name>.json and define.xml, plus manifest.json (when, which warehouse run, the datasets
and their record counts; the trial report reads it).

The package is written into a hidden sibling folder and swapped in by two renames, so a reader sees the old
package or the new one, never a mix (between the renames, for an instant, none). The same warehouse gives the
same bytes except the creation times inside the files and the manifest.
"""
from __future__ import annotations

import functools
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
from car22.submission.manifest import MANIFEST, read_manifest
from car22.submission.writer import LengthsChanged, previous, write_dataset, writer_key

DUCKDB_MEMORY = "1GB"  # what DuckDB may hold (the datasets' temp tables, its sorts); beyond it, it spills to disk


@dataclass(frozen=True)
class Written:
    folder: Path
    written_at: str
    records: dict[str, int]
    copied: dict[str, int]  # by dataset, the records copied from the previous package (car22.submission.writer)
    kept: list[str]  # the datasets none of whose records changed: the previous package's transport file, linked
    rebuilt: int | None  # how many participants' records were built; None: everyone's

    def reuse(self) -> str:
        """What was taken from the previous package, in words (the night's log and `car22 submission` say it)."""
        kept = (f"{len(self.kept)} dataset(s) unchanged, their transport files kept from it ({', '.join(self.kept)})"
                if self.kept else "no dataset unchanged")
        return (f"{sum(self.copied.values())} of {sum(self.records.values())} records copied unchanged from the "
                f"previous package; {kept}")


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


def rebuilt_since(con: duckdb.DuckDBPyConnection, manifest: dict | None, run_id: int | None) -> set[str] | None:
    """The participants whose core and mart rows the warehouse's runs rebuilt since the run the previous package
    was written from (ops.rebuilt_participants), or None when that cannot be known (no previous package, another
    warehouse's, a run that rebuilt everything or did not say): then every participant's records are built."""
    since = (manifest or {}).get("warehouse_run_id")
    if since is None or run_id is None or since > run_id:
        return None
    try:
        same_run = con.execute("SELECT count(*) FROM ops.runs WHERE run_id = ? AND status = 'completed' AND "
                               "strftime(finished_at, '%Y-%m-%dT%H:%M:%S') = ?",
                               [since, manifest.get("warehouse_last_modified")]).fetchall()[0][0]
        scopes = con.execute("""SELECT r.run_id, b.scope FROM ops.runs r
                                LEFT JOIN ops.rebuilt_participants b ON b.run_id = r.run_id AND b.participant_id IS NULL
                                WHERE r.status = 'completed' AND r.run_id > ? AND r.run_id <= ?""",
                             [since, run_id]).fetchall()
        participants = con.execute("SELECT DISTINCT participant_id FROM ops.rebuilt_participants WHERE run_id > ? "
                                   "AND run_id <= ? AND participant_id IS NOT NULL", [since, run_id]).fetchall()
    except duckdb.CatalogException:  # a warehouse from before ops.rebuilt_participants
        return None
    if not same_run or any(scope not in ("touched", "nothing") for _, scope in scopes):
        return None
    return {participant for (participant,) in participants}


def write_package(warehouse: Path, out: Path, protocol: Protocol | None = None, now: datetime | None = None,
                  whole: bool = False) -> Written:
    """Write the package of the warehouse file `warehouse` (opened read-only) to the folder `out`: each dataset
    is built, written and let go before the next, and the define.xml files need only the text lengths. DuckDB
    spills what it holds past DUCKDB_MEMORY into a temporary folder of its own, never beside the warehouse.

    Only the participants rebuilt since the previous package's run are built, the other subjects' records being
    copied from it (car22.submission.writer); when that cannot be known, or a text length changed, or `whole`,
    everyone's are built (and with `whole`, none is copied)."""
    protocol = protocol or load_protocol()
    created = (now or datetime.now().astimezone()).isoformat(timespec="seconds")
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="car22-submission-") as spill, \
            duckdb.connect(str(warehouse), read_only=True,
                           config={"memory_limit": DUCKDB_MEMORY, "temp_directory": spill}) as con:
        last_modified, run_id = _last_modified(con)
        key = writer_key(protocol)
        priors = {} if whole else {d.name: previous(out, d, key) for d in datasets()}
        participants = None if whole else rebuilt_since(con, read_manifest(out), run_id)
        if participants is not None and any(prior is None for prior in priors.values()):
            participants = None
        write = functools.partial(_write, con, out, protocol, priors, key, created=created,
                                  last_modified=last_modified, run_id=run_id)
        try:
            return write(participants)
        except LengthsChanged:
            return write(None)


def _write(con: duckdb.DuckDBPyConnection, out: Path, protocol: Protocol, priors: dict, key: str,
           participants: set[str] | None, *, created: str, last_modified: str | None, run_id: int | None) -> Written:
    version = _version()
    staging = out.with_name(f".{out.name}.partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        records, lengths, copied, kept = {}, {}, {}, []
        for built in build(con, protocol, participants):
            dataset = built.dataset
            stem = staging / dataset.folder / dataset.name.lower()
            stem.parent.mkdir(parents=True, exist_ok=True)
            outcome = write_dataset(built, stem, priors.get(dataset.name), key, created=created,
                                    study_oid=f"STUDY.{protocol['cdisc']['studyid']}",
                                    last_modified=last_modified, version=version)
            records[dataset.name], copied[dataset.name] = outcome.records, outcome.copied
            lengths[dataset.name] = outcome.lengths
            if outcome.kept:
                kept.append(dataset.name)
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
    return Written(out, created, records, copied, kept, None if participants is None else len(participants))


def _swap(staging: Path, out: Path) -> None:
    """Put the new package in place of the old: rename the old aside, the new in, then delete the old."""
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.rename(out, old)
    os.rename(staging, out)
    shutil.rmtree(old, ignore_errors=True)

"""Taking one export file into the warehouse: exactly once, nothing lost (exports.md "Arrival rules").

Every file is archived byte for byte and recorded in ops.files; every data row lands in raw and is either
loaded into staging or recorded in ops.rejected_rows with its reason. Loading only appends: which version
of a record is current is decided later, from everything loaded (car22.loading.versions).
"""
from __future__ import annotations

import gc
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol as TypingProtocol

import duckdb
import pandas as pd

from car22.intake.reading import (
    ExportRows,
    Unreadable,
    export_time,
    read_export,
    records_json,
)
from car22.intake.sources import (
    EDC_ENROLLMENT,
    IDENTIFYING,
    SOURCES,
    SQL_TYPES,
    Source,
    blank_as_na,
    source_of_name,
    strip,
    type_frame,
)
from car22.intake.take import sha256_of
from car22.night import faults, timing
from car22.night.paths import PRIVATE_FILE, private_folder
from car22.night.storage import write_whole
from car22.sql import SQL_DIR, run_sql_file

STAGING_META = {"file_id": "VARCHAR", "row_number": "INTEGER", "export_time": "TIMESTAMP",
                "content_hash": "VARCHAR"}
META_COMMENTS = {
    "file_id": "File (ops.files) the row came from.",
    "row_number": "Line number of the row in its file (the header is line 1), as in ops.rejected_rows.",
    "export_time": "Export time from the file name (exports.md); orders versions.",
    "content_hash": "MD5 of the typed fields: the same hash is the same version of the record.",
}
# raw: the values of unknown extra columns (exports.md "Schema drift"), as JSON column -> text.
EXTRA_COLUMNS = "extra_columns"
# Findings about a whole file, recorded in ops.row_warnings on line 1 (the header line).
FILE_WARNINGS = ("extra_columns", "export_time_after_run")
HEADER_LINE = 1
# Statuses of a file whose rows are in raw and staging (or ops.rejected_rows); 'rejected': every row was.
LOADED = ("loaded", "partially_loaded", "rejected")


class Validating(TypingProtocol):
    """What ingestion needs from the validation layer (car22.validation.runner.Validator)."""

    def validate(self, source: Source, frame: pd.DataFrame, *, file_id: str, file_name: str,
                 export_time: datetime | None, run_time: datetime, enrolled_ids: set[str],
                 issue_ids: frozenset[str] = frozenset()): ...


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one file, for the run summary and the Prefect log."""

    file_id: str
    file_name: str
    source: str | None
    status: str
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    reason: str | None


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create ops, raw, staging and core tables if absent (idempotent)."""
    run_sql_file(con, "ops/schema.sql")
    run_sql_file(con, "core/schema.sql")
    if (SQL_DIR / "core" / "comments.sql").exists():
        run_sql_file(con, "core/comments.sql")
    for source in SOURCES:
        raw_columns = ", ".join(f"{quote(c)} VARCHAR" for c in source.all_raw_columns
                                if c not in source.identifying)
        con.execute(f"CREATE TABLE IF NOT EXISTS {source.raw_table} "
                    f"(file_id VARCHAR NOT NULL, row_number INTEGER NOT NULL, {raw_columns})")
        con.execute(f"ALTER TABLE {source.raw_table} ADD COLUMN IF NOT EXISTS {EXTRA_COLUMNS} VARCHAR")
        con.execute(f"COMMENT ON COLUMN {source.raw_table}.{EXTRA_COLUMNS} IS 'Unknown extra columns of the "
                    f"row''s file (schema drift, exports.md), as JSON column -> text; NULL when none.'")
        columns = {**STAGING_META, **source.staging_columns()}
        typed = ", ".join(f"{quote(name)} {sql_type}" for name, sql_type in columns.items())
        con.execute(f"CREATE TABLE IF NOT EXISTS {source.staging_table} ({typed})")
        con.execute(f"COMMENT ON TABLE {source.raw_table} IS "
                    f"'{source.name} rows exactly as read (text), every data row of every file; identifying "
                    f"fields dropped as read.'")
        con.execute(f"COMMENT ON TABLE {source.staging_table} IS "
                    f"'{source.name} rows typed and in canonical units, one row per record version per file "
                    f"(history; never rewritten). Identity: {', '.join(source.identity)}.'")
        comment_columns(con, column_comments(source))


def comment_columns(con: duckdb.DuckDBPyConnection, comments: list[tuple[str, str, str]]) -> None:
    """COMMENT ON each (table, column, text), in one round trip."""
    con.execute(";".join(f"COMMENT ON COLUMN {table}.{quote(column)} IS '{text.replace(chr(39), chr(39) * 2)}'"
                         for table, column, text in comments))


def column_comments(source: Source) -> list[tuple[str, str, str]]:
    """(table, column, comment) for every raw and staging column, generated from the source's description
    (car22.intake.sources), so that a new field is commented as it is added."""
    comments = [(source.raw_table, c, META_COMMENTS[c]) for c in ("file_id", "row_number")]
    comments += [(source.raw_table, raw, f"Column {raw!r} of the {source.prefix} export, as read (text)"
                  + (", optional in the header." if raw in source.optional_raw else "."))
                 for raw in source.all_raw_columns if raw not in source.identifying]
    comments += [(source.staging_table, c, text) for c, text in META_COMMENTS.items()]
    for f in source.fields:
        if f.raw in source.identifying:
            continue
        codes = f"; codes {', '.join(f'{k} = {v}' for k, v in f.codes.items())}" if f.codes else ""
        role = "; part of the record identity" if f.name in source.identity else ""
        comments.append((source.staging_table, f.name, f"{f.raw!r} typed as {SQL_TYPES[f.kind]}"
                         f"{' (required)' if f.required else ''}{codes}{role}."))
    comments += [(source.staging_table, name, source.derived_notes[name])
                 for name in source.derived]
    return comments


def assign_file_id(con: duckdb.DuckDBPyConnection, sha: str) -> tuple[str, str | None]:
    """A file id derived from the content, and the name of the file it duplicates, if it was loaded before."""
    previous = con.execute(
        "SELECT file_id, file_name, status FROM ops.files WHERE sha256 = ? ORDER BY received_at, file_id",
        [sha]).fetchall()
    file_id = sha[:16] if not previous else f"{sha[:16]}.{len(previous)}"
    loaded = [row for row in previous if row[2] in LOADED]
    return file_id, (f"{loaded[0][1]} (file_id {loaded[0][0]})" if loaded else None)


def archive(data: bytes, archive_dir: Path, received_at: datetime, file_id: str, file_name: str) -> Path:
    """Keep the original bytes: written to a temporary name, flushed to disk, then renamed into place;
    owner-only, as the EDC originals carry dates of birth (README "Who may read what")."""
    folder = private_folder(archive_dir / received_at.strftime("%Y-%m-%d"))
    return write_whole(folder / f"{file_id}__{file_name}", data, mode=PRIVATE_FILE)


def _record_file(con: duckdb.DuckDBPyConnection, *, file_id: str, file_name: str, sha: str, size: int,
                 source: str | None, exported: datetime | None, received_at: datetime, run_id: int,
                 status: str, rows_read: int, rows_loaded: int, rows_rejected: int, reason: str | None,
                 archive_path: Path, report_path: str | None) -> None:
    con.execute(
        "INSERT INTO ops.files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [file_id, file_name, sha, size, source, exported, received_at, run_id, status, rows_read,
         rows_loaded, rows_rejected, reason, str(archive_path), report_path])


def validation_frame(source: Source, rows: pd.DataFrame, typed: pd.DataFrame) -> pd.DataFrame:
    """Typed columns plus each field's raw text stripped (`<name>_text`), the date of birth left out. `typed` is
    type_frame's of `rows`, where a text field's value is that stripped text already."""
    frame = typed.copy()
    for f in source.fields:
        if f.raw in source.identifying:
            continue
        if f.kind == "text":
            frame[f"{f.name}_text"] = typed[f.name]
        else:
            frame[f"{f.name}_text"] = blank_as_na(strip(rows[f.raw]))
    frame["row_number"] = frame.index
    return frame


def file_status(rows_loaded: int, severities: Iterable[str]) -> str:
    """loaded; partially_loaded when a row was rejected or held; rejected when no row loaded because of a
    blocking check (a file of controls only is loaded: nothing in it needed loading)."""
    severities = set(severities)
    if rows_loaded == 0 and "blocking" in severities:
        return "rejected"
    return "partially_loaded" if severities - {"skip"} else "loaded"


def validation_input(rows: ExportRows) -> tuple[dict[int, tuple[str, str, str]], pd.DataFrame, pd.DataFrame]:
    """What a file hands the validator: the lines that are not records (malformed, FlowJo controls and summary
    rows) as {line: (check, reason, severity)}, and the typed frame and validation frame of the rest."""
    source = rows.source
    rejected: dict[int, tuple[str, str, str]] = {
        number: ("row_shape", reason, "blocking") for number, reason in rows.malformed.items()}
    if source.skip_reason is not None:
        skip = source.skip_reason(rows.rows).dropna()
        for number, reason in skip.items():
            rejected.setdefault(int(number), ("not_a_sample", str(reason), "skip"))
    candidates = rows.rows.drop(index=list(rejected))
    typed = type_frame(source, candidates)
    return rejected, typed, validation_frame(source, candidates, typed)


def ingest_file(con: duckdb.DuckDBPyConnection, path: Path, *, run_id: int, archive_dir: Path,
                validator: Validating, received_at: datetime, enrolled_ids: set[str]) -> FileOutcome:
    """Archive, parse, validate and append one file, in one transaction."""
    data = path.read_bytes()
    sha = sha256_of(data)
    file_name = path.name
    exported = export_time(file_name)
    con.execute("BEGIN TRANSACTION")
    try:
        file_id, duplicate_of = assign_file_id(con, sha)
        archived = archive(data, archive_dir, received_at, file_id, file_name)
        faults.checkpoint("archived")
        common = dict(con=con, file_id=file_id, file_name=file_name, sha=sha, size=len(data),
                      exported=exported, received_at=received_at, run_id=run_id, archive_path=archived)
        if duplicate_of is not None:
            reason = f"duplicate of {duplicate_of}: the same bytes were loaded before; nothing loaded"
            _record_file(**common, source=None, status="duplicate", rows_read=0, rows_loaded=0,
                         rows_rejected=0, reason=reason, report_path=None)
            outcome = FileOutcome(file_id, file_name, None, "duplicate", 0, 0, 0, reason)
        else:
            outcome = _load(common, data, validator, enrolled_ids)
        faults.checkpoint("before file commit")
        con.execute("COMMIT")
        faults.checkpoint("file committed")
        return outcome
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _load(common: dict, data: bytes, validator: Validating, enrolled_ids: set[str]) -> FileOutcome:
    con: duckdb.DuckDBPyConnection = common["con"]
    file_id, file_name = common["file_id"], common["file_name"]
    try:
        if common["exported"] is None:
            raise Unreadable("the file name carries no export time (expected <prefix>_YYYYMMDDTHHMM.csv, "
                             "exports.md): rename it with its export time and drop it again")
        with timing.stage("parse"), _no_cycle_collection():
            rows = read_export(data)
    except Unreadable as problem:
        reason = str(problem)
        # The source its name or header points to: a data manager finds it, and its data issue, by source.
        hinted = source_of_name(file_name) or problem.source
        hint = hinted.name if hinted else None
        _record_file(**common, source=hint, status="quarantined", rows_read=0, rows_loaded=0,
                     rows_rejected=0, reason=reason, report_path=None)
        return FileOutcome(file_id, file_name, hint, "quarantined", 0, 0, 0, reason)

    source = rows.source
    issue_ids: frozenset[str] = frozenset()
    if not source.participant_records:
        from car22.loading.data_issues import (
            known_issue_ids,  # decisions name issues (exports.md §E)
        )

        issue_ids = known_issue_ids(con)
    with timing.stage("parse"), _no_cycle_collection():
        rejected, typed, frame = validation_input(rows)
    with timing.stage("validate"):
        validation = validator.validate(
            source, frame, file_id=file_id, file_name=file_name, export_time=common["exported"],
            run_time=common["received_at"], enrolled_ids=enrolled_ids, issue_ids=issue_ids)
    faults.checkpoint("validated")
    blocking: dict[int, list] = {}
    warnings = []
    for finding in validation.findings:
        if finding.severity == "blocking":
            blocking.setdefault(finding.row_number, []).append(finding)
        else:
            warnings.append(finding)
    for number, found in blocking.items():
        rejected[number] = (found[0].check_name, "; ".join(f.reason for f in found), "blocking")

    with timing.stage("load"):
        _append_raw(con, source, rows, file_id)
        faults.checkpoint("raw appended")
        loaded = typed.drop(index=[n for n in rejected if n in typed.index])
        _append_staging(con, source, loaded, file_id, common["exported"])
    run_id = common["run_id"]
    if rejected:
        records = records_json(rows, sorted(rejected))
        _append(con, "ops.rejected_rows", [
            (file_id, number, records[number], check, reason, severity, run_id)
            for number, (check, reason, severity) in sorted(rejected.items())])
    notes = [(file_id, HEADER_LINE, check, reason, run_id)
             for check, reason in file_warnings(rows, common["exported"], common["received_at"])]
    if warnings or notes:
        _append(con, "ops.row_warnings", notes + [(file_id, w.row_number, w.check_name, w.reason, run_id)
                                                  for w in warnings])
    if validation.outcomes:
        _append(con, "ops.validation_results", [
            (run_id, file_id, validation.suite, o.expectation, o.column, o.success, o.unexpected_count, o.severity,
             validation.report_path) for o in validation.outcomes])
    rows_read = len(rows.rows)
    n_rejected = len(rejected)
    status = file_status(rows_read - n_rejected, [sev for _, _, sev in rejected.values()])
    _record_file(**common, source=source.name, status=status, rows_read=rows_read,
                 rows_loaded=rows_read - n_rejected, rows_rejected=n_rejected, reason=None,
                 report_path=validation.report_path)
    return FileOutcome(file_id, file_name, source.name, status, rows_read, rows_read - n_rejected,
                       n_rejected, None)


def file_warnings(rows: ExportRows, exported: datetime | None, run_time: datetime) -> list[tuple[str, str]]:
    """Warnings on the whole file (exports.md "Schema drift"): unknown extra columns, an export time later
    than the run. The file loads."""
    found = []
    if rows.extra:
        kept = [c for c in rows.extra if c not in IDENTIFYING]
        dropped = [c for c in rows.extra if c in IDENTIFYING]
        reason = (f"unknown extra column(s) {', '.join(map(repr, rows.extra))} beside every column of a "
                  f"{rows.source.name} export: the file loaded")
        if kept:
            reason += "; their values are kept with each row in raw (extra_columns)"
        if dropped:
            reason += f"; {', '.join(map(repr, dropped))} is identifying and was dropped"
        found.append(("extra_columns", reason + ": ask the sender whether the export changed"))
    if exported is not None and exported > run_time:
        found.append(("export_time_after_run",
                      f"the export time in the file name ({exported:%Y-%m-%d %H:%M}) is later than the run "
                      f"({run_time:%Y-%m-%d %H:%M}): a clock or naming error at the sender; the file loaded"))
    return found


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Parsing a file creates millions of small objects and no reference cycles: Python's cycle collector
    would scan them again and again (half the parse time of a 350,000-row file)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _append(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple]) -> None:
    """Append many rows at once (a frame, not one INSERT per row: a file may reject all of its rows). Each
    tuple holds every column of the table in its order."""
    con.register("appended_rows", pd.DataFrame.from_records(rows))
    try:
        con.execute(f"INSERT INTO {table} SELECT * FROM appended_rows")
    finally:
        con.unregister("appended_rows")


def _append_raw(con: duckdb.DuckDBPyConnection, source: Source, rows: ExportRows, file_id: str) -> None:
    """Every data row as text; a malformed row of a source with identifying fields is kept without fields."""
    frame = rows.rows.drop(columns=list(source.identifying))
    extra = [c for c in rows.extra if c in frame.columns]
    if source.identifying and rows.malformed:
        frame.loc[list(rows.malformed)] = pd.NA
    if extra:
        values = frame[extra].astype(object).where(frame[extra].notna(), "")
        frame = frame.drop(columns=extra)
        frame[EXTRA_COLUMNS] = [json.dumps(dict(zip(extra, record)), ensure_ascii=False)
                                for record in values.to_numpy().tolist()]
    frame = frame.reset_index()
    frame.insert(0, "file_id", file_id)
    con.register("raw_frame", frame)
    try:
        con.execute(f"INSERT INTO {source.raw_table} BY NAME SELECT * FROM raw_frame")
    finally:
        con.unregister("raw_frame")


def _append_staging(con: duckdb.DuckDBPyConnection, source: Source, typed: pd.DataFrame, file_id: str,
                    exported: datetime | None) -> None:
    """Typed rows with their file, line, export time and a hash of their content (to number versions)."""
    columns = list(source.staging_columns())
    frame = typed[columns].reset_index()
    frame.insert(0, "file_id", file_id)
    frame["export_time"] = exported
    content = ", ".join(f"coalesce(CAST({quote(c)} AS VARCHAR), '\u2400')" for c in columns)
    con.register("staging_frame", frame)
    try:
        con.execute(f"INSERT INTO {source.staging_table} BY NAME SELECT *, "
                    f"md5(concat_ws('\u241f', {content})) AS content_hash FROM staging_frame")
    finally:
        con.unregister("staging_frame")


class EnrolledIds:
    """Participants with an enrollment record loaded so far, tonight's included (for the warning check; the
    authoritative hold is recomputed from core after loading: car22.loading.versions.hold_unenrolled). Read once
    a night and again after each enrollment file, not before every file (4 ms a file on the demo's 163)."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._con = con
        self.ids = self._read()

    def _read(self) -> set[str]:
        return {row[0] for row in self._con.execute(
            f"SELECT DISTINCT participant_id FROM {EDC_ENROLLMENT.staging_table}").fetchall()}

    def after(self, outcome: FileOutcome) -> None:
        """Read them again when the file just ingested was an enrollment export."""
        if outcome.source == EDC_ENROLLMENT.name:
            self.ids = self._read()

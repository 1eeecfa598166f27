"""Reading an export's bytes into rows of text, with the quirks of exports.md handled once for all sources.

BOM and CRLF (all sources), the LIMS trailer line (§A), the FlowJo blank first header cell (§B). A file that
cannot be read at all raises `Unreadable` with a reason a data manager can act on; it is quarantined whole.
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from car22.intake.sources import FLOW_SAMPLE_COLUMN, IDENTIFYING, Source, detect

UTF8_BOM = b"\xef\xbb\xbf"
SIGNATURES = {b"PK\x03\x04": "a ZIP container: XLSX or similar", b"%PDF": "a PDF document",
              b"\xd0\xcf\x11\xe0": "a legacy Office document (XLS)"}
TRAILER = re.compile(r"^\*{3}.*\*{3}$")  # exports.md §A: "*** END OF REPORT ***" is not a data row
EXPORT_TIME = re.compile(r"_(\d{8}T\d{4})(?:\.[A-Za-z0-9]+)?$")


class Unreadable(Exception):
    """The file as a whole cannot be parsed: wrong encoding, not CSV, empty, unknown header. `source` is the
    source its header points to, when it does (kept on the quarantined file)."""

    def __init__(self, reason: str, source: Source | None = None):
        super().__init__(reason)
        self.source = source


@dataclass
class ExportRows:
    """The text rows of one export, every data row accounted for by its line number."""

    source: Source
    header: list[str]
    rows: pd.DataFrame            # text columns named as in the header; index = line number in the file
    malformed: dict[int, str]     # line number -> reason (wrong number of fields)
    records: dict[int, list[str]]  # line number -> the row's fields, for malformed rows only
    extra: tuple[str, ...] = ()    # unknown columns beside the source's (exports.md "Schema drift")


def export_time(file_name: str) -> datetime | None:
    """The export time carried in `<prefix>_YYYYMMDDTHHMM.csv` (exports.md), or None."""
    match = EXPORT_TIME.search(file_name)
    if not match:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y%m%dT%H%M")
    except ValueError:
        return None


def decode(data: bytes) -> str:
    """UTF-8 text without its byte-order mark; anything else is refused with the reason."""
    if not data.strip():
        raise Unreadable("empty file: the export holds no header and no rows; re-export it")
    for signature, kind in SIGNATURES.items():
        if data.startswith(signature):
            raise Unreadable(f"binary file, not CSV text ({kind}): export the table as UTF-8 CSV")
    if b"\x00" in data[:65536]:
        raise Unreadable("binary file, not CSV text (NUL bytes; UTF-16 or a spreadsheet?): export as UTF-8 CSV")
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Unreadable(
            f"not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}): re-export as UTF-8 CSV"
        ) from None


def read_export(data: bytes) -> ExportRows:
    """Split an export into header and rows of text, recognising its source by the header."""
    text = decode(data)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        lines = [(reader.line_num, row) for row in reader if row]
    except csv.Error as error:
        raise Unreadable(f"not valid CSV (line {reader.line_num}: {error}): check the export settings") from None
    if lines and len(lines[-1][1]) == 1 and TRAILER.match(lines[-1][1][0].strip()):
        lines.pop()
    if not lines:
        raise Unreadable("empty file: no header row")
    header = [cell.strip() for cell in lines[0][1]]
    if header and header[0] == "":
        header[0] = FLOW_SAMPLE_COLUMN  # FlowJo's blank first header cell (exports.md §B)
    match = detect(header)
    if match.source is None:
        raise Unreadable(match.reason + ": check that the right file was exported", match.closest)
    if len(lines) == 1:
        raise Unreadable(f"no data rows (header only) in a {match.source.name} export: re-export with its rows",
                         match.source)
    width = len(header)
    malformed: dict[int, str] = {}
    records: dict[int, list[str]] = {}
    numbers: list[int] = []
    cells: list[list[str]] = []
    for number, row in lines[1:]:
        if len(row) != width:
            malformed[number] = f"row has {len(row)} fields, the header has {width}"
            records[number] = row
            row = (row + [""] * width)[:width]
        numbers.append(number)
        cells.append(row)
    rows = pd.DataFrame(cells, columns=header, index=pd.Index(numbers, name="row_number"), dtype="string")
    # An unknown extra column that is identifying elsewhere (a date of birth) is never kept, not even in raw.
    rows = rows.drop(columns=[c for c in match.extra if c in IDENTIFYING])
    for column in match.source.optional_raw:
        if column not in rows.columns:
            rows[column] = pd.Series(pd.NA, index=rows.index, dtype="string")
    return ExportRows(match.source, header, rows, malformed, records, match.extra)


_DATE_LIKE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|\d{1,2}-[A-Za-z]{3}-\d{4}")


def record_json(rows: ExportRows, number: int) -> str:
    """The original record of one row as JSON (header -> text), identifying columns left out.

    A malformed row of a source with identifying columns cannot be aligned to its header, so every
    date-like field is redacted: a shifted date of birth must not slip through.
    """
    return records_json(rows, [number])[number]


def records_json(rows: ExportRows, numbers: list[int]) -> dict[int, str]:
    """record_json for many rows at once (a file may reject all of its rows)."""
    found: dict[int, str] = {}
    aligned = [n for n in numbers if n not in rows.records]
    identifying = rows.source.identifying or any(c in IDENTIFYING for c in rows.extra)
    for number in numbers:
        if number in rows.records:
            fields = rows.records[number]
            if identifying:
                fields = ["[redacted date]" if _DATE_LIKE.search(value) else value for value in fields]
            found[number] = json.dumps(fields, ensure_ascii=False)
    if aligned:
        columns = [c for c in rows.header if c not in IDENTIFYING]
        frame = rows.rows.loc[aligned, columns]  # header names are unique (sources.detect)
        values = frame.astype(object).where(frame.notna(), "").to_numpy()
        for number, record in zip(aligned, values):
            found[number] = json.dumps({c: str(v) for c, v in zip(columns, record)}, ensure_ascii=False)
    return found

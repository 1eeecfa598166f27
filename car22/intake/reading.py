"""Reading an export's bytes into rows of text, with the quirks of exports.md handled once for all sources.

BOM and CRLF (all sources), the LIMS trailer line (§A), the FlowJo blank first header cell (§B). A file that
cannot be read at all raises `Unreadable` with a reason a data manager can act on; it is quarantined whole.
"""
from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

from car22.intake import duck
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
    body = data.removeprefix(UTF8_BOM)
    read = _read_by_duckdb(body, text) or _read_by_python(text)
    header = [cell.strip() for cell in read.header]
    if header and header[0] == "":
        header[0] = FLOW_SAMPLE_COLUMN  # FlowJo's blank first header cell (exports.md §B)
    match = detect(header)
    if match.source is None:
        raise Unreadable(match.reason + ": check that the right file was exported", match.closest)
    if not read.numbers:
        raise Unreadable(f"no data rows (header only) in a {match.source.name} export: re-export with its rows",
                         match.source)
    rows = read.cells.set_axis(header, axis=1).set_axis(pd.Index(read.numbers, name="row_number"), axis=0)
    # An unknown extra column that is identifying elsewhere (a date of birth) is never kept, not even in raw.
    rows = rows.drop(columns=[c for c in match.extra if c in IDENTIFYING])
    for column in match.source.optional_raw:
        if column not in rows.columns:
            rows[column] = pd.Series(pd.NA, index=rows.index, dtype="string")
    return ExportRows(match.source, header, rows, read.malformed, read.records, match.extra)


@dataclass
class _Read:
    """A file's records as parsed, the trailer left out: the header's cells as read, and each data row by its
    line number, its cells padded or truncated to the header's width (text columns 0..width-1)."""

    header: list[str]
    numbers: list[int]
    cells: pd.DataFrame
    malformed: dict[int, str]
    records: dict[int, list[str]]


def _is_trailer(fields: list[str]) -> bool:
    return len(fields) == 1 and TRAILER.match(fields[0].strip()) is not None


def _misfit(width: int, fields: list[str]) -> str:
    return f"row has {len(fields)} fields, the header has {width}"


def _read_by_python(text: str) -> _Read:
    """Python's csv module (strict), the reference reading of every file: `reader.line_num` is the line a
    record ends on; blank lines are not records."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        lines = [(reader.line_num, row) for row in reader if row]
    except csv.Error as error:
        raise Unreadable(f"not valid CSV (line {reader.line_num}: {error}): check the export settings") from None
    if lines and _is_trailer(lines[-1][1]):
        lines.pop()
    if not lines:
        raise Unreadable("empty file: no header row")
    width = len(lines[0][1])
    malformed: dict[int, str] = {}
    records: dict[int, list[str]] = {}
    numbers: list[int] = []
    cells: list[list[str]] = []
    for number, row in lines[1:]:
        if len(row) != width:
            malformed[number] = _misfit(width, row)
            records[number] = row
            row = (row + [""] * width)[:width]
        numbers.append(number)
        cells.append(row)
    return _Read(lines[0][1], numbers, pd.DataFrame(cells, columns=range(width), dtype="string"), malformed,
                 records)


def _read_csv_sql(width: int) -> str:
    """DuckDB's reading of an export as text, one output row per record (the header first) with its number
    of fields; the path and the NULL string are the parameters."""
    columns = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(width))
    cells = ", ".join(f"coalesce(c{i}, '') AS c{i}" for i in range(width))
    fields = " + ".join(f"(c{i} IS NOT NULL)::INTEGER" for i in range(width))
    return (
        f"SELECT {cells}, {fields} AS fields FROM read_csv($path, "
        "header = false, "  # the header is a record like the others: it is compared with Python's reading
        "auto_detect = false, "  # no sniffing: the dialect is the one below, whatever the file looks like
        f"columns = {{{columns}}}, "  # the header's width, all text; names by position (the header's may repeat)
        "delim = ',', quote = '\"', escape = '\"', "  # RFC 4180, as Python's csv excel dialect
        "strict_mode = true, "  # an unclosed quote, text after a closing quote, mixed line ends: errors
        "null_padding = true, "  # a short row is padded with NULLs (and counted as malformed below) ...
        "nullstr = $nullstr, allow_quoted_nulls = false, "  # ... and NULL is nothing else: no field is a newline
        "store_rejects = true, "  # a row with more fields than the header goes to reject_errors
        "parallel = false)"  # one scan in file order (null padding is serial); quicker on exports this size
    )


@dataclass
class _Lines:
    """The non-blank lines of a file's bytes: where each starts, its length without its line end, its number."""

    body: bytes
    starts: np.ndarray
    lengths: np.ndarray
    numbers: np.ndarray

    def text(self, i: int) -> str:
        return self.body[self.starts[i]:self.starts[i] + self.lengths[i]].decode("utf-8")

    def fields(self, i: int) -> list[str] | None:
        """Python's csv's reading of line i as one record, or None if it refuses it."""
        try:
            return next(csv.reader([self.text(i)], strict=True))
        except csv.Error:
            return None


def _lines(body: bytes) -> _Lines | None:
    """The file's lines as Python's csv counts them (LF or CR LF ends one), or None if a line is one Python's
    csv would count otherwise or refuse."""
    octets = np.frombuffer(body, dtype=np.uint8)
    ends = np.flatnonzero(octets == ord("\n"))
    returns = np.flatnonzero(octets == ord("\r"))
    if not np.isin(returns + 1, ends, assume_unique=True).all():
        return None  # a carriage return alone ends a line for Python's csv
    starts = np.concatenate(([0], ends + 1))
    lengths = np.append(ends, len(body)) - starts
    if int(lengths.max()) > csv.field_size_limit():
        return None  # Python's csv refuses a field this long
    lengths[np.searchsorted(ends, returns)] -= 1  # the CR of a line's CR LF
    filled = np.flatnonzero(lengths > 0)  # blank lines are not records
    return _Lines(body, starts[filled], lengths[filled], filled + 1)


def _scan(body: bytes, width: int) -> tuple[list[np.ndarray], np.ndarray, list[tuple[int, str, str]]] | None:
    """DuckDB's records of the file: its text columns (arrays of str), each record's number of fields, and the
    rejected rows (position, error, line); None on an error, or when there is no room for the temporary copy
    DuckDB reads (owner-only, deleted at once)."""
    try:
        with tempfile.NamedTemporaryFile(suffix=".csv") as copy, duck.cursor() as con:
            copy.write(body)
            copy.flush()
            arrays = con.execute(_read_csv_sql(width), {"path": copy.name, "nullstr": "\n"}).fetchnumpy()
            rejects = con.execute("SELECT DISTINCT line_byte_position, error_type, csv_line FROM reject_errors "
                                  "ORDER BY line_byte_position").fetchall()
    except (duckdb.Error, OSError):
        return None
    fields = arrays.pop("fields")
    return list(arrays.values()), fields, rejects


def _read_by_duckdb(body: bytes, text: str) -> _Read | None:
    """DuckDB's reading of a file in which every record is one non-blank line, identical to Python's csv's;
    None for any other file and wherever DuckDB's reading might differ (Python's csv reads the file then).

    Line numbers come from the line ends in the bytes. A row with too many fields is in DuckDB's reject table;
    the fields of a malformed row are Python's csv's reading of its line."""
    if "\x00" in text or ('"' in text and (' "' in text or '" ' in text)):
        return None  # a NUL; DuckDB skips spaces around a quoted field, Python's csv keeps them as text
    lines = _lines(body)
    if lines is None or len(lines.numbers) < 2:
        return None
    header = lines.fields(0)
    if header is None or len(header) < 2:
        return None  # no export has one column; a lone cell may be the trailer, which Python's reading drops
    width = len(header)
    scanned = _scan(body, width)
    if scanned is None:
        return None
    columns, fields, rejects = scanned
    if len(fields) + len(rejects) != len(lines.numbers) or any(kind != "TOO MANY COLUMNS" for _, kind, _ in rejects):
        return None  # a record over several lines, or a reading error: Python's csv says which
    # A reject's line starts one byte before its position, after the line end before it: the blank lines and
    # the LF of a CR LF come before its record.
    found = []
    for position, _, line in rejects:
        record = line.lstrip("\r\n")
        start = position - 1 + len(line) - len(record)
        i = int(np.searchsorted(lines.starts, start))
        if i == len(lines.starts) or lines.starts[i] != start or lines.text(i) != record:
            return None
        found.append(i)
    rejected = np.array(found, dtype=np.int64)
    kept = np.ones(len(lines.numbers), dtype=bool)
    kept[rejected] = False
    accepted = np.flatnonzero(kept)
    if not kept[0] or fields[0] != width or [column[0] for column in columns] != header:
        return None
    # StringArray takes DuckDB's arrays as they are; astype is then free unless pandas stores text otherwise
    cells = pd.DataFrame({i: pd.arrays.StringArray(column[1:]) for i, column in enumerate(columns)},
                         index=accepted[1:]).astype("string")
    # DuckDB's reading must agree with Python's csv's on the lines of malformed rows and on the last line:
    # DuckDB pads or cuts a row whose last quote is not closed, where Python's csv refuses the file.
    last = len(lines.numbers) - 1
    short = fields != width
    counted = dict(zip(accepted[short].tolist(), fields[short].tolist()))
    checked = set(rejected.tolist()) | set(counted)
    if '"' in lines.text(last):
        checked.add(last)
        if kept[last]:
            counted.setdefault(last, width)
    misfits: dict[int, list[str]] = {}
    for i in sorted(checked):
        python = lines.fields(i)
        if python is None:
            return None
        if kept[i] and i in counted and python != cells.loc[i].iloc[:counted[i]].tolist():
            return None  # DuckDB read the line otherwise
        if not kept[i] and len(python) <= width:
            return None  # DuckDB found too many fields where Python's csv does not
        if len(python) != width:
            misfits[i] = python
    if len(rejected):
        padded = pd.DataFrame([misfits[i][:width] for i in rejected.tolist()], index=rejected, dtype="string")
        cells = pd.concat([cells, padded]).sort_index()
    if last in misfits and _is_trailer(misfits[last]):
        del misfits[last]
        cells = cells.drop(index=last)
    numbers = lines.numbers
    return _Read(header, numbers[cells.index.to_numpy()].tolist(), cells.reset_index(drop=True),
                 {int(numbers[i]): _misfit(width, row) for i, row in misfits.items()},
                 {int(numbers[i]): row for i, row in misfits.items()})


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

"""A built dataset as SAS transport v5 (pyreadstat's headers and IBM floats, laid out by column here: the
conversion is never ours) and as Dataset-JSON v1.1 (cdisc.md "Standards and files"). Both take names, labels,
types and lengths from the variable metadata, like the Define-XML, so the three files describe the same
columns."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat

from car22.submission.build import TEXT, Dataset, Table, Variable

SAS_EPOCH = np.datetime64("1960-01-01", "D")
DATASET_JSON_VERSION = "1.1.0"
XPT_OBS_HEADER = b"HEADER RECORD*******OBS     HEADER RECORD!!!!!!!"  # the last header before the records
XPT_WIDE = 100  # numbers per record of the file that converts them to IBM floats: pyreadstat's cost is per record
JSON_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))
# Dataset-JSON dataType by metadata type; ISO 8601 text dates are "date"/"datetime", a numeric SAS date is an
# ISO date in the JSON with targetDataType "integer" (its SAS form), as Dataset-JSON 1.1 specifies.
JSON_TYPES = {"text": "string", "integer": "integer", "float": "double", "date": "date", "datetime": "datetime",
              "sasdate": "date"}


def item_oid(dataset: str, variable: str) -> str:
    return f"IT.{dataset}.{variable}"


def field_widths(dataset: Dataset, lengths: dict[str, int]) -> list[int]:
    """Bytes of each variable's field in a transport record, in order: a text its declared length, a number 8."""
    return [lengths[v.name] if v.type in TEXT else 8 for v in dataset.variables]


def record_length(dataset: Dataset, lengths: dict[str, int]) -> int:
    """Bytes of one transport record."""
    return sum(field_widths(dataset, lengths))


def xpt_header(dataset: Dataset, lengths: dict[str, int], scratch: Path) -> bytes:
    """The SAS transport v5 headers of the dataset, written by pyreadstat: the file is the headers, the records
    (xpt_records), then blanks up to a multiple of 80 bytes.

    pyreadstat sizes a text variable by its longest value in the frame it is given, so it is given one record
    whose texts have the declared lengths, and that record is cut off."""
    columns = {v.name: (["X" * lengths[v.name]] if v.type in TEXT else [0.0]) for v in dataset.variables}
    written = _pyreadstat_xpt(dataset, pd.DataFrame(columns), scratch)
    header = written.index(XPT_OBS_HEADER) + 80
    if len(written) != header + _padded(record_length(dataset, lengths)):
        raise ValueError(f"{dataset.name}: pyreadstat wrote records of another length than the declared "
                         f"{record_length(dataset, lengths)} bytes")
    return written[:header]


def xpt_records(table: Table, lengths: dict[str, int], scratch: Path) -> memoryview:
    """The table's SAS transport v5 records, record_length bytes each, in order: the bytes pyreadstat writes for
    the whole table (held equal by the tests), laid out a column at a time.

    A record is its variables' fields side by side: a text field is the ASCII value padded with blanks to the
    declared length (blank: null, as SAS has no null text); a number field is the 8-byte IBM float of the
    double (NaN: missing; an ADaM date, its SAS day number). The IBM conversion is pyreadstat's (cdisc.md: by a
    library, never by hand): each distinct number of the table is written once by pyreadstat, and its bytes
    are taken from there. pyreadstat writes a record a value at a time, through Python objects: given the
    table itself, it took half of the submission's time. The bytes are a view of the records' array: the writer
    slices runs out of it without a copy."""
    dataset = table.dataset
    numbers = {v.name: _doubles(table.frame[v.name], v) for v in dataset.variables if v.type not in TEXT}
    codes, keys = pd.factorize(np.concatenate([values.view("int64") for values in numbers.values()])
                               if numbers else np.empty(0, dtype="int64"))
    ibm = _fields(_ibm_doubles(keys.view("float64"), dataset, scratch))
    # a record as one item of its fields side by side, each field an opaque run of bytes: a column is laid into
    # every record at once (twice as fast as into a column slice of a byte matrix)
    layout = np.dtype({"names": [v.name for v in dataset.variables],
                       "formats": [f"V{width}" for width in field_widths(dataset, lengths)]})
    records = np.empty(table.records, dtype=layout)
    number = 0
    for variable in dataset.variables:
        if variable.type in TEXT:
            column = table.frame[variable.name].array
            blank_padded = _blank_padded([*column.categories, ""], lengths[variable.name])
            records[variable.name] = _fields(blank_padded)[column.codes]  # code -1 (null) picks the blank one
        else:
            records[variable.name] = ibm[codes[number:number + table.records]]
            number += table.records
    return memoryview(records.view(np.uint8)).cast("B")


def _fields(rows: np.ndarray) -> np.ndarray:
    """The rows of a uint8 matrix as one opaque item each (numpy void), to be laid into records whole."""
    return np.ascontiguousarray(rows).view(f"V{rows.shape[1]}")[:, 0]


def _doubles(column: pd.Series, variable: Variable) -> np.ndarray:
    """A number column as the doubles the transport file holds: NaN for null, an ADaM date as days since
    1960-01-01 (SAS dates, shown with DATE9.)."""
    if variable.type == "sasdate":
        days = column.to_numpy(dtype="datetime64[D]")
        return np.where(np.isnat(days), np.nan, (days - SAS_EPOCH).astype("float64"))
    return column.to_numpy(dtype="float64", na_value=np.nan)


def _ibm_doubles(values: np.ndarray, dataset: Dataset, scratch: Path) -> np.ndarray:
    """Each double's 8 transport bytes as pyreadstat writes them, as rows of a uint8 array: the values go as the
    records of a file of up to XPT_WIDE numeric variables, whose records are then read off in order."""
    if not values.size:
        return np.empty((0, 8), dtype=np.uint8)
    wide = min(XPT_WIDE, values.size)
    padded = np.append(values, np.zeros(-values.size % wide))
    frame = pd.DataFrame(padded.reshape(-1, wide), columns=[f"X{i}" for i in range(wide)])
    written = _pyreadstat_xpt(dataset, frame, scratch)
    header = written.index(XPT_OBS_HEADER) + 80
    ibm = np.frombuffer(written, dtype=np.uint8, count=padded.size * 8, offset=header)
    return ibm.reshape(-1, 8)[:values.size]


def _blank_padded(values: list[str], width: int) -> np.ndarray:
    """ASCII values as rows of a uint8 array of `width` bytes, each padded with blanks."""
    joined = "".join(value.ljust(width) for value in values).encode("ascii")
    return np.frombuffer(joined, dtype=np.uint8).reshape(len(values), width)


def _pyreadstat_xpt(dataset: Dataset, frame: pd.DataFrame, scratch: Path) -> bytes:
    """The bytes of pyreadstat's transport v5 file of `frame`, labelled as `dataset` (its variables' labels and
    formats when the frame has its variables)."""
    own = list(frame.columns) == [v.name for v in dataset.variables]
    formats = {v.name: "DATE9." for v in dataset.variables if v.type == "sasdate"} if own else {}
    path = scratch / f"{dataset.name.lower()}.slice.xpt"
    try:
        pyreadstat.write_xport(frame, str(path), file_label=dataset.label, table_name=dataset.name,
                               column_labels=[v.label for v in dataset.variables] if own else None,
                               file_format_version=5, variable_format=formats or None)
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)


def xpt_padding(records_bytes: int) -> bytes:
    """The blanks that end a transport file after its records, up to a multiple of 80 bytes."""
    return b" " * (_padded(records_bytes) - records_bytes)


def _padded(size: int) -> int:
    return -(-size // 80) * 80


def json_head(dataset: Dataset, records: int, lengths: dict[str, int], *, created: str, study_oid: str,
              version: str) -> str:
    """The Dataset-JSON v1.1 document (validated in the tests against the CDISC schema) up to its first record:
    json_head + the records joined by ',' + json_tail is exactly json.dumps of the whole document."""
    columns = []
    for variable in dataset.variables:
        column = {"itemOID": item_oid(dataset.name, variable.name), "name": variable.name,
                  "label": variable.label, "dataType": JSON_TYPES[variable.type]}
        if variable.type == "sasdate":
            column.update(targetDataType="integer", displayFormat="DATE9.")
        if variable.type in TEXT:
            column["length"] = lengths[variable.name]
        if variable.key:
            column["keySequence"] = variable.key
        columns.append(column)
    before_rows = {
        "datasetJSONCreationDateTime": created,
        "datasetJSONVersion": DATASET_JSON_VERSION,
        "fileOID": f"{study_oid}.{dataset.folder.upper()}.{dataset.name}",
        "originator": "car22",
        "sourceSystem": {"name": "car22", "version": version},
        "studyOID": study_oid,
        "metaDataVersionOID": f"MDV.{dataset.folder.upper()}",
        "metaDataRef": "define.xml",
        "itemGroupOID": f"IG.{dataset.name}",
        "records": records,
        "name": dataset.name,
        "label": dataset.label,
        "columns": columns,
    }
    return _json(before_rows)[:-1] + ',"rows":['


def json_tail(last_modified: str | None) -> str:
    """What follows the records: the end of the rows, the data's own timestamp, the end of the document."""
    return "]" + ("," + _json({"dbLastModifiedDateTime": last_modified})[1:-1] if last_modified else "") + "}"


def json_records(table: Table) -> tuple[str, np.ndarray]:
    """The table's records as Dataset-JSON rows joined by ',' (the text json.dumps gives a list of them without
    its brackets), and each record's length in bytes. By column, the JSON text of each distinct value (the first
    column's opening the record, the last's closing it) and each record's index into them; the cells are laid
    out record by record and joined in one go."""
    dataset = table.dataset
    texts, codes = map(list, zip(*(_json_column(table.frame[v.name], v) for v in dataset.variables)))
    texts[0] = "[" + texts[0]  # a record is an array: its first cell opens it, its last closes it
    texts[-1] = texts[-1] + "]"
    cells = np.empty((table.records, len(codes)), dtype=object)
    sizes = np.full(table.records, len(codes) - 1, dtype=np.int64)  # the commas between a record's cells
    for position, (column_texts, column_codes) in enumerate(zip(texts, codes)):
        cells[:, position] = column_texts.take(column_codes)
        sizes += np.fromiter(map(len, column_texts), dtype=np.int64, count=len(column_texts)).take(column_codes)
    return ",".join(cells.ravel().tolist()), sizes


def _json(value: object) -> str:
    """json.dumps(value, ensure_ascii=True, separators=(",", ":")), without building an encoder per value."""
    return JSON_ENCODER.encode(value)


def _json_column(column: pd.Series, variable: Variable) -> tuple[np.ndarray, np.ndarray]:
    """A column as the JSON text of each of its distinct values, as json.dumps writes it, then of null, and each
    record's index into them (-1, the last one, for null): every distinct value is encoded once. A number or a
    date is told by a key: its integer, its day, or a float's bits (so -0.0 and NaN stay themselves)."""
    if variable.type in TEXT:
        values, codes = column.cat.categories.to_numpy(dtype=object), column.cat.codes.to_numpy()
    else:
        if variable.type == "sasdate":
            keys = column.to_numpy(dtype="datetime64[D]").view("int64")
            null = keys == np.datetime64("NaT").view("int64")
        elif variable.type == "float":
            keys = column.array.to_numpy(dtype="float64", na_value=0.0).view("int64")
            null = column.array.isna()
        else:
            keys = column.array.to_numpy(dtype="int64", na_value=0)
            null = column.array.isna()
        codes = np.full(len(keys), -1)
        codes[~null], unique = pd.factorize(keys[~null])
        if variable.type == "sasdate":
            values = np.datetime_as_string(unique.view("datetime64[D]")).astype(object)
        elif variable.type == "float":
            values = unique.view("float64")
        else:
            values = unique
    return np.array([_json(value) for value in values.tolist()] + ["null"], dtype=object), codes

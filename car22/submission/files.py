"""A built dataset as SAS transport v5 (through pyreadstat: the IBM float conversion is never ours) and as
Dataset-JSON v1.1 (cdisc.md "Standards and files"). Both take names, labels, types and lengths from the
variable metadata, like the Define-XML, so the three files describe the same columns."""
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
JSON_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))
# Dataset-JSON dataType by metadata type; ISO 8601 text dates are "date"/"datetime", a numeric SAS date is an
# ISO date in the JSON with targetDataType "integer" (its SAS form), as Dataset-JSON 1.1 specifies.
JSON_TYPES = {"text": "string", "integer": "integer", "float": "double", "date": "date", "datetime": "datetime",
              "sasdate": "date"}


def item_oid(dataset: str, variable: str) -> str:
    return f"IT.{dataset}.{variable}"


def record_length(dataset: Dataset, lengths: dict[str, int]) -> int:
    """Bytes of one transport record: each text variable its declared length, each number 8."""
    return sum(lengths[v.name] if v.type in TEXT else 8 for v in dataset.variables)


def xpt_pieces(table: Table, lengths: dict[str, int], scratch: Path) -> tuple[bytes, bytes]:
    """The SAS transport v5 file of `table` in two pieces: the headers, and the records (record_length bytes
    each, in order); the file is the headers, the records, then blanks up to a multiple of 80 bytes. Numbers go
    as doubles (pyreadstat converts them to IBM), ADaM dates as SAS dates with DATE9., text as ASCII with an
    empty string for a missing value (SAS has no null text).

    pyreadstat sizes a text variable by its longest value in the frame it is given, so one more record, whose
    texts have the declared lengths (and whose numbers are 0, not missing: see below), is written after the
    table's and cut off: any slice of a dataset's records
    is written with the whole dataset's lengths, and slices join into the file of the whole.

    pyreadstat calls pd.isna on every value of a column that has a missing value, and reads a plain object or
    str column one call per value. So text goes as categoricals with '' for null (pyreadstat reads their values
    out of one list, none missing) and numbers as float64 with NaN for missing: only the number columns that
    have one pay the pd.isna."""
    dataset = table.dataset
    columns = {}
    for variable in dataset.variables:
        column = table.frame[variable.name]
        if variable.type in TEXT:
            columns[variable.name] = _with_last(_empty_for_null(column.array), "X" * lengths[variable.name])
        elif variable.type == "sasdate":
            days = column.to_numpy(dtype="datetime64[D]")
            values = np.where(np.isnat(days), np.nan, (days - SAS_EPOCH).astype("float64"))
            columns[variable.name] = np.append(values, 0.0)
        else:
            columns[variable.name] = np.append(column.to_numpy(dtype="float64", na_value=np.nan), 0.0)
    formats = {v.name: "DATE9." for v in dataset.variables if v.type == "sasdate"}
    path = scratch / f"{dataset.name.lower()}.slice.xpt"
    try:
        pyreadstat.write_xport(pd.DataFrame(columns), str(path), file_label=dataset.label,
                               table_name=dataset.name, column_labels=[v.label for v in dataset.variables],
                               file_format_version=5, variable_format=formats or None)
        written = path.read_bytes()
    finally:
        path.unlink(missing_ok=True)
    header = written.index(XPT_OBS_HEADER) + 80
    size = record_length(dataset, lengths)
    if len(written) != header + _padded((table.records + 1) * size):
        raise ValueError(f"{dataset.name}: pyreadstat wrote records of another length than the declared "
                         f"{size} bytes")
    return written[:header], written[header:header + table.records * size]


def xpt_padding(records_bytes: int) -> bytes:
    """The blanks that end a transport file after its records, up to a multiple of 80 bytes."""
    return b" " * (_padded(records_bytes) - records_bytes)


def _padded(size: int) -> int:
    return -(-size // 80) * 80


def _with_last(values: pd.Categorical, last: str) -> pd.Categorical:
    """The categorical with one more value at its end."""
    if last not in values.categories:
        values = values.add_categories([last])
    codes = np.append(values.codes, values.categories.get_loc(last))
    return pd.Categorical.from_codes(codes, values.categories)


def _empty_for_null(values: pd.Categorical) -> pd.Categorical:
    """'' for null: SAS has no null text, and a column with no missing value spares pyreadstat its pd.isna."""
    if "" not in values.categories:
        values = values.add_categories([""])
    return values.fillna("")


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

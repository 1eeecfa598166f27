"""A built dataset as SAS transport v5 (through pyreadstat: the IBM float conversion is never ours) and as
Dataset-JSON v1.1 (cdisc.md "Standards and files"). Both take names, labels, types and lengths from the
variable metadata, like the Define-XML, so the three files describe the same columns."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat

from car22.submission.build import TEXT, Table, Variable

SAS_EPOCH = np.datetime64("1960-01-01", "D")
DATASET_JSON_VERSION = "1.1.0"
JSON_RECORDS_AT_ONCE = 50_000  # records encoded at a time: never every record's Python objects at once
JSON_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))
# Dataset-JSON dataType by metadata type; ISO 8601 text dates are "date"/"datetime", a numeric SAS date is an
# ISO date in the JSON with targetDataType "integer" (its SAS form), as Dataset-JSON 1.1 specifies.
JSON_TYPES = {"text": "string", "integer": "integer", "float": "double", "date": "date", "datetime": "datetime",
              "sasdate": "date"}


def text_lengths(table: Table) -> dict[str, int]:
    """Each text variable's longest value in bytes (at least 1): the length the transport file, the Dataset-JSON
    and the Define-XML declare. Every category of a Table column occurs in it, so the categories suffice."""
    return {v.name: max([len(c) for c in table.frame[v.name].cat.categories] + [1])
            for v in table.dataset.variables if v.type in TEXT}


def item_oid(dataset: str, variable: str) -> str:
    return f"IT.{dataset}.{variable}"


def write_xpt(table: Table, path: Path) -> None:
    """SAS transport version 5: numbers as doubles (pyreadstat converts them to IBM), ADaM dates as SAS dates
    with DATE9., text as ASCII with an empty string for a missing value (SAS has no null text).

    pyreadstat calls pd.isna on every value of a column that has a missing value, and reads a plain object or
    str column one call per value. So text goes as categoricals with '' for null (pyreadstat reads their values
    out of one list, none missing) and numbers as float64 with NaN for missing: only the number columns that
    have one pay the pd.isna."""
    dataset = table.dataset
    columns = {}
    for variable in dataset.variables:
        column = table.frame[variable.name]
        if variable.type in TEXT:
            columns[variable.name] = _empty_for_null(column.array)
        elif variable.type == "sasdate":
            days = column.to_numpy(dtype="datetime64[D]")
            columns[variable.name] = np.where(np.isnat(days), np.nan, (days - SAS_EPOCH).astype("float64"))
        else:
            columns[variable.name] = column.to_numpy(dtype="float64", na_value=np.nan)
    formats = {v.name: "DATE9." for v in dataset.variables if v.type == "sasdate"}
    pyreadstat.write_xport(pd.DataFrame(columns), str(path), file_label=dataset.label, table_name=dataset.name,
                           column_labels=[v.label for v in dataset.variables], file_format_version=5,
                           variable_format=formats or None)


def _empty_for_null(values: pd.Categorical) -> pd.Categorical:
    """'' for null: SAS has no null text, and a column with no missing value spares pyreadstat its pd.isna."""
    if "" not in values.categories:
        values = values.add_categories([""])
    return values.fillna("")


def write_json(table: Table, path: Path, *, created: str, study_oid: str, last_modified: str | None,
               version: str) -> None:
    """The Dataset-JSON v1.1 file of one dataset (validated in the tests against the CDISC schema).

    The text is exactly json.dumps of the whole document, written piece by piece: the document up to its rows,
    then the rows JSON_RECORDS_AT_ONCE records at a time, then what follows them."""
    dataset = table.dataset
    lengths = text_lengths(table)
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
        "records": table.records,
        "name": dataset.name,
        "label": dataset.label,
        "columns": columns,
    }
    texts, codes = map(list, zip(*(_json_column(table.frame[v.name], v) for v in dataset.variables)))
    texts[0] = "[" + texts[0]  # a record is an array: its first cell opens it, its last closes it
    texts[-1] = texts[-1] + "]"
    with open(path, "w", encoding="ascii") as out:
        out.write(_json(before_rows)[:-1] + ',"rows":[')
        for start in range(0, table.records, JSON_RECORDS_AT_ONCE):
            stop = start + JSON_RECORDS_AT_ONCE
            out.write(("," if start else "") + _json_rows(texts, [c[start:stop] for c in codes]))
        out.write("]")
        if last_modified:
            out.write("," + _json({"dbLastModifiedDateTime": last_modified})[1:-1])
        out.write("}")


def _json(value: object) -> str:
    """json.dumps(value, ensure_ascii=True, separators=(",", ":")), without building an encoder per value."""
    return JSON_ENCODER.encode(value)


def _json_rows(texts: list[np.ndarray], codes: list[np.ndarray]) -> str:
    """Records as Dataset-JSON rows, the text json.dumps gives a list of them without its brackets: by column,
    the JSON texts of its values (the first column's opening the record, the last's closing it) and each
    record's index into them; the cells are laid out record by record and joined in one go."""
    cells = np.empty((len(codes[0]), len(codes)), dtype=object)
    for position, (column_texts, column_codes) in enumerate(zip(texts, codes)):
        cells[:, position] = column_texts.take(column_codes)
    return ",".join(cells.ravel().tolist())


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

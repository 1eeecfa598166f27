"""A built dataset as SAS transport v5 (through pyreadstat: the IBM float conversion is never ours) and as
Dataset-JSON v1.1 (cdisc.md "Standards and files"). Both take names, labels, types and lengths from the
variable metadata, like the Define-XML, so the three files describe the same columns."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat

from car22.submission.build import TEXT, Table, Variable, python_values

SAS_EPOCH = np.datetime64("1960-01-01", "D")
DATASET_JSON_VERSION = "1.1.0"
JSON_RECORDS_AT_ONCE = 50_000  # records encoded per json.dumps: never every record's Python objects at once
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

    pyreadstat checks every value of an object column for its type and every value of a column with missing
    values with pd.isna, one Python call each; so text goes as categoricals of str with '' for null, numbers as
    float64 (NaN for missing), and only the number columns that have a missing value pay the pd.isna."""
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
    with open(path, "w", encoding="ascii") as out:
        out.write(_json(before_rows)[:-1] + ',"rows":[')
        for start in range(0, table.records, JSON_RECORDS_AT_ONCE):
            out.write(("," if start else "") + _json(_json_rows(table, start, start + JSON_RECORDS_AT_ONCE))[1:-1])
        out.write("]")
        if last_modified:
            out.write("," + _json({"dbLastModifiedDateTime": last_modified})[1:-1])
        out.write("}")


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def _json_rows(table: Table, start: int, stop: int) -> list[tuple]:
    """Records start..stop as Dataset-JSON rows, built column by column: SAS dates as ISO 8601 text."""
    records = table.frame.iloc[start:stop]
    columns = []
    for variable in table.dataset.variables:
        if variable.type == "sasdate":
            days = records[variable.name].to_numpy(dtype="datetime64[D]")
            iso = np.datetime_as_string(days).astype(object)
            iso[np.isnat(days)] = None
            columns.append(iso.tolist())
        else:
            columns.append(python_values(records[variable.name], variable))
    return list(zip(*columns))

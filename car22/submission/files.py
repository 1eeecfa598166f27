"""A built dataset as SAS transport v5 (through pyreadstat: the IBM float conversion is never ours) and as
Dataset-JSON v1.1 (cdisc.md "Standards and files"). Both take names, labels, types and lengths from the
variable metadata, like the Define-XML, so the three files describe the same columns."""
from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path

import pandas as pd
import pyreadstat

from car22.submission.build import Table, Variable

SAS_EPOCH = date(1960, 1, 1)
DATASET_JSON_VERSION = "1.1.0"
NUMERIC = {"integer", "float", "sasdate"}
# Dataset-JSON dataType by metadata type; ISO 8601 text dates are "date"/"datetime", a numeric SAS date is an
# ISO date in the JSON with targetDataType "integer" (its SAS form), as Dataset-JSON 1.1 specifies.
JSON_TYPES = {"text": "string", "integer": "integer", "float": "double", "date": "date", "datetime": "datetime",
              "sasdate": "date"}


def text_length(table: Table, variable: Variable) -> int:
    """The longest value in bytes (at least 1): the length the transport file and the Define-XML declare."""
    return max([len(v) for v in table.column(variable.name) if v is not None] + [1])


def item_oid(dataset: str, variable: str) -> str:
    return f"IT.{dataset}.{variable}"


def write_xpt(table: Table, path: Path) -> None:
    """SAS transport version 5: numbers as doubles (pyreadstat converts them to IBM), ADaM dates as SAS dates
    with DATE9., text as ASCII with an empty string for a missing value (SAS has no null text)."""
    dataset = table.dataset
    columns = {}
    for variable in dataset.variables:
        values = table.column(variable.name)
        if variable.type == "sasdate":
            columns[variable.name] = [math.nan if v is None else float((v - SAS_EPOCH).days) for v in values]
        elif variable.type in NUMERIC:
            columns[variable.name] = [math.nan if v is None else float(v) for v in values]
        else:
            columns[variable.name] = pd.Series(["" if v is None else v for v in values], dtype=object)
    frame = pd.DataFrame(columns, columns=table.columns)
    for variable in dataset.variables:
        if variable.type in NUMERIC:
            frame[variable.name] = frame[variable.name].astype("float64")
    formats = {v.name: "DATE9." for v in dataset.variables if v.type == "sasdate"}
    pyreadstat.write_xport(frame, str(path), file_label=dataset.label, table_name=dataset.name,
                           column_labels=[v.label for v in dataset.variables], file_format_version=5,
                           variable_format=formats or None)


def dataset_json(table: Table, *, created: str, study_oid: str, last_modified: str | None, version: str) -> dict:
    """The Dataset-JSON v1.1 document of one dataset (validated in the tests against the CDISC schema)."""
    dataset = table.dataset
    columns = []
    for variable in dataset.variables:
        column = {"itemOID": item_oid(dataset.name, variable.name), "name": variable.name,
                  "label": variable.label, "dataType": JSON_TYPES[variable.type]}
        if variable.type == "sasdate":
            column.update(targetDataType="integer", displayFormat="DATE9.")
        if variable.type in ("text", "date", "datetime"):
            column["length"] = text_length(table, variable)
        if variable.key:
            column["keySequence"] = variable.key
        columns.append(column)
    document = {
        "datasetJSONCreationDateTime": created,
        "datasetJSONVersion": DATASET_JSON_VERSION,
        "fileOID": f"{study_oid}.{dataset.folder.upper()}.{dataset.name}",
        "originator": "car22",
        "sourceSystem": {"name": "car22", "version": version},
        "studyOID": study_oid,
        "metaDataVersionOID": f"MDV.{dataset.folder.upper()}",
        "metaDataRef": "define.xml",
        "itemGroupOID": f"IG.{dataset.name}",
        "records": len(table.rows),
        "name": dataset.name,
        "label": dataset.label,
        "columns": columns,
        "rows": [[v.isoformat() if isinstance(v, date) else v for v in row] for row in table.rows],
    }
    if last_modified:
        document["dbLastModifiedDateTime"] = last_modified
    return document


def write_json(document: dict, path: Path) -> None:
    path.write_text(json.dumps(document, ensure_ascii=True, separators=(",", ":")), encoding="ascii")

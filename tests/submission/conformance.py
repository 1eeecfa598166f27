"""The checks every written package must pass (cdisc.md "Checks that must hold"), shared by the demo-night
test and the hand-made edge cases: the files against the datasets built independently from the warehouse."""
from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import duckdb
import jsonschema
import numpy as np
import pandas as pd
import pyreadstat

from car22.config import load_protocol
from car22.submission import files
from car22.submission.build import TEXT, Table, build, codelists

# The CDISC Dataset-JSON 1.1 schema (CDISC CORE repository, MIT licence), copied from ../shared/reference/cdisc.
SCHEMA = Path(__file__).with_name("dataset-json-1.1.schema.json")
ODM = "{http://www.cdisc.org/ns/odm/v1.3}"
DEF = "{http://www.cdisc.org/ns/def/v2.1}"
TOLERANCE = 1e-9  # pandas.read_sas reads an IBM zero as 5.4e-79 (cdisc.md); far below any clinical value
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$")
SAS_EPOCH = date(1960, 1, 1)
XPT_STAMP = re.compile(rb"\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d")  # the transport file's own creation time


def schema() -> dict:
    return json.loads(SCHEMA.read_text(encoding="utf-8"))


def pyreadstat_whole(table: Table, path: Path, lengths: dict[str, int] | None = None) -> bytes:
    """The transport file pyreadstat writes of every record of `table` at once, as the package was written
    before car22 laid the records out itself: text with '' for null, numbers as doubles with NaN for null, ADaM
    dates as SAS days. pyreadstat sizes each text variable by its longest value; with `lengths`, one more record
    carrying them is written and cut off, with its padding."""
    columns = {}
    for v in table.dataset.variables:
        column = table.frame[v.name]
        if v.type in TEXT:
            values = [value if isinstance(value, str) else "" for value in column]
        elif v.type == "sasdate":
            days = column.to_numpy(dtype="datetime64[D]")
            values = list(np.where(np.isnat(days), np.nan, (days - files.SAS_EPOCH).astype("float64")))
        else:
            values = list(column.to_numpy(dtype="float64", na_value=np.nan))
        if lengths is not None:
            values.append("X" * lengths[v.name] if v.type in TEXT else 0.0)
        columns[v.name] = values
    pyreadstat.write_xport(pd.DataFrame(columns), str(path), file_label=table.dataset.label,
                           table_name=table.dataset.name, column_labels=[v.label for v in table.dataset.variables],
                           file_format_version=5,
                           variable_format={v.name: "DATE9." for v in table.dataset.variables if v.type == "sasdate"}
                           or None)
    written = path.read_bytes()
    if lengths is None:
        return written
    records = table.records * files.record_length(table.dataset, lengths)
    return written[:written.index(files.XPT_OBS_HEADER) + 80 + records] + files.xpt_padding(records)


def built(warehouse: Path) -> dict[str, Table]:
    """The datasets as built straight from the warehouse: what every file must hold."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {built.dataset.name: built.table() for built in build(con, load_protocol())}


def rows(table: Table) -> list[tuple]:
    """The records of a built dataset as tuples of Python values, in the metadata's variable order."""
    return list(zip(*(table.column(name) for name in table.columns)))


def xpt_path(folder: Path, table: Table) -> Path:
    return folder / table.dataset.folder / f"{table.dataset.name.lower()}.xpt"


def _same_number(expected, read) -> bool:
    if expected is None:
        return read is None or (isinstance(read, float) and math.isnan(read))
    return abs(float(read) - float(expected)) <= TOLERANCE


def check_readers(folder: Path, table: Table) -> None:
    """Both readers give the warehouse's values, in the warehouse's order, with the metadata's labels."""
    path = xpt_path(folder, table)
    frame, meta = pyreadstat.read_xport(str(path))
    other = pd.read_sas(str(path), format="xport", encoding="ascii")
    assert list(frame.columns) == list(other.columns) == table.columns
    assert meta.table_name == table.dataset.name
    assert meta.column_labels == [v.label for v in table.dataset.variables]
    assert len(frame) == len(other) == table.records
    for variable in table.dataset.variables:
        expected = table.column(variable.name)
        first, second = frame[variable.name].tolist(), other[variable.name].tolist()
        if variable.type in ("text", "date", "datetime"):
            assert first == second == ["" if v is None else v for v in expected], variable.name
        elif variable.type == "sasdate":
            assert meta.original_variable_types[variable.name] == "DATE9."
            assert all((v is None and (r is None or pd.isna(r))) or r == v for v, r in zip(expected, first)), \
                variable.name
            days = [None if v is None else (v - SAS_EPOCH).days for v in expected]
            assert all(_same_number(v, r) for v, r in zip(days, second)), variable.name
        else:
            assert all(_same_number(v, r) for v, r in zip(expected, first)), variable.name
            assert all(_same_number(v, r) for v, r in zip(expected, second)), variable.name


def check_json(folder: Path, table: Table) -> None:
    """Valid Dataset-JSON v1.1 holding the same columns and rows."""
    path = folder / table.dataset.folder / f"{table.dataset.name.lower()}.json"
    document = json.loads(path.read_text(encoding="ascii"))
    jsonschema.validate(document, schema())
    assert [c["name"] for c in document["columns"]] == table.columns
    assert document["records"] == len(document["rows"]) == table.records
    assert document["rows"] == [[v.isoformat() if isinstance(v, date) else v for v in row] for row in rows(table)]


def check_define(folder: Path, tables: dict[str, Table]) -> None:
    """Each define.xml lists every dataset of its folder, exactly its variables in order, keys, codelists."""
    for standard in ("sdtm", "adam"):
        root = ET.parse(folder / standard / "define.xml").getroot()
        assert root.get("ODMVersion") == "1.3.2"
        mdv = root.find(f"{ODM}Study/{ODM}MetaDataVersion")
        assert mdv.get(f"{DEF}DefineVersion") == "2.1.0"
        items = {i.get("OID"): i for i in mdv.findall(f"{ODM}ItemDef")}
        lists = {c.get("OID"): c for c in mdv.findall(f"{ODM}CodeList")}
        methods = {m.get("OID") for m in mdv.findall(f"{ODM}MethodDef")}
        groups = {g.get("Name"): g for g in mdv.findall(f"{ODM}ItemGroupDef")}
        mine = {name: t for name, t in tables.items() if t.dataset.folder == standard}
        assert set(groups) == set(mine)
        for name, table in mine.items():
            refs = groups[name].findall(f"{ODM}ItemRef")
            names = [items[r.get("ItemOID")].get("Name") for r in refs]
            assert names == table.columns
            keyed = sorted((int(r.get("KeySequence")), items[r.get("ItemOID")].get("Name")) for r in refs
                           if r.get("KeySequence"))
            assert [n for _, n in keyed] == table.dataset.keys
            for ref, variable in zip(refs, table.dataset.variables):
                item = items[ref.get("ItemOID")]
                assert item.find(f"{ODM}Description/{ODM}TranslatedText").text == variable.label
                assert item.find(f"{DEF}Origin").get("Type") == variable.origin
                if variable.origin == "Derived":
                    assert ref.get("MethodOID") in methods
                if variable.codelist:
                    codelist = lists[item.find(f"{ODM}CodeListRef").get("CodeListOID")]
                    allowed = {c.get("CodedValue") for c in codelist.findall(f"{ODM}CodeListItem")}
                    assert set(table.column(variable.name)) - {None} <= allowed, variable.name
                if variable.type in ("text", "date", "datetime"):
                    assert int(item.get("Length")) == max([len(v) for v in table.column(variable.name) if v] + [1])
        sponsor = {t["codelist"] for t in codelists() if t["sponsor"] == "Y"}
        for oid, codelist in lists.items():
            assert (codelist.get(f"{DEF}IsNonStandard") == "Yes") == (oid[3:] in sponsor)


def check_rules(tables: dict[str, Table]) -> None:
    """Required variables, --SEQ per USUBJID, USUBJID in DM, ISO 8601 dates, key order, transport limits."""
    subjects = set(tables["DM"].column("USUBJID"))
    for name, table in tables.items():
        dataset = table.dataset
        assert len(name) <= 8 and len(dataset.label) <= 40
        for variable in dataset.variables:
            assert variable.name.isupper() and len(variable.name) <= 8 and len(variable.label) <= 40
            values = table.column(variable.name)
            if variable.core == "Req":
                assert None not in values, f"{name}.{variable.name} is required"
            if variable.type in ("text", "date", "datetime"):
                assert all(v.isascii() and len(v) <= 200 for v in values if v is not None)
            if variable.type == "date":
                assert all(ISO_DATE.match(v) for v in values if v is not None), f"{name}.{variable.name}"
            if variable.type == "datetime":
                assert all(ISO_DATETIME.match(v) for v in values if v is not None), f"{name}.{variable.name}"
        assert set(table.column("USUBJID")) <= subjects, name
        if dataset.seq:
            pairs = list(zip(table.column("USUBJID"), table.column(dataset.seq)))
            assert len(set(pairs)) == len(pairs), f"{dataset.seq} not unique per USUBJID"
            for subject in set(table.column("USUBJID")):
                assert [s for u, s in pairs if u == subject] == list(range(1, 1 + sum(u == subject for u, _ in pairs)))
        keys = [[(v is not None, v) for v in (row[table.columns.index(k)] for k in dataset.keys)]
                for row in rows(table)]
        assert keys == sorted(keys), f"{name} is not sorted by its keys {dataset.keys}"


def check_no_identifying_data(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"BRTHDTC" not in data and not re.search(rb"\bdob\b|birth", data, re.IGNORECASE), path


def check_package(folder: Path, warehouse: Path) -> dict[str, Table]:
    """Every check of cdisc.md on the package in `folder` written from `warehouse`; the built datasets."""
    tables = built(warehouse)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert {d["name"]: d["records"] for d in manifest["datasets"]} == {n: t.records for n, t in tables.items()}
    for table in tables.values():
        check_readers(folder, table)
        check_json(folder, table)
    check_define(folder, tables)
    check_rules(tables)
    check_no_identifying_data(folder)
    return tables

"""The submission datasets (cdisc.md) from a published warehouse: one SQL model per dataset
(warehouse/submission/<name>.sql) shaped by the variable metadata (car22/submission/variables/<NAME>.csv).

The metadata is the one description of every variable: the datasets, the Define-XML and the Dataset-JSON
columns are all generated from it, so they cannot disagree. Record order is the Define-XML key order, then
every other variable (a total order: the same warehouse gives the same rows in the same order), and
--SEQ / ASEQ numbers the records of a USUBJID in that order (cdisc.md "Standards and files").
"""
from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

import duckdb

from car22.config import Protocol
from car22.sql import SQL_DIR, set_protocol_variables

HERE = Path(__file__).resolve().parent
MODELS = SQL_DIR / "submission"
MAX_TEXT_BYTES = 200  # SAS transport v5 (cdisc.md "Transport constraints")
ASCII = {"µ": "u", "μ": "u", "°": "deg", "×": "x", "≥": ">=", "≤": "<="}

# SQL helpers every model may use: the conventions of cdisc.md in one place.
MACROS = """
CREATE OR REPLACE TEMP MACRO usubjid(pid) AS getvariable('cdisc_studyid') || '-' || pid;
CREATE OR REPLACE TEMP MACRO iso(d) AS strftime(CAST(d AS DATE), '%Y-%m-%d');
CREATE OR REPLACE TEMP MACRO isotime(t) AS strftime(t, '%Y-%m-%dT%H:%M');
-- SDTM study day from the warehouse's (trial.md day 0 = infusion): no day 0 (cdisc.md Conventions).
CREATE OR REPLACE TEMP MACRO sdy(study_day) AS CASE WHEN study_day >= 0 THEN study_day + 1 ELSE study_day END;
CREATE OR REPLACE TEMP MACRO dy(d, reference) AS
    CASE WHEN d >= reference THEN CAST(d - reference AS INTEGER) + 1 ELSE CAST(d - reference AS INTEGER) END;
-- a number as text: integers without '.0', others as DuckDB's shortest round-trip form
CREATE OR REPLACE TEMP MACRO num(x) AS
    CASE WHEN x = trunc(x) AND abs(x) < 1e15 THEN CAST(CAST(x AS BIGINT) AS VARCHAR) ELSE CAST(x AS VARCHAR) END;
CREATE OR REPLACE TEMP MACRO yn(b) AS CASE WHEN b THEN 'Y' WHEN NOT b THEN 'N' END;
CREATE OR REPLACE TEMP MACRO spec(s) AS CASE s WHEN 'BM' THEN 'BONE MARROW' WHEN 'PB' THEN 'BLOOD' END;
"""


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    type: str  # text | integer | float | date | datetime (ISO 8601 text) | sasdate (numeric, DATE9.)
    origin: str  # Collected | Derived | Assigned | Protocol | Predecessor
    source: str  # the warehouse column, the method (citing derivations §), or the predecessor
    codelist: str
    key: int | None
    core: str  # Req | Exp | Perm (SDTM); Req | Cond | Perm (ADaM)


@dataclass(frozen=True)
class Dataset:
    name: str
    standard: str  # SDTM | ADaM
    label: str
    cls: str
    subclass: str  # ADaM class refinement (def:SubClass), e.g. TIME-TO-EVENT
    structure: str
    sql: str
    variables: tuple[Variable, ...]

    @property
    def folder(self) -> str:
        return self.standard.lower()

    @property
    def keys(self) -> list[str]:
        return [v.name for v in sorted((v for v in self.variables if v.key), key=lambda v: v.key)]

    @property
    def seq(self) -> str | None:
        """The sequence variable the writer numbers (--SEQ, ASEQ), if the dataset has its own."""
        own = {f"{self.name}SEQ", "ASEQ"} if self.standard == "SDTM" else {"ASEQ"}
        return next((v.name for v in self.variables if v.name in own), None)


@cache
def datasets() -> tuple[Dataset, ...]:
    """Every dataset of the package, SDTM first (ADaM models read the SDTM datasets)."""
    with open(HERE / "datasets.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    found = []
    for row in rows:
        with open(HERE / "variables" / f"{row['name']}.csv", newline="", encoding="utf-8") as handle:
            variables = tuple(Variable(v["name"], v["label"], v["type"], v["origin"], v["source"], v["codelist"],
                                       int(v["key"]) if v["key"] else None, v["core"])
                              for v in csv.DictReader(handle))
        found.append(Dataset(row["name"], row["standard"], row["label"], row["class"], row["subclass"],
                             row["structure"], row["sql"], variables))
    return tuple(sorted(found, key=lambda d: d.standard != "SDTM"))


@cache
def codelists() -> tuple[dict[str, str], ...]:
    """Codelist terms (car22/submission/codelists.csv): codelist, name, sponsor (Y/N), value, decode, source."""
    with open(HERE / "codelists.csv", newline="", encoding="utf-8") as handle:
        return tuple(csv.DictReader(handle))


@dataclass(frozen=True)
class Table:
    """One built dataset: its metadata and its records (Python values: str, int, float, date, None)."""

    dataset: Dataset
    rows: list[tuple]

    @property
    def columns(self) -> list[str]:
        return [v.name for v in self.dataset.variables]

    def column(self, name: str) -> list:
        index = self.columns.index(name)
        return [row[index] for row in self.rows]


def prepare(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    """Settings, helper macros and the codelist table the models read."""
    set_protocol_variables(con, protocol)
    con.execute(MACROS)
    con.execute("CREATE OR REPLACE TEMP TABLE codelist (codelist VARCHAR, value VARCHAR, decode VARCHAR, "
                "source VARCHAR)")
    con.executemany("INSERT INTO codelist VALUES (?, ?, ?, ?)",
                    [(c["codelist"], c["value"], c["decode"], c["source"] or None) for c in codelists()])


def build(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> dict[str, Table]:
    """Every dataset from the warehouse behind `con` (read-only is enough: only temp objects are created).
    Each dataset is also left as a temp table (sdtm_dm, ..., adam_adsl, ...): the ADaM models read SDTM."""
    prepare(con, protocol)
    tables = {}
    for dataset in datasets():
        temp = f"{dataset.folder}_{dataset.name.lower()}"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {temp} AS {_select(con, dataset)}")
        rows = con.sql(f"SELECT * FROM {temp} ORDER BY {_order(dataset)}").fetchall()
        converters = [_converter(dataset, v) for v in dataset.variables]
        tables[dataset.name] = Table(dataset, [tuple(convert(value) for convert, value in zip(converters, row))
                                               for row in rows])
    return tables


def _order(dataset: Dataset) -> str:
    """The record order: the Define-XML keys, then every other variable (a total, reproducible order)."""
    rest = [v.name for v in dataset.variables if v.name not in dataset.keys and v.name != dataset.seq]
    return ", ".join(f'"{name}" NULLS FIRST' for name in dataset.keys + rest)


def _select(con: duckdb.DuckDBPyConnection, dataset: Dataset) -> str:
    """The model wrapped to the metadata's variables in order, sorted by the keys, --SEQ numbered."""
    model = (MODELS / f"{dataset.sql}.sql").read_text(encoding="utf-8")
    produced = [c[0] for c in con.sql(model).description]
    expected = [v.name for v in dataset.variables if v.name != dataset.seq]
    if produced != expected:
        raise ValueError(f"warehouse/submission/{dataset.sql}.sql gives {produced}; "
                         f"variables/{dataset.name}.csv lists {expected}")
    order_sql = _order(dataset)
    select = []
    for variable in dataset.variables:
        if variable.name == dataset.seq:
            select.append(f'CAST(row_number() OVER (PARTITION BY "USUBJID" ORDER BY {order_sql}) AS INTEGER) '
                          f'AS "{variable.name}"')
        else:
            select.append(f'm."{variable.name}"')
    return f"SELECT {', '.join(select)} FROM ({model}) m ORDER BY {order_sql}"


def _converter(dataset: Dataset, variable: Variable):
    where = f"{dataset.name}.{variable.name}"
    if variable.type in ("text", "date", "datetime"):
        return lambda value: None if value is None else ascii_text(str(value), where)
    if variable.type == "integer":
        return lambda value: None if value is None else int(value)
    if variable.type == "float":
        return lambda value: None if value is None else float(value)
    if variable.type == "sasdate":
        return lambda value: value if value is None or type(value) is date else date.fromisoformat(str(value)[:10])
    raise ValueError(f"{where}: unknown type {variable.type!r}")


def ascii_text(value: str, where: str) -> str:
    """Transport v5 text: ASCII (µ written u, accents dropped), at most 200 bytes (cdisc.md)."""
    for character, replacement in ASCII.items():
        value = value.replace(character, replacement)
    value = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    if len(value) > MAX_TEXT_BYTES:
        raise ValueError(f"{where}: a value longer than {MAX_TEXT_BYTES} bytes cannot go into SAS transport v5: "
                         f"{value[:40]}...")
    return value

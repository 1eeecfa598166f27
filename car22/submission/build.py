"""The submission datasets (cdisc.md) from a published warehouse: one SQL model per dataset
(warehouse/submission/<name>.sql) shaped by the variable metadata (car22/submission/variables/<NAME>.csv).

The metadata is the one description of every variable: the datasets, the Define-XML and the Dataset-JSON
columns are all generated from it, so they cannot disagree. Record order is the Define-XML key order, then
every other variable (a total order: the same warehouse gives the same rows in the same order), and
--SEQ / ASEQ numbers the records of a USUBJID in that order (cdisc.md "Standards and files").

The datasets are built one at a time, so only one dataset's records are in memory at once, and set-based:
DuckDB hands the text columns over dictionary-coded (its ENUM types become pandas categoricals), so the ASCII
conversion, the 200-byte limit and the lengths run once per distinct value, never once per record.
"""
from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from car22.config import Protocol
from car22.sql import SQL_DIR, set_protocol_variables

HERE = Path(__file__).resolve().parent
MODELS = SQL_DIR / "submission"
MAX_TEXT_BYTES = 200  # SAS transport v5 (cdisc.md "Transport constraints")
ASCII = {"µ": "u", "μ": "u", "°": "deg", "×": "x", "≥": ">=", "≤": "<="}
TEXT = ("text", "date", "datetime")  # ISO 8601 dates are text in SDTM
# The DuckDB type a model gives each metadata type: the frames take the values as DuckDB hands them over.
SQL_TYPES = {"text": {"VARCHAR"}, "date": {"VARCHAR"}, "datetime": {"VARCHAR"},
             "integer": {"TINYINT", "SMALLINT", "INTEGER", "BIGINT"}, "float": {"DOUBLE"}, "sasdate": {"DATE"}}

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
    """One built dataset: its metadata and its records as a frame, one column per variable in order. Text, date
    and datetime variables are categoricals with ASCII str categories (NaN: null); integers and floats are
    nullable pandas arrays (a float NaN stays apart from null, as DuckDB gave it); sasdates are datetime64 (NaT:
    null)."""

    dataset: Dataset
    frame: pd.DataFrame

    @property
    def columns(self) -> list[str]:
        return [v.name for v in self.dataset.variables]

    @property
    def records(self) -> int:
        return len(self.frame)

    def column(self, name: str) -> list:
        """A variable's values as Python objects: str, int, float, date or None."""
        variable, values = next(v for v in self.dataset.variables if v.name == name), self.frame[name]
        if variable.type in TEXT:
            with_null = np.append(values.cat.categories.to_numpy(dtype=object), None)
            return with_null[values.cat.codes.to_numpy()].tolist()
        if variable.type == "sasdate":
            return values.to_numpy(dtype="datetime64[D]").astype(object).tolist()
        return values.array.to_numpy(dtype=object, na_value=None).tolist()


def prepare(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    """Settings, helper macros and the codelist table the models read."""
    set_protocol_variables(con, protocol)
    con.execute(MACROS)
    con.execute("CREATE OR REPLACE TEMP TABLE codelist (codelist VARCHAR, value VARCHAR, decode VARCHAR, "
                "source VARCHAR)")
    con.executemany("INSERT INTO codelist VALUES (?, ?, ?, ?)",
                    [(c["codelist"], c["value"], c["decode"], c["source"] or None) for c in codelists()])


@dataclass(frozen=True)
class Subject:
    """A USUBJID's records in a built dataset: they are consecutive (USUBJID is the first key after the constant
    STUDYID), from row `first` on, and `digest` changes whenever any of their values does."""

    usubjid: str
    first: int
    records: int
    digest: str
    lengths: tuple[int, ...]  # each text variable's longest transport value among them, in bytes (0: none)


@dataclass(frozen=True)
class Built:
    """One dataset built into the temp table `temp`, in record order: read whole, by rows, or by subject."""

    con: duckdb.DuckDBPyConnection
    dataset: Dataset
    temp: str
    rebuilt: frozenset[str] | None = None  # the USUBJIDs whose records were built; None: everyone's

    def table(self, first: int = 0, stop: int | None = None) -> Table:
        """The records from row `first` up to `stop` (all when None) as a Table."""
        rows = f"rowid >= {int(first)}" + ("" if stop is None else f" AND rowid < {int(stop)}")
        table = Table(self.dataset, _frame(self.con, self.dataset, self.temp, rows))
        _check_text_limit(table)
        return table

    def subjects(self) -> list[Subject]:
        """Every USUBJID's run of records, in record order, with a digest of their values (each record's values
        hashed, with the sign of each float, which the hash leaves out: -0.0 and 0.0 are written apart, and
        summed, as the records' order is a function of their values: see _order) and the length of their
        longest transport value per text variable. One scan: an ASCII value (as many bytes as characters) is
        its own transport value; the few others are converted here. A value over the 200-byte limit is
        refused, naming the first such record (cdisc.md)."""
        texts = [v.name for v in self.dataset.variables if v.type in TEXT]
        every = ", ".join([f'"{v.name}"' for v in self.dataset.variables]
                          + [f'signbit("{v.name}")' for v in self.dataset.variables if v.type == "float"])
        # list_distinct of a plain list: a DISTINCT aggregate costs DuckDB a grouping of its own per column
        longest = "".join(f""", max(strlen("{name}")) FILTER (WHERE strlen("{name}") = length("{name}")),
                              list_distinct(list("{name}") FILTER (WHERE strlen("{name}") <> length("{name}")))"""
                          for name in texts)
        found = self.con.sql(f"""SELECT "USUBJID", min(rowid), count(*), max(rowid),
                                        CAST(sum(hash(row({every}))) AS VARCHAR) {longest}
                                 FROM {self.temp} GROUP BY "USUBJID" ORDER BY min(rowid)""").fetchall()
        converted: dict[str, int] = {}
        subjects = []
        for usubjid, first, records, last, digest, *per_text in found:
            if usubjid is None or last - first + 1 != records:
                raise ValueError(f"{self.dataset.name}: the records of USUBJID {usubjid!r} are not consecutive: "
                                 f"its keys must start with STUDYID, USUBJID")
            lengths = []
            for longest_ascii, others in zip(per_text[::2], per_text[1::2]):
                for value in others or ():
                    if value not in converted:
                        converted[value] = len(ascii_text(value))
                lengths.append(max([longest_ascii or 0] + [converted[value] for value in others or ()]))
            subjects.append(Subject(usubjid, first, records, digest, tuple(lengths)))
            if any(length > MAX_TEXT_BYTES for length in lengths):
                self.table(first, first + records)  # refuses the subject's first such record, naming its value
        return subjects


def declared_lengths(dataset: Dataset, lengths: Iterable[tuple[int, ...]]) -> dict[str, int]:
    """Each text variable's declared length in the transport file, the Dataset-JSON and the Define-XML: the
    longest transport value among all records, in bytes, and at least 1. `lengths` holds each subject's
    (Subject.lengths)."""
    texts = [v.name for v in dataset.variables if v.type in TEXT]
    longest = [1] * len(texts)
    for subject in lengths:
        longest = [max(a, b) for a, b in zip(longest, subject)]
    return dict(zip(texts, longest))


def build(con: duckdb.DuckDBPyConnection, protocol: Protocol,
          participants: Collection[str] | None = None) -> Iterator[Built]:
    """Every dataset from the warehouse behind `con`, one at a time in package order (read-only is enough: only
    temp objects are created), with the records of the given participants only, or of everyone (None): every
    model is per subject (its records of a subject come from that participant's warehouse rows alone), so a
    subject's records are the same either way. Each dataset is a temp table (sdtm_dm, ..., adam_adsl, ...) as
    long as a later model reads it (the ADaM models read SDTM), then dropped, so DuckDB holds no more than it
    needs: a dataset yielded is readable until the next one is asked for."""
    prepare(con, protocol)
    rebuilt = None
    if participants is not None:
        con.execute("CREATE OR REPLACE TEMP TABLE rebuilt_subjects AS "
                    "SELECT DISTINCT usubjid(participant_id) AS usubjid FROM (SELECT unnest(?) AS participant_id)",
                    [sorted(participants)])
        rebuilt = frozenset(row[0] for row in con.execute("SELECT usubjid FROM rebuilt_subjects").fetchall())
    chosen = datasets()
    models = {d.name: (MODELS / f"{d.sql}.sql").read_text(encoding="utf-8") for d in chosen}
    kept: list[str] = []
    for index, dataset in enumerate(chosen):
        temp = f"{dataset.folder}_{dataset.name.lower()}"
        _create(con, dataset, models[dataset.name], temp, only_rebuilt=rebuilt is not None)
        kept.append(temp)
        yield Built(con, dataset, temp, rebuilt)
        later = [models[d.name] for d in chosen[index + 1:]]
        for done in [t for t in kept if not any(re.search(rf"\b{t}\b", model) for model in later)]:
            con.execute(f"DROP TABLE {done}")
            kept.remove(done)


def _order(dataset: Dataset) -> str:
    """The record order: the Define-XML keys, then every other variable (a total, reproducible order)."""
    rest = [v.name for v in dataset.variables if v.name not in dataset.keys and v.name != dataset.seq]
    return ", ".join(f'"{name}" NULLS FIRST' for name in dataset.keys + rest)


def _create(con: duckdb.DuckDBPyConnection, dataset: Dataset, model: str, temp: str, only_rebuilt: bool) -> None:
    """The model as temp table `temp`: the metadata's variables in order, in record order, --SEQ numbered; with
    `only_rebuilt`, the records of the USUBJIDs in temp table rebuilt_subjects only.

    The rows are sorted once, as the table is written: DuckDB keeps a table's insertion order (and its rowid
    follows it), so --SEQ is numbered by rowid within USUBJID and every later read is in record order unsorted."""
    relation = con.sql(model)
    expected = [v for v in dataset.variables if v.name != dataset.seq]
    if relation.columns != [v.name for v in expected]:
        raise ValueError(f"warehouse/submission/{dataset.sql}.sql gives {relation.columns}; "
                         f"variables/{dataset.name}.csv lists {[v.name for v in expected]}")
    for variable, sql_type in zip(expected, relation.types):
        if variable.type not in SQL_TYPES:
            raise ValueError(f"{dataset.name}.{variable.name}: unknown type {variable.type!r}")
        if str(sql_type) not in SQL_TYPES[variable.type]:
            raise ValueError(f"warehouse/submission/{dataset.sql}.sql gives {variable.name} as {sql_type}; "
                             f"variables/{dataset.name}.csv says {variable.type} "
                             f"({' or '.join(sorted(SQL_TYPES[variable.type]))})")
    select = ", ".join(f'CAST(NULL AS INTEGER) AS "{v.name}"' if v.name == dataset.seq else f'm."{v.name}"'
                       for v in dataset.variables)
    only = ' WHERE m."USUBJID" IN (SELECT usubjid FROM rebuilt_subjects)' if only_rebuilt else ""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {temp} AS SELECT {select} FROM ({model}) m{only} "
                f"ORDER BY {_order(dataset)}")
    if dataset.seq:
        con.execute(f'UPDATE {temp} SET "{dataset.seq}" = s.n FROM (SELECT rowid AS r, CAST(row_number() OVER '
                    f'(PARTITION BY "USUBJID" ORDER BY rowid) AS INTEGER) AS n FROM {temp}) s WHERE {temp}.rowid = s.r')


def _frame(con: duckdb.DuckDBPyConnection, dataset: Dataset, temp: str, rows: str) -> pd.DataFrame:
    """The records of temp table `temp` that the condition `rows` selects, as a Table frame. Text comes
    dictionary-coded through one temporary ENUM type per column; numbers and dates come as masked arrays, which
    keep null apart from a float NaN."""
    texts = [v for v in dataset.variables if v.type in TEXT]
    others = [v for v in dataset.variables if v.type not in TEXT]
    enums = {v.name: f"{temp}_{v.name.lower()}" for v in texts}
    try:
        for name, enum in enums.items():
            con.execute(f'CREATE OR REPLACE TEMP TYPE {enum} AS ENUM '
                        f'(SELECT DISTINCT "{name}" FROM {temp} WHERE {rows} AND "{name}" IS NOT NULL)')
        casts = ", ".join(f'CAST("{name}" AS {enum}) AS "{name}"' for name, enum in enums.items())
        coded = con.sql(f"SELECT {casts} FROM {temp} WHERE {rows}").df() if texts else None
    finally:
        for enum in enums.values():
            con.execute(f"DROP TYPE IF EXISTS {enum}")
    numbers = con.sql("SELECT " + ", ".join(f'"{v.name}"' for v in others)
                      + f" FROM {temp} WHERE {rows}").fetchnumpy() if others else {}
    columns = {}
    for variable in dataset.variables:
        if variable.type in TEXT:
            columns[variable.name] = _ascii_column(coded[variable.name].array)
        else:
            columns[variable.name] = _typed_column(numbers[variable.name], variable)
    return pd.DataFrame(columns)


def _ascii_column(values: pd.Categorical) -> pd.Categorical:
    """A text column in transport v5 ASCII: each distinct value converted once; values that become equal
    (e.g. 'µmol/L' and 'umol/L') become one category."""
    converted = [v if v.isascii() else ascii_text(v) for v in values.categories]
    merged, categories = pd.factorize(np.array(converted, dtype=object))
    with_null = np.append(merged, -1)  # code -1 (null) picks the last entry: stays -1
    return pd.Categorical.from_codes(with_null[values.codes], pd.Index(categories, dtype=object))


def _typed_column(values: np.ndarray, variable: Variable) -> pd.api.extensions.ExtensionArray | np.ndarray:
    """A number or date column from DuckDB's (masked) array: nullable Int/Float, or datetime64 with NaT."""
    data, null = np.ma.getdata(values), np.ma.getmaskarray(values)
    if variable.type == "integer":
        return pd.arrays.IntegerArray(data, null)
    if variable.type == "float":
        return pd.arrays.FloatingArray(data, null)
    days = data.astype("datetime64[D]")
    days[null] = np.datetime64("NaT")
    return days


def _check_text_limit(table: Table) -> None:
    """Refuse a text value over 200 bytes (cdisc.md), naming the first one in record order."""
    found = []
    for position, variable in enumerate(table.dataset.variables):
        if variable.type not in TEXT:
            continue
        column = table.frame[variable.name]
        too_long = np.flatnonzero(column.cat.categories.str.len() > MAX_TEXT_BYTES)
        if too_long.size:
            record = np.flatnonzero(np.isin(column.cat.codes, too_long))[0]
            found.append((record, position, variable.name, column.iloc[record]))
    if found:
        _, _, name, value = min(found)
        raise ValueError(f"{table.dataset.name}.{name}: a value longer than {MAX_TEXT_BYTES} bytes cannot go into "
                         f"SAS transport v5: {value[:40]}...")


def ascii_text(value: str) -> str:
    """Transport v5 text: ASCII (µ written u, accents dropped)."""
    for character, replacement in ASCII.items():
        value = value.replace(character, replacement)
    return unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")

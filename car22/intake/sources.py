"""The export sources, each described once (exports.md): header, columns and types, quirks, identity.

Adding a source is adding one `Source` here (and its validation suite under expectations/): the parser,
the typing, the staging table and the version rules all loop over these descriptions.
"""
from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date

import pandas as pd

from car22.intake import duck
from car22.intake.results import parse_results
from car22.intake.units import CANONICAL, convert

SQL_TYPES = {
    "text": "VARCHAR", "code": "VARCHAR", "int": "INTEGER", "count": "BIGINT", "float": "DOUBLE",
    "date": "DATE", "date_fcs": "DATE", "date_us": "DATE", "datetime": "TIMESTAMP", "bool": "BOOLEAN",
}


@dataclass(frozen=True)
class Field:
    """One column of an export: its name in the file, its staging name and how to type it."""

    name: str
    raw: str
    kind: str = "text"
    required: bool = False
    codes: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Source:
    """One export format: how to recognise, read, type and version its rows."""

    name: str
    prefix: str
    fields: tuple[Field, ...]
    identity: tuple[str, ...]
    # Columns that may be absent from the header (REDCap repeat columns, form status).
    optional_raw: tuple[str, ...] = ()
    # Columns computed from the typed ones: name -> SQL type.
    derived: Mapping[str, str] = field(default_factory=dict)
    derive: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    # What each derived column holds, for its COMMENT ON (the fields' comments are generated from them).
    derived_notes: Mapping[str, str] = field(default_factory=dict)
    # Reason to skip a row that is not a participant's record (flow controls, summaries), or NA.
    skip_reason: Callable[[pd.DataFrame], pd.Series] | None = None
    # Identifying columns dropped as the file is read (trial.md: the date of birth never reaches the warehouse).
    identifying: tuple[str, ...] = ()
    # EDC instruments arrive as full snapshots: a record missing from a newer export is deleted.
    snapshot: bool = False
    # SQL ORDER BY terms (over staging columns) ranking competing versions, latest wins (exports.md "Versions").
    version_order: tuple[str, ...] = ("export_time",)
    # Records of a trial participant (versions, enrollment holds, core); False for the data managers'
    # decisions (exports.md §E), which only feed ops.data_issues.
    participant_records: bool = True

    @property
    def raw_columns(self) -> tuple[str, ...]:
        return tuple(f.raw for f in self.fields)

    @property
    def all_raw_columns(self) -> tuple[str, ...]:
        """Every column the header may carry: the fields, then the optional extras."""
        return self.raw_columns + tuple(c for c in self.optional_raw if c not in self.raw_columns)

    @property
    def staging_table(self) -> str:
        return f"staging.{self.name}"

    @property
    def raw_table(self) -> str:
        return f"raw.{self.name}"

    def staging_columns(self) -> dict[str, str]:
        """Staging column -> SQL type, typed fields then derived ones."""
        columns = {f.name: SQL_TYPES[f.kind] for f in self.fields if f.raw not in self.identifying}
        columns.update(self.derived)
        return columns


# --- typing -------------------------------------------------------------------------------------------

_FORMATS = {"date": "%Y-%m-%d", "date_fcs": "%d-%b-%Y", "date_us": "%m/%d/%Y", "datetime": "%Y-%m-%d %H:%M"}
FORMAT_PATTERNS = {
    "date": r"^\d{4}-\d{2}-\d{2}$",
    "date_fcs": r"^\d{2}-[A-Za-z]{3}-\d{4}$",
    "date_us": r"^\d{2}/\d{2}/\d{4}$",
    "datetime": r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$",
    "int": r"^[+-]?\d+$",
    "float": r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$",
    "count": r"^\+?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$",
    "bool": r"^[01]$",
}


_SPACE_AFTER_NUL = re.compile(r"\x00\s")  # Python's \s is str.isspace(), what str.strip() removes


def strip(text: pd.Series) -> pd.Series:
    """`str.strip()` of every value (NA stays NA). Exports rarely pad their values, so the values are first
    joined with NULs and searched, forwards and backwards, for a space after a NUL; only when one is found is
    every value stripped (a value holding a NUL may make it strip for nothing, never miss one)."""
    text = text.astype("string")
    joined = "\x00" + "\x00".join(text.to_numpy(dtype=object, na_value="")) + "\x00"
    if _SPACE_AFTER_NUL.search(joined) or _SPACE_AFTER_NUL.search(joined[::-1]):
        return text.str.strip()
    return text


def blank_as_na(text: pd.Series) -> pd.Series:
    """NA for an empty value: an empty field holds no value."""
    values = text.to_numpy(dtype=object, na_value=None, copy=True)
    blank = values == ""
    if not blank.any():
        return text.astype("string")
    values[blank] = None
    return pd.Series(pd.array(values, dtype="string"), index=text.index, name=text.name)


def type_column(text: pd.Series, f: Field) -> pd.Series:
    """Typed values of one column; a value that does not parse becomes NA (the suite rejects the row).

    The reference typing of every kind; type_frame types the pattern kinds in SQL and comes here for text
    and codes, and for a column its SQL cannot type exactly."""
    stripped = strip(text)
    if f.kind == "text":
        return blank_as_na(stripped)
    if f.kind == "code":
        return stripped.map(dict(f.codes or {})).astype("string")
    pattern = FORMAT_PATTERNS[f.kind]
    ok = stripped.str.fullmatch(pattern).fillna(False).astype(bool)
    if f.kind in _FORMATS:
        parsed = pd.to_datetime(stripped.where(ok), format=_FORMATS[f.kind], errors="coerce")
        return parsed.dt.normalize() if f.kind != "datetime" else parsed
    if f.kind == "bool":
        return stripped.where(ok).map({"0": False, "1": True}).astype("boolean")
    number = pd.to_numeric(stripped.where(ok), errors="coerce")
    if f.kind == "float":
        return number.astype("Float64")
    # a whole number its staging column (INTEGER, or BIGINT for counts) holds; 10**400 does not parse
    largest = 2**31 - 1 if f.kind == "int" else 2**63 - 1024
    integral = number.where((number == number.round()) & (number.abs() <= largest))
    return integral.astype("Int64")


# The pattern kinds in DuckDB SQL, equal to type_column on ASCII text: the kind's pattern matched as it is,
# else in a regular expression that strips ASCII white space around it (str.strip's on ASCII text; RE2's
# [0-9] is Python's \d there), then a cast. DuckDB's text-to-DOUBLE is correctly rounded like float(), which
# pd.to_numeric is. A column holding non-ASCII text (Python's \d and str.strip know more) is type_column's.
_SQL_SPACE = r"[\t\n\x0b\x0c\r\x1c-\x1f ]*"
_SQL_VALUE = {
    "int": "CASE WHEN abs({v}) <= 2147483647 THEN {v}::BIGINT END",
    "count": "CASE WHEN {v} = trunc({v}) AND abs({v}) <= 9223372036854774784 THEN {v}::BIGINT END",  # 2**63-1024
    "float": "{v}",
    "bool": "CASE {m} WHEN '0' THEN false WHEN '1' THEN true END",
    "date": "TRY_STRPTIME({m}, '%Y-%m-%d')",
    "datetime": "TRY_STRPTIME({m}, '%Y-%m-%d %H:%M')",
    # pandas reads year 0000 in ISO dates only; DuckDB reads it as 1 BC in every format
    "date_us": "CASE WHEN NOT ends_with({m}, '0000') THEN TRY_STRPTIME({m}, '%m/%d/%Y') END",
    "date_fcs": "CASE WHEN NOT ends_with({m}, '0000') THEN TRY_STRPTIME({m}, '%d-%b-%Y') END",
}
# Where type_column's value depends on the rest of the column, which pd.to_numeric reads as integers when
# every value is one: a count of more than 15 digits (rounded only when read as a float), "-0" in a float
# column (0 as an integer, -0.0 as a float).
_SQL_ELSEWHERE = {"count": "length({m}) > 15", "float": "{v} = 0 AND starts_with({m}, '-')"}


# Typing a lab file's four pattern columns took 6 ms by SQL and 2 ms by pandas at 50 rows, 8 and 11 ms at 2,000,
# 14 and 52 ms at 16,000 (DuckDB 2.0.1, pandas 3.1.1).
TYPED_BY_SQL_FROM = 2000


def _type_by_sql(fields: list[Field], raw: pd.DataFrame) -> dict[str, pd.Series]:
    """Typed columns of the pattern-kind fields, typed in one DuckDB query, but for a column with text the SQL
    does not type as type_column does (non-ASCII text, _SQL_ELSEWHERE): that one is left to type_column."""
    if not fields:
        return {}
    matches, numbers, values = [], [], []
    for i, f in enumerate(fields):
        pattern = FORMAT_PATTERNS[f.kind].removeprefix("^").removesuffix("$").replace(r"\d", "[0-9]")
        # the pattern alone first: an unpadded value is the common case, and quicker to match
        matches.append(f"CASE WHEN regexp_full_match(c{i}, '{pattern}') THEN c{i} "
                       f"ELSE regexp_extract(c{i}, '^{_SQL_SPACE}({pattern}){_SQL_SPACE}$', 1) END AS m{i}, "
                       f"strlen(c{i}) <> length(c{i}) AS nonascii{i}")
        if f.kind in ("int", "count", "float"):
            numbers.append(f"TRY_CAST(m{i} AS DOUBLE) AS v{i}")
        names = {"m": f"m{i}", "v": f"v{i}"}
        elsewhere = _SQL_ELSEWHERE.get(f.kind, "false").format(**names)
        values.append(f"{_SQL_VALUE[f.kind].format(**names)} AS t{i}, "
                      f"coalesce(nonascii{i} OR {elsewhere}, false) AS other{i}")
    text = pd.DataFrame({f"c{i}": raw[f.raw] for i, f in enumerate(fields)})
    with duck.cursor() as con:
        con.register("raw_text", text)
        result = con.execute(f"WITH matched AS (SELECT {', '.join(matches)} FROM raw_text), "
                             f"numbered AS (SELECT {', '.join(['*'] + numbers)} FROM matched) "
                             f"SELECT {', '.join(values)} FROM numbered").df()
    typed = {}
    for i, f in enumerate(fields):
        if result[f"other{i}"].any():
            continue
        column = result[f"t{i}"].set_axis(raw.index)
        if f.kind in _FORMATS and column.isna().all():
            column = column.astype("datetime64[s]")  # pd.to_datetime's unit when nothing parses
        typed[f.name] = column.astype({"int": "Int64", "count": "Int64", "float": "Float64",
                                       "bool": "boolean"}.get(f.kind, column.dtype))
    return typed


def type_frame(source: Source, raw: pd.DataFrame) -> pd.DataFrame:
    """Typed staging columns for a frame of raw text columns (named as in the export). A query's fixed cost is
    more than pandas' typing of a small file: below TYPED_BY_SQL_FROM rows every column is type_column's."""
    by_sql = (_type_by_sql([f for f in source.fields if f.kind in _SQL_VALUE], raw)
              if len(raw) >= TYPED_BY_SQL_FROM else {})
    typed = pd.DataFrame(index=raw.index)
    for f in source.fields:
        typed[f.name] = by_sql[f.name] if f.name in by_sql else type_column(raw[f.raw], f)
    if source.derive is not None:
        typed = pd.concat([typed, source.derive(typed)], axis=1)
    return typed


# --- A. Clinical lab (LIMS) ----------------------------------------------------------------------------

def _derive_labs(typed: pd.DataFrame) -> pd.DataFrame:
    """Result text (derivations §1.2) and canonical units (§1.1) for value and reference limits."""
    result = parse_results(typed["orig_result"])
    analyte = typed["test_code"].fillna("")
    (value, ref_low, ref_high), unit = convert(analyte, typed["orig_unit"], result["value"],
                                               typed["orig_ref_low"].astype("float64"),
                                               typed["orig_ref_high"].astype("float64"))
    has_number = result["value"].notna()
    no_unit = typed["orig_unit"].isna()
    unit_known = unit.notna() | (no_unit & ~has_number)
    return pd.DataFrame({
        "value": value, "unit": unit, "comparator": result["comparator"],
        "below_lloq": result["below_lloq"], "result_kind": result["result_kind"],
        "ref_low": ref_low, "ref_high": ref_high, "unit_known": unit_known,
    }, index=typed.index)


LABS = Source(
    name="labs",
    prefix="labs",
    fields=(
        Field("participant_id", "SUBJECT_ID", required=True),
        Field("accession", "ACCESSION", required=True),
        Field("collected_at", "COLLECTED_AT", "datetime", required=True),
        Field("resulted_at", "RESULTED_AT", "datetime", required=True),
        Field("test_code", "TEST_CODE", required=True),
        Field("loinc", "LOINC"),
        Field("test_name", "TEST_NAME"),
        Field("orig_result", "RESULT"),
        Field("orig_unit", "UNITS"),
        Field("orig_ref_low", "REF_LOW", "float"),
        Field("orig_ref_high", "REF_HIGH", "float"),
        Field("flag", "FLAG"),
        Field("status", "STATUS", required=True),
    ),
    identity=("accession", "test_code"),
    derived={
        "value": "DOUBLE", "unit": "VARCHAR", "comparator": "VARCHAR", "below_lloq": "BOOLEAN",
        "result_kind": "VARCHAR", "ref_low": "DOUBLE", "ref_high": "DOUBLE", "unit_known": "BOOLEAN",
    },
    derive=_derive_labs,
    derived_notes={
        "value": "Numeric result in the canonical unit (derivations §1.1-1.2); the limit of a censored result; "
                 "NULL below the LLOQ or without a result.",
        "unit": "Canonical unit of value and the reference limits (derivations §1.1); NULL when unknown.",
        "comparator": "< or > for a censored result (e.g. <0.5), else NULL.",
        "below_lloq": "TRUE for BLQ, ND, Not detected or <LLOQ (derivations §1.2).",
        "result_kind": "VALUE | CENSORED | BELOW_LLOQ | NO_RESULT: how RESULT was read (derivations §1.2).",
        "ref_low": "Lower reference limit in the canonical unit.",
        "ref_high": "Upper reference limit in the canonical unit.",
        "unit_known": "FALSE when a numeric result came with a unit that could not be converted.",
    },
    # exports.md "Versions": later RESULTED_AT wins, a tie goes to C over F over P, then the later export.
    version_order=("resulted_at", "CASE status WHEN 'C' THEN 3 WHEN 'F' THEN 2 WHEN 'P' THEN 1 ELSE 0 END",
                   "export_time"),
)

# --- B. Flow cytometry (FlowJo table exports) -----------------------------------------------------------

# exports.md §B: the first header cell is blank and its column holds the FCS file name; the reader names it.
FLOW_SAMPLE_COLUMN = "sample"
_CONTROL = re.compile(r"^(FMO_|Isotype|Compensation)", re.IGNORECASE)


def _flow_skip_reason(raw: pd.DataFrame) -> pd.Series:
    """Controls, summary rows and rows without a subject are not samples (exports.md §B)."""
    sample = raw[FLOW_SAMPLE_COLUMN].fillna("").str.strip()
    subject = raw["SUBJECT"].fillna("").str.strip()
    reason = pd.Series(pd.NA, index=raw.index, dtype="string")
    reason[subject == ""] = "not a sample: control or unassigned row (SUBJECT empty)"
    reason[sample.str.match(_CONTROL)] = "not a sample: control (FMO, isotype or compensation)"
    reason[sample.isin(["Mean", "SD"])] = "not a sample: FlowJo summary row (Mean/SD)"
    return reason


def _flow_keywords() -> tuple[Field, ...]:
    return (
        Field("sample_id", FLOW_SAMPLE_COLUMN, required=True),
        Field("acquired_on", "$DATE", "date_fcs"),
        Field("participant_id", "SUBJECT", required=True),
        Field("collected_on", "COLLECTED", "date", required=True),
        Field("specimen", "SPECIMEN", required=True),
        Field("qc", "QC", required=True),
    )


FLOW_MRD = Source(
    name="flow_mrd",
    prefix="flow_mrd",
    fields=_flow_keywords() + (
        Field("events_total", "CD45+/Viable | Count", "count"),
        Field("events_leukemic", "CD45+/Viable/Blasts | Count", "count"),
        Field("blasts_pct", "CD45+/Viable/Blasts | Freq. of Parent (%)", "float"),
        Field("cd19_pos_pct", "CD45+/Viable/Blasts/CD19+ | Freq. of Parent (%)", "float"),
        Field("cd22_pos_pct", "CD45+/Viable/Blasts/CD22+ | Freq. of Parent (%)", "float"),
        Field("cd22_abc", "CD22_ABC", "float"),
    ),
    identity=("sample_id",),
    skip_reason=_flow_skip_reason,
)

_CELLS_PER_UL = CANONICAL["CD3"][1]["cells/ul"]


def _derive_flow_car(typed: pd.DataFrame) -> pd.DataFrame:
    """Absolute counts in the canonical 10^9/L beside the exported cells/µL (derivations §1.1)."""
    return pd.DataFrame({
        "cd3_abs": typed["cd3_abs_cells_ul"].astype("float64") * _CELLS_PER_UL,
        "cd19b_abs": typed["cd19b_abs_cells_ul"].astype("float64") * _CELLS_PER_UL,
    }, index=typed.index)


FLOW_CAR = Source(
    name="flow_car",
    prefix="flow_car",
    fields=_flow_keywords() + (
        Field("cd3_count", "Lymphocytes/Single Cells/Live/CD3+ | Count", "count"),
        Field("cd3_abs_cells_ul", "CD3_ABS", "float"),
        Field("car22_pct", "Lymphocytes/Single Cells/Live/CD3+/CAR22+ | Freq. of Parent (%)", "float"),
        Field("car22_count", "Lymphocytes/Single Cells/Live/CD3+/CAR22+ | Count", "count"),
        Field("car19_pct", "Lymphocytes/Single Cells/Live/CD3+/CAR19+ | Freq. of Parent (%)", "float"),
        Field("cd19b_pct", "Lymphocytes/Single Cells/Live/CD19+ B | Freq. of Parent (%)", "float"),
        Field("cd19b_abs_cells_ul", "CD19B_ABS", "float"),
    ),
    identity=("sample_id",),
    derived={"cd3_abs": "DOUBLE", "cd19b_abs": "DOUBLE"},
    derive=_derive_flow_car,
    derived_notes={"cd3_abs": "CD3+ count in 10^9/L (CD3_ABS cells/uL x 0.001).",
                   "cd19b_abs": "CD19+ B-cell count in 10^9/L (CD19B_ABS cells/uL x 0.001)."},
    skip_reason=_flow_skip_reason,
)

# --- C. qPCR --------------------------------------------------------------------------------------------


def _derive_qpcr(typed: pd.DataFrame) -> pd.DataFrame:
    """Copies/µg as a number, or below the limit (BLQ, ND, <LLOQ: derivations §1.2)."""
    result = parse_results(typed["orig_result"])
    plain = result["result_kind"] == "VALUE"
    return pd.DataFrame({
        "copies_per_ug": result["value"].where(plain),
        "below_lloq": result["below_lloq"],
        "result_kind": result["result_kind"],
    }, index=typed.index)


QPCR = Source(
    name="qpcr",
    prefix="qpcr",
    fields=(
        Field("participant_id", "Subject", required=True),
        Field("sample_id", "Sample ID", required=True),
        Field("collected_on", "Collection Date", "date_us", required=True),
        Field("specimen", "Specimen"),
        Field("target", "Target", required=True),
        Field("orig_result", "Copies/ug gDNA"),
        Field("lloq_copies_per_ug", "LLOQ (copies/ug)", "float"),
        Field("gdna_input_ng", "gDNA input (ng)", "float"),
        Field("run_id", "Run ID"),
        Field("qc", "QC", required=True),
    ),
    identity=("sample_id", "target"),
    derived={"copies_per_ug": "DOUBLE", "below_lloq": "BOOLEAN", "result_kind": "VARCHAR"},
    derive=_derive_qpcr,
    derived_notes={"copies_per_ug": "Transgene copies/ug gDNA as a number; NULL when below the limit or not numeric.",
                   "below_lloq": "TRUE for BLQ, ND or <LLOQ (derivations §1.2).",
                   "result_kind": "VALUE | CENSORED | BELOW_LLOQ | NO_RESULT: how the result was read "
                                  "(derivations §1.2)."},
)

# --- D. EDC (REDCap raw exports) ------------------------------------------------------------------------

def _redcap(instrument: str, fields: tuple[Field, ...], *, repeating: bool, **kwargs) -> Source:
    """A REDCap instrument export: record_id, redcap_event_name, [repeat columns], fields, [form status]."""
    head = [Field("participant_id", "record_id", required=True), Field("event", "redcap_event_name")]
    repeat = (Field("repeat_instrument", "redcap_repeat_instrument"),
              Field("instance", "redcap_repeat_instance", "int", required=repeating))
    return Source(
        name=f"edc_{instrument}",
        prefix=f"edc_{instrument}",
        fields=tuple(head) + repeat + fields,
        identity=("participant_id", "event", "instance"),
        optional_raw=(f"{instrument}_complete",) + (() if repeating else tuple(f.raw for f in repeat)),
        snapshot=True,
        **kwargs,
    )


def completed_years(born: date, on: date) -> int:
    """The calendar age (derivations §6.1): years completed on `on`, counting a birthday on its own day; a
    29 February birthday is completed on 1 March in a common year."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def next_birthday(born: date, after: date) -> date:
    """The first day after `after` on which one more year is completed."""
    year = after.year
    while True:
        candidate = date(year, born.month, born.day) if calendar.isleap(year) or (born.month, born.day) != (2, 29) \
            else date(year, 3, 1)
        if candidate > after:
            return candidate
        year += 1


def _derive_enrollment(typed: pd.DataFrame) -> pd.DataFrame:
    """Ages from the date of birth, which is dropped right after (trial.md, warehouse.md §raw): completed years
    at consent, and the days from consent to the next birthday, from which core computes completed years at
    the infusion without a date of birth (derivations §6.1)."""
    years, to_birthday = [], []
    for consent, born in zip(typed["consent_date"], typed["dob"]):
        if pd.isna(consent) or pd.isna(born):
            years.append(pd.NA)
            to_birthday.append(pd.NA)
            continue
        consent, born = consent.date(), born.date()
        years.append(completed_years(born, consent))
        to_birthday.append((next_birthday(born, consent) - consent).days)
    return pd.DataFrame({"age_at_consent_years": pd.array(years, dtype="Int64"),
                         "days_to_next_birthday": pd.array(to_birthday, dtype="Int64")}, index=typed.index)


EDC_ENROLLMENT = _redcap("enrollment", (
    Field("consent_date", "consent_date", "date", required=True),
    Field("dob", "dob", "date", required=True),
    Field("sex", "sex", "code", codes={"1": "M", "2": "F"}),
    Field("weight_kg", "weight_kg", "float"),
    Field("height_cm", "height_cm", "float"),
    Field("cd19_product", "cd19_product", "code", codes={
        "1": "tisagenlecleucel", "2": "brexucabtagene autoleucel", "3": "obecabtagene autoleucel"}),
    Field("cd19_infusion_date", "cd19_infusion_date", "date"),
    Field("hsct_eligible", "hsct_eligible", "bool"),
), repeating=False, identifying=("dob",), derive=_derive_enrollment,
    derived={"age_at_consent_years": "INTEGER", "days_to_next_birthday": "INTEGER"},
    derived_notes={"age_at_consent_years": "Completed years at consent (derivations §6.1: the calendar age), from "
                                           "the date of birth as the file is read; the date of birth is dropped.",
                   "days_to_next_birthday": "Days from consent to the next birthday, from the date of birth as the "
                                            "file is read: core's completed years at infusion count from it."})

EDC_ELIGIBILITY = _redcap("eligibility", (
    Field("lvef_pct", "lvef_pct", "float"),
    Field("fs_pct", "fs_pct", "float"),
    Field("spo2_pct", "spo2_pct", "float"),
    Field("crcl_measured", "crcl_measured", "float"),
    Field("eligible_investigator", "eligible_investigator", "bool"),
), repeating=False)

EDC_TREATMENT = _redcap("treatment", (
    Field("agent", "agent", "code", required=True,
          codes={"1": "fludarabine", "2": "cyclophosphamide", "3": "cd22_car"}),
    Field("admin_date", "admin_date", "date", required=True),
    Field("dose_mg", "dose_mg", "float"),
    Field("car_cells_per_kg", "car_cells_per_kg", "float"),
    Field("bsa_used_m2", "bsa_used_m2", "float"),
), repeating=True)

EDC_CRS_DAILY = _redcap("crs_daily", (
    Field("assess_date", "assess_date", "date", required=True),
    Field("tmax_c", "tmax_c", "float"),
    Field("hypotension", "hypotension", "int"),
    Field("vasopressin", "vasopressin", "bool"),
    Field("oxygen", "oxygen", "int"),
    Field("tocilizumab", "tocilizumab", "bool"),
    Field("steroids", "steroids", "bool"),
    Field("inv_crs_grade", "inv_crs_grade", "int"),
), repeating=True)

EDC_ICANS_DAILY = _redcap("icans_daily", (
    Field("assess_date", "assess_date", "date", required=True),
    Field("tool", "tool", "code", codes={"1": "ICE", "2": "CAPD"}),
    Field("score", "score", "int"),
    Field("unable_to_assess", "unable_to_assess", "bool"),
    Field("consciousness", "consciousness", "int"),
    Field("seizure", "seizure", "int"),
    Field("motor_weakness", "motor_weakness", "bool"),
    Field("cerebral_edema", "cerebral_edema", "int"),
    Field("inv_icans_grade", "inv_icans_grade", "int"),
), repeating=True)

EDC_ADVERSE_EVENTS = _redcap("adverse_events", (
    Field("ae_term", "ae_term", required=True),
    Field("ae_grade", "ae_grade", "int"),
    Field("onset_date", "onset_date", "date"),
    Field("resolution_date", "resolution_date", "date"),
    Field("serious", "serious", "bool"),
    Field("related", "related", "bool"),
), repeating=True)

EDC_DISEASE_ASSESSMENT = _redcap("disease_assessment", (
    Field("assess_date", "assess_date", "date", required=True),
    Field("bm_blasts_pct", "bm_blasts_pct", "float"),
    Field("cns_status", "cns_status", "code", codes={"1": "CNS1", "2": "CNS2", "3": "CNS3"}),
    Field("extramedullary", "extramedullary", "bool"),
    Field("inv_response", "inv_response", "code", codes={
        "1": "MRD_NEGATIVE_CR", "2": "MRD_POSITIVE_CR", "3": "RELAPSE", "4": "NOT_EVALUABLE"}),
), repeating=True)

EDC_FOLLOWUP = _redcap("followup", (
    Field("last_contact_date", "last_contact_date", "date"),
    Field("vital_status", "vital_status", "code", codes={"1": "alive", "2": "dead"}),
    Field("death_date", "death_date", "date"),
    Field("death_cause", "death_cause", "code", codes={
        "1": "leukemia", "2": "CRS", "3": "infection", "4": "other"}),
    Field("hsct_date", "hsct_date", "date"),
    Field("next_therapy_date", "next_therapy_date", "date"),
    Field("off_study_date", "off_study_date", "date"),
), repeating=False)

# --- E. Data manager decisions ---------------------------------------------------------------------------

DM_DECISIONS = Source(
    name="dm_decisions",
    prefix="dm_decisions",
    fields=(
        Field("issue_id", "issue_id", required=True),
        Field("decision", "decision", required=True),
        Field("reason", "reason", required=True),
        Field("decided_by", "decided_by", required=True),
        Field("decided_at", "decided_at", "datetime", required=True),
    ),
    identity=("issue_id",),
    participant_records=False,
)

SOURCES: tuple[Source, ...] = (
    LABS, FLOW_MRD, FLOW_CAR, QPCR,
    EDC_ENROLLMENT, EDC_ELIGIBILITY, EDC_TREATMENT, EDC_CRS_DAILY, EDC_ICANS_DAILY,
    EDC_ADVERSE_EVENTS, EDC_DISEASE_ASSESSMENT, EDC_FOLLOWUP, DM_DECISIONS,
)
# The sources of participants' records: current versions, holds and core loop over these.
PARTICIPANT_SOURCES: tuple[Source, ...] = tuple(s for s in SOURCES if s.participant_records)
BY_NAME: dict[str, Source] = {s.name: s for s in SOURCES}
# Identifying columns of any source: never kept, not even as an unknown extra column (schema drift).
IDENTIFYING = frozenset(c for s in SOURCES for c in s.identifying)


def source_of_name(file_name: str) -> Source | None:
    """The source a file name points to by its prefix (`<prefix>_YYYYMMDDTHHMM.csv`; the longest prefix wins)."""
    matches = [s for s in SOURCES if file_name.startswith(s.prefix + "_")]
    return max(matches, key=lambda s: len(s.prefix)) if matches else None


@dataclass(frozen=True)
class HeaderMatch:
    source: Source | None
    reason: str
    # Unknown columns beside every column of the source (exports.md "Schema drift"): the file loads with a
    # warning naming them.
    extra: tuple[str, ...] = ()
    # The source the header resembles most, for a header that matches none (kept on the quarantined file).
    closest: Source | None = None


def detect(header: list[str]) -> HeaderMatch:
    """The source whose columns the header holds (exports.md: recognised by its header): exactly, or with
    unknown extra columns (schema drift; the match with the fewest extras wins)."""
    cells = [c.strip() for c in header]
    duplicated = sorted({c for c in cells if cells.count(c) > 1})
    if duplicated:
        return HeaderMatch(None, f"duplicated column(s) in the header: {', '.join(map(repr, duplicated))}")
    present = set(cells)
    best: tuple[int, Source, set[str], set[str]] | None = None
    drifted: list[tuple[int, Source, list[str]]] = []
    for source in SOURCES:
        required = set(source.raw_columns) - set(source.optional_raw)
        allowed = set(source.raw_columns) | set(source.optional_raw)
        missing, unexpected = required - present, present - allowed
        if not missing and not unexpected:
            return HeaderMatch(source, "")
        if not missing:
            drifted.append((len(unexpected), source, [c for c in cells if c in unexpected]))
        score = len(present & required) - len(missing) - len(unexpected)
        if best is None or score > best[0]:
            best = (score, source, missing, unexpected)
    if drifted:
        _, source, extra = min(drifted, key=lambda d: d[0])
        return HeaderMatch(source, "", tuple(extra))
    assert best is not None
    score, closest, missing, unexpected = best
    detail = []
    if missing:
        detail.append("missing " + ", ".join(map(repr, sorted(missing))))
    if unexpected:
        detail.append("unexpected " + ", ".join(map(repr, sorted(unexpected))))
    return HeaderMatch(None, f"header matches no known export (closest: {closest.name}; {'; '.join(detail)})",
                       closest=closest if score > 0 else None)

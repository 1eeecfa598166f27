"""Row-level validation with Great Expectations (GX Core 1.x): one suite per source, Data Docs for monitors.

The suites are JSON under expectations/, generated from the source descriptions (car22/sources.py) and the
check tables below (`python -m car22.validation --write-suites`) and committed, so a change to a check is
reviewed as a diff; a test keeps the committed files equal to what the generator writes. Each expectation
carries in `meta` its `check_name`, its `severity` (blocking: failing rows are rejected; warning: rows load,
the finding is recorded) and the `reason` a data manager reads, a template whose `{column}` fields are
filled with the row's values (the raw text when the export has it). Values known only at run time (the
participant ID pattern, the study start, the file's export time, the enrolled participants) are GX
`$PARAMETER`s, so a protocol amendment changes no suite.

Great Expectations is imported inside `Validator` only: it costs seconds and most commands never need it.
Speed (docs/validation.md): GX's pandas engine compares numbers and times vectorised only for float64 and
datetime64[ns] columns and filters the whole frame for every metric, so each frame is narrowed to the
columns the suite reads and given those dtypes; a first pass asks only pass/fail, and only the failed
expectations are run again for their rows.
"""
from __future__ import annotations

import argparse
import html
import json
import logging
import os
import re
import string
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from car22.config import Protocol
from car22.sources import (
    EDC_ADVERSE_EVENTS, EDC_CRS_DAILY, EDC_ENROLLMENT, EDC_ICANS_DAILY, FLOW_SAMPLE_COLUMN, FORMAT_PATTERNS, LABS, QPCR,
    SOURCES, Field, Source,
)
from car22.storage import write_whole
from car22.units import CANONICAL

SUITES_DIR = Path(__file__).resolve().parent.parent / "expectations"
DATA_DOCS = "data_docs"
BLOCKING, WARNING = "blocking", "warning"
GX_SEVERITY = {BLOCKING: "critical", WARNING: "warning"}
# Columns computed from an identifying field (the enrollment's ages, from the date of birth): never shown.
WITHHELD = frozenset(c for s in SOURCES if s.identifying for c in s.derived)
NS_RANGE = (pd.Timestamp("1677-09-22"), pd.Timestamp("2262-04-11"))

# --- the check tables -------------------------------------------------------------------------------------

KIND_TEXT = {
    "date": "a date written YYYY-MM-DD", "date_fcs": "a date written DD-MMM-YYYY (e.g. 07-APR-2026)",
    "date_us": "a date written MM/DD/YYYY", "datetime": "a date and time written YYYY-MM-DD HH:MM",
    "int": "a whole number", "float": "a number",
    "count": "an event count (a whole number, scientific notation allowed)", "bool": "0 or 1",
}
# Text that has the kind's form but still does not type (typing is stricter than the pattern).
NOT_TYPED = {"date": "is not a real calendar date", "date_fcs": "is not a real calendar date",
             "date_us": "is not a real calendar date", "datetime": "is not a real date and time",
             "count": "is not a whole number of events"}
DATE_KINDS = ("date", "date_fcs", "date_us", "datetime")
# Dates that may precede the study: checked from this parameter instead of the study start.
DATE_FROM = {"cd19_infusion_date": ("cd19_car_earliest", "the first CD19 CAR T infusions")}

KNOWN_TESTS = ("WBC", "ANC", "ALC", "HGB", "PLT", "CREAT", "TBILI", "AST", "ALT", "LDH", "CRP", "FERR", "FIBR",
               "K", "IL6")
# Canonical units (derivations §1.1): (low, high) outside which a value is impossible for a living patient,
# a unit or typing error (blocking); and, where values beyond the usual plausible upper bound are reported
# after CAR T (hyperleukocytic relapse, HLH/MAS, severe CRS, tumour lysis), that bound as a warning.
LAB_LIMITS: dict[str, tuple[float, float, float | None]] = {
    "WBC": (0, 1000, 500), "ANC": (0, 200, None), "ALC": (0, 1000, 500), "HGB": (20, 250, None),
    "PLT": (0, 5000, None), "CREAT": (0, 30, None), "TBILI": (0, 50, None), "AST": (0, 100000, 20000),
    "ALT": (0, 100000, 20000), "LDH": (0, 200000, 20000), "CRP": (0, 1000, None), "FERR": (0, 5000000, 500000),
    "FIBR": (0, 2000, None), "K": (1, 10, None), "IL6": (0, 10000000, 1000000),
}
# REDCap integer-coded fields (exports.md §D): allowed codes and what they are, as the reason shows them.
INTEGER_CODES: dict[str, tuple[range, str]] = {
    "hypotension": (range(0, 4), "one of the codes 0 none, 1 not requiring vasopressors, 2 one vasopressor, "
                                 "3 multiple vasopressors"),
    "oxygen": (range(0, 4), "one of the codes 0 none, 1 low-flow, 2 high-flow, 3 CPAP/BiPAP/intubation"),
    "consciousness": (range(0, 4), "one of the codes 0 alert, 1 wakes to voice, 2 wakes to touch only, 3 unarousable"),
    "seizure": (range(0, 3), "one of the codes 0 none, 1 rapidly resolving or EEG-only, 2 prolonged or repetitive"),
    "cerebral_edema": (range(0, 3), "one of the codes 0 none, 1 focal, 2 diffuse, posturing or papilledema"),
    "inv_crs_grade": (range(0, 6), "a grade 0–5"),
    "inv_icans_grade": (range(0, 6), "a grade 0–5"),
    "ae_grade": (range(1, 6), "a grade 1–5"),
}
# How a reason names a column the export leaves unnamed (exports.md §B: the blank first header cell).
LABELS = {FLOW_SAMPLE_COLUMN: "sample name"}
PERCENT_FIELDS = ("blasts_pct", "cd19_pos_pct", "cd22_pos_pct", "car22_pct", "car19_pct", "cd19b_pct",
                  "lvef_pct", "fs_pct", "spo2_pct", "bm_blasts_pct")
NON_NEGATIVE_FIELDS = ("cd22_abc", "cd3_abs_cells_ul", "cd19b_abs_cells_ul", "lloq_copies_per_ug", "gdna_input_ng",
                       "crcl_measured", "dose_mg", "car_cells_per_kg", "bsa_used_m2")
# Plausible, not impossible (warning): an enrollment is never rejected for them, since a rejected
# enrollment would hold every row of the participant.
PLAUSIBLE_FIELDS: dict[str, tuple[float, float, str]] = {
    "weight_kg": (8, 250, "kg"), "height_cm": (80, 230, "cm"), "bsa_used_m2": (0.3, 3.0, "m²")}
ICANS_SCORE = {"ICE": 10, "CAPD": 32}


# --- suite generation ---------------------------------------------------------------------------------------

def _expectation(kind: str, check: str, severity: str, reason: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs, "meta": {"check_name": check, "severity": severity, "reason": reason},
            "severity": GX_SEVERITY[severity]}


def _is_null(column: str) -> dict[str, Any]:
    return {"type": "nullity", "column": {"name": column}, "is_null": True}


def _compare(column: str, operator: str, value: Any) -> dict[str, Any]:
    return {"type": "comparison", "column": {"name": column}, "operator": operator, "parameter": value}


def _n(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _expected(f: Field) -> str:
    if f.kind == "code":
        return "one of the codes " + ", ".join(f"{k} ({v})" for k, v in (f.codes or {}).items())
    return KIND_TEXT.get(f.kind, "a value")


def _field_checks(source: Source, f: Field) -> list[dict[str, Any]]:
    """Presence, form, codes, ranges and dates of one field (its typed column and its `_text`)."""
    if f.raw in source.identifying:
        return []
    raw, name, text = LABELS.get(f.raw, f.raw), f.name, f"{f.name}_text"
    checks = []
    if f.required:
        reason = (f"{raw} is empty; it is required" if f.kind == "text" else
                  f"{raw} is required and must be {_expected(f)}; found {{{name}}}")
        checks.append(_expectation("expect_column_values_to_not_be_null", f"{name}_present", BLOCKING, reason,
                                   column=name))
    if f.kind in FORMAT_PATTERNS:
        # Only text that did not type can fail its pattern (typing uses the same patterns), so only those
        # rows are read: the same result at a fraction of the cost on large files.
        checks.append(_expectation(
            "expect_column_values_to_match_regex", f"{name}_format", BLOCKING,
            f"{raw} {{{name}}} is not {KIND_TEXT[f.kind]}", column=text, regex=FORMAT_PATTERNS[f.kind],
            row_condition=_is_null(name)))
    if f.kind in NOT_TYPED:
        checks.append(_expectation(
            "expect_column_values_to_not_match_regex", f"{name}_valid", BLOCKING, f"{raw} {{{name}}} {NOT_TYPED[f.kind]}",
            column=text, regex=FORMAT_PATTERNS[f.kind], row_condition=_is_null(name)))
    if f.kind == "code":
        checks.append(_expectation(
            "expect_column_values_to_be_in_set", f"{name}_code", BLOCKING,
            f"{raw} {{{name}}} is not {_expected(f)} (exports.md §D)", column=text, value_set=sorted(f.codes or {})))
    if name in INTEGER_CODES:
        allowed, meaning = INTEGER_CODES[name]
        checks.append(_expectation(
            "expect_column_values_to_be_in_set", f"{name}_code", BLOCKING,
            f"{raw} {{{name}}} is not {meaning} (exports.md §D)", column=name, value_set=list(allowed)))
    if name in PERCENT_FIELDS:
        checks.append(_expectation(
            "expect_column_values_to_be_between", f"{name}_range", BLOCKING,
            f"{raw} {{{name}}} is a percent: it must lie between 0 and 100", column=name, min_value=0, max_value=100))
    if name in NON_NEGATIVE_FIELDS:
        checks.append(_expectation(
            "expect_column_values_to_be_between", f"{name}_not_negative", BLOCKING,
            f"{raw} {{{name}}} is negative: it cannot be below 0", column=name, min_value=0))
    if name in PLAUSIBLE_FIELDS:
        low, high, unit = PLAUSIBLE_FIELDS[name]
        checks.append(_expectation(
            "expect_column_values_to_be_between", f"{name}_plausible", WARNING,
            f"{raw} {{{name}}} is outside the plausible {_n(low)}–{_n(high)} {unit}: loaded; check it in the EDC",
            column=name, min_value=low, max_value=high))
    if f.kind in DATE_KINDS:
        start, what = DATE_FROM.get(name, ("study_start", "the study start"))
        checks.append(_expectation(
            "expect_column_values_to_be_between", f"{name}_in_period", BLOCKING,
            f"{raw} {{{name}}} is before {what} ({{{start}}}) or after the file's export time ({{export_time}}): "
            "no record can be dated outside that period; correct the date at the source",
            column=name, min_value={"$PARAMETER": start}, max_value={"$PARAMETER": "export_time"}))
    return checks


def _source_checks(source: Source) -> list[dict[str, Any]]:
    """Checks of the participant, the record identity and those spanning fields or specific to a source."""
    raw = {f.name: LABELS.get(f.raw, f.raw) for f in source.fields}
    names = set(raw) | set(source.derived)
    checks = [_expectation(
        "expect_column_values_to_match_regex", "participant_id_pattern", BLOCKING,
        "participant ID {participant_id} does not match the trial's pattern {participant_id_pattern} (trial.md): "
        "not a trial participant; correct the ID at the source",
        column="participant_id", regex={"$PARAMETER": "participant_id_pattern"})]
    if source is not EDC_ENROLLMENT:
        checks.append(_expectation(
            "expect_column_values_to_be_in_set", "participant_enrolled", WARNING,
            "participant {participant_id} is not enrolled in the EDC (yet): the row is held and loads once the "
            "enrollment is exported", column="participant_id", value_set={"$PARAMETER": "enrolled_ids"}))
    # A lab file may carry several versions of one result (P then F): they are told apart by RESULTED_AT and
    # STATUS (exports.md "Versions"), so only a repeated version is ambiguous.
    identity = list(source.identity) + (["resulted_at", "status"] if source is LABS else [])
    shown = ", ".join(f"{raw[c]} {{{c}}}" for c in identity)
    duplicated = (f"the same record ({shown}) appears more than once in this file: which row is right? "
                  "Ask for a corrected export")
    checks.append(
        _expectation("expect_compound_columns_to_be_unique", "identity_unique", BLOCKING, duplicated,
                     column_list=identity) if len(identity) > 1 else
        _expectation("expect_column_values_to_be_unique", "identity_unique", BLOCKING, duplicated,
                     column=identity[0]))
    if source is LABS:
        checks += _lab_checks()
    if source.name.startswith("flow"):
        checks += [
            _expectation("expect_column_values_to_be_in_set", "specimen_code", BLOCKING,
                         "SPECIMEN {specimen} is not BM or PB (exports.md §B)", column="specimen",
                         value_set=["BM", "PB"]),
            _expectation("expect_column_pair_values_a_to_be_greater_than_b", "acquired_after_collected", WARNING,
                         "$DATE {acquired_on} (acquisition) is before COLLECTED {collected_on}: one of the two dates "
                         "is wrong; the study day uses COLLECTED", column_A="acquired_on", column_B="collected_on",
                         or_equal=True, ignore_row_if="either_value_is_missing"),
        ]
    if "qc" in names:
        checks.append(_expectation("expect_column_values_to_be_in_set", "qc_code", BLOCKING,
                                   f"{raw['qc']} {{qc}} is not PASS or FAIL (exports.md §B, §C)", column="qc",
                                   value_set=["FAIL", "PASS"]))
    if "events_leukemic" in names:
        checks.append(_expectation(
            "expect_column_pair_values_a_to_be_greater_than_b", "blasts_within_events", BLOCKING,
            "blast events {events_leukemic} exceed the viable CD45+ events {events_total}: impossible; check the "
            "gating", column_A="events_total", column_B="events_leukemic", or_equal=True,
            ignore_row_if="either_value_is_missing"))
    if "car22_count" in names:
        checks.append(_expectation(
            "expect_column_pair_values_a_to_be_greater_than_b", "car22_within_cd3", BLOCKING,
            "CAR22+ events {car22_count} exceed the CD3+ events {cd3_count}: impossible; check the gating",
            column_A="cd3_count", column_B="car22_count", or_equal=True, ignore_row_if="either_value_is_missing"))
    if source is QPCR:
        checks += [
            _expectation("expect_column_values_to_be_in_set", "target_code", BLOCKING,
                         "Target {target} is not CD22CAR or CD19CAR (exports.md §C)", column="target",
                         value_set=["CD19CAR", "CD22CAR"]),
            _expectation("expect_column_values_to_be_between", "copies_not_negative", BLOCKING,
                         "Copies/ug gDNA {orig_result} is negative: it cannot be below 0", column="copies_per_ug",
                         min_value=0),
            _expectation("expect_column_values_to_be_in_set", "copies_readable", WARNING,
                         "Copies/ug gDNA {orig_result} is neither a number nor BLQ, ND or <LLOQ (exports.md §C): "
                         "loaded without a value", column="result_kind", value_set=["BELOW_LLOQ", "VALUE"]),
        ]
    if source is EDC_CRS_DAILY:
        checks.append(_expectation("expect_column_values_to_be_between", "tmax_c_range", BLOCKING,
                                   "tmax_c {tmax_c} °C is outside 30–43 °C: impossible for a living patient; a typo?",
                                   column="tmax_c", min_value=30, max_value=43))
    if source is EDC_ICANS_DAILY:
        checks += [_expectation(
            "expect_column_values_to_be_between", f"score_{tool.lower()}_range", BLOCKING,
            f"score {{score}} is outside 0–{top}, the range of the {tool} tool (tool {{tool}})", column="score",
            min_value=0, max_value=top, row_condition=_compare("tool", "==", tool)) for tool, top in ICANS_SCORE.items()]
    if source is EDC_ADVERSE_EVENTS:
        checks.append(_expectation(
            "expect_column_pair_values_a_to_be_greater_than_b", "resolution_after_onset", WARNING,
            "resolution_date {resolution_date} is before onset_date {onset_date}: loaded; correct it in the EDC",
            column_A="resolution_date", column_B="onset_date", or_equal=True, ignore_row_if="either_value_is_missing"))
    if source is EDC_ENROLLMENT:
        checks.append(_expectation(
            "expect_column_values_to_be_between", "age_plausible", WARNING,
            "the age at consent is outside 0–100 years: check the date of birth and the consent date in the EDC "
            "(the age is not shown: it would reveal the date of birth)",
            column="age_at_consent_years", min_value=0, max_value=100))
    return checks


def _lab_checks() -> list[dict[str, Any]]:
    """Codes, units and the impossible or implausible values of each lab test (exports.md §A, derivations §1)."""
    checks = [
        _expectation("expect_column_values_to_be_in_set", "status_code", BLOCKING,
                     "STATUS {status} is not P (preliminary), F (final) or C (corrected) (exports.md §A)",
                     column="status", value_set=["C", "F", "P"]),
        _expectation("expect_column_values_to_be_in_set", "test_code_known", WARNING,
                     "TEST_CODE {test_code} is not one of the trial's 15 tests (exports.md §A): loaded, never graded",
                     column="test_code", value_set=list(KNOWN_TESTS)),
        _expectation("expect_column_values_to_be_in_set", "flag_code", WARNING,
                     "FLAG {flag} is not L, H, LL, HH or A (exports.md §A): loaded as sent", column="flag",
                     value_set=["A", "H", "HH", "L", "LL"]),
        _expectation("expect_column_values_to_be_in_set", "unit_known", BLOCKING,
                     "unit {orig_unit} is not accepted for {test_code!s} (derivations §1.1): a unit is never guessed; "
                     "ask the lab which unit it is", column="unit_known", value_set=[True]),
        _expectation("expect_column_pair_values_a_to_be_greater_than_b", "resulted_after_collected", BLOCKING,
                     "RESULTED_AT {resulted_at} is before COLLECTED_AT {collected_at}: a result cannot precede its "
                     "sample", column_A="resulted_at", column_B="collected_at", or_equal=True,
                     ignore_row_if="either_value_is_missing"),
    ]
    for code, (low, high, plausible) in LAB_LIMITS.items():
        unit = CANONICAL[code][0]
        sent = "(RESULT {orig_result}, UNITS {orig_unit})"
        checks.append(_expectation(
            "expect_column_values_to_be_between", f"{code.lower()}_range", BLOCKING,
            f"{code} {{value}} {unit} {sent} is impossible (outside {_n(low)}–{_n(high)} {unit}): a unit or typing "
            "error; ask the lab", column="value", min_value=low, max_value=high,
            row_condition=_compare("test_code", "==", code)))
        if plausible is not None:
            checks.append(_expectation(
                "expect_column_values_to_be_between", f"{code.lower()}_plausible", WARNING,
                f"{code} {{value}} {unit} {sent} is above the plausible {_n(plausible)} {unit} (rare, but reported "
                "after CAR T): loaded; confirm it with the lab", column="value", max_value=plausible,
                row_condition={"type": "and", "conditions": [_compare("test_code", "==", code),
                                                             _compare("value", "<=", high)]}))
    return checks


def suite_definition(source: Source) -> dict[str, Any]:
    """The suite of one source in GX's suite JSON format, as committed under expectations/<source>.json."""
    expectations = [c for f in source.fields for c in _field_checks(source, f)] + _source_checks(source)
    names = Counter(e["meta"]["check_name"] for e in expectations)
    if duplicated := [n for n, count in names.items() if count > 1]:
        raise ValueError(f"suite {source.name}: check names used twice: {duplicated}")
    for e in expectations:
        if withheld := _template_fields(e["meta"]["reason"]) & WITHHELD:
            raise ValueError(f"{source.name}.{e['meta']['check_name']}: a reason may not show {sorted(withheld)}")
    return {"name": source.name, "id": None,
            "notes": "Generated by `python -m car22.validation --write-suites` from car22/sources.py and the "
                     "check tables of car22/validation.py; do not edit by hand.",
            "meta": {"source": source.name, "staging_table": source.staging_table},
            "expectations": expectations}


def write_suites(folder: Path = SUITES_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for source in SOURCES:
        path = folder / f"{source.name}.json"
        path.write_text(json.dumps(suite_definition(source), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


def _template_fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


# --- results ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str        # the check_name
    column: str | None
    success: bool
    unexpected_count: int
    severity: str           # "blocking" | "warning"


@dataclass(frozen=True)
class RowFinding:
    row_number: int
    check_name: str
    reason: str
    severity: str


@dataclass
class FileValidation:
    suite: str
    outcomes: list[ExpectationOutcome]
    findings: list[RowFinding]   # one per failing row and expectation
    report_path: str | None      # the file's Data Docs page, relative to the reports dir


def _column_of(kwargs: dict[str, Any]) -> str | None:
    if "column" in kwargs:
        return kwargs["column"]
    if "column_A" in kwargs:
        return f"{kwargs['column_A']},{kwargs['column_B']}"
    return ",".join(kwargs.get("column_list", [])) or None


def _condition_columns(condition: dict[str, Any] | None, compared_only: bool = False) -> set[str]:
    if not condition:
        return set()
    if condition["type"] in ("and", "or"):
        return set().union(*(_condition_columns(c, compared_only) for c in condition["conditions"]))
    if compared_only and condition["type"] != "comparison":
        return set()
    return {condition["column"]["name"]}


def _show(value: Any, quoted: bool) -> str:
    """A value as a reason shows it: raw text quoted, numbers and dates plain, missing as (empty)."""
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value):
        return "(empty)"
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.strftime("%Y-%m-%d %H:%M" if (value.hour, value.minute) != (0, 0) else "%Y-%m-%d")
    if isinstance(value, str):
        return f"'{value}'" if quoted else value
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


class _Suite:
    """One source's suite as loaded for the run: the GX suite, its checks in order and how to feed it."""

    def __init__(self, gx: Any, definition: dict[str, Any]):
        self.name: str = definition["name"]
        self.checks: dict[str, dict[str, Any]] = {e["meta"]["check_name"]: e for e in definition["expectations"]}
        self.gx_suite = gx.ExpectationSuite(**definition)
        columns = {"row_number"}
        self.compared: set[str] = set()
        for e in definition["expectations"]:
            kwargs = e["kwargs"]
            columns.update(kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs)
            columns.update(kwargs.get("column_list", []))
            columns |= _condition_columns(kwargs.get("row_condition"))
            self.compared |= _condition_columns(kwargs.get("row_condition"), compared_only=True)
        self.columns = sorted(columns)
        # The `_text` columns read only where their field did not type (the `_format` and `_valid` checks).
        uses: dict[str, list[bool]] = {}
        for e in definition["expectations"]:
            column = e["kwargs"].get("column", "")
            if column.endswith("_text"):
                typed = column.removesuffix("_text")
                uses.setdefault(column, []).append(e["kwargs"].get("row_condition") == _is_null(typed))
        self.untyped_only = {column for column, conditioned in uses.items() if all(conditioned)}
        self.templates = {name: list(string.Formatter().parse(e["meta"]["reason"])) for name, e in self.checks.items()}

    def gx_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The columns the suite reads, in the dtypes GX's pandas engine handles vectorised."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"the validation frame of {self.name} lacks column(s) {missing}: build it from the "
                             "typed frame and every field's _text (docs/validation.md)")
        data = {}
        for name in self.columns:
            column = frame[name]
            if name in self.untyped_only:
                # GX hashes and copies every column it is given: text the checks never read is left out.
                column = column.where(frame[name.removesuffix("_text")].isna())
            if pd.api.types.is_datetime64_any_dtype(column.dtype):
                # datetime64[ns] spans 1677-2262: a typo beyond stays beyond the checked period once clipped.
                column = column.clip(*NS_RANGE).astype("datetime64[ns]")
            elif isinstance(column.dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_numeric_dtype(
                    column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
                column = column.astype("float64")
            elif pd.api.types.is_string_dtype(column.dtype):
                # Comparisons, sets, hashing and row filters work on the codes of a categorical column.
                column = column.astype("category")
            data[name] = column
        return pd.DataFrame(data, index=frame.index)

    def reasons(self, check: str, frame: pd.DataFrame, rows: list[int], parameters: dict[str, Any]) -> list[str]:
        """The check's reason for each row, its fields filled with the row's raw text or typed values."""
        template = self.templates[check]
        positions = pd.Index(frame["row_number"]).get_indexer(rows)
        values: dict[str, tuple[list[Any], bool]] = {}
        for _, name, _, conversion in template:
            if not name or name in values or name in parameters:
                continue
            if name in WITHHELD:
                raise ValueError(f"{self.name}.{check} may not show {name}")
            text = f"{name}_text"
            column = text if text in frame.columns else name
            values[name] = (frame[column].iloc[positions].tolist(), column == text and conversion != "s")
        out = []
        for i in range(len(rows)):
            parts = []
            for literal, name, _, conversion in template:
                parts.append(literal)
                if name in parameters:
                    parts.append(_show(parameters[name], False))
                elif name:
                    column, quoted = values[name]
                    parts.append(_show(column[i], quoted))
            out.append("".join(parts))
        return out


def _problem(item: Any) -> str | None:
    """The error an expectation raised (GX reports it per result or per metric), if any."""
    info = item.exception_info or {}
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, dict) and (value.get("raised_exception") or value.get("exception_message")):
            return str(value.get("exception_message"))
    return None


class Validator:
    """Loads the suites once per run (one GX context), validates frames, renders Data Docs."""

    def __init__(self, reports_dir: Path, protocol: Protocol, suites_dir: Path = SUITES_DIR):
        os.environ["GX_ANALYTICS_ENABLED"] = "false"
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        self.pages = Path(reports_dir) / DATA_DOCS
        self.pages.mkdir(parents=True, exist_ok=True)
        study = protocol["study"]
        self._parameters = {
            "participant_id_pattern": study["participant_id_pattern"],
            "study_start": pd.Timestamp(study["study_start_date"]),
            "cd19_car_earliest": pd.Timestamp(study["cd19_car_earliest_date"]),
        }
        self._context = gx.get_context(mode="ephemeral")
        self._context.config.analytics_enabled = False
        self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = self._context.data_sources.add_pandas("exports").add_dataframe_asset("export_rows")
        self._batches = asset.add_batch_definition_whole_dataframe("one_file")
        self._suites: dict[str, _Suite] = {}
        for source in SOURCES:
            suite = _Suite(gx, json.loads((suites_dir / f"{source.name}.json").read_text(encoding="utf-8")))
            self._context.suites.add(suite.gx_suite)
            self._suites[source.name] = suite

    def validate(self, source: Source, frame: pd.DataFrame, *, file_id: str, file_name: str,
                 export_time: datetime | None, run_time: datetime, enrolled_ids: set[str]) -> FileValidation:
        """Run the source's suite over the frame; findings name the rows (line numbers) and say why."""
        suite = self._suites[source.name]
        parameters = {**self._parameters, "export_time": pd.Timestamp(export_time or run_time),
                      "enrolled_ids": sorted(enrolled_ids)}
        batch = self._batches.get_batch(batch_parameters={"dataframe": suite.gx_frame(frame)})
        quick = batch.validate(suite.gx_suite, expectation_parameters=parameters, result_format="BOOLEAN_ONLY")
        failed = [self._checked(suite, item).expectation_config.meta["check_name"]
                  for item in quick.results if not item.success]
        unexpected: dict[str, list[int]] = {}
        if failed:
            again = self._gx.ExpectationSuite(name=f"{suite.name}.failed",
                                              expectations=[suite.checks[name] for name in failed])
            detail = batch.validate(again, expectation_parameters=parameters, result_format={
                "result_format": "COMPLETE", "unexpected_index_column_names": ["row_number"],
                "return_unexpected_index_query": False, "partial_unexpected_count": 0})
            for item in detail.results:
                self._checked(suite, item)
                unexpected[item.expectation_config.meta["check_name"]] = sorted(
                    int(hit["row_number"]) for hit in item.result.get("unexpected_index_list") or [])
        outcomes, findings = [], []
        for name, e in suite.checks.items():
            severity = e["meta"]["severity"]
            rows = unexpected.get(name, [])
            outcomes.append(ExpectationOutcome(name, _column_of(e["kwargs"]), name not in failed, len(rows), severity))
            findings += [RowFinding(row, name, reason, severity)
                         for row, reason in zip(rows, suite.reasons(name, frame, rows, parameters))]
        order = {name: i for i, name in enumerate(suite.checks)}
        findings.sort(key=lambda f: (f.row_number, order[f.check_name]))
        report = self._write_page(suite, file_id, file_name, export_time, run_time, len(frame), outcomes, findings,
                                  parameters)
        return FileValidation(suite.name, outcomes, findings, report)

    def _checked(self, suite: _Suite, item: Any) -> Any:
        """A check that could not run is a defect of the pipeline, never a data finding: stop loudly."""
        if (problem := _problem(item)) is not None:
            raise RuntimeError(f"check {item.expectation_config.meta['check_name']} of suite {suite.name} could not "
                               f"run: {problem}")
        return item

    # --- Data Docs ----------------------------------------------------------------------------------------

    def _write_page(self, suite: _Suite, file_id: str, file_name: str, export_time: datetime | None,
                    run_time: datetime, rows: int, outcomes: list[ExpectationOutcome], findings: list[RowFinding],
                    parameters: dict[str, Any]) -> str:
        """One static page per validated file: every expectation, its rule, severity, result and examples."""
        by_check: dict[str, list[RowFinding]] = {}
        for finding in findings:
            by_check.setdefault(finding.check_name, []).append(finding)
        lines = []
        for o in outcomes:
            shown = by_check.get(o.expectation, [])[:EXAMPLES]
            examples = "".join(f"<li>line {f.row_number}: {html.escape(f.reason)}</li>" for f in shown)
            more = o.unexpected_count - len(shown)
            if more > 0:
                examples += f"<li>… and {more} more rows</li>"
            state = "passed" if o.success else ("failed" if o.severity == BLOCKING else "warning")
            lines.append(
                f"<tr class='{state}'><td><code>{html.escape(o.expectation)}</code></td><td>{o.severity}</td>"
                f"<td>{html.escape(_describe(suite.checks[o.expectation], parameters))}</td>"
                f"<td>{state}</td><td class='n'>{o.unexpected_count}</td>"
                f"<td>{f'<ul>{examples}</ul>' if examples else ''}</td></tr>")
        rejected = len({f.row_number for f in findings if f.severity == BLOCKING})
        failed = Counter(o.severity for o in outcomes if not o.success)
        body = (
            f"<p><a href='index.html'>← all files</a></p><h1>{html.escape(file_name)}</h1>"
            f"<p>Source <b>{html.escape(suite.name)}</b> · suite <code>expectations/{html.escape(suite.name)}.json"
            f"</code> · file id <code>{html.escape(file_id)}</code> · exported "
            f"{html.escape(_show(export_time, False) if export_time else 'unknown (run time used)')} · validated "
            f"{html.escape(_show(run_time, False))}</p>"
            f"<p class='summary'>{rows} rows validated · {len(outcomes)} expectations · "
            f"{failed[BLOCKING]} blocking not met ({rejected} rows rejected) · {failed[WARNING]} warnings</p>"
            "<table><tr><th>check</th><th>severity</th><th>rule</th><th>result</th><th>rows</th>"
            f"<th>examples (line in the file)</th></tr>{''.join(lines)}</table>")
        name = re.sub(r"[^A-Za-z0-9._-]", "_", file_id) + ".html"
        write_whole(self.pages / name, _page(f"Validation of {file_name}", body).encode("utf-8"))
        return f"{DATA_DOCS}/{name}"

    def write_index(self, files: pd.DataFrame) -> Path:
        """Rebuild the Data Docs index from ops data: `files` has file_id, file_name, source, status, received_at,
        run_id, rows_read, rows_loaded, rows_rejected, reason, report_path (one row per file ever received).
        Returns the index path."""
        rows = []
        ordered = files.sort_values(["received_at", "file_name", "file_id"], ascending=[False, True, True])
        for f in ordered.itertuples(index=False):
            name = html.escape(str(f.file_name))
            if isinstance(f.report_path, str) and f.report_path:
                target = os.path.relpath(self.pages.parent / f.report_path, self.pages)
                name = f"<a href='{html.escape(Path(target).as_posix())}'>{name}</a>"
            cells = [name] + [html.escape(_show(v, False)) if v is not None and not pd.isna(v) else "" for v in (
                f.source, f.status, f.received_at, f.run_id, f.rows_read, f.rows_loaded, f.rows_rejected, f.reason)]
            rows.append(f"<tr class='{html.escape(str(f.status))}'>" + "".join(
                f"<td{' class=n' if 5 <= i <= 7 else ''}>{c}</td>" for i, c in enumerate(cells)) + "</tr>")
        counts = ", ".join(f"{n} {html.escape(str(s))}" for s, n in sorted(Counter(files["status"]).items()))
        body = ("<h1>car22 Data Docs: the validation of every export</h1>"
                f"<p class='summary'>{len(files)} files received: {counts or 'none yet'}. A file name links to its "
                "validation page; duplicates and quarantined files were never validated.</p>"
                "<table><tr><th>file</th><th>source</th><th>status</th><th>received</th><th>run</th>"
                "<th>rows read</th><th>loaded</th><th>rejected</th><th>reason</th></tr>"
                f"{''.join(rows)}</table>")
        index = self.pages / "index.html"
        write_whole(index, _page("car22 Data Docs", body).encode("utf-8"))
        return index


EXAMPLES = 10


def _describe(e: dict[str, Any], parameters: dict[str, Any]) -> str:
    """The rule of an expectation in a line, parameters filled in (the enrolled set by its size)."""
    kwargs = e["kwargs"]

    def value(v: Any) -> str:
        if isinstance(v, dict) and "$PARAMETER" in v:
            resolved = parameters[v["$PARAMETER"]]
            return f"{len(resolved)} enrolled participants" if isinstance(resolved, list) else _show(resolved, False)
        return ", ".join(map(str, v)) if isinstance(v, list) else _show(v, False)

    column = kwargs.get("column")
    rule = {
        "expect_column_values_to_not_be_null": lambda: f"{column} is not empty and parses",
        "expect_column_values_to_match_regex": lambda: f"{column} matches {value(kwargs['regex'])}",
        "expect_column_values_to_not_match_regex": lambda: f"{column} does not match {value(kwargs['regex'])}",
        "expect_column_values_to_be_in_set": lambda: f"{column} in {{{value(kwargs['value_set'])}}}",
        "expect_column_values_to_be_between": lambda: " ≤ ".join(
            p for p in (value(kwargs["min_value"]) if kwargs.get("min_value") is not None else "",
                        column, value(kwargs["max_value"]) if kwargs.get("max_value") is not None else "") if p),
        "expect_column_pair_values_a_to_be_greater_than_b": lambda: f"{kwargs['column_A']} ≥ {kwargs['column_B']}",
        "expect_compound_columns_to_be_unique": lambda: f"({', '.join(kwargs['column_list'])}) unique in the file",
        "expect_column_values_to_be_unique": lambda: f"{column} unique in the file",
    }[e["type"]]()
    if condition := kwargs.get("row_condition"):
        rule += f", on rows where {_condition_text(condition)}"
    return rule


def _condition_text(c: dict[str, Any]) -> str:
    if c["type"] in ("and", "or"):
        return f" {c['type']} ".join(_condition_text(x) for x in c["conditions"])
    if c["type"] == "nullity":
        return f"{c['column']['name']} is {'empty' if c['is_null'] else 'not empty'}"
    parameter = c["parameter"]
    return f"{c['column']['name']} {c['operator']} {repr(parameter) if isinstance(parameter, str) else parameter}"


_STYLE = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f0f0f0}td.n{text-align:right}
tr.failed td,tr.quarantined td{background:#fde2e2}tr.warning td,tr.partially_loaded td{background:#fff4d6}
tr.duplicate td{color:#777}code{background:#f4f4f4}ul{margin:0;padding-left:1.2em}.summary{font-weight:600}"""


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}</body></html>\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m car22.validation",
                                     description="Regenerate the suites under expectations/ from the source "
                                                 "descriptions and the check tables.")
    parser.add_argument("--write-suites", action="store_true", help="write expectations/<source>.json")
    args = parser.parse_args(argv)
    if not args.write_suites:
        parser.print_help()
        return 2
    for path in write_suites(SUITES_DIR):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

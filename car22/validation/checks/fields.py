"""The checks every field gets, by its kind and its name: presence, form, codes, ranges and dates
(exports.md, derivations §1). Each table below is data; `field_checks` turns a field into expectations.

An expectation is GX suite JSON: its `type` and `kwargs`, and in `meta` the `check_name`, the `severity`
(blocking: failing rows are rejected; warning: rows load, the finding is recorded) and the `reason` a data
manager reads, a template whose `{column}` fields are filled with the row's values.
"""
from __future__ import annotations

from typing import Any

from car22.intake.sources import FLOW_SAMPLE_COLUMN, FORMAT_PATTERNS, Field, Source

BLOCKING, WARNING = "blocking", "warning"
GX_SEVERITY = {BLOCKING: "critical", WARNING: "warning"}

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

def expectation(kind: str, check: str, severity: str, reason: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs, "meta": {"check_name": check, "severity": severity, "reason": reason},
            "severity": GX_SEVERITY[severity]}


def is_null(column: str) -> dict[str, Any]:
    return {"type": "nullity", "column": {"name": column}, "is_null": True}


def compare(column: str, operator: str, value: Any) -> dict[str, Any]:
    return {"type": "comparison", "column": {"name": column}, "operator": operator, "parameter": value}


def plain_number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _expected(f: Field) -> str:
    if f.kind == "code":
        return "one of the codes " + ", ".join(f"{k} ({v})" for k, v in (f.codes or {}).items())
    return KIND_TEXT.get(f.kind, "a value")


def field_checks(source: Source, f: Field) -> list[dict[str, Any]]:
    """Presence, form, codes, ranges and dates of one field (its typed column and its `_text`)."""
    if f.raw in source.identifying:
        return []
    raw, name, text = LABELS.get(f.raw, f.raw), f.name, f"{f.name}_text"
    checks = []
    if f.required:
        reason = (f"{raw} is empty; it is required" if f.kind == "text" else
                  f"{raw} is required and must be {_expected(f)}; found {{{name}}}")
        checks.append(expectation("expect_column_values_to_not_be_null", f"{name}_present", BLOCKING, reason,
                                   column=name))
    if f.kind in FORMAT_PATTERNS:
        # Only text that did not type can fail its pattern (typing uses the same patterns), so only those
        # rows are read: the same result at a fraction of the cost on large files.
        checks.append(expectation(
            "expect_column_values_to_match_regex", f"{name}_format", BLOCKING,
            f"{raw} {{{name}}} is not {KIND_TEXT[f.kind]}", column=text, regex=FORMAT_PATTERNS[f.kind],
            row_condition=is_null(name)))
    if f.kind in NOT_TYPED:
        checks.append(expectation(
            "expect_column_values_to_not_match_regex", f"{name}_valid", BLOCKING,
            f"{raw} {{{name}}} {NOT_TYPED[f.kind]}",
            column=text, regex=FORMAT_PATTERNS[f.kind], row_condition=is_null(name)))
    if f.kind == "code":
        checks.append(expectation(
            "expect_column_values_to_be_in_set", f"{name}_code", BLOCKING,
            f"{raw} {{{name}}} is not {_expected(f)} (exports.md §D)", column=text, value_set=sorted(f.codes or {})))
    if name in INTEGER_CODES:
        allowed, meaning = INTEGER_CODES[name]
        checks.append(expectation(
            "expect_column_values_to_be_in_set", f"{name}_code", BLOCKING,
            f"{raw} {{{name}}} is not {meaning} (exports.md §D)", column=name, value_set=list(allowed)))
    if name in PERCENT_FIELDS:
        checks.append(expectation(
            "expect_column_values_to_be_between", f"{name}_range", BLOCKING,
            f"{raw} {{{name}}} is a percent: it must lie between 0 and 100", column=name, min_value=0, max_value=100))
    if name in NON_NEGATIVE_FIELDS:
        checks.append(expectation(
            "expect_column_values_to_be_between", f"{name}_not_negative", BLOCKING,
            f"{raw} {{{name}}} is negative: it cannot be below 0", column=name, min_value=0))
    if name in PLAUSIBLE_FIELDS:
        low, high, unit = PLAUSIBLE_FIELDS[name]
        checks.append(expectation(
            "expect_column_values_to_be_between", f"{name}_plausible", WARNING,
            f"{raw} {{{name}}} is outside the plausible {plain_number(low)}–{plain_number(high)} {unit}: "
            "loaded; check it in the EDC",
            column=name, min_value=low, max_value=high))
    if f.kind in DATE_KINDS:
        start, what = DATE_FROM.get(name, ("study_start", "the study start"))
        checks.append(expectation(
            "expect_column_values_to_be_between", f"{name}_in_period", BLOCKING,
            f"{raw} {{{name}}} is before {what} ({{{start}}}) or after the file's export time ({{export_time}}): "
            "no record can be dated outside that period; correct the date at the source",
            column=name, min_value={"$PARAMETER": start}, max_value={"$PARAMETER": "export_time"}))
    return checks

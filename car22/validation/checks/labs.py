"""The lab checks (exports.md §A, derivations §1): codes, units, and per test the values impossible for a
living patient (blocking) and those beyond the usual range that are still reported after CAR T (warning)."""
from __future__ import annotations

from typing import Any

from car22.intake.units import CANONICAL
from car22.validation.checks.fields import (
    BLOCKING,
    WARNING,
    compare,
    expectation,
    plain_number,
)

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


def lab_checks() -> list[dict[str, Any]]:
    checks = [
        expectation("expect_column_values_to_be_in_set", "status_code", BLOCKING,
                     "STATUS {status} is not P (preliminary), F (final) or C (corrected) (exports.md §A)",
                     column="status", value_set=["C", "F", "P"]),
        expectation("expect_column_values_to_be_in_set", "test_code_known", WARNING,
                     "TEST_CODE {test_code} is not one of the trial's 15 tests (exports.md §A): loaded, never graded",
                     column="test_code", value_set=list(KNOWN_TESTS)),
        expectation("expect_column_values_to_be_in_set", "flag_code", WARNING,
                     "FLAG {flag} is not L, H, LL, HH or A (exports.md §A): loaded as sent", column="flag",
                     value_set=["A", "H", "HH", "L", "LL"]),
        expectation("expect_column_values_to_be_in_set", "unit_known", BLOCKING,
                     "unit {orig_unit} is not accepted for {test_code!s} (derivations §1.1): a unit is never guessed; "
                     "ask the lab which unit it is", column="unit_known", value_set=[True]),
        expectation("expect_column_pair_values_a_to_be_greater_than_b", "resulted_after_collected", BLOCKING,
                     "RESULTED_AT {resulted_at} is before COLLECTED_AT {collected_at}: a result cannot precede its "
                     "sample", column_A="resulted_at", column_B="collected_at", or_equal=True,
                     ignore_row_if="either_value_is_missing"),
    ]
    for code, (low, high, plausible) in LAB_LIMITS.items():
        unit = CANONICAL[code][0]
        sent = "(RESULT {orig_result}, UNITS {orig_unit})"
        checks.append(expectation(
            "expect_column_values_to_be_between", f"{code.lower()}_range", BLOCKING,
            f"{code} {{value}} {unit} {sent} is impossible (outside {plain_number(low)}–{plain_number(high)} "
            f"{unit}): a unit or typing error; ask the lab", column="value", min_value=low, max_value=high,
            row_condition=compare("test_code", "==", code)))
        if plausible is not None:
            checks.append(expectation(
                "expect_column_values_to_be_between", f"{code.lower()}_plausible", WARNING,
                f"{code} {{value}} {unit} {sent} is above the plausible {plain_number(plausible)} {unit} (rare, "
                "but reported after CAR T): loaded; confirm it with the lab", column="value", max_value=plausible,
                row_condition={"type": "and", "conditions": [compare("test_code", "==", code),
                                                             compare("value", "<=", high)]}))
    return checks

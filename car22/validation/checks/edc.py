"""The EDC instruments' own checks (exports.md §D), beyond the codes and ranges of their fields
(car22.validation.checks.fields): impossible temperatures and scores, dates in the wrong order, and an age
that points at a wrong date of birth (never shown: it would reveal the date)."""
from __future__ import annotations

from typing import Any

from car22.validation.checks.fields import BLOCKING, WARNING, compare, expectation

ICANS_SCORE = {"ICE": 10, "CAPD": 32}

CRS_DAILY_CHECKS: list[dict[str, Any]] = [
    expectation("expect_column_values_to_be_between", "tmax_c_range", BLOCKING,
                "tmax_c {tmax_c} °C is outside 30–43 °C: impossible for a living patient; a typo?",
                column="tmax_c", min_value=30, max_value=43),
]

ICANS_DAILY_CHECKS: list[dict[str, Any]] = [
    expectation("expect_column_values_to_be_between", f"score_{tool.lower()}_range", BLOCKING,
                f"score {{score}} is outside 0–{top}, the range of the {tool} tool (tool {{tool}})", column="score",
                min_value=0, max_value=top, row_condition=compare("tool", "==", tool))
    for tool, top in ICANS_SCORE.items()]

ADVERSE_EVENTS_CHECKS: list[dict[str, Any]] = [
    expectation("expect_column_pair_values_a_to_be_greater_than_b", "resolution_after_onset", WARNING,
                "resolution_date {resolution_date} is before onset_date {onset_date}: loaded; correct it in the EDC",
                column_A="resolution_date", column_B="onset_date", or_equal=True,
                ignore_row_if="either_value_is_missing"),
]

ENROLLMENT_CHECKS: list[dict[str, Any]] = [
    expectation("expect_column_values_to_be_between", "age_plausible", WARNING,
                "the age at consent is outside 0–100 years: check the date of birth and the consent date in the EDC "
                "(the age is not shown: it would reveal the date of birth)",
                column="age_at_consent_years", min_value=0, max_value=100),
]

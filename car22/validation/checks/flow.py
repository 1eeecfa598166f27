"""The FlowJo panels' checks (exports.md §B): specimen and QC codes, the acquisition after the collection,
and gating that cannot be (a sub-population larger than its parent)."""
from __future__ import annotations

from typing import Any

from car22.validation.checks.fields import BLOCKING, WARNING, expectation

_BOTH_PANELS = [
    expectation("expect_column_values_to_be_in_set", "specimen_code", BLOCKING,
                "SPECIMEN {specimen} is not BM or PB (exports.md §B)", column="specimen", value_set=["BM", "PB"]),
    expectation("expect_column_pair_values_a_to_be_greater_than_b", "acquired_after_collected", WARNING,
                "$DATE {acquired_on} (acquisition) is before COLLECTED {collected_on}: one of the two dates "
                "is wrong; the study day uses COLLECTED", column_A="acquired_on", column_B="collected_on",
                or_equal=True, ignore_row_if="either_value_is_missing"),
    expectation("expect_column_values_to_be_in_set", "qc_code", BLOCKING,
                "QC {qc} is not PASS or FAIL (exports.md §B, §C)", column="qc", value_set=["FAIL", "PASS"]),
]

MRD_PANEL_CHECKS: list[dict[str, Any]] = _BOTH_PANELS + [
    expectation("expect_column_pair_values_a_to_be_greater_than_b", "blasts_within_events", BLOCKING,
                "blast events {events_leukemic} exceed the viable CD45+ events {events_total}: impossible; check "
                "the gating", column_A="events_total", column_B="events_leukemic", or_equal=True,
                ignore_row_if="either_value_is_missing"),
]

CAR_PANEL_CHECKS: list[dict[str, Any]] = _BOTH_PANELS + [
    expectation("expect_column_pair_values_a_to_be_greater_than_b", "car22_within_cd3", BLOCKING,
                "CAR22+ events {car22_count} exceed the CD3+ events {cd3_count}: impossible; check the gating",
                column_A="cd3_count", column_B="car22_count", or_equal=True, ignore_row_if="either_value_is_missing"),
]

"""The qPCR checks (exports.md §C): QC and target codes, copies that cannot be negative, and results that
are neither a number nor a below-limit word."""
from __future__ import annotations

from typing import Any

from car22.validation.checks.fields import BLOCKING, WARNING, expectation

QPCR_CHECKS: list[dict[str, Any]] = [
    expectation("expect_column_values_to_be_in_set", "qc_code", BLOCKING,
                "QC {qc} is not PASS or FAIL (exports.md §B, §C)", column="qc", value_set=["FAIL", "PASS"]),
    expectation("expect_column_values_to_be_in_set", "target_code", BLOCKING,
                "Target {target} is not CD22CAR or CD19CAR (exports.md §C)", column="target",
                value_set=["CD19CAR", "CD22CAR"]),
    expectation("expect_column_values_to_be_between", "copies_not_negative", BLOCKING,
                "Copies/ug gDNA {orig_result} is negative: it cannot be below 0", column="copies_per_ug",
                min_value=0),
    expectation("expect_column_values_to_be_in_set", "copies_readable", WARNING,
                "Copies/ug gDNA {orig_result} is neither a number nor BLQ, ND or <LLOQ (exports.md §C): "
                "loaded without a value", column="result_kind", value_set=["BELOW_LLOQ", "VALUE"]),
]

"""The data manager decisions' checks (exports.md §E): a known issue, ACCEPT or REOPEN, a reason and a user.
The presence of reason and user and the form of decided_at are the field checks (checks/fields.py)."""
from __future__ import annotations

from typing import Any

from car22.validation.checks.fields import BLOCKING, expectation

DECISIONS = ("ACCEPT", "REOPEN")

DECISION_CHECKS: list[dict[str, Any]] = [
    expectation("expect_column_values_to_be_in_set", "decision_code", BLOCKING,
                "decision {decision} is not ACCEPT or REOPEN (exports.md §E)", column="decision",
                value_set=list(DECISIONS)),
    expectation("expect_column_values_to_be_in_set", "issue_known", BLOCKING,
                "issue_id {issue_id} names no data issue of the warehouse: copy it from `car22 data-issues` "
                "(exports.md §E)", column="issue_id", value_set={"$PARAMETER": "issue_ids"}),
]

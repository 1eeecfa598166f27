"""The checks every source's rows get as records: a trial participant, enrolled (sources of participants'
records), and one row per record identity in the file (trial.md, exports.md "Arrival rules" and "Versions")."""
from __future__ import annotations

from typing import Any

from car22.intake.sources import EDC_ENROLLMENT, LABS, Source
from car22.validation.checks.fields import BLOCKING, LABELS, WARNING, expectation


def record_checks(source: Source) -> list[dict[str, Any]]:
    raw = {f.name: LABELS.get(f.raw, f.raw) for f in source.fields}
    checks = [] if not source.participant_records else [expectation(
        "expect_column_values_to_match_regex", "participant_id_pattern", BLOCKING,
        "participant ID {participant_id} does not match the trial's pattern {participant_id_pattern} (trial.md): "
        "not a trial participant; correct the ID at the source",
        column="participant_id", regex={"$PARAMETER": "participant_id_pattern"})]
    if source is not EDC_ENROLLMENT and source.participant_records:
        checks.append(expectation(
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
        expectation("expect_compound_columns_to_be_unique", "identity_unique", BLOCKING, duplicated,
                    column_list=identity) if len(identity) > 1 else
        expectation("expect_column_values_to_be_unique", "identity_unique", BLOCKING, duplicated,
                    column=identity[0]))
    return checks

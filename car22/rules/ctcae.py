"""CTCAE v5.0 lab grades, derivations §4.3: the criteria are data (warehouse/ctcae_criteria.csv, one row per
term, grade and criterion, translated from the reference's admiral criteria into canonical units), the
grading is one set-based SQL model (warehouse/mart/lab_toxicity.sql) that runs over every lab result."""
from __future__ import annotations

import duckdb
import pandas as pd

from car22.config import Protocol
from car22.sql import SQL_DIR, comment_table, run_sql_file

CRITERIA = SQL_DIR / "ctcae_criteria.csv"

CRITERIA_COMMENTS = {
    "": "CTCAE v5.0 lab criteria as data (warehouse/ctcae_criteria.csv), canonical units (derivations §1.1, §4.3).",
    "term": "CTCAE term.",
    "test_code": "Lab test graded by the term.",
    "direction": "L (decrease) or H (increase).",
    "grade": "Grade the criterion gives.",
    "basis": "ABSOLUTE (factor is the limit) | ULN | LLN | BASELINE (factor x the value) | PCHG (% change from "
             "baseline, below the LLN).",
    "operator": "Comparison of the value to the limit.",
    "factor": "Limit or multiple.",
    "baseline": "any | normal (baseline <= ULN or unknown) | abnormal (baseline > ULN): when the criterion applies.",
    "required": "yes: a missing limit leaves the grade undecided (NULL); no: the criterion is simply not met.",
    "source_text": "The CTCAE text the row translates.",
}
TOXICITY_COMMENTS = {
    "": "CTCAE v5.0 grade of every lab result from the first lymphodepletion dose on (derivations §4.3).",
    "participant_id": "Participant.",
    "collected_at": "Collection time.",
    "study_day": "Collection date - infusion date.",
    "test_code": "Lab test.",
    "ctcae_term": "CTCAE term graded.",
    "value": "Value graded, canonical units: for a censored result its limit, for a below-LLOQ result 0 "
             "(derivations §1.2).",
    "unit": "Canonical unit.",
    "grade": "0-4; NULL when it cannot be decided (null_reason).",
    "grade_basis": "ABSOLUTE | ULN | LLN | BASELINE: the criterion that gave the grade (NULL for grade 0).",
    "null_reason": "Why the grade is NULL: a missing reference limit, or a censored result that meets no criterion "
                   "(or is censored in the wrong direction).",
    "ctcae_version": "CTCAE version.",
    "comparator": "< or > for censored results.",
    "below_lloq": "TRUE for a BLQ/ND/<LLOQ result: graded as 0 (every decrease criterion met, no increase one).",
    "baseline_value": "Last value collected before the day of the first lymphodepletion dose.",
    "baseline_abnormal": "Baseline above the baseline result's own ULN (none: the graded result's ULN): "
                         "AST/ALT/bilirubin graded on baseline multiples.",
    "lln": "Lower limit of normal of the result (canonical unit).",
    "uln": "Upper limit of normal of the result (canonical unit).",
    "accession": "Accession of the result (core.lab_results identity with test_code).",
}


def build(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    criteria = pd.read_csv(CRITERIA, dtype={"required": str, "baseline": str})
    con.register("criteria_frame", criteria)
    try:
        con.execute("CREATE OR REPLACE TABLE mart.ctcae_criteria AS SELECT * FROM criteria_frame")
    finally:
        con.unregister("criteria_frame")
    comment_table(con, "mart.ctcae_criteria", CRITERIA_COMMENTS)
    run_sql_file(con, "mart/lab_toxicity.sql")
    comment_table(con, "mart.lab_toxicity", TOXICITY_COMMENTS)

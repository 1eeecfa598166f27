"""The validation suites (docs/validation.md): every check, broken by a handmade row, names exactly that row.

Each source gets one small frame: line 2 is a clean record, every later line is a copy of it with a few
fields changed (a case). The frame is validated once per source, and each case asserts the findings on its
own lines: check, severity and reason. Every record gets its own identity unless the case sets it.
"""
from __future__ import annotations

import json
import re
import socket
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from car22.config import load_protocol
from car22.intake.sources import BY_NAME, FLOW_SAMPLE_COLUMN, SOURCES, type_frame
from car22.loading.load import validation_frame
from car22.validation.runner import Validator
from car22.validation.suites import (
    SUITES_DIR,
    WITHHELD,
    suite_definition,
    template_fields,
)

EXPORTED = datetime(2026, 4, 30, 2, 15)
ENROLLED = {"CD22-001", "CD22-002"}
DOB = "2016-02-10"
B, W = "blocking", "warning"

CLEAN: dict[str, dict[str, str]] = {
    "labs": {"SUBJECT_ID": "CD22-001", "ACCESSION": "A", "COLLECTED_AT": "2026-03-01 08:00",
             "RESULTED_AT": "2026-03-01 10:00", "TEST_CODE": "ANC", "LOINC": "751-8", "TEST_NAME": "Neutrophils",
             "RESULT": "0.4", "UNITS": "K/uL", "REF_LOW": "1.5", "REF_HIGH": "8.0", "FLAG": "L", "STATUS": "F"},
    "flow_mrd": {FLOW_SAMPLE_COLUMN: "", "$DATE": "07-APR-2026", "SUBJECT": "CD22-001", "COLLECTED": "2026-04-06",
                 "SPECIMEN": "BM", "QC": "PASS", "CD45+/Viable | Count": "4.43E+05", "CD45+/Viable/Blasts | Count": "12",
                 "CD45+/Viable/Blasts | Freq. of Parent (%)": "0.0027",
                 "CD45+/Viable/Blasts/CD19+ | Freq. of Parent (%)": "90",
                 "CD45+/Viable/Blasts/CD22+ | Freq. of Parent (%)": "95", "CD22_ABC": "3000"},
    "flow_car": {FLOW_SAMPLE_COLUMN: "", "$DATE": "09-APR-2026", "SUBJECT": "CD22-001", "COLLECTED": "2026-04-08",
                 "SPECIMEN": "PB", "QC": "PASS", "Lymphocytes/Single Cells/Live/CD3+ | Count": "12000", "CD3_ABS": "800",
                 "Lymphocytes/Single Cells/Live/CD3+/CAR22+ | Freq. of Parent (%)": "10",
                 "Lymphocytes/Single Cells/Live/CD3+/CAR22+ | Count": "1200",
                 "Lymphocytes/Single Cells/Live/CD3+/CAR19+ | Freq. of Parent (%)": "0.5",
                 "Lymphocytes/Single Cells/Live/CD19+ B | Freq. of Parent (%)": "0.1", "CD19B_ABS": "1"},
    "qpcr": {"Subject": "CD22-001", "Sample ID": "Q", "Collection Date": "04/13/2026", "Specimen": "PB",
             "Target": "CD22CAR", "Copies/ug gDNA": "15234.5", "LLOQ (copies/ug)": "50", "gDNA input (ng)": "100",
             "Run ID": "R1", "QC": "PASS"},
    "edc_enrollment": {"record_id": "CD22-003", "consent_date": "2026-02-10", "dob": DOB, "sex": "1",
                       "weight_kg": "30", "height_cm": "130", "cd19_product": "1", "cd19_infusion_date": "2025-11-01",
                       "hsct_eligible": "0"},
    "edc_eligibility": {"record_id": "CD22-001", "lvef_pct": "60", "fs_pct": "35", "spo2_pct": "98",
                        "crcl_measured": "90", "eligible_investigator": "1"},
    "edc_treatment": {"record_id": "CD22-001", "agent": "1", "admin_date": "2026-02-20", "dose_mg": "30",
                      "car_cells_per_kg": "", "bsa_used_m2": "1.0"},
    "edc_crs_daily": {"record_id": "CD22-001", "assess_date": "2026-04-03", "tmax_c": "38.4", "hypotension": "1",
                      "vasopressin": "0", "oxygen": "2", "tocilizumab": "1", "steroids": "0", "inv_crs_grade": "2"},
    "edc_icans_daily": {"record_id": "CD22-001", "assess_date": "2026-04-03", "tool": "1", "score": "10",
                        "unable_to_assess": "0", "consciousness": "0", "seizure": "0", "motor_weakness": "0",
                        "cerebral_edema": "0", "inv_icans_grade": "0"},
    "edc_adverse_events": {"record_id": "CD22-001", "ae_term": "Rash maculo-papular", "ae_grade": "2",
                           "onset_date": "2026-03-01", "resolution_date": "2026-03-10", "serious": "0", "related": "1"},
    "edc_disease_assessment": {"record_id": "CD22-001", "assess_date": "2026-03-28", "bm_blasts_pct": "0.5",
                               "cns_status": "1", "extramedullary": "0", "inv_response": "1"},
    "edc_followup": {"record_id": "CD22-001", "last_contact_date": "2026-04-20", "vital_status": "1",
                     "death_date": "", "death_cause": "", "hsct_date": "", "next_therapy_date": "",
                     "off_study_date": "", },
    "dm_decisions": {"issue_id": "", "decision": "ACCEPT", "reason": "sent by mistake: not a trial sample",
                     "decided_by": "AB", "decided_at": "2026-04-29 10:00"},
}
# The data issues a decision may name in these cases (the warehouse's, at run time).
ISSUES = frozenset(f"{n:016x}" for n in range(2, 400)) | {"00000000000000aa"}


def record(source: str, line: int, changes: dict[str, str]) -> dict[str, str]:
    """The clean record of a source at a line, with its own identity, then the case's changes."""
    row = {c: "" for c in BY_NAME[source].raw_columns} | CLEAN[source]
    if source == "labs":
        row["ACCESSION"] = f"A{line}"
    elif source.startswith("flow"):
        row[FLOW_SAMPLE_COLUMN] = f"CD22-001_{row['SPECIMEN']}_L{line}.fcs"
    elif source == "qpcr":
        row["Sample ID"] = f"Q{line}"
    elif source == "dm_decisions":
        row["issue_id"] = f"{line:016x}"
    elif "redcap_repeat_instance" not in BY_NAME[source].optional_raw:
        row.update({"redcap_event_name": "treatment_arm_1", "redcap_repeat_instrument": source.removeprefix("edc_"),
                    "redcap_repeat_instance": str(line)})
    else:
        row["redcap_event_name"] = f"visit_{line}_arm_1"
    return row | changes


def export_text(source: str) -> tuple[str, str]:
    """The header and the clean line of a source's CSV export (tests/validation/test_fuzz.py mutates them)."""
    columns = [c for c in BY_NAME[source].raw_columns if c not in BY_NAME[source].optional_raw]
    row = record(source, 2, {})
    return ",".join("" if c == FLOW_SAMPLE_COLUMN else c for c in columns), ",".join(row[c] for c in columns)


LAB, LAB_OK = export_text("labs")
MRD, MRD_OK = export_text("flow_mrd")
CAR, CAR_OK = export_text("flow_car")
QPCR, QPCR_OK = export_text("qpcr")
ENROLL, ENROLL_OK = export_text("edc_enrollment")
CRS, CRS_OK = export_text("edc_crs_daily")
ICANS, ICANS_OK = export_text("edc_icans_daily")


def frame_of(source: str, rows: list[dict[str, str]], first_line: int = 2) -> pd.DataFrame:
    """The validation frame the ingestion builds (car22.loading.load.validation_frame) from raw text rows."""
    raw = pd.DataFrame(rows, index=range(first_line, first_line + len(rows)), dtype="str")
    return validation_frame(BY_NAME[source], raw, type_frame(BY_NAME[source], raw))


def case(source: str, check: str, changes: dict[str, str] | list[dict[str, str]], *expected: tuple) -> tuple:
    """A case: its source, the check it targets, the changed fields (one dict per line) and, on each of its
    lines, exactly the findings expected: (check, severity) or (check, severity, reason)."""
    return source, check, changes if isinstance(changes, list) else [changes], expected or ((check, B),)


BAD_FORM = {"date": "2026/03/01", "datetime": "03/01/2026 08:00", "date_fcs": "2026-04-07", "date_us": "2026-04-13",
            "int": "1.5", "float": "1,5", "count": "-5", "bool": "yes"}
NOT_REAL = {"date": "2026-02-30", "datetime": "2026-02-30 08:00", "date_fcs": "30-FEB-2026", "date_us": "02/30/2026",
            "count": "12.5"}
BEFORE_STUDY = {"date": "2024-12-31", "datetime": "2024-12-31 23:59", "date_fcs": "31-DEC-2024",
                "date_us": "12/31/2024"}
AFTER_EXPORT = {"date": "2026-05-01", "datetime": "2026-04-30 02:16", "date_fcs": "01-MAY-2026",
                "date_us": "05/01/2026"}


def field_cases(source: str, raw: str, name: str, kind: str, required: bool = False, period: bool = True) -> list[tuple]:
    """Empty, malformed, impossible and out-of-period text in one field: the generic checks of its kind."""
    present = [(f"{name}_present", B)] if required else []
    cases = [case(source, f"{name}_present", {raw: ""})] if required else []
    cases.append(case(source, f"{name}_format", {raw: BAD_FORM[kind]}, *present, (f"{name}_format", B)))
    if kind in NOT_REAL:
        cases.append(case(source, f"{name}_valid", {raw: NOT_REAL[kind]}, *present, (f"{name}_valid", B)))
    if kind in BEFORE_STUDY and period:
        cases.append(case(source, f"{name}_in_period", [{raw: BEFORE_STUDY[kind]}, {raw: AFTER_EXPORT[kind]}]))
    return cases


def edc_common(source: str, repeating: bool) -> list[tuple]:
    enrolled_too = [] if source == "edc_enrollment" else [("participant_enrolled", W)]
    cases = [case(source, "participant_id_present", {"record_id": ""}),
             # rejected: not also held for the enrollment (runner.HELD_CHECK)
             case(source, "participant_id_pattern", {"record_id": "22-001"}, ("participant_id_pattern", B)),
             case(source, "instance_format", {"redcap_repeat_instance": "1.5", "redcap_event_name": "a_arm_1"},
                  *([("instance_present", B)] if repeating else []), ("instance_format", B))]
    if repeating:
        cases += [case(source, "instance_present", {"redcap_repeat_instance": "", "redcap_event_name": "b_arm_1"}),
                  case(source, "identity_unique", [{"redcap_repeat_instance": "999"}] * 2)]
    else:
        cases.append(case(source, "identity_unique", [{"redcap_event_name": "screening_arm_1"}] * 2))
    if enrolled_too:
        cases.append(case(source, "participant_enrolled", {"record_id": "CD22-099"}, ("participant_enrolled", W,
                          "participant 'CD22-099' is not enrolled in the EDC (yet): the row is held and loads once "
                          "the enrollment is exported")))
    return cases


def lab(check: str, changes: dict[str, str], *expected: tuple) -> tuple:
    return case("labs", check, changes, *expected)


def lab_limit(code: str, unit: str, impossible: str, plausible_beyond: str | None = None) -> list[tuple]:
    cases = [lab(f"{code.lower()}_range", {"TEST_CODE": code, "UNITS": unit, "RESULT": impossible})]
    if plausible_beyond:
        cases.append(lab(f"{code.lower()}_plausible", {"TEST_CODE": code, "UNITS": unit, "RESULT": plausible_beyond},
                         (f"{code.lower()}_plausible", W)))
    return cases


MRD_EVENTS = "CD45+/Viable | Count"
MRD_BLASTS = "CD45+/Viable/Blasts | Count"
CAR_CD3 = "Lymphocytes/Single Cells/Live/CD3+ | Count"
CAR_COUNT = "Lymphocytes/Single Cells/Live/CD3+/CAR22+ | Count"


def flow_common(source: str) -> list[tuple]:
    return [
        case(source, "sample_id_present", {FLOW_SAMPLE_COLUMN: ""}, ("sample_id_present", B,
             "sample name is empty; it is required")),
        case(source, "participant_id_present", {"SUBJECT": " "}),
        case(source, "participant_id_pattern", {"SUBJECT": "CD22-01"}, ("participant_id_pattern", B)),
        case(source, "participant_enrolled", {"SUBJECT": "CD22-099"}, ("participant_enrolled", W)),
        case(source, "identity_unique", [{FLOW_SAMPLE_COLUMN: "CD22-001_X.fcs"}] * 2, ("identity_unique", B,
             "the same record (sample name 'CD22-001_X.fcs') appears more than once in this file: which row is right? "
             "Ask for a corrected export")),
        case(source, "specimen_present", {"SPECIMEN": ""}),
        case(source, "specimen_code", {"SPECIMEN": "BL"}, ("specimen_code", B,
             "SPECIMEN 'BL' is not BM or PB (exports.md §B)")),
        case(source, "qc_present", {"QC": ""}),
        case(source, "qc_code", {"QC": "OK"}, ("qc_code", B, "QC 'OK' is not PASS or FAIL (exports.md §B, §C)")),
        case(source, "acquired_after_collected", {"$DATE": "05-APR-2026"}, ("acquired_after_collected", W,
             "$DATE '05-APR-2026' (acquisition) is before COLLECTED " + f"'{CLEAN[source]['COLLECTED']}': one of the "
             "two dates is wrong; the study day uses COLLECTED")),
        *field_cases(source, "$DATE", "acquired_on", "date_fcs", period=False),
        case(source, "acquired_on_in_period", {"$DATE": "01-MAY-2026"}),
        case(source, "acquired_on_in_period", {"$DATE": "31-DEC-2024"}, ("acquired_on_in_period", B),
             ("acquired_after_collected", W)),
        *field_cases(source, "COLLECTED", "collected_on", "date", required=True, period=False),
        case(source, "collected_on_in_period", {"COLLECTED": "2024-12-31"}),
        case(source, "collected_on_in_period", {"COLLECTED": "2026-05-01", "$DATE": "01-MAY-2026"},
             ("acquired_on_in_period", B), ("collected_on_in_period", B)),
    ]


def percent(source: str, raw: str, name: str) -> list[tuple]:
    return [case(source, f"{name}_format", {raw: "1,5"}),
            case(source, f"{name}_range", [{raw: "100.1"}, {raw: "-0.1"}])]


def not_negative(source: str, raw: str, name: str) -> list[tuple]:
    return [case(source, f"{name}_format", {raw: "1,5"}),
            case(source, f"{name}_not_negative", {raw: "-1"}, (f"{name}_not_negative", B,
                 f"{raw} '-1' is negative: it cannot be below 0"))]


def integer_code(source: str, name: str, bad: str) -> list[tuple]:
    return [case(source, f"{name}_format", {name: "1.0"}), case(source, f"{name}_code", {name: bad})]


def boolean(source: str, name: str) -> tuple:
    return case(source, f"{name}_format", {name: "2"}, (f"{name}_format", B, f"{name} '2' is not 0 or 1"))


CASES = [
    # --- A. labs ---
    lab("participant_id_present", {"SUBJECT_ID": ""}),
    lab("participant_id_pattern", {"SUBJECT_ID": "CD-22-7"}, ("participant_id_pattern", B,
        "participant ID 'CD-22-7' does not match the trial's pattern ^CD22-[0-9]{3}$ (trial.md): not a trial "
        "participant; correct the ID at the source")),
    lab("participant_enrolled", {"SUBJECT_ID": "CD22-099"}, ("participant_enrolled", W)),
    lab("accession_present", {"ACCESSION": ""}, ("accession_present", B, "ACCESSION is empty; it is required")),
    *field_cases("labs", "COLLECTED_AT", "collected_at", "datetime", required=True, period=False),
    *field_cases("labs", "RESULTED_AT", "resulted_at", "datetime", required=True, period=False),
    lab("collected_at_in_period", {"COLLECTED_AT": "2024-12-31 23:59"}),
    lab("collected_at_in_period", {"COLLECTED_AT": "2026-04-30 02:16"}, ("collected_at_in_period", B),
        ("resulted_after_collected", B)),
    lab("resulted_at_in_period", {"RESULTED_AT": "2026-04-30 02:16"}),
    lab("resulted_at_in_period", {"COLLECTED_AT": "2024-12-31 22:00", "RESULTED_AT": "2024-12-31 23:59"},
        ("collected_at_in_period", B), ("resulted_at_in_period", B)),
    lab("collected_at_format", {"COLLECTED_AT": "2026-03-01"}, ("collected_at_present", B,
        "COLLECTED_AT is required and must be a date and time written YYYY-MM-DD HH:MM; found '2026-03-01'"),
        ("collected_at_format", B, "COLLECTED_AT '2026-03-01' is not a date and time written YYYY-MM-DD HH:MM")),
    lab("resulted_at_in_period", {"RESULTED_AT": "2026-05-01 10:00"}, ("resulted_at_in_period", B,
        "RESULTED_AT '2026-05-01 10:00' is before the study start (2025-01-01) or after the file's export time "
        "(2026-04-30 02:15): no record can be dated outside that period; correct the date at the source")),
    lab("resulted_after_collected", {"RESULTED_AT": "2026-03-01 07:59"}, ("resulted_after_collected", B,
        "RESULTED_AT '2026-03-01 07:59' is before COLLECTED_AT '2026-03-01 08:00': a result cannot precede its "
        "sample")),
    lab("test_code_present", {"TEST_CODE": ""}),
    lab("test_code_known", {"TEST_CODE": "NA", "UNITS": "mmol/L"}, ("test_code_known", W,
        "TEST_CODE 'NA' is not one of the trial's 15 tests (exports.md §A): loaded, never graded")),
    lab("orig_ref_low_format", {"REF_LOW": "1.5.0"}, ("orig_ref_low_format", B, "REF_LOW '1.5.0' is not a number")),
    lab("orig_ref_high_format", {"REF_HIGH": "<8"}),
    lab("flag_code", {"FLAG": "N"}, ("flag_code", W, "FLAG 'N' is not L, H, LL, HH or A (exports.md §A): loaded as "
                                                     "sent")),
    lab("status_present", {"STATUS": ""}),
    lab("status_code", {"STATUS": "X"}, ("status_code", B,
        "STATUS 'X' is not P (preliminary), F (final) or C (corrected) (exports.md §A)")),
    lab("unit_known", {"UNITS": "cells/mm3"}, ("unit_known", B,
        "unit 'cells/mm3' is not accepted for ANC (derivations §1.1): a unit is never guessed; ask the lab which "
        "unit it is")),
    lab("unit_known", {"UNITS": ""}, ("unit_known", B, "unit (empty) is not accepted for ANC (derivations §1.1): a "
                                                       "unit is never guessed; ask the lab which unit it is")),
    lab("identity_unique", [{"ACCESSION": "DUP"}] * 2, ("identity_unique", B,
        "the same record (ACCESSION 'DUP', TEST_CODE 'ANC', RESULTED_AT '2026-03-01 10:00', STATUS 'F') appears more "
        "than once in this file: which row is right? Ask for a corrected export")),
    lab("anc_range", {"RESULT": "250"}, ("anc_range", B,
        "ANC 250 10^9/L (RESULT '250', UNITS 'K/uL') is impossible (outside 0–200 10^9/L): a unit or typing error; "
        "ask the lab")),
    lab("anc_range", {"RESULT": "-0.1"}),
    lab("anc_range", {"RESULT": "200.1"}),
    lab("wbc_plausible", {"TEST_CODE": "WBC", "RESULT": "600"}, ("wbc_plausible", W,
        "WBC 600 10^9/L (RESULT '600', UNITS 'K/uL') is above the plausible 500 10^9/L (rare, but reported after "
        "CAR T): loaded; confirm it with the lab")),
    *lab_limit("WBC", "K/uL", "1000.5", "500.1"),
    *lab_limit("ALC", "10^9/L", "1001", "501"),
    lab("hgb_range", {"TEST_CODE": "HGB", "RESULT": "1.5", "UNITS": "g/dL"}, ("hgb_range", B,
        "HGB 15 g/L (RESULT '1.5', UNITS 'g/dL') is impossible (outside 20–250 g/L): a unit or typing error; ask "
        "the lab")),
    *lab_limit("HGB", "g/L", "251"),
    *lab_limit("PLT", "K/uL", "5001"),
    lab("creat_range", {"TEST_CODE": "CREAT", "RESULT": "80", "UNITS": "mg/dL"}),
    *lab_limit("TBILI", "mg/dL", "51"),
    *lab_limit("AST", "U/L", "100001", "20001"),
    *lab_limit("ALT", "IU/L", "-1", "25000"),
    *lab_limit("LDH", "U/L", "200001", "20001"),
    *lab_limit("CRP", "mg/dL", "101"),
    *lab_limit("FERR", "ng/mL", "5000001", "500001"),
    *lab_limit("FIBR", "g/L", "21"),
    lab("k_range", {"TEST_CODE": "K", "RESULT": "0.9", "UNITS": "mmol/L"}),
    lab("k_range", {"TEST_CODE": "K", "RESULT": "10.1", "UNITS": "mEq/L"}),
    *lab_limit("IL6", "pg/mL", "10000001", "1000001"),
    # --- B1. flow MRD ---
    *flow_common("flow_mrd"),
    case("flow_mrd", "events_total_format", {MRD_EVENTS: "-5"}, ("events_total_format", B,
         "CD45+/Viable | Count '-5' is not an event count (a whole number, scientific notation allowed)")),
    case("flow_mrd", "events_total_valid", {MRD_EVENTS: "4.435E+01"}, ("events_total_valid", B,
         "CD45+/Viable | Count '4.435E+01' is not a whole number of events")),
    case("flow_mrd", "events_leukemic_format", {MRD_BLASTS: "twelve"}),
    case("flow_mrd", "events_leukemic_valid", {MRD_BLASTS: "12.5"}),
    case("flow_mrd", "blasts_within_events", {MRD_BLASTS: "4.44E+05"}, ("blasts_within_events", B,
         "blast events '4.44E+05' exceed the viable CD45+ events '4.43E+05': impossible; check the gating")),
    *percent("flow_mrd", "CD45+/Viable/Blasts | Freq. of Parent (%)", "blasts_pct"),
    *percent("flow_mrd", "CD45+/Viable/Blasts/CD19+ | Freq. of Parent (%)", "cd19_pos_pct"),
    *percent("flow_mrd", "CD45+/Viable/Blasts/CD22+ | Freq. of Parent (%)", "cd22_pos_pct"),
    *not_negative("flow_mrd", "CD22_ABC", "cd22_abc"),
    # --- B2. flow CAR ---
    *flow_common("flow_car"),
    case("flow_car", "cd3_count_format", {CAR_CD3: "1.2e4.5"}),
    case("flow_car", "cd3_count_valid", {CAR_CD3: "1.20005E+04"}),
    case("flow_car", "car22_count_format", {CAR_COUNT: "n/a"}),
    case("flow_car", "car22_count_valid", {CAR_COUNT: "1200.5"}),
    case("flow_car", "car22_within_cd3", {CAR_COUNT: "12001"}, ("car22_within_cd3", B,
         "CAR22+ events '12001' exceed the CD3+ events '12000': impossible; check the gating")),
    *not_negative("flow_car", "CD3_ABS", "cd3_abs_cells_ul"),
    *not_negative("flow_car", "CD19B_ABS", "cd19b_abs_cells_ul"),
    *percent("flow_car", "Lymphocytes/Single Cells/Live/CD3+/CAR22+ | Freq. of Parent (%)", "car22_pct"),
    *percent("flow_car", "Lymphocytes/Single Cells/Live/CD3+/CAR19+ | Freq. of Parent (%)", "car19_pct"),
    *percent("flow_car", "Lymphocytes/Single Cells/Live/CD19+ B | Freq. of Parent (%)", "cd19b_pct"),
    # --- C. qPCR ---
    case("qpcr", "participant_id_present", {"Subject": ""}),
    case("qpcr", "participant_id_pattern", {"Subject": "cd22-001"}, ("participant_id_pattern", B)),
    case("qpcr", "participant_enrolled", {"Subject": "CD22-099"}, ("participant_enrolled", W)),
    case("qpcr", "sample_id_present", {"Sample ID": ""}),
    case("qpcr", "identity_unique", [{"Sample ID": "DUP"}] * 2),
    *field_cases("qpcr", "Collection Date", "collected_on", "date_us", required=True),
    case("qpcr", "target_present", {"Target": ""}),
    case("qpcr", "target_code", {"Target": "CD20CAR"}, ("target_code", B,
         "Target 'CD20CAR' is not CD22CAR or CD19CAR (exports.md §C)")),
    case("qpcr", "qc_present", {"QC": ""}),
    case("qpcr", "qc_code", {"QC": "pass"}),
    case("qpcr", "copies_not_negative", {"Copies/ug gDNA": "-5"}, ("copies_not_negative", B,
         "Copies/ug gDNA '-5' is negative: it cannot be below 0")),
    case("qpcr", "copies_readable", [{"Copies/ug gDNA": "n/a"}, {"Copies/ug gDNA": "<50"}], ("copies_readable", W)),
    *not_negative("qpcr", "LLOQ (copies/ug)", "lloq_copies_per_ug"),
    *not_negative("qpcr", "gDNA input (ng)", "gdna_input_ng"),
    # --- D. EDC ---
    *edc_common("edc_enrollment", repeating=False),
    *field_cases("edc_enrollment", "consent_date", "consent_date", "date", required=True),
    *field_cases("edc_enrollment", "cd19_infusion_date", "cd19_infusion_date", "date")[:2],
    case("edc_enrollment", "cd19_infusion_date_in_period", [{"cd19_infusion_date": "2009-12-31"},
         {"cd19_infusion_date": "2026-05-01"}], ("cd19_infusion_date_in_period", B)),
    case("edc_enrollment", "sex_code", {"sex": "3"}, ("sex_code", B,
         "sex '3' is not one of the codes 1 (M), 2 (F) (exports.md §D)")),
    case("edc_enrollment", "cd19_product_code", {"cd19_product": "4"}),
    case("edc_enrollment", "weight_kg_format", {"weight_kg": "30kg"}),
    case("edc_enrollment", "weight_kg_plausible", [{"weight_kg": "300"}, {"weight_kg": "7.9"}],
         ("weight_kg_plausible", W)),
    case("edc_enrollment", "height_cm_format", {"height_cm": "1m30"}),
    case("edc_enrollment", "height_cm_plausible", {"height_cm": "13"}, ("height_cm_plausible", W,
         "height_cm '13' is outside the plausible 80–230 cm: loaded; check it in the EDC")),
    boolean("edc_enrollment", "hsct_eligible"),
    case("edc_enrollment", "age_plausible", {"dob": "1900-02-10"}, ("age_plausible", W,
         "the age at consent is outside 0–100 years: check the date of birth and the consent date in the EDC (the "
         "age is not shown: it would reveal the date of birth)")),
    *edc_common("edc_eligibility", repeating=False),
    *percent("edc_eligibility", "lvef_pct", "lvef_pct"),
    *percent("edc_eligibility", "fs_pct", "fs_pct"),
    *percent("edc_eligibility", "spo2_pct", "spo2_pct"),
    *not_negative("edc_eligibility", "crcl_measured", "crcl_measured"),
    boolean("edc_eligibility", "eligible_investigator"),
    *edc_common("edc_treatment", repeating=True),
    case("edc_treatment", "agent_present", {"agent": ""}),
    case("edc_treatment", "agent_code", {"agent": "4"}, ("agent_present", B,
         "agent is required and must be one of the codes 1 (fludarabine), 2 (cyclophosphamide), 3 (cd22_car); "
         "found '4'"), ("agent_code", B)),
    *field_cases("edc_treatment", "admin_date", "admin_date", "date", required=True),
    *not_negative("edc_treatment", "dose_mg", "dose_mg"),
    *not_negative("edc_treatment", "car_cells_per_kg", "car_cells_per_kg"),
    case("edc_treatment", "bsa_used_m2_format", {"bsa_used_m2": "1,5"}),
    case("edc_treatment", "bsa_used_m2_not_negative", {"bsa_used_m2": "-1"}, ("bsa_used_m2_not_negative", B),
         ("bsa_used_m2_plausible", W)),
    case("edc_treatment", "bsa_used_m2_plausible", {"bsa_used_m2": "3.5"}, ("bsa_used_m2_plausible", W)),
    *edc_common("edc_crs_daily", repeating=True),
    *field_cases("edc_crs_daily", "assess_date", "assess_date", "date", required=True),
    case("edc_crs_daily", "tmax_c_format", {"tmax_c": "38,4"}),
    case("edc_crs_daily", "tmax_c_range", [{"tmax_c": "43.1"}, {"tmax_c": "29.9"}]),
    case("edc_crs_daily", "tmax_c_range", {"tmax_c": "48.4"}, ("tmax_c_range", B,
         "tmax_c '48.4' °C is outside 30–43 °C: impossible for a living patient; a typo?")),
    *integer_code("edc_crs_daily", "hypotension", "4"),
    case("edc_crs_daily", "hypotension_code", {"hypotension": "-1"}, ("hypotension_code", B,
         "hypotension '-1' is not one of the codes 0 none, 1 not requiring vasopressors, 2 one vasopressor, "
         "3 multiple vasopressors (exports.md §D)")),
    *integer_code("edc_crs_daily", "oxygen", "4"),
    *integer_code("edc_crs_daily", "inv_crs_grade", "6"),
    boolean("edc_crs_daily", "vasopressin"),
    boolean("edc_crs_daily", "tocilizumab"),
    boolean("edc_crs_daily", "steroids"),
    *edc_common("edc_icans_daily", repeating=True),
    *field_cases("edc_icans_daily", "assess_date", "assess_date", "date", required=True),
    case("edc_icans_daily", "tool_code", {"tool": "3"}),
    case("edc_icans_daily", "score_format", {"score": "ten"}),
    case("edc_icans_daily", "score_ice_range", {"score": "11"}, ("score_ice_range", B,
         "score '11' is outside 0–10, the range of the ICE tool (tool '1')")),
    case("edc_icans_daily", "score_capd_range", [{"tool": "2", "score": "33"}, {"tool": "2", "score": "-1"}]),
    boolean("edc_icans_daily", "unable_to_assess"),
    boolean("edc_icans_daily", "motor_weakness"),
    *integer_code("edc_icans_daily", "consciousness", "4"),
    *integer_code("edc_icans_daily", "seizure", "3"),
    *integer_code("edc_icans_daily", "cerebral_edema", "3"),
    *integer_code("edc_icans_daily", "inv_icans_grade", "6"),
    case("edc_icans_daily", "inv_icans_grade_code", {"inv_icans_grade": "-1"}, ("inv_icans_grade_code", B,
         "inv_icans_grade '-1' is not a grade 0–5 (exports.md §D)")),
    *edc_common("edc_adverse_events", repeating=True),
    case("edc_adverse_events", "ae_term_present", {"ae_term": ""}),
    *integer_code("edc_adverse_events", "ae_grade", "0"),
    *field_cases("edc_adverse_events", "onset_date", "onset_date", "date")[:2],
    case("edc_adverse_events", "onset_date_in_period", {"onset_date": "2024-12-31"}),
    *field_cases("edc_adverse_events", "resolution_date", "resolution_date", "date")[:2],
    case("edc_adverse_events", "resolution_date_in_period", {"resolution_date": "2026-05-01"}),
    case("edc_adverse_events", "resolution_after_onset", {"resolution_date": "2026-02-28"}, (
         "resolution_after_onset", W, "resolution_date '2026-02-28' is before onset_date '2026-03-01': loaded; "
         "correct it in the EDC")),
    boolean("edc_adverse_events", "serious"),
    boolean("edc_adverse_events", "related"),
    *edc_common("edc_disease_assessment", repeating=True),
    *field_cases("edc_disease_assessment", "assess_date", "assess_date", "date", required=True),
    *percent("edc_disease_assessment", "bm_blasts_pct", "bm_blasts_pct"),
    case("edc_disease_assessment", "cns_status_code", {"cns_status": "CNS1"}),
    case("edc_disease_assessment", "inv_response_code", {"inv_response": "5"}),
    boolean("edc_disease_assessment", "extramedullary"),
    *edc_common("edc_followup", repeating=False),
    *field_cases("edc_followup", "last_contact_date", "last_contact_date", "date"),
    *field_cases("edc_followup", "death_date", "death_date", "date"),
    *field_cases("edc_followup", "hsct_date", "hsct_date", "date"),
    *field_cases("edc_followup", "next_therapy_date", "next_therapy_date", "date"),
    *field_cases("edc_followup", "off_study_date", "off_study_date", "date"),
    case("edc_followup", "vital_status_code", {"vital_status": "0"}),
    case("edc_followup", "death_cause_code", {"death_cause": "5"}),
    # --- E. Data manager decisions ---
    case("dm_decisions", "issue_id_present", {"issue_id": ""}),
    case("dm_decisions", "issue_known", {"issue_id": "ffffffffffffffff"}, ("issue_known", B,
         "issue_id 'ffffffffffffffff' names no data issue of the warehouse: copy it from `car22 data-issues` "
         "(exports.md §E)")),
    case("dm_decisions", "identity_unique", [{"issue_id": "00000000000000aa"}] * 2),
    case("dm_decisions", "decision_present", {"decision": ""}),
    case("dm_decisions", "decision_code", {"decision": "accept"}, ("decision_code", B,
         "decision 'accept' is not ACCEPT or REOPEN (exports.md §E)")),
    case("dm_decisions", "reason_present", {"reason": "  "}),
    case("dm_decisions", "decided_by_present", {"decided_by": ""}),
    *field_cases("dm_decisions", "decided_at", "decided_at", "datetime", required=True),
]


def case_id(c: tuple) -> str:
    return f"{c[0]}-{c[1]}"


@pytest.fixture(scope="module", params=["sql", "gx"])
def validator(request, tmp_path_factory):
    """One validator per engine for the module (every case holds for both: GX's pandas engine is the oracle of
    the SQL engine), and no network connection from GX, ever."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("validation tried to open a network connection")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        yield Validator(tmp_path_factory.mktemp("reports"), load_protocol(), engine=request.param)


def validate(validator, source: str, frame: pd.DataFrame, file_id: str = "f1", export_time=EXPORTED):
    return validator.validate(BY_NAME[source], frame, file_id=file_id, file_name=f"{source}_20260430T0215.csv",
                              export_time=export_time, run_time=EXPORTED, enrolled_ids=ENROLLED, issue_ids=ISSUES)


@pytest.fixture(scope="module")
def validated(validator):
    """Each source's frame of every case, validated once: (result, the lines of each case)."""
    out = {}
    for source in CLEAN:
        rows, lines = [record(source, 2, {})], {}
        for c in (c for c in CASES if c[0] == source):
            first = len(rows) + 2
            rows += [record(source, first + i, changes) for i, changes in enumerate(c[2])]
            lines[id(c)] = list(range(first, first + len(c[2])))
        out[source] = (validate(validator, source, frame_of(source, rows), file_id=f"cases_{source}"), lines)
    return out


@pytest.mark.parametrize("c", CASES, ids=[case_id(c) for c in CASES])
def test_each_case_names_exactly_its_rows_with_the_reason(validated, c):
    source, check, changes, expected = c
    result, lines = validated[source]
    for line in lines[id(c)]:
        found = [f for f in result.findings if f.row_number == line]
        assert sorted((f.check_name, f.severity) for f in found) == sorted(e[:2] for e in expected), line
        reasons = {f.check_name: f.reason for f in found}
        for e in expected:
            if len(e) > 2 and e[2] is not None:
                assert reasons[e[0]] == e[2]
        # The reason shows what was found (an empty field as empty); the age is withheld (docs/validation.md).
        shown = [f.reason for f in found if f.check_name == check][0]
        assert check == "age_plausible" or any(f"'{v.strip()}'" in shown if v.strip() else "empty" in shown
                                               for v in changes[lines[id(c)].index(line)].values()), shown
    outcome = {o.expectation: o for o in result.outcomes}[check]
    assert not outcome.success and outcome.unexpected_count >= len(lines[id(c)])


def test_the_clean_line_of_every_case_frame_has_no_finding(validated):
    for source, (result, _) in validated.items():
        assert [f for f in result.findings if f.row_number == 2] == [], source


def test_every_check_of_every_suite_is_broken_by_a_case():
    for source in SOURCES:
        checks = {e["meta"]["check_name"] for e in suite_definition(source)["expectations"]}
        assert checks == {c[1] for c in CASES if c[0] == source.name}, source.name


@pytest.mark.parametrize("source", list(CLEAN))
def test_a_clean_file_meets_every_expectation(validator, source):
    result = validate(validator, source, frame_of(source, [record(source, 2, {}), record(source, 3, {})]))
    assert result.findings == []
    assert result.outcomes and all(o.success and o.unexpected_count == 0 for o in result.outcomes)
    assert [o.expectation for o in result.outcomes] == [
        e["meta"]["check_name"] for e in suite_definition(BY_NAME[source])["expectations"]]


def test_versions_of_one_lab_result_in_one_file_are_not_duplicates(validator):
    rows = [record("labs", 2, {"ACCESSION": "A1", "STATUS": "P"}),
            record("labs", 3, {"ACCESSION": "A1", "STATUS": "F", "RESULTED_AT": "2026-03-01 14:00"}),
            record("labs", 4, {"ACCESSION": "A1", "STATUS": "C", "RESULTED_AT": "2026-03-01 14:00"})]
    assert validate(validator, "labs", frame_of("labs", rows)).findings == []


def test_a_file_with_no_sample_left_validates_empty(validator):
    frame = frame_of("flow_mrd", [record("flow_mrd", 2, {})]).iloc[0:0]
    result = validate(validator, "flow_mrd", frame)
    assert result.findings == [] and all(o.success for o in result.outcomes)


def test_a_date_beyond_the_pandas_range_is_a_finding_not_a_crash(validator):
    result = validate(validator, "edc_followup", frame_of("edc_followup", [record("edc_followup", 2, {
        "last_contact_date": "3026-04-20"})]))
    assert [(f.row_number, f.check_name) for f in result.findings] == [(2, "last_contact_date_in_period")]


def test_without_an_export_time_the_run_time_bounds_the_dates(validator):
    frame = frame_of("labs", [record("labs", 2, {"RESULTED_AT": "2026-04-30 02:16"})])
    found = validate(validator, "labs", frame, export_time=None).findings
    assert [(f.check_name, f.reason.split("export time ")[1]) for f in found] == [
        ("resulted_at_in_period", "(2026-04-30 02:15): no record can be dated outside that period; correct the date "
                                  "at the source")]


def test_a_frame_without_a_checked_column_is_an_error_not_a_pass(validator):
    frame = frame_of("labs", [record("labs", 2, {})]).drop(columns=["unit_known"])
    with pytest.raises(ValueError, match="unit_known"):
        validate(validator, "labs", frame)


def test_committed_suites_are_what_the_generator_writes():
    for source in SOURCES:
        committed = json.loads((SUITES_DIR / f"{source.name}.json").read_text(encoding="utf-8"))
        assert committed == json.loads(json.dumps(suite_definition(source))), (
            f"expectations/{source.name}.json is stale: run `python -m car22.validation --write-suites`")


def test_every_expectation_says_its_check_severity_and_reason_without_identifying_fields():
    for source in SOURCES:
        for e in suite_definition(source)["expectations"]:
            meta = e["meta"]
            assert re.fullmatch(r"[a-z0-9_]+", meta["check_name"]) and meta["reason"]
            assert (meta["severity"], e["severity"]) in {("blocking", "critical"), ("warning", "warning")}
            assert not template_fields(meta["reason"]) & (WITHHELD | {"dob"})
            assert "dob" not in json.dumps(e["kwargs"])


class Page(HTMLParser):
    def __init__(self, text: str):
        super().__init__()
        self.links: list[str] = []
        self.rows = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.links += [value for name, value in attrs if name == "href"]
        self.rows += tag == "tr"


def test_data_docs_pages_and_index(validator, validated):
    pages = {name: validate(validator, source, frame_of(source, [record(source, 2, {"dob": DOB} if source ==
                                                                        "edc_enrollment" else {})]), file_id=name)
             for name, source in [("fa", "labs"), ("fb", "edc_enrollment"), ("fc", "flow_mrd")]}
    none = {"rows_blocking": 0, "rows_skipped": 0, "rows_held": 0}
    files = pd.DataFrame([
        {"file_id": fid, "file_name": f"{fid}.csv", "source": r.suite, "status": "loaded", "received_at": EXPORTED,
         "run_id": 1, "rows_read": 1, "rows_loaded": 1, "rows_rejected": 0, "reason": None,
         "report_path": r.report_path, **none} for fid, r in pages.items()] + [
        {"file_id": "fq", "file_name": "bad.csv", "source": None, "status": "quarantined", "received_at": EXPORTED,
         "run_id": 1, "rows_read": 0, "rows_loaded": 0, "rows_rejected": 0, "reason": "binary file <not CSV>",
         "report_path": None, **none}])
    index = validator.docs.write_index(files)
    assert index == validator.docs.pages / "index.html"
    text = index.read_text(encoding="utf-8")
    links = Page(text).links
    assert sorted(links) == ["fa.html", "fb.html", "fc.html"]
    assert all((index.parent / link).exists() for link in links)
    assert "bad.csv" in text and "binary file &lt;not CSV&gt;" in text
    # A page lists every expectation of its suite and links back to the index.
    labs = Page((validator.docs.pages / "fa.html").read_text(encoding="utf-8"))
    assert labs.rows == 1 + len(pages["fa"].outcomes) and "index.html" in labs.links
    broken = (validator.docs.pages / "cases_labs.html").read_text(encoding="utf-8")
    assert "unit &#x27;cells/mm3&#x27; is not accepted for ANC" in broken
    for page in index.parent.glob("*.html"):
        content = page.read_text(encoding="utf-8")
        assert DOB not in content and "1900-02-10" not in content and not re.search(r"\bdob\b", content), page
        assert not re.search(r"(src|href)=['\"]?(https?:)?//", content), page


def test_the_regeneration_command(tmp_path, monkeypatch):
    from car22.validation import suites

    monkeypatch.setattr(suites, "SUITES_DIR", tmp_path)
    assert suites.main(["--write-suites"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{s.name}.json" for s in SOURCES)
    assert suites.main([]) == 2


@pytest.mark.parametrize("header, line", [(LAB, LAB_OK), (MRD, MRD_OK), (CAR, CAR_OK), (QPCR, QPCR_OK),
                                          (ENROLL, ENROLL_OK), (CRS, CRS_OK), (ICANS, ICANS_OK)])
def test_the_clean_exports_read_and_validate_clean(validator, header, line):
    from car22.intake.reading import read_export

    export = read_export(f"{header}\n{line}\n".encode())
    frame = validation_frame(export.source, export.rows, type_frame(export.source, export.rows))
    assert validate(validator, export.source.name, frame).findings == []


def test_suites_are_loaded_from_the_committed_files():
    assert sorted(p.stem for p in Path(SUITES_DIR).glob("*.json")) == sorted(s.name for s in SOURCES)

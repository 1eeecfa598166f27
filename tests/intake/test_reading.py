"""The reader: every quirk of exports.md has a handmade file here that fails without its handling."""
import re
from datetime import datetime

import pandas as pd
import pytest

from car22.intake.reading import Unreadable, export_time, read_export, record_json
from car22.intake.sources import (
    EDC_CRS_DAILY,
    EDC_ENROLLMENT,
    EDC_FOLLOWUP,
    FLOW_CAR,
    FLOW_MRD,
    LABS,
    QPCR,
    TYPED_BY_SQL_FROM,
    type_frame,
)

LAB_HEADER = "SUBJECT_ID,ACCESSION,COLLECTED_AT,RESULTED_AT,TEST_CODE,LOINC,TEST_NAME,RESULT,UNITS,REF_LOW,REF_HIGH,FLAG,STATUS"
LAB_ROW = "CD22-001,A1,2026-03-01 08:00,2026-03-01 10:00,ANC,751-8,Neutrophils,0.4,K/uL,1.5,8.0,L,F"
MRD_HEADER = (",$DATE,SUBJECT,COLLECTED,SPECIMEN,QC,CD45+/Viable | Count,CD45+/Viable/Blasts | Count,"
              "CD45+/Viable/Blasts | Freq. of Parent (%),CD45+/Viable/Blasts/CD19+ | Freq. of Parent (%),"
              "CD45+/Viable/Blasts/CD22+ | Freq. of Parent (%),CD22_ABC")
CAR_HEADER = (",$DATE,SUBJECT,COLLECTED,SPECIMEN,QC,Lymphocytes/Single Cells/Live/CD3+ | Count,CD3_ABS,"
              "Lymphocytes/Single Cells/Live/CD3+/CAR22+ | Freq. of Parent (%),"
              "Lymphocytes/Single Cells/Live/CD3+/CAR22+ | Count,"
              "Lymphocytes/Single Cells/Live/CD3+/CAR19+ | Freq. of Parent (%),"
              "Lymphocytes/Single Cells/Live/CD19+ B | Freq. of Parent (%),CD19B_ABS")
QPCR_HEADER = "Subject,Sample ID,Collection Date,Specimen,Target,Copies/ug gDNA,LLOQ (copies/ug),gDNA input (ng),Run ID,QC"
ENROLLMENT_HEADER = ("record_id,redcap_event_name,consent_date,dob,sex,weight_kg,height_cm,cd19_product,"
                     "cd19_infusion_date,hsct_eligible")


def text(*lines: str, newline: str = "\n") -> bytes:
    return (newline.join(lines) + newline).encode("utf-8")


def test_bom_is_stripped_before_the_header_is_recognised():
    rows = read_export(b"\xef\xbb\xbf" + text(LAB_HEADER, LAB_ROW))
    assert rows.source is LABS
    assert list(rows.rows["SUBJECT_ID"]) == ["CD22-001"]


def test_crlf_line_endings_leave_no_carriage_return_in_values():
    rows = read_export(text(LAB_HEADER, LAB_ROW, newline="\r\n"))
    assert rows.rows["STATUS"].tolist() == ["F"]


def test_lims_trailer_line_is_not_a_row():
    rows = read_export(text(LAB_HEADER, LAB_ROW, "*** END OF REPORT ***"))
    assert len(rows.rows) == 1 and not rows.malformed


def test_blank_first_header_cell_and_line_numbers():
    rows = read_export(text(MRD_HEADER, "CD22-003_BM_D28.fcs,07-APR-2026,CD22-003,2026-04-06,BM,PASS,4.43E+05,12,0.0027,,,"))
    assert rows.source is FLOW_MRD
    assert rows.rows.index.tolist() == [2]
    typed = type_frame(FLOW_MRD, rows.rows)
    assert typed.loc[2, "sample_id"] == "CD22-003_BM_D28.fcs"
    assert typed.loc[2, "events_total"] == 443000  # scientific notation count
    assert typed.loc[2, "acquired_on"] == pd.Timestamp("2026-04-07")  # FCS-style $DATE
    assert pd.isna(typed.loc[2, "cd22_abc"])


def test_flow_controls_and_summary_rows_are_skipped_with_reasons():
    rows = read_export(text(
        CAR_HEADER,
        "CD22-001_PB_D7.fcs,07-APR-2026,CD22-001,2026-04-06,PB,PASS,1.2E+04,800,10,1200,0.5,0.1,1",
        "FMO_CAR22.fcs,07-APR-2026,CD22-001,2026-04-06,PB,PASS,1000,,0,0,0,0,",
        "Isotype_ctrl.fcs,07-APR-2026,,,PB,PASS,1000,,0,0,0,0,",
        "Compensation Controls_FITC.fcs,,,,,,,,,,,,",
        "unlabelled.fcs,07-APR-2026,,2026-04-06,PB,PASS,1000,,0,0,0,0,",
        "Mean,,,,,,6500,800,5,600,0.25,0.05,0.5",
        "SD,,,,,,7000,0,7,800,0.3,0.07,0.7",
    ))
    assert rows.source is FLOW_CAR
    reasons = FLOW_CAR.skip_reason(rows.rows)
    assert reasons.isna().tolist() == [True, False, False, False, False, False, False]
    assert "Mean/SD" in reasons.loc[7] and "Mean/SD" in reasons.loc[8]
    assert all("control (FMO" in reasons.loc[n] for n in (3, 4, 5))
    assert "SUBJECT empty" in reasons.loc[6]
    typed = type_frame(FLOW_CAR, rows.rows.loc[[2]])
    assert typed.loc[2, "cd3_count"] == 12000
    assert typed.loc[2, "cd3_abs"] == pytest.approx(0.8)  # 800 cells/µL = 0.8 x10^9/L


def test_qpcr_us_dates_and_below_limit_tokens():
    rows = read_export(text(QPCR_HEADER,
                            "CD22-001,Q1,04/13/2026,PB,CD22CAR,15234.5,50,100,R1,PASS",
                            "CD22-001,Q2,04/20/2026,PB,CD22CAR,BLQ,50,100,R1,PASS",
                            "CD22-001,Q3,04/27/2026,PB,CD19CAR,ND,50,100,R1,PASS",
                            "CD22-001,Q4,05/04/2026,PB,CD22CAR,<LLOQ,50,100,R1,PASS"))
    typed = type_frame(QPCR, rows.rows)
    assert typed["collected_on"].tolist()[0] == pd.Timestamp("2026-04-13")
    assert typed["copies_per_ug"].tolist()[0] == 15234.5
    assert typed["below_lloq"].tolist() == [False, True, True, True]
    assert typed["copies_per_ug"].isna().tolist() == [False, True, True, True]


@pytest.mark.parametrize("result, unit, value, canonical_unit, comparator, kind", [
    ("0.4", "K/uL", 0.4, "10^9/L", None, "VALUE"),
    ("400", "cells/µL", 0.4, "10^9/L", None, "VALUE"),
    ("400", "cells/uL", 0.4, "10^9/L", None, "VALUE"),
    ("0.4", "K/µL", 0.4, "10^9/L", None, "VALUE"),
    ("<0.5", "K/uL", 0.5, "10^9/L", "<", "CENSORED"),
    ("Hemolyzed", "K/uL", None, "10^9/L", None, "NO_RESULT"),
    ("400", "cells/mm3", None, None, None, "VALUE"),
])
def test_lab_result_text_and_units(result, unit, value, canonical_unit, comparator, kind):
    row = LAB_ROW.replace(",0.4,K/uL,", f",{result},{unit},")
    typed = type_frame(LABS, read_export(text(LAB_HEADER, row)).rows).iloc[0]
    assert (pd.isna(typed["value"]) if value is None else typed["value"] == pytest.approx(value))
    assert (pd.isna(typed["unit"]) if canonical_unit is None else typed["unit"] == canonical_unit)
    assert (pd.isna(typed["comparator"]) if comparator is None else typed["comparator"] == comparator)
    assert typed["result_kind"] == kind
    assert bool(typed["unit_known"]) is (canonical_unit is not None)


@pytest.mark.parametrize("code, result, unit, ref_high, value, high", [
    ("CREAT", "88.42", "µmol/L", "97.262", 1.0, 1.1),   # referral lab SI units, ÷ 88.42
    ("TBILI", "34.2", "umol/L", "20.52", 2.0, 1.2),    # ÷ 17.1
    ("HGB", "9.5", "g/dL", "16", 95.0, 160.0),         # × 10 to g/L
    ("HGB", "95", "g/L", "160", 95.0, 160.0),
])
def test_si_units_convert_with_their_reference_limits(code, result, unit, ref_high, value, high):
    row = f"CD22-001,A1,2026-03-01 08:00,2026-03-01 10:00,{code},,,{result},{unit},,{ref_high},,F"
    typed = type_frame(LABS, read_export(text(LAB_HEADER, row)).rows).iloc[0]
    assert typed["value"] == pytest.approx(value, rel=1e-12)
    assert typed["ref_high"] == pytest.approx(high, rel=1e-12)
    assert typed["orig_result"] == result and typed["orig_unit"] == unit


def test_redcap_codes_repeat_instances_and_optional_repeat_columns():
    crs = read_export(text(
        "record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,assess_date,tmax_c,"
        "hypotension,vasopressin,oxygen,tocilizumab,steroids,inv_crs_grade",
        "CD22-001,treatment_arm_1,crs_daily,3,2026-04-03,38.4,1,0,2,1,0,2"))
    assert crs.source is EDC_CRS_DAILY
    typed = type_frame(EDC_CRS_DAILY, crs.rows).iloc[0]
    assert typed["instance"] == 3 and typed["oxygen"] == 2 and bool(typed["tocilizumab"]) is True
    followup = read_export(text(
        "record_id,redcap_event_name,last_contact_date,vital_status,death_date,death_cause,hsct_date,"
        "next_therapy_date,off_study_date", "CD22-001,followup_arm_1,2027-01-05,2,2027-01-01,3,,,"))
    assert followup.source is EDC_FOLLOWUP
    typed = type_frame(EDC_FOLLOWUP, followup.rows).iloc[0]
    assert typed["vital_status"] == "dead" and typed["death_cause"] == "infection"


# consent date, date of birth -> completed years at consent, days to the next birthday (derivations §6.1)
AGE_CASES = [
    ("2026-02-10", "2016-02-10", 10, 365),       # the 10th birthday: 10 completed years
    ("2026-02-09", "2016-02-10", 9, 1),          # the day before
    ("2026-02-10", "1960-02-10", 66, 365),       # the 66th birthday: 66, not eligible
    ("2026-02-09", "1960-02-10", 65, 1),         # the day before the 66th birthday: 65
    ("2026-02-10", "2023-02-10", 3, 365),        # the 3rd birthday: 3, eligible
    ("2026-02-09", "2023-02-10", 2, 1),
    ("2027-03-10", "2024-03-10", 3, 366),        # the year to the next birthday holds 29 February 2028
    ("2026-02-28", "2012-02-29", 13, 1),         # born 29 February: the year completes on 1 March
    ("2026-03-01", "2012-02-29", 14, 365),       # ... and the next one completes on 1 March 2027
    ("2027-12-31", "2012-02-29", 15, 60),        # 2028 is a leap year: 29 February 2028
]


@pytest.mark.parametrize("consent, dob, years, to_birthday", AGE_CASES)
def test_date_of_birth_becomes_completed_years_and_never_leaves_the_reader(consent, dob, years, to_birthday):
    rows = read_export(text(ENROLLMENT_HEADER, f"CD22-001,screening_arm_1,{consent},{dob},1,30,130,1,2025-11-01,0"))
    assert rows.source is EDC_ENROLLMENT
    typed = type_frame(EDC_ENROLLMENT, rows.rows).iloc[0]
    assert (typed["age_at_consent_years"], typed["days_to_next_birthday"]) == (years, to_birthday)
    assert "dob" not in EDC_ENROLLMENT.staging_columns()
    assert dob not in record_json(rows, 2)


def test_malformed_row_keeps_its_line_and_reason():
    rows = read_export(text(LAB_HEADER, LAB_ROW, "CD22-001,A2,2026-03-01 08:00", LAB_ROW.replace("A1", "A3")))
    assert rows.malformed == {3: "row has 3 fields, the header has 13"}
    assert rows.rows.index.tolist() == [2, 3, 4]
    assert record_json(rows, 3) == '["CD22-001", "A2", "2026-03-01 08:00"]'


def test_malformed_enrollment_row_has_its_dates_redacted():
    rows = read_export(text(ENROLLMENT_HEADER, "CD22-001,screening_arm_1,2016-02-10,1"))
    assert "2016-02-10" not in record_json(rows, 2)


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (b"\n\n", "empty file"),
    (b"PK\x03\x04\x14\x00\x00\x00binary", "binary file"),
    ("SUBJECT_ID,ACCESSION\n".encode("utf-16"), "binary file"),
    ("SUBJECT_ID;ACCESSION;RÉSULTAT\n".encode("latin-1"), "not UTF-8"),
    (text("a,b,c", "1,2,3"), "header matches no known export"),
    (text(LAB_HEADER), "header only"),
    (text(LAB_HEADER + ",SUBJECT_ID", LAB_ROW + ",x"), "duplicated column"),
])
def test_unreadable_files_say_why(data, reason):
    with pytest.raises(Unreadable, match=reason):
        read_export(data)


@pytest.mark.parametrize("name, expected", [
    ("labs_20260302T0215.csv", datetime(2026, 3, 2, 2, 15)),
    ("edc_crs_daily_20260302T0100.csv", datetime(2026, 3, 2, 1, 0)),
    ("labs.csv", None),
    ("labs_20261302T0215.csv", None),
])
def test_export_time_from_the_file_name(name, expected):
    assert export_time(name) == expected


@pytest.mark.parametrize("kind, text, expected", [
    ("int", "2147483647", 2147483647),          # the largest INTEGER
    ("int", "2147483648", None),                # one more: does not parse, the suite rejects the row
    ("int", "-2147483647", -2147483647),
    ("int", "9" * 400, None),                   # found by the fuzzer: overflowed to -2**63 and broke the load
    ("count", "3000000000", 3000000000),        # counts are BIGINT
    ("count", "9" * 400, None),
])
def test_whole_numbers_beyond_their_column_do_not_parse(kind, text, expected):
    from car22.intake.sources import Field, type_column

    typed = type_column(pd.Series([text], dtype="string"), Field("n", "N", kind))
    assert (typed.iloc[0] if expected is not None else pd.isna(typed.iloc[0])) == (expected if expected is not None else True)


@pytest.mark.parametrize("header, source, extra", [
    (LAB_HEADER + ",COMMENT", LABS, ("COMMENT",)),                               # exports.md "Schema drift"
    ("LAB_SITE," + LAB_HEADER + ",COMMENT", LABS, ("LAB_SITE", "COMMENT")),      # in header order
    (QPCR_HEADER + ",Operator", QPCR, ("Operator",)),
    (MRD_HEADER, FLOW_MRD, ()),                                                  # exact: no extras
])
def test_every_column_of_a_source_plus_unknown_ones_loads_and_names_the_extras(header, source, extra):
    values = {"COMMENT": "redrawn", "LAB_SITE": "B", "Operator": "JK"}
    cells = header.split(",")
    row = ",".join(values.get(c, "") for c in cells)
    rows = read_export(text(header, row))
    assert (rows.source, rows.extra) == (source, extra)
    assert [rows.rows.loc[2, c] for c in extra] == [values[c] for c in extra]


def test_an_unknown_identifying_extra_column_is_dropped_as_read():
    rows = read_export(text(LAB_HEADER + ",dob", LAB_ROW + ",2016-02-10"))
    assert rows.extra == ("dob",) and "dob" not in rows.rows.columns
    assert "2016-02-10" not in record_json(rows, 2)


def test_a_missing_column_still_quarantines_with_the_closest_source():
    with pytest.raises(Unreadable, match="closest: labs; missing 'STATUS'") as raised:
        read_export(text(LAB_HEADER.removesuffix(",STATUS") + ",COMMENT", LAB_ROW))
    assert raised.value.source is LABS


@pytest.mark.parametrize("name, source", [
    ("labs_20260301T1200.csv", "labs"), ("flow_mrd_20260305T0900.csv", "flow_mrd"),
    ("edc_crs_daily_20260302T0100.csv", "edc_crs_daily"), ("dm_decisions_20260307T1300.csv", "dm_decisions"),
    ("report_20260301T1200.csv", None), ("labs.csv", None),
])
def test_the_source_a_file_name_points_to(name, source):
    from car22.intake.sources import source_of_name

    found = source_of_name(name)
    assert (found.name if found else None) == source


# Files DuckDB reads differently from Python's csv, or not at all: each is read as Python's csv reads it
# (car22.intake.reading._read_by_duckdb gives way, or agrees).
AWKWARD = {
    "crlf, blank lines, trailer": f"\r\n{LAB_HEADER}\r\n\r\n{LAB_ROW}\r\n\r\n*** END OF REPORT ***\r\n",
    "too many fields, trailing comma": f"{LAB_HEADER}\n{LAB_ROW},\n{LAB_ROW},x,y\n",
    "too few fields after blank lines": f"{LAB_HEADER}\n\n\nCD22-001,A2\n{LAB_ROW}",
    "quoted comma and quote": f'{LAB_HEADER}\n{LAB_ROW.replace("Neutrophils", chr(34) + "Neutro, ""phils""" + chr(34))}\n',
    "quoted newline": f'{LAB_HEADER}\n{LAB_ROW.replace("Neutrophils", chr(34) + "Neutro" + chr(10) + "phils" + chr(34))}\n',
    "space before a quote": f'{LAB_HEADER}\n{LAB_ROW.replace(",Neutrophils,", ", " + chr(34) + "N,x" + chr(34) + ",")}\n',
    "quote left open on the last line": f'{LAB_HEADER}\n{LAB_ROW}\n{LAB_ROW},"\n',
    "quote left open before the end": f'{LAB_HEADER}\n{LAB_ROW}\n"{LAB_ROW}\n{LAB_ROW}\n',
    "text after a closing quote": f'{LAB_HEADER}\n{LAB_ROW.replace("Neutrophils", chr(34) + "N" + chr(34) + "x")}\n',
    "lone carriage return": f"{LAB_HEADER}\n{LAB_ROW}\r{LAB_ROW}\n",
    "mixed line ends": f"{LAB_HEADER}\r\n{LAB_ROW}\n{LAB_ROW}\r\n",
    "quoted trailer": f'{LAB_HEADER}\n{LAB_ROW}\n"*** END OF REPORT ***"',
}


@pytest.mark.parametrize("text", AWKWARD.values(), ids=AWKWARD.keys())
def test_duckdb_reads_a_file_as_pythons_csv_does_or_leaves_it_to_it(text):
    from car22.intake.reading import _read_by_duckdb, _read_by_python

    data = text.encode()
    try:
        expected = _read_by_python(text)
    except Unreadable as refused:
        assert _read_by_duckdb(data, text) is None
        with pytest.raises(Unreadable, match=re.escape(str(refused))):
            read_export(data)
        return
    read = _read_by_duckdb(data, text)
    if read is not None:
        assert (read.header, read.numbers, read.malformed, read.records) == (
            expected.header, expected.numbers, expected.malformed, expected.records)
        pd.testing.assert_frame_equal(read.cells, expected.cells)


def test_a_malformed_row_is_found_in_duckdbs_reject_table_with_its_line():
    from car22.intake.reading import _read_by_duckdb

    text = f"{LAB_HEADER}\r\n\r\n{LAB_ROW}\r\n{LAB_ROW},extra\r\n\r\nCD22-001,A2\r\n*** END OF REPORT ***\r\n"
    read = _read_by_duckdb(text.encode(), text)
    assert read is not None and read.numbers == [3, 4, 6]
    assert read.malformed == {4: "row has 14 fields, the header has 13", 6: "row has 2 fields, the header has 13"}
    assert read.records[4][-1] == "extra" and read.records[6] == ["CD22-001", "A2"]


# Texts where SQL and Python could part: padding, signs, exponents, overflow, calendar edges, year 0000.
TRICKY = {
    "int": ["7", " +7\t", "-0", "007", "2147483647", "2147483648", "-2147483648", "9" * 400, "1.0", "", "x"],
    "count": ["4.43E+05", "1e3", " 12 ", ".5", "5.", "+3", "1e400", "123456789012345", "1.5", "-1", "inf"],
    "float": ["1.5", "-2.25", ".5", "5.", "1e-320", "1e400", "-1e400", "1_0", "nan", "1,5", "\x1c3\x0b", "12"],
    "bool": ["0", "1", " 1 ", "2", "01", "true", ""],
    "date": ["2026-01-01", "2024-02-29", "2026-02-29", "0000-01-01", "9999-12-31", "2026-1-1", " 2026-01-01\n"],
    "date_fcs": ["07-APR-2026", "07-apr-2026", "31-FEB-2026", "07-XYZ-2026", "07-APR-0000", "7-APR-2026"],
    "date_us": ["04/13/2026", "13/04/2026", "02/29/2024", "01/01/0000", "1/1/2026"],
    "datetime": ["2026-03-01 08:00", "2026-03-01 24:00", "2026-03-01T08:00", "0000-01-01 00:00", "2026-3-1 8:00"],
}


@pytest.mark.parametrize("kind", TRICKY)
def test_the_sql_typing_of_a_column_is_the_reference_typing(kind):
    from car22.intake.sources import Field, _type_by_sql, type_column

    field = Field("x", "X", kind)
    for values in (TRICKY[kind], TRICKY[kind][:1] + [None], ["zz", None]):
        text = pd.Series(values, dtype="string", index=range(2, len(values) + 2))
        typed = _type_by_sql([field], pd.DataFrame({"X": text}))["x"]
        pd.testing.assert_series_equal(typed, type_column(text.fillna(""), field), check_names=False)


@pytest.mark.parametrize("kind, values", [
    ("int", ["１２", "3"]),               # Python's \d is any decimal digit
    ("date", ["2026-01-01\u00a0"]),        # str.strip() strips more than ASCII white space
    ("float", ["-0", "2"]),               # pd.to_numeric reads the column as integers: 0, not -0.0
    ("count", ["12345678901234567"]),     # ... and keeps every digit of a count
])
def test_a_column_the_sql_cannot_type_exactly_is_left_to_the_reference(kind, values):
    from car22.intake.sources import Field, _type_by_sql

    assert _type_by_sql([Field("x", "X", kind)], pd.DataFrame({"X": pd.Series(values, dtype="string")})) == {}


@pytest.mark.parametrize("rows", [TYPED_BY_SQL_FROM - 1, TYPED_BY_SQL_FROM])
def test_a_file_is_typed_alike_below_and_from_the_size_typed_in_sql(rows):
    """A file of fewer than TYPED_BY_SQL_FROM rows is typed by pandas, a larger one by SQL: the frames are equal
    to the reference typing either way, padded, odd and unparseable values included."""
    from car22.intake.sources import type_column

    values = ["CD22-001,A{i},2026-03-01 08:00,2026-03-01 10:00,ANC,751-8,Neutrophils,0.4,K/uL,1.5,8.0,L,F",
              "CD22-002,B{i}, 2026-03-02 08:00 ,2026-03-02 10:00,PLT,777-3,Platelets,<20,K/uL, 150 ,450,L,F",
              "CD22-003,C{i},2026-02-30 08:00,yesterday,WBC,6690-2,White cells,1e3,K/uL,x,11,,F"]
    export = read_export(text(LAB_HEADER, *(values[i % 3].format(i=i) for i in range(rows))))
    typed = type_frame(LABS, export.rows)
    for f in LABS.fields:
        pd.testing.assert_series_equal(typed[f.name], type_column(export.rows[f.raw], f), check_names=False)

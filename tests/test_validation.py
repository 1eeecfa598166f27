"""The validation suites: each check, broken by a handmade row, names exactly that row with its reason."""
from __future__ import annotations

import json
import re
from datetime import datetime
from html.parser import HTMLParser

import pandas as pd
import pytest

from car22.config import load_protocol
from car22.ingest import validation_frame
from car22.reading import read_export
from car22.sources import SOURCES, type_frame
from car22.validation import SUITES_DIR, Validator, suite_definition

EXPORTED = datetime(2026, 4, 30, 2, 15)
ENROLLED = {"CD22-001", "CD22-002"}

LAB = "SUBJECT_ID,ACCESSION,COLLECTED_AT,RESULTED_AT,TEST_CODE,LOINC,TEST_NAME,RESULT,UNITS,REF_LOW,REF_HIGH,FLAG,STATUS"
LAB_OK = "CD22-001,A1,2026-03-01 08:00,2026-03-01 10:00,ANC,751-8,Neutrophils,0.4,K/uL,1.5,8.0,L,F"
MRD = (",$DATE,SUBJECT,COLLECTED,SPECIMEN,QC,CD45+/Viable | Count,CD45+/Viable/Blasts | Count,"
       "CD45+/Viable/Blasts | Freq. of Parent (%),CD45+/Viable/Blasts/CD19+ | Freq. of Parent (%),"
       "CD45+/Viable/Blasts/CD22+ | Freq. of Parent (%),CD22_ABC")
MRD_OK = "CD22-001_BM_D28.fcs,07-APR-2026,CD22-001,2026-04-06,BM,PASS,4.43E+05,12,0.0027,90,95,3000"
CAR = (",$DATE,SUBJECT,COLLECTED,SPECIMEN,QC,Lymphocytes/Single Cells/Live/CD3+ | Count,CD3_ABS,"
       "Lymphocytes/Single Cells/Live/CD3+/CAR22+ | Freq. of Parent (%),"
       "Lymphocytes/Single Cells/Live/CD3+/CAR22+ | Count,"
       "Lymphocytes/Single Cells/Live/CD3+/CAR19+ | Freq. of Parent (%),"
       "Lymphocytes/Single Cells/Live/CD19+ B | Freq. of Parent (%),CD19B_ABS")
CAR_OK = "CD22-001_PB_D7.fcs,09-APR-2026,CD22-001,2026-04-08,PB,PASS,12000,800,10,1200,0.5,0.1,1"
QPCR = "Subject,Sample ID,Collection Date,Specimen,Target,Copies/ug gDNA,LLOQ (copies/ug),gDNA input (ng),Run ID,QC"
QPCR_OK = "CD22-001,Q1,04/13/2026,PB,CD22CAR,15234.5,50,100,R1,PASS"
CRS = ("record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,assess_date,tmax_c,"
       "hypotension,vasopressin,oxygen,tocilizumab,steroids,inv_crs_grade")
CRS_OK = "CD22-001,treatment_arm_1,crs_daily,1,2026-04-03,38.4,1,0,2,1,0,2"
ENROLL = ("record_id,redcap_event_name,consent_date,dob,sex,weight_kg,height_cm,cd19_product,cd19_infusion_date,"
          "hsct_eligible")
ENROLL_OK = "CD22-003,screening_arm_1,2026-02-10,2016-02-10,1,30,130,1,2025-11-01,0"
ICANS = ("record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,assess_date,tool,score,"
         "unable_to_assess,consciousness,seizure,motor_weakness,cerebral_edema,inv_icans_grade")
ICANS_OK = "CD22-001,treatment_arm_1,icans_daily,1,2026-04-03,1,10,0,0,0,0,0,0"


@pytest.fixture(scope="module")
def validator(tmp_path_factory):
    return Validator(tmp_path_factory.mktemp("reports"), load_protocol())


def validate(validator, header: str, *rows: str, file_id: str = "f1"):
    export = read_export(("\n".join((header,) + rows) + "\n").encode())
    typed = type_frame(export.source, export.rows)
    return validator.validate(export.source, validation_frame(export.source, export.rows, typed),
                              file_id=file_id, file_name=f"{export.source.name}_20260430T0215.csv",
                              export_time=EXPORTED, run_time=EXPORTED, enrolled_ids=ENROLLED)


def lab(**changes: str) -> str:
    fields = dict(zip(LAB.split(","), LAB_OK.replace(",A1,", ",A2,").split(",")))
    fields.update(changes)
    return ",".join(fields.values())


@pytest.mark.parametrize("header, clean", [(LAB, LAB_OK), (MRD, MRD_OK), (CAR, CAR_OK), (QPCR, QPCR_OK),
                                           (CRS, CRS_OK), (ENROLL, ENROLL_OK), (ICANS, ICANS_OK)])
def test_a_clean_file_has_no_finding(validator, header, clean):
    result = validate(validator, header, clean)
    assert result.findings == []
    assert all(o.success for o in result.outcomes) and result.outcomes


# Each row: header, a clean row, the broken row, the check it must break and its severity, and any other
# (check, severity) the same defect necessarily breaks too.
def second_record(row: str) -> str:
    """The same row as another record (another identity), so only the intended check can fail."""
    for old, new in (("_D28.fcs", "_D29.fcs"), ("_D7.fcs", "_D8.fcs"), (",Q1,", ",Q2,"),
                     ("_daily,1,", "_daily,2,"), ("CD22-003,screening", "CD22-004,screening")):
        row = row.replace(old, new)
    return row


BROKEN = [
    (LAB, LAB_OK, lab(SUBJECT_ID="CD-22-7"), "participant_id_pattern", "blocking",
     ("participant_enrolled", "warning")),
    (LAB, LAB_OK, lab(SUBJECT_ID="CD22-099"), "participant_enrolled", "warning"),
    (LAB, LAB_OK, lab(ACCESSION=""), "accession_present", "blocking"),
    (LAB, LAB_OK, lab(COLLECTED_AT="03/01/2026 08:00"), "collected_at_present", "blocking",
     ("collected_at_format", "blocking")),
    (LAB, LAB_OK, lab(COLLECTED_AT="2026-02-30 08:00"), "collected_at_present", "blocking"),
    (LAB, LAB_OK, lab(REF_LOW="1.5.0"), "orig_ref_low_format", "blocking"),
    (LAB, LAB_OK, lab(STATUS="X"), "status_code", "blocking"),
    (LAB, LAB_OK, lab(TEST_CODE="NA"), "test_code_known", "warning"),
    (LAB, LAB_OK, lab(FLAG="N"), "flag_code", "warning"),
    (LAB, LAB_OK, lab(UNITS="cells/mm3"), "unit_known", "blocking"),
    (LAB, LAB_OK, lab(RESULT="250"), "anc_plausible", "blocking"),
    (LAB, LAB_OK, lab(TEST_CODE="HGB", RESULT="1.5", UNITS="g/dL"), "hgb_plausible", "blocking"),
    (LAB, LAB_OK, lab(RESULTED_AT="2026-03-01 07:00"), "resulted_after_collected", "blocking"),
    (LAB, LAB_OK, lab(COLLECTED_AT="2024-12-31 08:00"), "collected_at_in_study", "blocking"),
    (LAB, LAB_OK, lab(RESULTED_AT="2026-05-01 10:00"), "resulted_at_in_study", "blocking"),
    (MRD, MRD_OK, MRD_OK.replace(",12,", ",500000,"), "blasts_within_events", "blocking"),
    (MRD, MRD_OK, MRD_OK.replace(",BM,", ",BL,"), "specimen_code", "blocking"),
    (MRD, MRD_OK, MRD_OK.replace(",PASS,", ",OK,"), "qc_code", "blocking"),
    (MRD, MRD_OK, MRD_OK.replace(",90,", ",190,"), "cd19_pos_pct_range", "blocking"),
    (MRD, MRD_OK, MRD_OK.replace("07-APR-2026", "2026-04-07"), "acquired_on_format", "blocking"),
    (MRD, MRD_OK, MRD_OK.replace(",4.43E+05,", ",-5,"), "events_total_format", "blocking"),
    (CAR, CAR_OK, CAR_OK.replace(",1200,", ",13000,"), "car22_within_cd3", "blocking"),
    (QPCR, QPCR_OK, QPCR_OK.replace("CD22CAR", "CD20CAR"), "target_code", "blocking"),
    (QPCR, QPCR_OK, QPCR_OK.replace("04/13/2026", "2026-04-13"), "collected_on_present", "blocking",
     ("collected_on_format", "blocking")),
    (CRS, CRS_OK, CRS_OK.replace(",38.4,", ",48.4,"), "tmax_plausible", "blocking"),
    (CRS, CRS_OK, CRS_OK.replace(",1,0,2,1,0,2", ",5,0,2,1,0,2"), "hypotension_code", "blocking"),
    (CRS, CRS_OK, CRS_OK.replace(",crs_daily,1,", ",crs_daily,,"), "instance_present", "blocking"),
    (ICANS, ICANS_OK, ICANS_OK.replace(",2026-04-03,1,", ",2026-04-03,3,"), "tool_code", "blocking"),
    (ENROLL, ENROLL_OK, ENROLL_OK.replace(",1,30,", ",3,30,"), "sex_code", "blocking"),
    (ENROLL, ENROLL_OK, ENROLL_OK.replace(",30,130,", ",300,130,"), "weight_plausible", "warning"),
]


@pytest.mark.parametrize("header, clean, broken, check, severity, also",
                         [(h, c, b, check, sev, also) for h, c, b, check, sev, *also in BROKEN],
                         ids=[f"{row[3]}-{i}" for i, row in enumerate(BROKEN)])
def test_each_check_names_exactly_the_broken_row(validator, header, clean, broken, check, severity, also):
    result = validate(validator, header, clean, second_record(broken))
    expected = sorted([(3, check, severity)] + [(3, *pair) for pair in also])
    assert sorted((f.row_number, f.check_name, f.severity) for f in result.findings) == expected
    outcome = {o.expectation: o for o in result.outcomes}[check]
    assert not outcome.success and outcome.unexpected_count == 1 and outcome.severity == severity
    assert result.findings[0].reason


def test_identity_repeated_within_a_file_rejects_both_rows(validator):
    result = validate(validator, LAB, LAB_OK, LAB_OK.replace(",0.4,", ",0.5,"))
    assert [(f.row_number, f.check_name) for f in result.findings] == [(2, "identity_unique"), (3, "identity_unique")]


def test_reason_names_the_offending_value(validator):
    result = validate(validator, LAB, LAB_OK, lab(UNITS="cells/mm3"))
    assert "derivations §1.1" in result.findings[0].reason


def test_committed_suites_are_what_the_generator_writes():
    for source in SOURCES:
        committed = json.loads((SUITES_DIR / f"{source.name}.json").read_text(encoding="utf-8"))
        assert committed == json.loads(json.dumps(suite_definition(source))), (
            f"expectations/{source.name}.json is stale: run `python -m car22.validation --write-suites`")


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.links += [value for name, value in attrs if name == "href"]


def test_data_docs_index_links_every_validated_page_and_no_date_of_birth(validator):
    pages = {name: validate(validator, header, row, file_id=name).report_path
             for name, header, row in [("fa", LAB, LAB_OK), ("fb", ENROLL, ENROLL_OK), ("fc", MRD, MRD_OK)]}
    files = pd.DataFrame([
        {"file_id": fid, "file_name": f"{fid}.csv", "source": "x", "status": "loaded", "received_at": EXPORTED,
         "run_id": 1, "rows_read": 1, "rows_loaded": 1, "rows_rejected": 0, "reason": None, "report_path": path}
        for fid, path in pages.items()] + [
        {"file_id": "fq", "file_name": "bad.csv", "source": None, "status": "quarantined", "received_at": EXPORTED,
         "run_id": 1, "rows_read": 0, "rows_loaded": 0, "rows_rejected": 0, "reason": "binary file",
         "report_path": None}])
    index = validator.write_index(files)
    parser = Links()
    parser.feed(index.read_text(encoding="utf-8"))
    assert sorted(link for link in parser.links) == ["fa.html", "fb.html", "fc.html"]
    assert "bad.csv" in index.read_text(encoding="utf-8")
    for page in index.parent.glob("*.html"):
        assert not re.search(r"2016-02-10|\bdob\b", page.read_text(encoding="utf-8"))

"""The package of a small hand-made warehouse (exactly the core and mart tables the models read), with the edge
cases of the issue: a participant never infused (and one lymphodepleted but not infused), a censored lab result,
a QC-failed flow sample, an AE without an end date. Every expected value is worked out by hand from cdisc.md."""
from __future__ import annotations

from datetime import date

import duckdb
import pytest
from submission.conformance import check_package, rows

from car22.sql import SQL_DIR
from car22.submission.package import write_package

P1, P2, P3 = "CD22-001", "CD22-002", "CD22-003"  # infused; screen failure; lymphodepleted, not infused

MART = """
CREATE SCHEMA mart;
CREATE TABLE mart.ctcae_criteria AS SELECT * FROM read_csv('{criteria}', all_varchar = true);
CREATE TABLE mart.mrd_assessments (participant_id VARCHAR, sample_id VARCHAR, specimen VARCHAR,
    collected_on DATE, study_day INTEGER, mrd_fraction DOUBLE, mrd_status VARCHAR);
CREATE TABLE mart.car_levels (participant_id VARCHAR, sample_id VARCHAR, specimen VARCHAR, collected_on DATE,
    study_day INTEGER, assay VARCHAR, target VARCHAR, value DOUBLE);
CREATE TABLE mart.car_kinetics (participant_id VARCHAR, assay VARCHAR, target VARCHAR, unit VARCHAR, cmax DOUBLE,
    tmax_day INTEGER, auc_0_28 DOUBLE, auc_0_last DOUBLE, tlast_day INTEGER, clast DOUBLE);
CREATE TABLE mart.crs_daily (participant_id VARCHAR, assess_date DATE, study_day INTEGER, grade INTEGER,
    episode INTEGER);
CREATE TABLE mart.icans_daily AS SELECT * FROM mart.crs_daily;
CREATE TABLE mart.crs_summary (participant_id VARCHAR, max_grade INTEGER);
CREATE TABLE mart.icans_summary AS SELECT * FROM mart.crs_summary;
CREATE TABLE mart.lab_toxicity (accession VARCHAR, test_code VARCHAR, grade INTEGER, ctcae_term VARCHAR,
    null_reason VARCHAR);
CREATE TABLE mart.rfs (participant_id VARCHAR, analysis VARCHAR, start_date DATE, end_date DATE, time_days INTEGER,
    event BOOLEAN, event_type VARCHAR, censor_reason VARCHAR);
CREATE TABLE mart.icaht (participant_id VARCHAR, scale VARCHAR, phase VARCHAR, grade INTEGER);
CREATE TABLE mart.hematotox (participant_id VARCHAR, score INTEGER, risk VARCHAR);
"""

ROWS = """
INSERT INTO core.participants (participant_id, sex, consent_date, age_at_consent_years, ld_start_date, infusion_date,
    cells_per_kg, infused, death_date, death_cause, last_contact_date, off_study_date) VALUES
    ('CD22-001', 'F', '2026-02-01', 30.0, '2026-03-05', '2026-03-10', 1e6, TRUE, NULL, NULL, '2026-09-01', NULL),
    ('CD22-002', 'M', '2026-02-10', 12.0, NULL, NULL, NULL, FALSE, NULL, NULL, '2026-02-20', '2026-02-20'),
    ('CD22-003', 'F', '2026-03-01', 41.0, '2026-03-20', NULL, NULL, FALSE, '2026-03-22', 'infection', '2026-03-21',
     NULL);
INSERT INTO core.lab_results (participant_id, accession, test_code, loinc, collected_at, study_day, value, unit,
    comparator, below_lloq, result_kind, ref_low, ref_high, orig_result, orig_unit, orig_ref_low, orig_ref_high) VALUES
    ('CD22-001', 'A1', 'ANC', '751-8', '2026-03-03 08:00', -7, 2.0, '10^9/L', NULL, FALSE, 'VALUE', 1.5, 7.0, '2.0',
     'K/µL', 1.5, 7.0),
    ('CD22-001', 'A2', 'ANC', '751-8', '2026-03-05 09:00', -5, 1.0, '10^9/L', NULL, FALSE, 'VALUE', 1.5, 7.0, '1.0',
     'K/µL', 1.5, 7.0),
    ('CD22-001', 'A3', 'ANC', '751-8', '2026-03-10 07:30', 0, 0.4, '10^9/L', NULL, FALSE, 'VALUE', 1.5, 7.0, '400',
     'cells/µL', 1500, 7000),
    ('CD22-001', 'A4', 'ANC', '751-8', '2026-03-17 07:45', 7, NULL, '10^9/L', NULL, TRUE, 'BELOW_LLOQ', 1.5, 7.0,
     'BLQ', 'K/µL', 1.5, 7.0),
    ('CD22-001', 'C1', 'CRP', '1988-5', '2026-03-17 07:45', 7, 2.0, 'mg/L', '<', FALSE, 'CENSORED', NULL, 5.0,
     '<2.0', 'mg/L', NULL, 5.0),
    ('CD22-001', 'K1', 'K', '2823-3', '2026-03-11 06:00', 1, NULL, NULL, NULL, FALSE, 'NO_RESULT', 3.5, 5.1,
     'Hemolyzed', 'mmol/L', 3.5, 5.1),
    ('CD22-002', 'B1', 'ANC', '751-8', '2026-02-12 10:00', NULL, 3.0, '10^9/L', NULL, FALSE, 'VALUE', 1.5, 7.0, '3.0',
     'K/µL', 1.5, 7.0);
INSERT INTO mart.lab_toxicity VALUES
    ('A2', 'ANC', 2, 'Neutrophil count decreased', NULL), ('A3', 'ANC', 4, 'Neutrophil count decreased', NULL),
    ('A4', 'ANC', 4, 'Neutrophil count decreased', NULL);
INSERT INTO core.flow_samples (participant_id, sample_id, panel, specimen, collected_on, study_day, qc,
    events_total, events_leukemic) VALUES
    ('CD22-001', 'S1.fcs', 'MRD', 'BM', '2026-04-07', 28, 'PASS', 100000, 3),
    ('CD22-001', 'S2.fcs', 'MRD', 'BM', '2026-03-01', -9, 'FAIL', NULL, NULL);
INSERT INTO mart.mrd_assessments VALUES
    ('CD22-001', 'S1.fcs', 'BM', '2026-04-07', 28, 3e-5, 'NEGATIVE'),
    ('CD22-001', 'S2.fcs', 'BM', '2026-03-01', -9, NULL, 'NOT_EVALUABLE');
INSERT INTO core.qpcr_results (participant_id, sample_id, target, specimen, collected_on, study_day, copies_per_ug,
    below_lloq, orig_result, lloq_copies_per_ug, qc) VALUES
    ('CD22-001', 'Q1', 'CD22CAR', 'PB', '2026-03-17', 7, NULL, TRUE, 'BLQ', 50, 'PASS'),
    ('CD22-001', 'Q2', 'CD22CAR', 'PB', '2026-03-24', 14, 1234.5, FALSE, '1234.5', 50, 'PASS');
INSERT INTO mart.car_levels VALUES ('CD22-001', 'F1.fcs', 'PB', '2026-03-17', 7, 'flow_abs', 'CD22CAR', 12.5);
INSERT INTO mart.car_kinetics VALUES ('CD22-001', 'qpcr', 'CD22CAR', 'copies/µg gDNA', 1234.5, 14, NULL, 10000, 14,
    1234.5);
INSERT INTO core.treatments (participant_id, event, instance, agent, admin_date, study_day, dose_mg,
    car_cells_per_kg) VALUES
    ('CD22-001', 'treatment', 1, 'fludarabine', '2026-03-05', -5, 50, NULL),
    ('CD22-001', 'treatment', 2, 'cd22_car', '2026-03-10', 0, NULL, 1e6),
    ('CD22-003', 'treatment', 1, 'fludarabine', '2026-03-20', NULL, 60, NULL);
INSERT INTO core.crs_assessments (participant_id, event, instance, assess_date, study_day, tmax_c, hypotension,
    vasopressin, oxygen, tocilizumab, steroids, inv_crs_grade) VALUES
    ('CD22-001', 'crs', 1, '2026-03-08', -2, 38.5, 0, FALSE, 0, FALSE, FALSE, NULL),
    ('CD22-001', 'crs', 2, '2026-03-10', 0, 38.6, 0, FALSE, 0, FALSE, FALSE, 1);
INSERT INTO core.icans_assessments (participant_id, event, instance, assess_date, study_day, tool, score,
    unable_to_assess, consciousness, seizure, motor_weakness, cerebral_edema, inv_icans_grade) VALUES
    ('CD22-001', 'icans', 1, '2026-03-11', 1, 'ICE', 10, FALSE, 0, 0, FALSE, 0, 0);
INSERT INTO mart.crs_daily VALUES ('CD22-001', '2026-03-08', -2, 0, NULL), ('CD22-001', '2026-03-10', 0, 1, 1);
INSERT INTO mart.icans_daily VALUES ('CD22-001', '2026-03-11', 1, 0, NULL);
INSERT INTO mart.crs_summary VALUES ('CD22-001', 1);
INSERT INTO mart.icans_summary VALUES ('CD22-001', 0);
INSERT INTO core.adverse_events (participant_id, event, instance, ae_term, ae_grade, onset_date, onset_day,
    resolution_date, serious, related) VALUES
    ('CD22-001', 'ae', 1, 'Febrile neutropenia', 3, '2026-03-12', 2, NULL, TRUE, FALSE),
    ('CD22-001', 'ae', 2, 'Nausea', 1, '2026-03-06', -4, '2026-03-07', FALSE, FALSE);
INSERT INTO core.disease_assessments (participant_id, event, instance, assess_date, study_day, bm_blasts_pct,
    cns_status, extramedullary, inv_response) VALUES
    ('CD22-001', 'disease', 1, '2026-04-07', 28, 1.0, 'CNS1', FALSE, 'MRD_NEGATIVE_CR');
INSERT INTO mart.rfs VALUES
    ('CD22-001', 'primary', '2026-03-10', '2026-04-07', 28, FALSE, NULL, 'LAST_DISEASE_ASSESSMENT'),
    ('CD22-001', 'sensitivity', '2026-03-10', '2026-04-07', 28, FALSE, NULL, 'LAST_DISEASE_ASSESSMENT');
INSERT INTO mart.icaht VALUES ('CD22-001', 'N-ICAHT', 'early', 3), ('CD22-001', 'N-ICAHT', 'late', NULL),
    ('CD22-001', 'T-ICAHT', 'early', 0), ('CD22-001', 'T-ICAHT', 'late', 2);
INSERT INTO mart.hematotox VALUES ('CD22-001', 2, 'HIGH'), ('CD22-003', NULL, NULL);
"""


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """(the package's built datasets, the folder) for the hand-made warehouse, after every conformance check."""
    root = tmp_path_factory.mktemp("edge")
    warehouse = root / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute((SQL_DIR / "core" / "schema.sql").read_text(encoding="utf-8"))
        con.execute(MART.format(criteria=SQL_DIR / "ctcae_criteria.csv"))
        con.execute(ROWS)
    folder = write_package(warehouse, root / "submission").folder
    return check_package(folder, warehouse), folder


def records(tables, name: str, **where) -> list[dict]:
    table = tables[name]
    found = [dict(zip(table.columns, row)) for row in rows(table)]
    return [r for r in found if all(r[k] == v for k, v in where.items())]


def one(tables, name: str, **where) -> dict:
    found = records(tables, name, **where)
    assert len(found) == 1, (name, where, found)
    return found[0]


U1, U2, U3 = (f"NCT07328503-{p}" for p in (P1, P2, P3))


@pytest.mark.parametrize("dataset, where, variable, expected", [
    # study days: warehouse day 0 -> SDTM day 1, -5 stays -5, 7 -> 8 (cdisc.md Conventions)
    ("LB", {"LBREFID": "A3"}, "LBDY", 1),
    ("LB", {"LBREFID": "A2"}, "LBDY", -5),
    ("LB", {"LBREFID": "A4"}, "LBDY", 8),
    ("LB", {"LBREFID": "A1"}, "LBDY", -7),
    ("EX", {"USUBJID": U1, "EXTRT": "FLUDARABINE"}, "EXSTDY", -5),
    ("EX", {"USUBJID": U1, "EXTRT": "CD22 CAR T-CELLS"}, "EXSTDY", 1),
    ("AE", {"AETERM": "Febrile neutropenia"}, "AESTDY", 3),
    ("AE", {"AETERM": "Nausea"}, "AEENDY", -3),
    ("FA", {"FATESTCD": "TEMPMAX", "FADTC": "2026-03-08"}, "FADY", -2),  # pre-infusion items are kept
    ("CP", {"CPREFID": "S1.fcs", "CPTESTCD": "LEUKEVT"}, "CPDY", 29),
    ("ADCI", {"PARAMCD": "CRSGR"}, "ADY", 1),
    ("ADLB", {"ADT": date(2026, 3, 10)}, "ADY", 1),
    # never infused: no reference start, no study day
    ("DM", {"USUBJID": U2}, "RFSTDTC", None),
    ("LB", {"USUBJID": U2}, "LBDY", None),
    ("EX", {"USUBJID": U3}, "EXSTDY", None),
    ("DS", {"USUBJID": U3, "DSDECOD": "DEATH"}, "DSSTDY", None),
    # arms: screen failure (never lymphodepleted), assigned not treated (lymphodepleted, not infused)
    ("DM", {"USUBJID": U1}, "ACTARMCD", "CD22CAR"),
    ("DM", {"USUBJID": U2}, "ARMNRS", "SCREEN FAILURE"),
    ("DM", {"USUBJID": U2}, "ARMCD", None),
    ("DM", {"USUBJID": U3}, "ARMNRS", "ASSIGNED, NOT TREATED"),
    ("DM", {"USUBJID": U3}, "ARMCD", "CD22CAR"),
    ("DM", {"USUBJID": U3}, "ACTARMCD", None),
    ("DM", {"USUBJID": U3}, "DTHFL", "Y"),
    ("DM", {"USUBJID": U3}, "RFPENDTC", "2026-03-22"),
    ("DM", {"USUBJID": U1}, "AGE", 30),
    ("DS", {"USUBJID": U3, "DSDECOD": "DEATH"}, "DSTERM", "DEATH: INFECTION"),
    ("ADSL", {"USUBJID": U2}, "SAFFL", "N"),
    ("ADSL", {"USUBJID": U2}, "TRTSDT", None),
    ("ADSL", {"USUBJID": U1}, "TRTSDT", date(2026, 3, 10)),
    ("ADSL", {"USUBJID": U1}, "LDSTDT", date(2026, 3, 5)),
    ("ADSL", {"USUBJID": U1}, "CRSMXGR", 1),
    ("ADSL", {"USUBJID": U3}, "CRSMXGR", None),
    # hematotoxicity (derivations §4.5-4.6): each ICAHT grade by scale and phase; a NULL grade stays null
    ("ADSL", {"USUBJID": U1}, "NICAHTE", 3),
    ("ADSL", {"USUBJID": U1}, "NICAHTL", None),
    ("ADSL", {"USUBJID": U1}, "TICAHTE", 0),
    ("ADSL", {"USUBJID": U1}, "TICAHTL", 2),
    ("ADSL", {"USUBJID": U1}, "HTOXSC", 2),
    ("ADSL", {"USUBJID": U1}, "HTOXRSK", "HIGH"),
    ("ADSL", {"USUBJID": U3}, "HTOXSC", None),
    ("ADSL", {"USUBJID": U2}, "NICAHTE", None),
    # lab results: the censored one keeps its comparator and has no number; below-LLOQ keeps its text
    ("LB", {"LBREFID": "C1"}, "LBORRES", "<2.0"),
    ("LB", {"LBREFID": "C1"}, "LBSTRESC", "<2"),
    ("LB", {"LBREFID": "C1"}, "LBSTRESN", None),
    ("LB", {"LBREFID": "C1"}, "LBSTRESU", "mg/L"),
    ("LB", {"LBREFID": "A4"}, "LBSTRESC", "BLQ"),
    ("LB", {"LBREFID": "A4"}, "LBSTRESN", None),
    ("LB", {"LBREFID": "A3"}, "LBORRESU", "cells/uL"),  # µ written u
    ("LB", {"LBREFID": "A3"}, "LBSTRESN", 0.4),
    ("LB", {"LBREFID": "A3"}, "LBNRIND", "LOW"),
    ("LB", {"LBREFID": "K1"}, "LBSTAT", "NOT DONE"),
    ("LB", {"LBREFID": "K1"}, "LBREASND", "Hemolyzed"),
    ("LB", {"LBREFID": "K1"}, "LBSTRESU", None),
    ("LB", {"LBREFID": "A1"}, "LBLOBXFL", "Y"),  # last before the day of the first lymphodepletion dose
    ("LB", {"LBREFID": "A2"}, "LBLOBXFL", None),  # collected on that day
    ("LB", {"LBREFID": "A3"}, "LBTESTCD", "NEUT"),
    # ADLB: grade by direction, baseline, on-treatment flag, source record
    ("ADLB", {"ADT": date(2026, 3, 10)}, "SRCSEQ", 5),  # LB sorted by test code: CRP, K, then NEUT A1-A4
    ("LB", {"LBREFID": "A3"}, "LBSEQ", 5),
    ("ADLB", {"ADT": date(2026, 3, 10)}, "ATOXGRL", "4"),
    ("ADLB", {"ADT": date(2026, 3, 10)}, "ATOXDSCL", "Neutrophil count decreased"),
    ("ADLB", {"ADT": date(2026, 3, 10)}, "ATOXGRH", None),
    ("ADLB", {"ADT": date(2026, 3, 10)}, "BASE", 2.0),
    ("ADLB", {"ADT": date(2026, 3, 10)}, "ONTRTFL", "Y"),
    ("ADLB", {"ADT": date(2026, 3, 5)}, "ONTRTFL", None),
    ("ADLB", {"ADT": date(2026, 3, 3)}, "ABLFL", "Y"),
    ("ADLB", {"ADT": date(2026, 3, 3)}, "ATOXGRL", None),
    # the AE without an end date
    ("AE", {"AETERM": "Febrile neutropenia"}, "AEENDTC", None),
    ("AE", {"AETERM": "Febrile neutropenia"}, "AESER", "Y"),
    ("ADAE", {"AETERM": "Febrile neutropenia"}, "AENDT", None),
    ("ADAE", {"AETERM": "Febrile neutropenia"}, "TRTEMFL", "Y"),
    ("ADAE", {"AETERM": "Nausea"}, "TRTEMFL", None),
    ("ADAE", {"AETERM": "Febrile neutropenia"}, "ATOXGR", 3),
    # CAR levels and kinetics
    ("PC", {"PCREFID": "Q1"}, "PCORRES", "BLQ"),
    ("PC", {"PCREFID": "Q1"}, "PCSTRESN", None),
    ("PC", {"PCREFID": "Q1"}, "PCLLOQ", 50.0),
    ("PC", {"PCREFID": "Q2"}, "PCSTRESN", 1234.5),
    ("PC", {"PCREFID": "F1.fcs"}, "PCCAT", "FLOW"),
    ("PP", {"PPTESTCD": "CMAX"}, "PPSTRESU", "copies/ug gDNA"),
    ("PP", {"PPTESTCD": "AUCLST"}, "PPSTRESU", "copies/ug gDNA*day"),
    ("PP", {"PPTESTCD": "TMAX"}, "PPSTRESN", 14.0),
    ("RS", {"RSTESTCD": "MRDSTAT", "RSREFID": "S2.fcs"}, "RSORRES", "NOT_EVALUABLE"),
    ("RS", {"RSTESTCD": "OVRLRESP"}, "RSORRES", "MRD_NEGATIVE_CR"),
    ("ADTTE", {"PARAMCD": "RFS"}, "AVAL", 28.0),
    ("ADTTE", {"PARAMCD": "RFS"}, "CNSR", 1),
])
def test_hand_computed_values(package, dataset, where, variable, expected):
    tables, _ = package
    assert one(tables, dataset, **where)[variable] == expected


def test_qc_failed_flow_sample_is_not_done_without_results(package):
    tables, _ = package
    failed = records(tables, "CP", CPREFID="S2.fcs")
    # every measure of the MRD panel, none with a result
    assert sorted(r["CPTESTCD"] for r in failed) == sorted(
        ["LEUKEVT", "TOTEVT", "MRDFRAC", "CD19BLP", "CD22BLP", "CD22ABC"])
    assert {(r["CPSTAT"], r["CPREASND"], r["CPORRES"], r["CPSTRESN"]) for r in failed} == {
        ("NOT DONE", "QC FAILED", None, None)}
    # the passing sample: only the measures it reported (a missing value is never a negative)
    assert {r["CPTESTCD"]: r["CPSTRESN"] for r in records(tables, "CP", CPREFID="S1.fcs")} == {
        "LEUKEVT": 3.0, "TOTEVT": 100000.0, "MRDFRAC": 3e-5}


def test_grades_start_at_infusion_and_every_participant_is_in_adsl(package):
    tables, _ = package
    assert [(r["ADY"], r["AVAL"]) for r in records(tables, "ADCI", PARAMCD="CRSGR")] == [(1, 1)]
    assert tables["ADSL"].column("USUBJID") == [U1, U2, U3]
    assert [r["LBSEQ"] for r in records(tables, "LB", USUBJID=U1)] == [1, 2, 3, 4, 5, 6]

"""Screening eligibility (derivations §6.1): every criterion at its boundary, missing data, and build()."""
import duckdb
import pandas as pd
import pytest

from car22.config import load_protocol
from car22.rules import eligibility, mrd
from car22.rules.eligibility import MET, NOT_ASSESSABLE, NOT_MET
from car22.sql import run_sql_file

BANDS = [[5, 0.8], [10, 1.0], [999, 1.2]]


@pytest.mark.parametrize("years, expected", [
    (3, MET), (2, NOT_MET), (65, MET), (66, NOT_MET), (None, NOT_ASSESSABLE),
])
def test_age(years, expected):
    row = eligibility.assess_age(years, min_years=3, max_years=65)
    assert (row["value"], row["limit_low"], row["limit"], row["result"]) == (years, 3, 65, expected)


# consent date, date of birth -> completed years at consent, AGE, creatinine limit (derivations §6.1): the age is
# the calendar age computed as the enrollment file is read, not days / 365.25
AGE_AT_CONSENT = [
    ("2026-03-01", "1960-03-01", 66, NOT_MET, 1.2),    # the 66th birthday (24106 days = 65.9986 x 365.25)
    ("2026-02-28", "1960-03-01", 65, MET, 1.2),        # the day before the 66th birthday
    ("2027-03-01", "2024-03-01", 3, MET, 0.8),         # the 3rd birthday (1095 days = 2.998 x 365.25)
    ("2027-02-28", "2024-03-01", 2, NOT_MET, 0.8),     # the day before the 3rd birthday
    ("2026-02-10", "2020-08-10", 5, MET, 0.8),         # five and a half: 5 completed years, "<= 5"
    ("2026-08-10", "2020-08-10", 6, MET, 1.0),         # the 6th birthday: "6-10"
    ("2026-08-09", "2015-08-10", 10, MET, 1.0),        # the day before the 11th birthday
    ("2026-08-10", "2015-08-10", 11, MET, 1.2),        # the 11th birthday: ">= 11"
]


@pytest.mark.parametrize("consent, dob, years, expected, creatinine_limit", AGE_AT_CONSENT)
def test_age_from_the_date_of_birth_as_the_file_is_read(consent, dob, years, expected, creatinine_limit):
    from car22.intake.reading import read_export
    from car22.intake.sources import type_frame

    header = ("record_id,redcap_event_name,consent_date,dob,sex,weight_kg,height_cm,cd19_product,"
              "cd19_infusion_date,hsct_eligible")
    data = f"{header}\nCD22-001,screening_arm_1,{consent},{dob},1,30,130,1,2025-11-01,0\n".encode()
    export = read_export(data)
    typed = type_frame(export.source, export.rows).iloc[0]
    age = typed["age_at_consent_years"]
    assert age == years
    assert eligibility.assess_age(age, min_years=3, max_years=65)["result"] == expected
    assert eligibility.creatinine_limit(age, BANDS) == creatinine_limit


@pytest.mark.parametrize("days, expected", [
    (61, MET), (60, NOT_MET), (214, MET), (215, NOT_MET), (123, MET), (None, NOT_ASSESSABLE),
])
def test_cd19_car_interval(days, expected):
    row = eligibility.assess_cd19_interval(days, min_days=61, max_days=214)
    assert (row["value"], row["result"]) == (days, expected)


@pytest.mark.parametrize("status, expected", [
    ("NEGATIVE", MET),
    ("NEGATIVE_INSUFFICIENT_SENSITIVITY", NOT_MET),     # only NEGATIVE counts (derivations §2)
    ("POSITIVE_LOW", NOT_MET),
    ("POSITIVE", NOT_MET),
    (None, NOT_ASSESSABLE),
])
def test_screening_mrd(status, expected):
    assert eligibility.assess_mrd(status, 1e-5, "s1")["result"] == expected


@pytest.mark.parametrize("value, uln, factor, comparator, below, limit, expected", [
    (2.4, 1.2, 2.0, None, False, 2.4, MET),                  # bilirubin exactly 2 x ULN
    (2.41, 1.2, 2.0, None, False, 2.4, NOT_MET),             # just above
    (41.04 / 17.1, 20.52 / 17.1, 2.0, None, False, 2.4, MET),  # from µmol/L: 41.04 = 2 x 20.52
    (41.05 / 17.1, 20.52 / 17.1, 2.0, None, False, 2.4, NOT_MET),
    (400.0, 40.0, 10.0, None, False, 400.0, MET),            # AST exactly 10 x ULN
    (400.1, 40.0, 10.0, None, False, 400.0, NOT_MET),
    (11.3, 1.13, 10.0, None, False, 11.299999999999999, MET),  # 10 x 1.13 in floating point; 12 digits: equal
    (11.31, 1.13, 10.0, None, False, 11.299999999999999, NOT_MET),
    (None, 40, 10.0, None, False, 400.0, NOT_ASSESSABLE),  # no value
    (30.0, None, 10.0, None, False, None, NOT_ASSESSABLE),   # no ULN on the result
    (None, 1.2, 2.0, None, True, 2.4, MET),                  # below the limit of quantitation
    (0.2, 1.2, 2.0, "<", False, 2.4, MET),                   # <0.2: below the limit whatever it is
    (2.4, 1.2, 2.0, "<", False, 2.4, MET),                   # <2.4 <= 2.4
    (3.0, 1.2, 2.0, "<", False, 2.4, NOT_ASSESSABLE),        # <3.0 could be either side
    (2.4, 1.2, 2.0, ">", False, 2.4, NOT_MET),               # >2.4 is above 2.4
    (2.0, 1.2, 2.0, ">", False, 2.4, NOT_ASSESSABLE),        # >2.0 could be either side
])
def test_lab_multiple_of_uln(value, uln, factor, comparator, below, limit, expected):
    row = eligibility.assess_x_uln(value, uln, max_x_uln=factor, comparator=comparator, below_lloq=below)
    assert (row["limit"], row["uln"], row["result"]) == (limit, uln, expected)


@pytest.mark.parametrize("age, limit", [
    (3, 0.8), (5, 0.8), (6, 1.0), (10, 1.0), (11, 1.2), (65, 1.2), (None, None),
])
def test_creatinine_limit_by_age(age, limit):
    assert eligibility.creatinine_limit(age, BANDS) == limit


@pytest.mark.parametrize("creat, age, crcl, expected, basis, value, limit", [
    (0.8, 5, None, MET, "CREATININE", 0.8, 0.8),             # exactly the limit at age 5
    (0.81, 5, None, NOT_MET, "CREATININE", 0.81, 0.8),       # 5 completed years, even five and a half
    (0.81, 6, None, MET, "CREATININE", 0.81, 1.0),           # age 6: 6-10, limit 1.0
    (1.0, 10, None, MET, "CREATININE", 1.0, 1.0),
    (1.01, 10, None, NOT_MET, "CREATININE", 1.01, 1.0),
    (1.2, 40, None, MET, "CREATININE", 1.2, 1.2),
    (1.21, 40, None, NOT_MET, "CREATININE", 1.21, 1.2),
    (70.736 / 88.42, 5, None, MET, "CREATININE", 0.8, 0.8),  # 70.736 µmol/L
    (1.5, 40, 60.0, MET, "CRCL", 60.0, 60.0),              # measured CrCl exactly 60 rescues
    (1.5, 40, 59.9, NOT_MET, "CREATININE", 1.5, 1.2),      # 59.9 does not
    (1.5, 40, None, NOT_MET, "CREATININE", 1.5, 1.2),      # not measured: no rescue
    (None, 40, 75.0, MET, "CRCL", 75.0, 60.0),             # no creatinine, clearance decides
    (None, 40, 50.0, NOT_ASSESSABLE, "CREATININE", None, 1.2),
    (None, 40, None, NOT_ASSESSABLE, "CREATININE", None, 1.2),
    (1.0, None, None, NOT_ASSESSABLE, "CREATININE", 1.0, None),  # no age, no limit
    (1.0, None, 80.0, MET, "CRCL", 80.0, 60.0),
])
def test_creatinine(creat, age, crcl, expected, basis, value, limit):
    row = eligibility.assess_creatinine(creat, age, crcl, bands=BANDS, crcl_min=60)
    assert (row["result"], row["basis"], row["value"], row["limit"]) == (expected, basis, value, limit)


def test_creatinine_detail_names_the_basis():
    row = eligibility.assess_creatinine(1.1, 8, 72.0, bands=BANDS, crcl_min=60)
    assert row["detail"] == ("creatinine: 1.1 mg/dL (age 8: limit 1); met by measured CrCl 72 mL/min/1.73 m2 "
                             "(limit 60)")


@pytest.mark.parametrize("lvef, fs, expected, basis", [
    (45.0, None, MET, "LVEF"),              # LVEF exactly 45
    (44.9, None, NOT_ASSESSABLE, "LVEF"),   # FS missing could still meet it
    (None, 28.0, MET, "FS"),                # FS exactly 28
    (None, 27.9, NOT_ASSESSABLE, "FS"),
    (44.9, 28.0, MET, "FS"),                # either
    (45.0, 27.9, MET, "LVEF"),
    (45.0, 28.0, MET, "LVEF"),
    (44.9, 27.9, NOT_MET, "LVEF"),          # both measured, both below
    (None, None, NOT_ASSESSABLE, "LVEF"),
])
def test_cardiac(lvef, fs, expected, basis):
    row = eligibility.assess_cardiac(lvef, fs, lvef_min=45, fs_min=28)
    assert (row["result"], row["basis"]) == (expected, basis)


@pytest.mark.parametrize("spo2, expected", [(92.0, MET), (91.9, NOT_MET), (100.0, MET), (None, NOT_ASSESSABLE)])
def test_spo2(spo2, expected):
    assert eligibility.assess_spo2(spo2, min_pct=92)["result"] == expected


def test_evaluate_with_nothing_but_an_age():
    # inputs as pandas gives them: every missing value NaN (a NaN below_lloq flag must not count as true)
    con = _core(rows=False)
    mrd.build(con, load_protocol())
    run_sql_file(con, "mart/eligibility_inputs.sql")
    columns = [c[0] for c in con.sql("SELECT * FROM eligibility_inputs").description]
    inputs = pd.DataFrame([{"participant_id": "CD22-009", "consent_date": pd.Timestamp("2026-02-02"),
                            "age_at_consent_years": 30.0, "ld_start_date": pd.NaT, "n_forms": 0}],
                          columns=columns).astype({"tbili_below_lloq": float, "creat_below_lloq": float})
    rows = eligibility.evaluate(inputs, load_protocol()["eligibility"])
    assert rows.set_index("criterion")["result"].to_dict() == {
        "AGE": MET, "CD19_CAR_INTERVAL": NOT_ASSESSABLE, "SCREENING_MRD": NOT_ASSESSABLE, "TBILI": NOT_ASSESSABLE,
        "AST": NOT_ASSESSABLE, "ALT": NOT_ASSESSABLE, "CREATININE": NOT_ASSESSABLE, "CARDIAC": NOT_ASSESSABLE,
        "SPO2": NOT_ASSESSABLE}
    assert rows.criterion_order.tolist() == list(range(1, 10))


def _core(rows: bool = True) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    run_sql_file(con, "ops/schema.sql")
    run_sql_file(con, "core/schema.sql")
    if not rows:
        return con
    con.execute("""INSERT INTO core.participants (participant_id, consent_date, age_at_consent_years,
                   cd19_infusion_date, ld_start_date, infusion_date, infused) VALUES
        ('CD22-001', '2026-02-02', 8, '2025-12-01', '2026-03-02', '2026-03-07', TRUE),
        ('CD22-002', '2026-02-09', 2, '2025-12-10', NULL, NULL, FALSE),
        ('CD22-003', '2026-02-16', 40, '2025-09-01', '2026-04-03', '2026-04-08', TRUE)""")
    # 001: 2026-03-02 - 2025-12-01 = 91 days; 003: 2026-04-03 - 2025-09-01 = 214 days
    con.execute("""INSERT INTO core.lab_results (participant_id, accession, test_code, collected_at, resulted_at,
                   value, comparator, below_lloq, ref_high, unit) VALUES
        ('CD22-001', 'A1', 'TBILI', '2026-02-20 08:00', '2026-02-20 10:00', 1.0, NULL, FALSE, 1.2, 'mg/dL'),
        ('CD22-001', 'A2', 'TBILI', '2026-02-27 08:00', '2026-02-27 10:00', 2.4, NULL, FALSE, 1.2, 'mg/dL'),
        ('CD22-001', 'A3', 'TBILI', '2026-03-01 08:00', '2026-03-01 10:00', NULL, NULL, FALSE, 1.2, 'mg/dL'),
        ('CD22-001', 'A4', 'TBILI', '2026-03-02 07:00', '2026-03-02 09:00', 9.9, NULL, FALSE, 1.2, 'mg/dL'),
        ('CD22-001', 'A2', 'AST', '2026-02-27 08:00', '2026-02-27 10:00', 401, NULL, FALSE, 40, 'U/L'),
        ('CD22-001', 'A2', 'ALT', '2026-02-27 08:00', '2026-02-27 10:00', 50, NULL, FALSE, NULL, 'U/L'),
        ('CD22-001', 'A2', 'CREAT', '2026-02-27 08:00', '2026-02-27 10:00', 1.1, NULL, FALSE, 0.7, 'mg/dL'),
        ('CD22-002', 'B1', 'TBILI', '2026-02-10 08:00', '2026-02-10 10:00', 0.3, NULL, FALSE, 1.2, 'mg/dL'),
        ('CD22-002', 'B2', 'TBILI', '2026-02-20 08:00', '2026-02-20 10:00', NULL, NULL, TRUE, 1.2, 'mg/dL'),
        ('CD22-002', 'B2', 'CREAT', '2026-02-20 08:00', '2026-02-20 10:00', 0.9, NULL, FALSE, 0.7, 'mg/dL'),
        ('CD22-003', 'C1', 'CREAT', '2026-03-30 08:00', '2026-03-30 10:00', 1.3, NULL, FALSE, 1.1, 'mg/dL')""")
    con.execute("""INSERT INTO core.flow_samples (participant_id, sample_id, panel, specimen, collected_on, qc,
                   events_total, events_leukemic) VALUES
        ('CD22-001', '001_BM_OLD', 'MRD', 'BM', '2025-11-20', 'PASS', 500000, 0),
        ('CD22-001', '001_BM_SCR', 'MRD', 'BM', '2026-02-24', 'PASS', 500000, 3),
        ('CD22-001', '001_BM_BAD', 'MRD', 'BM', '2026-02-26', 'FAIL', 500000, 0),
        ('CD22-001', '001_PB_SCR', 'MRD', 'PB', '2026-02-27', 'PASS', 500000, 900),
        ('CD22-001', '001_BM_D28', 'MRD', 'BM', '2026-04-04', 'PASS', 500000, 900),
        ('CD22-002', '002_BM_SCR', 'MRD', 'BM', '2026-02-12', 'PASS', 100000, 5),
        ('CD22-003', '003_BM_SCR', 'MRD', 'BM', '2026-03-25', 'PASS', 500000, 100)""")
    con.execute("""INSERT INTO core.eligibility_assessments (participant_id, event, lvef_pct, fs_pct, spo2_pct,
                   crcl_measured) VALUES
        ('CD22-001', 'screening_arm_1', 44.0, 28.0, 92.0, NULL),
        ('CD22-003', 'screening_arm_1', 40.0, 25.0, 91.9, 65.0)""")
    return con


def test_build_on_a_hand_made_core():
    con = _core()
    protocol = load_protocol()
    mrd.build(con, protocol)
    eligibility.build(con, protocol)
    rows = con.sql("""SELECT participant_id, criterion, value, "limit", result, basis, CAST(source_date AS VARCHAR),
                             source FROM mart.eligibility ORDER BY participant_id, criterion_order""").fetchall()
    assert rows == [
        ("CD22-001", "AGE", 8.0, 65.0, MET, None, "2026-02-02", "EDC enrollment (age at consent)"),
        ("CD22-001", "CD19_CAR_INTERVAL", 91.0, 214.0, MET, None, "2026-03-02",
         "EDC enrollment (CD19 CAR infusion date), treatment (lymphodepletion start)"),
        # latest evaluable BM before LD, after the CD19 CAR: not the QC failure, the PB sample or day 28
        ("CD22-001", "SCREENING_MRD", 6e-6, None, MET, None, "2026-02-24", "001_BM_SCR"),
        # latest bilirubin with a result before the LD day: A2 (A3 has none, A4 is on the LD day)
        ("CD22-001", "TBILI", 2.4, 2.4, MET, None, "2026-02-27", "lab accession A2"),
        ("CD22-001", "AST", 401.0, 400.0, NOT_MET, None, "2026-02-27", "lab accession A2"),
        ("CD22-001", "ALT", 50.0, None, NOT_ASSESSABLE, None, "2026-02-27", "lab accession A2"),
        ("CD22-001", "CREATININE", 1.1, 1.0, NOT_MET, "CREATININE", "2026-02-27", "lab accession A2"),
        ("CD22-001", "CARDIAC", 28.0, 28.0, MET, "FS", None, "EDC eligibility form (screening_arm_1)"),
        ("CD22-001", "SPO2", 92.0, 92.0, MET, None, None, "EDC eligibility form (screening_arm_1)"),
        # the screen failure: never lymphodepleted, so the latest values available
        ("CD22-002", "AGE", 2.0, 65.0, NOT_MET, None, "2026-02-09", "EDC enrollment (age at consent)"),
        ("CD22-002", "CD19_CAR_INTERVAL", None, 214.0, NOT_ASSESSABLE, None, None,
         "EDC enrollment (CD19 CAR infusion date), treatment (lymphodepletion start)"),
        # 5 events of 100000: below k_lod but lod 2e-4 > 1e-4
        ("CD22-002", "SCREENING_MRD", 5e-5, None, NOT_MET, None, "2026-02-12", "002_BM_SCR"),
        ("CD22-002", "TBILI", None, 2.4, MET, None, "2026-02-20", "lab accession B2"),
        ("CD22-002", "AST", None, None, NOT_ASSESSABLE, None, None, None),
        ("CD22-002", "ALT", None, None, NOT_ASSESSABLE, None, None, None),
        ("CD22-002", "CREATININE", 0.9, 0.8, NOT_MET, "CREATININE", "2026-02-20", "lab accession B2"),
        ("CD22-002", "CARDIAC", None, 45.0, NOT_ASSESSABLE, "LVEF", None, None),
        ("CD22-002", "SPO2", None, 92.0, NOT_ASSESSABLE, None, None, None),
        ("CD22-003", "AGE", 40.0, 65.0, MET, None, "2026-02-16", "EDC enrollment (age at consent)"),
        ("CD22-003", "CD19_CAR_INTERVAL", 214.0, 214.0, MET, None, "2026-04-03",
         "EDC enrollment (CD19 CAR infusion date), treatment (lymphodepletion start)"),
        ("CD22-003", "SCREENING_MRD", 2e-4, None, NOT_MET, None, "2026-03-25", "003_BM_SCR"),
        ("CD22-003", "TBILI", None, None, NOT_ASSESSABLE, None, None, None),
        ("CD22-003", "AST", None, None, NOT_ASSESSABLE, None, None, None),
        ("CD22-003", "ALT", None, None, NOT_ASSESSABLE, None, None, None),
        ("CD22-003", "CREATININE", 65.0, 60.0, MET, "CRCL", "2026-03-30", "lab accession C1"),
        ("CD22-003", "CARDIAC", 40.0, 45.0, NOT_MET, "LVEF", None, "EDC eligibility form (screening_arm_1)"),
        ("CD22-003", "SPO2", 91.9, 92.0, NOT_MET, None, None, "EDC eligibility form (screening_arm_1)"),
    ]
    details = dict(con.sql("SELECT criterion, detail FROM mart.eligibility WHERE participant_id = 'CD22-002'")
                   .fetchall())
    assert details["TBILI"] == ("below the limit of quantitation; limit 2 x ULN 1.2 = 2.4 "
                                "(never lymphodepleted: latest value available)")
    assert details["CARDIAC"] == "LVEF missing (limit 45), FS missing (limit 28); no eligibility form"
    assert con.sql("SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'mart' AND table_name = 'eligibility' "
                   "AND comment IS NULL").fetchall() == [(0,)]
    before = con.sql("SELECT * FROM mart.eligibility ORDER BY ALL").fetchall()
    eligibility.build(con, protocol)
    assert con.sql("SELECT * FROM mart.eligibility ORDER BY ALL").fetchall() == before

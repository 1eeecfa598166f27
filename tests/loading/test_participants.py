"""core.participants ages (derivations §6.1): completed years at consent as read, and at the infusion from the
days to the next birthday, hand-computed from dates of birth that never reach the warehouse."""
from datetime import date

import duckdb
import pytest

from car22.intake.sources import completed_years, next_birthday
from car22.sql import run_sql_file

# date of birth (only to compute the inputs as the reader does), consent, infusion -> ages at consent and infusion
AGES = [
    ("2016-02-20", "2026-02-10", "2026-03-10", 9, 10),      # the 10th birthday between consent and infusion
    ("2016-03-20", "2026-02-10", "2026-03-10", 9, 9),       # ... after the infusion
    ("2016-03-10", "2026-02-10", "2026-03-10", 9, 10),      # infused on the 10th birthday
    ("2016-03-11", "2026-02-10", "2026-03-10", 9, 9),       # infused the day before it
    ("2016-02-20", "2026-02-10", "2027-02-19", 9, 10),      # a year later, the day before the 11th birthday
    ("2016-02-20", "2026-02-10", "2027-02-20", 9, 11),      # ... and on it
    ("1960-03-01", "2026-02-28", "2026-03-01", 65, 66),     # 66 on the 66th birthday
    ("2012-02-29", "2026-01-10", "2026-02-28", 13, 13),     # born 29 February: 2026 is a common year
    ("2012-02-29", "2026-01-10", "2026-03-01", 13, 14),     # ... the year completes on 1 March
    ("2012-02-29", "2027-12-01", "2028-02-29", 15, 16),     # 2028 is a leap year: on 29 February
    ("2000-06-15", "2026-02-10", None, 25, None),           # never infused
]


@pytest.mark.parametrize("dob, consent, infusion, at_consent, at_infusion", AGES)
def test_ages_in_completed_years(dob, consent, infusion, at_consent, at_infusion):
    born, consented = date.fromisoformat(dob), date.fromisoformat(consent)
    con = duckdb.connect()
    run_sql_file(con, "core/schema.sql")
    con.execute("CREATE SCHEMA staging")
    con.execute("""CREATE TABLE staging.edc_enrollment_current AS SELECT 'CD22-001' AS participant_id,
                   FALSE AS deleted, TIMESTAMP '2026-03-01' AS export_time, 'screening_arm_1' AS event, 1 AS instance,
                   'M' AS sex, ?::DATE AS consent_date, ?::INTEGER AS age_at_consent_years,
                   ?::INTEGER AS days_to_next_birthday, 30.0 AS weight_kg, 130.0 AS height_cm,
                   'tisagenlecleucel' AS cd19_product, DATE '2025-11-01' AS cd19_infusion_date,
                   FALSE AS hsct_eligible""",
                [consent, completed_years(born, consented), (next_birthday(born, consented) - consented).days])
    con.execute("""CREATE TABLE staging.edc_treatment_current AS SELECT 'CD22-001' AS participant_id,
                   FALSE AS deleted, 'cd22_car' AS agent, ?::DATE AS admin_date, 1e6 AS car_cells_per_kg
                   WHERE ? IS NOT NULL""", [infusion, infusion])
    con.execute("""CREATE TABLE staging.edc_followup_current (participant_id VARCHAR, deleted BOOLEAN,
                   export_time TIMESTAMP, event VARCHAR, instance INTEGER, hsct_date DATE, next_therapy_date DATE,
                   vital_status VARCHAR, death_date DATE, death_cause VARCHAR, last_contact_date DATE,
                   off_study_date DATE)""")
    run_sql_file(con, "core/participants.sql")
    assert con.sql("SELECT age_at_consent_years, age_at_infusion_years FROM core.participants").fetchall() == [
        (at_consent, at_infusion)]
    # the reader's own helpers agree with the warehouse at the infusion
    if infusion:
        assert completed_years(born, date.fromisoformat(infusion)) == at_infusion

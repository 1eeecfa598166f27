"""The bare baseline: the same CSV files read with DuckDB's read_csv and the same core and mart tables
computed in SQL — no orchestration, no validation, no audit, no archive. What this stack does at best.

Scope: the tables that carry the volume and the endpoints: labs (typed, unit-converted, current version,
CTCAE grades with the project's criteria table and SQL), enrollment and treatment (participants, study days),
flow MRD (current version and MRD status).
"""
from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pandas as pd

from car22.config import load_protocol
from car22.sql import SQL_DIR, set_protocol_variables

UNIT_FACTORS = """
SELECT * FROM (VALUES
 ('WBC','10^9/L','k/ul',1.0),('ANC','10^9/L','k/ul',1.0),('ALC','10^9/L','k/ul',1.0),('PLT','10^9/L','k/ul',1.0),
 ('HGB','g/L','g/dl',10.0),('HGB','g/L','g/l',1.0),('CREAT','mg/dL','mg/dl',1.0),('CREAT','mg/dL','umol/l',1/88.42),
 ('TBILI','mg/dL','mg/dl',1.0),('TBILI','mg/dL','umol/l',1/17.1),('AST','U/L','u/l',1.0),('ALT','U/L','u/l',1.0),
 ('LDH','U/L','u/l',1.0),('CRP','mg/L','mg/l',1.0),('FERR','ng/mL','ng/ml',1.0),('FIBR','mg/dL','mg/dl',1.0),
 ('K','mmol/L','mmol/l',1.0),('IL6','pg/mL','pg/ml',1.0)) t(test_code, unit, unit_key, factor)"""


def run(inbox: Path, database: str = ":memory:") -> dict[str, float]:
    """Compute the baseline tables; return seconds per stage (load = read_csv, derive = the SQL)."""
    con = duckdb.connect(database)
    protocol = load_protocol()
    set_protocol_variables(con, protocol)
    times = {}
    start = time.perf_counter()
    labs = sorted(str(p) for p in inbox.glob("labs_*.csv"))
    con.execute(f"""CREATE TABLE raw_labs AS SELECT *, regexp_extract(filename, '_(\\d{{8}}T\\d{{4}})', 1) AS export
        FROM read_csv({labs}, all_varchar = true, filename = true, ignore_errors = true, header = true)""")
    con.execute(f"""CREATE TABLE raw_enrollment AS SELECT * FROM read_csv('{inbox}/edc_enrollment_*.csv',
        all_varchar = true, filename = true, header = true)""")
    con.execute(f"""CREATE TABLE raw_treatment AS SELECT * FROM read_csv('{inbox}/edc_treatment_*.csv',
        all_varchar = true, filename = true, header = true)""")
    mrd = [str(p) for p in inbox.glob("flow_mrd_*.csv") if not p.read_bytes().startswith(b"PK")]
    con.execute(f"""CREATE TABLE raw_mrd AS SELECT * FROM read_csv({mrd}, all_varchar = true, filename = true,
        header = true, ignore_errors = true)""")
    times["load"] = time.perf_counter() - start
    start = time.perf_counter()
    con.execute("CREATE SCHEMA core; CREATE SCHEMA mart;")
    con.execute("""CREATE TABLE core.participants AS
        WITH e AS (SELECT * FROM raw_enrollment QUALIFY row_number() OVER (PARTITION BY record_id ORDER BY filename DESC) = 1),
             t AS (SELECT * FROM raw_treatment QUALIFY row_number() OVER (PARTITION BY record_id, redcap_repeat_instance
                                                                       ORDER BY filename DESC) = 1)
        SELECT e.record_id AS participant_id,
               min(CAST(t.admin_date AS DATE)) FILTER (WHERE t.agent = '3') AS infusion_date,
               min(CAST(t.admin_date AS DATE)) FILTER (WHERE t.agent IN ('1', '2')) AS ld_start_date,
               min(CAST(t.admin_date AS DATE)) FILTER (WHERE t.agent = '3') IS NOT NULL AS infused
        FROM e LEFT JOIN t USING (record_id) GROUP BY e.record_id""")
    con.execute(f"""CREATE TABLE core.lab_results AS
        WITH typed AS (
            SELECT SUBJECT_ID AS participant_id, ACCESSION AS accession, TEST_CODE AS test_code,
                   strptime(COLLECTED_AT, '%Y-%m-%d %H:%M') AS collected_at,
                   strptime(RESULTED_AT, '%Y-%m-%d %H:%M') AS resulted_at, STATUS AS status, export,
                   TRY_CAST(regexp_extract(RESULT, '^[<>]?\\s*([0-9.eE+-]+)$', 1) AS DOUBLE) AS number,
                   nullif(regexp_extract(RESULT, '^([<>])', 1), '') AS comparator,
                   TRY_CAST(REF_LOW AS DOUBLE) AS ref_low, TRY_CAST(REF_HIGH AS DOUBLE) AS ref_high,
                   lower(replace(trim(UNITS), 'µ', 'u')) AS unit_key
            FROM raw_labs WHERE SUBJECT_ID IS NOT NULL AND ACCESSION IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY ACCESSION, TEST_CODE ORDER BY RESULTED_AT DESC,
                    CASE STATUS WHEN 'C' THEN 3 WHEN 'F' THEN 2 ELSE 1 END DESC, export DESC) = 1)
        SELECT t.participant_id, t.accession, t.test_code, t.collected_at,
               CAST(t.collected_at AS DATE) - p.infusion_date AS study_day,
               t.number * f.factor AS value, f.unit, t.comparator,
               CASE WHEN t.number IS NULL THEN 'NO_RESULT' WHEN t.comparator IS NULL THEN 'VALUE' ELSE 'CENSORED' END
                   AS result_kind,
               t.ref_low * f.factor AS ref_low, t.ref_high * f.factor AS ref_high
        FROM typed t JOIN core.participants p USING (participant_id)
        JOIN ({UNIT_FACTORS}) f ON f.test_code = t.test_code AND f.unit_key = t.unit_key""")
    criteria = pd.read_csv(SQL_DIR / "ctcae_criteria.csv", dtype={"required": str, "baseline": str})
    con.register("criteria_frame", criteria)
    con.execute("CREATE TABLE mart.ctcae_criteria AS SELECT * FROM criteria_frame")
    con.execute((SQL_DIR / "mart" / "lab_toxicity.sql").read_text())
    con.execute("""CREATE TABLE mart.mrd_assessments AS
        SELECT SUBJECT AS participant_id, "column00" AS sample_id,
               TRY_CAST("CD45+/Viable | Count" AS DOUBLE) AS n, TRY_CAST("CD45+/Viable/Blasts | Count" AS DOUBLE) AS e,
               CASE WHEN QC <> 'PASS' OR n IS NULL OR n = 0 THEN 'NOT_EVALUABLE'
                    WHEN e >= 20 AND e * 10000 >= n THEN 'POSITIVE'
                    WHEN e >= 20 AND e < 50 THEN 'POSITIVE_NOT_QUANTIFIABLE'
                    WHEN e >= 20 THEN 'POSITIVE_LOW'
                    WHEN 20 * 10000 <= n THEN 'NEGATIVE' ELSE 'NEGATIVE_INSUFFICIENT_SENSITIVITY' END AS mrd_status
        FROM raw_mrd WHERE SUBJECT IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY "column00" ORDER BY filename DESC) = 1""")
    times["derive"] = time.perf_counter() - start
    times["rows_labs"] = con.execute("SELECT count(*) FROM raw_labs").fetchall()[0][0]
    con.close()
    return times

"""MRD status (derivations §2): every row of the decision table and its boundaries, as a table."""
import duckdb
import pandas as pd
import pytest

from car22.config import load_protocol
from car22.rules import mrd
from car22.sql import run_sql_file

SETTINGS = dict(threshold=1e-4, min_cluster=20, min_quantifiable=50)


@pytest.mark.parametrize("e, n, qc, expected", [
    (5, 500_000, "FAIL", "NOT_EVALUABLE"),                     # QC not PASS
    (5, None, "PASS", "NOT_EVALUABLE"),                        # N missing
    (0, 0, "PASS", "NOT_EVALUABLE"),                           # N = 0
    (None, 500_000, "PASS", "NOT_EVALUABLE"),                  # E missing
    (20, 200_000, "PASS", "POSITIVE"),                         # E/N exactly 1e-4, E exactly k_lod
    (50, 500_000, "PASS", "POSITIVE"),                         # exactly 1e-4
    (150, 500_000, "PASS", "POSITIVE"),                        # 3e-4
    (20, 200_001, "PASS", "POSITIVE_NOT_QUANTIFIABLE"),        # just below 1e-4, E < k_lloq
    (49, 500_000, "PASS", "POSITIVE_NOT_QUANTIFIABLE"),        # E = 49 < 50
    (50, 500_001, "PASS", "POSITIVE_LOW"),                     # E exactly k_lloq, just below 1e-4
    (60, 900_000, "PASS", "POSITIVE_LOW"),
    (19, 200_000, "PASS", "NEGATIVE"),                         # E just below k_lod; lod exactly 1e-4
    (0, 1_000_000, "PASS", "NEGATIVE"),
    (19, 199_999, "PASS", "NEGATIVE_INSUFFICIENT_SENSITIVITY"),  # lod 20/199999 > 1e-4
    (3, 150_000, "PASS", "NEGATIVE_INSUFFICIENT_SENSITIVITY"),
    (19, 100, "PASS", "NEGATIVE_INSUFFICIENT_SENSITIVITY"),   # E/N large but below the cluster minimum
])
def test_decision_table(e, n, qc, expected):
    status = mrd.mrd_status(pd.Series([e], dtype="Int64"), pd.Series([n], dtype="Int64"), pd.Series([qc]),
                            **SETTINGS)
    assert status.tolist() == [expected]


@pytest.mark.parametrize("pct, abc, expected", [
    (19.9, 3000, "NEG"), (20.0, 3000, "POS"), (20.0, 1499, "DIM"), (95, 1500, "POS"), (95, 1499.9, "DIM"),
    (10, None, "NEG"), (95, None, None), (None, 800, None), (None, None, None),
])
def test_cd22_category(pct, abc, expected):
    category = mrd.cd22_category(pd.Series([pct], dtype="Float64"), pd.Series([abc], dtype="Float64"),
                                 neg_below_pct=20, dim_below_abc=1500)
    assert (category.iloc[0] if pd.notna(category.iloc[0]) else None) == expected


def test_build_stores_fractions_and_antigens_only_on_detected_disease():
    con = duckdb.connect()
    run_sql_file(con, "ops/schema.sql")
    run_sql_file(con, "core/schema.sql")
    con.execute("""INSERT INTO core.flow_samples (participant_id, sample_id, panel, specimen, collected_on, study_day,
                   qc, events_total, events_leukemic, blasts_pct, cd19_pos_pct, cd22_pos_pct, cd22_abc) VALUES
        ('CD22-001', 's1', 'MRD', 'BM', '2026-04-06', 28, 'PASS', 200000, 20, 99.0, 5, 90, 1000),
        ('CD22-001', 's2', 'MRD', 'BM', '2026-07-06', 119, 'PASS', 500000, 3, 0.1, 5, 90, 3000),
        ('CD22-001', 'p1', 'MRD', 'PB', '2026-07-06', 119, 'PASS', 500000, 300, 0.1, 5, 90, 3000),
        ('CD22-001', 'c1', 'CAR', 'PB', '2026-07-06', 119, 'PASS', NULL, NULL, NULL, NULL, NULL, NULL)""")
    mrd.build(con, load_protocol())
    rows = con.sql("SELECT sample_id, specimen, mrd_fraction, lod_fraction, mrd_status, cd22_pos_pct, cd22_category "
                   "FROM mart.mrd_assessments ORDER BY sample_id").fetchall()
    assert rows == [
        ("p1", "PB", 6e-4, 4e-5, "POSITIVE", 90.0, "POS"),
        ("s1", "BM", 1e-4, 1e-4, "POSITIVE", 90.0, "DIM"),
        ("s2", "BM", 6e-6, 4e-5, "NEGATIVE", None, None),
    ]
    undocumented = con.sql("SELECT count(*) FROM duckdb_columns() WHERE table_name = 'mrd_assessments' "
                           "AND comment IS NULL").fetchall()
    assert undocumented == [(0,)]

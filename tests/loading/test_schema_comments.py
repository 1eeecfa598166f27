"""Every raw and staging column is commented (README "The tables"), from the sources' descriptions."""
from __future__ import annotations

import duckdb
import pytest

from car22.loading.load import ensure_schema


@pytest.fixture(scope="module")
def con():
    from car22.loading import versions

    con = duckdb.connect()
    ensure_schema(con)
    versions.build_current_versions(con)
    return con


def comment(con, schema: str, table: str, column: str) -> str | None:
    found = con.execute("SELECT comment FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
                        "AND column_name = ?", [schema, table, column]).fetchall()
    return found[0][0] if found else None


def test_no_raw_or_staging_column_without_a_comment(con):
    assert con.execute("SELECT count(*) FROM duckdb_columns() WHERE schema_name IN ('raw', 'staging')"
                       ).fetchall()[0][0] > 300
    assert con.execute("SELECT schema_name, table_name, column_name FROM duckdb_columns() "
                       "WHERE schema_name IN ('raw', 'staging') AND coalesce(comment, '') = ''").fetchall() == []


@pytest.mark.parametrize("schema, table, column, expected", [
    ("raw", "labs", "SUBJECT_ID", "Column 'SUBJECT_ID' of the labs export, as read (text)."),
    ("raw", "edc_followup", "followup_complete", "Column 'followup_complete' of the edc_followup export, as "
                                                 "read (text), optional in the header."),
    ("raw", "labs", "file_id", "File (ops.files) the row came from."),
    ("raw", "edc_enrollment", "dob", None),
    ("staging", "edc_enrollment", "dob", None),
    ("staging", "labs", "accession", "'ACCESSION' typed as VARCHAR (required); part of the record identity."),
    ("staging", "edc_enrollment", "sex", "'sex' typed as VARCHAR; codes 1 = M, 2 = F."),
    ("staging", "qpcr", "lloq_copies_per_ug", "'LLOQ (copies/ug)' typed as DOUBLE."),
    ("staging", "flow_car", "cd3_abs", "CD3+ count in 10^9/L (CD3_ABS cells/uL x 0.001)."),
    ("staging", "edc_enrollment", "age_at_consent_years", "Completed years at consent (derivations §6.1: the "
     "calendar age), from the date of birth as the file is read; the date of birth is dropped."),
    ("staging", "labs", "content_hash", "MD5 of the typed fields: the same hash is the same version of the record."),
    ("staging", "labs_current", "accession", "'ACCESSION' typed as VARCHAR (required); part of the record identity."),
    ("staging", "edc_followup_current", "deleted",
     "TRUE when the record is missing from the newest EDC snapshot of its instrument."),
])
def test_comment(con, schema, table, column, expected):
    assert comment(con, schema, table, column) == expected

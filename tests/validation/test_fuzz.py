"""Fuzzed exports (hypothesis): valid exports of every source, mutated, never crash ingestion; every file gets a
status and a reason, rows balance, the warehouse stays queryable. CAR22_FUZZ_EXAMPLES sets the number of
cases (`make reliability` runs thousands)."""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_nightly import exports
from test_validation import (
    CAR,
    CAR_OK,
    CRS,
    CRS_OK,
    ICANS,
    ICANS_OK,
    MRD,
    MRD_OK,
    QPCR,
    QPCR_OK,
)

from car22.config import load_protocol
from car22.loading.load import ensure_schema, ingest_file

EXAMPLES = int(os.environ.get("CAR22_FUZZ_EXAMPLES", "300"))
BASES = {name: text for name, text in exports().items() if not text.startswith("PK")} | {
    "flow_mrd_20260410T0900.csv": f"{MRD}\n{MRD_OK}\nMean,,,,,,1,1,1,1,1,1\n",
    "flow_car_20260410T0930.csv": f"{CAR}\n{CAR_OK}\n",
    "qpcr_20260410T1100.csv": f"{QPCR}\n{QPCR_OK}\n",
    "edc_crs_daily_20260410T0100.csv": f"{CRS}\n{CRS_OK}\n",
    "edc_icans_daily_20260410T0100.csv": f"{ICANS}\n{ICANS_OK}\n",
}
NASTY = ["'; DROP TABLE raw.labs; --", "../../etc/passwd", "\x00", "\x1b[31mred", "CD22\u2010001", "ＣＤ２２-００１",
         "=cmd|' /C calc'!A0", "\u202eexe.csv", "😀", "NaN", "-1e309", "9" * 400, '"', "\r"]


def _columns(text: str) -> list[list[str]]:
    return [line.split(",") for line in text.splitlines()]


def _join(rows: list[list[str]]) -> str:
    return "\n".join(",".join(r) for r in rows) + "\n"


@st.composite
def mutated(draw) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(BASES)))
    text = BASES[name]
    kind = draw(st.sampled_from(["truncate", "delimiter", "drop_column", "extra_column", "duplicate_column",
                                 "header_only", "empty", "random_bytes", "huge_field", "latin1", "utf16",
                                 "nasty_value", "nasty_name", "swap_lines"]))
    data = text.encode("utf-8")
    rows = _columns(text)
    if kind == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif kind == "delimiter":
        data = text.replace(",", draw(st.sampled_from([";", "\t", "|"]))).encode()
    elif kind in ("drop_column", "extra_column", "duplicate_column"):
        i = draw(st.integers(0, len(rows[0]) - 1))
        for row in rows:
            if i < len(row):
                if kind == "drop_column":
                    row.pop(i)
                elif kind == "extra_column":
                    row.insert(i, "extra")
                else:
                    row.insert(i, row[i])
        data = _join(rows).encode()
    elif kind == "header_only":
        data = (text.splitlines()[0] + "\n").encode()
    elif kind == "empty":
        data = b""
    elif kind == "random_bytes":
        data = draw(st.binary(min_size=0, max_size=300))
    elif kind == "huge_field":
        r, c = draw(st.integers(1, max(1, len(rows) - 1))), draw(st.integers(0, len(rows[0]) - 1))
        if r < len(rows) and c < len(rows[r]):
            rows[r][c] = "x" * 2_000_000
        data = _join(rows).encode()
    elif kind == "latin1":
        data = text.replace("Neutrophils", "Neutrophilès").encode("latin-1", errors="replace")
    elif kind == "utf16":
        data = text.encode("utf-16")
    elif kind == "nasty_value":
        r, c = draw(st.integers(1, max(1, len(rows) - 1))), draw(st.integers(0, len(rows[0]) - 1))
        if r < len(rows) and c < len(rows[r]):
            rows[r][c] = draw(st.sampled_from(NASTY)).replace(",", ";").replace("\n", " ")
        data = _join(rows).encode("utf-8", errors="surrogatepass")
    elif kind == "nasty_name":
        stem, suffix = name.rsplit("_", 1)
        name = draw(st.sampled_from([f"{stem}'; drop table ops.files; --_{suffix}", f"..{stem}.._{suffix}",
                                     f"{stem}\x1b[0m_{suffix}", f"{stem}\u2010x_{suffix}", f"{stem} {suffix}"]))
    elif kind == "swap_lines" and len(rows) > 2:
        rows[1], rows[-1] = rows[-1], rows[1]
        data = _join(rows).encode()
    return name, data


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    from car22.validation.runner import Validator

    folder = tmp_path_factory.mktemp("fuzz")
    con = duckdb.connect(str(folder / "fuzz.duckdb"))
    ensure_schema(con)
    con.execute("INSERT INTO ops.runs (run_id, started_at, status) VALUES (1, now(), 'running')")
    return con, Validator(folder / "reports", load_protocol()), folder


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                     HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=mutated())
def test_mutated_exports_never_crash_and_always_balance(warehouse, case):
    con, validator, folder = warehouse
    name, data = case
    path = folder / "inbox" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    outcome = ingest_file(con, path, run_id=1, archive_dir=folder / "archive", validator=validator,
                          received_at=datetime.now(), enrolled_ids={"CD22-001", "CD22-002"})
    assert outcome.status in ("loaded", "partially_loaded", "rejected", "duplicate", "quarantined")
    if outcome.status in ("duplicate", "quarantined"):
        assert outcome.reason and outcome.rows_read == 0
    assert outcome.rows_read == outcome.rows_loaded + outcome.rows_rejected
    row = con.execute("SELECT rows_read, rows_loaded, rows_rejected, source FROM ops.files WHERE file_id = ?",
                      [outcome.file_id]).fetchall()[0]
    assert row[0] == row[1] + row[2]
    if row[3]:
        in_raw = con.execute(f"SELECT count(*) FROM raw.{row[3]} WHERE file_id = ?", [outcome.file_id]).fetchall()
        rejected = con.execute("SELECT count(*) FROM ops.rejected_rows WHERE file_id = ?",
                               [outcome.file_id]).fetchall()
        assert in_raw[0][0] == row[0] and rejected[0][0] == row[2]
    assert Path(con.execute("SELECT archive_path FROM ops.files WHERE file_id = ?",
                            [outcome.file_id]).fetchall()[0][0]).read_bytes() == data
    assert con.execute("SELECT count(*) FROM ops.files").fetchall()[0][0] >= 1

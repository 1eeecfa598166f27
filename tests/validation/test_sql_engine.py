"""The suites compiled to DuckDB SQL against GX's own pandas engine, the oracle (issue #19).

Every hand-made case of test_validation.py runs under both engines (its `validator` fixture is parametrized);
here both engines validate the demo's exports and fuzzed exports and must report the same outcome and the same
failing rows, with the same reasons, for every expectation of every suite; and the translation of Python's
regex meaning to DuckDB's RE2 is checked on the texts where the two differ.
"""
from __future__ import annotations

import os
import re
from datetime import datetime

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from test_fuzz import mutated

from car22.config import load_protocol
from car22.demo import generate
from car22.intake.reading import Unreadable, export_time, read_export
from car22.intake.sources import FORMAT_PATTERNS
from car22.loading.load import validation_input
from car22.validation.runner import Validator
from car22.validation import sql_engine
from car22.validation.sql_engine import python_regex_for_re2

EXAMPLES = int(os.environ.get("CAR22_FUZZ_EXAMPLES", "300")) // 3
RUN_TIME = datetime(2027, 1, 1)


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    folder = tmp_path_factory.mktemp("engines")
    return {engine: Validator(folder / engine, load_protocol(), engine=engine) for engine in ("sql", "gx")}


def validation_frame_of(name: str, data: bytes):
    """The frame a night hands the validator for this file (car22.loading.load), or None when unreadable."""
    try:
        rows = read_export(data)
    except Unreadable:
        return None
    return rows.source, validation_input(rows)[2]


def results(engines, name: str, data: bytes, enrolled: set[str]):
    given = validation_frame_of(name, data)
    if given is None:
        return None
    source, frame = given
    out = {}
    for engine, validator in engines.items():
        checked = validator.validate(source, frame, file_id=f"{engine}-{abs(hash(name))}", file_name=name,
                                     export_time=export_time(name), run_time=RUN_TIME, enrolled_ids=enrolled)
        out[engine] = (checked.outcomes, checked.findings)
    return out


def test_both_engines_agree_on_every_demo_export(engines, tmp_path, monkeypatch):
    """A value set is searched as a list on small files and as a join on large ones (sql_engine._in_set): the
    demo's files are small, so the SQL engine checks each file a second time with every set as a join."""
    written = generate(tmp_path / "inbox")
    enrolled = {f"CD22-{i:03d}" for i in range(1, 16)}
    compared = 0
    for path in sorted(written):
        found = results(engines, path.name, path.read_bytes(), enrolled)
        if found is None:
            continue
        assert found["sql"] == found["gx"], path.name
        with monkeypatch.context() as joins:
            joins.setattr(sql_engine, "SET_AS_LIST_UP_TO", 0)
            assert results({"sql": engines["sql"]}, path.name, path.read_bytes(), enrolled)["sql"] == found["gx"]
        compared += 1
    assert compared >= 100


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                     HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=mutated())
def test_both_engines_agree_on_fuzzed_exports(engines, case):
    name, data = case
    found = results(engines, name, data, {"CD22-001", "CD22-002"})
    if found is not None:
        assert found["sql"] == found["gx"], name


@pytest.mark.parametrize("kind", sorted(FORMAT_PATTERNS))
@pytest.mark.parametrize("text", [
    "2026-04-07", "07-APR-2026", "04/07/2026", "2026-04-07 08:15", "12", "-3", "1.5e3", "4.43E+05", "0", "1",
    "２０２６-０４-０７", "٢٠٢٦-04-07", "12\n", "2026-04-07\n", "1,5", " 12", "", "1e", ".5", "+.5"])
def test_python_regex_meaning_holds_in_duckdb(kind, text):
    """GX pandas searches with Python's `re` (Unicode digits, `$` before a final newline); the SQL engine gives
    RE2 the same meaning."""
    pattern = FORMAT_PATTERNS[kind]
    sql = duckdb.execute("SELECT regexp_matches(?, ?)", [text, python_regex_for_re2(pattern)]).fetchone()[0]
    assert sql == bool(re.search(pattern, text))

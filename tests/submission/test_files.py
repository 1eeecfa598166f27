"""The Dataset-JSON text is written a slice of records at a time from each column's distinct values: it must be
exactly json.dumps of the whole document, also for the values the warehouses here never hold (-0.0, NaN,
infinity, an empty string beside a null, quotes and control characters, a date before year 1000)."""
from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest
from submission.conformance import XPT_STAMP, pyreadstat_whole

from car22.submission import files
from car22.submission.build import Dataset, Table, Variable


def variable(name: str, kind: str) -> Variable:
    return Variable(name, f"{name} label", kind, "Derived", "", "", None, "Perm")


@pytest.mark.parametrize("names", [["TEXT", "COUNT", "VALUE", "ADT"], ["VALUE"]])
def test_json_text_is_json_dumps_of_the_document(names):
    kinds = {"TEXT": "text", "COUNT": "integer", "VALUE": "float", "ADT": "sasdate"}
    dataset = Dataset("XX", "ADaM", "Edge values", "BASIC DATA STRUCTURE", "", "One record per value", "xx",
                      tuple(variable(name, kinds[name]) for name in names))
    frame = pd.DataFrame({
        "TEXT": pd.Categorical.from_codes([0, 1, -1, 2, 3, 0, 1],
                                          pd.Index(['a "quoted" \\ value', "", "tab\there", "bell\x07"], dtype=object)),
        "COUNT": pd.arrays.IntegerArray(np.array([1, -5, 0, 2**31 - 1, 7, 7, 0], dtype="int32"),
                                        np.array([0, 0, 1, 0, 0, 0, 0], dtype=bool)),
        "VALUE": pd.arrays.FloatingArray(np.array([-0.0, 0.0, np.nan, np.inf, 1e-05, 0.1 + 0.2, -np.inf]),
                                         np.array([0, 0, 0, 0, 1, 0, 0], dtype=bool)),
        "ADT": np.array(["0999-01-02", "NaT", "2026-03-10", "1960-01-01", "9999-12-31", "2026-03-10", "1959-12-31"],
                        dtype="datetime64[D]"),
    })
    table = Table(dataset, frame[names])
    # written as the package writer does: the head, slices of records (here of 3, the last one short), the tail
    pieces = [files.json_records(Table(dataset, frame[names].iloc[start:start + 3])) for start in range(0, 7, 3)]
    lengths = {"TEXT": 20} if "TEXT" in names else {}
    written = (files.json_head(dataset, table.records, lengths, created="2026-12-02T03:00:00+00:00",
                               study_oid="STUDY.X", version="1")
               + ",".join(text for text, _ in pieces) + files.json_tail("2026-12-01"))

    document = json.loads(written)
    rows = [[v.isoformat() if isinstance(v, date) else v for v in row]
            for row in zip(*(table.column(name) for name in table.columns))]
    first = {"TEXT": 'a "quoted" \\ value', "COUNT": 1, "VALUE": -0.0, "ADT": "0999-01-02"}
    assert rows[0] == [first[name] for name in names]
    assert written == json.dumps({**{k: v for k, v in document.items() if k not in ("rows", "dbLastModifiedDateTime")},
                                  "rows": rows, "dbLastModifiedDateTime": "2026-12-01"},
                                 ensure_ascii=True, separators=(",", ":"))
    # each record's size, which the package index keeps to find a subject's records again
    sizes = [int(size) for _, piece_sizes in pieces for size in piece_sizes]
    assert sizes == [len(json.dumps(row, ensure_ascii=True, separators=(",", ":"))) for row in rows]


def edge_values() -> pd.DataFrame:
    """Values the warehouses here hold and some they never do: -0.0, NaN beside null, infinities, the smallest and
    largest doubles (beyond the IBM format's range), integers beyond 2**53, dates far apart; text empty, null,
    of the declared length, with blanks at either end."""
    return pd.DataFrame({
        "TEXT": pd.Categorical.from_codes([0, 1, -1, 2, 3, 0, 1, 4, -1],
                                          pd.Index(["a value", "", "twenty characters...", " lead", "tab\t"],
                                                   dtype=object)),
        "COUNT": pd.arrays.IntegerArray(np.array([1, -5, 0, 2**31 - 1, 7, 7, 0, -(2**31), 3], dtype="int64"),
                                        np.array([0, 0, 1, 0, 0, 0, 0, 0, 0], dtype=bool)),
        "VALUE": pd.arrays.FloatingArray(np.array([-0.0, 0.0, np.nan, np.inf, 1e-05, 0.1 + 0.2, -np.inf, 5e-324,
                                                   1.7976931348623157e308]),
                                         np.array([0, 0, 0, 0, 1, 0, 0, 0, 0], dtype=bool)),
        "BIG": pd.arrays.FloatingArray(np.array([2.0**53 + 2, -(2.0**60), 1e75, 7.2e75, 1e-78, 5.4e-79, 123.456,
                                                 -1.0, 2.0**53 + 2]), np.zeros(9, dtype=bool)),
        "ADT": np.array(["0999-01-02", "NaT", "2026-03-10", "1960-01-01", "9999-12-31", "2026-03-10", "1959-12-31",
                         "NaT", "2027-01-01"], dtype="datetime64[D]"),
    })


def many_values(records: int = 1234) -> pd.DataFrame:
    """More distinct numbers than one record of the converting file holds, not a multiple of it."""
    rng = np.random.default_rng(22)
    values = rng.normal(scale=1e4, size=records)
    values[::97] = np.nan
    return pd.DataFrame({"TEXT": pd.Categorical(rng.choice(["LOW", "HIGH", "NORMAL"], size=records)),
                         "VALUE": pd.arrays.FloatingArray(values, np.isnan(values)),
                         "COUNT": pd.arrays.IntegerArray(np.arange(records, dtype="int64"),
                                                         np.zeros(records, dtype=bool))})


@pytest.mark.parametrize("frame, names, lengths, slice_size", [
    (edge_values(), ["TEXT", "COUNT", "VALUE", "BIG", "ADT"], {"TEXT": 20}, 4),
    (edge_values(), ["VALUE"], {}, 9),
    (edge_values(), ["TEXT"], {"TEXT": 27}, 2),
    (edge_values().iloc[:0], ["TEXT", "VALUE"], {"TEXT": 1}, 1),
    (many_values(), ["TEXT", "VALUE", "COUNT"], {"TEXT": 6}, 500),
], ids=["edge values", "numbers only", "text only", "no record", "1,234 distinct numbers"])
def test_transport_records_are_pyreadstats_bytes(tmp_path, frame, names, lengths, slice_size):
    """The records car22 lays out a column at a time, a slice at a time, joined with pyreadstat's headers, are
    byte for byte the file pyreadstat writes of the whole table (creation times apart: the same second here)."""
    kinds = {"TEXT": "text", "COUNT": "integer", "VALUE": "float", "BIG": "float", "ADT": "sasdate"}
    dataset = Dataset("XX", "ADaM", "Edge values", "BASIC DATA STRUCTURE", "", "One record per value", "xx",
                      tuple(variable(name, kinds[name]) for name in names))
    table = Table(dataset, frame[names].reset_index(drop=True))
    size = files.record_length(dataset, lengths)
    records = b"".join(files.xpt_records(Table(dataset, table.frame.iloc[start:start + slice_size]), lengths, tmp_path)
                       for start in range(0, table.records, slice_size))
    ours = files.xpt_header(dataset, lengths, tmp_path) + records + files.xpt_padding(len(records))

    theirs = pyreadstat_whole(table, tmp_path / "whole.xpt", lengths)
    assert len(records) == table.records * size
    assert XPT_STAMP.sub(b"", ours) == XPT_STAMP.sub(b"", theirs)

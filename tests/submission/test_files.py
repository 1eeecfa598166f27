"""The Dataset-JSON text is written a slice of records at a time from each column's distinct values: it must be
exactly json.dumps of the whole document, also for the values the warehouses here never hold (-0.0, NaN,
infinity, an empty string beside a null, quotes and control characters, a date before year 1000)."""
from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

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

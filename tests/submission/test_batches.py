"""How the writer reads the records it encodes (car22.submission.writer): the batches the encoded runs are read in,
and the read of each batch one ahead of its encoding, on a thread of its own that never overlaps another read and
never outlives the dataset. The bytes these batches give are held by test_reuse.py."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from car22.submission import writer
from car22.submission.build import TEXT, Subject, datasets


@pytest.fixture(autouse=True)
def ten_records_at_once(monkeypatch):
    monkeypatch.setattr(writer, "RECORDS_AT_ONCE", 10)


# The encoded runs' spans (run number, first row, stop row) and the batches (first run, first row, stop row), with
# at most 10 rows at once. A run joins the batch while the rows between the runs (read for nothing) are no more
# than the rows needed.
BATCHES = {
    "no run encoded": ([], []),
    "one run": ([(0, 0, 5)], [(0, 0, 5)]),
    "two runs side by side": ([(0, 0, 4), (2, 4, 8)], [(0, 0, 8)]),
    "two runs of exactly ten rows": ([(0, 0, 6), (1, 6, 10)], [(0, 0, 10)]),
    "two runs of eleven rows": ([(0, 0, 6), (1, 6, 11)], [(0, 0, 6), (1, 6, 11)]),
    "a run alone over ten rows": ([(0, 0, 12), (1, 12, 13)], [(0, 0, 12), (1, 12, 13)]),
    "three rows between, four needed": ([(0, 0, 2), (2, 5, 7)], [(0, 0, 7)]),
    "four rows between, four needed": ([(0, 0, 2), (2, 6, 8)], [(0, 0, 8)]),
    "five rows between, four needed": ([(0, 0, 2), (2, 7, 9)], [(0, 0, 2), (2, 7, 9)]),
    "the third run starts a batch": ([(0, 0, 3), (1, 3, 6), (3, 6, 12), (4, 12, 14)],
                                     [(0, 0, 6), (3, 6, 14)]),
}


@pytest.mark.parametrize("case", BATCHES)
def test_the_encoded_runs_are_read_in_these_batches(case):
    spans, expected = BATCHES[case]
    assert writer._batches(spans) == expected


@dataclass
class SlowBuilt:
    """A built dataset whose reads take `seconds` each and note what they did: one read at a time, each span once."""

    seconds: float = 0.05
    failing: tuple[int, int] | None = None
    dataset: object = field(default_factory=lambda: next(d for d in datasets() if d.name == "DM"))
    reads: list[tuple[int, int]] = field(default_factory=list)
    finished: list[tuple[int, int]] = field(default_factory=list)
    reading: int = 0
    most_at_once: int = 0
    started: dict[tuple[int, int], threading.Event] = field(default_factory=dict)

    def table(self, first: int, stop: int) -> tuple[int, int]:
        self.reading += 1
        self.most_at_once = max(self.most_at_once, self.reading)
        self.reads.append((first, stop))
        self.started.setdefault((first, stop), threading.Event()).set()
        time.sleep(self.seconds)
        self.reading -= 1
        if (first, stop) == self.failing:
            raise ValueError(f"rows {first}-{stop}: refused")
        self.finished.append((first, stop))
        return first, stop


SPANS = [(0, 3), (3, 7), (9, 10)]


def test_each_batch_is_read_while_the_one_before_is_encoded():
    built = SlowBuilt()
    tables = writer._read_ahead(built, SPANS)
    for number, span in enumerate(SPANS):
        assert next(tables) == span
        if number + 1 < len(SPANS):  # the next read has begun before this batch is encoded
            assert built.started.setdefault(SPANS[number + 1], threading.Event()).wait(timeout=5)
    with pytest.raises(StopIteration):
        next(tables)
    assert built.reads == SPANS and built.most_at_once == 1


def test_no_span_reads_nothing():
    built = SlowBuilt()
    assert list(writer._read_ahead(built, [])) == []
    assert built.reads == []


def test_a_refused_batch_is_raised_in_its_turn():
    built = SlowBuilt(failing=SPANS[1])
    tables = writer._read_ahead(built, SPANS)
    assert next(tables) == SPANS[0]
    with pytest.raises(ValueError, match="rows 3-7: refused"):
        next(tables)
    assert built.reads == SPANS[:2]


def test_a_dataset_given_up_leaves_no_read_behind():
    """The writer closes the reads when a dataset fails: the connection is its own again at once."""
    built = SlowBuilt(seconds=0.3)
    tables = writer._read_ahead(built, SPANS)
    assert next(tables) == SPANS[0]
    tables.close()
    assert built.reading == 0 and built.finished == SPANS[:2]


def test_runs_asked_for_out_of_order_are_refused(tmp_path: Path):
    built = SlowBuilt(seconds=0)
    runs = [writer._Run(encoded=[Subject(f"S{i}", i, 1, "d", (1,) * 20)], records=1) for i in range(2)]
    lengths = {v.name: 1 for v in built.dataset.variables if v.type in TEXT}
    with writer._Encoded(built, runs, lengths, tmp_path) as encoded:
        with pytest.raises(RuntimeError, match="run 1 asked for out of order: the next batch opens with run 0"):
            encoded.records_of(1)

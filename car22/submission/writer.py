"""One dataset's two files (<name>.xpt and <name>.json), written a slice of records at a time, with the records
of every subject not rebuilt, or rebuilt unchanged, copied byte for byte from the previous package
(docs/submission.md "Writing only what changed").

Why this is exact: a dataset's records are sorted by STUDYID, USUBJID first (cdisc.md: keys), so a subject's
records are consecutive in both files; a record's bytes depend only on its values and on the declared text
lengths; and --SEQ counts within a subject. So when the declared lengths and the writer (this code, the
metadata, the settings, the libraries) are those of the previous package, a subject whose records were not
rebuilt, or have the same digest (build.Subject), has the same bytes there, at offsets its index gives.
Anything else is written anew. The tests hold a package written this way equal, byte for byte apart from the
creation times, to one written whole.

The index of each dataset (its subjects' record counts, digests, JSON sizes and longest text values, and where
the records start in each file) is kept in the package, in the hidden folder `.records/`: it names no one
beyond the USUBJIDs the datasets hold, and it goes with the files it describes when the package is swapped in.
"""
from __future__ import annotations

import hashlib
import heapq
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np

from car22.config import Protocol
from car22.night.storage import copy_range
from car22.submission.build import (
    HERE,
    MODELS,
    Built,
    Dataset,
    Subject,
    Table,
    declared_lengths,
)
from car22.submission.files import (
    json_head,
    json_records,
    json_tail,
    record_length,
    xpt_header,
    xpt_padding,
    xpt_records,
)

INDEX = ".records"
# Records encoded at a time: a bound on memory, whatever the dataset's size. Two batches are held at once (one
# encoded, the next read: _read_ahead). The package at 20,000 participants, written alone: 200,000 at a time
# 227.6 s and 1,628 MB, 100,000 at a time 235.3 s and 1,451 MB (one batch of 200,000 without reading ahead:
# 279.2 s and 1,566 MB).
RECORDS_AT_ONCE = 100_000


def writer_key(protocol: Protocol) -> str:
    """What a subject's records depend on besides its warehouse rows: the protocol settings the models read,
    this package's code and metadata, its SQL models, and the libraries that encode. A package written under
    another key is not reused."""
    digest = hashlib.sha256(protocol.config_hash.encode() + b"\0")
    for path in sorted([*HERE.rglob("*.py"), *HERE.rglob("*.csv"), *MODELS.glob("*.sql")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for library in ("pyreadstat", "numpy", "pandas", "duckdb"):
        digest.update(f"{library}={package_version(library)}\0".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Stored:
    """A subject's records in the previous package's files: where they start, and what they were."""

    records: int
    digest: str
    xpt_at: int
    json_at: int
    json_bytes: int
    lengths: tuple[int, ...]  # as Subject.lengths


@dataclass(frozen=True)
class Previous:
    """A dataset's files in the previous package, whole and written under the same key; its subjects in record
    order."""

    xpt: Path
    json: Path
    lengths: dict[str, int]
    subjects: dict[str, Stored]


def previous(folder: Path, dataset: Dataset, key: str) -> Previous | None:
    """The previous package's files of this dataset in `folder`, if they were written under the same key and
    are whole (their sizes are the index's); otherwise None: everything is written anew."""
    stem = folder / dataset.folder / dataset.name.lower()
    try:
        index = json.loads((folder / INDEX / f"{dataset.name}.json").read_text(encoding="utf-8"))
        xpt_size, json_size = stem.with_suffix(".xpt").stat().st_size, stem.with_suffix(".json").stat().st_size
    except (OSError, ValueError):
        return None
    if index.get("key") != key:
        return None
    size = record_length(dataset, index["lengths"])
    xpt_at, json_at, subjects = index["xpt_header"], index["json_head"], {}
    for usubjid, records, digest, json_bytes, lengths in index["subjects"]:
        subjects[usubjid] = Stored(records, digest, xpt_at, json_at, json_bytes, tuple(lengths))
        xpt_at += records * size
        json_at += json_bytes + 1
    rows_end = json_at - 1 if subjects else json_at
    if xpt_size != xpt_at + len(xpt_padding(xpt_at - index["xpt_header"])) or json_size <= rows_end:
        return None
    with open(stem.with_suffix(".json"), "rb") as handle:
        handle.seek(index["json_head"] - 8)
        opening = handle.read(8)
        handle.seek(rows_end)
        closing = handle.read(1)
    if opening != b'"rows":[' or closing != b"]":
        return None
    return Previous(stem.with_suffix(".xpt"), stem.with_suffix(".json"), index["lengths"], subjects)


class LengthsChanged(Exception):
    """A dataset built for the rebuilt subjects only declares other text lengths than the previous package's:
    every record's bytes change, and the package must be built whole."""


@dataclass
class _Run:
    """Consecutive subjects written alike: encoded from the built table, or copied from one stretch of the
    previous files."""

    encoded: list[Subject] = field(default_factory=list)
    copied: list[tuple[str, Stored]] = field(default_factory=list)
    records: int = 0


def _plan(built: list[Subject], prior: Previous | None, rebuilt: frozenset[str] | None) -> list[_Run]:
    """The dataset's subjects in record order (USUBJID order), each copied when its previous records are the
    same (or were not rebuilt), in runs that are contiguous in the previous files; the others encoded, in runs of
    at most RECORDS_AT_ONCE records (a subject is never split)."""
    kept = [] if rebuilt is None else [(usubjid, stored) for usubjid, stored in prior.subjects.items()
                                       if usubjid not in rebuilt]
    everyone = heapq.merge([(s.usubjid, s) for s in built], kept, key=lambda pair: pair[0])
    runs: list[_Run] = []
    last_usubjid = None
    for usubjid, found in everyone:
        if last_usubjid is not None and usubjid <= last_usubjid:
            raise ValueError(f"subjects out of USUBJID order: {usubjid!r} after {last_usubjid!r}")
        last_usubjid = usubjid
        if isinstance(found, Stored):
            stored = found
        else:
            stored = prior.subjects.get(usubjid) if prior else None
            if stored is not None and (stored.records, stored.digest) != (found.records, found.digest):
                stored = None
        last = runs[-1] if runs else None
        if stored is not None:
            if last is None or not last.copied or not _follows(last.copied[-1][1], stored):
                runs.append(last := _Run())
            last.copied.append((usubjid, stored))
            last.records += stored.records
        else:
            if last is None or not last.encoded or last.records + found.records > RECORDS_AT_ONCE:
                runs.append(last := _Run())
            last.encoded.append(found)
            last.records += found.records
    return runs


def _follows(before: Stored, after: Stored) -> bool:
    return after.json_at == before.json_at + before.json_bytes + 1


@dataclass(frozen=True)
class Outcome:
    records: int
    copied: int  # records copied from the previous package
    lengths: dict[str, int]  # the declared text lengths
    kept: bool = False  # the previous package's transport file itself, linked: no record of the dataset changed


def _unchanged(runs: list[_Run], prior: Previous) -> bool:
    """Every record of the dataset is the previous package's, in the same order: the transport file would be the
    previous one but for its creation time."""
    return all(run.copied for run in runs) and [pair for run in runs for pair in run.copied] == list(
        prior.subjects.items())


def _linked(source: Path, target: Path) -> bool:
    """A hard link of the previous package's file into the new one: no byte is copied, and the old package stays
    whole until the new one is swapped in (no file of a package is ever written again). False where the file
    system cannot link it: the file is then written as any other."""
    try:
        os.link(source, target)
    except OSError:
        return False
    return True


def write_dataset(built: Built, stem: Path, prior: Previous | None, key: str, *,
                  created: str, study_oid: str, last_modified: str | None, version: str) -> Outcome:
    """Write <stem>.xpt, <stem>.json and the dataset's index (in the package folder two levels up). When only
    some subjects were built (`built.rebuilt`), the others' records are the previous package's; if the text
    lengths they all declare are not the previous package's, LengthsChanged is raised."""
    dataset = built.dataset
    subjects = built.subjects()
    if built.rebuilt is None:
        lengths = declared_lengths(dataset, (s.lengths for s in subjects))
    else:
        if prior is None:
            raise LengthsChanged(f"{dataset.name}: no previous package to keep the other subjects' records from")
        lengths = declared_lengths(dataset, [*(s.lengths for s in subjects),
                                             *(st.lengths for u, st in prior.subjects.items()
                                               if u not in built.rebuilt)])
    if prior is not None and prior.lengths != lengths:
        if built.rebuilt is not None:
            raise LengthsChanged(f"{dataset.name}: the text lengths changed from {prior.lengths} to {lengths}")
        prior = None
    runs = _plan(subjects, prior, built.rebuilt)
    total = sum(run.records for run in runs)
    size = record_length(dataset, lengths)
    head = json_head(dataset, total, lengths, created=created, study_oid=study_oid, version=version)
    header = xpt_header(dataset, lengths, stem.parent)
    # The Dataset-JSON is always written: it names when the warehouse was last modified, which a previous file
    # would not say truly. The transport file carries only its own creation time (cdisc.md: it may differ).
    kept = prior is not None and _unchanged(runs, prior) and _linked(prior.xpt, stem.with_suffix(".xpt"))
    index = []
    with ExitStack() as files:
        encoded = files.enter_context(_Encoded(built, runs, lengths, stem.parent))
        xpt = None if kept else files.enter_context(open(stem.with_suffix(".xpt"), "wb", buffering=0))
        out = files.enter_context(open(stem.with_suffix(".json"), "wb", buffering=0))
        old_xpt, old_json = files.enter_context(_opened(prior))
        if xpt is not None:
            xpt.write(header)
        out.write(head.encode("ascii"))
        for number, run in enumerate(runs):
            if number:
                out.write(b",")
            if run.copied:
                first, last = run.copied[0][1], run.copied[-1][1]
                if xpt is not None:
                    _copy(old_xpt, xpt.fileno(), first.xpt_at, run.records * size)
                _copy(old_json, out.fileno(), first.json_at, last.json_at + last.json_bytes - first.json_at)
                index += [[usubjid, c.records, c.digest, c.json_bytes, list(c.lengths)] for usubjid, c in run.copied]
                continue
            records, text, sizes = encoded.records_of(number)
            xpt.write(records)  # an encoded run: the file is not kept
            out.write(text)
            counts = np.array([subject.records for subject in run.encoded])
            # a subject's JSON bytes: its records' rows and the commas between them (every subject has a record)
            json_bytes = np.add.reduceat(sizes, np.cumsum(counts) - counts) + counts - 1
            index += [[subject.usubjid, subject.records, subject.digest, int(size), list(subject.lengths)]
                      for subject, size in zip(run.encoded, json_bytes)]
        if xpt is not None:
            xpt.write(xpt_padding(total * size))
        out.write(json_tail(last_modified).encode("ascii"))
    folder = stem.parent.parent / INDEX
    folder.mkdir(exist_ok=True)
    (folder / f"{dataset.name}.json").write_text(json.dumps(
        {"key": key, "lengths": lengths, "xpt_header": len(header), "json_head": len(head), "subjects": index}),
        encoding="utf-8")
    return Outcome(total, sum(run.records for run in runs if run.copied), lengths, kept)


class _Encoded:
    """The encoded runs' records, encoded a batch at a time. The subjects built are consecutive in the built table
    even where copied subjects come between them in the files (a night's rebuilt participants, scattered through
    USUBJID order): runs apart in the files are encoded together, one query and one pyreadstat call per batch
    instead of per run. A batch spans at most RECORDS_AT_ONCE records of the built table, and joins the next run
    only while the records it encodes for nothing (built subjects copied by their digest) are no more than those
    it needs. The batches are read from DuckDB one ahead of their encoding (`_read_ahead`); a context manager,
    so that no read outlives the dataset."""

    def __init__(self, built: Built, runs: list[_Run], lengths: dict[str, int], scratch: Path) -> None:
        self.lengths, self.scratch = lengths, scratch
        self.size = record_length(built.dataset, lengths)
        spans = [(number, run.encoded[0].first, run.encoded[-1].first + run.encoded[-1].records)
                 for number, run in enumerate(runs) if run.encoded]
        self.batches = _batches(spans)
        self.tables = _read_ahead(built, [(start, stop) for _, start, stop in self.batches])
        self.spans = {number: (start, stop) for number, start, stop in spans}
        self.batch: tuple[int, memoryview, memoryview, np.ndarray] | None = None  # first row, records, JSON, offsets

    def __enter__(self) -> _Encoded:
        return self

    def __exit__(self, *_: object) -> None:
        self.tables.close()  # waits for a read under way: the connection is the caller's again

    def records_of(self, number: int) -> tuple[memoryview, memoryview, np.ndarray]:
        """Run `number`'s transport records, Dataset-JSON rows (joined by ',', ASCII) and each record's JSON size:
        views into the batch, not copies. The runs are asked for in order."""
        first, stop = self.spans[number]
        if self.batch is None or stop > self.batch[0] + len(self.batch[3]) - 1:
            opening, start, _ = self.batches.pop(0)
            if opening != number:
                raise RuntimeError(f"run {number} asked for out of order: the next batch opens with run {opening}")
            self.batch = None  # let the previous batch go before this one is encoded
            table = next(self.tables)
            text, sizes = json_records(table)
            offsets = np.concatenate(([0], np.cumsum(sizes + 1)))  # where each record's row starts in the text
            self.batch = (start, xpt_records(table, self.lengths, self.scratch), memoryview(text.encode("ascii")),
                          offsets)
        start, records, text, offsets = self.batch
        i, j = first - start, stop - start
        return (records[i * self.size:j * self.size], text[offsets[i]:offsets[j] - 1],
                np.diff(offsets[i:j + 1]) - 1)


def _batches(spans: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """The batches (first run's number, first row, stop row) that encode the runs' spans (number, first row, stop
    row), in order: each from the first run not yet encoded, joined by the following runs while it stays within
    RECORDS_AT_ONCE rows and the rows between them it encodes for nothing are no more than those it needs."""
    batches, at = [], 0
    while at < len(spans):
        number, start, stop = spans[at]
        needed, at = stop - start, at + 1
        while at < len(spans):
            _, first, end = spans[at]
            if end - start > RECORDS_AT_ONCE or (end - start) - (needed + end - first) > needed + end - first:
                break
            stop, needed, at = end, needed + end - first, at + 1
        batches.append((number, start, stop))
    return batches


def _read_ahead(built: Built, spans: list[tuple[int, int]]) -> Iterator[Table]:
    """Each span's records as a Table, in order, the next one read while the caller encodes this one. DuckDB
    reads without holding the GIL, so the reading and the encoding share the cores (measured on LB at 20,000
    participants: 15 batches in 14.0 s instead of 16.2-19.0 s). One read at a time, on a thread of its own: the
    caller leaves the connection alone until the generator is exhausted or closed."""
    if not spans:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="submission-read-ahead") as pool:
        ahead = pool.submit(built.table, *spans[0])
        for following in spans[1:]:
            table = ahead.result()
            ahead = pool.submit(built.table, *following)
            yield table
        yield ahead.result()


class _opened:
    """The previous files' descriptors (None, None without a previous package), closed on exit."""

    def __init__(self, prior: Previous | None) -> None:
        self.prior = prior
        self.fds: tuple[int | None, int | None] = (None, None)

    def __enter__(self) -> tuple[int | None, int | None]:
        if self.prior is not None:
            first = os.open(self.prior.xpt, os.O_RDONLY)
            try:
                self.fds = (first, os.open(self.prior.json, os.O_RDONLY))
            except BaseException:
                os.close(first)
                raise
        return self.fds

    def __exit__(self, *_: object) -> None:
        for fd in self.fds:
            if fd is not None:
                os.close(fd)


def _copy(source: int | None, target: int, offset: int, size: int) -> None:
    """`size` bytes of the previous file `source` from `offset` appended to `target` (copy_range)."""
    assert source is not None, "a copied run needs the previous file"
    try:
        copy_range(source, target, offset, size)
    except EOFError as error:
        raise ValueError(f"the previous package's file is shorter than its index says: {error}") from error

"""One count, one source of truth (issue #17): on the demo night, every file's counts are the same in
ops.files, on its Data Docs page, in the Data Docs index, in the per-file Prefect log line and in the run
summary (car22.reports.run_summary.FILE_COUNTS)."""
from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import duckdb

from car22.reports.run_summary import counts_text, file_counts, file_lines


class Rows(HTMLParser):
    """The cells of every table row of a page, as text."""

    def __init__(self, text: str):
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_every_count_agrees_with_ops_files(demo_night):
    paths, _, summary = demo_night
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        files = file_counts(con)
        lines = file_lines(con, summary.run_id)
        warnings_on_rejected = con.execute("""
            SELECT count(*) FROM ops.row_warnings w JOIN ops.rejected_rows r USING (file_id, row_number)
            WHERE w.check_name = 'participant_enrolled' AND r.severity = 'blocking'""").fetchall()[0][0]
        repeated = con.execute("SELECT count(*) FROM (SELECT file_id, row_number FROM ops.rejected_rows "
                               "GROUP BY ALL HAVING count(*) > 1)").fetchall()[0][0]
    assert (files.rows_read == files.rows_loaded + files.rows_rejected).all()
    assert (files.rows_rejected == files.rows_blocking + files.rows_skipped + files.rows_held).all()
    # a held row is not also a blocking failure, and no row is counted twice
    assert warnings_on_rejected == 0 and repeated == 0
    # status: every row rejected is 'rejected'; a quarantined file keeps the source its name points to
    assert ((files.status == "rejected") == ((files.rows_loaded == 0) & (files.rows_blocking > 0))).all()
    assert files[files.status == "quarantined"].source.tolist() == ["flow_mrd"]

    index = {row[0]: row for row in Rows((paths.reports / "data_docs" / "index.html").read_text("utf-8")).rows
             if len(row) == 9}
    skipped_shown = 0
    for f in files.itertuples(index=False):
        assert index[f.file_name][5:8] == [str(f.rows_read), str(f.rows_loaded), str(f.rows_rejected)], f.file_name
        if f.status in ("quarantined", "duplicate"):
            assert f"{f.file_name}: {f.status}" in "\n".join(lines)
            continue
        words = counts_text(f.rows_read, f.rows_loaded, f.rows_rejected, f.rows_blocking, f.rows_skipped,
                            f.rows_held)
        assert f"{f.file_name}: {f.status} ({f.source}), {words}" in lines
        page = (paths.reports / f.report_path).read_text("utf-8")
        shown = re.search(r"<div id='counts'><p class='summary'>(.*?)</p></div>", page).group(1)
        assert html.unescape(shown) == words, f.file_name
        skipped_shown += f.rows_skipped > 0 and "skipped: not a sample" in shown
    assert skipped_shown > 0                                      # the FlowJo controls and Mean/SD rows

    tonight = files[files.run_id == summary.run_id]
    assert (summary.rows_read, summary.rows_loaded, summary.rows_rejected) == (
        tonight.rows_read.sum(), tonight.rows_loaded.sum(), tonight.rows_rejected.sum())
    assert summary.rows_held == tonight.rows_held.sum()
    needs = tonight[(tonight.status == "quarantined") | (tonight.rows_blocking > 0) | (tonight.rows_held > 0)]
    assert sorted(name for name, _, _ in summary.needs_action) == sorted(needs.file_name)

"""The data manager's work list in the terminal or a spreadsheet, and the decisions file they drop in the
inbox (exports.md §E): `car22 data-issues`. Reads the published warehouse only; a decision reaches the
warehouse through the next run, archived and validated like every export, never by editing it."""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from pathlib import Path

import duckdb

from car22.intake.sources import DM_DECISIONS
from car22.night.storage import write_whole

COLUMNS = ("issue_id", "status", "source", "check_name", "severity", "participant_id", "record_key",
           "first_seen_at", "age_days", "times_seen", "last_seen_file", "resolved_at", "decided_by", "reason")
# exports.md §E: the user id is initials or a login, nothing else identifying.
USER = re.compile(r"[A-Za-z0-9._-]{1,32}")
WIDTHS = {"reason": 70, "record_key": 28}


def list_issues(con: duckdb.DuckDBPyConnection, *, status: str = "open", source: str | None = None,
                older_than: int | None = None, now: datetime | None = None) -> list[dict]:
    """Issues of the published warehouse, by source and check, oldest first. `status`: open, resolved,
    accepted or all; `older_than`: first seen more than that many days before `now`."""
    rows = con.execute("""
        SELECT i.issue_id, i.status, i.source, i.check_name, i.severity, i.participant_id, i.record_key,
               i.first_seen_at, i.age_days, i.times_seen, f.file_name AS last_seen_file, i.resolved_at,
               i.decided_by, i.reason
        FROM ops.data_issues i LEFT JOIN ops.files f ON f.file_id = i.last_seen_file_id
        WHERE (? = 'all' OR i.status = upper(?)) AND i.source = coalesce(?, i.source)
          AND (? IS NULL OR date_diff('day', i.first_seen_at, CAST(? AS TIMESTAMP)) > ?)
        ORDER BY i.source, i.check_name, i.first_seen_at, i.issue_id""",
                       [status, status, source, older_than, now or datetime.now(), older_than]).fetchall()
    return [dict(zip(COLUMNS, row)) for row in rows]


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def as_csv(issues: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([[_text(issue[c]) for c in COLUMNS] for issue in issues])
    return out.getvalue()


def as_table(issues: list[dict]) -> str:
    """A plain-text table for the terminal (long reasons and keys shortened; --csv has them whole)."""
    shown = ("issue_id", "status", "source", "check_name", "participant_id", "record_key", "first_seen_at",
             "age_days", "times_seen", "reason")
    cells = [[_text(issue[c]) for c in shown] for issue in issues]
    for row in cells:
        for i, column in enumerate(shown):
            width = WIDTHS.get(column)
            if width and len(row[i]) > width:
                row[i] = row[i][:width - 1] + "…"
    header = [c.replace("_", " ") for c in shown]
    widths = [max(len(r[i]) for r in cells + [header]) for i in range(len(shown))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def write_decisions(inbox: Path, issue_ids: list[str], decision: str, reason: str, decided_by: str,
                    now: datetime | None = None) -> Path:
    """A dm_decisions_YYYYMMDDTHHMM.csv in the inbox (exports.md §E), one row per issue; a file of the same
    minute still waiting in the inbox gets the rows appended. Returns its path."""
    now = (now or datetime.now()).replace(second=0, microsecond=0)
    path = inbox / f"{DM_DECISIONS.prefix}_{now:%Y%m%dT%H%M}.csv"
    header = [f.raw for f in DM_DECISIONS.fields]
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if not text:
        writer.writerow(header)
    writer.writerows([[issue_id, decision, reason, decided_by, f"{now:%Y-%m-%d %H:%M}"] for issue_id in issue_ids])
    inbox.mkdir(parents=True, exist_ok=True)
    return write_whole(path, (text + out.getvalue()).encode("utf-8"))

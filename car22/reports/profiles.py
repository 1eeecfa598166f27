"""One page per participant for monitors (issue 18): the course on one timeline (treatment, marrow MRD, CAR
levels, CRS and ICANS days, lab grades, adverse events), then the same facts as tables with the eligibility
and dosing flags. Opened from the trial report's swimmer plot and tables; each page links back.

The rules of the trial report hold: rendered from the published warehouse, offline (inline SVG drawn here,
no script, no external request), time as study days, no date of birth, date or other identifying field.
Every table is read once and split by participant, so that thousands of pages stay quick. A night rewrites
only the pages whose rows changed (write_profiles: a digest per participant of the rows a page is built from).
"""
from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
from collections import namedtuple
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import duckdb

from car22.night.storage import write_whole
from car22.reports import present
from car22.reports.present import coded, grid, number, page, percent, unit, words
from car22.sql import table_exists

FOLDER = "profiles"
# Beside the folder, not in it: the folder holds exactly the pages a full write gives.
DIGESTS = f".{FOLDER}.digests.json"
# A page is its rows rendered by this code: a new release (or DuckDB, which types the rows) changes every digest.
RENDERER = hashlib.md5(Path(__file__).read_bytes() + Path(present.__file__).read_bytes()
                       + duckdb.__version__.encode()).hexdigest()
REPORT_LINK = "../trial_report.html#swimmer"
ROWS_AT_ONCE = 10_000  # rows fetched at a time from each query while the pages are built

# Timeline geometry (SVG user units; the picture scales to the page width).
WIDTH, LEFT, RIGHT, LANE, TOP = 960, 150, 20, 28, 10
TICK_STEPS = (1, 2, 7, 14, 28, 30, 60, 90, 180, 365)
MAX_TICKS = 10
GRADE_COLOURS = ("#d9d9d9", "#fdd49e", "#fc8d59", "#d7301f", "#7f0000", "#000000")  # grade 0 ... 5
SPECIMENS = {"BM": "bone marrow", "PB": "blood (not used for decisions)"}
MRD_COLOURS = {"NEGATIVE": "#1b9e77", "POSITIVE": "#d7191c", "POSITIVE_LOW": "#e66101",
               "POSITIVE_NOT_QUANTIFIABLE": "#8c510a", "NEGATIVE_INSUFFICIENT_SENSITIVITY": "#5e3c99",
               "NOT_EVALUABLE": "#636363"}


def link(participant_id: str) -> str:
    """The profile page of a participant, relative to the reports folder."""
    return f"{FOLDER}/{_file_name(participant_id)}"


def _file_name(participant_id: str) -> str:
    return f"{quote(participant_id, safe='')}.html"


QUERIES = {
    "participants": """
        SELECT participant_id, infused, ld_start_date - infusion_date AS ld_start_day,
               hsct_date - infusion_date AS hsct_day, death_date - infusion_date AS death_day, death_cause,
               next_therapy_date - infusion_date AS next_therapy_day,
               greatest(last_contact_date, death_date) - infusion_date AS last_day, cells_per_kg
        FROM core.participants ORDER BY participant_id""",
    "treatments": """
        SELECT participant_id, agent, study_day, dose_mg, car_cells_per_kg FROM core.treatments
        ORDER BY participant_id, study_day, agent""",
    "dosing": """
        SELECT participant_id, agent, study_day, dose_mg, expected_mg, deviation_pct, flag FROM mart.ld_dosing
        ORDER BY participant_id, study_day, agent""",
    "mrd": """
        SELECT participant_id, study_day, specimen, mrd_status, mrd_fraction, events_leukemic, events_total
        FROM mart.mrd_assessments ORDER BY participant_id, study_day, specimen""",
    "car": """
        SELECT l.participant_id, l.study_day, l.assay, l.target, l.value, l.unit, l.below_lloq,
               q.lloq_copies_per_ug AS lloq
        FROM mart.car_levels l
        LEFT JOIN core.qpcr_results q ON l.assay = 'qpcr' AND q.sample_id = l.sample_id AND q.target = l.target
        WHERE l.assay IN ('flow_abs', 'qpcr') ORDER BY l.participant_id, l.target DESC, l.assay, l.study_day""",
    "crs": "SELECT participant_id, study_day, grade FROM mart.crs_daily ORDER BY participant_id, study_day",
    "icans": "SELECT participant_id, study_day, grade FROM mart.icans_daily ORDER BY participant_id, study_day",
    "labs": """
        SELECT participant_id, toxicity, max_grade, onset_day FROM mart.toxicity_by_participant
        WHERE "window" = 'overall' AND scale LIKE 'CTCAE v%' AND scale NOT LIKE '%investigator%' AND max_grade >= 1
        ORDER BY participant_id, max_grade DESC, toxicity""",
    "lab_days": """
        SELECT participant_id, study_day, ctcae_term, max(grade) AS grade FROM mart.lab_toxicity
        WHERE grade >= 3 GROUP BY ALL ORDER BY participant_id, study_day, ctcae_term""",
    "aes": """
        SELECT participant_id, ae_term, ae_grade, onset_day,
               resolution_date - onset_date + onset_day AS resolution_day, serious, related
        FROM core.adverse_events ORDER BY participant_id, onset_day, ae_term""",
    "eligibility": """
        SELECT participant_id, criterion, result, detail FROM mart.eligibility
        ORDER BY participant_id, criterion_order""",
    "issues": """
        SELECT participant_id, issue_id, source, check_name, severity, age_days FROM ops.data_issues
        WHERE status = 'OPEN' AND participant_id IS NOT NULL ORDER BY participant_id, first_seen_at, issue_id""",
}


def _readable(con: duckdb.DuckDBPyConnection, only: list[str] | None) -> Iterator[tuple[str, str]]:
    """(name, SQL) of each query whose tables this warehouse derived (a missing one gives no rows), limited to
    the participants `only` names (all when None). The limit is a test of each row, not a join, so the rows keep
    the query's order (a page must list its rows as a full write does), and DuckDB applies it below the query's
    sort: the pages of 89 participants of 20,000 read their rows in 0.3 s, against 1.9 s for numbering every
    row of each query in its order and joining (bench/RESULTS.md)."""
    for name, sql in QUERIES.items():
        needed = set(re.findall(r"\b(?:core|mart|ops)\.\w+", sql))
        if all(table_exists(con, *t.split(".")) for t in needed):
            yield name, sql if only is None else f"SELECT * FROM ({sql}) WHERE list_contains($only, participant_id)"


def _by_participant(con: duckdb.DuckDBPyConnection, only: list[str] | None = None
                    ) -> Iterator[tuple[str, dict[str, list]]]:
    """Each enrolled participant (of `only`, all when None) with each query's rows of theirs (named tuples;
    plain tuples, not frames: a page is built in about a millisecond). Every query is ordered by participant_id
    first, so they are read side by side, a batch of rows at a time: only one participant's rows are held at
    once (holding every participant's took 1.7 GB at 20,000 participants)."""
    groups: dict[str, Iterator[tuple[str, list]]] = {}
    for name, sql in _readable(con, only):
        cursor = con.cursor()
        cursor.execute(sql, None if only is None else {"only": only})
        groups[name] = _grouped(cursor, namedtuple(name, [d[0] for d in cursor.description]))  # noqa: PYI024
    participants = groups.pop("participants", iter(()))
    ahead: dict[str, tuple[str, list] | None] = {name: next(rows, None) for name, rows in groups.items()}
    for pid, people in participants:
        facts: dict[str, list] = {"participants": people}
        for name, rows in groups.items():
            while ahead[name] is not None and ahead[name][0] < pid:
                ahead[name] = next(rows, None)
            if ahead[name] is not None and ahead[name][0] == pid:
                facts[name] = ahead[name][1]
                ahead[name] = next(rows, None)
        yield pid, facts


def _grouped(cursor: duckdb.DuckDBPyConnection, row: type) -> Iterator[tuple[str, list]]:
    """(participant_id, its rows) of a result ordered by participant_id, read ROWS_AT_ONCE rows at a time;
    rows without a participant are left out."""
    pid, rows = None, []
    try:
        while chunk := cursor.fetchmany(ROWS_AT_ONCE):
            for values in chunk:
                record = row(*values)
                if record.participant_id != pid:
                    if rows and pid is not None:
                        yield pid, rows
                    pid, rows = record.participant_id, []
                rows.append(record)
        if rows and pid is not None:
            yield pid, rows
    finally:
        cursor.close()


def _digests(con: duckdb.DuckDBPyConnection, only: list[str] | None = None) -> dict[str, str]:
    """Per enrolled participant (of `only`, all when None), an md5 of every row their page is built from (each
    query's rows as JSON, sorted, so computed in SQL without reading the rows) and of RENDERER: the same
    digest, the same page, byte for byte."""
    parts: dict[str, list[str]] = {}
    for name, sql in _readable(con, only):
        for pid, digest in con.execute(
                f"SELECT participant_id, md5(string_agg(to_json(r)::VARCHAR, chr(10) ORDER BY to_json(r)::VARCHAR)) "
                f"FROM ({sql}) r GROUP BY participant_id", None if only is None else {"only": only}).fetchall():
            parts.setdefault(pid, []).append(f"{name} {digest}")
    enrolled = [pid for pid, own in parts.items() if own[0].startswith("participants ")]
    return {pid: hashlib.md5("\n".join([RENDERER, *parts[pid]]).encode()).hexdigest() for pid in enrolled}


def _day(value) -> str:
    return f"{value:g}"


def _nice_step(span: float) -> int:
    return next((s for s in TICK_STEPS if span / s <= MAX_TICKS), TICK_STEPS[-1] * (int(span // 3650) + 1))


def _marks(facts: dict[str, list]) -> list[tuple[str, list[tuple[float, float | None, str, str]]]]:
    """(lane label, [(day, end day or None for a point, colour, tooltip)]) for the timeline."""
    treatment = [(r.study_day, None, "#2166ac" if r.agent == "cd22_car" else "#92c5de",
                  f"day {_day(r.study_day)}: {words(r.agent)}"
                  + (f" {r.dose_mg:g} mg" if r.dose_mg is not None else ""))
                 for r in facts.get("treatments", []) if r.study_day is not None]
    mrd = [(r.study_day, None, MRD_COLOURS.get(r.mrd_status, "#636363"),
            f"day {_day(r.study_day)}: marrow MRD {words(r.mrd_status)} ({r.mrd_status})")
           for r in facts.get("mrd", []) if r.specimen == "BM" and r.study_day is not None]
    car = [(r.study_day, None, "#bdbdbd" if _below(r) else "#6a51a3",
            f"day {_day(r.study_day)}: qPCR " + ("below the limit" if _below(r) else f"{r.value:,.0f} copies/µg"))
           for r in facts.get("car", []) if r.assay == "qpcr" and r.target == "CD22CAR" and r.study_day is not None]
    lanes = [("treatment", treatment), ("marrow MRD", mrd), ("CD22 CAR (qPCR)", car)]
    for name, label in (("crs", "CRS"), ("icans", "ICANS")):
        lanes.append((f"{label} (grade ≥ 1)", [
            (r.study_day, r.study_day + 1, GRADE_COLOURS[min(r.grade, 5)],
             f"day {_day(r.study_day)}: {label} grade {r.grade}")
            for r in facts.get(name, []) if r.grade is not None and r.grade >= 1 and r.study_day is not None]))
    lanes.append(("lab grade ≥ 3", [
        (r.study_day, r.study_day + 1, GRADE_COLOURS[min(r.grade, 5)],
         f"day {_day(r.study_day)}: {r.ctcae_term} grade {r.grade}")
        for r in facts.get("lab_days", []) if r.study_day is not None]))
    lanes.append(("adverse events", [
        (r.onset_day, None if r.resolution_day is None else r.resolution_day + 1,
         "#969696" if r.ae_grade is None else GRADE_COLOURS[min(r.ae_grade, 5)],
         f"day {_day(r.onset_day)}: {r.ae_term}, grade {'?' if r.ae_grade is None else r.ae_grade}"
         + ("" if r.resolution_day is None else f", resolved day {_day(r.resolution_day)}"))
        for r in facts.get("aes", []) if r.onset_day is not None]))
    return lanes


def timeline(facts: dict[str, list], person) -> str:
    """The participant's course as inline SVG: one lane per kind of fact, study days across, every mark
    with a tooltip (SVG <title>) saying what it is."""
    lanes = _marks(facts)
    milestones = [(day, label) for day, label in ((person.hsct_day, "HSCT"), (person.death_day, "death"),
                                                  (person.next_therapy_day, "next therapy")) if day is not None]
    days = [d for _, marks in lanes for d, _, _, _ in marks] + [d for d, _ in milestones]
    days += [end for _, marks in lanes for _, end, _, _ in marks if end is not None]
    if person.last_day is not None:
        days.append(person.last_day)
    if not days:
        return "<p class='empty'>Nothing dated on the study-day scale yet (not infused).</p>"
    first, last = min(min(days), 0), max(max(days), 28)
    span = last - first
    step = _nice_step(span)

    def x(day: float) -> float:
        return LEFT + (day - first) / span * (WIDTH - LEFT - RIGHT)

    bottom = TOP + LANE * len(lanes)
    height = bottom + 40
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {WIDTH} {height}' width='{WIDTH}' "
             f"height='{height}' font-family='system-ui,sans-serif' font-size='12' role='img' "
             f"aria-label='timeline of the participant by study day'>"]
    tick = (first // step) * step
    while tick <= last:
        if tick >= first:
            parts.append(f"<line x1='{x(tick):.1f}' x2='{x(tick):.1f}' y1='{TOP}' y2='{bottom}' stroke='#eeeeee'/>"
                         f"<text x='{x(tick):.1f}' y='{bottom + 15}' text-anchor='middle'>{tick:g}</text>")
        tick += step
    parts.append(f"<text x='{(LEFT + WIDTH - RIGHT) / 2:.0f}' y='{bottom + 33}' text-anchor='middle'>"
                 f"study day (days since CD22 CAR infusion)</text>"
                 f"<line x1='{x(0):.1f}' x2='{x(0):.1f}' y1='{TOP}' y2='{bottom}' stroke='#2166ac'/>")
    for i, (label, marks) in enumerate(lanes):
        middle = TOP + LANE * i + LANE / 2
        parts.append(f"<text x='{LEFT - 8}' y='{middle + 4:.0f}' text-anchor='end'>{html.escape(label)}</text>"
                     f"<line x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{middle}' y2='{middle}' stroke='#f5f5f5'/>")
        for day, end, colour, tip in marks:
            title = f"<title>{html.escape(tip)}</title>"
            if end is None:
                parts.append(f"<circle cx='{x(day):.1f}' cy='{middle}' r='5' fill='{colour}' stroke='#333' "
                             f"stroke-width='0.5'>{title}</circle>")
            else:
                parts.append(f"<rect x='{x(day):.1f}' y='{middle - 7}' width='{max(x(end) - x(day), 2):.1f}' "
                             f"height='14' fill='{colour}'>{title}</rect>")
    for day, label in milestones:
        parts.append(f"<line x1='{x(day):.1f}' x2='{x(day):.1f}' y1='{TOP}' y2='{bottom}' stroke='#000' "
                     f"stroke-dasharray='4 3'><title>day {_day(day)}: {label}</title></line>")
    if person.last_day is not None:
        parts.append(f"<line x1='{x(person.last_day):.1f}' x2='{x(person.last_day):.1f}' y1='{TOP}' "
                     f"y2='{bottom}' stroke='#969696'><title>day {_day(person.last_day)}: last follow-up</title>"
                     f"</line>")
    parts.append("</svg>")
    legend = ("<p class='meta'>Hover a mark for what it is. Grades: "
              + " ".join(f"<span style='background:{c};padding:0 .5em'>&#8203;</span> {g}"
                         for g, c in enumerate(GRADE_COLOURS) if g) + ". Blue line: infusion (day 0); "
              + "".join(f"dashed: {', '.join(label for _, label in milestones)}; " if milestones else "")
              + "grey: last follow-up.</p>")
    return "".join(parts) + legend


def _below(r) -> bool:
    return bool(r.below_lloq) or r.value is None or r.value <= 0


def _level(r) -> str:
    """A CAR level, a result below the limit said in words, never as 0."""
    if _below(r):
        return "below the limit" + (f" (LLOQ {r.lloq:g})" if r.lloq is not None else " (not detected)")
    return number(r.value)


def render_profile(pid: str, person, facts: dict[str, list]) -> str:
    """One participant's page (`person`: the participant's row of QUERIES["participants"])."""
    def rows(name: str) -> list:
        return facts.get(name, [])

    sections = [
        ("course", "Course", grid(
            ["infused", "lymphodepletion start (study day)", "HSCT (study day)", "next therapy (study day)",
             "death (study day)", "cause of death", "last follow-up (study day)"],
            [(bool(person.infused), person.ld_start_day, person.hsct_day, person.next_therapy_day,
              person.death_day, person.death_cause, person.last_day)]) + timeline(facts, person)),
        ("eligibility", "Eligibility", grid(
            ["criterion", "result", "detail"],
            [(coded(r.criterion), coded(r.result), r.detail) for r in rows("eligibility")], "Not assessed yet.")),
        ("treatment", "Treatment and lymphodepletion dosing", grid(
            ["study day", "agent", "dose (mg)", "CAR cells per kg"],
            [(r.study_day, words(r.agent), r.dose_mg, r.car_cells_per_kg) for r in rows("treatments")],
            "No treatment recorded.")
         + "<h3>Dosing checks</h3>" + grid(
            ["study day", "agent", "dose (mg)", "expected (mg)", "deviation", "check"],
            [(r.study_day, r.agent, r.dose_mg, r.expected_mg, percent(r.deviation_pct, 1), coded(r.flag))
             for r in rows("dosing")], "No dose to check.")),
        ("mrd", "MRD", grid(
            ["study day", "specimen", "MRD", "leukemic cells", "events (leukemic of total)"],
            [(r.study_day, SPECIMENS.get(r.specimen, r.specimen), coded(r.mrd_status),
              "" if r.mrd_fraction is None else percent(100 * r.mrd_fraction, 4),
              "" if r.events_total is None else f"{number(r.events_leukemic or 0)} of {number(r.events_total)}")
             for r in rows("mrd")], "No MRD sample.")),
        ("car", "CAR T-cell levels", grid(
            ["study day", "product", "measure", "level", "unit"],
            [(r.study_day, coded(r.target), coded(r.assay), _level(r), unit(r.unit)) for r in rows("car")],
            "No CAR level measured.")),
        ("toxicity", "CRS, ICANS, lab grades and adverse events",
         "<h3>CRS and ICANS days (grade ≥ 1, ASTCT)</h3>" + grid(
             ["study day", "syndrome", "grade"],
             sorted([(r.study_day, label, r.grade) for name, label in (("crs", "CRS"), ("icans", "ICANS"))
                     for r in rows(name) if r.grade is not None and r.grade >= 1],
                    key=lambda row: (row[0] is None, row[0] or 0, row[1])), "No CRS or ICANS.")
         + "<h3>Lab grades (CTCAE, from the lab results; worst per term)</h3>" + grid(
             ["term", "worst grade", "first study day with grade ≥ 1"],
             [(r.toxicity, r.max_grade, r.onset_day) for r in rows("labs")], "No lab grade ≥ 1.")
         + "<h3>Adverse events (investigator)</h3>" + grid(
             ["term", "grade", "onset (study day)", "resolved (study day)", "serious", "related"],
             [(r.ae_term, r.ae_grade, r.onset_day, r.resolution_day, r.serious, r.related) for r in rows("aes")],
             "None reported.")),
        ("issues", "Open data issues", grid(
            ["issue", "source", "check", "severity", "open for (days)"],
            [(r.issue_id, r.source, r.check_name, r.severity, r.age_days) for r in rows("issues")],
            "No open data issue.")
         + "<p class='meta'>From the data managers' work list (<code>car22 data-issues</code>, with each "
           "issue's reason); a corrected re-export or a decision dropped in the inbox closes an issue.</p>"),
    ]
    nav = " ".join(f"<a href='#{key}'>{html.escape(title)}</a>" for key, title, _ in sections)
    body = "".join(f"<section id='{key}'><h2>{html.escape(title)}</h2>{content}</section>"
                   for key, title, content in sections)
    return page(f"{pid} · NCT07328503 participant profile",
                f"<p><a href='{REPORT_LINK}'>← Trial summary</a></p><h1>Participant {html.escape(pid)}</h1>"
                f"<p class='meta'>Time is in study days (0 = CD22 CAR infusion); no dates and no identifying "
                f"data are shown.</p><nav>{nav}</nav>{body}<p><a href='{REPORT_LINK}'>← Trial summary</a></p>")


def write_profiles(con: duckdb.DuckDBPyConnection, out_dir: Path) -> Path:
    """Every enrolled participant's page in out_dir/profiles/, as a full write gives them, rendering only what
    changed: a page is written (replaced whole) when its participant's digest (_digests) differs from the one
    kept beside the pages (DIGESTS) or the page is missing; anything else in the folder (the page of someone no
    longer enrolled, a temporary left by a crash) is removed. With no digests kept, every page is written into
    a fresh folder swapped in at once (no flush per page: thousands of them would take seconds). The pages can
    always be written again from the warehouse (`car22 report`)."""
    target = out_dir / FOLDER
    digests = _digests(con)
    kept = _kept_digests(out_dir)
    if not kept or not target.is_dir():
        _write_all(con, out_dir, digests)
        return target
    on_disk = {entry.name: entry for entry in target.iterdir()}
    wanted = {_file_name(pid): pid for pid in digests}
    changed = [pid for name, pid in wanted.items() if name not in on_disk or kept.get(pid) != digests[pid]]
    gone = [entry for name, entry in on_disk.items() if name not in wanted]
    if changed or gone or kept != digests:
        _write(con, out_dir, changed, digests, gone)
    return target


def _write_all(con: duckdb.DuckDBPyConnection, out_dir: Path, digests: dict[str, str]) -> None:
    """Every page, written into a hidden folder then swapped in (a participant no longer enrolled leaves no
    stale page), then their digests."""
    (out_dir / DIGESTS).unlink(missing_ok=True)
    target = out_dir / FOLDER
    building = out_dir / f".{FOLDER}.partial"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    for pid, text in _pages(con):
        (building / _file_name(pid)).write_text(text, encoding="utf-8")
    previous = out_dir / f".{FOLDER}.previous"
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        os.rename(target, previous)
    os.rename(building, target)
    shutil.rmtree(previous, ignore_errors=True)
    _keep_digests(out_dir, digests)


def refresh_open_issue_ages(con: duckdb.DuckDBPyConnection, out_dir: Path) -> None:
    """After a night that took no file, only the ages of open data issues changed: rewrite the pages of the
    participants who have one, each page replaced whole, and leave the rest as they are."""
    with_issue = [pid for pid, in con.execute(
        "SELECT DISTINCT participant_id FROM ops.data_issues WHERE status = 'OPEN'").fetchall()]
    _write(con, out_dir, with_issue, {**_kept_digests(out_dir), **_digests(con, with_issue)}, [])


def _kept_digests(out_dir: Path) -> dict[str, str]:
    """The digests of the pages in place; none (every page to write) when missing or of another RENDERER."""
    try:
        kept = json.loads((out_dir / DIGESTS).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return kept["pages"] if kept["renderer"] == RENDERER else {}


def _write(con: duckdb.DuckDBPyConnection, out_dir: Path, pids: list[str], digests: dict[str, str],
           gone: list[Path]) -> None:
    """Write the pages of `pids`, remove `gone`, then keep `digests`. The kept digests are removed first: a
    write cut short leaves none, and the next one writes every page."""
    (out_dir / DIGESTS).unlink(missing_ok=True)
    for entry in gone:
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for pid, text in _pages(con, pids):
        write_whole(out_dir / link(pid), text.encode("utf-8"))
    _keep_digests(out_dir, digests)


def _keep_digests(out_dir: Path, digests: dict[str, str]) -> None:
    write_whole(out_dir / DIGESTS, json.dumps({"renderer": RENDERER, "pages": digests}, sort_keys=True).encode())


def _pages(con: duckdb.DuckDBPyConnection, only: list[str] | None = None) -> Iterator[tuple[str, str]]:
    """(participant id, page HTML) of every enrolled participant, or of those `only` names."""
    for pid, facts in _by_participant(con, only):
        (person,) = facts["participants"]
        yield pid, render_profile(pid, person, facts)

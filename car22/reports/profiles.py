"""One page per participant for monitors (issue 18): the course on one timeline (treatment, marrow MRD, CAR
levels, CRS and ICANS days, lab grades, adverse events), then the same facts as tables with the eligibility
and dosing flags. Opened from the trial report's swimmer plot and tables; each page links back.

The rules of the trial report hold: rendered from the published warehouse, offline (inline SVG drawn here,
no script, no external request), time as study days, no date of birth, date or other identifying field.
Every table is read once and split by participant, so that thousands of pages stay quick.
"""
from __future__ import annotations

import html
import os
import shutil
from pathlib import Path
from urllib.parse import quote

import duckdb
import pandas as pd

from car22.reports.present import coded, page, percent, table, words
from car22.sql import table_exists

FOLDER = "profiles"
REPORT_LINK = "../trial_report.html#swimmer"

# Timeline geometry (SVG user units; the picture scales to the page width).
WIDTH, LEFT, RIGHT, LANE, TOP = 960, 150, 20, 28, 10
TICK_STEPS = (1, 2, 7, 14, 28, 30, 60, 90, 180, 365)
MAX_TICKS = 10
GRADE_COLOURS = ("#d9d9d9", "#fdd49e", "#fc8d59", "#d7301f", "#7f0000", "#000000")  # grade 0 ... 5
MRD_COLOURS = {"NEGATIVE": "#1b9e77", "POSITIVE": "#d7191c", "POSITIVE_LOW": "#e66101",
               "POSITIVE_NOT_QUANTIFIABLE": "#8c510a", "NEGATIVE_INSUFFICIENT_SENSITIVITY": "#5e3c99",
               "NOT_EVALUABLE": "#636363"}


def link(participant_id: str) -> str:
    """The profile page of a participant, relative to the reports folder."""
    return f"{FOLDER}/{quote(participant_id, safe='')}.html"


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
}


def _by_participant(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, pd.DataFrame]]:
    """Each query's rows split by participant (a table not derived in this warehouse gives no rows)."""
    split = {}
    for name, sql in QUERIES.items():
        needed = {t for t in ("mart.ld_dosing", "mart.eligibility", "mart.lab_toxicity",
                              "mart.toxicity_by_participant", "mart.crs_daily", "mart.icans_daily",
                              "mart.mrd_assessments", "mart.car_levels") if t in sql}
        if all(table_exists(con, *t.split(".")) for t in needed):
            frame = con.sql(sql).df()
            split[name] = dict(tuple(frame.groupby("participant_id", sort=False)))
        else:
            split[name] = {}
    return split


def _nice_step(span: float) -> int:
    return next((s for s in TICK_STEPS if span / s <= MAX_TICKS), TICK_STEPS[-1] * (int(span // 3650) + 1))


def timeline(facts: dict[str, pd.DataFrame], person: pd.Series) -> str:
    """The participant's course as inline SVG: one lane per kind of fact, study days across, every mark
    with a tooltip (SVG <title>) saying what it is."""
    lanes: list[tuple[str, list[tuple[float, float | None, str, str]]]] = []  # (label, [(day, end, colour, tip)])

    def rows(name: str) -> pd.DataFrame:
        return facts.get(name, pd.DataFrame())

    treatment = [(r.study_day, None, "#2166ac" if r.agent == "cd22_car" else "#92c5de",
                  f"day {r.study_day:g}: {r.agent.replace('_', ' ')}"
                  + (f" {r.dose_mg:g} mg" if pd.notna(r.dose_mg) else ""))
                 for r in rows("treatments").itertuples() if pd.notna(r.study_day)]
    lanes.append(("treatment", treatment))
    mrd = [(r.study_day, None, MRD_COLOURS.get(r.mrd_status, "#636363"),
            f"day {r.study_day:g}: marrow MRD {words(r.mrd_status)} ({r.mrd_status})")
           for r in rows("mrd").itertuples() if r.specimen == "BM" and pd.notna(r.study_day)]
    lanes.append(("marrow MRD", mrd))
    car = [(r.study_day, None, "#bdbdbd" if r.below_lloq or r.value <= 0 else "#6a51a3",
            f"day {r.study_day:g}: qPCR " + ("below the limit" if r.below_lloq or r.value <= 0
                                             else f"{r.value:,.0f} copies/µg"))
           for r in rows("car").itertuples() if r.assay == "qpcr" and r.target == "CD22CAR" and pd.notna(r.study_day)]
    lanes.append(("CD22 CAR (qPCR)", car))
    for name, label in (("crs", "CRS"), ("icans", "ICANS")):
        days = [(r.study_day, r.study_day + 1, GRADE_COLOURS[min(int(r.grade), 5)],
                 f"day {r.study_day:g}: {label} grade {int(r.grade)}")
                for r in rows(name).itertuples() if pd.notna(r.grade) and r.grade >= 1]
        lanes.append((f"{label} (grade ≥ 1)", days))
    labs = [(r.study_day, r.study_day + 1, GRADE_COLOURS[min(int(r.grade), 5)],
             f"day {r.study_day:g}: {r.ctcae_term} grade {int(r.grade)}") for r in rows("lab_days").itertuples()]
    lanes.append(("lab grade ≥ 3", labs))
    aes = [(r.onset_day, (r.resolution_day + 1) if pd.notna(r.resolution_day) else None,
            GRADE_COLOURS[min(int(r.ae_grade), 5)] if pd.notna(r.ae_grade) else "#969696",
            f"day {r.onset_day:g}: {r.ae_term}, grade {'?' if pd.isna(r.ae_grade) else int(r.ae_grade)}"
            + ("" if pd.isna(r.resolution_day) else f", resolved day {r.resolution_day:g}"))
           for r in rows("aes").itertuples() if pd.notna(r.onset_day)]
    lanes.append(("adverse events", aes))

    milestones = [(person[k], label) for k, label in (("hsct_day", "HSCT"), ("death_day", "death"),
                                                      ("next_therapy_day", "next therapy")) if pd.notna(person[k])]
    days = [d for _, marks in lanes for d, end, _, _ in marks] + [d for d, _ in milestones]
    days += [end for _, marks in lanes for _, end, _, _ in marks if end is not None]
    if pd.notna(person.last_day):
        days.append(person.last_day)
    if not days:
        return "<p class='empty'>Nothing dated on the study-day scale yet (not infused).</p>"
    first, last = min(min(days), 0), max(max(days), 28)
    span = last - first
    step = _nice_step(span)

    def x(day: float) -> float:
        return LEFT + (day - first) / span * (WIDTH - LEFT - RIGHT)

    height = TOP + LANE * len(lanes) + 40
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {WIDTH} {height}' width='{WIDTH}' "
             f"height='{height}' font-family='system-ui,sans-serif' font-size='12' role='img' "
             f"aria-label='timeline of the participant by study day'>"]
    bottom = TOP + LANE * len(lanes)
    tick = (int(first // step)) * step
    while tick <= last:
        if tick >= first:
            parts.append(f"<line x1='{x(tick):.1f}' x2='{x(tick):.1f}' y1='{TOP}' y2='{bottom}' stroke='#eeeeee'/>"
                         f"<text x='{x(tick):.1f}' y='{bottom + 15}' text-anchor='middle'>{tick:g}</text>")
        tick += step
    parts.append(f"<text x='{(LEFT + WIDTH - RIGHT) / 2:.0f}' y='{bottom + 33}' text-anchor='middle'>"
                 f"study day (days since CD22 CAR infusion)</text>")
    parts.append(f"<line x1='{x(0):.1f}' x2='{x(0):.1f}' y1='{TOP}' y2='{bottom}' stroke='#2166ac'/>")
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
                     f"stroke-dasharray='4 3'><title>{html.escape(f'day {day:g}: {label}')}</title></line>")
    if pd.notna(person.last_day):
        parts.append(f"<line x1='{x(person.last_day):.1f}' x2='{x(person.last_day):.1f}' y1='{TOP}' y2='{bottom}' "
                     f"stroke='#969696'><title>day {person.last_day:g}: last follow-up</title></line>")
    parts.append("</svg>")
    legend = ("<p class='meta'>Hover a mark for what it is. Grades: "
              + " ".join(f"<span style='background:{c};padding:0 .5em'>&#8203;</span> {g}"
                         for g, c in enumerate(GRADE_COLOURS) if g) + ". Blue line: infusion (day 0); dashed: "
              + ", ".join(label for _, label in milestones) + ("; " if milestones else "")
              + "grey: last follow-up.</p>")
    return "".join(parts) + legend


def _levels(car: pd.DataFrame) -> pd.DataFrame:
    """CAR levels with below-limit results said in words, never as 0."""
    def level(r) -> str:
        if r.below_lloq or r.value <= 0:
            return "below the limit" + (f" (LLOQ {r.lloq:g})" if pd.notna(r.lloq) else " (not detected)")
        return f"{r.value:,.3g}" if r.value < 100 else f"{r.value:,.0f}"
    return pd.DataFrame({"study day": car.study_day, "product": car.target.map(coded),
                         "measure": car.assay.map(coded), "level": [level(r) for r in car.itertuples()],
                         "unit": car.unit})


def render_profile(pid: str, person: pd.Series, facts: dict[str, pd.DataFrame]) -> str:
    def rows(name: str) -> pd.DataFrame:
        return facts.get(name, pd.DataFrame(columns=["participant_id"]))

    milestones = pd.DataFrame([{
        "infused": bool(person.infused), "lymphodepletion start (study day)": person.ld_start_day,
        "HSCT (study day)": person.hsct_day, "next therapy (study day)": person.next_therapy_day,
        "death (study day)": person.death_day, "cause of death": person.death_cause,
        "last follow-up (study day)": person.last_day}])
    treatments = rows("treatments")
    dosing = rows("dosing")
    mrd = rows("mrd")
    eligibility = rows("eligibility")
    sections = [
        ("course", "Course", table(milestones) + timeline(facts, person)),
        ("eligibility", "Eligibility",
         table(pd.DataFrame({"criterion": eligibility.get("criterion", pd.Series()).map(coded),
                             "result": eligibility.get("result", pd.Series()).map(coded),
                             "detail": eligibility.get("detail", pd.Series())}), "Not assessed yet.")),
        ("treatment", "Treatment and lymphodepletion dosing",
         table(pd.DataFrame({"study day": treatments.get("study_day", pd.Series()),
                             "agent": treatments.get("agent", pd.Series()).map(words),
                             "dose (mg)": treatments.get("dose_mg", pd.Series()),
                             "CAR cells per kg": treatments.get("car_cells_per_kg", pd.Series())}),
               "No treatment recorded.")
         + "<h3>Dosing checks</h3>"
         + table(pd.DataFrame({"study day": dosing.get("study_day", pd.Series()),
                               "agent": dosing.get("agent", pd.Series()),
                               "dose (mg)": dosing.get("dose_mg", pd.Series()),
                               "expected (mg)": dosing.get("expected_mg", pd.Series()),
                               "deviation": dosing.get("deviation_pct", pd.Series()).map(lambda v: percent(v, 1)),
                               "check": dosing.get("flag", pd.Series()).map(coded)}), "No dose to check.")),
        ("mrd", "MRD",
         table(pd.DataFrame({"study day": mrd.get("study_day", pd.Series()),
                             "specimen": mrd.get("specimen", pd.Series()).map(
                                 {"BM": "bone marrow", "PB": "blood (not used for decisions)"}),
                             "MRD": mrd.get("mrd_status", pd.Series()).map(coded),
                             "leukemic cells": mrd.get("mrd_fraction", pd.Series()).map(
                                 lambda v: percent(100 * v, 4)),
                             "events (leukemic of total)": [
                                 f"{e:,.0f} of {n:,.0f}" if pd.notna(e) and pd.notna(n) else ""
                                 for e, n in zip(mrd.get("events_leukemic", []), mrd.get("events_total", []))]}),
               "No MRD sample.")),
        ("car", "CAR T-cell levels", table(_levels(rows("car")) if len(rows("car")) else pd.DataFrame(),
                                           "No CAR level measured.")),
        ("toxicity", "CRS, ICANS, lab grades and adverse events",
         "<h3>CRS and ICANS days (grade ≥ 1, ASTCT)</h3>"
         + table(pd.concat([pd.DataFrame({"study day": rows(n).get("study_day", pd.Series()),
                                          "syndrome": label, "grade": rows(n).get("grade", pd.Series())})
                            for n, label in (("crs", "CRS"), ("icans", "ICANS"))]).query("grade >= 1")
                 .sort_values(["study day", "syndrome"]), "No CRS or ICANS.")
         + "<h3>Lab grades (CTCAE, from the lab results; worst per term)</h3>"
         + table(pd.DataFrame({"term": rows("labs").get("toxicity", pd.Series()),
                               "worst grade": rows("labs").get("max_grade", pd.Series()),
                               "first study day with grade ≥ 1": rows("labs").get("onset_day", pd.Series())}),
                 "No lab grade ≥ 1.")
         + "<h3>Adverse events (investigator)</h3>"
         + table(pd.DataFrame({"term": rows("aes").get("ae_term", pd.Series()),
                               "grade": rows("aes").get("ae_grade", pd.Series()),
                               "onset (study day)": rows("aes").get("onset_day", pd.Series()),
                               "resolved (study day)": rows("aes").get("resolution_day", pd.Series()),
                               "serious": rows("aes").get("serious", pd.Series()),
                               "related": rows("aes").get("related", pd.Series())}), "None reported.")),
    ]
    nav = " ".join(f"<a href='#{key}'>{html.escape(title)}</a>" for key, title, _ in sections)
    body = "".join(f"<section id='{key}'><h2>{html.escape(title)}</h2>{content}</section>"
                   for key, title, content in sections)
    return page(f"{pid} · NCT07328503 participant profile",
                f"<p><a href='{REPORT_LINK}'>← Trial summary</a></p><h1>Participant {html.escape(pid)}</h1>"
                f"<p class='meta'>Time is in study days (0 = CD22 CAR infusion); no dates and no identifying "
                f"data are shown.</p><nav>{nav}</nav>{body}<p><a href='{REPORT_LINK}'>← Trial summary</a></p>")


def write_profiles(con: duckdb.DuckDBPyConnection, out_dir: Path) -> Path:
    """Every enrolled participant's page into out_dir/profiles/, replacing the previous set whole (a
    participant no longer enrolled leaves no stale page): written into a hidden folder, then swapped in."""
    split = _by_participant(con)
    people = con.sql(QUERIES["participants"]).df()
    target = out_dir / FOLDER
    building = out_dir / f".{FOLDER}.partial"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    for person in people.itertuples(index=False):
        pid = person.participant_id
        facts = {name: rows[pid] for name, rows in split.items() if pid in rows}
        text = render_profile(pid, pd.Series(person._asdict()), facts)
        (building / link(pid).split("/", 1)[1]).write_text(text, encoding="utf-8")
    previous = out_dir / f".{FOLDER}.previous"
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        os.rename(target, previous)
    os.rename(building, target)
    shutil.rmtree(previous, ignore_errors=True)
    return target

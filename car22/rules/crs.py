"""Cytokine release syndrome, ASTCT consensus grading (Lee et al. 2019), derivations §4.1.

Graded per daily assessment, then summarised per infused participant in episodes. The ASTCT table is the data
below (code → level); the episode logic, which needs the days before, is a plain loop.
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from car22.config import Protocol
from car22.sql import replace_table

# EDC code (exports.md §D) -> ASTCT level: hypotension 1 = no vasopressor (2), 2 = one vasopressor (3),
# 3 = several (4); oxygen 1 = low-flow <= 6 L/min (2), 2 = high-flow > 6 L/min / facemask (3), 3 = CPAP,
# BiPAP, intubation (4).
HYPOTENSION_LEVEL = {0: 0, 1: 2, 2: 3, 3: 4}
OXYGEN_LEVEL = {0: 0, 1: 2, 2: 3, 3: 4}


@dataclass(frozen=True)
class Day:
    day: int
    tmax_c: float | None
    hypotension: int | None
    vasopressin: bool
    oxygen: int | None
    tocilizumab: bool
    steroids: bool


def hypotension_level(hypotension: int | None, vasopressin: bool) -> int:
    """Vasopressin alone counts as one vasopressor; it never makes 'multiple'."""
    level = HYPOTENSION_LEVEL.get(hypotension or 0, 0)
    return max(level, 3) if vasopressin else level


def oxygen_level(oxygen: int | None) -> int:
    return OXYGEN_LEVEL.get(oxygen or 0, 0)


def grade_days(days: list[Day], fever_min_c: float) -> pd.DataFrame:
    """Day grades and episodes of the assessed days from day 0 on (derivations §4.1). Without fever, a day keeps
    its hypotension/oxygen grade only inside an established episode in which tocilizumab or steroids were given
    (fever masked); an assessed grade-0 day ends an episode, a calendar day without an assessment neither ends
    nor extends it (the masked-fever state carries over the gap)."""
    rows = []
    episode, in_episode, treated = 0, False, False
    for d in sorted(days, key=lambda x: x.day):
        fever = d.tmax_c is not None and d.tmax_c >= fever_min_c
        hypo, oxy = hypotension_level(d.hypotension, d.vasopressin), oxygen_level(d.oxygen)
        masked = not fever and in_episode and (treated or d.tocilizumab or d.steroids)
        grade = max(1, hypo, oxy) if fever else (max(hypo, oxy) if masked else 0)
        if grade >= 1:
            if not in_episode:
                episode += 1
                treated = False
            in_episode = True
            treated = treated or d.tocilizumab or d.steroids
        else:
            in_episode, treated = False, False
        rows.append({"study_day": d.day, "fever": fever, "hypo_lvl": hypo, "oxy_lvl": oxy, "grade": grade,
                     "fever_masked": bool(masked and grade >= 1), "episode": episode if grade >= 1 else None})
    return pd.DataFrame(rows, columns=["study_day", "fever", "hypo_lvl", "oxy_lvl", "grade", "fever_masked",
                                       "episode"])


def summarise(graded: pd.DataFrame, *, treated_toci: bool, treated_steroids: bool,
              investigator_max: int | None, grade5: bool) -> dict:
    """max_grade, onset and duration of the first episode, episodes, treatment and the investigator's grade."""
    events = graded[graded.grade >= 1]
    first = events[events.episode == events.episode.min()] if not events.empty else events
    max_grade = 5 if grade5 else int(graded.grade.max()) if not graded.empty else 0
    return {
        "max_grade": max_grade,
        "onset_day": int(first.study_day.min()) if not first.empty else None,
        "duration_days": int(first.study_day.max() - first.study_day.min() + 1) if not first.empty else None,
        "n_episodes": int(events.episode.nunique()),
        "tocilizumab": treated_toci,
        "steroids": treated_steroids,
        "investigator_max_grade": investigator_max,
        "grade_discordant": None if investigator_max is None else investigator_max != max_grade,
    }


DAILY_COMMENTS = {
    "": "CRS grade per daily assessment from the infusion day on, ASTCT consensus (derivations §4.1); earlier "
        "assessments stay in core.crs_assessments and are never graded.",
    "participant_id": "Infused participant.",
    "assess_date": "Assessment date.",
    "study_day": "Assessment date - infusion date.",
    "fever": "tmax_c >= 38.0 (setting crs.fever_min_c).",
    "hypo_lvl": "0 none, 2 no vasopressor, 3 one vasopressor (vasopressin alone counts as one), 4 multiple.",
    "oxy_lvl": "0 none, 2 low-flow <= 6 L/min, 3 high-flow > 6 L/min/facemask/non-rebreather/Venturi, "
               "4 positive pressure.",
    "grade": "Day grade: max(1, hypo_lvl, oxy_lvl) with fever; max(hypo_lvl, oxy_lvl) when fever is masked by "
             "tocilizumab or steroids within an established episode; else 0.",
    "fever_masked": "TRUE when the day is graded without fever because of tocilizumab/steroids in the episode.",
    "episode": "Episode number (consecutive assessed days with grade >= 1; a day without an assessment neither "
               "ends nor extends it); NULL on grade-0 days.",
    "tocilizumab": "Tocilizumab given that day.",
    "steroids": "Corticosteroids given that day.",
    "inv_crs_grade": "The investigator's grade that day.",
    "scale": "Grading scale.",
}
SUMMARY_COMMENTS = {
    "": "CRS per infused participant (derivations §4.1); max_grade 0 when no CRS.",
    "participant_id": "Infused participant.",
    "max_grade": "Worst derived ASTCT grade; 5 when death is attributed to CRS.",
    "onset_day": "First study day of the first episode (day 0 or later).",
    "duration_days": "Last - first day + 1 of the first episode (calendar days).",
    "n_episodes": "Episodes (runs of consecutive assessed days with grade >= 1, from day 0 on).",
    "tocilizumab": "Tocilizumab given on any assessed day.",
    "steroids": "Corticosteroids given on any assessed day.",
    "investigator_max_grade": "Worst grade reported by the investigator.",
    "grade_discordant": "Derived and investigator maximum grades differ (NULL when the investigator reported none).",
    "scale": "Grading scale.",
}
SCALE = "ASTCT 2019"


def build(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    fever_min = protocol["crs"]["fever_min_c"]
    people = con.sql("SELECT participant_id, death_cause FROM core.participants WHERE infused ORDER BY 1").df()
    # grading starts on the infusion day: fever after lymphodepletion is not CRS (derivations §4.1)
    assessments = con.sql("""SELECT * FROM core.crs_assessments WHERE study_day >= 0
                             ORDER BY participant_id, study_day""").df()
    daily, summary = [], []
    by_participant = dict(tuple(assessments.groupby("participant_id", sort=False)))
    for person in people.itertuples():
        own = by_participant.get(person.participant_id, assessments.iloc[0:0])
        days = [Day(int(r.study_day), None if pd.isna(r.tmax_c) else float(r.tmax_c),
                    None if pd.isna(r.hypotension) else int(r.hypotension), bool(r.vasopressin is True),
                    None if pd.isna(r.oxygen) else int(r.oxygen), bool(r.tocilizumab is True),
                    bool(r.steroids is True)) for r in own.itertuples()]
        graded = grade_days(days, fever_min)
        if not own.empty:
            graded = graded.assign(participant_id=person.participant_id, assess_date=own.assess_date.to_numpy(),
                                   tocilizumab=own.tocilizumab.to_numpy(), steroids=own.steroids.to_numpy(),
                                   inv_crs_grade=own.inv_crs_grade.to_numpy(), scale=SCALE)
            daily.append(graded)
        investigator = own.inv_crs_grade.dropna()
        summary.append({"participant_id": person.participant_id, **summarise(
            graded, treated_toci=bool((own.tocilizumab == True).any()),  # noqa: E712
            treated_steroids=bool((own.steroids == True).any()),  # noqa: E712
            investigator_max=int(investigator.max()) if len(investigator) else None,
            grade5=person.death_cause == "CRS"), "scale": SCALE})
    frame = pd.concat(daily) if daily else pd.DataFrame(columns=list(DAILY_COMMENTS)[1:])
    replace_table(con, "mart.crs_daily", frame, DAILY_COMMENTS,
                  {"participant_id": "VARCHAR", "assess_date": "DATE", "study_day": "INTEGER", "fever": "BOOLEAN",
                   "hypo_lvl": "INTEGER", "oxy_lvl": "INTEGER", "grade": "INTEGER", "fever_masked": "BOOLEAN",
                   "episode": "INTEGER", "tocilizumab": "BOOLEAN", "steroids": "BOOLEAN",
                   "inv_crs_grade": "INTEGER", "scale": "VARCHAR"})
    replace_table(con, "mart.crs_summary", pd.DataFrame(summary), SUMMARY_COMMENTS, SUMMARY_TYPES)


SUMMARY_TYPES = {"participant_id": "VARCHAR", "max_grade": "INTEGER", "onset_day": "INTEGER",
                 "duration_days": "INTEGER", "n_episodes": "INTEGER", "tocilizumab": "BOOLEAN",
                 "steroids": "BOOLEAN", "investigator_max_grade": "INTEGER", "grade_discordant": "BOOLEAN",
                 "scale": "VARCHAR"}

"""Cytokine release syndrome, ASTCT consensus grading (Lee et al. 2019), derivations §4.1.

Graded per daily assessment, then summarised per infused participant in episodes, every participant at once:
the ASTCT table is the data below (code → level), looked up over the whole frame of assessments; the
masked-fever state, which needs the days before, is carried one day position at a time across all
participants. `grade_days` and `summarise` run the same code on one participant (the hand-computed cases).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import duckdb
import numpy as np
import pandas as pd

from car22.config import Protocol
from car22.sql import replace_table

# EDC code (exports.md §D) -> ASTCT level: hypotension 1 = no vasopressor (2), 2 = one vasopressor (3),
# 3 = several (4); oxygen 1 = low-flow <= 6 L/min (2), 2 = high-flow > 6 L/min / facemask (3), 3 = CPAP,
# BiPAP, intubation (4).
HYPOTENSION_LEVEL = {0: 0, 1: 2, 2: 3, 3: 4}
OXYGEN_LEVEL = {0: 0, 1: 2, 2: 3, 3: 4}
VASOPRESSIN_LEVEL = 3  # vasopressin alone counts as one vasopressor; it never makes 'multiple'


@dataclass(frozen=True)
class Day:
    """One assessed day of one participant, named as the columns of core.crs_assessments."""
    study_day: int
    tmax_c: float | None
    hypotension: int | None
    vasopressin: bool
    oxygen: int | None
    tocilizumab: bool
    steroids: bool


def level(codes: pd.Series, levels: dict[int, int]) -> np.ndarray:
    """The level of each EDC code; a missing or unknown code is level 0."""
    return codes.map(levels).fillna(0).to_numpy(int)


def equals(column: pd.Series, value: object = True) -> np.ndarray:
    """Where the column holds `value`; a missing value never does (a blank flag is not given)."""
    return column.eq(value).fillna(False).to_numpy(bool)


def masked_fever(participant: np.ndarray, fever: np.ndarray, organ: np.ndarray,
                 treated: np.ndarray) -> np.ndarray:
    """Days graded without fever because fever may be masked: the day has a hypotension or oxygen level, the
    participant's previous assessed day was in an episode (calendar days without an assessment between do not
    matter) and tocilizumab or steroids were given in that episode up to this day. Rows are ordered by
    participant (integer codes) and day. The state is sequential within a participant, so it is carried one
    position at a time (k = the participant's k-th assessed day), every participant at once."""
    position = pd.Series(participant).groupby(participant).cumcount().to_numpy()
    order = np.argsort(position, kind="stable")
    bounds = np.searchsorted(position[order], np.arange(position.max(initial=-1) + 2))
    in_episode = np.zeros(participant.max(initial=-1) + 1, dtype=bool)
    episode_treated = np.zeros_like(in_episode)
    masked = np.zeros(len(participant), dtype=bool)
    for k in range(len(bounds) - 1):
        rows = order[bounds[k]:bounds[k + 1]]
        who = participant[rows]
        masked[rows] = (~fever[rows] & (organ[rows] > 0) & in_episode[who]
                        & (episode_treated[who] | treated[rows]))
        event = fever[rows] | masked[rows]
        # a grade-0 day ends the episode and its treatment; a new episode starts untreated
        episode_treated[who] = event & (episode_treated[who] | treated[rows])
        in_episode[who] = event
    return masked


def episode_numbers(participant: pd.Series, grade: np.ndarray) -> np.ndarray:
    """Episode number per assessed day, rows ordered by participant and day: runs of consecutive assessed days
    with grade >= 1, numbered from 1 within each participant; NaN on grade-0 days. A grade-0 day ends an
    episode, a calendar day without an assessment neither ends nor extends it (derivations §4.1-4.2)."""
    event = pd.Series(grade >= 1, index=participant.index)
    starts = event & ~event.groupby(participant).shift(fill_value=False)
    return starts.groupby(participant).cumsum().where(event).to_numpy(float)


def grade_frame(assessments: pd.DataFrame, fever_min_c: float) -> pd.DataFrame:
    """The assessments (columns of core.crs_assessments), ordered by participant and study day, with their
    levels, day grade, masked fever and episode (derivations §4.1). With fever the grade is
    max(1, hypo_lvl, oxy_lvl); without, max(hypo_lvl, oxy_lvl) when fever is masked (`masked_fever`), else 0."""
    a = assessments.sort_values(["participant_id", "study_day"], kind="stable", ignore_index=True)
    fever = a.tmax_c.astype("Float64").ge(fever_min_c).fillna(False).to_numpy(bool)
    hypotension = np.maximum(level(a.hypotension, HYPOTENSION_LEVEL),
                             np.where(equals(a.vasopressin), VASOPRESSIN_LEVEL, 0))
    oxygen = level(a.oxygen, OXYGEN_LEVEL)
    organ = np.maximum(hypotension, oxygen)
    masked = masked_fever(pd.factorize(a.participant_id)[0], fever, organ,
                          equals(a.tocilizumab) | equals(a.steroids))
    grade = np.where(fever, np.maximum(organ, 1), np.where(masked, organ, 0))
    return a.assign(fever=fever, hypo_lvl=hypotension, oxy_lvl=oxygen, grade=grade, fever_masked=masked,
                    episode=episode_numbers(a.participant_id, grade))


def grade_days(days: list[Day], fever_min_c: float) -> pd.DataFrame:
    """One participant's days through `grade_frame` (the hand-computed cases test the production code)."""
    frame = pd.DataFrame(days, columns=[f.name for f in fields(Day)])
    return grade_frame(frame.assign(participant_id=""), fever_min_c)


def summaries(graded: pd.DataFrame, people: pd.DataFrame) -> pd.DataFrame:
    """One row per participant of `people` (participant_id, grade5, tocilizumab, steroids,
    investigator_max_grade) from its graded days: the worst grade (5 when death is attributed to the syndrome,
    0 without any assessment), onset and duration of the first episode, the number of episodes, and the
    investigator's worst grade beside the derived one (grade_discordant NULL when the investigator gave none)."""
    out = people.set_index("participant_id")
    events = graded[graded.grade >= 1]
    first = events[events.episode == 1].groupby("participant_id").study_day
    worst = graded.groupby("participant_id").grade.max().reindex(out.index, fill_value=0)
    max_grade = worst.where(~out.grade5.astype(bool), 5).astype("Int64")
    investigator = out.investigator_max_grade.astype("Int64")
    n_episodes = events.groupby("participant_id").episode.max().reindex(out.index, fill_value=0)
    return out.assign(max_grade=max_grade, onset_day=first.min().astype("Int64"),
                      duration_days=(first.max() - first.min() + 1).astype("Int64"),
                      n_episodes=n_episodes.astype("Int64"), investigator_max_grade=investigator,
                      grade_discordant=investigator.ne(max_grade)).reset_index()


def summarise(graded: pd.DataFrame, *, treated_toci: bool | None, treated_steroids: bool | None,
              investigator_max: int | None, grade5: bool) -> dict:
    """One participant's summary through `summaries` (the hand-computed cases), as plain Python values."""
    person = pd.DataFrame({"participant_id": [""], "grade5": [grade5], "tocilizumab": [treated_toci],
                           "steroids": [treated_steroids], "investigator_max_grade": [investigator_max]})
    row = summaries(graded.assign(participant_id=""), person)[[c for c in SUMMARY_TYPES
                                                                if c not in ("participant_id", "scale")]]
    return row.astype(object).where(row.notna(), None).iloc[0].to_dict()


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
    # grading starts on the infusion day: fever after lymphodepletion is not CRS (derivations §4.1)
    assessments = con.sql("""SELECT * FROM core.crs_assessments
                             WHERE study_day >= 0
                               AND participant_id IN (SELECT participant_id FROM core.participants WHERE infused)
                             ORDER BY participant_id, study_day""").df()
    people = con.sql("""SELECT p.participant_id, coalesce(p.death_cause = 'CRS', FALSE) AS grade5,
                               coalesce(a.tocilizumab, FALSE) AS tocilizumab, coalesce(a.steroids, FALSE) AS steroids,
                               a.investigator_max_grade
                        FROM core.participants p
                        LEFT JOIN (SELECT participant_id, bool_or(tocilizumab) AS tocilizumab,
                                          bool_or(steroids) AS steroids, max(inv_crs_grade) AS investigator_max_grade
                                   FROM core.crs_assessments WHERE study_day >= 0
                                   GROUP BY participant_id) a USING (participant_id)
                        WHERE p.infused ORDER BY 1""").df()
    graded = grade_frame(assessments, protocol["crs"]["fever_min_c"])
    replace_table(con, "mart.crs_daily", graded.assign(scale=SCALE), DAILY_COMMENTS,
                  {"participant_id": "VARCHAR", "assess_date": "DATE", "study_day": "INTEGER", "fever": "BOOLEAN",
                   "hypo_lvl": "INTEGER", "oxy_lvl": "INTEGER", "grade": "INTEGER", "fever_masked": "BOOLEAN",
                   "episode": "INTEGER", "tocilizumab": "BOOLEAN", "steroids": "BOOLEAN",
                   "inv_crs_grade": "INTEGER", "scale": "VARCHAR"})
    replace_table(con, "mart.crs_summary", summaries(graded, people).assign(scale=SCALE), SUMMARY_COMMENTS,
                  SUMMARY_TYPES)


SUMMARY_TYPES = {"participant_id": "VARCHAR", "max_grade": "INTEGER", "onset_day": "INTEGER",
                 "duration_days": "INTEGER", "n_episodes": "INTEGER", "tocilizumab": "BOOLEAN",
                 "steroids": "BOOLEAN", "investigator_max_grade": "INTEGER", "grade_discordant": "BOOLEAN",
                 "scale": "VARCHAR"}

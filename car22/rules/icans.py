"""Immune effector cell-associated neurotoxicity (ICANS), ASTCT consensus, derivations §4.2.

Day grade = the worst domain (encephalopathy score by the tool the assessment used, consciousness, seizure,
motor, cerebral edema), every assessment at once; episodes and the per-participant summary are CRS's
(car22.rules.crs.episode_numbers, summaries). `score_grade`, `day_grade` and `episodes` run the same code on one
assessment or participant (the hand-computed cases).
"""
from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from car22.config import Protocol
from car22.rules.crs import (
    SCALE,
    SUMMARY_TYPES,
    episode_numbers,
    equals,
    level,
    summaries,
)
from car22.sql import replace_table

CONSCIOUSNESS = {0: 0, 1: 2, 2: 3, 3: 4}      # alert, wakes to voice, to touch only, unarousable
SEIZURE = {0: 0, 1: 3, 2: 4}                  # none, rapidly resolving/EEG-only, prolonged/repetitive
CEREBRAL_EDEMA = {0: 0, 1: 3, 2: 4}           # none, focal, diffuse/posturing/papilledema
MOTOR_WEAKNESS = 4                            # deep focal motor weakness
UNAROUSABLE = 3


def score_grades(assessments: pd.DataFrame) -> np.ndarray:
    """ICE (age >= 12): 10 -> 0, 7-9 -> 1, 3-6 -> 2, 0-2 -> 3, 0 because unarousable -> 4.
    CAPD (age < 12): 0 -> 0, 1-8 -> 1, >= 9 -> 3, unable to perform because unarousable -> 4.
    Unable to assess for another reason grades nothing from the score (the other domains still count)."""
    score = assessments.score.astype("Float64").to_numpy(float, na_value=np.nan)
    unarousable = equals(assessments.consciousness, UNAROUSABLE)
    ice, capd = equals(assessments.tool, "ICE"), equals(assessments.tool, "CAPD")
    ice_grade = np.select([score >= 10, score >= 7, score >= 3], [0, 1, 2], default=3)
    capd_grade = np.select([score == 0, score <= 8], [0, 1], default=3)
    return np.select([equals(assessments.unable_to_assess), np.isnan(score), ice & (score == 0) & unarousable,
                      ice, capd],
                     [np.where(unarousable, 4, 0), 0, 4, ice_grade, capd_grade], default=0)


def day_grades(assessments: pd.DataFrame, score_grade: np.ndarray) -> np.ndarray:
    """The worst domain of each assessment, the score's grade included."""
    return np.maximum.reduce([score_grade, level(assessments.consciousness, CONSCIOUSNESS),
                              level(assessments.seizure, SEIZURE),
                              np.where(equals(assessments.motor_weakness), MOTOR_WEAKNESS, 0),
                              level(assessments.cerebral_edema, CEREBRAL_EDEMA)])


def grade_frame(assessments: pd.DataFrame) -> pd.DataFrame:
    """The assessments (columns of core.icans_assessments), ordered by participant and study day, with their
    score grade, day grade and episode (derivations §4.2)."""
    a = assessments.sort_values(["participant_id", "study_day"], kind="stable", ignore_index=True)
    score_grade = score_grades(a)
    grade = day_grades(a, score_grade)
    return a.assign(score_grade=score_grade, grade=grade, episode=episode_numbers(a.participant_id, grade))


def score_grade(tool: str | None, score: int | None, unable_to_assess: bool, consciousness: int | None) -> int:
    """One assessment through `score_grades` (the hand-computed cases)."""
    return int(score_grades(pd.DataFrame([{"tool": tool, "score": score, "unable_to_assess": unable_to_assess,
                                           "consciousness": consciousness}]))[0])


def day_grade(tool: str | None, score: int | None, unable_to_assess: bool, consciousness: int | None,
              seizure: int | None, motor_weakness: bool, cerebral_edema: int | None) -> int:
    """One assessment through `day_grades` (the hand-computed cases)."""
    one = pd.DataFrame([{"tool": tool, "score": score, "unable_to_assess": unable_to_assess,
                         "consciousness": consciousness, "seizure": seizure, "motor_weakness": motor_weakness,
                         "cerebral_edema": cerebral_edema}])
    return int(day_grades(one, score_grades(one))[0])


def episodes(grades: list[int]) -> list[int | None]:
    """One participant's day grades through `episode_numbers` (the hand-computed cases)."""
    numbers = episode_numbers(pd.Series([""] * len(grades), dtype=object), np.asarray(grades, dtype=int))
    return [None if np.isnan(n) else int(n) for n in numbers]


DAILY_COMMENTS = {
    "": "ICANS grade per daily assessment from the infusion day on, ASTCT consensus (derivations §4.2); earlier "
        "assessments stay in core.icans_assessments and are never graded.",
    "participant_id": "Infused participant.",
    "assess_date": "Assessment date.",
    "study_day": "Assessment date - infusion date.",
    "tool": "ICE (age >= 12) or CAPD (age < 12), as recorded.",
    "score": "ICE or CAPD score.",
    "score_grade": "Grade from the encephalopathy score.",
    "grade": "Day grade: the worst of score, consciousness, seizure, motor and cerebral edema domains.",
    "episode": "Episode number (consecutive assessed days with grade >= 1; a day without an assessment neither "
               "ends nor extends it); NULL on grade-0 days.",
    "inv_icans_grade": "The investigator's grade that day.",
    "scale": "Grading scale.",
}
SUMMARY_COMMENTS = {
    "": "ICANS per infused participant (derivations §4.2); max_grade 0 when no ICANS.",
    "participant_id": "Infused participant.",
    "max_grade": "Worst derived ASTCT ICANS grade.",
    "onset_day": "First study day of the first episode (day 0 or later).",
    "duration_days": "Last - first day + 1 of the first episode (calendar days).",
    "n_episodes": "Episodes.",
    "tocilizumab": "Not recorded on the ICANS form: NULL.",
    "steroids": "Not recorded on the ICANS form: NULL.",
    "investigator_max_grade": "Worst grade reported by the investigator.",
    "grade_discordant": "Derived and investigator maximum grades differ.",
    "scale": "Grading scale.",
}


def build(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    # grading starts on the infusion day, as for CRS (derivations §4.2)
    assessments = con.sql("""SELECT * FROM core.icans_assessments
                             WHERE study_day >= 0
                               AND participant_id IN (SELECT participant_id FROM core.participants WHERE infused)
                             ORDER BY participant_id, study_day""").df()
    # the ICANS form records no treatment and no death from ICANS: tocilizumab and steroids NULL, no grade 5
    people = con.sql("""SELECT p.participant_id, FALSE AS grade5, NULL::BOOLEAN AS tocilizumab,
                               NULL::BOOLEAN AS steroids, a.investigator_max_grade
                        FROM core.participants p
                        LEFT JOIN (SELECT participant_id, max(inv_icans_grade) AS investigator_max_grade
                                   FROM core.icans_assessments WHERE study_day >= 0
                                   GROUP BY participant_id) a USING (participant_id)
                        WHERE p.infused ORDER BY 1""").df()
    graded = grade_frame(assessments)
    replace_table(con, "mart.icans_daily", graded.assign(scale=SCALE), DAILY_COMMENTS,
                  {"participant_id": "VARCHAR", "assess_date": "DATE", "study_day": "INTEGER", "tool": "VARCHAR",
                   "score": "INTEGER", "score_grade": "INTEGER", "grade": "INTEGER", "episode": "INTEGER",
                   "inv_icans_grade": "INTEGER", "scale": "VARCHAR"})
    replace_table(con, "mart.icans_summary", summaries(graded, people).assign(scale=SCALE), SUMMARY_COMMENTS,
                  SUMMARY_TYPES)

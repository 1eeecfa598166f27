"""Immune effector cell-associated neurotoxicity (ICANS), ASTCT consensus, derivations §4.2.

Day grade = the worst domain (encephalopathy score by the tool the assessment used, consciousness, seizure,
motor, cerebral edema); per participant the same summary as CRS (car22.rules.crs.summarise).
"""
from __future__ import annotations

import duckdb
import pandas as pd

from car22.config import Protocol
from car22.rules.crs import SCALE, SUMMARY_TYPES, summarise
from car22.sql import replace_table

CONSCIOUSNESS = {0: 0, 1: 2, 2: 3, 3: 4}      # alert, wakes to voice, to touch only, unarousable
SEIZURE = {0: 0, 1: 3, 2: 4}                  # none, rapidly resolving/EEG-only, prolonged/repetitive
CEREBRAL_EDEMA = {0: 0, 1: 3, 2: 4}           # none, focal, diffuse/posturing/papilledema
UNAROUSABLE = 3


def score_grade(tool: str | None, score: int | None, unable_to_assess: bool, consciousness: int | None) -> int:
    """ICE (age >= 12): 10 -> 0, 7-9 -> 1, 3-6 -> 2, 0-2 -> 3, 0 because unarousable -> 4.
    CAPD (age < 12): 0 -> 0, 1-8 -> 1, >= 9 -> 3, unable to perform because unarousable -> 4.
    Unable to assess for another reason grades nothing from the score (the other domains still count)."""
    if unable_to_assess:
        return 4 if consciousness == UNAROUSABLE else 0
    if score is None:
        return 0
    if tool == "ICE":
        if score == 0 and consciousness == UNAROUSABLE:
            return 4
        return 0 if score >= 10 else 1 if score >= 7 else 2 if score >= 3 else 3
    if tool == "CAPD":
        return 0 if score == 0 else 1 if score <= 8 else 3
    return 0


def day_grade(tool: str | None, score: int | None, unable_to_assess: bool, consciousness: int | None,
              seizure: int | None, motor_weakness: bool, cerebral_edema: int | None) -> int:
    return max(score_grade(tool, score, unable_to_assess, consciousness),
               CONSCIOUSNESS.get(consciousness or 0, 0), SEIZURE.get(seizure or 0, 0),
               4 if motor_weakness else 0, CEREBRAL_EDEMA.get(cerebral_edema or 0, 0))


def episodes(grades: list[int]) -> list[int | None]:
    """Episode number per assessed day: consecutive assessed days with grade >= 1; a grade-0 day ends an
    episode, a calendar day without an assessment neither ends nor extends it (derivations §4.1-4.2)."""
    numbers: list[int | None] = []
    current = 0
    for grade in grades:
        if grade >= 1:
            if not numbers or numbers[-1] is None:
                current += 1
            numbers.append(current)
        else:
            numbers.append(None)
    return numbers


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


def value(x) -> int | None:
    return None if pd.isna(x) else int(x)


def build(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    people = con.sql("SELECT participant_id FROM core.participants WHERE infused ORDER BY 1").df()
    # grading starts on the infusion day, as for CRS (derivations §4.2)
    assessments = con.sql("""SELECT * FROM core.icans_assessments WHERE study_day >= 0
                             ORDER BY participant_id, study_day""").df()
    daily, summary = [], []
    by_participant = dict(tuple(assessments.groupby("participant_id", sort=False)))
    for pid in people.participant_id:
        own = by_participant.get(pid, assessments.iloc[0:0])
        rows = [{"participant_id": pid, "assess_date": r.assess_date, "study_day": int(r.study_day),
                 "tool": r.tool, "score": value(r.score),
                 "score_grade": score_grade(r.tool, value(r.score), r.unable_to_assess is True,
                                            value(r.consciousness)),
                 "grade": day_grade(r.tool, value(r.score), r.unable_to_assess is True, value(r.consciousness),
                                    value(r.seizure), r.motor_weakness is True, value(r.cerebral_edema)),
                 "inv_icans_grade": value(r.inv_icans_grade), "scale": SCALE} for r in own.itertuples()]
        graded = pd.DataFrame(rows, columns=[c for c in DAILY_COMMENTS if c])
        graded["episode"] = episodes(graded.grade.tolist())
        daily.append(graded)
        investigator = own.inv_icans_grade.dropna()
        summary.append({"participant_id": pid, **summarise(
            graded, treated_toci=None, treated_steroids=None,
            investigator_max=int(investigator.max()) if len(investigator) else None, grade5=False),
            "scale": SCALE})
    frame = pd.concat(daily) if daily else pd.DataFrame(columns=[c for c in DAILY_COMMENTS if c])
    replace_table(con, "mart.icans_daily", frame, DAILY_COMMENTS,
                  {"participant_id": "VARCHAR", "assess_date": "DATE", "study_day": "INTEGER", "tool": "VARCHAR",
                   "score": "INTEGER", "score_grade": "INTEGER", "grade": "INTEGER", "episode": "INTEGER",
                   "inv_icans_grade": "INTEGER", "scale": "VARCHAR"})
    replace_table(con, "mart.icans_summary", pd.DataFrame(summary), SUMMARY_COMMENTS, SUMMARY_TYPES)

"""Relapse-free survival, the primary endpoint (derivations §5): per participant, Kaplan–Meier, 1-year RFS.

Kaplan–Meier with Greenwood variance and the log-log ("exponential Greenwood") 95 % interval, written out
here so every figure can be re-derived by hand from mart.rfs; tests check it against a hand calculation and
against scipy.stats.ecdf.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import pandas as pd
from scipy.stats import norm

from car22.config import Protocol
from car22.sql import replace_table

# Same-day events: the most specific evidence of disease names the event (derivations §5 lists the kinds).
EVENT_PRECEDENCE = ("MORPHOLOGIC", "EXTRAMEDULLARY", "MRD", "DEATH")
METHOD = "Kaplan-Meier; 95% CI Greenwood variance, log-log transform"


@dataclass(frozen=True)
class Outcome:
    end_date: date
    event: bool
    event_type: str | None
    censor_reason: str | None


def rfs_outcome(infusion: date, events: list[tuple[date, str]], assessments: list[date],
                subsequent_therapy: list[tuple[date, str]], *, censor_at_subsequent_therapy: bool) -> Outcome:
    """One participant's RFS end point, computed by rfs_outcomes, the cohort's code, on a cohort of one.

    events: (date, type) candidates; assessments: disease assessment dates; subsequent_therapy:
    (date, 'HSCT' | 'SUBSEQUENT_THERAPY').
    """
    def frame(rows: list, columns: list[str]) -> pd.DataFrame:
        table = pd.DataFrame(rows, columns=columns)
        return table.assign(participant_id="one", **{columns[0]: pd.to_datetime(table[columns[0]])})

    row = rfs_outcomes(frame([(infusion,)], ["infusion_date"]), frame(events, ["event_date", "event_type"]),
                       frame([(d,) for d in assessments], ["assess_date"]),
                       frame(subsequent_therapy, ["therapy_date", "reason"]),
                       censor_at_subsequent_therapy=censor_at_subsequent_therapy).iloc[0]
    return Outcome(row.end_date.date(), bool(row.event), row.event_type, row.censor_reason)


def rfs_outcomes(people: pd.DataFrame, events: pd.DataFrame, assessments: pd.DataFrame, therapies: pd.DataFrame,
                 *, censor_at_subsequent_therapy: bool) -> pd.DataFrame:
    """Every participant's RFS end point at once: people's rows with end_date, event, event_type, censor_reason.

    people: participant_id, infusion_date; events: participant_id, event_date, event_type (candidates: only those
    on or after the infusion count); assessments: participant_id, assess_date (those on or after the infusion
    count); therapies: participant_id, therapy_date, reason ('HSCT' | 'SUBSEQUENT_THERAPY', the first therapy
    censors, HSCT named on a tie). An event on the day therapy starts counts (relapse is why therapy starts); an
    event after it does not, in the primary analysis.
    """
    frame = people[["participant_id", "infusion_date"]]
    if censor_at_subsequent_therapy:
        first = therapies.sort_values(["therapy_date", "reason"], kind="stable").drop_duplicates("participant_id")
        frame = frame.merge(first[["participant_id", "therapy_date", "reason"]], on="participant_id", how="left")
    else:
        frame = frame.assign(therapy_date=pd.NaT, reason=None)
    candidates = events.merge(frame, on="participant_id")
    # a missing therapy date compares False: nothing censors the event
    candidates = candidates[(candidates.event_date >= candidates.infusion_date)
                            & ~(candidates.event_date > candidates.therapy_date)]
    precedence = candidates.event_type.map({kind: rank for rank, kind in enumerate(EVENT_PRECEDENCE)})
    first_event = (candidates.assign(precedence=precedence)
                   .sort_values(["participant_id", "event_date", "precedence"], kind="stable")
                   .drop_duplicates("participant_id")[["participant_id", "event_date", "event_type"]])
    assessed = assessments.merge(frame[["participant_id", "infusion_date"]], on="participant_id")
    last = (assessed[assessed.assess_date >= assessed.infusion_date].groupby("participant_id")["assess_date"].max()
            .rename("last_assessment").reset_index())
    frame = frame.merge(first_event, on="participant_id", how="left").merge(last, on="participant_id", how="left")
    has_event = frame.event_date.notna().to_numpy()
    unassessed = frame.last_assessment.isna().to_numpy()
    by_therapy = (frame.therapy_date.notna() & (unassessed | (frame.therapy_date < frame.last_assessment))).to_numpy()
    cases = [has_event, by_therapy, unassessed]
    return pd.DataFrame({
        "participant_id": frame.participant_id,
        "start_date": frame.infusion_date,
        "end_date": np.select(cases, [frame.event_date, frame.therapy_date, frame.infusion_date],
                              frame.last_assessment),
        "event": has_event,
        "event_type": np.where(has_event, frame.event_type.to_numpy(object), None),
        "censor_reason": np.select(cases, [None, frame.reason, "NO_ASSESSMENT_AFTER_INFUSION"],
                                   "LAST_DISEASE_ASSESSMENT")})


def kaplan_meier(times: np.ndarray, events: np.ndarray, confidence: float = 0.95) -> pd.DataFrame:
    """Survival at each distinct time (with a time-0 row), Greenwood variance, log-log limits.

    S(t) = Π (1 − d/n); Greenwood Σ d/(n(n − d)); v = Σ / (ln S)²; limits S^exp(∓z√v). The interval is
    NULL where S = 1 (nothing to transform) or S = 0.
    """
    times = np.asarray(times, dtype=float)
    events = np.asarray(events, dtype=bool)
    z = float(norm.ppf(0.5 + confidence / 2))
    rows = [{"time_days": 0, "n_at_risk": len(times), "n_events": 0, "n_censored": 0, "survival": 1.0,
             "greenwood": 0.0, "ci_lower": None, "ci_upper": None}]
    survival, greenwood = 1.0, 0.0
    for t in np.unique(times):
        at_risk = int((times >= t).sum())
        died = int((events & (times == t)).sum())
        censored = int((~events & (times == t)).sum())
        if died:
            survival *= 1 - died / at_risk
            greenwood += died / (at_risk * (at_risk - died)) if at_risk > died else math.inf
        lower = upper = None
        if 0 < survival < 1 and math.isfinite(greenwood):
            spread = z * math.sqrt(greenwood) / abs(math.log(survival))
            lower, upper = survival ** math.exp(spread), survival ** math.exp(-spread)
        row = {"time_days": int(t), "n_at_risk": at_risk, "n_events": died, "n_censored": censored,
               "survival": survival, "greenwood": greenwood, "ci_lower": lower, "ci_upper": upper}
        if t == 0:
            rows[0] = row
        else:
            rows.append(row)
    return pd.DataFrame(rows)


def landmark(curve: pd.DataFrame, times: np.ndarray, events: np.ndarray, day: int) -> dict:
    """S(day) from the step function, with its interval and the number still at risk on that day."""
    at_risk = int((np.asarray(times) >= day).sum())
    n_events = int((np.asarray(events, dtype=bool) & (np.asarray(times) <= day)).sum())
    step = curve[curve["time_days"] <= day].iloc[-1]
    result = {"estimate": float(step["survival"]), "ci_lower": step["ci_lower"], "ci_upper": step["ci_upper"],
              "n": len(times), "n_events": n_events, "n_at_risk": at_risk, "null_reason": None}
    if len(times) == 0 or at_risk == 0:
        longest = int(np.max(times)) if len(times) else 0
        result.update(estimate=None, ci_lower=None, ci_upper=None,
                      null_reason=f"nobody at risk at day {day} (longest follow-up {longest} days)")
    elif result["estimate"] == 1.0:
        result.update(ci_lower=None, ci_upper=None,
                      null_reason=f"S({day}) = 1: no event yet, the confidence interval is not computable")
    return result


def outcomes(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> pd.DataFrame:
    """mart.rfs rows: every infused participant, primary and sensitivity analyses."""
    settings = protocol["rfs"]
    people = con.sql("SELECT participant_id, infusion_date FROM core.participants WHERE infused "
                     "ORDER BY participant_id").df()
    # MRD relapse needs a marrow sample POSITIVE after day 0 (derivations §5)
    events = con.execute("""
        SELECT participant_id, assess_date AS event_date, 'MORPHOLOGIC' AS event_type
        FROM core.disease_assessments WHERE study_day >= 0 AND bm_blasts_pct >= $blasts
        UNION ALL
        SELECT participant_id, assess_date, 'EXTRAMEDULLARY' FROM core.disease_assessments
        WHERE study_day >= 0 AND (coalesce(extramedullary, FALSE) OR cns_status = 'CNS3')
        UNION ALL
        SELECT m.participant_id, m.collected_on, 'MRD' FROM mart.mrd_assessments m
        JOIN core.participants p USING (participant_id)
        WHERE m.specimen = 'BM' AND m.study_day >= 0 AND m.mrd_status = 'POSITIVE' AND m.collected_on > p.infusion_date
        UNION ALL
        SELECT participant_id, death_date, 'DEATH' FROM core.participants WHERE infused AND death_date IS NOT NULL""",
                         {"blasts": settings["morphologic_relapse_min_blasts_pct"]}).df()
    # disease assessments and evaluable marrow samples (a QC failure is no assessment)
    assessments = con.sql("""
        SELECT participant_id, assess_date FROM core.disease_assessments WHERE study_day >= 0
        UNION ALL
        SELECT participant_id, collected_on FROM mart.mrd_assessments
        WHERE specimen = 'BM' AND study_day >= 0 AND mrd_status <> 'NOT_EVALUABLE'""").df()
    therapies = con.sql("""
        SELECT participant_id, hsct_date AS therapy_date, 'HSCT' AS reason FROM core.participants
        WHERE infused AND hsct_date IS NOT NULL
        UNION ALL
        SELECT participant_id, next_therapy_date, 'SUBSEQUENT_THERAPY' FROM core.participants
        WHERE infused AND next_therapy_date IS NOT NULL""").df()
    rows = pd.concat([rfs_outcomes(people, events, assessments, therapies, censor_at_subsequent_therapy=censor)
                      .assign(analysis=analysis)
                      for analysis, censor in (("primary", settings["censor_at_subsequent_therapy"]),
                                               ("sensitivity", False))], ignore_index=True)
    rows = rows.sort_values(["participant_id", "analysis"], kind="stable")
    rows["time_days"] = (rows.end_date - rows.start_date).dt.days
    return rows[["participant_id", "analysis", "start_date", "end_date", "time_days", "event", "event_type",
                 "censor_reason"]]


RFS_COMMENTS = {
    "": "Relapse-free survival per infused participant and analysis (derivations §5). Origin: CD22 CAR infusion.",
    "participant_id": "Infused participant.",
    "analysis": "primary (censored at HSCT or other anti-leukemic therapy) | sensitivity (ignores it).",
    "start_date": "CD22 CAR infusion date (time origin).",
    "end_date": "Date of the event, or of censoring.",
    "time_days": "end_date - start_date, days.",
    "event": "TRUE for relapse (morphologic, extramedullary, MRD) or death, the earliest.",
    "event_type": "MORPHOLOGIC (marrow blasts >= 5 %) | EXTRAMEDULLARY (extramedullary disease or CNS3) | "
                  "MRD (BM flow sample POSITIVE after day 0) | DEATH | NULL when censored. Same day: in that order.",
    "censor_reason": "HSCT | SUBSEQUENT_THERAPY (primary analysis) | LAST_DISEASE_ASSESSMENT | "
                     "NO_ASSESSMENT_AFTER_INFUSION; NULL for events.",
}
CURVE_COMMENTS = {
    "": "Kaplan-Meier estimate of RFS at each distinct time (derivations §5), with a time-0 row.",
    "analysis": "primary | sensitivity.",
    "time_days": "Days since infusion.",
    "n_at_risk": "Participants with time_days >= this time.",
    "n_events": "Events at this time.",
    "n_censored": "Censorings at this time.",
    "survival": "Kaplan-Meier S(t).",
    "greenwood": "Greenwood sum of d/(n(n-d)) up to this time.",
    "ci_lower": "Lower 95 % limit, log-log transform (NULL when S = 1 or 0).",
    "ci_upper": "Upper 95 % limit, log-log transform (NULL when S = 1 or 0).",
}
ENDPOINT_COMMENTS = {
    "": "Trial endpoints (derivations §5): RFS_1Y = Kaplan-Meier S(365) with its 95 % CI.",
    "endpoint": "RFS_1Y.",
    "analysis": "primary | sensitivity.",
    "estimate": "S(landmark day); NULL (see null_reason) when nobody is at risk that day.",
    "ci_lower": "Lower 95 % limit (log-log); NULL when S = 1 or the estimate is NULL.",
    "ci_upper": "Upper 95 % limit (log-log); NULL when S = 1 or the estimate is NULL.",
    "n": "Infused participants in the analysis.",
    "n_events": "Events on or before the landmark day.",
    "n_at_risk": "Participants still at risk on the landmark day (time_days >= landmark).",
    "method": "Estimator and interval.",
    "null_reason": "Why the estimate or its interval is NULL.",
    "landmark_day": "Setting rfs.landmark_day used.",
}


def build(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    replace_table(con, "mart.rfs", outcomes(con, protocol), RFS_COMMENTS,
                  {"participant_id": "VARCHAR", "analysis": "VARCHAR", "start_date": "DATE", "end_date": "DATE",
                   "time_days": "INTEGER", "event": "BOOLEAN", "event_type": "VARCHAR", "censor_reason": "VARCHAR"})
    cohort(con, protocol)


def cohort(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    """Kaplan-Meier curves and the endpoint from everyone's mart.rfs (also after an incremental night)."""
    settings = protocol["rfs"]
    rfs = con.sql("SELECT analysis, time_days, event FROM mart.rfs ORDER BY analysis, participant_id").df()
    curves, endpoints = [], []
    for analysis in ("primary", "sensitivity"):
        rows = rfs[rfs.analysis == analysis]
        times, events = rows.time_days.to_numpy(), rows.event.to_numpy(dtype=bool)
        curve = kaplan_meier(times, events, settings["confidence_level"])
        curve.insert(0, "analysis", analysis)
        curves.append(curve)
        endpoints.append({"endpoint": "RFS_1Y", "analysis": analysis, **landmark(
            curve, times, events, settings["landmark_day"]), "method": METHOD,
            "landmark_day": settings["landmark_day"]})
    replace_table(con, "mart.rfs_curve", pd.concat(curves), CURVE_COMMENTS,
                  {"time_days": "INTEGER", "ci_lower": "DOUBLE", "ci_upper": "DOUBLE"})
    replace_table(con, "mart.endpoints", pd.DataFrame(endpoints), ENDPOINT_COMMENTS,
                  {"estimate": "DOUBLE", "ci_lower": "DOUBLE", "ci_upper": "DOUBLE", "null_reason": "VARCHAR"})

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
    """One participant's RFS end point.

    events: (date, type) candidates after infusion; assessments: disease assessment dates on or after day 0;
    subsequent_therapy: (date, 'HSCT' | 'SUBSEQUENT_THERAPY'). An event on the day therapy starts counts
    (relapse is why therapy starts); an event after it does not, in the primary analysis.
    """
    therapy = min(subsequent_therapy) if censor_at_subsequent_therapy and subsequent_therapy else None
    eligible = [(d, kind) for d, kind in events if d >= infusion and (therapy is None or d <= therapy[0])]
    if eligible:
        first = min(d for d, _ in eligible)
        kind = min((k for d, k in eligible if d == first), key=EVENT_PRECEDENCE.index)
        return Outcome(first, True, kind, None)
    last = max((d for d in assessments if d >= infusion), default=None)
    if therapy is not None and (last is None or therapy[0] < last):
        return Outcome(therapy[0], False, None, therapy[1])
    if last is None:
        return Outcome(infusion, False, None, "NO_ASSESSMENT_AFTER_INFUSION")
    return Outcome(last, False, None, "LAST_DISEASE_ASSESSMENT")


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
    people = con.sql("SELECT participant_id, infusion_date, death_date, hsct_date, next_therapy_date "
                     "FROM core.participants WHERE infused ORDER BY participant_id").df()
    disease = con.execute("""
        SELECT participant_id, assess_date, bm_blasts_pct >= ? AS morphologic,
               coalesce(extramedullary, FALSE) OR cns_status = 'CNS3' AS extramedullary
        FROM core.disease_assessments WHERE study_day >= 0""",
                          [settings["morphologic_relapse_min_blasts_pct"]]).df()
    marrow = con.sql("""
        SELECT participant_id, collected_on, mrd_status FROM mart.mrd_assessments
        WHERE specimen = 'BM' AND study_day >= 0 AND mrd_status <> 'NOT_EVALUABLE'""").df()
    rows = []
    disease_by = dict(tuple(disease.groupby("participant_id", sort=False)))
    marrow_by = dict(tuple(marrow.groupby("participant_id", sort=False)))
    for person in people.itertuples():
        infusion = person.infusion_date.date()
        own_disease = disease_by.get(person.participant_id, disease.iloc[0:0])
        own_marrow = marrow_by.get(person.participant_id, marrow.iloc[0:0])
        events = [(d.date(), "MORPHOLOGIC") for d in own_disease.assess_date[own_disease.morphologic == True]]  # noqa: E712
        events += [(d.date(), "EXTRAMEDULLARY") for d in own_disease.assess_date[own_disease.extramedullary]]
        events += [(d.date(), "MRD") for d, s in zip(own_marrow.collected_on, own_marrow.mrd_status)
                   if s == "POSITIVE" and d.date() > infusion]
        if pd.notna(person.death_date):
            events.append((person.death_date.date(), "DEATH"))
        assessments = [d.date() for d in own_disease.assess_date] + [d.date() for d in own_marrow.collected_on]
        therapy = [(getattr(person, column).date(), reason) for column, reason in
                   (("hsct_date", "HSCT"), ("next_therapy_date", "SUBSEQUENT_THERAPY"))
                   if pd.notna(getattr(person, column))]
        for analysis, censor in (("primary", settings["censor_at_subsequent_therapy"]), ("sensitivity", False)):
            outcome = rfs_outcome(infusion, events, assessments, therapy, censor_at_subsequent_therapy=censor)
            rows.append({"participant_id": person.participant_id, "analysis": analysis, "start_date": infusion,
                         "end_date": outcome.end_date, "time_days": (outcome.end_date - infusion).days,
                         "event": outcome.event, "event_type": outcome.event_type,
                         "censor_reason": outcome.censor_reason})
    return pd.DataFrame(rows, columns=["participant_id", "analysis", "start_date", "end_date", "time_days",
                                       "event", "event_type", "censor_reason"])


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

"""Lymphodepletion dose compliance, derivations §6.2: each dose against 30 mg/m² fludarabine on days −5…−2 and
500 mg/m² cyclophosphamide on days −3, −2 (settings `dosing:` in car22/protocol.yaml), BSA by Mosteller.

One row per dose given, plus one row (dose_mg NULL) per expected day without a dose. One flag per row, the
first that applies:
  UNKNOWN_DAY (no administration date) > WRONG_DAY (a day not expected for the agent) > EXTRA_DOSE (a second
  or later dose of the agent on an expected day; the first keeps its own flag) > NOT_ASSESSABLE (dose or BSA
  missing) > DOSE_OUT_OF_RANGE (|deviation| > tolerance) > OK; and MISSING_DOSE on the rows added for an
  expected day without a dose. |deviation| is compared at 12 significant digits: exactly 10 % is within.
"""
from __future__ import annotations

import math

import duckdb
import numpy as np
import pandas as pd

from car22.config import Protocol
from car22.rules.numbers import number, signif
from car22.sql import replace_table

RULE = "derivations §6.2"
AGENTS = ("fludarabine", "cyclophosphamide")




def mosteller_bsa(height_cm: float | None, weight_kg: float | None) -> float | None:
    """BSA (m²) = √(height_cm × weight_kg / 3600); None when either is missing or not positive."""
    height, weight = number(height_cm), number(weight_kg)
    if height is None or weight is None or height <= 0 or weight <= 0:
        return None
    return math.sqrt(height * weight / 3600)


def expected_dose(mg_per_m2: float, bsa_m2: float | None) -> float | None:
    bsa = number(bsa_m2)
    return None if bsa is None else mg_per_m2 * bsa


def deviation_pct(dose_mg: float | None, expected_mg: float | None) -> float | None:
    """100 · (dose − expected) / expected."""
    dose, expected = number(dose_mg), number(expected_mg)
    if dose is None or expected is None or expected == 0:
        return None
    return 100 * (dose - expected) / expected


def within_tolerance(deviation: float, tolerance_pct: float) -> bool:
    """|deviation| ≤ tolerance at 12 significant digits (a dose exactly 10 % off is within ±10 %)."""
    return abs(signif(deviation)) <= signif(tolerance_pct)


def ld_dosing(participants: pd.DataFrame, treatments: pd.DataFrame, settings: dict) -> pd.DataFrame:
    """mart.ld_dosing rows, whole-frame: every participant lymphodepleted or infused (a participant infused
    without any recorded lymphodepletion gets MISSING_DOSE rows); `treatments` are the LD doses, in
    administration order per participant."""
    tolerance = float(settings["tolerance_pct"])
    schedule = pd.DataFrame([{"agent": agent, "mg_per_m2": float(settings[f"{agent}_mg_m2"]),
                              "expected_days": [int(d) for d in settings[f"{agent}_days"]]} for agent in AGENTS])
    first_day = min(day for days in schedule.expected_days for day in days)
    people = participants[participants.ld_start_date.notna() | participants.infused.astype(bool)].copy()
    people["bsa_m2"] = [mosteller_bsa(h, w) for h, w in zip(people.height_cm, people.weight_kg)]
    plans = people.merge(schedule, how="cross")
    plans["expected_mg"] = [expected_dose(m, b) for m, b in zip(plans.mg_per_m2, plans.bsa_m2)]
    plans["study_day_basis"] = plans.infused.astype(bool).map({True: "INFUSION", False: "PLANNED_DAY_0"})

    doses = treatments.merge(plans, on=["participant_id", "agent"])
    doses["position"] = doses.groupby(["participant_id", "agent"], sort=False).cumcount()
    # Study day: core's (date - infusion date) when infused; else from the planned day 0 = LD start - first day.
    planned_day0 = pd.to_datetime(doses.ld_start_date) - pd.Timedelta(days=first_day)
    planned = (pd.to_datetime(doses.admin_date) - planned_day0).dt.days
    doses["study_day"] = doses.study_day.where(doses.infused.astype(bool), planned).astype("Int64")
    doses["deviation_pct"] = [deviation_pct(d, e) for d, e in zip(doses.dose_mg, doses.expected_mg)]
    on_expected_day = pd.Series([d is not pd.NA and int(d) in days for d, days in
                                 zip(doses.study_day, doses.expected_days)], index=doses.index, dtype=bool)
    # The first dose of an expected day keeps its own flag; a later one on the same day is the extra dose.
    extra = on_expected_day & doses.assign(day=doses.study_day.where(on_expected_day)).duplicated(
        ["participant_id", "agent", "day"])
    within = pd.Series([d is not None and not pd.isna(d) and within_tolerance(d, tolerance)
                        for d in doses.deviation_pct], index=doses.index, dtype=bool)
    doses["flag"] = np.select(
        [doses.study_day.isna().to_numpy(dtype=bool), ~on_expected_day, extra, doses.deviation_pct.isna(), within],
        ["UNKNOWN_DAY", "WRONG_DAY", "EXTRA_DOSE", "NOT_ASSESSABLE", "OK"], "DOSE_OUT_OF_RANGE")

    dosed = doses[on_expected_day][["participant_id", "agent", "study_day"]].drop_duplicates()
    expected = plans.explode("expected_days").assign(study_day=lambda f: f.expected_days.astype("Int64"))
    expected = expected.merge(dosed, on=["participant_id", "agent", "study_day"], how="left", indicator=True)
    missing = expected[expected._merge == "left_only"].drop(columns="_merge")
    missing = missing.assign(flag="MISSING_DOSE", position=pd.NA, dose_mg=None, deviation_pct=None,
                             admin_date=pd.NaT, bsa_used_m2=None,
                             expected_days=missing.agent.map(dict(zip(schedule.agent, schedule.expected_days))))

    frame = pd.concat([doses, missing], ignore_index=True)
    frame["tolerance_pct"] = tolerance
    frame["rule"] = RULE
    frame = frame.sort_values(["participant_id", "agent", "study_day", "position"], na_position="last",
                              kind="stable")
    return frame[[c for c in COMMENTS if c]].reset_index(drop=True)


COMMENTS = {
    "": "Lymphodepletion dose compliance (derivations §6.2): one row per fludarabine/cyclophosphamide dose given, "
        "plus one per expected day without a dose (dose_mg NULL, flag MISSING_DOSE), for every participant "
        "lymphodepleted or infused. Expected dose = mg/m2 x BSA (Mosteller).",
    "participant_id": "Participant.",
    "agent": "fludarabine | cyclophosphamide.",
    "study_day": "Administration date - CD22 CAR infusion date; for a participant never infused, relative to the "
                 "planned day 0 = lymphodepletion start + 5 (study_day_basis). On MISSING_DOSE rows, the expected "
                 "day.",
    "dose_mg": "Dose given (mg), NULL on MISSING_DOSE rows.",
    "expected_mg": "mg_per_m2 x bsa_m2; NULL when the BSA is unknown.",
    "deviation_pct": "100 x (dose_mg - expected_mg) / expected_mg.",
    "flag": "First that applies: UNKNOWN_DAY (no date) | WRONG_DAY (day not expected for the agent) | EXTRA_DOSE "
            "(second or later dose on an expected day) | NOT_ASSESSABLE (dose or BSA missing) | DOSE_OUT_OF_RANGE "
            "(|deviation_pct| > tolerance_pct at 12 significant digits) | OK; MISSING_DOSE on expected days "
            "without a dose.",
    "admin_date": "Administration date (NULL on MISSING_DOSE rows).",
    "bsa_m2": "BSA by Mosteller, sqrt(height_cm x weight_kg / 3600), from the enrollment height and weight.",
    "bsa_used_m2": "BSA the site recorded on the treatment form (for comparison; not used).",
    "mg_per_m2": "Protocol dose per m2 (setting dosing.<agent>_mg_m2).",
    "expected_days": "Study days the agent is expected on (setting dosing.<agent>_days).",
    "tolerance_pct": "Allowed |deviation_pct| (setting dosing.tolerance_pct); exactly at it is within.",
    "study_day_basis": "INFUSION (core study day) | PLANNED_DAY_0 (never infused: lymphodepletion start + 5).",
    "rule": "The rule applied.",
}

TYPES = {"participant_id": "VARCHAR", "agent": "VARCHAR", "study_day": "INTEGER", "dose_mg": "DOUBLE",
         "expected_mg": "DOUBLE", "deviation_pct": "DOUBLE", "flag": "VARCHAR", "admin_date": "DATE",
         "bsa_m2": "DOUBLE", "bsa_used_m2": "DOUBLE", "mg_per_m2": "DOUBLE", "expected_days": "INTEGER[]",
         "tolerance_pct": "DOUBLE", "study_day_basis": "VARCHAR", "rule": "VARCHAR"}


def build(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    """(Re)create mart.ld_dosing from core.participants and core.treatments."""
    participants = con.sql("SELECT participant_id, height_cm, weight_kg, ld_start_date, infused "
                           "FROM core.participants ORDER BY participant_id").df()
    treatments = con.sql("SELECT participant_id, agent, admin_date, study_day, dose_mg, bsa_used_m2 "
                         "FROM core.treatments WHERE agent IN ('fludarabine', 'cyclophosphamide') "
                         "ORDER BY participant_id, admin_date NULLS LAST, instance, event").df()
    replace_table(con, "mart.ld_dosing", ld_dosing(participants, treatments, protocol["dosing"]), COMMENTS, TYPES)

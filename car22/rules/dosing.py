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
from collections.abc import Sequence
from typing import Any

import duckdb
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


def assess_agent(days: Sequence[int | None], doses: Sequence[float | None], *, expected_days: Sequence[int],
                 expected_mg: float | None, tolerance_pct: float) -> list[dict]:
    """Rows for one participant and agent: the doses given, in administration order (`position` indexes the
    input), then a MISSING_DOSE row for each expected day without a dose. Flags by the module's precedence."""
    expected = set(expected_days)
    dosed: set[int] = set()
    rows = []
    for position, (day, dose) in enumerate(zip(days, doses)):
        day = None if number(day) is None else int(day)
        deviation = deviation_pct(dose, expected_mg)
        if day is None:
            flag = "UNKNOWN_DAY"
        elif day not in expected:
            flag = "WRONG_DAY"
        elif day in dosed:
            flag = "EXTRA_DOSE"
        elif deviation is None:
            flag = "NOT_ASSESSABLE"
        else:
            flag = "OK" if within_tolerance(deviation, tolerance_pct) else "DOSE_OUT_OF_RANGE"
        if day in expected:
            dosed.add(day)
        rows.append({"position": position, "study_day": day, "dose_mg": number(dose), "expected_mg": expected_mg,
                     "deviation_pct": deviation, "flag": flag})
    for day in sorted(expected - dosed):
        rows.append({"position": None, "study_day": day, "dose_mg": None, "expected_mg": expected_mg,
                     "deviation_pct": None, "flag": "MISSING_DOSE"})
    return rows


def study_days(treatments: pd.DataFrame, infused: bool, ld_start_date: Any, first_expected_day: int
               ) -> tuple[list[int | None], str]:
    """Study days of one participant's doses and their basis: core's (date − infusion date) when infused;
    otherwise relative to the planned day 0 = lymphodepletion start − the first expected day (start + 5)."""
    if infused:
        return [None if pd.isna(d) else int(d) for d in treatments["study_day"]], "INFUSION"
    day0 = pd.Timestamp(ld_start_date) - pd.Timedelta(days=first_expected_day)
    return [None if pd.isna(d) else (pd.Timestamp(d) - day0).days for d in treatments["admin_date"]], \
        "PLANNED_DAY_0"


def ld_dosing(participants: pd.DataFrame, treatments: pd.DataFrame, settings: dict) -> pd.DataFrame:
    """mart.ld_dosing rows: every participant lymphodepleted or infused (a participant infused without any
    recorded lymphodepletion gets MISSING_DOSE rows); `treatments` are the LD doses, in administration order."""
    schedules = {agent: (float(settings[f"{agent}_mg_m2"]), [int(d) for d in settings[f"{agent}_days"]])
                 for agent in AGENTS}
    first_day = min(day for _, days in schedules.values() for day in days)
    rows = []
    for p in participants.to_dict("records"):
        if pd.isna(p["ld_start_date"]) and not p["infused"]:
            continue
        bsa = mosteller_bsa(p["height_cm"], p["weight_kg"])
        own = treatments[treatments.participant_id == p["participant_id"]]
        for agent, (mg_per_m2, days) in schedules.items():
            given = own[own.agent == agent].reset_index(drop=True)
            day_list, basis = study_days(given, bool(p["infused"]), p["ld_start_date"], first_day)
            for row in assess_agent(day_list, given["dose_mg"].tolist(), expected_days=days,
                                    expected_mg=expected_dose(mg_per_m2, bsa),
                                    tolerance_pct=settings["tolerance_pct"]):
                source = None if row["position"] is None else given.iloc[row["position"]]
                rows.append({"participant_id": p["participant_id"], "agent": agent, **row,
                             "admin_date": None if source is None else source["admin_date"],
                             "bsa_m2": bsa, "bsa_used_m2": None if source is None else source["bsa_used_m2"],
                             "mg_per_m2": mg_per_m2, "expected_days": days,
                             "tolerance_pct": float(settings["tolerance_pct"]), "study_day_basis": basis,
                             "rule": RULE})
    frame = pd.DataFrame(rows, columns=[c for c in COMMENTS if c] + ["position"])
    frame = frame.sort_values(["participant_id", "agent", "study_day", "position"], na_position="last",
                              kind="stable")
    return frame.drop(columns="position").reset_index(drop=True)


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

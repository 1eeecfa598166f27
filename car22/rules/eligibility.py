"""Screening eligibility, derivations §6.1: one row per enrolled participant and criterion, for the monitors.

warehouse/mart/eligibility_inputs.sql picks each participant's screening values (the latest before
lymphodepletion); the functions here judge them against the protocol settings (`eligibility:` in
car22/protocol.yaml). Every criterion is MET, NOT_MET or NOT_ASSESSABLE (a value or limit it needs is
missing, or a censored lab result cannot decide), with the value and limit used. Numbers are compared at
12 significant digits on both sides (as derivations §4.3), so 2 × ULN exactly is MET.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import duckdb
import pandas as pd

from car22.config import Protocol
from car22.rules.numbers import number, signif
from car22.sql import replace_table, run_sql_file

RULE = "derivations §6.1"
MET, NOT_MET, NOT_ASSESSABLE = "MET", "NOT_MET", "NOT_ASSESSABLE"
CRCL_UNIT = "mL/min/1.73 m2"




def _fmt(x: float | None) -> str:
    return "missing" if x is None else f"{x:.6g}"


def _measure(name: str, x: float | None, unit: str) -> str:
    return f"{name} missing" if x is None else f"{name} {_fmt(x)} {unit}"


def at_most(value: float | None, limit: float | None, comparator: str | None = None,
            below_lloq: bool = False) -> str:
    """value ≤ limit. A result below the limit of quantitation meets any known limit; '<x' meets it when
    x ≤ limit and cannot decide otherwise; '>x' fails it when x ≥ limit and cannot decide otherwise."""
    limit = number(limit)
    if limit is None:
        return NOT_ASSESSABLE
    if below_lloq:
        return MET
    value = number(value)
    if value is None:
        return NOT_ASSESSABLE
    within = signif(value) <= signif(limit)
    if comparator == "<":
        return MET if within else NOT_ASSESSABLE
    if comparator == ">":
        return NOT_MET if signif(value) >= signif(limit) else NOT_ASSESSABLE
    return MET if within else NOT_MET


def at_least(value: float | None, limit: float | None) -> str:
    """value ≥ limit (EDC measures: never censored)."""
    value, limit = number(value), number(limit)
    if value is None or limit is None:
        return NOT_ASSESSABLE
    return MET if signif(value) >= signif(limit) else NOT_MET


def assess_age(years: int | None, *, min_years: int, max_years: int) -> dict:
    """Age 3–65 at consent in completed years, the calendar age computed from the date of birth as the
    enrollment file was read (derivations §6.1): 66 on the 66th birthday (NOT_MET), 3 on the 3rd (MET)."""
    years = number(years)
    row = {"value": None if years is None else int(years), "limit_low": min_years, "limit": max_years,
           "comparison": "between", "unit": "completed years"}
    if years is None:
        return {**row, "result": NOT_ASSESSABLE, "detail": "age at consent missing"}
    result = MET if min_years <= years <= max_years else NOT_MET
    return {**row, "result": result, "detail": f"{int(years)} completed years at consent (limits "
                                               f"{min_years}-{max_years})"}


def assess_cd19_interval(days: int | None, *, min_days: int, max_days: int) -> dict:
    """CD19 CAR infusion 61–214 days (2–7 months) before the first lymphodepletion dose."""
    days = number(days)
    row = {"value": days, "limit_low": min_days, "limit": max_days, "comparison": "between", "unit": "days"}
    if days is None:
        return {**row, "result": NOT_ASSESSABLE,
                "detail": "CD19 CAR infusion date or lymphodepletion start date missing"}
    result = MET if min_days <= days <= max_days else NOT_MET
    return {**row, "result": result, "detail": f"CD19 CAR infusion {int(days)} days before lymphodepletion "
                                               f"(limits {min_days}-{max_days})"}


def assess_mrd(mrd_status: str | None, mrd_fraction: float | None, sample_id: str | None) -> dict:
    """Screening marrow MRD-negative: only mrd_status NEGATIVE counts (derivations §2)."""
    row = {"value": number(mrd_fraction), "limit_low": None, "limit": None, "comparison": "mrd_status = NEGATIVE",
           "unit": "fraction"}
    if mrd_status is None or mrd_status is pd.NA:
        return {**row, "result": NOT_ASSESSABLE, "detail": "no evaluable screening bone marrow MRD sample"}
    return {**row, "result": MET if mrd_status == "NEGATIVE" else NOT_MET,
            "detail": f"bone marrow {sample_id}: {mrd_status}"}


def _lab_text(value: float | None, comparator: str | None, below_lloq: bool, unit: str | None) -> str:
    if below_lloq:
        return "below the limit of quantitation"
    if number(value) is None:
        return "no result"
    return f"{comparator or ''}{_fmt(number(value))} {unit or ''}".rstrip()


def assess_x_uln(value: float | None, uln: float | None, *, max_x_uln: float, comparator: str | None = None,
                 below_lloq: bool = False, unit: str | None = None) -> dict:
    """Lab ≤ k × ULN, the ULN being the ref_high of the same result; NOT_ASSESSABLE without it."""
    uln = number(uln)
    limit = None if uln is None else max_x_uln * uln
    result = at_most(value, limit, comparator, bool(below_lloq))
    text = _lab_text(value, comparator, bool(below_lloq), unit)
    detail = (text if number(value) is None and not below_lloq else f"{text}; ULN missing" if uln is None else
              f"{text}; limit {_fmt(max_x_uln)} x ULN {_fmt(uln)} = {_fmt(limit)}")
    return {"value": number(value), "limit_low": None, "limit": limit, "comparison": "<=", "unit": unit,
            "uln": uln, "result": result, "detail": detail}


def creatinine_limit(years: int | None, bands: Sequence[Sequence[float]]) -> float | None:
    """The creatinine limit of the first age band whose inclusive upper bound holds the age in completed years
    at consent (derivations §6.1: ≤ 5: 0.8; 6–10: 1.0; ≥ 11: 1.2 mg/dL by default)."""
    years = number(years)
    if years is None:
        return None
    for upper, limit in sorted(bands):
        if years <= upper:
            return float(limit)
    return None


def assess_creatinine(value: float | None, age_years: int | None, crcl: float | None, *,
                      bands: Sequence[Sequence[float]], crcl_min: float, comparator: str | None = None,
                      below_lloq: bool = False, unit: str | None = "mg/dL") -> dict:
    """Creatinine ≤ the age limit, unless measured creatinine clearance ≥ 60 mL/min/1.73 m². `basis` says
    which decided: CREATININE, or CRCL when the clearance rescues a high or missing creatinine. An unmeasured
    clearance does not rescue, so a high creatinine without one is NOT_MET."""
    limit = creatinine_limit(age_years, bands)
    by_creatinine = at_most(value, limit, comparator, bool(below_lloq))
    age_text = "age missing" if number(age_years) is None else f"age {_fmt(number(age_years))}"
    text = (f"creatinine: {_lab_text(value, comparator, bool(below_lloq), unit)} "
            f"({age_text}: limit {_fmt(limit)})")
    crcl = number(crcl)
    crcl_text = ("CrCl not measured" if crcl is None else
                 f"{_measure('measured CrCl', crcl, CRCL_UNIT)} (limit {_fmt(crcl_min)})")
    creatinine_row = {"value": number(value), "limit_low": None, "limit": limit, "comparison": "<=", "unit": unit,
                      "basis": "CREATININE"}
    if by_creatinine == MET:
        return {**creatinine_row, "result": MET, "detail": f"{text}; met by creatinine"}
    if at_least(crcl, crcl_min) == MET:
        return {"value": crcl, "limit_low": None, "limit": float(crcl_min), "comparison": ">=", "unit": CRCL_UNIT,
                "basis": "CRCL", "result": MET, "detail": f"{text}; met by {crcl_text}"}
    return {**creatinine_row, "result": by_creatinine, "detail": f"{text}; {crcl_text}"}


def assess_cardiac(lvef_pct: float | None, fs_pct: float | None, *, lvef_min: float, fs_min: float) -> dict:
    """LVEF ≥ 45 % or fractional shortening ≥ 28 %: MET when either is; NOT_MET only when both are measured
    and both fail (a missing one could still meet it: NOT_ASSESSABLE). `basis` names the measure reported."""
    lvef, fs = number(lvef_pct), number(fs_pct)
    by_lvef, by_fs = at_least(lvef, lvef_min), at_least(fs, fs_min)
    if MET in (by_lvef, by_fs):
        result = MET
    elif by_lvef == NOT_MET and by_fs == NOT_MET:
        result = NOT_MET
    else:
        result = NOT_ASSESSABLE
    use_fs = (by_fs == MET and by_lvef != MET) or (lvef is None and fs is not None)
    value, limit, basis = (fs, fs_min, "FS") if use_fs else (lvef, lvef_min, "LVEF")
    detail = (f"{_measure('LVEF', lvef, '%')} (limit {_fmt(lvef_min)}), "
              f"{_measure('FS', fs, '%')} (limit {_fmt(fs_min)})")
    return {"value": value, "limit_low": None, "limit": float(limit), "comparison": ">=", "unit": "%",
            "basis": basis, "result": result, "detail": detail}


def assess_spo2(spo2_pct: float | None, *, min_pct: float) -> dict:
    """SpO2 ≥ 92 % on room air (the EDC form records the room-air value)."""
    spo2 = number(spo2_pct)
    return {"value": spo2, "limit_low": None, "limit": float(min_pct), "comparison": ">=", "unit": "%",
            "result": at_least(spo2, min_pct), "detail": f"{_measure('SpO2', spo2, '%')} (limit {_fmt(min_pct)})"}


def _date(x: Any) -> Any:
    return None if x is None or pd.isna(x) else x


def _str(x: Any) -> str | None:
    return None if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)) else str(x)


def _true(x: Any) -> bool:
    """A BOOLEAN that may arrive as None, NA or NaN: only a true value is true."""
    return _str(x) is not None and bool(x)


def _lab_source(p: dict, code: str) -> dict:
    accession = _str(p[f"{code}_accession"])
    return {"source_date": _date(p[f"{code}_collected_on"]),
            "source": None if accession is None else f"lab accession {accession}"}


def participant_criteria(p: dict, settings: dict) -> list[dict]:
    """The nine §6.1 criteria of one participant, from one row of eligibility_inputs."""
    ld = _date(p["ld_start_date"])
    form = (f"EDC eligibility form ({p['form_event']})" if p["n_forms"] == 1 else
            f"EDC eligibility form ({p['form_event']}, last of {p['n_forms']})" if p["n_forms"] else None)
    no_form = "; no eligibility form" if not p["n_forms"] else ""

    def lab(code: str, criterion: str, factor_key: str) -> dict:
        row = assess_x_uln(p[f"{code}_value"], p[f"{code}_uln"], max_x_uln=settings[factor_key],
                           comparator=_str(p[f"{code}_comparator"]), below_lloq=_true(p[f"{code}_below_lloq"]),
                           unit=_str(p[f"{code}_unit"]))
        return {"criterion": criterion, **row, **_lab_source(p, code)}

    rows = [
        {"criterion": "AGE", **assess_age(p["age_at_consent_years"], min_years=settings["age_min_years"],
                                           max_years=settings["age_max_years"]),
         "source_date": _date(p["consent_date"]), "source": "EDC enrollment (age at consent)"},
        {"criterion": "CD19_CAR_INTERVAL", **assess_cd19_interval(
            p["cd19_to_ld_days"], min_days=settings["cd19_car_to_ld_min_days"],
            max_days=settings["cd19_car_to_ld_max_days"]),
         "source_date": ld, "source": "EDC enrollment (CD19 CAR infusion date), treatment (lymphodepletion start)"},
        {"criterion": "SCREENING_MRD", **assess_mrd(_str(p["mrd_status"]), p["mrd_fraction"],
                                                    _str(p["mrd_sample_id"])),
         "source_date": _date(p["mrd_collected_on"]), "source": _str(p["mrd_sample_id"])},
        lab("tbili", "TBILI", "tbili_max_x_uln"),
        lab("ast", "AST", "ast_max_x_uln"),
        lab("alt", "ALT", "alt_max_x_uln"),
        {"criterion": "CREATININE", **assess_creatinine(
            p["creat_value"], p["age_at_consent_years"], p["crcl_measured"],
            bands=settings["creatinine_max_mg_dl"], crcl_min=settings["crcl_min_ml_min_173"],
            comparator=_str(p["creat_comparator"]), below_lloq=_true(p["creat_below_lloq"]),
            unit=_str(p["creat_unit"]) or "mg/dL"), **_lab_source(p, "creat")},
        {"criterion": "CARDIAC", **assess_cardiac(p["lvef_pct"], p["fs_pct"], lvef_min=settings["lvef_min_pct"],
                                                   fs_min=settings["fs_min_pct"]),
         "source_date": None, "source": form},
        {"criterion": "SPO2", **assess_spo2(p["spo2_pct"], min_pct=settings["spo2_min_pct"]),
         "source_date": None, "source": form},
    ]
    for row in rows:
        if row["criterion"] in ("CARDIAC", "SPO2"):
            row["detail"] += no_form
        if ld is None and row["criterion"] == "CD19_CAR_INTERVAL":
            row["detail"] += " (never lymphodepleted)"
        elif ld is None and row["criterion"] in ("SCREENING_MRD", "TBILI", "AST", "ALT", "CREATININE"):
            row["detail"] += " (never lymphodepleted: latest value available)"
    return rows


def evaluate(inputs: pd.DataFrame, settings: dict) -> pd.DataFrame:
    """mart.eligibility rows from eligibility_inputs rows: nine criteria per participant, in protocol order."""
    rows = []
    for p in inputs.to_dict("records"):
        for order, row in enumerate(participant_criteria(p, settings), start=1):
            rows.append({"participant_id": p["participant_id"], "criterion_order": order,
                         "cutoff_date": _date(p["ld_start_date"]), "rule": RULE, **row})
    return pd.DataFrame(rows, columns=[c for c in COMMENTS if c])


COMMENTS = {
    "": "Screening eligibility per enrolled participant and criterion (derivations §6.1), infused or not: the "
        "latest value before lymphodepletion (never lymphodepleted: the latest available), judged against the "
        "protocol settings. Numbers compared at 12 significant digits.",
    "participant_id": "Participant.",
    "criterion": "AGE | CD19_CAR_INTERVAL | SCREENING_MRD | TBILI | AST | ALT | CREATININE | CARDIAC | SPO2.",
    "value": "The value compared, in unit (AGE: completed years; SCREENING_MRD: the sample's MRD fraction; "
             "CREATININE with basis CRCL: the clearance; CARDIAC: the measure named by basis).",
    "limit": "The limit compared to (the upper one for AGE and CD19_CAR_INTERVAL; k x ULN for TBILI/AST/ALT; "
             "NULL for SCREENING_MRD, decided by status). A reserved word: quote it, \"limit\".",
    "result": "MET | NOT_MET | NOT_ASSESSABLE (a value or limit it needs is missing, or a censored result "
              "cannot decide).",
    "criterion_order": "Order of the criterion in derivations §6.1.",
    "limit_low": "Lower limit of a range criterion (AGE, CD19_CAR_INTERVAL), else NULL.",
    "comparison": "How value meets limit: <= | >= | between (inclusive) | mrd_status = NEGATIVE.",
    "unit": "Unit of value and limit.",
    "uln": "Upper limit of normal (ref_high of the same lab result) for TBILI/AST/ALT.",
    "basis": "What decided a compound criterion: CREATININE or CRCL (measured clearance >= limit); "
             "LVEF or FS.",
    "detail": "Readable account of the values, limits and basis.",
    "source_date": "Date of the value: lab collection, marrow collection, consent (AGE), lymphodepletion "
                   "start (CD19_CAR_INTERVAL); NULL for the EDC eligibility form, which has no date.",
    "source": "Where the value comes from (lab accession, FCS sample name, EDC form).",
    "cutoff_date": "Lymphodepletion start date: values are taken from before it; NULL when never "
                   "lymphodepleted (latest value available).",
    "rule": "The rule applied.",
}

TYPES = {"participant_id": "VARCHAR", "criterion": "VARCHAR", "value": "DOUBLE", "limit": "DOUBLE",
         "result": "VARCHAR", "criterion_order": "INTEGER", "limit_low": "DOUBLE", "comparison": "VARCHAR",
         "unit": "VARCHAR", "uln": "DOUBLE", "basis": "VARCHAR", "detail": "VARCHAR", "source_date": "DATE",
         "source": "VARCHAR", "cutoff_date": "DATE", "rule": "VARCHAR"}


def build(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    """(Re)create mart.eligibility from core and mart.mrd_assessments (built first by car22.rules.mrd)."""
    run_sql_file(con, "mart/eligibility_inputs.sql")
    inputs = con.sql("SELECT * FROM eligibility_inputs").df()
    replace_table(con, "mart.eligibility", evaluate(inputs, protocol["eligibility"]), COMMENTS, TYPES)

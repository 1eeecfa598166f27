"""Screening eligibility, derivations §6.1: one row per enrolled participant and criterion, for the monitors.

warehouse/mart/eligibility_inputs.sql picks each participant's screening values (the latest before
lymphodepletion); the functions here judge them against the protocol settings (`eligibility:` in
car22/protocol.yaml). Every criterion is MET, NOT_MET or NOT_ASSESSABLE (a value or limit it needs is
missing, or a censored lab result cannot decide), with the value and limit used. Numbers are compared at
12 significant digits on both sides (as derivations §4.3), so 2 × ULN exactly is MET.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from car22.config import Protocol
from car22.rules.numbers import number, signif_array
from car22.sql import replace_table, run_sql_file

RULE = "derivations §6.1"
MET, NOT_MET, NOT_ASSESSABLE = "MET", "NOT_MET", "NOT_ASSESSABLE"
CRCL_UNIT = "mL/min/1.73 m2"
NUMBER = "%.6g"          # numbers in the details: 6 significant digits
NEVER_LD = " (never lymphodepleted: latest value available)"

# Every criterion is judged for all participants at once, on arrays in the order of the inputs' rows (NaN or
# None: missing); the assess_* functions run the same code on one participant, for the case tables.


def _fmt(x: float) -> str:
    """A setting as the details write numbers."""
    return NUMBER % x


def _text(x: np.ndarray) -> np.ndarray:
    """Numbers as the details write them; 'missing' for a missing one."""
    return np.where(np.isnan(x), "missing", np.char.mod(NUMBER, x)).astype(object)


def _words(x: np.ndarray) -> np.ndarray:
    """Values as an f-string writes them (None as 'None')."""
    return np.asarray(x, dtype=object).astype(str).astype(object)


def _measure(name: str, x: np.ndarray, unit: str) -> np.ndarray:
    return np.where(np.isnan(x), f"{name} missing", f"{name} " + _text(x) + f" {unit}")


def at_most(value: np.ndarray, limit: np.ndarray, comparator: np.ndarray, below_lloq: np.ndarray) -> np.ndarray:
    """value ≤ limit. A result below the limit of quantitation meets any known limit; '<x' meets it when
    x ≤ limit and cannot decide otherwise; '>x' fails it when x ≥ limit and cannot decide otherwise."""
    value, limit = signif_array(value), signif_array(limit)
    within = value <= limit
    return np.select([np.isnan(limit), below_lloq, np.isnan(value), comparator == "<", comparator == ">"],
                     [NOT_ASSESSABLE, MET, NOT_ASSESSABLE, np.where(within, MET, NOT_ASSESSABLE),
                      np.where(value >= limit, NOT_MET, NOT_ASSESSABLE)], np.where(within, MET, NOT_MET))


def at_least(value: np.ndarray, limit: float) -> np.ndarray:
    """value ≥ limit (EDC measures: never censored)."""
    value, limit = signif_array(value), signif_array(np.full(len(value), limit, dtype=float))
    return np.select([np.isnan(value) | np.isnan(limit), value >= limit], [NOT_ASSESSABLE, MET], NOT_MET)


def age_criterion(years: np.ndarray, *, min_years: int, max_years: int) -> pd.DataFrame:
    """Age 3–65 at consent in completed years, the calendar age computed from the date of birth as the
    enrollment file was read (derivations §6.1): 66 on the 66th birthday (NOT_MET), 3 on the 3rd (MET)."""
    missing = np.isnan(years)
    return pd.DataFrame({
        "value": years, "limit_low": float(min_years), "limit": float(max_years), "comparison": "between",
        "unit": "completed years",
        "result": np.select([missing, (min_years <= years) & (years <= max_years)], [NOT_ASSESSABLE, MET], NOT_MET),
        "detail": np.where(missing, "age at consent missing", np.char.mod("%d", np.nan_to_num(years)).astype(object)
                           + f" completed years at consent (limits {min_years}-{max_years})")})


def cd19_interval_criterion(days: np.ndarray, *, min_days: int, max_days: int) -> pd.DataFrame:
    """CD19 CAR infusion 61–214 days (2–7 months) before the first lymphodepletion dose."""
    missing = np.isnan(days)
    return pd.DataFrame({
        "value": days, "limit_low": float(min_days), "limit": float(max_days), "comparison": "between",
        "unit": "days",
        "result": np.select([missing, (min_days <= days) & (days <= max_days)], [NOT_ASSESSABLE, MET], NOT_MET),
        "detail": np.where(missing, "CD19 CAR infusion date or lymphodepletion start date missing",
                           "CD19 CAR infusion " + np.char.mod("%d", np.nan_to_num(days)).astype(object)
                           + f" days before lymphodepletion (limits {min_days}-{max_days})")})


def mrd_criterion(mrd_status: np.ndarray, mrd_fraction: np.ndarray, sample_id: np.ndarray) -> pd.DataFrame:
    """Screening marrow MRD-negative: only mrd_status NEGATIVE counts (derivations §2)."""
    missing = pd.isna(mrd_status)
    return pd.DataFrame({
        "value": mrd_fraction, "limit_low": np.nan, "limit": np.nan, "comparison": "mrd_status = NEGATIVE",
        "unit": "fraction",
        "result": np.select([missing, mrd_status == "NEGATIVE"], [NOT_ASSESSABLE, MET], NOT_MET),
        "detail": np.where(missing, "no evaluable screening bone marrow MRD sample",
                           "bone marrow " + _words(sample_id) + ": " + _words(mrd_status))})


def _lab_text(value: np.ndarray, comparator: np.ndarray, below_lloq: np.ndarray, unit: np.ndarray) -> np.ndarray:
    measured = np.char.rstrip((np.where(pd.isna(comparator), "", comparator) + _text(value) + " "
                               + np.where(pd.isna(unit), "", unit)).astype(str)).astype(object)
    return np.select([below_lloq, np.isnan(value)], ["below the limit of quantitation", "no result"], measured)


def x_uln_criterion(value: np.ndarray, uln: np.ndarray, *, max_x_uln: float, comparator: np.ndarray,
                    below_lloq: np.ndarray, unit: np.ndarray) -> pd.DataFrame:
    """Lab ≤ k × ULN, the ULN being the ref_high of the same result; NOT_ASSESSABLE without it."""
    limit = max_x_uln * uln
    text = _lab_text(value, comparator, below_lloq, unit)
    return pd.DataFrame({
        "value": value, "limit_low": np.nan, "limit": limit, "comparison": "<=", "unit": unit, "uln": uln,
        "result": at_most(value, limit, comparator, below_lloq),
        "detail": np.select([np.isnan(value) & ~below_lloq, np.isnan(uln)], [text, text + "; ULN missing"],
                            text + f"; limit {_fmt(max_x_uln)} x ULN " + _text(uln) + " = " + _text(limit))})


def creatinine_limits(years: np.ndarray, bands: Sequence[Sequence[float]]) -> np.ndarray:
    """The creatinine limit of the first age band whose inclusive upper bound holds the age in completed years
    at consent (derivations §6.1: ≤ 5: 0.8; 6–10: 1.0; ≥ 11: 1.2 mg/dL by default)."""
    bands = sorted(bands)
    return np.select([years <= upper for upper, _ in bands], [float(limit) for _, limit in bands], np.nan)


def creatinine_criterion(value: np.ndarray, age_years: np.ndarray, crcl: np.ndarray, *,
                         bands: Sequence[Sequence[float]], crcl_min: float, comparator: np.ndarray,
                         below_lloq: np.ndarray, unit: np.ndarray) -> pd.DataFrame:
    """Creatinine ≤ the age limit, unless measured creatinine clearance ≥ 60 mL/min/1.73 m². `basis` says
    which decided: CREATININE, or CRCL when the clearance rescues a high or missing creatinine. An unmeasured
    clearance does not rescue, so a high creatinine without one is NOT_MET."""
    limit = creatinine_limits(age_years, bands)
    by_creatinine = at_most(value, limit, comparator, below_lloq)
    met = by_creatinine == MET
    by_crcl = ~met & (at_least(crcl, crcl_min) == MET)
    age_text = np.where(np.isnan(age_years), "age missing", "age " + _text(age_years))
    text = ("creatinine: " + _lab_text(value, comparator, below_lloq, unit) + " (" + age_text + ": limit "
            + _text(limit) + ")")
    crcl_text = np.where(np.isnan(crcl), "CrCl not measured", _measure("measured CrCl", crcl, CRCL_UNIT)
                         + f" (limit {_fmt(crcl_min)})")
    return pd.DataFrame({
        "value": np.where(by_crcl, crcl, value), "limit_low": np.nan, "limit": np.where(by_crcl, crcl_min, limit),
        "comparison": np.where(by_crcl, ">=", "<="), "unit": np.where(by_crcl, CRCL_UNIT, unit),
        "basis": np.where(by_crcl, "CRCL", "CREATININE"), "result": np.where(by_crcl, MET, by_creatinine),
        "detail": np.select([met, by_crcl], [text + "; met by creatinine", text + "; met by " + crcl_text],
                            text + "; " + crcl_text)})


def cardiac_criterion(lvef_pct: np.ndarray, fs_pct: np.ndarray, *, lvef_min: float, fs_min: float) -> pd.DataFrame:
    """LVEF ≥ 45 % or fractional shortening ≥ 28 %: MET when either is; NOT_MET only when both are measured
    and both fail (a missing one could still meet it: NOT_ASSESSABLE). `basis` names the measure reported."""
    by_lvef, by_fs = at_least(lvef_pct, lvef_min), at_least(fs_pct, fs_min)
    use_fs = ((by_fs == MET) & (by_lvef != MET)) | (np.isnan(lvef_pct) & ~np.isnan(fs_pct))
    return pd.DataFrame({
        "value": np.where(use_fs, fs_pct, lvef_pct), "limit_low": np.nan,
        "limit": np.where(use_fs, float(fs_min), float(lvef_min)), "comparison": ">=", "unit": "%",
        "basis": np.where(use_fs, "FS", "LVEF"),
        "result": np.select([(by_lvef == MET) | (by_fs == MET), (by_lvef == NOT_MET) & (by_fs == NOT_MET)],
                            [MET, NOT_MET], NOT_ASSESSABLE),
        "detail": (_measure("LVEF", lvef_pct, "%") + f" (limit {_fmt(lvef_min)}), " + _measure("FS", fs_pct, "%")
                   + f" (limit {_fmt(fs_min)})")})


def spo2_criterion(spo2_pct: np.ndarray, *, min_pct: float) -> pd.DataFrame:
    """SpO2 ≥ 92 % on room air (the EDC form records the room-air value)."""
    return pd.DataFrame({"value": spo2_pct, "limit_low": np.nan, "limit": float(min_pct), "comparison": ">=",
                         "unit": "%", "result": at_least(spo2_pct, min_pct),
                         "detail": _measure("SpO2", spo2_pct, "%") + f" (limit {_fmt(min_pct)})"})


def _one(frame: pd.DataFrame) -> dict:
    """The single row of a criterion frame, missing values as None."""
    return {key: None if not isinstance(value, str) and pd.isna(value) else value
            for key, value in frame.to_dict("records")[0].items()}


def _array(x: Any) -> np.ndarray:
    return np.array([number(x)], dtype=float)


def _strings(x: Any) -> np.ndarray:
    return np.array([x], dtype=object)


def assess_age(years: int | None, *, min_years: int, max_years: int) -> dict:
    """age_criterion for one participant."""
    return _one(age_criterion(_array(years), min_years=min_years, max_years=max_years))


def assess_cd19_interval(days: int | None, *, min_days: int, max_days: int) -> dict:
    """cd19_interval_criterion for one participant."""
    return _one(cd19_interval_criterion(_array(days), min_days=min_days, max_days=max_days))


def assess_mrd(mrd_status: str | None, mrd_fraction: float | None, sample_id: str | None) -> dict:
    """mrd_criterion for one participant."""
    return _one(mrd_criterion(_strings(mrd_status), _array(mrd_fraction), _strings(sample_id)))


def assess_x_uln(value: float | None, uln: float | None, *, max_x_uln: float, comparator: str | None = None,
                 below_lloq: bool = False, unit: str | None = None) -> dict:
    """x_uln_criterion for one result."""
    return _one(x_uln_criterion(_array(value), _array(uln), max_x_uln=max_x_uln, comparator=_strings(comparator),
                                below_lloq=np.array([bool(below_lloq)]), unit=_strings(unit)))


def creatinine_limit(years: int | None, bands: Sequence[Sequence[float]]) -> float | None:
    """creatinine_limits for one age."""
    return number(creatinine_limits(_array(years), bands)[0])


def assess_creatinine(value: float | None, age_years: int | None, crcl: float | None, *,
                      bands: Sequence[Sequence[float]], crcl_min: float, comparator: str | None = None,
                      below_lloq: bool = False, unit: str | None = "mg/dL") -> dict:
    """creatinine_criterion for one participant."""
    return _one(creatinine_criterion(_array(value), _array(age_years), _array(crcl), bands=bands, crcl_min=crcl_min,
                                     comparator=_strings(comparator), below_lloq=np.array([bool(below_lloq)]),
                                     unit=_strings(unit)))


def assess_cardiac(lvef_pct: float | None, fs_pct: float | None, *, lvef_min: float, fs_min: float) -> dict:
    """cardiac_criterion for one participant."""
    return _one(cardiac_criterion(_array(lvef_pct), _array(fs_pct), lvef_min=lvef_min, fs_min=fs_min))


def assess_spo2(spo2_pct: float | None, *, min_pct: float) -> dict:
    """spo2_criterion for one participant."""
    return _one(spo2_criterion(_array(spo2_pct), min_pct=min_pct))


def _numbers(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column).to_numpy(dtype=float, na_value=np.nan)


def _texts(column: pd.Series) -> np.ndarray:
    """A text column as object array, None where missing."""
    return np.where(column.isna(), None, column.to_numpy(dtype=object))


def _flags(column: pd.Series) -> np.ndarray:
    """A BOOLEAN that may arrive as None, NA or NaN: only a true value is true."""
    return column.astype("boolean").fillna(False).to_numpy(dtype=bool)


def evaluate(inputs: pd.DataFrame, settings: dict) -> pd.DataFrame:
    """mart.eligibility rows from eligibility_inputs rows: the nine §6.1 criteria per participant, in protocol
    order, each judged for everyone at once."""
    p = inputs.reset_index(drop=True)
    age = _numbers(p.age_at_consent_years)
    n_forms = p.n_forms.to_numpy(dtype=object)
    form = np.where(n_forms == 1, "EDC eligibility form (" + _words(p.form_event) + ")",
                    np.where(n_forms != 0, "EDC eligibility form (" + _words(p.form_event) + ", last of "
                             + _words(n_forms) + ")", None))
    no_form = np.where(n_forms == 0, "; no eligibility form", "")
    never_ld = p.ld_start_date.isna().to_numpy()

    def lab_source(code: str) -> dict:
        accession = _texts(p[f"{code}_accession"])
        return {"source_date": p[f"{code}_collected_on"],
                "source": np.where(pd.isna(accession), None, "lab accession " + _words(accession))}

    def lab(code: str, factor_key: str) -> pd.DataFrame:
        return x_uln_criterion(
            _numbers(p[f"{code}_value"]), _numbers(p[f"{code}_uln"]), max_x_uln=settings[factor_key],
            comparator=_texts(p[f"{code}_comparator"]), below_lloq=_flags(p[f"{code}_below_lloq"]),
            unit=_texts(p[f"{code}_unit"])).assign(**lab_source(code))

    creat_unit = _texts(p.creat_unit)
    criteria = {
        "AGE": age_criterion(age, min_years=settings["age_min_years"], max_years=settings["age_max_years"]).assign(
            source_date=p.consent_date, source="EDC enrollment (age at consent)"),
        "CD19_CAR_INTERVAL": cd19_interval_criterion(
            _numbers(p.cd19_to_ld_days), min_days=settings["cd19_car_to_ld_min_days"],
            max_days=settings["cd19_car_to_ld_max_days"]).assign(
            source_date=p.ld_start_date,
            source="EDC enrollment (CD19 CAR infusion date), treatment (lymphodepletion start)"),
        "SCREENING_MRD": mrd_criterion(_texts(p.mrd_status), _numbers(p.mrd_fraction),
                                       _texts(p.mrd_sample_id)).assign(source_date=p.mrd_collected_on,
                                                                       source=_texts(p.mrd_sample_id)),
        "TBILI": lab("tbili", "tbili_max_x_uln"),
        "AST": lab("ast", "ast_max_x_uln"),
        "ALT": lab("alt", "alt_max_x_uln"),
        "CREATININE": creatinine_criterion(
            _numbers(p.creat_value), age, _numbers(p.crcl_measured), bands=settings["creatinine_max_mg_dl"],
            crcl_min=settings["crcl_min_ml_min_173"], comparator=_texts(p.creat_comparator),
            below_lloq=_flags(p.creat_below_lloq),
            unit=np.where(pd.isna(creat_unit) | (creat_unit == ""), "mg/dL", creat_unit)).assign(
            **lab_source("creat")),
        "CARDIAC": cardiac_criterion(_numbers(p.lvef_pct), _numbers(p.fs_pct), lvef_min=settings["lvef_min_pct"],
                                     fs_min=settings["fs_min_pct"]).assign(source_date=pd.NaT, source=form),
        "SPO2": spo2_criterion(_numbers(p.spo2_pct), min_pct=settings["spo2_min_pct"]).assign(
            source_date=pd.NaT, source=form),
    }
    for name in ("CARDIAC", "SPO2"):
        criteria[name]["detail"] += no_form
    criteria["CD19_CAR_INTERVAL"]["detail"] += np.where(never_ld, " (never lymphodepleted)", "")
    for name in ("SCREENING_MRD", "TBILI", "AST", "ALT", "CREATININE"):
        criteria[name]["detail"] += np.where(never_ld, NEVER_LD, "")
    rows = pd.concat([frame.assign(participant=np.arange(len(p)), participant_id=p.participant_id, criterion=name,
                                   criterion_order=order, cutoff_date=p.ld_start_date, rule=RULE)
                      for order, (name, frame) in enumerate(criteria.items(), start=1)], ignore_index=True)
    rows = rows.sort_values(["participant", "criterion_order"], kind="stable")
    return rows.reindex(columns=[c for c in COMMENTS if c])


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

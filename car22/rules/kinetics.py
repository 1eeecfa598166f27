"""CAR T-cell expansion and persistence, derivations §3: noncompartmental metrics, B-cell aplasia, cohort table.

The series is mart.car_levels (SQL, warehouse/mart/car_levels.sql); the per-profile arithmetic is here as
plain functions over (day, value) lists, so each rule can be checked by hand.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd

from car22.config import Protocol
from car22.sql import replace_table, run_sql_file

WINDOW_FLAGS = ("detect_d28", "detect_m3", "detect_m6", "detect_m12")


def segment_area(t1: float, c1: float, t2: float, c2: float, method: str) -> float:
    """Area of one segment: linear trapezoid, or the log trapezoid on a falling segment with both ends > 0
    when the method is lin-up/log-down."""
    if method == "lin-up/log-down" and c2 < c1 and c1 > 0 and c2 > 0:
        return (c1 - c2) * (t2 - t1) / math.log(c1 / c2)
    return (c1 + c2) * (t2 - t1) / 2


def area(days: Sequence[float], values: Sequence[float], method: str) -> float:
    return sum(segment_area(days[i], values[i], days[i + 1], values[i + 1], method) for i in range(len(days) - 1))


def profile_metrics(days: Sequence[int], values: Sequence[float], *, assume_zero_at_day0: bool,
                    auc_method: str = "linear", auc_end_day: int = 28,
                    windows: dict[str, Sequence[int]] | None = None) -> dict:
    """Metrics of one participant's profile (derivations §3). Samples before day 0 are baseline and ignored;
    several samples on one day are averaged; (0, 0) is assumed when asked and no day-0 sample exists."""
    by_day: dict[int, list[float]] = {}
    for day, value in zip(days, values):
        if day is not None and value is not None and not math.isnan(value) and day >= 0:
            by_day.setdefault(int(day), []).append(float(value))
    measured = [(day, sum(v) / len(v)) for day, v in sorted(by_day.items())]
    points = list(measured)
    if assume_zero_at_day0 and (not points or points[0][0] != 0):
        points.insert(0, (0, 0.0))
    t, c = [d for d, _ in points], [v for _, v in points]
    result: dict = {"n_samples": len(measured), "cmax": None, "tmax_day": None, "auc_0_28": None,
                    "auc_0_last": None, "tlast_day": None, "clast": None, "auc_method": auc_method}
    positive = [(d, v) for d, v in measured if d > 0 and v > 0]
    if positive:
        peak = max(v for _, v in positive)
        result["cmax"], result["tmax_day"] = peak, next(d for d, v in positive if v == peak)
        result["tlast_day"], result["clast"] = positive[-1]
    if t:
        last = result["tlast_day"]
        if last is None:
            result["auc_0_last"] = 0.0
        else:
            upto = [i for i, day in enumerate(t) if day <= last]
            result["auc_0_last"] = area([t[i] for i in upto], [c[i] for i in upto], auc_method)
        result["auc_0_28"] = _area_to(t, c, auc_end_day, auc_method)
    for flag, (low, high) in (windows or {}).items():
        inside = [v for d, v in measured if low <= d <= high]
        result[flag] = None if not inside else any(v > 0 for v in inside)
    return result


def _area_to(t: list, c: list, end: int, method: str) -> float | None:
    """Area from the first point to `end`; no sample on `end` is interpolated linearly between its neighbours;
    none after `end`: NULL."""
    if end in t:
        i = t.index(end)
        return area(t[: i + 1], c[: i + 1], method)
    before = [i for i, day in enumerate(t) if day < end]
    after = [i for i, day in enumerate(t) if day > end]
    if not before or not after:
        return None
    i, j = before[-1], after[0]
    c_end = c[i] + (c[j] - c[i]) * (end - t[i]) / (t[j] - t[i])
    return area(t[: i + 1] + [end], c[: i + 1] + [c_end], method)


def b_cell_states(pct: Sequence[float], absolute: Sequence[float | None], *, max_pct: float,
                  max_abs: float) -> list[str]:
    """APLASTIC below both limits (the absolute one when measured), RECOVERED above both, else INDETERMINATE."""
    states = []
    for p, a in zip(pct, absolute):
        has_abs = a is not None and not (isinstance(a, float) and math.isnan(a))
        if p < max_pct and (not has_abs or a < max_abs):
            states.append("APLASTIC")
        elif p >= max_pct and (not has_abs or a >= max_abs):
            states.append("RECOVERED")
        else:
            states.append("INDETERMINATE")
    return states


def b_cell_aplasia(days: Sequence[int], states: Sequence[str], *, confirm: bool,
                   d28_window: Sequence[int] = (21, 35), d28: int = 28) -> dict:
    """Samples on or after day 0 (derivations §3): aplasia_at_d28 from the sample closest to day 28 in its window
    (earlier on a tie); bca_loss_day the first RECOVERED sample after an APLASTIC one, confirmed by the next
    sample when `confirm` (B cells still present before the CD22 CAR took effect are not a loss); bca_status
    NEVER_APLASTIC | ONGOING | LOST (NULL without any sample); last_aplastic_day."""
    pairs = sorted((d, s) for d, s in zip(days, states) if d >= 0)
    in_window = [(abs(d - d28), d, s) for d, s in pairs if d28_window[0] <= d <= d28_window[1]]
    at_d28 = min(in_window)[2] == "APLASTIC" if in_window else None
    loss, aplastic_before = None, False
    for k, (day, state) in enumerate(pairs):
        if state == "APLASTIC":
            aplastic_before = True
        elif state == "RECOVERED" and aplastic_before and (
                not confirm or (k + 1 < len(pairs) and pairs[k + 1][1] == "RECOVERED")):
            loss = day
            break
    aplastic = [d for d, s in pairs if s == "APLASTIC"]
    status = (None if not pairs else "NEVER_APLASTIC" if not aplastic else "LOST" if loss is not None
              else "ONGOING")
    return {"aplasia_at_d28": at_d28, "bca_loss_day": loss, "bca_status": status,
            "last_aplastic_day": aplastic[-1] if aplastic else None, "n_samples": len(pairs)}


def geometric_summary(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Geometric mean and geometric CV % (100·√(exp(s²) − 1), s the SD of the logs) over values > 0."""
    logs = np.log([v for v in values if v is not None and v > 0])
    if len(logs) == 0:
        return None, None
    mean = float(np.exp(logs.mean()))
    cv = float(100 * math.sqrt(math.exp(logs.std(ddof=1) ** 2) - 1)) if len(logs) > 1 else None
    return mean, cv


KINETICS_COMMENTS = {
    "": "Noncompartmental CAR expansion and persistence per participant, assay and target (derivations §3).",
    "participant_id": "Infused participant.",
    "assay": "flow_pct | flow_abs | qpcr.",
    "target": "CD22CAR | CD19CAR (never mixed).",
    "unit": "Unit of the levels.",
    "n_samples": "Study days with a blood sample on or after day 0 (baseline excluded; the assumed day-0 point not "
                 "counted; several samples on one day are averaged and count once).",
    "cmax": "Highest level after day 0; NULL when every level is 0.",
    "tmax_day": "First study day at cmax.",
    "auc_0_28": "Area day 0-28 (level x day); day 28 interpolated when not sampled; NULL when no sample after day 28.",
    "auc_0_last": "Area from day 0 to tlast_day (0 when every level is 0).",
    "tlast_day": "Last study day with a level > 0.",
    "clast": "Level at tlast_day.",
    "detect_d28": "Any level > 0 on days 21-35 (NULL when no sample).",
    "detect_m3": "Any level > 0 on days 76-104 (NULL when no sample).",
    "detect_m6": "Any level > 0 on days 150-210 (NULL when no sample).",
    "detect_m12": "Any level > 0 on days 335-395 (NULL when no sample).",
    "auc_method": "linear | lin-up/log-down (setting kinetics.auc_method).",
}
BCA_COMMENTS = {
    "": "B-cell aplasia (functional CAR persistence) per infused participant, from CD19+ B cells of the flow CAR "
        "panel, blood samples only (derivations §3).",
    "participant_id": "Infused participant.",
    "aplasia_at_d28": "Aplastic at the sample closest to day 28 within days 21-35 (NULL when none).",
    "bca_loss_day": "First day B cells are above both limits after aplasia was established on or after day 0, "
                    "confirmed on the next sample (setting bca_confirm); NULL when never aplastic or not lost.",
    "bca_status": "NEVER_APLASTIC (no aplastic sample on or after day 0) | ONGOING | LOST (bca_loss_day set); "
                  "NULL without any sample.",
    "last_aplastic_day": "Last study day with B-cell aplasia.",
    "n_samples": "Blood samples on or after day 0 with a B-cell measure.",
    "max_b_cell_pct": "Setting: aplasia below this % of lymphocytes.",
    "max_b_cell_abs_per_ul": "Setting: and below these cells/uL when measured.",
}
SUMMARY_COMMENTS = {
    "": "Cohort cellular-kinetics table per assay and target (derivations §3).",
    "assay": "flow_pct | flow_abs | qpcr.",
    "target": "CD22CAR | CD19CAR.",
    "unit": "Unit of cmax (auc: unit x day).",
    "n": "Participants with a profile.",
    "n_expanded": "Participants with cmax > 0.",
    "cmax_geo_mean": "Geometric mean of cmax > 0.",
    "cmax_geo_cv_pct": "Geometric CV % of cmax > 0: 100 x sqrt(exp(s^2) - 1).",
    "auc_0_28_geo_mean": "Geometric mean of auc_0_28 > 0.",
    "auc_0_28_geo_cv_pct": "Geometric CV % of auc_0_28 > 0.",
    "tmax_median": "Median tmax_day.",
    "tmax_min": "Minimum tmax_day.",
    "tmax_max": "Maximum tmax_day.",
    "tlast_median": "Median tlast_day.",
    "tlast_min": "Minimum tlast_day.",
    "tlast_max": "Maximum tlast_day.",
}


def build(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    settings = protocol["kinetics"]
    run_sql_file(con, "mart/car_levels.sql")
    infused = [row[0] for row in con.execute(
        "SELECT participant_id FROM core.participants WHERE infused ORDER BY 1").fetchall()]
    # only blood forms the profile: a marrow sample, even on the same day, is never averaged in (derivations §3)
    levels = con.sql("SELECT * FROM mart.car_levels WHERE study_day IS NOT NULL AND specimen = 'PB'").df()
    rows = []
    for (pid, assay, target, unit), group in levels[levels.participant_id.isin(infused)].groupby(
            ["participant_id", "assay", "target", "unit"], sort=True):
        metrics = profile_metrics(group.study_day.tolist(), group.value.tolist(),
                                  assume_zero_at_day0=target == "CD22CAR", auc_method=settings["auc_method"],
                                  auc_end_day=settings["auc_end_day"], windows=settings["persistence_windows"])
        rows.append({"participant_id": pid, "assay": assay, "target": target, "unit": unit, **metrics})
    kinetics = pd.DataFrame(rows)
    text = {"participant_id": "VARCHAR", "assay": "VARCHAR", "target": "VARCHAR", "unit": "VARCHAR",
            "auc_method": "VARCHAR", "n_samples": "INTEGER", "tmax_day": "INTEGER", "tlast_day": "INTEGER",
            **{flag: "BOOLEAN" for flag in WINDOW_FLAGS}}
    replace_table(con, "mart.car_kinetics", kinetics, KINETICS_COMMENTS, text, "DOUBLE")

    b_cells = con.sql("""SELECT participant_id, study_day, cd19b_pct, cd19b_abs_cells_ul FROM core.flow_samples
                         WHERE panel = 'CAR' AND qc = 'PASS' AND specimen = 'PB' AND cd19b_pct IS NOT NULL
                           AND study_day >= 0
                         ORDER BY participant_id, study_day""").df()
    window = settings["persistence_windows"]["detect_d28"]
    aplasia = []
    empty = b_cells.iloc[0:0]
    by_participant = dict(tuple(b_cells.groupby("participant_id", sort=False)))
    for pid in infused:
        own = by_participant.get(pid, empty)
        states = b_cell_states(own.cd19b_pct.tolist(), own.cd19b_abs_cells_ul.tolist(),
                               max_pct=settings["bca_max_b_cell_pct"], max_abs=settings["bca_max_b_cell_abs_per_ul"])
        aplasia.append({"participant_id": pid, **b_cell_aplasia(own.study_day.tolist(), states,
                                                                 confirm=settings["bca_confirm"], d28_window=window),
                        "max_b_cell_pct": settings["bca_max_b_cell_pct"],
                        "max_b_cell_abs_per_ul": settings["bca_max_b_cell_abs_per_ul"]})
    replace_table(con, "mart.b_cell_aplasia", pd.DataFrame(aplasia), BCA_COMMENTS,
                  {"participant_id": "VARCHAR", "aplasia_at_d28": "BOOLEAN", "bca_loss_day": "INTEGER",
                   "bca_status": "VARCHAR", "last_aplastic_day": "INTEGER", "n_samples": "INTEGER"}, "DOUBLE")

    cohort(con, protocol)


def cohort(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    """The cohort table (geometric means and CVs) from everyone's mart.car_kinetics."""
    kinetics = con.sql("SELECT * FROM mart.car_kinetics ORDER BY participant_id, assay, target, unit").df()
    summary = []
    if not kinetics.empty:
        for (assay, target, unit), group in kinetics.groupby(["assay", "target", "unit"], sort=True):
            cmax_mean, cmax_cv = geometric_summary(group.cmax.dropna().tolist())
            auc_mean, auc_cv = geometric_summary(group.auc_0_28.dropna().tolist())
            tmax, tlast = group.tmax_day.dropna(), group.tlast_day.dropna()
            summary.append({
                "assay": assay, "target": target, "unit": unit, "n": len(group),
                "n_expanded": int((group.cmax.fillna(0) > 0).sum()), "cmax_geo_mean": cmax_mean,
                "cmax_geo_cv_pct": cmax_cv, "auc_0_28_geo_mean": auc_mean, "auc_0_28_geo_cv_pct": auc_cv,
                "tmax_median": tmax.median() if len(tmax) else None, "tmax_min": tmax.min() if len(tmax) else None,
                "tmax_max": tmax.max() if len(tmax) else None,
                "tlast_median": tlast.median() if len(tlast) else None,
                "tlast_min": tlast.min() if len(tlast) else None, "tlast_max": tlast.max() if len(tlast) else None})
    replace_table(con, "mart.car_kinetics_summary", pd.DataFrame(summary), SUMMARY_COMMENTS,
                  {"assay": "VARCHAR", "target": "VARCHAR", "unit": "VARCHAR", "n": "INTEGER",
                   "n_expanded": "INTEGER", "tmax_min": "INTEGER", "tmax_max": "INTEGER", "tlast_min": "INTEGER",
                   "tlast_max": "INTEGER"}, "DOUBLE")

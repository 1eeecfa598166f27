"""CAR T-cell expansion and persistence, derivations §3: noncompartmental metrics, B-cell aplasia, cohort table.

The series is mart.car_levels (SQL, warehouse/mart/car_levels.sql); the arithmetic is here, computed for every
profile at once (metrics_by_profile, aplasia_by_participant). profile_metrics and b_cell_aplasia run the same
code on one profile given as (day, value) lists, so each rule can be checked by hand. Sums are added in the
order a hand calculation adds them, so the figures do not depend on how many profiles are computed together.
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


def running_sums(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Cumulative sums that restart at each `starts` row (the first row must be one), added one at a time in
    row order from 0 as Python's sum() adds: pandas' grouped cumsum compensates rounding and numpy's cumsum runs
    across groups, and either would change the last bit of an area."""
    rows = np.arange(len(values))
    position = rows - np.maximum.accumulate(np.where(starts, rows, 0))
    sums = 0.0 + values
    by_position = np.argsort(position, kind="stable")
    bounds = np.cumsum(np.bincount(position))
    for k in range(1, len(bounds)):
        at = by_position[bounds[k - 1]:bounds[k]]
        sums[at] = sums[at - 1] + values[at]
    return sums


def starts_of(*keys: np.ndarray) -> np.ndarray:
    """Rows (sorted on keys) where any key changes: the first row of each run."""
    starts = np.ones(len(keys[0]), dtype=bool)
    if len(starts):
        starts[1:] = np.any([key[1:] != key[:-1] for key in keys], axis=0)
    return starts


def ends_of(starts: np.ndarray) -> np.ndarray:
    """The last row of each run, from the first rows (starts_of)."""
    return np.append(starts[1:], True)[:len(starts)]


def segment_areas(t1: np.ndarray, c1: np.ndarray, t2: np.ndarray, c2: np.ndarray, method: str) -> np.ndarray:
    """Area of each segment: linear trapezoid, or the log trapezoid on a falling segment with both ends > 0
    when the method is lin-up/log-down. The logarithm is math.log's: numpy's vectorised log differs from it in
    the last bit on some CPUs (AVX-512)."""
    areas = (c1 + c2) * (t2 - t1) / 2
    if method == "lin-up/log-down":
        falling = np.flatnonzero((c2 < c1) & (c1 > 0) & (c2 > 0))
        logs = np.array([math.log(ratio) for ratio in c1[falling] / c2[falling]], dtype=float)
        areas[falling] = (c1[falling] - c2[falling]) * (t2[falling] - t1[falling]) / logs
    return areas


def profile_metrics(days: Sequence[int | None], values: Sequence[float | None], *, assume_zero_at_day0: bool,
                    auc_method: str = "linear", auc_end_day: int = 28,
                    windows: dict[str, Sequence[int]] | None = None) -> dict:
    """Metrics of one profile, computed by metrics_by_profile, the cohort's code, on a single profile."""
    frame = metrics_by_profile(np.zeros(len(days), dtype=int), pd.Series(days, dtype=float).to_numpy(),
                               pd.Series(values, dtype=float).to_numpy(), np.array([assume_zero_at_day0]),
                               auc_method=auc_method, auc_end_day=auc_end_day, windows=windows or {})
    return {key: None if pd.isna(value) else value for key, value in frame.to_dict("records")[0].items()}


def metrics_by_profile(profile: np.ndarray, days: np.ndarray, values: np.ndarray, assume_zero_at_day0: np.ndarray,
                       *, auc_method: str, auc_end_day: int, windows: dict[str, Sequence[int]]) -> pd.DataFrame:
    """Metrics of every profile (derivations §3): one row per profile 0 … len(assume_zero_at_day0) − 1.

    Rows are samples: `profile` numbers the profile, `days` the study day, `values` the level (NaN in either:
    no sample). Samples before day 0 are baseline and ignored; several samples on one day are averaged; (0, 0)
    is assumed where asked and no day-0 sample exists.
    """
    n_profiles = len(assume_zero_at_day0)
    kept = ~np.isnan(days) & ~np.isnan(values) & (days >= 0)
    order = np.lexsort((days[kept], profile[kept]))      # stable: a day's samples keep their order
    profile, days, values = profile[kept][order], days[kept][order].astype(np.int64), values[kept][order]
    first_of_day = starts_of(profile, days)
    sums = running_sums(values, first_of_day)
    last_of_day = ends_of(first_of_day)
    measured = pd.DataFrame({"profile": profile[last_of_day], "day": days[last_of_day],
                             "value": sums[last_of_day] / np.diff(np.append(np.flatnonzero(first_of_day),
                                                                            len(values)))})
    has_day0 = np.zeros(n_profiles, dtype=bool)
    has_day0[measured.profile[measured.day == 0]] = True
    assumed = pd.DataFrame({"profile": np.flatnonzero(assume_zero_at_day0 & ~has_day0), "day": 0, "value": 0.0})
    points = pd.concat([measured, assumed]).sort_values(["profile", "day"], kind="stable", ignore_index=True)
    p, t, c = points.profile.to_numpy(), points.day.to_numpy(), points.value.to_numpy()
    first = starts_of(p)
    areas = np.zeros(len(p))
    areas[1:] = segment_areas(t[:-1], c[:-1], t[1:], c[1:], auc_method)
    areas[first] = 0.0
    points["area"] = running_sums(areas, first)          # area from the profile's first point to this one

    result = pd.DataFrame({"n_samples": np.bincount(measured.profile, minlength=n_profiles)})
    positive = measured[(measured.day > 0) & (measured.value > 0)]
    peak = positive.groupby("profile").value.max()
    at_peak = positive[positive.value.to_numpy() == peak.reindex(positive.profile).to_numpy()]
    last = positive.drop_duplicates("profile", keep="last").set_index("profile")
    result["cmax"] = peak
    result["tmax_day"] = at_peak.drop_duplicates("profile").set_index("profile").day.astype("Int64")
    result["auc_0_28"] = _area_to(points, first, auc_end_day, auc_method)
    # AUClast: the area up to tlast_day; 0 when no level is > 0; none without any point
    auc_last = np.where(np.isin(np.arange(n_profiles), p), 0.0, np.nan)
    at_tlast = points[points.day.to_numpy() == last.day.reindex(points.profile).to_numpy()]
    auc_last[at_tlast.profile.to_numpy()] = at_tlast.area.to_numpy()
    result["auc_0_last"] = auc_last
    result["tlast_day"] = last.day.astype("Int64")
    result["clast"] = last.value
    result["auc_method"] = auc_method
    for flag, (low, high) in windows.items():
        inside = measured[(measured.day >= low) & (measured.day <= high)]
        result[flag] = (inside.value > 0).groupby(inside.profile).any().astype("boolean")
    return result


def _area_to(points: pd.DataFrame, first: np.ndarray, end: int, method: str) -> pd.Series:
    """Area from each profile's first point to `end` (by profile); no sample on `end` is interpolated linearly
    between its neighbours; no point before or after `end`: none."""
    on_end = points[points.day == end].set_index("profile").area
    p, t, c = points.profile.to_numpy(), points.day.to_numpy(), points.value.to_numpy()
    # point i before `end` whose next point j, of the same profile, is after it
    i = np.flatnonzero(~ends_of(first) & (t < end) & (np.append(t[1:], end)[:len(p)] > end))
    j = i + 1
    c_end = c[i] + (c[j] - c[i]) * (end - t[i]) / (t[j] - t[i])
    spanning = points.area.to_numpy()[i] + segment_areas(t[i], c[i], np.full(len(i), end), c_end, method)
    return pd.concat([on_end, pd.Series(spanning, index=p[i])])


def b_cell_states(pct: Sequence[float], absolute: Sequence[float | None], *, max_pct: float,
                  max_abs: float) -> np.ndarray:
    """APLASTIC below both limits (the absolute one when measured), RECOVERED above both, else INDETERMINATE."""
    pct, absolute = np.asarray(pct, dtype=float), np.asarray(absolute, dtype=float)
    unmeasured = np.isnan(absolute)
    return np.select([(pct < max_pct) & (unmeasured | (absolute < max_abs)),
                      (pct >= max_pct) & (unmeasured | (absolute >= max_abs))],
                     ["APLASTIC", "RECOVERED"], "INDETERMINATE")


def b_cell_aplasia(days: Sequence[int], states: Sequence[str], *, confirm: bool,
                   d28_window: Sequence[int] = (21, 35), d28: int = 28) -> dict:
    """One participant's B-cell aplasia, computed by aplasia_by_participant, the cohort's code, on one."""
    frame = aplasia_by_participant(np.zeros(len(days), dtype=int), np.asarray(days, dtype=np.int64),
                                   np.asarray(states, dtype=object), 1, confirm=confirm, d28_window=d28_window,
                                   d28=d28)
    return {key: None if pd.isna(value) else value for key, value in frame.to_dict("records")[0].items()}


def aplasia_by_participant(participant: np.ndarray, days: np.ndarray, states: np.ndarray, n_participants: int, *,
                           confirm: bool, d28_window: Sequence[int], d28: int = 28) -> pd.DataFrame:
    """B-cell aplasia of participants 0 … n_participants − 1 from their samples (derivations §3): rows are
    samples, `participant` numbers the participant. Samples on or after day 0 count, in the order of day and
    then state name (APLASTIC, INDETERMINATE, RECOVERED on one day). aplasia_at_d28 from the sample closest to
    day 28 in its window (earlier on a tie); bca_loss_day the first RECOVERED sample after an APLASTIC one,
    confirmed by the next sample when `confirm` (B cells still present before the CD22 CAR took effect are not
    a loss); bca_status NEVER_APLASTIC | ONGOING | LOST (NULL without any sample); last_aplastic_day."""
    samples = pd.DataFrame({"participant": participant, "day": days, "state": states})
    samples = samples[samples.day >= 0].sort_values(["participant", "day", "state"], kind="stable",
                                                    ignore_index=True)
    who = samples.participant.to_numpy()
    aplastic, recovered = (samples.state == "APLASTIC").to_numpy(), (samples.state == "RECOVERED").to_numpy()
    first_aplastic = samples[aplastic].drop_duplicates("participant")
    first_aplastic_row = pd.Series(first_aplastic.index, index=first_aplastic.participant)
    after_aplasia = samples.index.to_numpy() > first_aplastic_row.reindex(who).fillna(len(samples)).to_numpy()
    next_recovered = np.append(recovered[1:], False)[:len(who)] & ~ends_of(starts_of(who))
    lost = samples[recovered & after_aplasia & (next_recovered | (not confirm))].drop_duplicates("participant")
    window = samples[(samples.day >= d28_window[0]) & (samples.day <= d28_window[1])]
    closest = (window.assign(distance=(window.day - d28).abs())
               .sort_values(["participant", "distance"], kind="stable").drop_duplicates("participant"))

    result = pd.DataFrame(index=pd.RangeIndex(n_participants))
    result["aplasia_at_d28"] = (closest.set_index("participant").state == "APLASTIC").astype("boolean")
    result["bca_loss_day"] = lost.set_index("participant").day.astype("Int64")
    n_samples = np.bincount(who, minlength=n_participants)
    ever_aplastic = result.index.isin(first_aplastic.participant)
    result["bca_status"] = np.select([n_samples == 0, ~ever_aplastic, result.bca_loss_day.notna()],
                                     [None, "NEVER_APLASTIC", "LOST"], "ONGOING")
    result["last_aplastic_day"] = samples[aplastic].groupby("participant").day.max().astype("Int64")
    result["n_samples"] = n_samples
    return result


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
    infused = con.sql("SELECT participant_id FROM core.participants WHERE infused ORDER BY 1").df().participant_id
    # only blood forms the profile: a marrow sample, even on the same day, is never averaged in (derivations §3)
    levels = con.sql("SELECT participant_id, assay, target, unit, study_day, value FROM mart.car_levels "
                     "WHERE study_day IS NOT NULL AND specimen = 'PB'").df()
    levels = levels[levels.participant_id.isin(infused)]
    keys = ["participant_id", "assay", "target", "unit"]
    groups = levels.groupby(keys, sort=True)
    profiles = groups.size().index.to_frame(index=False)
    kinetics = profiles.join(metrics_by_profile(
        groups.ngroup().to_numpy(), levels.study_day.to_numpy(dtype=float), levels.value.to_numpy(dtype=float),
        (profiles.target == "CD22CAR").to_numpy(), auc_method=settings["auc_method"],
        auc_end_day=settings["auc_end_day"], windows=settings["persistence_windows"]))
    text = {"participant_id": "VARCHAR", "assay": "VARCHAR", "target": "VARCHAR", "unit": "VARCHAR",
            "auc_method": "VARCHAR", "n_samples": "INTEGER", "tmax_day": "INTEGER", "tlast_day": "INTEGER",
            **{flag: "BOOLEAN" for flag in WINDOW_FLAGS}}
    replace_table(con, "mart.car_kinetics", kinetics, KINETICS_COMMENTS, text, "DOUBLE")

    b_cells = con.sql("""SELECT participant_id, study_day, cd19b_pct, cd19b_abs_cells_ul FROM core.flow_samples
                         WHERE panel = 'CAR' AND qc = 'PASS' AND specimen = 'PB' AND cd19b_pct IS NOT NULL
                           AND study_day >= 0""").df()
    b_cells = b_cells[b_cells.participant_id.isin(infused)]
    states = b_cell_states(b_cells.cd19b_pct, b_cells.cd19b_abs_cells_ul, max_pct=settings["bca_max_b_cell_pct"],
                           max_abs=settings["bca_max_b_cell_abs_per_ul"])
    aplasia = aplasia_by_participant(
        pd.Index(infused).get_indexer(b_cells.participant_id), b_cells.study_day.to_numpy(), states, len(infused),
        confirm=settings["bca_confirm"], d28_window=settings["persistence_windows"]["detect_d28"])
    aplasia.insert(0, "participant_id", infused.to_numpy())
    aplasia["max_b_cell_pct"] = settings["bca_max_b_cell_pct"]
    aplasia["max_b_cell_abs_per_ul"] = settings["bca_max_b_cell_abs_per_ul"]
    replace_table(con, "mart.b_cell_aplasia", aplasia, BCA_COMMENTS,
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

"""MRD status per marrow sample, derivations §2, from the integer event counts (never the exported percent).

The decision table is evaluated top to bottom. E/N is compared to the threshold in exact integer arithmetic
(the threshold as a fraction), so E/N exactly 1e-4 is POSITIVE and k_lod/N exactly 1e-4 is NEGATIVE, with no
floating-point doubt.
"""
from __future__ import annotations

from fractions import Fraction

import duckdb
import numpy as np
import pandas as pd

from car22.config import Protocol
from car22.sql import comment_table

RULE = "derivations §2"


def _fraction(value: float) -> Fraction:
    """The setting as written (1.0e-4 -> 1/10000), not its binary approximation."""
    return Fraction(str(value))


def mrd_status(events_leukemic: pd.Series, events_total: pd.Series, qc: pd.Series, *, threshold: float,
               min_cluster: int, min_quantifiable: int) -> pd.Series:
    """The §2 decision table, vectorised. Missing N, N = 0, a QC failure or a missing E: NOT_EVALUABLE."""
    t = _fraction(threshold)
    e = pd.to_numeric(events_leukemic, errors="coerce").astype("float64").to_numpy()
    n = pd.to_numeric(events_total, errors="coerce").astype("float64").to_numpy()
    evaluable = (qc.fillna("") == "PASS").to_numpy() & ~np.isnan(n) & (np.nan_to_num(n) > 0) & ~np.isnan(e)
    e_int = np.nan_to_num(e).astype(np.int64)
    n_int = np.nan_to_num(n).astype(np.int64)
    detected = e_int >= min_cluster
    at_or_above = e_int * t.denominator >= t.numerator * n_int          # E/N >= threshold, exactly
    lod_ok = min_cluster * t.denominator <= t.numerator * n_int          # k_lod/N <= threshold, exactly
    status = np.select(
        [~evaluable, detected & at_or_above, detected & (e_int < min_quantifiable), detected, lod_ok],
        ["NOT_EVALUABLE", "POSITIVE", "POSITIVE_NOT_QUANTIFIABLE", "POSITIVE_LOW", "NEGATIVE"],
        default="NEGATIVE_INSUFFICIENT_SENSITIVITY")
    return pd.Series(status, index=events_total.index, dtype="string")


def cd22_category(cd22_pos_pct: pd.Series, cd22_abc: pd.Series, *, neg_below_pct: float,
                  dim_below_abc: float) -> pd.Series:
    """NEG if CD22+ < 20 % of blasts, else DIM if ABC < 1500, else POS; NULL when what decides is missing.

    A CD22+ percent of 20 % or more with no ABC could be DIM or POS: it stays NULL, never guessed.
    """
    pct = pd.to_numeric(cd22_pos_pct, errors="coerce").astype("float64")
    abc = pd.to_numeric(cd22_abc, errors="coerce").astype("float64")
    category = pd.Series(pd.NA, index=pct.index, dtype="string")
    category[pct.notna() & (pct >= neg_below_pct) & abc.notna() & (abc >= dim_below_abc)] = "POS"
    category[pct.notna() & (pct >= neg_below_pct) & abc.notna() & (abc < dim_below_abc)] = "DIM"
    category[pct.notna() & (pct < neg_below_pct)] = "NEG"
    return category


def assess(samples: pd.DataFrame, protocol: Protocol) -> pd.DataFrame:
    """mart.mrd_assessments rows from core.flow_samples rows of the MRD panel."""
    settings = protocol["mrd"]
    out = samples[["participant_id", "sample_id", "collected_on", "study_day", "specimen", "qc",
                   "events_total", "events_leukemic"]].copy()
    out.insert(5, "method", "FLOW")
    total = out["events_total"].astype("Float64")
    evaluable_n = total.where(total > 0)
    out["mrd_fraction"] = (out["events_leukemic"].astype("Float64") / evaluable_n).astype("float64")
    out["lod_fraction"] = (settings["min_cluster"] / evaluable_n).astype("float64")
    out["mrd_status"] = mrd_status(out["events_leukemic"], out["events_total"], out["qc"],
                                   threshold=settings["threshold"], min_cluster=settings["min_cluster"],
                                   min_quantifiable=settings["min_quantifiable"])
    detected = out["mrd_status"].isin(["POSITIVE", "POSITIVE_NOT_QUANTIFIABLE", "POSITIVE_LOW"])
    for column in ("cd19_pos_pct", "cd22_pos_pct", "cd22_abc"):
        out[column] = samples[column].astype("float64").where(detected)
    out["cd22_category"] = cd22_category(out["cd22_pos_pct"], out["cd22_abc"],
                                         neg_below_pct=settings["cd22_neg_below_pct"],
                                         dim_below_abc=settings["cd22_dim_below_abc"]).where(detected)
    out["mrd_threshold"] = float(settings["threshold"])
    out["min_cluster"] = int(settings["min_cluster"])
    out["min_quantifiable"] = int(settings["min_quantifiable"])
    out["rule"] = RULE
    return out


COMMENTS = {
    "": "MRD status per flow MRD sample (derivations §2). Decisions use bone marrow (specimen BM) only; "
        "peripheral blood samples are kept with their status but never drive a decision.",
    "participant_id": "Participant.",
    "sample_id": "FCS sample name (core.flow_samples).",
    "collected_on": "Collection date.",
    "study_day": "Collection date - CD22 CAR infusion date (NULL when not infused).",
    "specimen": "BM (bone marrow) or PB (peripheral blood: never used for decisions).",
    "method": "FLOW (flow cytometry).",
    "qc": "Sample QC from the flow lab: anything but PASS is NOT_EVALUABLE.",
    "events_total": "N: viable CD45+ events.",
    "events_leukemic": "E: leukemic (blast) events.",
    "mrd_fraction": "E/N as a fraction (0-1), never a percent.",
    "lod_fraction": "Limit of detection k_lod/N as a fraction.",
    "mrd_status": "NOT_EVALUABLE | POSITIVE | POSITIVE_NOT_QUANTIFIABLE | POSITIVE_LOW | NEGATIVE | "
                  "NEGATIVE_INSUFFICIENT_SENSITIVITY (derivations §2, evaluated top to bottom). Only NEGATIVE "
                  "counts as MRD-negative; POSITIVE counts as MRD relapse.",
    "cd19_pos_pct": "CD19+ percent of blasts, on samples with detectable disease (E >= k_lod).",
    "cd22_pos_pct": "CD22+ percent of blasts, on samples with detectable disease (E >= k_lod).",
    "cd22_abc": "CD22 antibodies bound per cell, on samples with detectable disease.",
    "cd22_category": "NEG (CD22+ < 20 % of blasts), DIM (ABC < 1500), POS; NULL when not measured.",
    "mrd_threshold": "Setting mrd.threshold used (fraction).",
    "min_cluster": "Setting mrd.min_cluster (k_lod, events) used.",
    "min_quantifiable": "Setting mrd.min_quantifiable (k_lloq, events) used.",
    "rule": "The rule applied.",
}


def build(con: duckdb.DuckDBPyConnection, protocol: Protocol) -> None:
    samples = con.sql("SELECT * FROM core.flow_samples WHERE panel = 'MRD' "
                      "ORDER BY participant_id, collected_on, sample_id").df()
    assessments = assess(samples, protocol)
    con.register("mrd_frame", assessments)
    try:
        con.execute("""
            CREATE OR REPLACE TABLE mart.mrd_assessments AS
            SELECT CAST(participant_id AS VARCHAR) AS participant_id, CAST(sample_id AS VARCHAR) AS sample_id,
                   CAST(collected_on AS DATE) AS collected_on, CAST(study_day AS INTEGER) AS study_day,
                   CAST(specimen AS VARCHAR) AS specimen, CAST(method AS VARCHAR) AS method,
                   CAST(qc AS VARCHAR) AS qc,
                   CAST(events_total AS BIGINT) AS events_total, CAST(events_leukemic AS BIGINT) AS events_leukemic,
                   CAST(mrd_fraction AS DOUBLE) AS mrd_fraction, CAST(lod_fraction AS DOUBLE) AS lod_fraction,
                   CAST(mrd_status AS VARCHAR) AS mrd_status, CAST(cd19_pos_pct AS DOUBLE) AS cd19_pos_pct,
                   CAST(cd22_pos_pct AS DOUBLE) AS cd22_pos_pct, CAST(cd22_abc AS DOUBLE) AS cd22_abc,
                   CAST(cd22_category AS VARCHAR) AS cd22_category, CAST(mrd_threshold AS DOUBLE) AS mrd_threshold,
                   CAST(min_cluster AS INTEGER) AS min_cluster,
                   CAST(min_quantifiable AS INTEGER) AS min_quantifiable, CAST(rule AS VARCHAR) AS rule
            FROM mrd_frame""")  # every type spelled out: an empty night must give the same table
    finally:
        con.unregister("mrd_frame")
    comment_table(con, "mart.mrd_assessments", COMMENTS)

"""The monitors' trial summary: one static HTML page per night, rendered from the published warehouse.

Everything it shows comes from tables (design.md). It works offline: the plots are inline SVG (matplotlib),
the style is inline, there is no script and no external request. No date of birth, name or other identifying
field is read; participants appear by their pseudonymous trial ID and time by study day.
"""
from __future__ import annotations

import html
import io
from datetime import datetime
from pathlib import Path

import duckdb
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from car22.night.storage import write_whole  # noqa: E402
from car22.sql import table_exists  # noqa: E402
from car22.submission.manifest import package_folder, submission_note  # noqa: E402

REPORT_NAME = "trial_report.html"
# The page stays readable and quick at consortium scale (README, the `report` command): the swimmer plot and
# the individual expansion curves show the most recently infused participants, a flag table its first rows;
# cohort figures (medians, Kaplan-Meier, tallies) always use everyone, and the full lists are in mart.
SWIMMER_LANES = 60
EXPANSION_CURVES = 200
TABLE_ROWS = 200
RISK_DAYS = (0, 90, 180, 270, 365, 545, 730)
STATUS_COLOURS = {"NEGATIVE": "#2e7d32", "POSITIVE": "#c62828", "POSITIVE_LOW": "#ef6c00",
                  "POSITIVE_NOT_QUANTIFIABLE": "#ef6c00", "NEGATIVE_INSUFFICIENT_SENSITIVITY": "#9e9e9e",
                  "NOT_EVALUABLE": "#bdbdbd"}


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _cell(value) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        return html.escape(", ".join(str(v) for v in value))
    return "" if pd.isna(value) else html.escape(str(value))


def _table(frame: pd.DataFrame, empty: str = "None.", source: str | None = None) -> str:
    if frame.empty:
        return f"<p>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
                   for row in frame.head(TABLE_ROWS).itertuples(index=False))
    more = (f"<p class='meta'>First {TABLE_ROWS} of {len(frame):,} rows; all of them are in "
            f"{html.escape(source or 'the warehouse')}.</p>" if len(frame) > TABLE_ROWS else "")
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def _latest_infused(con: duckdb.DuckDBPyConnection, limit: int) -> tuple[list[str], int]:
    """The `limit` most recently infused participants, and how many were infused in all."""
    infused = [pid for pid, in con.execute("SELECT participant_id FROM core.participants WHERE infused "
                                           "ORDER BY infusion_date DESC, participant_id DESC").fetchall()]
    return infused[:limit], len(infused)


def swimmer_plot(con: duckdb.DuckDBPyConnection) -> str:
    """One lane per infused participant from infusion to last follow-up, with marrow MRD results, relapse,
    HSCT and death."""
    shown, infused = _latest_infused(con, SWIMMER_LANES)
    people = con.execute("""
        SELECT participant_id, greatest(coalesce(last_contact_date, infusion_date), coalesce(death_date, infusion_date))
               - infusion_date AS last_day, hsct_date - infusion_date AS hsct_day, death_date - infusion_date AS death_day
        FROM core.participants WHERE participant_id IN (SELECT unnest(?)) ORDER BY participant_id DESC""",
                         [shown]).df()
    marrow = con.sql("SELECT participant_id, study_day, mrd_status FROM mart.mrd_assessments "
                     "WHERE specimen = 'BM' AND study_day >= 0").df()
    relapses = con.sql("SELECT participant_id, time_days FROM mart.rfs WHERE analysis = 'sensitivity' AND event "
                       "AND event_type <> 'DEATH'").df()
    figure, axis = plt.subplots(figsize=(10, 0.32 * max(len(people), 4) + 1.2))
    lanes = {pid: i for i, pid in enumerate(people.participant_id)}
    axis.barh(list(lanes.values()), people.last_day.fillna(0), color="#cfd8dc", height=0.6)
    for status, colour in STATUS_COLOURS.items():
        rows = marrow[(marrow.mrd_status == status) & marrow.participant_id.isin(lanes)]
        if not rows.empty:
            axis.scatter(rows.study_day, rows.participant_id.map(lanes), color=colour, s=22, zorder=3,
                         label=f"marrow MRD {status.lower().replace('_', ' ')}")
    markers = [(relapses.time_days, relapses.participant_id, "X", "#b71c1c", "relapse"),
               (people.hsct_day, people.participant_id, "D", "#1565c0", "HSCT"),
               (people.death_day, people.participant_id, "s", "black", "death")]
    for days, pids, marker, colour, label in markers:
        keep = days.notna() & pids.isin(lanes)
        if keep.any():
            axis.scatter(days[keep], pids[keep].map(lanes), marker=marker, color=colour, s=60, zorder=4, label=label)
    axis.set_yticks(list(lanes.values()), list(lanes))
    axis.set_xlabel("study day (0 = CD22 CAR infusion); bar ends at last follow-up")
    if axis.get_legend_handles_labels()[1]:  # nobody infused yet: no legend (matplotlib warns on an empty one)
        axis.legend(loc="lower right", fontsize=7, ncols=2)
    axis.grid(axis="x", alpha=0.3)
    note = (f"<p class='meta'>The {len(shown)} most recently infused of {infused:,} participants "
            f"(all of them: core.participants, mart.mrd_assessments, mart.rfs).</p>" if infused > len(shown) else "")
    return note + _svg(figure)


def expansion_plot(con: duckdb.DuckDBPyConnection) -> str:
    """CD22 CAR expansion per participant on a log scale, cells/µL (flow) and copies/µg (qPCR), with the
    cohort median at each scheduled day. Levels of 0 (below the limit) are drawn at the axis floor."""
    levels = con.sql("""SELECT participant_id, study_day, assay, value FROM mart.car_levels
                        WHERE target = 'CD22CAR' AND assay IN ('flow_abs', 'qpcr') AND study_day >= 0
                        ORDER BY participant_id, study_day""").df()
    shown, infused = _latest_infused(con, EXPANSION_CURVES)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, (assay, label, floor) in zip(axes, (("flow_abs", "CAR22+ cells/µL (flow)", 0.01),
                                                  ("qpcr", "CD22 CAR copies/µg gDNA (qPCR)", 1.0))):
        rows = levels[levels.assay == assay]
        for _, own in rows[rows.participant_id.isin(shown)].groupby("participant_id"):
            axis.plot(own.study_day, own.value.clip(lower=floor), color="#90a4ae", linewidth=0.8, alpha=0.8)
        if not rows.empty:
            median = rows.groupby("study_day").value.median()
            axis.plot(median.index, median.clip(lower=floor), color="#c62828", linewidth=2.5, label="cohort median")
            axis.legend(fontsize=8)
        axis.set_yscale("log")
        axis.set_xlabel("study day")
        axis.set_title(label, fontsize=10)
        axis.grid(alpha=0.3)
    note = (f"<p class='meta'>Grey lines: the {len(shown)} most recently infused of {infused:,} participants; "
            f"the median is over everyone.</p>" if infused > len(shown) else "")
    return note + _svg(figure)


def km_plot(con: duckdb.DuckDBPyConnection) -> tuple[str, pd.DataFrame]:
    """Kaplan–Meier RFS (primary analysis) with its 95 % band, censoring ticks and numbers at risk."""
    curve = con.sql("SELECT * FROM mart.rfs_curve WHERE analysis = 'primary' ORDER BY time_days").df()
    rfs = con.sql("SELECT time_days, event FROM mart.rfs WHERE analysis = 'primary'").df()
    figure, axis = plt.subplots(figsize=(9, 4.5))
    if not curve.empty:
        axis.step(curve.time_days, curve.survival, where="post", color="#1565c0", linewidth=2, label="RFS")
        band = curve.dropna(subset=["ci_lower"])
        axis.fill_between(curve.time_days, curve.ci_lower.fillna(curve.survival),
                          curve.ci_upper.fillna(curve.survival), step="post", color="#1565c0", alpha=0.15,
                          label="95% CI (log-log)") if not band.empty else None
        censored = curve[curve.n_censored > 0]
        axis.plot(censored.time_days, censored.survival, "|", color="black", markersize=10, label="censored")
    axis.set_ylim(0, 1.05)
    axis.set_xlim(left=0)
    axis.axvline(365, color="#9e9e9e", linestyle="--", linewidth=1)
    axis.set_xlabel("days since CD22 CAR infusion")
    axis.set_ylabel("relapse-free survival")
    axis.legend(loc="lower left", fontsize=8)
    axis.grid(alpha=0.3)
    at_risk = pd.DataFrame({"day": list(RISK_DAYS),
                            "at risk": [int((rfs.time_days >= d).sum()) for d in RISK_DAYS]})
    return _svg(figure), at_risk


def grade_distribution_plot(con: duckdb.DuckDBPyConnection) -> str:
    counts = con.sql("""SELECT 'CRS' AS scale, max_grade, count(*) AS n FROM mart.crs_summary GROUP BY ALL
                        UNION ALL SELECT 'ICANS', max_grade, count(*) FROM mart.icans_summary GROUP BY ALL""").df()
    figure, axis = plt.subplots(figsize=(7, 3))
    width = 0.38
    for offset, scale, colour in ((-width / 2, "CRS", "#ef6c00"), (width / 2, "ICANS", "#6a1b9a")):
        rows = counts[counts.scale == scale].set_index("max_grade").n.reindex(range(6), fill_value=0)
        axis.bar([g + offset for g in rows.index], rows.values, width=width, color=colour, label=scale)
    axis.set_xticks(range(6), [f"grade {g}" for g in range(6)])
    axis.set_ylabel("participants (worst grade)")
    axis.legend(fontsize=8)
    axis.grid(axis="y", alpha=0.3)
    return _svg(figure)


GRADE_COLOURS = ("#2e7d32", "#9e9d24", "#ef6c00", "#c62828", "#6a1b9a")
# panel: test, scale, axis label, the thresholds of derivations §4.5 (primary, severe) and their comparison
COURSE_PANELS = (("ANC", "N-ICAHT", "ANC (10^9/L)", (0.5, 0.1), "≤"),
                 ("PLT", "T-ICAHT", "platelets (10^9/L)", (50, 20), "<"))
ICAHT_END_WORDS = {"RELAPSE_MORPHOLOGIC": "morphologic relapse", "RELAPSE_EXTRAMEDULLARY": "extramedullary relapse",
                   "RELAPSE_MRD": "MRD relapse", "HSCT": "HSCT", "NEXT_THERAPY": "next therapy", "DEATH": "death"}


def blood_count_plot(con: duckdb.DuckDBPyConnection) -> str:
    """ANC and platelet courses over days 0-30 (the early ICAHT phase) on a log scale, each participant coloured
    by their early grade, with the ICAHT thresholds drawn; below-LLOQ results are marked at the axis floor,
    never drawn as values."""
    shown, infused = _latest_infused(con, SWIMMER_LANES)
    labs = con.execute("""
        SELECT participant_id, test_code, study_day, value,
               coalesce(below_lloq, FALSE) OR result_kind = 'BELOW_LLOQ' AS blq
        FROM core.lab_results
        WHERE test_code IN ('ANC', 'PLT') AND study_day BETWEEN 0 AND 30 AND participant_id IN (SELECT unnest(?))
          AND (value IS NOT NULL OR coalesce(below_lloq, FALSE) OR result_kind = 'BELOW_LLOQ')""", [shown]).df()
    grades = con.sql("SELECT participant_id, scale, grade FROM mart.icaht WHERE phase = 'early'").df()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.6), gridspec_kw={"wspace": 0.3})
    for axis, (code, scale, label, thresholds, sign) in zip(axes, COURSE_PANELS):
        early = grades[grades.scale == scale].set_index("participant_id").grade
        floor = thresholds[-1] / 5
        for pid, own in labs[labs.test_code == code].groupby("participant_id"):
            grade = early.get(pid)
            colour = GRADE_COLOURS[int(grade)] if grade is not None and pd.notna(grade) else "#9e9e9e"
            daily = own[~own.blq].groupby("study_day").value.min()
            axis.plot(daily.index, daily.clip(lower=floor), color=colour, linewidth=0.9, alpha=0.8)
            blq = own[own.blq]
            if not blq.empty:
                axis.scatter(blq.study_day, [floor] * len(blq), marker="v", color=colour, s=20, zorder=3)
        for threshold, style in zip(thresholds, ("--", ":")):
            axis.axhline(threshold, color="black", linestyle=style, linewidth=1)
        handles = ([Line2D([], [], color=c, label=f"{scale} early grade {g}") for g, c in enumerate(GRADE_COLOURS)]
                   + [Line2D([], [], color="black", linestyle=style, label=f"{sign} {t:g} (10^9/L)")
                      for t, style in zip(thresholds, ("--", ":"))]
                   + [Line2D([], [], color="#616161", marker="v", linestyle="", label="below LLOQ (no value)")])
        axis.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=3)
        axis.set_yscale("log")
        axis.set_xlim(0, 30)
        axis.set_xlabel("study day (0 = CD22 CAR infusion)")
        axis.set_ylabel(label)
        axis.set_title(f"{code}, days 0-30", fontsize=10)
        axis.grid(alpha=0.3)
    note = (f"<p class='meta'>The {len(shown)} most recently infused of {infused:,} participants "
            f"(all of them: core.lab_results, mart.icaht).</p>" if infused > len(shown) else "")
    return note + _svg(figure)


def hematotoxicity_table(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per infused participant: each ICAHT grade and the CAR-HEMATOTOX risk in words."""
    icaht = con.sql("SELECT participant_id, scale || ' ' || phase AS toxicity, grade, window_end_day, "
                    "window_end_reason, null_reason FROM mart.icaht").df()
    ended = icaht.window_end_reason.map(ICAHT_END_WORDS)
    words = (icaht.grade.map(lambda g: "none" if g == 0 else f"grade {g:.0f}", na_action="ignore")
             + (" (window ended day " + icaht.window_end_day.astype("string") + " by " + ended + ")").fillna(""))
    icaht["words"] = words.fillna("not graded: " + icaht.null_reason.fillna(""))
    table = icaht.pivot(index="participant_id", columns="toxicity", values="words")
    table = table.reindex(columns=["N-ICAHT early", "N-ICAHT late", "T-ICAHT early", "T-ICAHT late"])
    if table_exists(con, "mart", "hematotox"):
        score = con.sql("SELECT participant_id, score, risk, null_reason FROM mart.hematotox").df()
        score["CAR-HEMATOTOX"] = (score.risk.str.lower() + " risk (score " + score.score.astype("string") + ")"
                                  ).fillna("not scored: " + score.null_reason.fillna(""))
        table = table.join(score.set_index("participant_id")["CAR-HEMATOTOX"])
    return table.reset_index().rename(columns={"participant_id": "participant"}).sort_values("participant")


def render(con: duckdb.DuckDBPyConnection, data_docs_link: str = "data_docs/index.html",
           submission: str = "") -> str:
    """The whole page as HTML text."""
    run = con.sql("SELECT run_id, finished_at, status, config_hash, code_version FROM ops.runs "
                  "WHERE status = 'completed' ORDER BY run_id DESC LIMIT 1").df()
    status = con.sql("""SELECT count(*) AS enrolled, count(*) FILTER (WHERE infused) AS infused,
                        count(*) FILTER (WHERE NOT infused) AS not_infused,
                        count(*) FILTER (WHERE death_date IS NOT NULL) AS deaths,
                        count(*) FILTER (WHERE hsct_date IS NOT NULL) AS hsct FROM core.participants""").df()
    freshness = con.sql("""SELECT source, max(export_time) AS last_export, max(received_at) AS last_received,
                           count(*) AS files FROM ops.files WHERE source IS NOT NULL GROUP BY source ORDER BY source""").df()
    endpoints = con.sql("""SELECT analysis, round(estimate, 3) AS estimate, round(ci_lower, 3) AS ci_lower,
                           round(ci_upper, 3) AS ci_upper, n, n_events, n_at_risk, null_reason FROM mart.endpoints""").df()
    km_svg, at_risk = km_plot(con)
    tally = con.sql("""SELECT toxicity, scale, n_participants AS N, n_any, pct_any, n_grade_ge3, pct_grade_ge3,
                       n_grade_1 AS g1, n_grade_2 AS g2, n_grade_3 AS g3, n_grade_4 AS g4, n_grade_5 AS g5
                       FROM mart.toxicity_tally WHERE "window" = 'overall' ORDER BY scale, n_any DESC, toxicity""").df()
    kinetics = con.sql("""SELECT assay, target, unit, n, n_expanded, round(cmax_geo_mean, 2) AS cmax_geo_mean,
                          round(cmax_geo_cv_pct, 1) AS cmax_cv_pct, round(auc_0_28_geo_mean, 1) AS auc_0_28_geo_mean,
                          tmax_median, tlast_median FROM mart.car_kinetics_summary ORDER BY target DESC, assay""").df()
    flags = []
    if table_exists(con, "mart", "eligibility"):
        flags.append("<h3>Eligibility criteria not met or not assessable</h3>" + _table(con.sql(
            "SELECT participant_id, criterion, result, value, \"limit\", detail FROM mart.eligibility "
            "WHERE result <> 'MET' ORDER BY participant_id, criterion").df(), "Every criterion met.",
            "mart.eligibility"))
    if table_exists(con, "mart", "ld_dosing"):
        flags.append("<h3>Lymphodepletion doses flagged</h3>" + _table(con.sql(
            "SELECT participant_id, agent, study_day, dose_mg, round(expected_mg, 1) AS expected_mg, "
            "round(deviation_pct, 1) AS deviation_pct, flag FROM mart.ld_dosing WHERE flag <> 'OK' "
            "ORDER BY participant_id, agent, study_day").df(),
            "Every dose within tolerance, on its day.", "mart.ld_dosing"))
    files = con.sql("SELECT status, count(*) AS files, sum(rows_read) AS rows_read, sum(rows_loaded) AS rows_loaded, "
                    "sum(rows_rejected) AS rows_rejected FROM ops.files GROUP BY status ORDER BY status").df()
    rejected = con.sql("SELECT severity, check_name, count(*) AS rows FROM ops.rejected_rows "
                       "GROUP BY ALL ORDER BY rows DESC").df()
    last = "no completed run" if run.empty else (f"run {run.run_id[0]} finished {run.finished_at[0]:%Y-%m-%d %H:%M}, "
                                                 f"code {run.code_version[0]}, protocol {run.config_hash[0][:12]}")
    sections = [
        ("status", "Enrollment and infusion", _table(status)),
        ("freshness", "Data freshness per source", _table(freshness)),
        ("swimmer", "Course of every infused participant", swimmer_plot(con)),
        ("endpoint", "Primary endpoint: 1-year relapse-free survival",
         _table(endpoints) + km_svg + "<h3>Numbers at risk (primary analysis)</h3>" + _table(pd.DataFrame(
             [at_risk["at risk"].tolist()], columns=[f"day {d}" for d in at_risk.day]))),
        ("expansion", "CD22 CAR T-cell expansion and persistence", expansion_plot(con) + _table(kinetics)),
        ("toxicity", "Toxicity: worst grade per participant (overall)", grade_distribution_plot(con) + _table(tally)),
        ("hematotox", "Hematotoxicity: ICAHT (EHA/EBMT) and CAR-HEMATOTOX",
         (blood_count_plot(con) + "<p class='meta'>ICAHT grades depth and duration (days below a threshold, daily values carried "
          "forward as mart.icaht.method says); the CTCAE cytopenias above grade single results.</p>"
          + _table(hematotoxicity_table(con), "No infused participant.", "mart.icaht, mart.hematotox"))
         if table_exists(con, "mart", "icaht") else "<p>Not derived in this warehouse.</p>"),
        ("flags", "Eligibility and dosing checks", "".join(flags) or "<p>Not derived in this warehouse.</p>"),
        ("quality", "Data quality", _table(files) + "<h3>Rows not loaded, by check</h3>" + _table(rejected)
         + f"<p><a href='{html.escape(data_docs_link)}'>Data Docs: the validation of every file</a></p>"),
    ]
    nav = " · ".join(f"<a href='#{key}'>{html.escape(title.split(':')[0])}</a>" for key, title, _ in sections)
    body = "".join(f"<section id='{key}'><h2>{html.escape(title)}</h2>{content}</section>"
                   for key, title, content in sections)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>NCT07328503 trial summary</title>"
            f"<style>{STYLE}</style></head><body><h1>NCT07328503 · CD22 CAR T-cells after CD19 CAR · trial summary</h1>"
            f"<p class='meta'>{html.escape(last)} · page written {datetime.now():%Y-%m-%d %H:%M}"
            f"{' · ' + html.escape(submission) if submission else ''}</p><nav>{nav}</nav>"
            f"{body}</body></html>\n")


STYLE = """body{font:14px system-ui,sans-serif;margin:2em auto;max-width:1150px;color:#222}
h1{font-size:22px}h2{border-bottom:2px solid #1565c0;padding-bottom:4px;margin-top:2em}.meta{color:#666}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}
th{background:#eef3f8}svg{max-width:100%;height:auto}nav a{margin-right:.3em}"""


def write_report(warehouse: Path, out_dir: Path) -> Path:
    """Render the report from a (published, read-only) warehouse into out_dir/trial_report.html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        page = render(con, submission=submission_note(package_folder(warehouse)))
    return write_whole(out_dir / REPORT_NAME, page.encode("utf-8"))

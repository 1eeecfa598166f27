"""The monitors' trial summary: one static HTML page per night, rendered from the published warehouse.

Everything it shows comes from tables (design.md). It works offline: the plots are inline SVG (matplotlib),
the style is inline, there is no script and no external request. No date of birth, name or other identifying
field is read; participants appear by their pseudonymous trial ID and time by study day. Each participant ID
(swimmer lanes, flag tables) links to the participant's profile page (car22.reports.profiles), written with it.
"""
from __future__ import annotations

import hashlib
import html
import io
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import duckdb
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator, MultipleLocator, PercentFormatter  # noqa: E402

from car22.night.storage import write_whole  # noqa: E402
from car22.reports import profiles  # noqa: E402
from car22.reports.clinical_events import format_tonight, new_tonight  # noqa: E402
from car22.reports.present import Html, coded, page, percent, prose, table, unit, words  # noqa: E402
from car22.sql import table_exists  # noqa: E402
from car22.submission.manifest import package_folder, submission_note  # noqa: E402

REPORT_NAME = "trial_report.html"
# The plots' SVG by the digest of their data, beside the page: a plot whose data did not change is not drawn again.
DRAWN_NAME = ".trial_report.drawn.json"
Drawn = dict[str, tuple[str, str]]  # plot name: (digest of its data and of DRAWING_CODE, SVG)
# A plot is its data drawn by this code (the swimmer lanes link with profiles.link) and matplotlib: a new
# release of either draws every plot again.
DRAWING_CODE = hashlib.md5(Path(__file__).read_bytes() + Path(profiles.__file__).read_bytes()
                           + matplotlib.__version__.encode()).hexdigest()
# The page stays readable and quick at consortium scale (README, the `report` command): the swimmer plot and
# the individual expansion curves show the most recently infused participants, a flag table its first rows;
# cohort figures (medians, Kaplan-Meier, tallies) always use everyone, and the full lists are in mart.
SWIMMER_LANES = 60
EXPANSION_CURVES = 200
TABLE_ROWS = 200
RISK_DAYS = (0, 90, 180, 270, 365, 545, 730)
# Marrow MRD results on the swimmer lanes: colour and marker shape both differ, so that no two can be
# confused (also in greyscale); hollow markers for results that decide nothing.
STATUS_STYLE = {"NEGATIVE": ("#1b9e77", "o", True), "POSITIVE": ("#d7191c", "o", True),
                "POSITIVE_LOW": ("#e66101", "^", True), "POSITIVE_NOT_QUANTIFIABLE": ("#8c510a", "v", True),
                "NEGATIVE_INSUFFICIENT_SENSITIVITY": ("#5e3c99", "o", False),
                "NOT_EVALUABLE": ("#636363", "s", False)}


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _drawn(drawn: Drawn | None, name: str, draw: Callable[..., str], *data) -> str:
    """draw(*data), or the SVG drawn last time from the same data (`drawn`, kept beside the page): matplotlib
    takes seconds, and most nights change the data of no plot or of one."""
    key = hashlib.md5(DRAWING_CODE.encode())
    for item in data:
        if isinstance(item, pd.DataFrame):
            key.update(repr((list(item.columns), list(map(str, item.dtypes)))).encode())
            key.update(pd.util.hash_pandas_object(item, index=True).to_numpy().tobytes())
        else:
            key.update(repr(item).encode())
    if drawn is not None and drawn.get(name, ("",))[0] == key.hexdigest():
        return drawn[name][1]
    with matplotlib.rc_context({"svg.hashsalt": f"car22 {name}"}):  # the SVG's ids: the same for the same plot
        svg = draw(*data)
    if drawn is not None:
        drawn[name] = (key.hexdigest(), svg)
    return svg


def _day_ticks(axis, last_day: float) -> None:
    """Study-day ticks at steps people count in (a week, 4 weeks, a month, a quarter, half a year, a year)."""
    step = next((s for s in (7, 14, 28, 30, 60, 90, 180, 365) if last_day / s <= 10), 730)
    axis.xaxis.set_major_locator(MultipleLocator(step))


def _empty(text: str) -> str:
    """What a plot says when there is nothing to draw yet (no axes around nothing)."""
    return f"<p class='empty'>{html.escape(text)}</p>"


def _table(frame: pd.DataFrame, empty: str = "None.", source: str | None = None) -> str:
    return table(frame, empty, TABLE_ROWS, source)


def _participant(pid: str) -> Html:
    """A participant ID linking to their profile page."""
    return Html(f"<a href='{profiles.link(pid)}'>{html.escape(pid)}</a>")


def _latest_infused(con: duckdb.DuckDBPyConnection, limit: int) -> tuple[list[str], int]:
    """The `limit` most recently infused participants, and how many were infused in all."""
    infused = [pid for pid, in con.execute("SELECT participant_id FROM core.participants WHERE infused "
                                           "ORDER BY infusion_date DESC, participant_id DESC").fetchall()]
    return infused[:limit], len(infused)


def swimmer_plot(con: duckdb.DuckDBPyConnection, drawn: Drawn | None = None) -> str:
    """One lane per infused participant from infusion to last follow-up, with marrow MRD results, relapse,
    HSCT and death. Each lane and its label link to the participant's profile page (SVG links); the legend
    stands beside the lanes, never over them."""
    shown, infused = _latest_infused(con, SWIMMER_LANES)
    if not shown:
        return _empty("No participant infused yet: a lane appears for each participant from the infusion on.")
    people = con.execute("""
        SELECT participant_id, greatest(coalesce(last_contact_date, infusion_date), coalesce(death_date, infusion_date))
               - infusion_date AS last_day, hsct_date - infusion_date AS hsct_day, death_date - infusion_date AS death_day
        FROM core.participants WHERE participant_id IN (SELECT unnest(?)) ORDER BY participant_id DESC""",
                         [shown]).df()
    marrow = con.sql("SELECT participant_id, study_day, mrd_status FROM mart.mrd_assessments "
                     "WHERE specimen = 'BM' AND study_day >= 0 ORDER BY ALL").df()
    relapses = con.sql("SELECT participant_id, time_days FROM mart.rfs WHERE analysis = 'sensitivity' AND event "
                       "AND event_type <> 'DEATH' ORDER BY ALL").df()
    note = (f"<p class='meta'>The {len(shown)} most recently infused of {infused:,} participants "
            f"(all of them: core.participants, mart.mrd_assessments, mart.rfs).</p>" if infused > len(shown) else "")
    return note + _drawn(drawn, "swimmer", _draw_swimmer, people, marrow, relapses)


def _draw_swimmer(people: pd.DataFrame, marrow: pd.DataFrame, relapses: pd.DataFrame) -> str:
    figure, axis = plt.subplots(figsize=(9, 0.32 * max(len(people), 4) + 1.2))
    lanes = {pid: i for i, pid in enumerate(people.participant_id)}
    bars = axis.barh(list(lanes.values()), people.last_day.fillna(0), color="#d9d9d9", height=0.6,
                     label="follow-up (bar ends at the last contact)")
    for bar, pid in zip(bars, lanes):
        bar.set_url(profiles.link(pid))
    for status, (colour, marker, filled) in STATUS_STYLE.items():
        rows = marrow[(marrow.mrd_status == status) & marrow.participant_id.isin(lanes)]
        if not rows.empty:
            axis.scatter(rows.study_day, rows.participant_id.map(lanes), s=26, zorder=3, marker=marker,
                         color=colour if filled else "white", edgecolors=colour, linewidths=1.3,
                         label=f"marrow MRD {words(status)}")
    markers = [(relapses.time_days, relapses.participant_id, "X", "#67001f", "relapse"),
               (people.hsct_day, people.participant_id, "D", "#2166ac", "HSCT"),
               (people.death_day, people.participant_id, "s", "black", "death")]
    for days, pids, marker, colour, label in markers:
        keep = days.notna() & pids.isin(lanes)
        if keep.any():
            axis.scatter(days[keep], pids[keep].map(lanes), marker=marker, color=colour, s=60, zorder=4, label=label)
    axis.set_yticks(list(lanes.values()), list(lanes))
    for label, pid in zip(axis.get_yticklabels(), lanes):
        label.set_url(profiles.link(pid))
    axis.set_ylim(-0.7, len(lanes) - 0.3)
    axis.set_xlim(left=0)
    _day_ticks(axis, max(people.last_day.max(), 1))
    axis.set_xlabel("study day (days since CD22 CAR infusion)")
    axis.set_ylabel("participant (click for the profile)")
    if axis.get_legend_handles_labels()[1]:  # nobody infused yet: no legend (matplotlib warns on an empty one)
        axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    axis.grid(axis="x", alpha=0.3)
    return _svg(figure)


def _limit_line(rows: pd.DataFrame, assay: str) -> tuple[float, str]:
    """Where results below the limit are drawn, and what the line is. qPCR: the LLOQ the lab reported (the
    median over the samples when it varies); flow reports no limit: a "not detected" line a decade below
    the lowest level measured. Never a value: points on it are marked, and the line is labelled."""
    lloq = rows.lloq.dropna()
    if assay == "qpcr" and not lloq.empty:
        line = float(lloq.median())
        varies = " (median of the samples)" if lloq.nunique() > 1 else ""
        return line, f"LLOQ {line:g} copies/µg{varies}: BLQ results drawn on it"
    positive = rows.value[rows.value > 0]
    line = 10.0 ** (np.floor(np.log10(positive.min())) - 1) if not positive.empty else 1.0
    what = "below the limit" if assay == "qpcr" else "not detected (0 cells/µL)"
    return line, f"{what}: drawn on this line, not a level"


def expansion_plot(con: duckdb.DuckDBPyConnection, drawn: Drawn | None = None) -> str:
    """CD22 CAR expansion per participant on a log scale, cells/µL (flow) and copies/µg (qPCR), with the
    cohort median at each scheduled day. Results below the limit are marked points on a drawn limit line,
    and the curves break there: a plateau on the line would look like persistence (issue 18)."""
    levels = con.sql("""SELECT l.participant_id, l.study_day, l.assay, l.value, l.below_lloq OR l.value <= 0 AS below,
                               q.lloq_copies_per_ug AS lloq
                        FROM mart.car_levels l
                        LEFT JOIN core.qpcr_results q ON l.assay = 'qpcr' AND q.sample_id = l.sample_id
                                                       AND q.target = l.target
                        WHERE l.target = 'CD22CAR' AND l.assay IN ('flow_abs', 'qpcr') AND l.study_day >= 0
                        ORDER BY l.participant_id, l.study_day""").df()
    if levels.empty:
        return _empty("No CD22 CAR level measured after infusion yet.")
    shown, infused = _latest_infused(con, EXPANSION_CURVES)
    note = (f"<p class='meta'>Grey lines: the {len(shown)} most recently infused of {infused:,} participants; "
            f"the median is over everyone.</p>" if infused > len(shown) else "")
    return note + _drawn(drawn, "expansion", _draw_expansion, levels, shown)


def _draw_expansion(levels: pd.DataFrame, shown: list[str]) -> str:
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, (assay, title, measured) in zip(axes, (("flow_abs", "Flow cytometry", "CAR22+ T cells per µL blood"),
                                                 ("qpcr", "qPCR", "CD22 CAR transgene copies per µg gDNA"))):
        rows = levels[levels.assay == assay]
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("study day (days since infusion)")
        axis.set_ylabel(measured)
        if rows.empty:
            axis.text(0.5, 0.5, "no samples yet", ha="center", va="center", transform=axis.transAxes)
            axis.set_xticks([])
            axis.set_yticks([])
            continue
        line, line_label = _limit_line(rows, assay)
        for _, own in rows[rows.participant_id.isin(shown)].groupby("participant_id"):
            axis.plot(own.study_day, own.value.where(~own.below), color="#90a4ae", linewidth=0.8, alpha=0.8,
                      marker=".", markersize=3)
        below = rows[rows.below & rows.participant_id.isin(shown)]
        axis.axhline(line, color="#555555", linestyle=":", linewidth=1.2, label=line_label)
        axis.scatter(below.study_day, np.full(len(below), line), marker="v", s=18, facecolors="white",
                     edgecolors="#555555", linewidths=0.8, zorder=3, label=f"below the limit ({len(below):,} samples)")
        # the median counts results below the limit as 0 (derivations §3); a median of 0 is marked on the line
        median = rows.assign(level=rows.value.where(~rows.below, 0)).groupby("study_day")["level"].median()
        axis.plot(median.index, median.where(median > 0), color="#c62828", linewidth=2.5, label="cohort median")
        low = median[median <= 0]
        if not low.empty:
            axis.scatter(low.index, np.full(len(low), line), marker="v", s=50, color="#c62828", zorder=4,
                         label="cohort median below the limit")
        axis.set_yscale("log")
        axis.set_ylim(bottom=line / 3)
        _day_ticks(axis, max(rows.study_day.max(), 1))
        axis.legend(fontsize=7, loc="upper right")
        axis.grid(alpha=0.3)
    return _svg(figure)


def km_plot(con: duckdb.DuckDBPyConnection, drawn: Drawn | None = None) -> tuple[str, pd.DataFrame]:
    """Kaplan–Meier RFS (primary analysis) with its 95 % band, censoring ticks and numbers at risk."""
    curve = con.sql("SELECT * FROM mart.rfs_curve WHERE analysis = 'primary' ORDER BY time_days").df()
    rfs = con.sql("SELECT time_days, event FROM mart.rfs WHERE analysis = 'primary'").df()
    at_risk = pd.DataFrame({"day": list(RISK_DAYS),
                            "at risk": [int((rfs.time_days >= d).sum()) for d in RISK_DAYS]})
    if curve.empty or rfs.empty:
        return _empty("No participant infused yet: the curve starts with the first infusion."), at_risk
    return _drawn(drawn, "km", _draw_km, curve), at_risk


def _draw_km(curve: pd.DataFrame) -> str:
    figure, axis = plt.subplots(figsize=(9, 4.5))
    axis.step(curve.time_days, curve.survival, where="post", color="#1565c0", linewidth=2, label="RFS")
    if curve.ci_lower.notna().any():
        axis.fill_between(curve.time_days, curve.ci_lower.fillna(curve.survival),
                          curve.ci_upper.fillna(curve.survival), step="post", color="#1565c0", alpha=0.15,
                          label="95 % CI (log-log)")
    censored = curve[curve.n_censored > 0]
    if not censored.empty:
        axis.plot(censored.time_days, censored.survival, "|", color="black", markersize=10, label="censored")
    axis.set_ylim(0, 1.05)
    axis.set_xlim(left=0)
    axis.yaxis.set_major_formatter(PercentFormatter(xmax=1))
    _day_ticks(axis, max(curve.time_days.max(), 365))
    axis.axvline(365, color="#9e9e9e", linestyle="--", linewidth=1, label="1 year (day 365)")
    axis.set_xlabel("days since CD22 CAR infusion")
    axis.set_ylabel("relapse-free survival (% of participants)")
    axis.legend(loc="lower left", fontsize=8)
    axis.grid(alpha=0.3)
    return _svg(figure)


def grade_distribution_plot(con: duckdb.DuckDBPyConnection, drawn: Drawn | None = None) -> str:
    counts = con.sql("""SELECT 'CRS' AS scale, max_grade, count(*) AS n FROM mart.crs_summary GROUP BY ALL
                        UNION ALL SELECT 'ICANS', max_grade, count(*) FROM mart.icans_summary GROUP BY ALL
                        ORDER BY ALL""").df()
    if counts.empty:
        return _empty("No CRS or ICANS assessment of an infused participant yet.")
    return _drawn(drawn, "grades", _draw_grades, counts)


def _draw_grades(counts: pd.DataFrame) -> str:
    figure, axis = plt.subplots(figsize=(7, 3))
    width = 0.38
    for offset, scale, colour in ((-width / 2, "CRS", "#ef6c00"), (width / 2, "ICANS", "#6a1b9a")):
        rows = counts[counts.scale == scale].set_index("max_grade").n.reindex(range(6), fill_value=0)
        axis.bar([g + offset for g in rows.index], rows.values, width=width, color=colour, label=scale)
    axis.set_xticks(range(6), [f"grade {g}" for g in range(6)])
    axis.set_xlabel("worst grade per participant (ASTCT 2019)")
    axis.set_ylabel("participants")
    axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    axis.legend(fontsize=8)
    axis.grid(axis="y", alpha=0.3)
    return _svg(figure)


GRADE_COLOURS = ("#2e7d32", "#9e9d24", "#ef6c00", "#c62828", "#6a1b9a")
# panel: test, scale, axis label, the thresholds of derivations §4.5 (primary, severe) and their comparison
COURSE_PANELS = (("ANC", "N-ICAHT", "ANC (10^9/L)", (0.5, 0.1), "≤"),
                 ("PLT", "T-ICAHT", "platelets (10^9/L)", (50, 20), "<"))
ICAHT_END_WORDS = {"RELAPSE_MORPHOLOGIC": "morphologic relapse", "RELAPSE_EXTRAMEDULLARY": "extramedullary relapse",
                   "RELAPSE_MRD": "MRD relapse", "HSCT": "HSCT", "NEXT_THERAPY": "next therapy", "DEATH": "death"}


def blood_count_plot(con: duckdb.DuckDBPyConnection, drawn: Drawn | None = None) -> str:
    """ANC and platelet courses over days 0-30 (the early ICAHT phase) on a log scale, each participant coloured
    by their early grade, with the ICAHT thresholds drawn; below-LLOQ results are marked at the axis floor,
    never drawn as values."""
    shown, infused = _latest_infused(con, SWIMMER_LANES)
    labs = con.execute("""
        SELECT participant_id, test_code, study_day, value,
               coalesce(below_lloq, FALSE) OR result_kind = 'BELOW_LLOQ' AS blq
        FROM core.lab_results
        WHERE test_code IN ('ANC', 'PLT') AND study_day BETWEEN 0 AND 30 AND participant_id IN (SELECT unnest(?))
          AND (value IS NOT NULL OR coalesce(below_lloq, FALSE) OR result_kind = 'BELOW_LLOQ') ORDER BY ALL""",
                       [shown]).df()
    grades = con.sql("SELECT participant_id, scale, grade FROM mart.icaht WHERE phase = 'early' ORDER BY ALL").df()
    note = (f"<p class='meta'>The {len(shown)} most recently infused of {infused:,} participants "
            f"(all of them: core.lab_results, mart.icaht).</p>" if infused > len(shown) else "")
    return note + _drawn(drawn, "blood_counts", _draw_blood_counts, labs, grades)


def _draw_blood_counts(labs: pd.DataFrame, grades: pd.DataFrame) -> str:
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
    return _svg(figure)


def hematotoxicity_table(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per infused participant: each ICAHT grade and the CAR-HEMATOTOX risk in words."""
    icaht = con.sql("SELECT participant_id, scale || ' ' || phase AS toxicity, grade, window_end_day, "
                    "window_end_reason, null_reason FROM mart.icaht").df()
    ended = icaht.window_end_reason.map(ICAHT_END_WORDS)
    # As text from the start: a night where no window has a result has no grade at all (an all-NULL column).
    words = (icaht.grade.map(lambda g: "none" if g == 0 else f"grade {g:.0f}", na_action="ignore").astype("string")
             + (" (window ended day " + icaht.window_end_day.astype("string") + " by " + ended + ")").fillna(""))
    icaht["words"] = words.fillna("not graded: " + icaht.null_reason.fillna(""))
    table = icaht.pivot(index="participant_id", columns="toxicity", values="words")
    table = table.reindex(columns=["N-ICAHT early", "N-ICAHT late", "T-ICAHT early", "T-ICAHT late"])
    if table_exists(con, "mart", "hematotox"):
        score = con.sql("SELECT participant_id, score, risk, null_reason FROM mart.hematotox").df()
        score["CAR-HEMATOTOX"] = (score.risk.astype("string").str.lower() + " risk (score " + score.score.astype("string") + ")"
                                  ).fillna("not scored: " + score.null_reason.fillna(""))
        table = table.join(score.set_index("participant_id")["CAR-HEMATOTOX"])
    return table.reset_index().rename(columns={"participant_id": "participant"}).sort_values("participant")


def _words_in(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """The given columns' codes as words, each code in its tooltip."""
    return frame.assign(**{c: frame[c].map(coded) for c in columns})


def _tonight(con: duckdb.DuckDBPyConnection, run_id: int | None) -> str:
    """The last run's new clinical facts, ranked (car22.reports.clinical_events), and the table the
    expected-cytopenia count points to (#cytopenias)."""
    if run_id is None or not table_exists(con, "ops", "clinical_events"):
        return _empty("No completed run has recorded clinical events yet.")
    tonight = new_tonight(con, run_id)
    lines = format_tonight(tonight, table="the table below")
    listed = ("<ul>" + "".join(f"<li>{prose(line)}</li>" for line in lines) + "</ul>" if lines
              else _empty(f"Nothing new in run {run_id}."))
    cytopenias = pd.DataFrame(tonight.cytopenias, columns=["participant", "expected cytopenia (CTCAE, from labs)"])
    cytopenias["participant"] = cytopenias["participant"].map(_participant)
    return (listed + "<h3 id='cytopenias'>Expected cytopenias after lymphodepletion, new in this run</h3>"
            + _table(cytopenias, "None.", "ops.clinical_events"))


def render(con: duckdb.DuckDBPyConnection, data_docs_link: str = "data_docs/index.html",
           submission: str = "", drawn: Drawn | None = None) -> str:
    """The whole page as HTML text; `drawn`: the plots drawn last time, updated with this page's (_drawn)."""
    run = con.sql("SELECT run_id, finished_at, status, config_hash, code_version FROM ops.runs "
                  "WHERE status = 'completed' ORDER BY run_id DESC LIMIT 1").df()
    status = con.sql("""SELECT count(*) AS enrolled, count(*) FILTER (WHERE infused) AS infused,
                        count(*) FILTER (WHERE NOT infused) AS "not infused",
                        count(*) FILTER (WHERE death_date IS NOT NULL) AS deaths,
                        count(*) FILTER (WHERE hsct_date IS NOT NULL) AS "HSCT" FROM core.participants""").df()
    freshness = _words_in(con.sql("""
        SELECT source, max(export_time) AS "last export", max(received_at) AS "last received", count(*) AS files
        FROM ops.files WHERE source IS NOT NULL GROUP BY source ORDER BY source""").df(), "source")
    endpoints = con.sql("SELECT analysis, estimate, ci_lower, ci_upper, n, n_events, n_at_risk, null_reason "
                        "FROM mart.endpoints").df()
    endpoints = pd.DataFrame({
        "analysis": endpoints.analysis.map(coded),
        "1-year RFS": endpoints.estimate.map(lambda v: percent(100 * v, 1)),
        "95 % CI": [f"{percent(100 * lo, 1)} to {percent(100 * hi, 1)}" if pd.notna(lo) and pd.notna(hi) else ""
                    for lo, hi in zip(endpoints.ci_lower, endpoints.ci_upper)],
        "participants": endpoints.n, "events": endpoints.n_events, "at risk at day 365": endpoints.n_at_risk,
        "why no estimate": endpoints.null_reason.map(coded)})
    km_svg, at_risk = km_plot(con, drawn)
    tally = con.sql("""SELECT toxicity, scale, n_participants, n_any, pct_any, n_grade_ge3, pct_grade_ge3,
                       n_grade_1, n_grade_2, n_grade_3, n_grade_4, n_grade_5
                       FROM mart.toxicity_tally WHERE "window" = 'overall' ORDER BY scale, n_any DESC, toxicity""").df()
    tally = pd.DataFrame({
        "toxicity": tally.toxicity, "scale": tally.scale, "infused participants": tally.n_participants,
        "any grade": [f"{n:,} ({percent(p)})" for n, p in zip(tally.n_any, tally.pct_any)],
        "grade ≥ 3": [f"{n:,} ({percent(p)})" for n, p in zip(tally.n_grade_ge3, tally.pct_grade_ge3)],
        **{f"grade {g}": tally[f"n_grade_{g}"] for g in range(1, 6)}})
    kinetics = con.sql("""SELECT target, assay, unit, n, n_expanded, cmax_geo_mean, cmax_geo_cv_pct, auc_0_28_geo_mean,
                          tmax_median, tlast_median FROM mart.car_kinetics_summary ORDER BY target DESC, assay""").df()
    kinetics = pd.DataFrame({
        "product": kinetics.target.map(coded), "measure": kinetics.assay.map(coded), "unit": kinetics.unit.map(unit),
        "participants with samples": kinetics.n,
        # n_expanded is cmax > 0 after day 0 (derivations §3): for the prior CD19 product that is persistence
        "detected after the CD22 infusion": kinetics.n_expanded,
        "peak, geometric mean": kinetics.cmax_geo_mean,
        "peak, geometric CV": kinetics.cmax_geo_cv_pct.map(percent),
        "AUC day 0-28, geometric mean (unit × day)": kinetics.auc_0_28_geo_mean,
        "day of peak, median": kinetics.tmax_median, "last day detected, median": kinetics.tlast_median})
    flags = []
    if table_exists(con, "mart", "eligibility"):
        eligibility = con.sql("SELECT participant_id AS participant, criterion, result, value, \"limit\", unit, "
                              "detail FROM mart.eligibility WHERE result <> 'MET' "
                              "ORDER BY participant_id, criterion_order").df()
        eligibility["participant"] = eligibility["participant"].map(_participant)
        flags.append("<h3>Eligibility criteria not met or not assessable</h3>" + _table(
            _words_in(eligibility, "criterion", "result"), "Every criterion met.", "mart.eligibility"))
    if table_exists(con, "mart", "ld_dosing"):
        dosing = con.sql("SELECT participant_id AS participant, agent, study_day AS \"study day\", "
                         "dose_mg AS \"dose (mg)\", expected_mg AS \"expected (mg)\", deviation_pct, flag "
                         "FROM mart.ld_dosing WHERE flag <> 'OK' ORDER BY participant_id, agent, study_day").df()
        dosing["participant"] = dosing["participant"].map(_participant)
        dosing["deviation_pct"] = dosing["deviation_pct"].map(lambda v: percent(v, 1))
        flags.append("<h3>Lymphodepletion doses flagged</h3>" + _table(
            _words_in(dosing.rename(columns={"deviation_pct": "deviation"}), "flag"),
            "Every dose within tolerance, on its day.", "mart.ld_dosing"))
    files = _words_in(con.sql("""SELECT status, count(*) AS files, CAST(sum(rows_read) AS BIGINT) AS "rows read",
                                 CAST(sum(rows_loaded) AS BIGINT) AS "rows loaded",
                                 CAST(sum(rows_rejected) AS BIGINT) AS "rows not loaded"
                                 FROM ops.files GROUP BY status ORDER BY status""").df(), "status")
    quarantined = con.sql("""SELECT file_name AS file, received_at AS received, reason FROM ops.files
                             WHERE status = 'quarantined' ORDER BY received_at DESC, file_name""").df()
    rejected = _words_in(con.sql("SELECT severity AS outcome, check_name AS \"check\", count(*) AS rows "
                                 "FROM ops.rejected_rows GROUP BY ALL ORDER BY rows DESC").df(), "outcome", "check")
    run_id = None if run.empty else int(run.run_id[0])
    last = "no completed run" if run.empty else (f"run {run_id} finished {run.finished_at[0]:%Y-%m-%d %H:%M}, "
                                                 f"code {run.code_version[0]}, protocol {run.config_hash[0][:12]}")
    sections = [
        ("status", "Enrollment and infusion", _table(status)),
        ("freshness", "Data freshness per source", _table(freshness, "No file loaded yet.")),
        ("tonight", "What changed in the last run", _tonight(con, run_id)),
        ("swimmer", "Course of every infused participant", swimmer_plot(con, drawn)),
        ("endpoint", "Primary endpoint: 1-year relapse-free survival",
         _table(endpoints) + km_svg + "<h3>Numbers at risk (primary analysis)</h3>" + _table(pd.DataFrame(
             [at_risk["at risk"].tolist()], columns=[f"day {d}" for d in at_risk.day]))),
        ("expansion", "CD22 CAR T-cell expansion and persistence", expansion_plot(con, drawn) + _table(kinetics)),
        ("toxicity", "Toxicity: worst grade per participant (overall)", grade_distribution_plot(con, drawn) + _table(tally)),
        ("hematotox", "Hematotoxicity: ICAHT (EHA/EBMT) and CAR-HEMATOTOX",
         (blood_count_plot(con, drawn) + "<p class='meta'>ICAHT grades depth and duration (days below a threshold, daily values carried "
          "forward as mart.icaht.method says); the CTCAE cytopenias above grade single results.</p>"
          + _table(hematotoxicity_table(con), "No infused participant.", "mart.icaht, mart.hematotox"))
         if table_exists(con, "mart", "icaht") else "<p>Not derived in this warehouse.</p>"),
        ("flags", "Eligibility and dosing checks", "".join(flags) or "<p>Not derived in this warehouse.</p>"),
        ("quality", "Data quality", _table(files, "No file received yet.")
         + "<h3>Quarantined files (not read: fix and drop again)</h3>" + _table(quarantined, "None.", "ops.files")
         + "<h3>Rows not loaded, by check</h3>" + _table(rejected)
         + f"<p><a href='{html.escape(data_docs_link)}'>Data Docs: the validation of every file</a></p>"),
    ]
    nav = " ".join(f"<a href='#{key}'>{html.escape(title.split(':')[0])}</a>" for key, title, _ in sections)
    body = "".join(f"<section id='{key}'><h2>{html.escape(title)}</h2>{content}</section>"
                   for key, title, content in sections)
    return page("NCT07328503 trial summary",
                f"<h1>NCT07328503 · CD22 CAR T-cells after CD19 CAR · trial summary</h1>"
                f"<p class='meta'>{html.escape(last)} · page written {datetime.now():%Y-%m-%d %H:%M}"
                f"{' · ' + html.escape(submission) if submission else ''}</p>"
                f"<nav>{nav}</nav>{body}")


def write_report(warehouse: Path, out_dir: Path, *, data_changed: bool = True) -> Path:
    """Render the report and every participant's profile page (car22.reports.profiles) from a (published,
    read-only) warehouse into out_dir/trial_report.html and out_dir/profiles/. After a night that changed no
    data (`data_changed` False) and with the pages in place, a profile changes only by the age of an open
    data issue: only those pages are rewritten. A plot whose data did not change is taken as drawn last time
    (DRAWN_NAME), so the page is the one a full render gives."""
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn_file = out_dir / DRAWN_NAME
    try:
        drawn: Drawn = json.loads(drawn_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        drawn = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        text = render(con, submission=submission_note(package_folder(warehouse)), drawn=drawn)
        if data_changed or not (out_dir / profiles.FOLDER).is_dir():
            profiles.write_profiles(con, out_dir)
        else:
            profiles.refresh_open_issue_ages(con, out_dir)
    write_whole(drawn_file, json.dumps(drawn, sort_keys=True).encode("utf-8"))
    return write_whole(out_dir / REPORT_NAME, text.encode("utf-8"))

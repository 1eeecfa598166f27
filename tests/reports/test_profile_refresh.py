"""A night writes again only what can have changed (car22.reports.trial_report.write_report): without a file,
the profiles of the participants with an open data issue, whose age moved on; with data, the profiles whose
rows changed and the plots whose data changed. The pages are those of a full write."""
import json
import re
import shutil

import duckdb

from car22.reports import profiles, trial_report


def test_a_night_without_data_rewrites_only_the_profiles_with_an_open_issue(demo_night, tmp_path):
    paths, _, _ = demo_night
    full = tmp_path / "full"
    trial_report.write_report(paths.warehouse, full)
    refreshed = tmp_path / "refreshed"
    shutil.copytree(full, refreshed)
    for page in [*(refreshed / profiles.FOLDER).glob("*.html"), refreshed / trial_report.REPORT_NAME]:
        page.write_text("stale")
    trial_report.write_report(paths.warehouse, refreshed, data_changed=False)
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        with_issue = {pid for pid, in con.execute(
            "SELECT DISTINCT participant_id FROM ops.data_issues WHERE status = 'OPEN' AND participant_id IN "
            "(SELECT participant_id FROM core.participants)").fetchall()}
    assert with_issue, "the demo plants an open issue of an enrolled participant"
    rewritten = {page.stem for page in (refreshed / profiles.FOLDER).glob("*.html") if page.read_text() != "stale"}
    assert rewritten == with_issue
    for pid in with_issue:
        name = profiles.link(pid)
        assert (refreshed / name).read_text() == (full / name).read_text()
    assert (refreshed / trial_report.REPORT_NAME).read_text() != "stale"  # the summary page is always written


def test_without_pages_in_place_every_profile_is_written(demo_night, tmp_path):
    paths, _, _ = demo_night
    trial_report.write_report(paths.warehouse, tmp_path, data_changed=False)
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        enrolled = {pid for pid, in con.execute("SELECT participant_id FROM core.participants").fetchall()}
    assert {page.stem for page in (tmp_path / profiles.FOLDER).glob("*.html")} == enrolled


def _pages(folder):
    return {page.name: page.read_bytes() for page in folder.iterdir()}


def test_a_night_with_data_rewrites_only_the_changed_profiles_and_equals_a_full_write(demo_night, tmp_path):
    """Changed rows, a participant no longer enrolled and a new one: the pages equal a full write of the new
    warehouse byte for byte, and the pages of everyone else are left as they were (same file, same time)."""
    paths, _, _ = demo_night
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(paths.warehouse, warehouse)
    reports = tmp_path / "reports"
    trial_report.write_report(warehouse, reports)
    folder = reports / profiles.FOLDER
    before = {page.name: page.stat() for page in folder.iterdir()}
    with duckdb.connect(str(warehouse)) as con:
        first, second, gone, template = [pid for pid, in con.execute(
            "SELECT participant_id FROM core.participants ORDER BY participant_id LIMIT 4").fetchall()]
        con.execute("UPDATE core.participants SET last_contact_date = last_contact_date + 30 "
                    "WHERE participant_id = ?", [first])
        con.execute("INSERT INTO core.adverse_events SELECT * REPLACE (? AS participant_id) FROM core.adverse_events "
                    "LIMIT 1", [second])
        con.execute("DELETE FROM core.participants WHERE participant_id = ?", [gone])
        con.execute("INSERT INTO core.participants SELECT * REPLACE ('CD22-NEW' AS participant_id) "
                    "FROM core.participants WHERE participant_id = ?", [template])
    trial_report.write_report(warehouse, reports)
    full = tmp_path / "full"
    trial_report.write_report(warehouse, full)
    assert _pages(folder) == _pages(full / profiles.FOLDER)
    assert not (reports / profiles.link(gone)).exists()
    after = {page.name: page.stat() for page in folder.iterdir()}
    rewritten = {name for name in after if name not in before or (after[name].st_ino, after[name].st_mtime_ns)
                 != (before[name].st_ino, before[name].st_mtime_ns)}
    assert rewritten == {profiles.link(pid).split("/")[1] for pid in (first, second, "CD22-NEW")}


def test_a_write_cut_short_is_made_whole_by_the_next(demo_night, tmp_path):
    """A page missing, a temporary left in the folder, a stray page, then no digests kept: the next write gives
    exactly the pages of a full write."""
    paths, _, _ = demo_night
    reports = tmp_path / "reports"
    trial_report.write_report(paths.warehouse, reports)
    folder = reports / profiles.FOLDER
    full = _pages(folder)
    names = sorted(full)
    (folder / names[0]).unlink()
    (folder / f"{names[1]}.partial").write_text("half a page")
    (folder / "CD22-GONE.html").write_text("stale")
    trial_report.write_report(paths.warehouse, reports)
    assert _pages(folder) == full
    (reports / profiles.DIGESTS).unlink()
    (folder / names[2]).write_text("stale")
    trial_report.write_report(paths.warehouse, reports)
    assert _pages(folder) == full


def _summary(reports):
    """The trial summary without the time it was written: two renders of the same data differ only there (the
    plots' SVG ids are salted by the plot's name, not random)."""
    return re.sub(r"page written [\d: -]+", "", (reports / trial_report.REPORT_NAME).read_text())


def test_the_summary_draws_again_only_the_plots_whose_data_changed(demo_night, tmp_path, monkeypatch):
    paths, _, _ = demo_night
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(paths.warehouse, warehouse)
    reports = tmp_path / "reports"
    trial_report.write_report(warehouse, reports)
    first = _summary(reports)
    drawn = json.loads((reports / trial_report.DRAWN_NAME).read_text())
    figures = []
    svg = trial_report._svg
    monkeypatch.setattr(trial_report, "_svg", lambda figure: figures.append(figure) or svg(figure))
    trial_report.write_report(warehouse, reports)
    assert figures == [] and _summary(reports) == first  # no plot drawn again: the same bytes
    with duckdb.connect(str(warehouse)) as con:
        con.execute("UPDATE mart.rfs_curve SET survival = survival / 2 WHERE analysis = 'primary'")
    trial_report.write_report(warehouse, reports)
    again = json.loads((reports / trial_report.DRAWN_NAME).read_text())
    assert len(figures) == 1 and {name for name in drawn if drawn[name] != again[name]} == {"km"}
    full = tmp_path / "full"
    trial_report.write_report(warehouse, full)
    assert _summary(reports) == _summary(full)


def test_two_renders_of_the_same_data_give_the_same_plots(demo_night, tmp_path):
    """The SVG's hashed ids (clip paths, markers, hatches) are salted by the plot's name, not random: a page written
    again from the same data is the same bytes, and no two plots of a page share a clip path or a marker. (Glyph
    ids such as DejaVuSans-31 repeat from plot to plot with the same shape, as they always did.)"""
    paths, _, _ = demo_night
    trial_report.write_report(paths.warehouse, tmp_path / "one")
    trial_report.write_report(paths.warehouse, tmp_path / "two")
    assert (tmp_path / "one" / trial_report.DRAWN_NAME).read_text() == (tmp_path / "two" / trial_report.DRAWN_NAME).read_text()
    assert _summary(tmp_path / "one") == _summary(tmp_path / "two")
    ids = re.findall(r' id="((?:C\d+_\d+_|[pmh])[0-9a-f]{10})"', _summary(tmp_path / "one"))
    assert len(ids) > 10 and len(ids) == len(set(ids))

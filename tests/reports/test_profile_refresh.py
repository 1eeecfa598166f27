"""After a night that took no file, only the profiles that can have changed are written again: those of the
participants with an open data issue, whose age moved on (car22.reports.trial_report.write_report)."""
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

"""The trial summary and the participant profiles as a person sees them: rendered by headless Chromium,
every section and plot present, no request leaving the machine, nothing running off the page or drawn over
other text at 800 and 1400 px, and from the swimmer plot to every profile and back."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from devtools import browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SECTIONS = ("status", "freshness", "tonight", "swimmer", "endpoint", "expansion", "toxicity", "hematotox", "flags",
            "quality")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian package `chromium`; `.ci/run` installs it): "
                             "the report is not rendered in a browser here")


def render(page: Path, tmp_path: Path) -> tuple[str, list[str]]:
    """The DOM after Chromium loaded the page, and the URLs the page itself asked for (from Chromium's NetLog;
    the browser's own background requests have no origin and are left out)."""
    net_log = tmp_path / "net.json"
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--log-net-log={net_log}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True).stdout
    log = json.loads(net_log.read_text())
    names = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    requested = [event["params"]["url"] for event in log["events"]
                 if names.get(event["type"]) == "URL_REQUEST_START_JOB"
                 and event.get("params", {}).get("initiator") not in (None, "not an origin")]
    return dom, requested


def test_the_request_detector_sees_a_page_request(tmp_path):
    page = tmp_path / "leaky.html"
    page.write_text("<!doctype html><img src='http://127.0.0.1:9/pixel.png'>")
    _, requested = render(page, tmp_path)
    assert any("127.0.0.1:9" in url for url in requested)


def test_report_renders_every_section_offline(demo_night, tmp_path):
    paths, _, _ = demo_night
    dom, requested = render(paths.reports / "trial_report.html", tmp_path)
    assert requested == []
    for section in SECTIONS:
        assert re.search(rf'<section id="{section}"', dom), section
    for section in ("swimmer", "endpoint", "expansion", "toxicity", "hematotox"):
        content = dom.split(f'<section id="{section}"')[1].split("</section>")[0]
        assert "<svg" in content, f"no plot in {section}"
    assert "Numbers at risk" in dom and "data_docs/index.html" in dom
    assert not re.search(r"\bdob\b|date of birth", dom, re.IGNORECASE)


def test_a_large_cohort_keeps_the_page_readable(demo_night, monkeypatch):
    """At consortium scale the swimmer plot and the expansion curves show the most recently infused, and a
    flag table its first rows, saying where the rest is; cohort figures still use everyone."""
    import duckdb

    from car22.reports import trial_report

    paths, _, _ = demo_night
    monkeypatch.setattr(trial_report, "SWIMMER_LANES", 3)
    monkeypatch.setattr(trial_report, "EXPANSION_CURVES", 2)
    monkeypatch.setattr(trial_report, "TABLE_ROWS", 1)
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        infused = con.execute("SELECT count(*) FROM core.participants WHERE infused").fetchall()[0][0]
        latest = [pid for pid, in con.execute("SELECT participant_id FROM core.participants WHERE infused "
                                              "ORDER BY infusion_date DESC, participant_id DESC LIMIT 3").fetchall()]
        page = trial_report.render(con)
    assert f"The 3 most recently infused of {infused} participants" in page
    assert f"Grey lines: the 2 most recently infused of {infused} participants" in page
    assert re.search(r"First 1 of [0-9,]+ rows; all of them are in", page)
    swimmer = page[page.index("id='swimmer'"):page.index("id='endpoint'")]
    assert all(pid in swimmer for pid in latest)


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    with browser(tmp_path_factory.mktemp("chromium")) as opened:
        yield opened


@pytest.mark.parametrize("width", [800, 1400])
@pytest.mark.parametrize("page", ["trial_report.html", "profiles/CD22-003.html", "profiles/CD22-002.html"])
def test_nothing_runs_off_the_page_or_overlaps(demo_night, chromium, tmp_path, page, width):
    """A screenshot at each width (kept in the test's folder) and the layout the browser computed: the page
    never scrolls sideways (a wide table scrolls inside its own box) and no two text boxes overlap."""
    paths, _, _ = demo_night
    shot = tmp_path / f"{page.replace('/', '_')}.{width}.png"
    layout = chromium.layout(paths.reports / page, width, shot)
    assert layout["scrollWidth"] <= layout["innerWidth"] == width
    assert layout["overlaps"] == []
    assert layout["textBoxes"] > 50
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("body, overflow, overlaps", [
    ("<p>fits</p>", False, []),
    ("<div style='width:1200px'>wide</div>", True, []),
    ("<div class='table' style='overflow-x:auto'><div style='width:1200px'>wide in its box</div></div>", False, []),
    ("<p style='position:absolute;top:10px;left:10px'>first text</p>"
     "<p style='position:absolute;top:14px;left:20px'>second text</p>", False, [["first text", "second text"]]),
])
def test_the_layout_detector_sees_overflow_and_overlap(chromium, tmp_path, body, overflow, overlaps):
    page = tmp_path / "page.html"
    page.write_text(f"<!doctype html><html><body>{body}</body></html>")
    layout = chromium.layout(page, 800)
    assert (layout["scrollWidth"] > layout["innerWidth"], layout["overlaps"]) == (overflow, overlaps)


def test_every_lane_opens_a_profile_that_links_back(demo_night, tmp_path):
    import duckdb

    paths, _, _ = demo_night
    dom, _ = render(paths.reports / "trial_report.html", tmp_path)
    swimmer = dom.split('<section id="swimmer"')[1].split("</section>")[0]
    linked = set(re.findall(r'<a xlink:href="profiles/(CD22-\d{3})\.html"', swimmer))
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        infused = {pid for pid, in con.execute("SELECT participant_id FROM core.participants WHERE infused").fetchall()}
        enrolled = {pid for pid, in con.execute("SELECT participant_id FROM core.participants").fetchall()}
    assert linked == infused
    assert {p.stem for p in (paths.reports / "profiles").glob("*.html")} == enrolled
    for pid in enrolled:
        profile = (paths.reports / "profiles" / f"{pid}.html").read_text()
        assert "href='../trial_report.html#swimmer'" in profile
        assert f"<h1>Participant {pid}</h1>" in profile
        assert "<script" not in profile
        # study days only: no calendar date, no date of birth
        assert not re.search(r"\d{4}-\d{2}-\d{2}|\bdob\b|date of birth", profile, re.IGNORECASE), pid


def test_a_profile_lists_exactly_its_open_data_issues(demo_night):
    import duckdb

    paths, _, _ = demo_night
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        enrolled = [pid for pid, in con.execute("SELECT participant_id FROM core.participants").fetchall()]
        open_issues = con.execute("SELECT participant_id, issue_id FROM ops.data_issues WHERE status = 'OPEN' "
                                  "AND participant_id IS NOT NULL").fetchall()
    assert any(pid in enrolled for pid, _ in open_issues), "the demo plants an open issue of an enrolled participant"
    for pid in enrolled:
        section = (paths.reports / "profiles" / f"{pid}.html").read_text().split("<section id='issues'>")[1]
        shown = set(re.findall(r"\b[0-9a-f]{16}\b", section.split("</section>")[0]))
        assert shown == {issue for who, issue in open_issues if who == pid}, pid


def test_a_profile_renders_offline(demo_night, tmp_path):
    paths, _, _ = demo_night
    dom, requested = render(paths.reports / "profiles" / "CD22-003.html", tmp_path)
    assert requested == []
    for section in ("course", "eligibility", "treatment", "mrd", "car", "toxicity"):
        assert re.search(rf'<section id="{section}"', dom), section


def test_hematotoxicity_table_when_nobody_could_be_graded():
    """A small night (labs not yet in) has ICAHT rows without a grade and no HEMATOTOX score: words, no crash."""
    import duckdb

    from car22.reports.trial_report import hematotoxicity_table

    con = duckdb.connect()
    con.execute("CREATE SCHEMA mart")
    con.execute("CREATE TABLE mart.icaht AS SELECT 'CD22-001' AS participant_id, s AS scale, p AS phase, "
                "NULL::INTEGER AS grade, 30 AS window_end_day, 'PHASE_END' AS window_end_reason, "
                "'no result' AS null_reason FROM (VALUES ('N-ICAHT'), ('T-ICAHT')) a(s), (VALUES ('early'), ('late')) b(p)")
    con.execute("CREATE TABLE mart.hematotox AS SELECT 'CD22-001' AS participant_id, NULL::INTEGER AS score, "
                "NULL::VARCHAR AS risk, 'no ferritin' AS null_reason")
    row = hematotoxicity_table(con).iloc[0].to_dict()
    assert row == {"participant": "CD22-001", "N-ICAHT early": "not graded: no result",
                   "N-ICAHT late": "not graded: no result", "T-ICAHT early": "not graded: no result",
                   "T-ICAHT late": "not graded: no result", "CAR-HEMATOTOX": "not scored: no ferritin"}

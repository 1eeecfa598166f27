"""The trial summary as a person sees it: rendered by headless Chromium, every section and plot present,
no request leaving the machine."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SECTIONS = ("status", "freshness", "swimmer", "endpoint", "expansion", "toxicity", "flags", "quality")
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
    for section in ("swimmer", "endpoint", "expansion", "toxicity"):
        content = dom.split(f'<section id="{section}"')[1].split("</section>")[0]
        assert "<svg" in content, f"no plot in {section}"
    assert "Numbers at risk" in dom and "data_docs/index.html" in dom
    assert not re.search(r"\bdob\b|date of birth", dom, re.IGNORECASE)

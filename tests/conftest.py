"""Shared test set-up: keep Prefect and GX offline and quiet; one Prefect harness and one demo night per session."""
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
sys.path.insert(0, str(Path(__file__).parent))


def run(paths):
    """One night of the real flow over the given folders."""
    from flows.nightly import nightly

    return nightly(inbox=str(paths.inbox), warehouse=str(paths.warehouse), archive=str(paths.archive),
                   reports=str(paths.reports), work=str(paths.work))


@pytest.fixture(scope="session")
def prefect():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):  # a shared, busy machine starts it slowly
        yield


@pytest.fixture(scope="session")
def demo_night(prefect, tmp_path_factory):
    """The default demo exports ingested by the nightly flow: (paths, files written, run summary)."""
    from car22.demo import generate
    from car22.night.paths import Paths

    paths = Paths.under(tmp_path_factory.mktemp("demo_night"))
    written = generate(paths.inbox)
    return paths, written, run(paths)

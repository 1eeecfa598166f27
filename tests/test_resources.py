"""Resources: an archive, reports or work folder that cannot be used fails the run with a clear message, publishes nothing and
leaves yesterday's warehouse and the night's files intact. (Root ignores permission bits, so 'cannot be
written' is an archive path that is a file, not a folder.)"""
from __future__ import annotations

import hashlib
import shutil

import pytest

from car22.night import Paths
from conftest import run
from test_nightly import exports, write


@pytest.mark.parametrize("where", ["archive", "reports", "work"])
def test_unusable_folder_fails_cleanly(prefect, tmp_path, where):
    paths = Paths.under(tmp_path)
    files = sorted(exports().items())
    write(paths.inbox, dict(files[:3]))
    run(paths)
    yesterday = hashlib.sha256(paths.warehouse.read_bytes()).hexdigest()
    write(paths.inbox, dict(files[3:]))
    broken = getattr(paths, where)
    shutil.rmtree(broken)
    broken.write_text("not a folder")
    with pytest.raises(Exception) as failure:
        run(paths)
    assert f"cannot use folder {broken}" in str(failure.value)
    assert hashlib.sha256(paths.warehouse.read_bytes()).hexdigest() == yesterday
    waiting = sorted(p.name for folder in (paths.inbox, paths.work / "pending") if folder.is_dir()
                     for p in folder.iterdir())
    assert waiting == sorted(name for name, _ in files[3:])
    broken.unlink()
    run(paths)                                           # fixed: the next night takes the waiting files
    assert not list((paths.work / "pending").iterdir())

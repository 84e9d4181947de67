"""A job run by a separate `facenames` process appears in the jobs panel within 0.5 s of being
enqueued, and its progress moves there.

The app's engine runs no workers here (threads 0), so the job is the CLI's alone; the time a job
was enqueued is its own created_at (wall clock, ms), read back from `jobs show --json`."""
import os
import shutil
import subprocess
import time
from datetime import datetime

import pytest

from conftest import CLI, cli_json, sample_photos, until
from facenames.app.jobs_panel import JobsPanel, progress_fraction


def _epoch_ms(iso):
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


COPIES = 8


@pytest.fixture
def many_photos(tmp_path):
    """The six sample photos, each COPIES times: an ingest long enough (about 3 s on one 2-core
    VM) for the engine's 200 ms poll of other processes' jobs to see it move several times (the
    12 photos of `photos` took 0.7 s there: two moves seen, in half the runs)."""
    d = tmp_path / "many"
    d.mkdir()
    for i in range(COPIES):
        for p in sample_photos():
            shutil.copy(p, d / f"{i}-{os.path.basename(p)}")
    return d


def test_a_cli_ingest_appears_and_moves_in_the_panel(qtbot, make_ctx, many_photos, library):
    ctx = make_ctx(threads=0)
    panel = JobsPanel(ctx)
    qtbot.addWidget(panel)
    panel.show()
    appeared = {}
    seen_done = []

    def on_rows(parent, first, last):
        for r in range(first, last + 1):
            appeared.setdefault(panel.model.jobs[r]["id"], time.time() * 1000)

    def on_change(*_):
        for j in panel.model.jobs:
            done, _ = progress_fraction(j.get("progress"))
            if done is not None and (not seen_done or seen_done[-1] != done):
                seen_done.append(done)

    panel.model.rowsInserted.connect(on_rows)
    panel.model.dataChanged.connect(on_change)
    proc = subprocess.Popen([CLI, "--library", library, "--set", "ingest.batch=1", "ingest",
                             str(many_photos)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        until(qtbot, lambda: panel.model.jobs and panel.model.jobs[0].get("state")
              == "completed", timeout=120000)
    finally:
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    job = panel.model.jobs[0]["id"]
    shown = cli_json(library, "jobs", "show", str(job), "--json")
    delay = appeared[job] - _epoch_ms(shown["created_at"])
    assert delay <= 500, f"the job appeared {delay:.0f} ms after it was enqueued"
    total = COPIES * len(sample_photos())
    assert seen_done == sorted(seen_done) and seen_done[-1] == total
    assert len([d for d in seen_done if 0 < d < total]) >= 3, f"progress did not move: {seen_done}"
    assert panel.model.job(job)["progress"] == shown["progress"]

"""A job run by a separate `facenames` process appears in the jobs panel within 0.5 s of being
enqueued, and its progress moves there.

The app's engine runs no workers here (threads 0), so the job is the CLI's alone; the time a job
was enqueued is its own created_at (wall clock, ms), read back from `jobs show --json`."""
import subprocess
import time
from datetime import datetime

from conftest import CLI, cli_json, until
from facenames.app.jobs_panel import JobsPanel, progress_fraction


def _epoch_ms(iso):
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


def test_a_cli_ingest_appears_and_moves_in_the_panel(qtbot, make_ctx, photos, library):
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
                             str(photos)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
    assert seen_done == sorted(seen_done) and seen_done[-1] == 12
    assert len([d for d in seen_done if 0 < d < 12]) >= 3, f"progress did not move: {seen_done}"
    assert panel.model.job(job)["progress"] == shown["progress"]

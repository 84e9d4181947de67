"""The jobs panel: a running ingest's progress, its errors with skip and retry, cancel and resume
from the panel, and the panel showing what `facenames jobs show` shows."""
import threading

from PyQt5.QtCore import Qt

from conftest import cli, cli_json, until
from facenames.app.jobs_panel import JobsModel, JobsPanel


def _row(panel, job):
    return panel.model.job(job)


def _state(panel, job):
    j = _row(panel, job)
    return j and j.get("state")


def test_panel_shows_progress_and_errors_with_skip_and_retry(qtbot, make_ctx, bad_photos, library):
    ctx = make_ctx(threads=2)
    panel = JobsPanel(ctx)
    qtbot.addWidget(panel)
    panel.show()
    fractions = []
    panel.model.dataChanged.connect(lambda *a: fractions.extend(
        panel.model.data(panel.model.index(r, 0), JobsModel.ProgressRole)
        for r in range(panel.model.rowCount())))
    panel.ingest([str(bad_photos)])
    until(qtbot, lambda: (panel.model.jobs and _state(panel, panel.model.jobs[0]["id"])
                    == "completed"), timeout=120000)
    job = panel.model.jobs[0]["id"]
    assert panel.selected == job
    until(qtbot, lambda: (len(panel.errors_model.errors) == 1), timeout=5000)
    assert (3, 3) in fractions and any(d is not None and d < 3 for d, _ in fractions), fractions
    assert panel.model.data(panel.model.index(0, JobsModel.COLUMNS.index("Errors"))) == 1
    err = panel.errors_model.errors[0]
    assert err["item"].endswith("cut.jpg") and err["code"] in ("truncated", "corrupt")

    # skip: the engine records the decision, the table shows it
    panel.errors_view.selectRow(0)
    qtbot.mouseClick(panel.btn_skip_err, Qt.LeftButton)
    until(qtbot, lambda: (panel.errors_model.errors and
                    panel.errors_model.errors[0]["resolution"] == "skip"), timeout=10000)
    assert cli_json(library, "jobs", "show", str(job), "--json")["errors"][0]["resolution"] \
        == "skip"

    # retry the selected error: a retry job for that one item runs and fails on it again
    panel.errors_view.selectRow(0)
    qtbot.mouseClick(panel.btn_retry_err, Qt.LeftButton)
    until(qtbot, lambda: (len(panel.model.jobs) == 2 and
                    _state(panel, panel.model.jobs[0]["id"]) == "completed"), timeout=60000)
    child = panel.model.jobs[0]
    assert [j["parent"] for j in ctx.engine.list() if j["id"] == child["id"]] == [job]
    shown = cli_json(library, "jobs", "show", str(child["id"]), "--json")
    assert shown["progress"]["counters"]["files_done"] == 1
    assert [e["code"] for e in shown["errors"]] == [err["code"]]
    assert cli_json(library, "jobs", "show", str(job), "--json")["errors"][0]["resolution"] \
        == "retry"


def test_a_stale_reload_never_lands_after_a_newer_one(qtbot, make_ctx, bad_photos):
    """The record read after a job's "running" event, delivered after the one read after its
    "completed" event (the pool runs two calls at once; a loaded machine can finish them in either
    order), must not put the finished job back to running: each event's reload of a job waits for
    the one before, whose result it supersedes."""
    ctx = make_ctx(threads=2)
    panel = JobsPanel(ctx)
    qtbot.addWidget(panel)
    panel.ingest([str(bad_photos)])
    until(qtbot, lambda: (panel.model.jobs and _state(panel, panel.model.jobs[0]["id"])
                          == "completed"), timeout=120000)
    job = panel.model.jobs[0]["id"]
    until(qtbot, lambda: ctx.async_.pending == 0, timeout=10000)
    real, calls, release = ctx.engine.inspect, [], threading.Event()

    def inspect(job_id):
        calls.append(job_id)
        if len(calls) == 1:  # read while the job still ran, then held back
            record = dict(real(job_id), state="running")
            release.wait(10)
            return record
        return real(job_id)

    ctx.engine.inspect = inspect
    ctx.bridge.stateChanged.emit(job, "running")
    until(qtbot, lambda: len(calls) == 1, timeout=5000)
    ctx.bridge.stateChanged.emit(job, "completed")
    qtbot.wait(200)  # time for a second reload running beside the first to finish first
    release.set()
    until(qtbot, lambda: ctx.async_.pending == 0, timeout=10000)
    qtbot.wait(50)
    assert len(calls) == 2 and _state(panel, job) == "completed"


def test_cancel_from_the_panel_then_resume(qtbot, make_ctx, photos, library):
    ctx = make_ctx(threads=2)
    panel = JobsPanel(ctx)
    qtbot.addWidget(panel)
    panel.show()
    panel.ingest([str(photos)])
    until(qtbot, lambda: (panel.model.jobs and (panel.model.jobs[0].get("progress") or {})
                    .get("counters", {}).get("files_done", 0) >= 1), timeout=120000)
    job = panel.model.jobs[0]["id"]
    assert panel.btn_cancel.isEnabled()
    qtbot.mouseClick(panel.btn_cancel, Qt.LeftButton)
    until(qtbot, lambda: (_state(panel, job) == "cancelled"), timeout=60000)
    until(qtbot, lambda: (panel.btn_resume.isEnabled()), timeout=5000)
    shown = cli_json(library, "jobs", "show", str(job), "--json")
    done = shown["progress"]["counters"]["files_done"]
    assert shown["state"] == "cancelled" and 1 <= done < 12, shown["progress"]
    # the panel's row is what `jobs show --json` says (the same fields, the same values)
    until(qtbot, lambda: (_row(panel, job).get("finished_at")), timeout=5000)
    row = _row(panel, job)
    for k in ("id", "type", "priority", "payload", "state", "created_at", "started_at",
              "finished_at", "progress", "checkpoint"):
        assert row[k] == shown[k], k
    until(qtbot, lambda: ("cancel" in panel.log.toPlainText()), timeout=5000)
    assert panel.log.toPlainText() == cli(library, "jobs", "log", str(job))
    assert panel.summary.toPlainText() == ctx.engine.summary(job)

    qtbot.mouseClick(panel.btn_resume, Qt.LeftButton)
    until(qtbot, lambda: (len(panel.model.jobs) == 2 and
                    _state(panel, panel.model.jobs[0]["id"]) == "completed"), timeout=120000)
    resumed = cli_json(library, "jobs", "show", str(panel.model.jobs[0]["id"]), "--json")
    assert resumed["progress"]["counters"]["files_done"] == 12
    # nothing processed twice: every photo once in the library
    photos_listed = cli_json(library, "photos", "list", "--json")
    assert len(photos_listed) == 12

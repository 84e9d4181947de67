"""The UI thread is never blocked while jobs run: with the whole window up (jobs panel, people
view), a QTimer ticking every 4 ms measures the event loop during a real ingest of the sample
photos on two workers and then a clustering run started from the panel's button (issue 12's
proof). Longest gap <= 50 ms, 99th percentile <= 16 ms.

meson runs this test alone (is_parallel: false). On a machine that other programs overload, a gap
also holds the time the kernel kept the UI thread waiting for a CPU they had: then the limits
apply to each gap less the UI thread's run-queue wait (conftest.LoopProbe), and the raw gaps are
printed. That wait also holds the app's own workers, which is why the raw gaps are what is
checked whenever the machine allows it."""
from conftest import LoopProbe, until
from facenames.app.window import MainWindow


def job_of(win, jtype):
    return next((j for j in win.jobs.model.jobs if j.get("type") == jtype), None)


def test_event_loop_latency_during_an_ingest_and_a_clustering(qtbot, make_ctx, photos):
    ctx = make_ctx(threads=2)
    win = MainWindow(ctx)
    qtbot.addWidget(win)
    win.show()
    qtbot.wait(200)  # the window's first layout and paint are not what is measured
    probe = LoopProbe()
    probe.start()
    win.jobs.ingest([str(photos)])
    until(qtbot, lambda: (job_of(win, "ingest") or {}).get("state") == "completed",
          timeout=120000)
    win.jobs.btn_cluster.click()
    until(qtbot, lambda: (job_of(win, "clustering") or {}).get("state") == "completed",
          timeout=60000)
    qtbot.wait(300)  # the final snapshot's redraw is inside the measurement
    probe.stop()
    assert job_of(win, "ingest")["progress"]["counters"]["files_done"] == 12
    clustering = job_of(win, "clustering")["progress"]["counters"]
    assert clustering["faces_done"] == clustering["faces_total"] > 0
    print("event loop:", probe.summary())
    probe.check(50, 16)

"""The UI thread is never blocked while jobs run: with the whole window up (jobs panel, people
view), a QTimer ticking every 4 ms measures the event loop during a real ingest of the sample
photos on two workers. Longest gap <= 50 ms, 99th percentile <= 16 ms.

meson runs this test alone (is_parallel: false). On a machine that other programs overload (more
runnable tasks than cores while this test's own process is idle, sampled from /proc/loadavg just
before the ingest), a gap also holds the time the kernel kept the UI thread waiting for a CPU they
had: then the limits apply to each gap less the UI thread's run-queue wait
(/proc/thread-self/schedstat), and the raw gaps are printed. That wait also counts the app's own
workers, which is why the raw gaps are what is checked whenever the machine allows it."""
import os
import time

from PyQt5.QtCore import Qt, QTimer

from conftest import until
from facenames.app.window import MainWindow


def _runqueue_wait_ms():
    with open("/proc/thread-self/schedstat") as f:
        return int(f.read().split()[1]) / 1e6


def _others_running():
    """Runnable tasks other than this test's, averaged over 20 samples 10 ms apart."""
    n = 0
    for _ in range(20):
        with open("/proc/loadavg") as f:
            n += int(f.read().split()[3].split("/")[0]) - 1  # less the reading thread
        time.sleep(0.01)
    return n / 20


def _p99(xs):
    xs = sorted(xs)
    return xs[int(0.99 * (len(xs) - 1))]


def test_event_loop_latency_during_an_ingest(qtbot, make_ctx, photos):
    ctx = make_ctx(threads=2)
    win = MainWindow(ctx)
    qtbot.addWidget(win)
    win.show()
    ticks = []  # (wall ms, run-queue wait ms so far)
    timer = QTimer()
    timer.setTimerType(Qt.PreciseTimer)
    timer.setInterval(4)
    timer.timeout.connect(lambda: ticks.append((time.perf_counter() * 1000, _runqueue_wait_ms())))
    qtbot.wait(200)  # the window's first layout and paint are not what is measured
    others = _others_running()
    timer.start()
    win.jobs.ingest([str(photos)])
    until(qtbot, lambda: win.jobs.model.jobs and win.jobs.model.jobs[0].get("state")
          == "completed", timeout=120000)
    qtbot.wait(300)  # the final snapshot's redraw is inside the measurement
    timer.stop()
    job = win.jobs.model.jobs[0]
    assert job["progress"]["counters"]["files_done"] == 12
    assert len(ticks) > 100, "the timer hardly ran"
    gaps = [b[0] - a[0] for a, b in zip(ticks, ticks[1:])]
    ours = [g - (b[1] - a[1]) for g, a, b in zip(gaps, ticks, ticks[1:])]
    print(f"event loop: {len(gaps)} ticks; gaps p99 {_p99(gaps):.1f} ms, longest {max(gaps):.1f}"
          f" ms; less run-queue wait p99 {_p99(ours):.1f} ms, longest {max(ours):.1f} ms;"
          f" {others:.1f} other tasks runnable on {os.cpu_count()} cores")
    if others > os.cpu_count():
        gaps = ours  # overloaded by others: their share of the gaps is not the app's
    assert max(gaps) <= 50, f"the UI thread stalled {max(gaps):.1f} ms"
    assert _p99(gaps) <= 16, f"99th percentile gap {_p99(gaps):.1f} ms"

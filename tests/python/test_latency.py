"""The UI thread is never blocked while jobs run: with the whole window up (jobs panel with its
charts, people view), a QTimer ticking every 4 ms measures the event loop during a real ingest of
the sample photos on two workers. Longest gap <= 50 ms, 99th percentile <= 16 ms.

meson runs this test alone (is_parallel: false): it measures this process, and another test
program competing for the two cores would measure the machine instead."""
import time

from PyQt5.QtCore import Qt, QTimer

from conftest import until
from facenames.app.window import MainWindow


def test_event_loop_latency_during_an_ingest(qtbot, make_ctx, photos):
    ctx = make_ctx(threads=2)
    win = MainWindow(ctx)
    qtbot.addWidget(win)
    win.show()
    ticks = []
    timer = QTimer()
    timer.setTimerType(Qt.PreciseTimer)
    timer.setInterval(4)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    qtbot.wait(200)  # the window's first layout and paint are not what is measured
    timer.start()
    win.jobs.ingest([str(photos)])
    until(qtbot, lambda: win.jobs.model.jobs and win.jobs.model.jobs[0].get("state")
          == "completed", timeout=120000)
    qtbot.wait(300)  # the final snapshot's redraw is inside the measurement
    timer.stop()
    job = win.jobs.model.jobs[0]
    assert job["progress"]["counters"]["files_done"] == 12
    gaps = sorted((b - a) * 1000 for a, b in zip(ticks, ticks[1:]))
    assert len(gaps) > 100, "the timer hardly ran"
    worst, p99 = gaps[-1], gaps[int(0.99 * (len(gaps) - 1))]
    print(f"event loop: {len(gaps)} ticks, p99 {p99:.1f} ms, longest {worst:.1f} ms")
    assert worst <= 50, f"the UI thread stalled {worst:.1f} ms"
    assert p99 <= 16, f"99th percentile gap {p99:.1f} ms"

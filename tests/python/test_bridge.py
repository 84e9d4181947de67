"""The Qt bridge turns a real job's events into signals on the UI thread, and Async hands results
back there."""
import threading

from PyQt5.QtCore import Qt

from conftest import until
from facenames.qt import Async


def test_signals_of_a_real_ingest_arrive_on_the_ui_thread(qtbot, make_ctx, photos):
    ctx = make_ctx(threads=2)
    ui = threading.get_ident()
    seen = []  # (signal, job, value, thread)
    b = ctx.bridge
    # Direct connections: a slot runs on the thread that emits, so this sees where the bridge
    # itself emits (a queued connection would hide an emit from another thread).
    direct = Qt.DirectConnection
    b.jobAdded.connect(lambda j, s: seen.append(("added", j, s, threading.get_ident())), direct)
    b.stateChanged.connect(lambda j, s: seen.append(("state", j, s, threading.get_ident())),
                           direct)
    b.progress.connect(lambda j, p: seen.append(
        ("progress", j, p["counters"]["files_done"], threading.get_ident())), direct)
    ids = []
    # enqueued off the UI thread, as the app does
    ctx.run(ctx.engine.enqueue, "ingest", {"paths": [str(photos)]}, on_done=ids.append)
    until(qtbot, lambda: any(s[0] == "state" and s[2] == "completed" for s in seen),
          timeout=120000)
    (job,) = ids
    assert {s[3] for s in seen} == {ui}, "a slot ran on a thread other than the UI thread"
    assert [s[2] for s in seen if s[0] == "state"] == ["queued", "running", "completed"]
    assert seen[0][:3] == ("added", job, "queued")
    done = [s[2] for s in seen if s[0] == "progress"]
    assert len(set(done)) >= 3, f"progress did not move in steps: {done}"
    assert done == sorted(done) and done[-1] == 12


def test_async_runs_off_the_ui_thread_and_answers_on_it(qtbot):
    a = Async()
    ui = threading.get_ident()
    where = {}

    def work(x):
        where["work"] = threading.get_ident()
        return x * 2

    def fail():
        raise ValueError("boom")

    got, errors = [], []
    a.call(work, 21, on_done=lambda r: (got.append(r), where.setdefault("done",
                                                                         threading.get_ident())))
    a.call(fail, on_error=lambda exc: errors.append((exc, threading.get_ident())))
    until(qtbot, lambda: (got and errors), timeout=5000)
    assert got == [42] and where["work"] != ui and where["done"] == ui
    assert isinstance(errors[0][0], ValueError) and errors[0][1] == ui
    a.wait()


def test_call_latest_delivers_only_a_result_read_after_the_last_request(qtbot):
    """Two reloads of one thing on the pool at once could finish in either order, the older
    snapshot last (what left a finished job shown as running, or a skipped error unresolved, in
    one CI run): call_latest runs one call per key at a time and delivers only the result of a
    call that started after the last request."""
    a = Async()
    release = threading.Event()
    log, got, errors = [], [], []

    def slow_old():
        log.append("old started")
        release.wait(5)
        log.append("old finished")
        return "old"

    def read(value):
        log.append(value + " started")
        return value

    a.call_latest("k", slow_old, on_done=got.append)
    until(qtbot, lambda: log == ["old started"], timeout=5000)
    a.call_latest("k", read, "newer", on_done=got.append)   # merged into the next one
    a.call_latest("k", read, "newest", on_done=got.append)
    a.call_latest("other", read, "elsewhere", on_done=got.append)  # another key runs at once
    until(qtbot, lambda: "elsewhere" in got, timeout=5000)
    assert got == ["elsewhere"] and "newest started" not in log
    release.set()
    until(qtbot, lambda: "newest" in got, timeout=5000)
    a.wait()
    qtbot.wait(50)
    assert got == ["elsewhere", "newest"]
    assert log.index("newest started") > log.index("old finished") and "newer started" not in log

    # a failure is delivered the same way, and a key is free again once its result is delivered
    def fail():
        raise ValueError("boom")

    a.call_latest("k", fail, on_error=errors.append)
    until(qtbot, lambda: errors, timeout=5000)
    a.call_latest("k", read, "again", on_done=got.append)
    until(qtbot, lambda: "again" in got, timeout=5000)
    assert isinstance(errors[0], ValueError) and a.pending == 0
    a.wait()

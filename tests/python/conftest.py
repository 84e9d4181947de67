"""Shared fixtures of the Python tests: the built library, the CLI, sample photos, fresh
libraries and an app context whose engine is closed after each test.

Run by meson (suite python), which sets FACENAMES_LIB, FACENAMES_CLI, FACENAMES_SAMPLES,
FACENAMES_MODELS, PYTHONPATH and QT_QPA_PLATFORM=offscreen; by hand:
    QT_QPA_PLATFORM=offscreen PYTHONPATH=python /usr/bin/python3 -m pytest tests/python
"""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("FACENAMES_MODELS",
                      os.path.join(ROOT, "reference/node_modules/@vladmandic/face-api/model"))
SAMPLES = os.environ.get("FACENAMES_SAMPLES",
                         os.path.join(ROOT, "reference/node_modules/@vladmandic/face-api/demo"))
CLI = os.environ.get("FACENAMES_CLI", os.path.join(ROOT, "build/src/cli/facenames"))


def sample_photos():
    return sorted(os.path.join(SAMPLES, f) for f in os.listdir(SAMPLES)
                  if f.startswith("sample") and f.endswith(".jpg"))


@pytest.fixture
def photos(tmp_path):
    """A folder of the six sample photos, each twice under another name (12 photos: enough
    batches to cancel in the middle)."""
    d = tmp_path / "photos"
    d.mkdir()
    for p in sample_photos():
        base = os.path.basename(p)
        shutil.copy(p, d / base)
        shutil.copy(p, d / ("copy-" + base))
    return d


@pytest.fixture
def bad_photos(tmp_path):
    """Two sample photos and one JPEG cut short (an item error)."""
    d = tmp_path / "bad"
    d.mkdir()
    src = sample_photos()
    shutil.copy(src[0], d / "a.jpg")
    shutil.copy(src[1], d / "b.jpg")
    with open(src[2], "rb") as f:
        (d / "cut.jpg").write_bytes(f.read(3000))
    return d


@pytest.fixture
def library(tmp_path):
    return str(tmp_path / "library")


@pytest.fixture
def make_ctx(qtbot, library):
    """make_ctx(threads=2, **config) -> AppContext on `library`, closed at the end."""
    from facenames.app.context import AppContext

    made = []

    def make(threads=2, **config):
        values = {"ingest.batch": 1}
        values.update({k.replace("_", ".", 1): v for k, v in config.items()})
        ctx = AppContext(library, threads, values)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()


@pytest.fixture
def clustered(library, photos):
    """A library with the sample faces, cluster 1 = the first 4 faces, cluster 2 = the next 2."""
    cli(library, "--set", "ingest.batch=4", "ingest", str(photos))
    db = sqlite3.connect(os.path.join(library, "library.db"))
    with db:
        ids = [r[0] for r in db.execute("SELECT id FROM faces ORDER BY id")]
        assert len(ids) >= 8
        db.execute("INSERT INTO clusters (id, created_at, size) VALUES (1, 1, 4), (2, 1, 2)")
        db.executemany("UPDATE faces SET cluster_id = ? WHERE id = ?",
                       [(1, f) for f in ids[:4]] + [(2, f) for f in ids[4:6]])
    db.close()
    return ids


def cli(library, *args, check=True):
    """Runs the facenames program on `library`; returns its standard output."""
    r = subprocess.run([CLI, "--library", library, *args], capture_output=True, text=True,
                       timeout=300)
    if check and r.returncode not in (0, 4):
        raise AssertionError(f"facenames {' '.join(args)}: {r.returncode}\n{r.stderr}")
    return r.stdout


def cli_json(library, *args):
    return json.loads(cli(library, *args))


def until(qtbot, cond, timeout=60000):
    """Runs the event loop until cond() is true (pytest-qt raises after `timeout` ms)."""
    qtbot.waitUntil(lambda: bool(cond()), timeout=timeout)


def now_ms():
    return int(time.time() * 1000)


class LoopProbe:
    """Measures the Qt event loop: a QTimer ticking every 4 ms records the wall time and how long
    the kernel kept this process's threads waiting for a CPU (their run-queue wait, from
    /proc/thread-self/task/*/schedstat) at each tick.

    check(max_ms, p99_ms) asserts on the gaps between ticks. On a machine that other programs
    overload (more runnable tasks than cores when the probe started, while this test's process
    was idle, or on average one or more while it measured, not counting this process's own
    threads: sampled every 25th tick) it asserts on each gap less the run-queue wait that the
    machine imposed on it: the
    UI thread's own, plus the largest of the other threads at normal priority (a pool thread that
    holds the GIL and waits for a CPU keeps the UI thread waiting for the GIL). Threads at a
    lower priority (the engine's workers, nice 10) are not counted: the UI thread never waits for
    them. Both figures are in summary()."""

    def __init__(self):
        from PyQt5.QtCore import Qt, QTimer

        self.others = others_running()
        self.during = []
        self.ticks = []
        self.timer = QTimer()
        self.timer.setTimerType(Qt.PreciseTimer)
        self.timer.setInterval(4)
        self.timer.timeout.connect(self._tick)

    def _tick(self):
        self.ticks.append((time.perf_counter() * 1000, runqueue_wait_ms(), _pool_waits_ms()))
        if len(self.ticks) % 25 == 0:
            self.during.append(others_running_now())

    def start(self):
        self.timer.start()

    def stop(self):
        self.timer.stop()

    def gaps(self):
        t = self.ticks
        raw = [b[0] - a[0] for a, b in zip(t, t[1:])]
        ours = []
        for g, a, b in zip(raw, t, t[1:]):
            pool = max([b[2][k] - a[2][k] for k in b[2].keys() & a[2].keys()] or [0])
            ours.append(g - (b[1] - a[1]) - pool)
        return raw, ours

    def summary(self):
        raw, ours = self.gaps()
        return (f"{len(raw)} ticks; gaps p99 {p99(raw):.1f} ms, longest {max(raw):.1f} ms; less"
                f" run-queue wait p99 {p99(ours):.1f} ms, longest {max(ours):.1f} ms;"
                f" {self.others:.1f} other tasks runnable on {os.cpu_count()} cores,"
                f" {self.others_during():.1f} on average while measuring")

    def others_during(self):
        return sum(self.during) / len(self.during) if self.during else 0.0

    def check(self, max_ms=50, p99_ms=16):
        raw, ours = self.gaps()
        assert len(raw) > 20, "the timer hardly ran"
        loaded = self.others > os.cpu_count() or self.others_during() >= 1
        gaps = ours if loaded else raw
        assert max(gaps) <= max_ms, f"the UI thread stalled {max(gaps):.1f} ms: {self.summary()}"
        assert p99(gaps) <= p99_ms, f"99th percentile gap {p99(gaps):.1f} ms: {self.summary()}"


def runqueue_wait_ms():
    with open("/proc/thread-self/schedstat") as f:
        return int(f.read().split()[1]) / 1e6


def _pool_waits_ms():
    """Run-queue wait (ms) of each other thread of this process at normal priority."""
    me, out = str(threading.get_native_id()), {}
    for tid in os.listdir("/proc/self/task"):
        if tid == me:
            continue
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[16]) > 0:  # nice: a worker
                    continue
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                out[tid] = int(f.read().split()[1]) / 1e6
        except (OSError, ValueError, IndexError):
            pass
    return out


def others_running_now():
    """Runnable tasks other than this process's threads, now."""
    with open("/proc/loadavg") as f:
        n = int(f.read().split()[3].split("/")[0])
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                n -= f.read().rsplit(")", 1)[1].split()[0] == "R"
        except (OSError, IndexError):
            pass
    return max(n, 0)


def others_running():
    """Runnable tasks other than this test's, averaged over 20 samples 10 ms apart."""
    n = 0
    for _ in range(20):
        n += others_running_now()
        time.sleep(0.01)
    return n / 20


def p99(xs):
    xs = sorted(xs)
    return xs[int(0.99 * (len(xs) - 1))]

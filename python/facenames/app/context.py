"""What the app's windows share: the engine, its event bridge, the asynchronous runner and the
library handles for people, opened for one library directory."""
import gc
import getpass
import os
import sys

from .. import engine as fe
from ..errors import FacenamesError
from ..qt import Async, Bridge


# The app's own defaults, under the library's file and the environment: the panel redraws
# progress 5 times a second, so more than 10 snapshots a second per job would only be parsed and
# dropped on the UI thread.
APP_DEFAULTS = {"events.progress_hz": 10}


def default_library():
    """$FACENAMES_LIBRARY, else $XDG_DATA_HOME/facenames, else ~/.local/share/facenames (as the
    CLI)."""
    if os.environ.get("FACENAMES_LIBRARY"):
        return os.environ["FACENAMES_LIBRARY"]
    data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(data, "facenames")


class AppContext:
    """Opens the engine (which runs jobs on `threads` workers in this process), the bridge on the
    calling (UI) thread, and two people handles: `reader` for the UI thread's quick reads, `writer`
    for naming, used only through `run` (it may wait for the database lock)."""

    def __init__(self, library_dir, threads=-1, config_values=None, actor=None):
        self.library_dir = os.path.abspath(library_dir)
        os.makedirs(self.library_dir, exist_ok=True)
        self.config = fe.Config.for_library(self.library_dir, config_values, APP_DEFAULTS)
        self.engine = fe.Engine(self.library_dir, self.config)
        self.engine.start(threads)
        _lower_worker_priority()
        # A pool thread turning 20k faces into Python objects holds the GIL in runs of the switch
        # interval (5 ms by default); the UI thread needs the GIL for every cell it paints, so a
        # repaint could wait for several such runs. 1 ms runs cut that wait fivefold at a small
        # cost in switches.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
        self.bridge = Bridge(self.engine, known_jobs=[j["id"] for j in self.engine.list()])
        self.async_ = Async()
        self.actor = actor or f"app:{_login()}"
        self.people_error = None
        self.reader = self.writer = self.thumbs = None
        try:
            from ..people import Library

            self.reader = Library(self.library_dir, self.config)
            self.writer = Library(self.library_dir, self.config, actor=self.actor)
            self.thumbs = Library(self.library_dir, self.config)
        except FacenamesError as exc:
            self.people_error = exc.message
        # The cyclic collector's full (generation 2) pass walks every object it tracks, holding
        # the GIL, wherever the allocation that set it off happened: 45 ms on a 2-core VM (seen
        # with gc.callbacks inside the UI thread's longest gap) once the app, Qt and a 20k-face
        # page were loaded, set off by the pool thread decoding those faces; test_huge_cluster's
        # longest gap was 52-83 ms in half its runs, against its 50 ms bound, and 15-31 ms with
        # the freeze. What exists once the app has started
        # (modules, classes, Qt's wrappers) lives as long as the process; gc.freeze moves it out
        # of the collector's view, so later full passes walk only what came after.
        gc.freeze()

    def run(self, fn, *args, on_done=None, on_error=None, **kwargs):
        """fn(*args) on the pool; on_done(result) / on_error(exc) on the UI thread."""
        return self.async_.call(fn, *args, on_done=on_done, on_error=on_error, **kwargs)

    def run_latest(self, key, fn, *args, on_done=None, on_error=None, **kwargs):
        """run() for a reload whose newest result is the only one that counts (Async.call_latest):
        one call per key at a time, the last result delivered read after the last request."""
        self.async_.call_latest(key, fn, *args, on_done=on_done, on_error=on_error, **kwargs)

    def close(self):
        self.bridge.stop()
        self.async_.wait()
        for lib in (self.reader, self.writer, self.thumbs):
            if lib:
                lib.close()
        self.engine.close()


def _login():
    try:
        return getpass.getuser()
    except Exception:
        return "user"


def _lower_worker_priority(nice=10):
    """Gives every thread of this process but the calling (UI) one a lower CPU priority: the
    engine's workers then yield the core to the event loop whenever it has work, so a job that
    keeps every core busy never delays a repaint (Linux: a thread's nice value is its own).
    Best effort: elsewhere, or without permission, nothing changes."""
    import threading

    try:
        me = threading.get_native_id()
        for tid in os.listdir("/proc/self/task"):
            if int(tid) != me:
                os.setpriority(os.PRIO_PROCESS, int(tid), max(nice, os.getpriority(
                    os.PRIO_PROCESS, int(tid))))
    except (OSError, AttributeError, ValueError):
        pass

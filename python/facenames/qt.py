"""Qt glue: the bridge from engine events to Qt signals, and asynchronous calls.

Bridge watches the engine's event descriptor with a QSocketNotifier on the thread that creates it
(the UI thread) and turns each event into a signal there, so slots never run on a worker thread.
The engine reports jobs of other processes (a `facenames ingest` in a terminal, a `facenames
worker`) with the same events, so they appear and move too.

Async runs blocking calls (writes that may wait for the database lock, reads that may wait behind
them) on a QThreadPool and hands the result back as a signal delivered on the UI thread.
"""
import itertools
import traceback

from PyQt5.QtCore import QObject, QRunnable, QSocketNotifier, QThreadPool, pyqtSignal, pyqtSlot

from .engine import FINAL_STATES


class Bridge(QObject):
    """Engine events as signals, on the thread that made the Bridge.

    jobAdded(id, state): a job this bridge had not seen (enqueued here or elsewhere).
    stateChanged(id, state), progress(id, dict), itemError(id, dict), audit(id, dict),
    and anyEvent(Event) for every event."""

    jobAdded = pyqtSignal(int, str)
    stateChanged = pyqtSignal(int, str)
    progress = pyqtSignal(int, object)
    itemError = pyqtSignal(int, object)
    audit = pyqtSignal(int, object)
    anyEvent = pyqtSignal(object)

    # Events handled per wake-up: a burst (a bulk enqueue) is spread over several turns of the
    # event loop instead of stalling it; the descriptor stays readable, so the notifier fires again.
    MAX_PER_WAKE = 512

    def __init__(self, engine, known_jobs=(), parent=None):
        super().__init__(parent)
        self.engine = engine
        self.known = set(known_jobs)
        self._notifier = QSocketNotifier(engine.events_fd(), QSocketNotifier.Read, self)
        self._notifier.activated.connect(self._on_readable)

    def stop(self):
        """Stops watching (before the engine closes)."""
        self._notifier.setEnabled(False)

    @pyqtSlot()
    def _on_readable(self):
        self.pump(self.MAX_PER_WAKE)

    def pump(self, limit=MAX_PER_WAKE):
        """Drains up to `limit` events and emits them; returns how many. Never blocks."""
        if self.engine.closed:
            return 0
        done = 0
        while done < limit:
            evs = self.engine.drain(min(256, limit - done))
            if not evs:
                break
            done += len(evs)
            for ev in evs:
                self._emit(ev)
        return done

    def _emit(self, ev):
        if ev.job not in self.known:
            self.known.add(ev.job)
            self.jobAdded.emit(ev.job, ev.state)
        if ev.kind == "state":
            self.stateChanged.emit(ev.job, ev.data.get("state", ev.state))
        elif ev.kind == "progress":
            self.progress.emit(ev.job, ev.data)
        elif ev.kind == "error":
            self.itemError.emit(ev.job, ev.data)
        elif ev.kind == "audit":
            self.audit.emit(ev.job, ev.data)
        self.anyEvent.emit(ev)


class _Task(QRunnable):
    def __init__(self, owner, token, fn, args, kwargs):
        super().__init__()
        self.owner, self.token, self.fn, self.args, self.kwargs = owner, token, fn, args, kwargs

    def run(self):
        try:
            result = self.fn(*self.args, **self.kwargs)
        except Exception as exc:  # handed to the UI thread, which decides what to show
            exc.traceback_text = traceback.format_exc()
            self.owner._failed.emit(self.token, exc)
        else:
            self.owner._done.emit(self.token, result)


class Async(QObject):
    """Runs callables on a thread pool; their result or exception comes back on the thread that
    made this object, through the callbacks given to call() and the finished/failed signals."""

    _done = pyqtSignal(int, object)
    _failed = pyqtSignal(int, object)
    finished = pyqtSignal(int, object)
    failed = pyqtSignal(int, object)

    def __init__(self, parent=None, max_threads=2):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._tokens = itertools.count(1)
        self._callbacks = {}
        self._latest = {}  # call_latest's key -> None (one running) or the request to run next
        self._done.connect(self._on_done)
        self._failed.connect(self._on_failed)

    def call(self, fn, *args, on_done=None, on_error=None, **kwargs):
        """Queues fn(*args, **kwargs); returns a token. on_done(result) / on_error(exc) run on
        this object's thread."""
        token = next(self._tokens)
        self._callbacks[token] = (on_done, on_error)
        self.pool.start(_Task(self, token, fn, args, kwargs))
        return token

    def call_latest(self, key, fn, *args, on_done=None, on_error=None, **kwargs):
        """call() for reads whose newest result is the only one that counts (a job's record after
        each of its events, a view's reload after each write): at most one call per key runs at a
        time; a request made while one runs waits for it, and then runs with the latest request's
        function, arguments and callbacks (those in between are dropped), while the running
        call's result, read before that request, is dropped too. So the last result delivered for
        a key comes from a call that started after the last request: two calls running at once
        on the pool could finish in either order and leave the older result on screen."""
        if key in self._latest:
            self._latest[key] = (fn, args, kwargs, on_done, on_error)
            return
        self._latest[key] = None

        def settle(callback):
            def deliver(value):
                after = self._latest.pop(key)
                if after is None:
                    if callback:
                        callback(value)
                    return
                fn2, args2, kwargs2, done2, error2 = after
                self.call_latest(key, fn2, *args2, on_done=done2, on_error=error2, **kwargs2)

            return deliver

        self.call(fn, *args, on_done=settle(on_done), on_error=settle(on_error), **kwargs)

    @property
    def pending(self):
        return len(self._callbacks)

    def wait(self, msecs=-1):
        """Waits for every queued call to run (for shutdown and tests); callbacks still arrive
        through the event loop."""
        return self.pool.waitForDone(msecs)

    @pyqtSlot(int, object)
    def _on_done(self, token, result):
        on_done, _ = self._callbacks.pop(token, (None, None))
        if on_done:
            on_done(result)
        self.finished.emit(token, result)

    @pyqtSlot(int, object)
    def _on_failed(self, token, exc):
        _, on_error = self._callbacks.pop(token, (None, None))
        if on_error:
            on_error(exc)
        self.failed.emit(token, exc)


def is_final(state):
    return state in FINAL_STATES

"""The job engine from Python: configuration, engine lifetime, the controller API and events.

Every method calls one libfacenames function and turns a failure into FacenamesError. Methods
that write (enqueue, cancel, resume, retry, resolve) may wait up to db.busy_timeout_ms for the
database lock; reads (inspect, list) may wait for the engine's API mutex behind such a write. So a
UI never calls them on its own thread: it uses facenames.qt.Async. drain() never blocks and is
what the UI thread calls when events_fd() is readable (facenames.qt.Bridge does it).
"""
import base64
import ctypes
import json
import os
import re
from dataclasses import dataclass, field

from ._lib import lib, take_string
from .errors import FacenamesError, raise_for

STATES = ("queued", "running", "cancelled", "completed", "failed")
FINAL_STATES = ("cancelled", "completed", "failed")
PRIORITIES = ("background", "normal", "interactive")
RESOLUTIONS = ("pending", "skip", "retry")
EVENT_KINDS = ("state", "progress", "error", "audit")


# Documents larger than this are decoded element by element (see _loads).
INCREMENTAL_JSON_BYTES = 256 * 1024
_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")


def _loads(text):
    """json.loads, except that a large document's top-level array, or the "errors" array that
    closes an inspect object, is decoded one element per call. json.loads is one C call that holds
    the GIL from start to end (a job with 20k errors is 3 MB of JSON, about 40 ms), and a UI
    thread that needs the GIL meanwhile stalls; between two elements the interpreter hands the
    GIL over."""
    if len(text) < INCREMENTAL_JSON_BYTES:
        return json.loads(text)
    if text.startswith("["):
        return _array(text, 0)
    # The library writes "errors" as the object's last key (fn_job_inspect_json); an item or a
    # message holding the same characters is escaped (\"), so the last match is the key.
    key = ',"errors":['
    pos = text.rfind(key)
    if pos < 0 or not text.endswith("]}"):
        return json.loads(text)
    head = json.loads(text[:pos] + "}")
    head["errors"] = _array(text, pos + len(key) - 1)
    return head


def _array(text, i):
    """The JSON array starting at text[i] ("["), decoded one element per call."""
    out = []
    i = _WS.match(text, i + 1).end()
    if text[i] == "]":
        return out
    while True:
        value, i = _DECODER.raw_decode(text, i)
        out.append(value)
        i = _WS.match(text, i).end()
        if text[i] == "]":
            return out
        if text[i] != ",":
            raise ValueError(f"malformed JSON array at offset {i}")
        i = _WS.match(text, i + 1).end()


def _b(s):
    if s is None:
        return None
    return s if isinstance(s, bytes) else str(s).encode()


def item_bytes(err):
    """The exact bytes of an error's item as the library reports it in JSON (docs/cli.md, "Paths in
    JSON"): "item_b64" when the path is not UTF-8, else "item"."""
    if err.get("item_b64"):
        return base64.b64decode(err["item_b64"])
    return err.get("item", "").encode()


class Config:
    """A configuration (an opaque fn_config on the library's heap). Keys and values are those of
    docs/configuration.md; a bad one raises FacenamesError (code config) naming it."""

    def __init__(self, values=None):
        self._ptr = lib().fn_config_new()
        if not self._ptr:
            raise MemoryError("fn_config_new")
        for k, v in (values or {}).items():
            self.set(k, v)

    @classmethod
    def for_library(cls, library_dir, values=None, defaults=None):
        """As the CLI builds it: defaults (the library's, then `defaults`), <library>/
        facenames.conf (when there is one), FACENAMES_* environment variables, then `values`;
        checked."""
        cfg = cls(defaults)
        conf = os.path.join(library_dir, "facenames.conf")
        if os.path.exists(conf):
            cfg.load_file(conf)
        cfg.apply_env()
        for k, v in (values or {}).items():
            cfg.set(k, v)
        cfg.validate()
        return cfg

    def _call(self, fn, *args):
        err = ctypes.create_string_buffer(512)
        raise_for(fn(self._ptr, *args, err, len(err)), err.value)

    def set(self, key, value):
        if isinstance(value, bool):
            value = "true" if value else "false"
        self._call(lib().fn_config_set, _b(key), _b(value))

    def load_file(self, path):
        self._call(lib().fn_config_load_file, os.fsencode(path))

    def apply_env(self):
        self._call(lib().fn_config_apply_env)

    def validate(self):
        self._call(lib().fn_config_validate)

    def get(self, key):
        out = ctypes.create_string_buffer(1100)
        rc = lib().fn_config_get(self._ptr, _b(key), out, len(out))
        raise_for(rc, f"no configuration key {key!r}")
        return out.value.decode()

    @property
    def ptr(self):
        return self._ptr

    def __del__(self):
        try:
            if getattr(self, "_ptr", None):
                lib().fn_config_free(self._ptr)
                self._ptr = None
        except Exception:  # at interpreter exit the modules may be gone: the OS frees it
            pass


class _EnqueueOpts(ctypes.Structure):
    _fields_ = [("type", ctypes.c_char_p), ("payload", ctypes.c_char_p),
                ("checkpoint", ctypes.c_char_p), ("priority", ctypes.c_int),
                ("gpu_slots", ctypes.c_int), ("mem_mb", ctypes.c_int)]


class _Followup(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int64), ("continued", ctypes.c_int),
                ("pending", ctypes.c_size_t), ("retry", ctypes.c_size_t),
                ("skipped", ctypes.c_size_t), ("left", ctypes.c_size_t), ("items", ctypes.c_size_t)]


class _Selection(ctypes.Structure):
    _fields_ = [("codes", ctypes.POINTER(ctypes.c_char_p)), ("n_codes", ctypes.c_size_t),
                ("items", ctypes.POINTER(ctypes.c_char_p)), ("n_items", ctypes.c_size_t)]


class _Event(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("job", ctypes.c_int64), ("state", ctypes.c_int),
                ("json", ctypes.c_void_p)]


@dataclass
class Followup:
    """What a resume or retry took (fn_followup)."""
    id: int
    continued: bool
    pending: int
    retry: int
    skipped: int
    left: int
    items: int


@dataclass
class Event:
    """One engine event: kind is "state", "progress", "error" or "audit"; state the job's state
    name when it was queued; data the kind's JSON object, parsed."""
    kind: str
    job: int
    state: str
    data: dict = field(default_factory=dict)


def _selection(codes, items):
    if not codes and not items:
        return None
    codes = [_b(c) for c in (codes or ())]
    items = [i if isinstance(i, bytes) else os.fsencode(i) for i in (items or ())]
    ca = (ctypes.c_char_p * max(1, len(codes)))(*codes)
    ia = (ctypes.c_char_p * max(1, len(items)))(*items)
    sel = _Selection(ca, len(codes), ia, len(items))
    sel._keep = (ca, ia)  # the arrays must live as long as the struct
    return sel


class Engine:
    """One open library's job engine (fn_engine). Methods may be called from any thread, except
    drain() (one thread at a time: the UI thread) and close() (not from a job)."""

    def __init__(self, library_dir, config=None, readonly=False, register_tasks=True):
        self._cfg = config if config is not None else Config.for_library(library_dir)
        ptr = ctypes.c_void_p()
        opener = lib().fn_engine_open_readonly if readonly else lib().fn_engine_open
        rc = opener(os.fsencode(library_dir), self._cfg.ptr, ctypes.byref(ptr))
        if rc < 0:
            raise_for(rc, lib().fn_engine_errmsg(None))
        self._e = ptr.value
        self.readonly = readonly
        self._events = (_Event * 256)()
        if register_tasks and not readonly:
            self._check(lib().fn_tasks_register_all(self._e))

    def _check(self, rc):
        if rc < 0:
            raise_for(rc, lib().fn_engine_errmsg(self._e))
        return rc

    def _handle(self):
        if not self._e:
            raise FacenamesError(-9, "state", "the engine is closed")
        return self._e

    # ---- lifetime
    def start(self, threads=-1):
        """Starts `threads` workers (-1: workers.cpu_max; 0: inline mode, see run_pending)."""
        self._check(lib().fn_engine_start(self._handle(), threads))

    def run_pending(self, max_jobs=0):
        """Runs queued jobs on this thread (inline mode); returns how many ran."""
        ran = ctypes.c_int(0)
        self._check(lib().fn_engine_run_pending(self._handle(), max_jobs, ctypes.byref(ran)))
        return ran.value

    def close(self):
        """Asks running jobs to yield, joins the workers, closes the database. Idempotent."""
        if self._e:
            lib().fn_engine_close(self._e)
            self._e = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def closed(self):
        return not self._e

    @property
    def library_dir(self):
        return os.fsdecode(lib().fn_engine_library_dir(self._handle()))

    def rate_unit(self, job_type):
        return lib().fn_engine_rate_unit(self._handle(), _b(job_type)).decode()

    # ---- controller
    def enqueue(self, job_type, payload=None, priority="normal", checkpoint=None,
                follow_same=False):
        """Enqueues a job and returns its id. `payload` is a dict or JSON text. With follow_same an
        identical queued or running job is returned instead (fn_enqueue_or_continue)."""
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        if isinstance(checkpoint, (dict, list)):
            checkpoint = json.dumps(checkpoint)
        opts = _EnqueueOpts(_b(job_type), _b(payload), _b(checkpoint),
                            PRIORITIES.index(priority), -1, -1)
        jid = ctypes.c_int64(0)
        if follow_same:
            cont = ctypes.c_int(0)
            self._check(lib().fn_enqueue_or_continue(self._handle(), ctypes.byref(opts),
                                                     ctypes.byref(jid), ctypes.byref(cont)))
        else:
            self._check(lib().fn_enqueue_ex(self._handle(), ctypes.byref(opts), ctypes.byref(jid)))
        return jid.value

    def _json_out(self, fn, *args):
        out = ctypes.c_void_p()
        self._check(fn(self._handle(), *args, ctypes.byref(out)))
        return _loads(take_string(out.value).decode())

    def inspect(self, job_id):
        """The job as `facenames jobs show --json` prints it (the contract's fields)."""
        return self._json_out(lib().fn_job_inspect_json, job_id)

    def list(self, state=None, limit=0):
        """Jobs newest first, without their errors (n_errors, parent, retry_only, fail_reason
        added)."""
        return self._json_out(lib().fn_job_list_json, -1 if state is None else STATES.index(state),
                              limit)

    def errors(self, job_id, codes=(), items=()):
        """The job's errors with their decisions (as `facenames jobs errors --json`)."""
        sel = _selection(codes, items)
        return self._json_out(lib().fn_job_errors_json, job_id,
                              ctypes.byref(sel) if sel else None)

    def summary(self, job_id):
        """The person-readable summary `facenames jobs show` prints."""
        info = ctypes.c_void_p()
        self._check(lib().fn_job_inspect(self._handle(), job_id, ctypes.byref(info)))
        try:
            out = ctypes.c_void_p()
            self._check(lib().fn_job_summary(self._handle(), info, ctypes.byref(out)))
            return take_string(out.value).decode("utf-8", "replace")
        finally:
            lib().fn_job_info_free(info)

    def log(self, job_id):
        """The job's lifecycle log lines."""
        out = ctypes.c_void_p()
        self._check(lib().fn_job_log(self._handle(), job_id, ctypes.byref(out)))
        return (take_string(out.value) or b"").decode("utf-8", "replace")

    def cancel(self, job_id):
        self._check(lib().fn_job_cancel(self._handle(), job_id))

    @staticmethod
    def _followup(f):
        return Followup(f.id, bool(f.continued), f.pending, f.retry, f.skipped, f.left, f.items)

    def resume(self, job_id):
        f = _Followup()
        self._check(lib().fn_job_resume_ex(self._handle(), job_id, ctypes.byref(f)))
        return self._followup(f)

    def retry(self, job_id, codes=(), items=()):
        sel = _selection(codes, items)
        f = _Followup()
        self._check(lib().fn_job_retry_ex(self._handle(), job_id,
                                          ctypes.byref(sel) if sel else None, ctypes.byref(f)))
        return self._followup(f)

    def resolve_errors(self, job_id, resolution, codes=(), items=(), who=None):
        """Marks the selected errors (all when none is named) `resolution` ("skip", "retry",
        "pending"); returns how many changed."""
        sel = _selection(codes, items)
        changed = ctypes.c_size_t(0)
        self._check(lib().fn_job_errors_resolve(self._handle(), job_id,
                                                ctypes.byref(sel) if sel else None,
                                                RESOLUTIONS.index(resolution), _b(who),
                                                ctypes.byref(changed)))
        return changed.value

    def wait(self, job_id, timeout_ms=-1):
        """Waits for the job's end; returns its final state name (FacenamesError busy on
        timeout)."""
        st = ctypes.c_int(0)
        self._check(lib().fn_job_wait(self._handle(), job_id, timeout_ms, ctypes.byref(st)))
        return STATES[st.value]

    # ---- events
    def events_fd(self):
        """A descriptor readable while events are queued (do not read or close it)."""
        return lib().fn_engine_events_fd(self._handle())

    def drain(self, cap=256):
        """The queued events, at most `cap`, oldest first. Never blocks."""
        cap = min(cap, len(self._events))
        n = ctypes.c_size_t(0)
        self._check(lib().fn_engine_events_drain(self._handle(), self._events, cap,
                                                 ctypes.byref(n)))
        out = []
        for i in range(n.value):
            ev = self._events[i]
            text = ctypes.string_at(ev.json) if ev.json else b"{}"
            try:
                data = json.loads(text.decode("utf-8", "replace"))
            except ValueError:
                data = {"text": text.decode("utf-8", "replace")}
            out.append(Event(EVENT_KINDS[ev.kind] if ev.kind < len(EVENT_KINDS) else str(ev.kind),
                             ev.job, STATES[ev.state] if 0 <= ev.state < 5 else str(ev.state),
                             data))
            lib().fn_event_clear(ctypes.byref(ev))
        return out

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

"""Loads libfacenames.so and declares the C functions the binding calls (ctypes, no compiled code).

Where the library is: $FACENAMES_LIB (a path to the .so), else the build tree next to this package
(<repo>/build/libfacenames.so, for running from a checkout), else the system's (ldconfig).
Functions of a part this build lacks (the people API before it is implemented) are looked up when
first called, so the rest of the binding works without them and the call says what is missing.
"""
import ctypes
import ctypes.util
import os
import threading

c_int64_p = ctypes.POINTER(ctypes.c_int64)
c_size_p = ctypes.POINTER(ctypes.c_size_t)
c_char_pp = ctypes.POINTER(ctypes.c_char_p)


def _find():
    env = os.environ.get("FACENAMES_LIB")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    for build in ("build", "build-rel"):
        cand = os.path.join(here, "..", "..", build, "libfacenames.so")
        if os.path.exists(cand):
            return os.path.normpath(cand)
    found = ctypes.util.find_library("facenames")
    if found:
        return found
    raise OSError("libfacenames.so not found: build it (scripts/build build) or set FACENAMES_LIB")


_lock = threading.Lock()
_lib = None


# Prototypes: name -> (restype, argtypes). Pointers the library hands back for the caller to free
# are declared c_void_p so ctypes does not copy and lose them; the binding copies and frees.
V = ctypes.c_void_p
I = ctypes.c_int
PROTOS = {
    # error.h
    "fn_strerror": (ctypes.c_char_p, [I]),
    "fn_errname": (ctypes.c_char_p, [I]),
    "fn_err_from_name": (I, [ctypes.c_char_p]),
    # config.h
    "fn_config_new": (V, []),
    "fn_config_free": (None, [V]),
    "fn_config_set": (I, [V, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]),
    "fn_config_load_file": (I, [V, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]),
    "fn_config_apply_env": (I, [V, ctypes.c_char_p, ctypes.c_size_t]),
    "fn_config_validate": (I, [V, ctypes.c_char_p, ctypes.c_size_t]),
    "fn_config_get": (I, [V, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]),
    # jobs.h
    "fn_engine_open": (I, [ctypes.c_char_p, V, ctypes.POINTER(V)]),
    "fn_engine_open_readonly": (I, [ctypes.c_char_p, V, ctypes.POINTER(V)]),
    "fn_engine_start": (I, [V, I]),
    "fn_engine_run_pending": (I, [V, I, ctypes.POINTER(I)]),
    "fn_engine_close": (None, [V]),
    "fn_engine_errmsg": (ctypes.c_char_p, [V]),
    "fn_engine_library_dir": (ctypes.c_char_p, [V]),
    "fn_engine_events_fd": (I, [V]),
    "fn_engine_rate_unit": (ctypes.c_char_p, [V, ctypes.c_char_p]),
    "fn_tasks_register_all": (I, [V]),
    "fn_enqueue_or_continue": (I, [V, V, c_int64_p, ctypes.POINTER(I)]),
    "fn_enqueue_ex": (I, [V, V, c_int64_p]),
    "fn_job_inspect_json": (I, [V, ctypes.c_int64, ctypes.POINTER(V)]),
    "fn_job_list_json": (I, [V, I, ctypes.c_size_t, ctypes.POINTER(V)]),
    "fn_job_inspect": (I, [V, ctypes.c_int64, ctypes.POINTER(V)]),
    "fn_job_info_free": (None, [V]),
    "fn_job_summary": (I, [V, V, ctypes.POINTER(V)]),
    "fn_job_cancel": (I, [V, ctypes.c_int64]),
    "fn_job_resume_ex": (I, [V, ctypes.c_int64, V]),
    "fn_job_retry_ex": (I, [V, ctypes.c_int64, V, V]),
    "fn_job_errors_resolve": (I, [V, ctypes.c_int64, V, I, ctypes.c_char_p, c_size_p]),
    "fn_job_errors_json": (I, [V, ctypes.c_int64, V, ctypes.POINTER(V)]),
    "fn_job_wait": (I, [V, ctypes.c_int64, I, ctypes.POINTER(I)]),
    "fn_job_log": (I, [V, ctypes.c_int64, ctypes.POINTER(V)]),
    "fn_engine_events_drain": (I, [V, V, ctypes.c_size_t, c_size_p]),
    "fn_event_clear": (None, [V]),
    "fn_free": (None, [V]),
    # people.h
    "fn_library_open": (I, [ctypes.c_char_p, V, ctypes.POINTER(V)]),
    "fn_library_close": (None, [V]),
    "fn_library_errmsg": (ctypes.c_char_p, [V]),
    "fn_library_set_actor": (I, [V, ctypes.c_char_p]),
    "fn_library_free": (None, [V]),
    "fn_people_list": (I, [V, ctypes.POINTER(V), c_size_p]),
    "fn_persons_free": (None, [V, ctypes.c_size_t]),
    "fn_people_find": (I, [V, ctypes.c_char_p, V]),
    "fn_clusters_list": (I, [V, ctypes.c_size_t, ctypes.POINTER(V), c_size_p]),
    "fn_faces_query": (I, [V, V, ctypes.POINTER(V), c_size_p]),
    "fn_face_thumbnail": (I, [V, ctypes.c_int64, ctypes.POINTER(V), c_size_p]),
    "fn_photo_path": (I, [V, ctypes.c_int64, ctypes.POINTER(V)]),
    "fn_photos_list": (I, [V, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t,
                           ctypes.POINTER(V), c_size_p]),
    "fn_photos_free": (None, [V, ctypes.c_size_t]),
    "fn_people_name_cluster": (I, [V, ctypes.c_int64, ctypes.c_char_p, c_int64_p, c_int64_p]),
    "fn_people_create": (I, [V, ctypes.c_char_p, c_int64_p, c_int64_p]),
    "fn_faces_assign": (I, [V, c_int64_p, ctypes.c_size_t, ctypes.c_int64, c_int64_p]),
    "fn_faces_assign_named": (I, [V, c_int64_p, ctypes.c_size_t, ctypes.c_char_p, c_int64_p,
                                  c_int64_p]),
    "fn_faces_unassign": (I, [V, c_int64_p, ctypes.c_size_t, c_int64_p]),
    "fn_faces_ignore": (I, [V, c_int64_p, ctypes.c_size_t, c_int64_p]),
    "fn_people_rename": (I, [V, ctypes.c_int64, ctypes.c_char_p, c_int64_p]),
    "fn_people_merge": (I, [V, ctypes.c_int64, ctypes.c_int64, c_int64_p]),
    "fn_people_split": (I, [V, ctypes.c_int64, c_int64_p, ctypes.c_size_t, ctypes.c_char_p,
                            c_int64_p, c_int64_p]),
    "fn_people_delete": (I, [V, ctypes.c_int64, c_int64_p]),
    "fn_suggestions_list": (I, [V, ctypes.c_int64, ctypes.c_size_t, ctypes.POINTER(V), c_size_p]),
    "fn_suggestions_accept": (I, [V, c_int64_p, ctypes.c_size_t, c_int64_p]),
    "fn_suggestions_reject": (I, [V, c_int64_p, ctypes.c_size_t, c_int64_p]),
    "fn_audit_list": (I, [V, ctypes.c_int64, ctypes.c_size_t, ctypes.POINTER(V), c_size_p]),
    "fn_audit_free": (None, [V, ctypes.c_size_t]),
    "fn_people_undo": (I, [V, ctypes.c_int64, c_int64_p]),
}


class _Lib:
    """The loaded library: attribute access returns the declared C function."""

    def __init__(self, path):
        self.path = path
        self.dll = ctypes.CDLL(path)

    def has(self, name):
        return hasattr(self.dll, name)

    def __getattr__(self, name):
        from .errors import FacenamesError

        try:
            fn = getattr(self.dll, name)
        except AttributeError:
            raise FacenamesError(-12, "unsupported",
                                 f"{name} is not in {self.path}: this build lacks it") from None
        restype, argtypes = PROTOS[name]
        fn.restype = restype
        fn.argtypes = argtypes
        self.__dict__[name] = fn
        return fn


def lib():
    """The library, loaded on first use (thread-safe)."""
    global _lib
    with _lock:
        if _lib is None:
            _lib = _Lib(_find())
        return _lib


def take_string(ptr, free_name="fn_free"):
    """Copies a library-allocated C string at `ptr` into Python bytes and frees it with the
    library's own free function (never Python's or libc's guess)."""
    if not ptr:
        return None
    try:
        return ctypes.string_at(ptr)
    finally:
        getattr(lib(), free_name)(ptr)

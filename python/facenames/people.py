"""The people API from Python (include/facenames/people.h): reading persons, clusters, faces,
thumbnails and photos, naming, and undo.

A Library is one database connection. The C handle may be used by one thread at a time; this class
serialises its calls with a lock, so it may be shared, but a write waits for the database lock (up
to db.busy_timeout_ms): a UI calls writes through facenames.qt.Async and keeps a second Library
for its own quick reads (thumbnails), which WAL never makes wait.
"""
import ctypes
import os
import struct
import threading
from dataclasses import dataclass
from typing import NamedTuple

from ._lib import lib
from .errors import raise_for

FACE_STATES = ("auto", "confirmed", "ignored")


class _Person(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int64), ("name", ctypes.c_char_p), ("faces", ctypes.c_int64),
                ("confirmed", ctypes.c_int64), ("cover_face", ctypes.c_int64),
                ("created_at", ctypes.c_int64)]


class _PersonOut(ctypes.Structure):
    """fn_person as fn_people_find fills it: the name is the caller's to free, so it is kept as a
    raw pointer."""
    _fields_ = [("id", ctypes.c_int64), ("name", ctypes.c_void_p), ("faces", ctypes.c_int64),
                ("confirmed", ctypes.c_int64), ("cover_face", ctypes.c_int64),
                ("created_at", ctypes.c_int64)]


class _Cluster(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int64), ("faces", ctypes.c_int64), ("cover_face", ctypes.c_int64),
                ("person_id", ctypes.c_int64)]


class _Face(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int64), ("photo_id", ctypes.c_int64), ("x", ctypes.c_float),
                ("y", ctypes.c_float), ("width", ctypes.c_float), ("height", ctypes.c_float),
                ("score", ctypes.c_float), ("person_id", ctypes.c_int64),
                ("cluster_id", ctypes.c_int64), ("state", ctypes.c_int),
                ("user_drawn", ctypes.c_int),
                ("suggestion_person", ctypes.c_int64), ("suggestion_confidence", ctypes.c_float)]


class _FaceQuery(ctypes.Structure):
    _fields_ = [("person_id", ctypes.c_int64), ("cluster_id", ctypes.c_int64),
                ("photo_id", ctypes.c_int64), ("state", ctypes.c_int), ("limit", ctypes.c_size_t),
                ("offset", ctypes.c_size_t)]


class _Suggestion(ctypes.Structure):
    _fields_ = [("face_id", ctypes.c_int64), ("person_id", ctypes.c_int64),
                ("confidence", ctypes.c_float), ("distance", ctypes.c_float),
                ("margin", ctypes.c_float), ("support_face", ctypes.c_int64)]


class _Audit(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int64), ("at", ctypes.c_int64), ("actor", ctypes.c_char_p),
                ("action", ctypes.c_char_p), ("detail", ctypes.c_char_p), ("faces", ctypes.c_int64),
                ("job_id", ctypes.c_int64), ("undone_by", ctypes.c_int64),
                ("undoes", ctypes.c_int64)]


class _Photo(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int64), ("path", ctypes.c_void_p), ("width", ctypes.c_int),
                ("height", ctypes.c_int), ("taken_at", ctypes.c_int64), ("faces", ctypes.c_int),
                ("status", ctypes.c_int)]


class Photo(NamedTuple):
    """One photo (fn_photo_entry). path is bytes: file names need not be UTF-8. status: "ok"
    (faces found), "no_faces" or "error"."""
    id: int
    path: bytes
    width: int
    height: int
    taken_at: int
    faces: int
    status: str


_PHOTO_STATUS = ("ok", "no_faces", "error")


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    faces: int
    confirmed: int
    cover_face: int
    created_at: int


@dataclass(frozen=True)
class Cluster:
    id: int
    faces: int
    cover_face: int
    person_id: int


class Face(NamedTuple):
    """One face (fn_library_face). A named tuple, not a dataclass: a query returns every face of a
    cluster, and 20k frozen dataclasses cost a second of interpreter time holding the GIL."""
    id: int
    photo_id: int
    x: float
    y: float
    width: float
    height: float
    score: float
    person_id: int
    cluster_id: int
    state: str
    user_drawn: bool
    suggestion_person: int
    suggestion_confidence: float


# fn_library_face as the struct module reads it (native alignment), padded to its C size, so a query's
# array is decoded by one iter_unpack over its bytes instead of a ctypes access per field.
_FACE_FMT = "@qq5fqqiiqf"
_FACE_FMT += "x" * (ctypes.sizeof(_Face) - struct.calcsize(_FACE_FMT))
assert struct.calcsize(_FACE_FMT) == ctypes.sizeof(_Face)


@dataclass(frozen=True)
class Suggestion:
    face_id: int
    person_id: int
    confidence: float
    distance: float
    margin: float
    support_face: int


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: int
    actor: str
    action: str
    detail: str
    faces: int
    job_id: int
    undone_by: int
    undoes: int


def _s(b):
    return b.decode("utf-8", "replace") if b is not None else ""


def _ids(face_ids):
    ids = list(face_ids)
    return (ctypes.c_int64 * max(1, len(ids)))(*ids), len(ids)


class Library:
    """A library opened for reading and naming (fn_library). Every naming method returns the id
    of the audit entry it wrote."""

    def __init__(self, library_dir, config=None, actor=None):
        self._mu = threading.RLock()
        self._cfg = config  # kept alive: the handle copies it, but be safe with the pointer
        ptr = ctypes.c_void_p()
        rc = lib().fn_library_open(os.fsencode(library_dir), config.ptr if config else None,
                                   ctypes.byref(ptr))
        self._h = ptr.value
        if rc < 0:
            msg = lib().fn_library_errmsg(self._h) if self._h else b""
            if self._h:
                lib().fn_library_close(self._h)
                self._h = None
            raise_for(rc, msg or f"cannot open the library in {library_dir}")
        if actor:
            self.set_actor(actor)

    def close(self):
        with self._mu:
            if self._h:
                lib().fn_library_close(self._h)
                self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _call(self, name, *args):
        """Calls people.h function `name` with the handle first; raises on failure (the message
        is read under the same lock, before another call can replace it)."""
        with self._mu:
            rc = getattr(lib(), name)(self._h, *args)
            if rc < 0:
                raise_for(rc, lib().fn_library_errmsg(self._h))
            return rc

    def set_actor(self, actor):
        self._call("fn_library_set_actor", actor.encode())

    # ---- reading
    def persons(self):
        out, n = ctypes.c_void_p(), ctypes.c_size_t()
        with self._mu:
            self._call("fn_people_list", ctypes.byref(out), ctypes.byref(n))
            try:
                arr = ctypes.cast(out, ctypes.POINTER(_Person))
                return [Person(p.id, _s(p.name), p.faces, p.confirmed, p.cover_face, p.created_at)
                        for p in arr[:n.value]]
            finally:
                lib().fn_persons_free(out, n)

    def find_person(self, which):
        p = _PersonOut()
        with self._mu:
            self._call("fn_people_find", str(which).encode(), ctypes.byref(p))
            name = _s(ctypes.string_at(p.name)) if p.name else ""
            lib().fn_library_free(p.name)
        return Person(p.id, name, p.faces, p.confirmed, p.cover_face, p.created_at)

    def clusters(self, limit=0):
        out, n = ctypes.c_void_p(), ctypes.c_size_t()
        with self._mu:
            self._call("fn_clusters_list", limit, ctypes.byref(out), ctypes.byref(n))
            try:
                arr = ctypes.cast(out, ctypes.POINTER(_Cluster))
                return [Cluster(c.id, c.faces, c.cover_face, c.person_id) for c in arr[:n.value]]
            finally:
                lib().fn_library_free(out)

    def faces(self, person_id=0, cluster_id=0, photo_id=0, state=None, limit=0, offset=0):
        """Faces ordered by id. person_id/cluster_id: 0 any, -1 none; state a name or None."""
        q = _FaceQuery(person_id, cluster_id, photo_id,
                       -1 if state is None else FACE_STATES.index(state), limit, offset)
        out, n = ctypes.c_void_p(), ctypes.c_size_t()
        with self._mu:
            self._call("fn_faces_query", ctypes.byref(q), ctypes.byref(out), ctypes.byref(n))
            try:
                raw = ctypes.string_at(out, n.value * ctypes.sizeof(_Face)) if n.value else b""
            finally:
                lib().fn_library_free(out)
        # decoded outside the lock, in one pass
        return [Face(i, p, x, y, w, h, sc, per, cl, FACE_STATES[st], bool(u), sp, sc2)
                for i, p, x, y, w, h, sc, per, cl, st, u, sp, sc2
                in struct.iter_unpack(_FACE_FMT, raw)]

    def thumbnail(self, face_id):
        """The face's JPEG thumbnail bytes."""
        out, n = ctypes.c_void_p(), ctypes.c_size_t()
        with self._mu:
            self._call("fn_face_thumbnail", face_id, ctypes.byref(out), ctypes.byref(n))
            try:
                return ctypes.string_at(out, n.value)
            finally:
                lib().fn_library_free(out)

    def photos(self, under=None, limit=0, offset=0):
        """The library's photos ordered by path (only those under the folder `under`, bytes or
        str, when given), `limit` of them (0: all) from `offset`."""
        out, n = ctypes.c_void_p(), ctypes.c_size_t()
        if isinstance(under, str):
            under = os.fsencode(under)
        with self._mu:
            self._call("fn_photos_list", under, limit, offset, ctypes.byref(out), ctypes.byref(n))
            try:
                arr = ctypes.cast(out, ctypes.POINTER(_Photo))
                return [Photo(p.id, ctypes.string_at(p.path), p.width, p.height, p.taken_at,
                              p.faces, _PHOTO_STATUS[p.status] if 0 <= p.status < 3 else "?")
                        for p in arr[:n.value]]
            finally:
                lib().fn_photos_free(out, n)

    def photo_path(self, photo_id):
        """The photo's path as stored (bytes: file names need not be UTF-8)."""
        out = ctypes.c_void_p()
        with self._mu:
            self._call("fn_photo_path", photo_id, ctypes.byref(out))
            try:
                return ctypes.string_at(out)
            finally:
                lib().fn_library_free(out)

    def suggestions(self, person_id=0, limit=0):
        out, n = ctypes.c_void_p(), ctypes.c_size_t()
        with self._mu:
            self._call("fn_suggestions_list", person_id, limit, ctypes.byref(out), ctypes.byref(n))
            try:
                arr = ctypes.cast(out, ctypes.POINTER(_Suggestion))
                return [Suggestion(s.face_id, s.person_id, s.confidence, s.distance, s.margin,
                                   s.support_face) for s in arr[:n.value]]
            finally:
                lib().fn_library_free(out)

    def audit(self, since_id=0, limit=0):
        """Audit entries with id > since_id, newest first."""
        out, n = ctypes.c_void_p(), ctypes.c_size_t()
        with self._mu:
            self._call("fn_audit_list", since_id, limit, ctypes.byref(out), ctypes.byref(n))
            try:
                arr = ctypes.cast(out, ctypes.POINTER(_Audit))
                return [AuditEntry(a.id, a.at, _s(a.actor), _s(a.action), _s(a.detail), a.faces,
                                   a.job_id, a.undone_by, a.undoes) for a in arr[:n.value]]
            finally:
                lib().fn_audit_free(out, n)

    # ---- naming (each returns the audit entry's id)
    def _audited(self, name, *args):
        audit = ctypes.c_int64(0)
        self._call(name, *args, ctypes.byref(audit))
        return audit.value

    def name_cluster(self, cluster_id, name):
        """Returns (person_id, audit_id)."""
        pid = ctypes.c_int64(0)
        audit = self._audited("fn_people_name_cluster", cluster_id, name.encode(),
                              ctypes.byref(pid))
        return pid.value, audit

    def create_person(self, name):
        pid = ctypes.c_int64(0)
        audit = self._audited("fn_people_create", name.encode(), ctypes.byref(pid))
        return pid.value, audit

    def assign(self, face_ids, person_id):
        arr, n = _ids(face_ids)
        return self._audited("fn_faces_assign", arr, n, person_id)

    def assign_named(self, face_ids, name):
        """Confirms faces as the person called `name`, creating it when there is none (one audit
        entry). Returns (person_id, audit_id)."""
        arr, n = _ids(face_ids)
        pid = ctypes.c_int64(0)
        audit = self._audited("fn_faces_assign_named", arr, n, name.encode(), ctypes.byref(pid))
        return pid.value, audit

    def unassign(self, face_ids):
        arr, n = _ids(face_ids)
        return self._audited("fn_faces_unassign", arr, n)

    def ignore(self, face_ids):
        arr, n = _ids(face_ids)
        return self._audited("fn_faces_ignore", arr, n)

    def rename(self, person_id, name):
        return self._audited("fn_people_rename", person_id, name.encode())

    def merge(self, from_id, into_id):
        return self._audited("fn_people_merge", from_id, into_id)

    def split(self, person_id, face_ids, new_name):
        """Returns (new_person_id, audit_id)."""
        arr, n = _ids(face_ids)
        pid = ctypes.c_int64(0)
        audit = self._audited("fn_people_split", person_id, arr, n, new_name.encode(),
                              ctypes.byref(pid))
        return pid.value, audit

    def delete_person(self, person_id):
        return self._audited("fn_people_delete", person_id)

    def accept(self, face_ids):
        arr, n = _ids(face_ids)
        return self._audited("fn_suggestions_accept", arr, n)

    def reject(self, face_ids):
        arr, n = _ids(face_ids)
        return self._audited("fn_suggestions_reject", arr, n)

    def undo(self, audit_id=0):
        """Reverts an audit entry (0: the newest in force); returns the undo entry's id."""
        return self._audited("fn_people_undo", audit_id)

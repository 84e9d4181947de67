"""Engine errors as Python exceptions: the fn_err code, its stable name and the sentence saying
what failed (from fn_engine_errmsg / fn_library_errmsg, read on the thread that made the call)."""


class FacenamesError(Exception):
    """A failed libfacenames call. `code` is the negative fn_err value, `name` its identifier
    ("not_found", "conflict" ...), `message` the library's sentence."""

    def __init__(self, code, name, message):
        super().__init__(message or name)
        self.code = code
        self.name = name
        self.message = message

    def __repr__(self):
        return f"FacenamesError({self.code}, {self.name!r}, {self.message!r})"


# The codes (include/facenames/error.h) by the names the library gives them.
NOT_FOUND = -3
BUSY = -6
STATE = -9
CANCELLED = -10
CONFIG = -11
UNSUPPORTED = -12
READONLY = -22
EXISTS = -23
CONFLICT = -24


def raise_for(code, message):
    """Raises FacenamesError for a negative `code` with `message` (bytes or str)."""
    if code >= 0:
        return code
    from ._lib import lib

    name = lib().fn_errname(code).decode()
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    raise FacenamesError(code, name, message or lib().fn_strerror(code).decode())

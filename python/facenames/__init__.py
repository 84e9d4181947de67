"""facenames: the Python binding of libfacenames (ctypes, no compiled extension).

    from facenames import Engine, Library
    with Engine("~/Photos/library") as e:
        e.start()
        job = e.enqueue("ingest", {"paths": ["/home/ann/Pictures"]})

engine.Engine is the job engine (jobs.h), people.Library the people API (people.h), qt the Qt
bridge and asynchronous calls for a UI, app the desktop application.
"""
from .engine import Config, Engine, Event, Followup, item_bytes  # noqa: F401
from .errors import FacenamesError  # noqa: F401
from .people import Library  # noqa: F401

__all__ = ["Config", "Engine", "Event", "Followup", "item_bytes", "FacenamesError", "Library"]

"""Moving records between processes quickly.

A frozen slotted dataclass pickles through ``dataclasses``' generic ``__getstate__`` and
``__setstate__``, which look up the class's fields again for every object: about 100 µs
per :class:`HandshakeRecord` there and back, 2 s of the 11 s a 1 GB capture takes, spent
serially in the process that merges. :func:`dumps` pickles the record classes as their
field values in declaration order instead (a few µs each); plain :func:`pickle.loads`
reads the result back; :func:`loads` does so with the cyclic garbage collector paused,
which would otherwise walk every object already loaded again and again (5× the time for
20,000 records).
"""

from __future__ import annotations

import gc
import io
import pickle
from dataclasses import fields, is_dataclass
from typing import Any

from analyzer.engine import record

_NAMES: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in fields(cls))
    for cls in vars(record).values()
    if isinstance(cls, type) and is_dataclass(cls) and cls.__module__ == record.__name__
}
"""Field names of every dataclass in :mod:`analyzer.engine.record`."""


def rebuild(cls: type, values: tuple[Any, ...]) -> Any:
    """An instance of the (frozen) dataclass ``cls`` with these field values."""
    obj: Any = object.__new__(cls)
    put = object.__setattr__
    for name, value in zip(_NAMES[cls], values, strict=True):
        put(obj, name, value)
    return obj


def _reduce(obj: Any) -> tuple[Any, ...]:
    cls = type(obj)
    return rebuild, (cls, tuple([getattr(obj, n) for n in _NAMES[cls]]))


_TABLE = {cls: _reduce for cls in _NAMES}


def dumps(value: object) -> bytes:
    """``pickle.dumps`` with the fast form for record classes."""
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _TABLE
    pickler.dump(value)
    return out.getvalue()


def loads(blob: bytes) -> Any:
    """``pickle.loads`` with the garbage collector paused (records hold no cycles)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return pickle.loads(blob)
    finally:
        if enabled:
            gc.enable()

"""Moving records between processes quickly.

The record classes pickle as tuples of their field values (see ``_tuple_state`` in
:mod:`analyzer.record`), a few µs each. What is left here is unpickling with the
cyclic garbage collector paused: it would otherwise walk every object already loaded again
and again while thousands of records are read at once (5× the time for 20,000 records).
"""

from __future__ import annotations

import gc
import pickle
from typing import Any


def dumps(value: object) -> bytes:
    """``pickle.dumps`` with the highest protocol."""
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def loads(blob: bytes) -> Any:
    """``pickle.loads`` with the garbage collector paused (records hold no cycles)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return pickle.loads(blob)
    finally:
        if enabled:
            gc.enable()

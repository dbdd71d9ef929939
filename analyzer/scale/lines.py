"""JSONL lines made by the workers (``tlsa analyze --workers N -f jsonl``).

With several workers, the parent's serial work after the parts finish caps the gain:
rendering every record's JSONL line and unpickling every record from the workers' runs.
So for the JSONL output each worker renders its records' lines while it sorts them, and
sorts :data:`Line` entries instead of records (:class:`SortedLines`): the ``(ts, uid)``
key, the rendered line, the record pickled, and what cross-connection evidence needs to
know to leave the record alone (its 4-tuple hash and :func:`sharpen_marks`). The parent
merges the entries (:func:`merge_lines`) and writes a worker's line as it is when
:meth:`Evidence.unchanged <analyzer.diagnosis.cross.Evidence.unchanged>` says the
evidence of the whole run cannot change the record (most records: those that did not
fail, on a 4-tuple used once); only the others are unpickled, sharpened and, if sharpening
changed them, rendered again (:func:`final_lines`). The lines are those of
:func:`analyzer.output.jsonl_line` of the sharpened records: the output is the same,
byte for byte, as one process writes.

Runs stay on disk, as with records (:mod:`analyzer.sorted_records`); an entry takes
about the size of its line and its pickle.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Iterable, Iterator

from analyzer import limits
from analyzer.diagnosis.cross import FAILED, Evidence, sharpen_marks
from analyzer.diagnosis.tuples import tuple_hash
from analyzer.output import jsonl_line
from analyzer.record import HandshakeRecord
from analyzer.sorted_records import Key, Runs, SortedItems, merge_items

Line = tuple[float, str, int, int, bytes, bytes]
"""One record as the JSONL path sorts it: ``ts``, ``uid``, the 4-tuple hash
(:func:`~analyzer.diagnosis.tuples.tuple_hash`), its :func:`sharpen_marks`, its JSONL line
(UTF-8, newline included) and the record pickled."""

Rendered = tuple[str, bool]
"""A record's final JSONL line (newline included), and whether the record failed."""

_HEAD = struct.Struct("<dqBHII")
"""An entry in a run: ts, 4-tuple hash, marks, then the lengths of the uid, the line and
the pickle, which follow."""

_UTF8 = "utf-8"
_ERRORS = "surrogatepass"
"""A string that cannot be written as UTF-8 still fails where the output is written, as
it does in one process, not in a worker."""


def line_entry(r: HandshakeRecord) -> Line:
    """The entry of a diagnosed record (not yet sharpened)."""
    line = (jsonl_line(r) + "\n").encode(_UTF8, _ERRORS)
    blob = pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL)
    return r.ts, r.uid, tuple_hash(r), sharpen_marks(r), line, blob


def line_key(e: Line) -> Key:
    return e[0], e[1]


def dumps_line(e: Line) -> bytes:
    ts, uid, h, marks, line, blob = e
    u = uid.encode(_UTF8, _ERRORS)
    return b"".join((_HEAD.pack(ts, h, marks, len(u), len(line), len(blob)), u, line, blob))


def loads_line(data: bytes) -> Line:
    ts, h, marks, n_uid, n_line, n_blob = _HEAD.unpack_from(data)
    at = _HEAD.size
    uid = data[at : at + n_uid].decode(_UTF8, _ERRORS)
    at += n_uid
    line = data[at : at + n_line]
    at += n_line
    return ts, uid, h, marks, line, data[at : at + n_blob]


class SortedLines(SortedItems[Line]):
    """:class:`~analyzer.sorted_records.SortedRecords` for :data:`Line` entries."""

    def __init__(
        self,
        limit: int = limits.MAX_RECORDS_IN_MEMORY,
        *,
        path: str | None = None,
        fan_in: int = limits.MERGE_FAN_IN,
    ) -> None:
        super().__init__(line_key, dumps_line, loads_line, limit, path=path, fan_in=fan_in)


def merge_lines(sources: Iterable[Runs | Iterable[Line]]) -> Iterator[Line]:
    """:func:`~analyzer.sorted_records.merge` for :data:`Line` entries."""
    return merge_items(sources, line_key, loads_line)


def rendered(r: HandshakeRecord) -> Rendered:
    """A sharpened record's line."""
    return jsonl_line(r) + "\n", r.outcome == "failed"


def final_lines(entries: Iterable[Line], evidence: Evidence) -> Iterator[Rendered]:
    """The lines of the sharpened records: the entry's own line unless ``evidence`` may
    change the record."""
    unchanged = evidence.unchanged
    for _, _, h, marks, line, blob in entries:
        if unchanged(h, marks):
            yield line.decode(_UTF8, _ERRORS), bool(marks & FAILED)
            continue
        r: HandshakeRecord = pickle.loads(blob)
        sharp = evidence.sharpen(r)
        yield (line.decode(_UTF8, _ERRORS), r.outcome == "failed") if sharp is r else rendered(
            sharp
        )

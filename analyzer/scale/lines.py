"""JSONL lines made by the workers (``tlsa analyze --workers N -f jsonl``).

With several workers, the parent's serial work after the parts finish caps the gain:
rendering every record's JSONL line and unpickling every record from the workers' runs.
So for the JSONL output each worker renders its records' lines while it sorts them, and
sorts :data:`Line` entries instead of records (:class:`SortedLines`): the ``(ts, uid)``
key, the rendered line, what cross-connection evidence needs to know to leave the record
alone (its 4-tuple hash and :func:`sharpen_marks`), and the record pickled. The parent
merges the entries (:func:`merge_lines`) and writes a worker's line as it is when
:meth:`Evidence.unchanged <analyzer.diagnosis.cross.Evidence.unchanged>` says the
evidence of the whole run cannot change the record (most records: those that did not
fail, on a 4-tuple used once); only the others are unpickled, sharpened and, if sharpening
changed them, rendered again (:func:`final_lines`). One process (``--workers 1``) sorts
the same entries: a record past the in-memory limit is then written to the run as its
line (and, if it may change, its pickle) instead of being pickled and unpickled whole.

A record with no marks (it did not fail, and is no possible QUIC fallback) can only get a
time bound in its ``wireshark_filter``, when its 4-tuple repeats: its entry carries, in
place of the whole record, its endpoints and where the filter's value sits in the line,
and the parent puts the bounded filter there. Pickling every record would cost each
worker about 20 µs a record (the benchmark capture: 0.2 s of a shard's 7).

The lines are those of :func:`analyzer.output.jsonl_line` of the sharpened records: the
output is the same, byte for byte, as one process writes (JSON text is the concatenation
of its members' texts, and the escapes :func:`~analyzer.output.json_line` adds are
character by character).

Runs stay on disk, as with records (:mod:`analyzer.sorted_records`); an entry takes
about the size of its line and its pickle.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Iterable, Iterator

from analyzer import limits
from analyzer.diagnosis.cross import FAILED, Evidence, endpoints, sharpen_marks
from analyzer.diagnosis.tuples import tuple_hash
from analyzer.output import json_line, jsonl_line
from analyzer.record import HandshakeRecord
from analyzer.sorted_records import Key, Runs, SortedItems, merge_items

Line = tuple[float, str, int, int, bytes, bytes, int, int]
"""One record as the JSONL path sorts it: ``ts``, ``uid``, the 4-tuple hash
(:func:`~analyzer.diagnosis.tuples.tuple_hash`), its :func:`sharpen_marks`, its JSONL line
(UTF-8, newline included), then either the record pickled and ``0, 0``, or (a record with
no marks) its :data:`~analyzer.diagnosis.cross.Endpoints` pickled and the start and end of
its ``wireshark_filter`` value in the line."""

Rendered = tuple[str, bool]
"""A record's final JSONL line (newline included), and whether the record failed."""

_HEAD = struct.Struct("<dqBIIHII")
"""An entry in a run: ts, 4-tuple hash, marks, the filter's place in the line, then the
lengths of the uid, the line and the pickle, which follow."""

_FILTER_KEY = b'"wireshark_filter":'
"""Found only as the key in a line: inside a JSON string a ``"`` is escaped."""

_UTF8 = "utf-8"
_ERRORS = "surrogatepass"
"""A string that cannot be written as UTF-8 still fails where the output is written, as
it does in one process, not in a worker."""


def line_entry(r: HandshakeRecord) -> Line:
    """The entry of a diagnosed record (not yet sharpened)."""
    line = (jsonl_line(r) + "\n").encode(_UTF8, _ERRORS)
    h, marks = tuple_hash(r), sharpen_marks(r)
    if not marks:
        at, end = _filter_span(line, r.wireshark_filter)
        if end:
            return r.ts, r.uid, h, marks, line, pickle.dumps(endpoints(r)), at, end
    blob = pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL)
    return r.ts, r.uid, h, marks, line, blob, 0, 0


def _filter_span(line: bytes, value: str) -> tuple[int, int]:
    """Where the ``wireshark_filter`` ``value`` is in a record's ``line``; ``(0, 0)`` if
    it is not there as expected."""
    at = line.find(_FILTER_KEY)
    if at < 0:
        return 0, 0
    at += len(_FILTER_KEY)
    text = json_line(value).encode(_UTF8, _ERRORS)
    end = at + len(text)
    return (at, end) if line[at:end] == text else (0, 0)


def line_key(e: Line) -> Key:
    return e[0], e[1]


def dumps_line(e: Line) -> bytes:
    ts, uid, h, marks, line, blob, at, end = e
    u = uid.encode(_UTF8, _ERRORS)
    head = _HEAD.pack(ts, h, marks, at, end, len(u), len(line), len(blob))
    return b"".join((head, u, line, blob))


def loads_line(data: bytes) -> Line:
    ts, h, marks, at, end, n_uid, n_line, n_blob = _HEAD.unpack_from(data)
    i = _HEAD.size
    uid = data[i : i + n_uid].decode(_UTF8, _ERRORS)
    i += n_uid
    line = data[i : i + n_line]
    i += n_line
    return ts, uid, h, marks, line, data[i : i + n_blob], at, end


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
    for ts, _, h, marks, line, blob, at, end in entries:
        if unchanged(h, marks):
            yield line.decode(_UTF8, _ERRORS), bool(marks & FAILED)
        elif end:  # no marks: only its 4-tuple, which repeats, changes it
            text = evidence.bounded_filter(h, ts, pickle.loads(blob))
            if text is not None:
                line = line[:at] + json_line(text).encode(_UTF8, _ERRORS) + line[end:]
            yield line.decode(_UTF8, _ERRORS), False
        else:
            r: HandshakeRecord = pickle.loads(blob)
            sharp = evidence.sharpen(r)
            if sharp is r:
                yield line.decode(_UTF8, _ERRORS), r.outcome == "failed"
            else:
                yield rendered(sharp)

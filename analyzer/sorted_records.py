"""Records in ``(ts, uid)`` order with bounded memory (SPEC §5 file outputs, SPEC §6).

Connections end in a different order than they start, so sorted output needs every record
before the first can be written. Up to ``limits.MAX_RECORDS_IN_MEMORY`` records are kept as
objects; past that they are pickled to an anonymous temporary file and only their sort
keys stay in memory, so a capture of millions of connections costs a few dozen bytes per
connection, not a few kilobytes.
"""

from __future__ import annotations

import heapq
import pickle
import tempfile
from collections.abc import Iterator
from typing import IO

from analyzer import limits
from analyzer.record import HandshakeRecord


class SortedRecords:
    """Collects records; iterating yields them sorted by ``(ts, uid)`` (once)."""

    def __init__(self, limit: int = limits.MAX_RECORDS_IN_MEMORY) -> None:
        self.limit = limit
        self._memory: list[HandshakeRecord] = []
        self._index: list[tuple[float, str, int, int]] = []
        """(ts, uid, offset, length) of each record written to the file."""
        self._file: IO[bytes] | None = None

    def __len__(self) -> int:
        return len(self._memory) + len(self._index)

    def add(self, record: HandshakeRecord) -> None:
        if len(self._memory) < self.limit:
            self._memory.append(record)
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="tlsa-records-")  # noqa: SIM115 - closed in close()
        blob = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        self._index.append((record.ts, record.uid, self._file.tell(), len(blob)))
        self._file.write(blob)

    def __iter__(self) -> Iterator[HandshakeRecord]:
        self._memory.sort(key=lambda r: (r.ts, r.uid))
        self._index.sort()
        in_memory: Iterator[tuple[float, str, HandshakeRecord | None, int, int]] = (
            (r.ts, r.uid, r, 0, 0) for r in self._memory
        )
        on_disk = ((ts, uid, None, offset, length) for ts, uid, offset, length in self._index)
        try:
            for _, _, item, offset, length in heapq.merge(
                in_memory, on_disk, key=lambda x: (x[0], x[1])
            ):
                if item is not None:
                    yield item
                else:
                    assert self._file is not None
                    self._file.seek(offset)
                    yield pickle.loads(self._file.read(length))
        finally:
            self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._memory = []
        self._index = []

"""Records in ``(ts, uid)`` order with bounded memory (SPEC §5 file outputs, SPEC §6).

Connections end in a different order than they start, so sorted output needs every record
before the first can be written. This is an external merge sort: up to
``limits.MAX_RECORDS_IN_MEMORY`` records are kept as objects; when that many have come,
they are sorted and written to a temporary file as one *run* (each record pickled behind
its length), and nothing of them stays in memory but the run's place in the file.
Iterating merges the runs and the records still in memory, reading each run through a
small buffer. When ``limits.MERGE_FAN_IN`` runs of one size are waiting they are merged
into one run at the end of the file, so the runs being read at once, and their buffers,
stay few however many records there are: memory does not grow with the number of
connections (disk does, about one pickled record per connection per merge level).

A process can hand its runs to another one (:meth:`SortedRecords.hand_over`, then
:func:`merge`): the scale-out workers sort their records this way and the parent merges
the files.

:class:`SortedItems` is the same sort over other items with a ``(ts, uid)`` key and their
own encoding (the parallel JSONL path sorts rendered lines, :mod:`analyzer.scale.lines`);
:func:`merge_items` merges their runs.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import pickle
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Generic, TypeVar

from analyzer import limits
from analyzer.record import HandshakeRecord

_LENGTH = struct.Struct("<I")
_READ_SIZE = 64 << 10
"""Bytes read from a run at a time (more when one record is larger)."""


Key = tuple[float, str]
"""``(ts, uid)``: the order of every sorted output."""

T = TypeVar("T")


def sort_key(r: HandshakeRecord) -> Key:
    return r.ts, r.uid


def _dumps_record(r: HandshakeRecord) -> bytes:
    return pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL)


_loads_record: Callable[[bytes], HandshakeRecord] = pickle.loads


@dataclass(frozen=True, slots=True)
class Runs:
    """Sorted runs in a file another process wrote: ``(start, end)`` byte ranges."""

    path: str
    ranges: tuple[tuple[int, int], ...]


class SortedItems(Generic[T]):
    """Collects items; iterating yields them sorted by ``key`` (once). ``dumps`` and
    ``loads`` turn one item into the bytes of a run and back.

    ``path``: write the runs to this file (to be handed to another process), not to an
    anonymous temporary file."""

    def __init__(
        self,
        key: Callable[[T], Key],
        dumps: Callable[[T], bytes],
        loads: Callable[[bytes], T],
        limit: int = limits.MAX_RECORDS_IN_MEMORY,
        *,
        path: str | None = None,
        fan_in: int = limits.MERGE_FAN_IN,
    ) -> None:
        self.key = key
        self.dumps = dumps
        self.loads = loads
        self.limit = max(1, limit)
        self.fan_in = max(2, fan_in)
        self._memory: list[T] = []
        self._runs: list[tuple[int, int, int]] = []
        """(level, start, end) of each run in the file, oldest first; a run of level
        ``n`` merged ``fan_in ** n`` first runs."""
        self._path = path
        self._file: IO[bytes] | None = None
        self._end = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, item: T) -> None:
        self._memory.append(item)
        self._count += 1
        if len(self._memory) >= self.limit:
            self._spill()

    def _open(self) -> IO[bytes]:
        if self._file is None:
            if self._path is not None:
                self._file = open(self._path, "w+b")  # noqa: SIM115 - closed in close()
            else:
                self._file = tempfile.TemporaryFile(prefix="tlsa-records-")  # noqa: SIM115
        return self._file

    def _write_run(self, items: Iterable[T], level: int) -> None:
        f = self._open()
        f.seek(self._end)
        start = self._end
        dumps, pack = self.dumps, _LENGTH.pack
        for item in items:
            blob = dumps(item)
            f.write(pack(len(blob)))
            f.write(blob)
        f.flush()
        self._end = f.tell()
        self._runs.append((level, start, self._end))

    def _spill(self) -> None:
        self._memory.sort(key=self.key)
        self._write_run(self._memory, 0)
        self._memory = []
        # Like carrying in a counter: fan_in runs of one level become one of the next.
        while (
            len(self._runs) >= self.fan_in
            and len({level for level, _, _ in self._runs[-self.fan_in :]}) == 1
        ):
            level = self._runs[-1][0]
            merging = self._runs[-self.fan_in :]
            del self._runs[-self.fan_in :]
            assert self._file is not None
            fd = self._file.fileno()
            sources = [_read_run(fd, start, end, self.loads) for _, start, end in merging]
            self._write_run(heapq.merge(*sources, key=self.key), level + 1)

    def hand_over(self) -> Runs:
        """Write every record to the file (``path`` given) and close it: its runs, for
        :func:`merge` in another process."""
        assert self._path is not None, "hand_over needs a path"
        if self._memory:
            self._spill()
        self._open()
        ranges = tuple((start, end) for _, start, end in self._runs)
        self.close()
        return Runs(self._path, ranges)

    def __iter__(self) -> Iterator[T]:
        self._memory.sort(key=self.key)
        try:
            if self._file is None:
                yield from self._memory
                return
            fd = self._file.fileno()
            sources: list[Iterator[T]] = [
                _read_run(fd, start, end, self.loads) for _, start, end in self._runs
            ]
            sources.append(iter(self._memory))
            yield from heapq.merge(*sources, key=self.key)
        finally:
            self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._memory = []
        self._runs = []
        self._count = 0


class SortedRecords(SortedItems[HandshakeRecord]):
    """Collects records; iterating yields them sorted by ``(ts, uid)`` (once).

    ``path``: write the runs to this file (to be handed to another process), not to an
    anonymous temporary file."""

    def __init__(
        self,
        limit: int = limits.MAX_RECORDS_IN_MEMORY,
        *,
        path: str | None = None,
        fan_in: int = limits.MERGE_FAN_IN,
    ) -> None:
        super().__init__(
            sort_key, _dumps_record, _loads_record, limit, path=path, fan_in=fan_in
        )


def merge(sources: Iterable[Runs | Iterable[HandshakeRecord]]) -> Iterator[HandshakeRecord]:
    """The records of several sorted sources in ``(ts, uid)`` order: runs handed over by
    other processes (each file removed once read) and sorted iterables (such as a
    :class:`SortedRecords`). Records with equal keys come in the order of their sources."""
    return merge_items(sources, sort_key, _loads_record)


def merge_items(
    sources: Iterable[Runs | Iterable[T]],
    key: Callable[[T], Key],
    loads: Callable[[bytes], T],
) -> Iterator[T]:
    """:func:`merge` for the items of :class:`SortedItems` (``key`` and ``loads`` as
    theirs)."""
    files: list[int] = []
    paths: list[str] = []
    readers: list[Iterator[T]] = []
    try:
        for source in sources:
            if isinstance(source, Runs):
                fd = os.open(source.path, os.O_RDONLY)
                files.append(fd)
                paths.append(source.path)
                readers.extend(_read_run(fd, start, end, loads) for start, end in source.ranges)
            else:
                readers.append(iter(source))
        yield from heapq.merge(*readers, key=key)
    finally:
        for fd in files:
            os.close(fd)
        for path in paths:
            _unlink(path)


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _read_run(
    fd: int, start: int, end: int, loads: Callable[[bytes], T]
) -> Iterator[T]:
    """The items of one run, read ``_READ_SIZE`` bytes at a time."""
    buf = b""
    at = 0
    pos = start
    size = _LENGTH.size
    while True:
        left = len(buf) - at
        need = size if left < size else size + _LENGTH.unpack_from(buf, at)[0]
        if left < need:
            if pos >= end:
                return  # a run always ends on a record boundary
            chunk = os.pread(fd, min(max(_READ_SIZE, need - left), end - pos), pos)
            if not chunk:
                return
            pos += len(chunk)
            buf = buf[at:] + chunk
            at = 0
            continue
        yield loads(buf[at + size : at + need])
        at += need

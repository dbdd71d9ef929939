"""Which 4-tuples a capture uses more than once, in bounded memory (SPEC §3
``wireshark_filter``: a repeated 4-tuple's filter gets a time bound).

Every connection adds its 4-tuple (with its capture, :func:`tuple_key`)
as a 63-bit hash and its start time: 16 bytes. Up to ``limits.TUPLES_IN_MEMORY`` of them
stay in memory; past that they go to a temporary file in ``limits.TUPLE_PARTITIONS``
parts by hash. :meth:`TupleStarts.freeze` then reads one part at a time and keeps only the
hashes seen more than once, with their start times, in two flat arrays (a SYN flood of a
million distinct 4-tuples keeps nothing). The hash is BLAKE2b, the same in every process,
so workers' entries merge in the parent (:meth:`TupleStarts.merge`); two 4-tuples that
share a hash (about one pair in 10^11 among a million connections) only get a time bound
they did not need.
"""

from __future__ import annotations

import bisect
import hashlib
import tempfile
from array import array
from collections.abc import Iterator
from typing import IO

from analyzer import limits
from analyzer.display_filter import UDP_TRANSPORTS
from analyzer.record import HandshakeRecord

_BITS = 63
"""Hashes are non-negative signed 64-bit integers (``array('q')``)."""


def tuple_key(r: HandshakeRecord) -> tuple[str, str, str]:
    """The capture, the protocol and the 4-tuple in a fixed orientation."""
    a, b = f"{r.client_ip} {r.client_port}", f"{r.server_ip} {r.server_port}"
    proto = "udp" if r.transport in UDP_TRANSPORTS else "tcp"
    return (r.capture, proto, f"{a} {b}" if a < b else f"{b} {a}")


def tuple_hash(r: HandshakeRecord) -> int:
    """The 63-bit hash of a record's capture and 4-tuple."""
    digest = hashlib.blake2b("\0".join(tuple_key(r)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - _BITS)


class TupleStarts:
    """Start times of connections by 4-tuple hash; :meth:`bound` once frozen."""

    def __init__(
        self,
        in_memory: int = limits.TUPLES_IN_MEMORY,
        partitions: int = limits.TUPLE_PARTITIONS,
    ) -> None:
        self.in_memory = max(1, in_memory)
        self.partitions = max(1, partitions)
        self._hashes = array("q")
        self._starts = array("d")
        self._file: IO[bytes] | None = None
        self._chunks: list[tuple[int, int, int]] = []
        """(part, offset, count) of each block written to the file."""
        self._repeated = array("q")
        """After :meth:`freeze`: the hashes seen more than once, one entry per connection,
        ascending; ``_repeated_starts`` has their start times (ascending per hash)."""
        self._repeated_starts = array("d")
        self._frozen = False

    def add(self, r: HandshakeRecord) -> None:
        self.add_hash(tuple_hash(r), r.ts)

    def add_hash(self, h: int, ts: float) -> None:
        self._hashes.append(h)
        self._starts.append(ts)
        if len(self._hashes) >= self.in_memory:
            self._spill()

    def merge(self, other: TupleStarts) -> None:
        """Add every entry of another (not frozen) index, e.g. a worker's."""
        for hashes, starts in other.entries():
            self._hashes.extend(hashes)
            self._starts.extend(starts)
            if len(self._hashes) >= self.in_memory:
                self._spill()

    def entries(self) -> Iterator[tuple[array[int], array[float]]]:
        """Every entry, in blocks of hashes and start times."""
        if self._file is not None:
            self._file.flush()
            for part in range(self.partitions):
                yield from self._read_part(part)
        yield self._hashes, self._starts

    def __getstate__(self) -> tuple[int, int, bytes, bytes]:
        """Pickled with every entry in memory (a worker sends its index to the parent)."""
        hashes, starts = array("q"), array("d")
        for h, t in self.entries():
            hashes.extend(h)
            starts.extend(t)
        return self.in_memory, self.partitions, hashes.tobytes(), starts.tobytes()

    def __setstate__(self, state: tuple[int, int, bytes, bytes]) -> None:
        in_memory, partitions, hashes, starts = state
        self.__init__(in_memory, partitions)  # type: ignore[misc]
        self._hashes.frombytes(hashes)
        self._starts.frombytes(starts)

    def _part(self, h: int) -> int:
        return h * self.partitions >> _BITS

    def _spill(self) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="tlsa-tuples-")  # noqa: SIM115
        parts: list[tuple[array[int], array[float]]] = [
            (array("q"), array("d")) for _ in range(self.partitions)
        ]
        for h, ts in zip(self._hashes, self._starts, strict=True):
            hashes, starts = parts[self._part(h)]
            hashes.append(h)
            starts.append(ts)
        f = self._file
        f.seek(0, 2)
        for part, (hashes, starts) in enumerate(parts):
            if hashes:
                self._chunks.append((part, f.tell(), len(hashes)))
                f.write(hashes.tobytes())
                f.write(starts.tobytes())
        self._hashes, self._starts = array("q"), array("d")

    def _read_part(self, part: int) -> Iterator[tuple[array[int], array[float]]]:
        assert self._file is not None
        for p, offset, count in self._chunks:
            if p != part:
                continue
            self._file.seek(offset)
            hashes, starts = array("q"), array("d")
            hashes.frombytes(self._file.read(8 * count))
            starts.frombytes(self._file.read(8 * count))
            yield hashes, starts

    def freeze(self) -> None:
        """Find the repeated hashes (before the first :meth:`bound`); frees the rest."""
        if self._frozen:
            return
        self._frozen = True
        if self._file is None:
            self._keep_repeated(list(zip(self._hashes, self._starts, strict=True)))
        else:
            self._spill()
            for part in range(self.partitions):
                pairs: list[tuple[int, float]] = []
                for hashes, starts in self._read_part(part):
                    pairs.extend(zip(hashes, starts, strict=True))
                self._keep_repeated(pairs)
            self._file.close()
            self._file = None
            self._chunks = []
        self._hashes, self._starts = array("q"), array("d")

    def _keep_repeated(self, pairs: list[tuple[int, float]]) -> None:
        """Append the entries of hashes that occur more than once (``pairs`` hold every
        entry of their hashes, and only hashes above those already kept)."""
        pairs.sort()
        n = len(pairs)
        i = 0
        while i < n:
            j = i + 1
            while j < n and pairs[j][0] == pairs[i][0]:
                j += 1
            if j - i > 1:
                for h, ts in pairs[i:j]:
                    self._repeated.append(h)
                    self._repeated_starts.append(ts)
            i = j

    def repeats(self, h: int) -> bool:
        """Whether the 4-tuple of hash ``h`` (:func:`tuple_hash`) is used more than once:
        exactly when :meth:`bound` gives a bound for its records."""
        return self.bound_of(h, 0.0) is not None

    def bound(self, r: HandshakeRecord) -> tuple[float, float | None] | None:
        """(this connection's start, the next one's start on the same 4-tuple or None)
        when the record's 4-tuple repeats, else None."""
        self.freeze()
        if not self._repeated:
            return None
        return self.bound_of(tuple_hash(r), r.ts)

    def bound_of(self, h: int, ts: float) -> tuple[float, float | None] | None:
        """:meth:`bound` of a record whose 4-tuple hash is ``h`` and start time ``ts``."""
        self.freeze()
        lo = bisect.bisect_left(self._repeated, h)
        if lo == len(self._repeated) or self._repeated[lo] != h:
            return None
        hi = bisect.bisect_right(self._repeated, h, lo)
        i = bisect.bisect_right(self._repeated_starts, ts, lo, hi)
        return ts, self._repeated_starts[i] if i < hi else None

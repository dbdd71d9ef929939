"""QUIC attempts and their TCP fallbacks, across the connections of a run, in bounded
memory.

A QUIC attempt that failed or got no answer, followed within
``limits.QUIC_FALLBACK_WINDOW`` seconds of its last packet by a TCP connection from the
same client to the same server (address, or server name) in the same capture, is a
fallback: both records get the ``quic_fallback`` warning and a reason naming the other.

Any TCP connection offering HTTP over TLS may be such a fallback, and whether it is one is
known only once every record is in (an attempt ends, and its record comes, after the
fallback it caused). So every candidate is kept, as a fixed-size entry (40 bytes: the hash
of its client/server pair, its start time and its uid); past ``limits.TUPLES_IN_MEMORY``
entries they go to a temporary file. :meth:`QuicFallbacks.freeze` then reads them once
and keeps only the candidates of pairs that have a failed attempt: a capture without one,
or a flood of hellos, keeps nothing. Pair hashes are BLAKE2b, the same in every process,
so workers' entries merge in the parent (a worker hands them over in a file,
:meth:`QuicFallbacks.hand_over`, not in its pickle); two pairs that share a hash (about
one in 10^11 among a million pairs) can only make a candidate of a connection to another
server, which the attempt's own pairs then have to match by time as well.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import hashlib
import os
import struct
import tempfile
from collections.abc import Iterator
from typing import IO

from analyzer import limits
from analyzer.diagnosis.wording import ms
from analyzer.limits import QUIC_FALLBACK_WINDOW
from analyzer.record import HandshakeRecord, evolve

FALLBACK_ALPN = frozenset({"h2", "http/1.1"})
"""A TCP connection can be an HTTP/3 client's fallback only if it offers HTTP over TLS."""

Pair = tuple[str, str, str]
"""(capture, client address, ``ip:ADDRESS`` or ``name:SNI``): one client and one server."""

_ENTRY = struct.Struct("<qd24s")
"""A candidate on disk and in the pending buffer: pair hash, start time, uid (NUL-padded;
the engine's uids have 17 characters)."""
_UID_BYTES = 24
_READ_ENTRIES = 4096


_State = tuple[int, dict[Pair, list[tuple[float, float, str, str]]],
               list[tuple[int, float, str]], str | bytes]
"""A pickled :class:`QuicFallbacks`: see its ``__getstate__``."""


def may_fall_back(r: HandshakeRecord) -> bool:
    """A TCP connection offering HTTP over TLS: it may be a failed QUIC attempt's fallback."""
    return r.transport == "tcp" and not FALLBACK_ALPN.isdisjoint(r.alpn_offered)


def _read_blocks(f: IO[bytes]) -> Iterator[bytes]:
    """The rest of ``f``, ``_READ_ENTRIES`` entries at a time."""
    while block := f.read(_READ_ENTRIES * _ENTRY.size):
        yield block


def pairs(r: HandshakeRecord) -> list[Pair]:
    out = [(r.capture, r.client_ip, f"ip:{r.server_ip}")]
    if r.sni:
        out.append((r.capture, r.client_ip, f"name:{r.sni}"))
    return out


@functools.lru_cache(maxsize=4096)
def pair_hash(pair: Pair) -> int:
    """A 63-bit hash of a client/server pair (cached: a client reaches a server many times)."""
    digest = hashlib.blake2b("\0".join(pair).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


class QuicFallbacks:
    """Failed QUIC attempts (all in memory: few) and the TCP connections that may be their
    fallbacks. Each attempt is paired with the first TCP connection (in ``(ts, uid)``
    order) that started between the attempt's first packet and ``QUIC_FALLBACK_WINDOW``
    seconds after its last; each such TCP connection names the latest attempt it follows.
    Pairs depend only on the records, not on the order they are added in."""

    def __init__(self, in_memory: int = limits.TUPLES_IN_MEMORY) -> None:
        self.in_memory = max(1, in_memory)
        self.attempts: dict[Pair, list[tuple[float, float, str, str]]] = {}
        """(ts, ts_end, uid, failure) of each failed QUIC attempt, sorted by ts."""
        self._pending = bytearray()
        """Candidates not yet written (``_ENTRY`` each)."""
        self._long: list[tuple[int, float, str]] = []
        """Candidates whose uid does not fit an entry (never the engine's)."""
        self._file: IO[bytes] | None = None
        self._handed: str | None = None
        """After :meth:`hand_over`: the file holding the candidates' entries."""
        self._tcp: dict[int, list[tuple[float, str]]] | None = None
        """After :meth:`freeze`: (ts, uid) of the candidates of pairs with an attempt, by
        pair hash, sorted."""

    def add(self, r: HandshakeRecord) -> None:
        if r.transport == "quic" and r.outcome == "failed" and r.failure:
            for pair in pairs(r):
                bisect.insort(self.attempts.setdefault(pair, []),
                              (r.ts, r.ts_end, r.uid, r.failure))
        elif may_fall_back(r):
            for pair in pairs(r):
                self._add_candidate(pair_hash(pair), r.ts, r.uid)

    def _add_candidate(self, h: int, ts: float, uid: str) -> None:
        assert self._tcp is None, "candidate added after freeze"
        raw = uid.encode()
        if len(raw) > _UID_BYTES or raw.endswith(b"\0"):
            self._long.append((h, ts, uid))
            return
        self._add_entries(_ENTRY.pack(h, ts, raw))

    def _spill(self) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="tlsa-fallbacks-")  # noqa: SIM115
        self._file.seek(0, 2)
        self._file.write(self._pending)
        self._pending = bytearray()

    def _blocks(self) -> Iterator[bytes]:
        """Every candidate's entry, a block at a time (the file's first, from its start)."""
        if self._file is not None:
            self._spill()
            self._file.seek(0)
            yield from _read_blocks(self._file)
        yield bytes(self._pending)

    def _add_entries(self, block: bytes) -> None:
        self._pending += block
        if len(self._pending) >= self.in_memory * _ENTRY.size:
            self._spill()

    def hand_over(self, path: str) -> None:
        """Move the candidates' entries to the file ``path`` (a worker's may hold millions),
        so that pickling this instance carries only the file's name; :meth:`merge` in
        another process reads the entries from it and removes it."""
        assert self._tcp is None and self._handed is None, "handed over twice or frozen"
        with open(path, "wb") as f:
            for block in self._blocks():
                f.write(block)
        if self._file is not None:
            self._file.close()
            self._file = None
        self._pending = bytearray()
        self._handed = path

    def __getstate__(self) -> _State:
        """The attempts, the long-uid candidates, and the other candidates' entries: the
        name of the file :meth:`hand_over` wrote, else the entries themselves."""
        assert self._tcp is None, "pickled after freeze"
        entries: str | bytes = (
            self._handed if self._handed is not None else b"".join(self._blocks())
        )
        return self.in_memory, self.attempts, self._long, entries

    def __setstate__(self, state: _State) -> None:
        in_memory, attempts, long, entries = state
        self.__init__(in_memory)  # type: ignore[misc]
        self.attempts = attempts
        self._long = long
        if isinstance(entries, str):
            self._handed = entries
        else:
            self._add_entries(entries)

    def merge(self, other: QuicFallbacks) -> None:
        """Add what another instance saw (over other records of the same run); a file it
        was handed over in is read and removed."""
        for pair, attempts in other.attempts.items():
            self.attempts[pair] = sorted([*self.attempts.get(pair, []), *attempts])
        self._long.extend(other._long)
        if other._handed is not None:
            with open(other._handed, "rb") as f:
                for block in _read_blocks(f):
                    self._add_entries(block)
            with contextlib.suppress(OSError):
                os.unlink(other._handed)
            other._handed = None
        else:
            for block in other._blocks():
                self._add_entries(block)

    def freeze(self) -> None:
        """Keep the candidates of pairs with an attempt (before the first :meth:`sharpen`);
        frees the rest."""
        if self._tcp is not None:
            return
        assert self._handed is None, "frozen after hand_over"
        wanted = {pair_hash(pair) for pair in self.attempts}
        tcp: dict[int, list[tuple[float, str]]] = {}
        if wanted:
            for h, ts, uid in self._long:
                if h in wanted:
                    tcp.setdefault(h, []).append((ts, uid))
            for block in self._blocks():
                for h, ts, raw in _ENTRY.iter_unpack(block):
                    if h in wanted:
                        tcp.setdefault(h, []).append((ts, raw.rstrip(b"\0").decode()))
        for starts in tcp.values():
            starts.sort()
        self._tcp = tcp
        self._pending = bytearray()
        self._long = []
        if self._file is not None:
            self._file.close()
            self._file = None

    def kept(self) -> int:
        """Candidates kept by :meth:`freeze`."""
        self.freeze()
        assert self._tcp is not None
        return sum(len(starts) for starts in self._tcp.values())

    def fallback_of(self, r: HandshakeRecord) -> tuple[str, float] | None:
        """For a failed QUIC attempt: its first fallback TCP connection (uid, start)."""
        self.freeze()
        if not (r.transport == "quic" and r.outcome == "failed" and self._tcp):
            return None
        found: tuple[float, str] | None = None
        for pair in pairs(r):
            starts = self._tcp.get(pair_hash(pair), [])
            i = bisect.bisect_left(starts, (r.ts, ""))
            if i < len(starts) and starts[i][0] <= r.ts_end + QUIC_FALLBACK_WINDOW:
                found = starts[i] if found is None else min(found, starts[i])
        return None if found is None else (found[1], found[0])

    def attempt_before(self, r: HandshakeRecord) -> tuple[str, float, str] | None:
        """For a TCP connection: the latest failed QUIC attempt it falls back from (uid,
        last packet, failure)."""
        if not (self.attempts and may_fall_back(r)):
            return None
        found: tuple[float, float, str, str] | None = None
        for pair in pairs(r):
            for attempt in self.attempts.get(pair, ()):
                ts, ts_end, _, _ = attempt
                if ts <= r.ts <= ts_end + QUIC_FALLBACK_WINDOW and (
                    found is None or attempt > found
                ):
                    found = attempt
        return None if found is None else (found[2], found[1], found[3])

    def sharpen(self, r: HandshakeRecord) -> HandshakeRecord:
        """The record with its fallback partner named, when it has one."""
        fallback = self.fallback_of(r)
        if fallback is not None:
            uid, start = fallback
            note = (f"the client then fell back to TCP: connection {uid} to the same server "
                    f"started {ms(start - r.ts)} after this QUIC attempt")
            return _with_warning(r, note)
        attempt = self.attempt_before(r)
        if attempt is not None:
            uid, end, failure = attempt
            when = (f"{ms(r.ts - end)} after its last packet" if r.ts >= end
                    else "while it was still trying")
            note = (f"the client fell back to TCP: its QUIC attempt {uid} to the same server "
                    f"failed ({failure}), and this connection started {when}")
            return _with_warning(r, note)
        return r


def _with_warning(r: HandshakeRecord, note: str) -> HandshakeRecord:
    warnings = r.warnings if "quic_fallback" in r.warnings else [*r.warnings, "quic_fallback"]
    reason = f"{r.reason}; {note}" if r.reason else note[0].upper() + note[1:]
    return evolve(r, reason=reason, warnings=warnings)

"""Wireshark hand-off: a display filter per connection, and the packets of chosen
connections written to a pcapng file (``tlsa analyze --extract``, ``tlsa show --extract``).

:func:`display_filter` is the ``wireshark_filter`` of a record (SPEC §3): both addresses
and both ports, so either orientation matches, and so do ICMP errors quoting the
connection's packets (Wireshark dissects the quoted IP and TCP headers under the same
field names). A connection's packets are those of its 4-tuple from its first packet on,
until the next connection on the same 4-tuple starts: that includes the last ACK after a
FIN exchange and ICMP errors, which come after ``ts_end``. So the filter gets a
``frame.time_epoch`` bound only when the same 4-tuple occurs more than once in the capture
(port reuse): :class:`RepeatedTuples` finds them over a run, and
:func:`with_display_filters` fills the field once every record of the run is known.

:func:`write_extract` reads the captures again with the project's own readers and decoder
and writes every frame of the chosen connections (TCP segments or UDP datagrams of the
4-tuple in either orientation, ICMP destination-unreachable errors quoting them), chosen
by the same rule, with its original timestamp and link type, one Interface Description
Block per link type. The connection's first packet carries a comment naming its uid,
outcome, failure and reason.

Not here: decoding (:mod:`analyzer.decode`), reading captures (:mod:`analyzer.sources`),
pcapng block layout (:mod:`analyzer.export.pcapng_writer`), key logs: ``embed_secrets`` is
given the records written and returns their NSS key log lines, which go into a Decryption
Secrets Block; choosing those lines is the key log's business.
"""

from __future__ import annotations

import bisect
import ipaddress
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, BinaryIO, cast

from analyzer.decode import Datagram, IcmpUnreachable, Segment, decode_frame
from analyzer.export.display_filter import UDP_TRANSPORTS as _UDP_TRANSPORTS
from analyzer.export.display_filter import display_filter
from analyzer.export.pcapng_writer import PcapngWriter
from analyzer.export.text import escape
from analyzer.limits import EXTRACT_COMMENT_CHARS
from analyzer.record import HandshakeRecord
from analyzer.sorted_records import SortedRecords
from analyzer.sources import CaptureReader

SecretsFor = Callable[[Sequence[HandshakeRecord]], bytes]
"""Given the records written, the NSS key log lines of exactly those connections."""

def tuple_key(r: HandshakeRecord) -> tuple[str, str, str]:
    """The capture and the 4-tuple in a fixed orientation."""
    a, b = f"{r.client_ip} {r.client_port}", f"{r.server_ip} {r.server_port}"
    proto = "udp" if r.transport in _UDP_TRANSPORTS else "tcp"
    return (r.capture, proto, f"{a} {b}" if a < b else f"{b} {a}")


def record_filter(r: HandshakeRecord, tuples: RepeatedTuples | None = None) -> str:
    """:func:`display_filter` of a record; ``tuples``: the run's 4-tuples, for a time bound
    where the record's repeats."""
    bound = tuples.bound(r) if tuples is not None else None
    return display_filter(
        client_ip=r.client_ip,
        client_port=r.client_port,
        server_ip=r.server_ip,
        server_port=r.server_port,
        transport=r.transport,
        since=bound[0] if bound else None,
        until=bound[1] if bound else None,
    )


@dataclass(slots=True)
class RepeatedTuples:
    """Which 4-tuples occur more than once per capture, and when each of their connections
    starts. Keyed by hash: 8 bytes and a float per connection; a collision only adds a
    time bound that was not needed."""

    first: dict[int, float] = field(default_factory=dict)
    starts: dict[int, list[float]] = field(default_factory=dict)
    """Sorted first-packet times of the 4-tuples seen more than once."""

    def add(self, r: HandshakeRecord) -> None:
        h = hash(tuple_key(r))
        seen = self.first.get(h)
        if seen is None:
            self.first[h] = r.ts
        else:
            bisect.insort(self.starts.setdefault(h, [seen]), r.ts)

    def bound(self, r: HandshakeRecord) -> tuple[float, float | None] | None:
        """(this connection's start, the next one's start or None) when the record's
        4-tuple repeats, else None."""
        starts = self.starts.get(hash(tuple_key(r)))
        if starts is None:
            return None
        i = bisect.bisect_right(starts, r.ts)
        return r.ts, starts[i] if i < len(starts) else None


_FILTER_AT = [f.name for f in fields(HandshakeRecord)].index("wireshark_filter")
"""Where the field is in the record's pickling state (every field, in declaration order)."""


def with_filter(r: HandshakeRecord, text: str) -> HandshakeRecord:
    """``r`` with ``wireshark_filter`` set: :func:`dataclasses.replace` without its per-field
    checks, through the record's own pickling state (a tuple of every field's value)."""
    state: list[Any] = list(cast("tuple[Any, ...]", r.__getstate__()))
    state[_FILTER_AT] = text
    out = HandshakeRecord.__new__(HandshakeRecord)
    out.__setstate__(tuple(state))  # type: ignore[attr-defined]
    return out


def with_display_filters(records: Iterable[HandshakeRecord]) -> Iterator[HandshakeRecord]:
    """The records (in the same order) with ``wireshark_filter`` filled; a time bound where
    the 4-tuple repeats. Every record is taken before the first is given back (kept as
    :class:`~analyzer.sorted_records.SortedRecords` does: bounded memory)."""
    tuples = RepeatedTuples()
    held = SortedRecords()
    for r in records:
        tuples.add(r)
        held.add(r)
    for r in held:
        yield with_filter(r, record_filter(r, tuples))


def filled(records: Iterable[HandshakeRecord]) -> Iterable[HandshakeRecord]:
    """``records`` with ``wireshark_filter`` set where it is empty, for the outputs: a list
    (every record of a run, or a capture's part) gets time bounds where a 4-tuple repeats
    in it, in the same order; a stream gets each record's filter without a bound."""
    if isinstance(records, Sequence):
        if all(r.wireshark_filter for r in records):
            return records
        tuples = RepeatedTuples()
        for r in records:
            tuples.add(r)
        return [
            r if r.wireshark_filter else with_filter(r, record_filter(r, tuples))
            for r in records
        ]
    return (r if r.wireshark_filter else with_filter(r, record_filter(r)) for r in records)


# -- extract --------------------------------------------------------------------------------


def extract_comment(r: HandshakeRecord) -> str:
    """The pcapng comment on a connection's first packet: uid, outcome, failure, reason."""
    text = f"tlsa {r.uid}: {r.outcome}"
    if r.failure:
        text += f" ({r.failure}"
        text += f", {r.failure_side})" if r.failure_side else ")"
    if r.reason:
        text += f": {r.reason}"
    text = escape(text)
    if len(text) > EXTRACT_COMMENT_CHARS:
        text = text[: EXTRACT_COMMENT_CHARS - 1] + "…"
    return text


@dataclass(slots=True, kw_only=True)
class Extracted:
    """What :func:`write_extract` wrote."""

    packets: dict[str, int] = field(default_factory=dict)
    """Frames written per uid (0: none found, e.g. the capture was not given)."""
    frames: dict[str, list[int]] = field(default_factory=dict)
    """Per uid, the numbers (from 1, as Wireshark counts them) of its frames in its
    capture."""
    missing: list[str] = field(default_factory=list)
    """Capture names of selected records that no given path has."""
    errors: list[str] = field(default_factory=list)
    """Captures that could not be read again."""

    @property
    def total(self) -> int:
        return sum(self.packets.values())


_Key = tuple[str, bytes, int, bytes, int]
"""(``tcp``/``udp``, address, port, address, port) in a fixed orientation."""


def _key(proto: str, a: bytes, ap: int, b: bytes, bp: int) -> _Key:
    return (proto, a, ap, b, bp) if (a, ap) <= (b, bp) else (proto, b, bp, a, ap)


def _packed(ip: str) -> bytes:
    try:
        return ipaddress.ip_address(ip).packed
    except ValueError:
        return b""


@dataclass(slots=True)
class _Wanted:
    record: HandshakeRecord
    start: float
    end: float
    """The next connection on the same 4-tuple starts here (excluded); inf: none does."""
    commented: bool = False


def _index(
    chosen: Iterable[HandshakeRecord], tuples: RepeatedTuples | None
) -> dict[_Key, list[_Wanted]]:
    index: dict[_Key, list[_Wanted]] = {}
    for r in chosen:
        proto = "udp" if r.transport in _UDP_TRANSPORTS else "tcp"
        key = _key(proto, _packed(r.client_ip), r.client_port, _packed(r.server_ip),
                   r.server_port)
        bound = tuples.bound(r) if tuples is not None else None
        end = bound[1] if bound is not None and bound[1] is not None else math.inf
        index.setdefault(key, []).append(_Wanted(r, r.ts, end))
    return index


def _match(index: dict[_Key, list[_Wanted]], key: _Key, ts: float) -> _Wanted | None:
    for wanted in index.get(key, ()):
        if wanted.start <= ts < wanted.end:
            return wanted
    return None


def write_extract(
    records: Sequence[HandshakeRecord],
    captures: Mapping[str, Path],
    out: BinaryIO,
    *,
    tuples: RepeatedTuples | None = None,
    embed_secrets: SecretsFor | None = None,
) -> Extracted:
    """Write the packets of ``records`` to ``out`` as pcapng.

    ``captures``: capture name (a record's ``capture``) -> file to read again. Frames are
    written capture by capture in file order. ``tuples``: the run's 4-tuples (every record
    added, chosen or not), so a connection's packets stop where the next one on its
    4-tuple starts; None: each chosen connection takes every later packet of its 4-tuple.
    ``embed_secrets``: see the module docstring (None: no secrets are written). Never
    raises for bad capture content; a capture that cannot be read again is named in
    ``errors``."""
    done = Extracted(packets={r.uid: 0 for r in records}, frames={r.uid: [] for r in records})
    writer = PcapngWriter(out)
    if embed_secrets is not None:
        writer.secrets(embed_secrets(records))
    by_capture: dict[str, list[HandshakeRecord]] = {}
    for r in records:
        by_capture.setdefault(r.capture, []).append(r)
    for name, chosen in by_capture.items():
        path = captures.get(name)
        if path is None:
            done.missing.append(name)
            continue
        _extract_capture(path, _index(chosen, tuples), writer, done)
    return done


def _extract_capture(
    path: Path, index: dict[_Key, list[_Wanted]], writer: PcapngWriter, done: Extracted
) -> None:
    first = min(w.start for ws in index.values() for w in ws)
    reader = CaptureReader(path)
    for number, frame in enumerate(reader, 1):
        ts = frame.ts
        if ts < first:
            continue
        d = decode_frame(ts, frame.linktype, frame.data, frame.wirelen)
        kind = type(d)
        if kind is Segment or kind is Datagram:
            seg: Segment | Datagram = d  # type: ignore[assignment]
            proto = "tcp" if kind is Segment else "udp"
            wanted = _match(index, _key(proto, seg.src, seg.sport, seg.dst, seg.dport), ts)
        elif kind is IcmpUnreachable:
            a, ap, b, bp = d.key  # type: ignore[union-attr]
            wanted = _match(index, _key("tcp", a, ap, b, bp), ts) or _match(
                index, _key("udp", a, ap, b, bp), ts
            )
        else:
            continue
        if wanted is None:
            continue
        record = wanted.record
        comment = None
        if not wanted.commented:
            wanted.commented = True
            comment = extract_comment(record)
        writer.packet(ts, frame.linktype, frame.data, frame.wirelen, comment)
        done.packets[record.uid] += 1
        done.frames[record.uid].append(number)
    if reader.error:
        done.errors.append(reader.error)

"""Wireshark hand-off: the packets of chosen connections written to a pcapng file
(``tlsa analyze --extract``, ``tlsa show --extract``).

A connection's packets are those its ``wireshark_filter`` selects
(:mod:`analyzer.display_filter`): both addresses and both ports, so either orientation
matches, and so do ICMP errors quoting the connection's packets (Wireshark dissects the
quoted IP and TCP headers under the same field names), from its first packet on, until the
next connection on the same 4-tuple starts (:class:`TupleStarts`). That includes the
last ACK after a FIN exchange and ICMP errors, which come after ``ts_end``.

:func:`write_extract` reads the captures again with the project's own readers and decoder
and writes every frame of the chosen connections (TCP segments or UDP datagrams of the
4-tuple in either orientation, ICMP destination-unreachable errors quoting them), chosen
by the same rule, with its original timestamp and link type, one Interface Description
Block per link type. The connection's first packet carries a comment naming its uid,
outcome, failure and reason.

With ``embed_secrets`` (a key log: ``--embed-secrets``), the file also carries, in a
Decryption Secrets Block before its packets, the secrets of exactly the connections that
got packets in it, found by their ``client_random`` (:mod:`analyzer.export.secrets`). The
captures read again hand their own secrets blocks to that key log too (in a run on
several processes the workers had them, not this one). The packets are spooled first:
the block must come before them, and which connections were written is known only after.

Not here: decoding (:mod:`analyzer.decode`), reading captures (:mod:`analyzer.sources`),
pcapng block layout (:mod:`analyzer.export.pcapng_writer`).
"""

from __future__ import annotations

import ipaddress
import math
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from analyzer.decode import Datagram, IcmpUnreachable, Segment, decode_frame
from analyzer.diagnosis.tuples import TupleStarts
from analyzer.display_filter import UDP_TRANSPORTS
from analyzer.export.pcapng_writer import PcapngWriter
from analyzer.export.secrets import insert_secrets, key_log_lines
from analyzer.export.text import escape
from analyzer.limits import EXTRACT_COMMENT_CHARS, EXTRACT_SPOOL_BYTES
from analyzer.record import HandshakeRecord
from analyzer.sources import CaptureReader
from analyzer.tls.keylog import KeyLog


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
    secrets: int = 0
    """Connections whose secrets were embedded (``embed_secrets``)."""

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
    chosen: Iterable[HandshakeRecord], tuples: TupleStarts | None
) -> dict[_Key, list[_Wanted]]:
    index: dict[_Key, list[_Wanted]] = {}
    for r in chosen:
        proto = "udp" if r.transport in UDP_TRANSPORTS else "tcp"
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
    tuples: TupleStarts | None = None,
    embed_secrets: KeyLog | None = None,
) -> Extracted:
    """Write the packets of ``records`` to ``out`` as pcapng.

    ``captures``: capture name (a record's ``capture``) -> file to read again. Frames are
    written capture by capture in file order. ``tuples``: the run's 4-tuples (every record
    added, chosen or not), so a connection's packets stop where the next one on its
    4-tuple starts; None: each chosen connection takes every later packet of its 4-tuple.
    ``embed_secrets``: see the module docstring (None: no secrets are written). Never
    raises for bad capture content; a capture that cannot be read again is named in
    ``errors``."""
    if embed_secrets is None:
        return _write_packets(records, captures, out, tuples, None)
    with tempfile.SpooledTemporaryFile(max_size=EXTRACT_SPOOL_BYTES) as spool:
        done = _write_packets(records, captures, spool, tuples, embed_secrets)  # type: ignore[arg-type]
        written = [r.client_random for r in records if done.packets[r.uid]]
        lines, done.secrets = key_log_lines(embed_secrets, written)
        spool.seek(0)
        insert_secrets(spool, out, lines)  # type: ignore[arg-type]
    return done


def _write_packets(
    records: Sequence[HandshakeRecord],
    captures: Mapping[str, Path],
    out: BinaryIO,
    tuples: TupleStarts | None,
    secrets: KeyLog | None,
) -> Extracted:
    done = Extracted(packets={r.uid: 0 for r in records}, frames={r.uid: [] for r in records})
    writer = PcapngWriter(out)
    by_capture: dict[str, list[HandshakeRecord]] = {}
    for r in records:
        by_capture.setdefault(r.capture, []).append(r)
    for name, chosen in by_capture.items():
        path = captures.get(name)
        if path is None:
            done.missing.append(name)
            continue
        _extract_capture(path, _index(chosen, tuples), writer, done, secrets)
    return done


def _extract_capture(
    path: Path,
    index: dict[_Key, list[_Wanted]],
    writer: PcapngWriter,
    done: Extracted,
    secrets: KeyLog | None,
) -> None:
    first = min(w.start for ws in index.values() for w in ws)
    reader = CaptureReader(path, secrets=secrets)
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

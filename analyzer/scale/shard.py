"""Sharding one capture between workers: which frames are whose, and time for the rest.

Every worker reads the whole file and keeps the frames of its own shard. A frame's shard
is a symmetric hash of its endpoints, so both directions of a connection land in the same
shard and every connection is seen whole by exactly one worker:

- TCP segments that are not IP fragments: the two (address, port) endpoints;
- UDP datagrams that are not IP fragments: the endpoint with the lower port (the
  server's, for QUIC and DTLS; both endpoints when the ports are equal). A QUIC connection
  is followed by connection ID across 4-tuples (a client that migrates or is rebound by a
  NAT keeps its server but not its address or port), so all its datagrams must reach one
  worker; the price is that one busy QUIC server's connections share a worker;
- ICMP destination-unreachable errors quoting a TCP segment or a UDP datagram: the key of
  the quoted packet, so the error reaches the worker that tracks its connection;
- IP fragments and other IP packets: the two addresses (fragments carry no ports; the
  decoder skips fragments anyway, so they belong to no connection and are only counted);
- frames that are not IP at all: shard 0, which counts them.

Endpoints are read from raw header bytes at fixed offsets for the common link layers
(Ethernet without tags, Linux cooked SLL/SLL2, raw IP) with IPv4 or IPv6 carrying TCP/UDP
directly; every other frame (VLAN/MPLS/PPPoE, loopback, IPv6 extension headers) goes
through :func:`analyzer.decode.decode_frame`, so the shard always matches the 4-tuple the
engine sees. The hash is integer arithmetic on the addresses and ``sport ^ dport``, the
same in every process (Python's ``hash`` of bytes is salted per process).

Why ports and not only the address pair: a capture taken between a few hosts has a few
address pairs carrying most connections (the benchmark corpus: 20 pairs, 4 of them with
89 % of the connections), so hashing pairs leaves one worker with most of the work.

A worker still has to see the time of the frames it skips: idle expiry runs on packet
time every ``_EXPIRY_INTERVAL`` seconds of it, and the capture's last timestamp decides
``capture_end`` judgements. :class:`ShardEngine` advances its clock on every skipped frame
exactly as :meth:`Engine.feed` does, so a connection expires at the same packet as in a
single process and its record is identical. It does so as the reader's filter
(:meth:`ShardEngine.wants`): a skipped frame that only moves the last timestamp goes no
further than the reader, which halves the frames a shard's loop handles.

Not identical to one process only past the flow-table and closed-tuple limits
(``limits.MAX_FLOWS``, ``limits.MAX_CLOSED_TUPLES``): those bound each worker's memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

from mypy_extensions import i64

from analyzer.decode import decode_frame
from analyzer.decode.frames import (
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
)
from analyzer.decode.types import Datagram, IcmpUnreachable, Segment
from analyzer.engine.engine import _EXPIRY_INTERVAL, Engine
from analyzer.record import HandshakeRecord
from analyzer.sources.base import Frame
from analyzer.tls.keylog import KeyLog


def _mix(a: int, b: int, ports: int) -> int:
    """A symmetric hash of two addresses and ``sport ^ dport`` (0 without ports).

    32-bit steps (IPv6 addresses folded to 32 bits first) in 64-bit machine integers
    (``i64``: plain C arithmetic in the compiled build; every product stays below 2**59)."""
    x = a ^ b
    if x >> 32:
        x = (x ^ (x >> 32) ^ (x >> 64) ^ (x >> 96)) & 0xFFFFFFFF
    h = i64(x)
    h = (((h >> 16) ^ h ^ i64(ports)) * 0x45D9F3B) & 0xFFFFFFFF
    h = (((h >> 16) ^ h) * 0x45D9F3B) & 0xFFFFFFFF
    return int((h >> 16) ^ h)


def _udp_key(src: int, sport: int, dst: int, dport: int) -> int:
    """The shard hash of a UDP datagram: its lower-port endpoint (see the module text)."""
    if sport == dport:
        return _mix(src, dst, 0)
    return _mix(src, 0, sport) if sport < dport else _mix(dst, 0, dport)


_DECODE: Final = -1
"""What :func:`_ip_key` returns for a packet whose endpoints the decoder must find (hashes
are never negative)."""


def _be32(data: bytes, at: int) -> int:
    """The big-endian unsigned 32-bit number at ``data[at:at + 4]``, read byte by byte
    (native in the compiled build, where a slice and ``int.from_bytes`` are calls)."""
    value: int = data[at] << 24 | data[at + 1] << 16 | data[at + 2] << 8 | data[at + 3]
    return value


def _ip_key(data: bytes, off: int, version: int) -> int:
    """Hash of the endpoints of the IP packet at ``off``, or ``_DECODE`` to decode instead
    (a native integer either way in the compiled build: no boxing per frame)."""
    n = len(data)
    proto: int  # typed: native integers in the compiled build
    sport: int
    dport: int
    if version == 4:
        if off + 20 > n:
            return _DECODE
        ihl = (data[off] & 0x0F) << 2
        at = off + ihl
        frag = ((data[off + 6] << 8) | data[off + 7]) & 0x3FFF
        proto = data[off + 9]
        if proto == IPPROTO_ICMP and not frag:
            return _DECODE  # maybe an error about a TCP segment: decode
        src, dst = _be32(data, off + 12), _be32(data, off + 16)
        if frag or (proto != IPPROTO_TCP and proto != IPPROTO_UDP) or ihl < 20 or at + 4 > n:
            return _mix(src, dst, 0)
        sport, dport = (data[at] << 8) | data[at + 1], (data[at + 2] << 8) | data[at + 3]
        if proto == IPPROTO_UDP:
            return _udp_key(src, sport, dst, dport)
        return _mix(src, dst, sport ^ dport)
    if off + 44 > n or data[off + 6] not in (IPPROTO_TCP, IPPROTO_UDP):
        return _DECODE  # short, an extension header (maybe a fragment), ICMPv6, no ports: decode
    at = off + 40
    sport, dport = (data[at] << 8) | data[at + 1], (data[at + 2] << 8) | data[at + 3]
    src = int.from_bytes(data[off + 8 : off + 24], "big")
    dst = int.from_bytes(data[off + 24 : off + 40], "big")
    if data[off + 6] == IPPROTO_UDP:
        return _udp_key(src, sport, dst, dport)
    return _mix(src, dst, sport ^ dport)


def _network(linktype: int, data: bytes) -> tuple[int, int] | None:
    """(IP version, offset) for the link layers read at fixed offsets, else None."""
    n = len(data)
    if linktype == LINKTYPE_ETHERNET:
        if n < 15:
            return None
        et = data[12:14]
        return (4, 14) if et == b"\x08\x00" else (6, 14) if et == b"\x86\xdd" else None
    if linktype == LINKTYPE_LINUX_SLL2:
        if n < 21 or data[8:10] == b"\x03\x38":  # ARPHRD_NETLINK: not IP
            return None
        et = data[0:2]
        return (4, 20) if et == b"\x08\x00" else (6, 20) if et == b"\x86\xdd" else None
    if linktype == LINKTYPE_LINUX_SLL:
        if n < 17 or data[2:4] == b"\x03\x38":
            return None
        et = data[14:16]
        return (4, 16) if et == b"\x08\x00" else (6, 16) if et == b"\x86\xdd" else None
    if linktype in LINKTYPE_RAW or linktype in (LINKTYPE_IPV4, LINKTYPE_IPV6):
        if n < 1:
            return None
        version = (
            4 if linktype == LINKTYPE_IPV4 else 6 if linktype == LINKTYPE_IPV6 else data[0] >> 4
        )
        return (version, 0) if version in (4, 6) else None
    return None


def frame_key(frame: Frame) -> int:
    """The shard hash of a frame (0 for frames that carry no IP packet)."""
    data = frame.data
    linktype = frame.linktype
    sport: int  # typed: native integers in the compiled build
    dport: int
    if linktype == LINKTYPE_ETHERNET and len(data) >= 15 and data[12] == 8 and not data[13]:
        key = _ip_key(data, 14, 4)  # the common case, without _network's slices
    else:
        net = _network(linktype, data)
        key = _ip_key(data, net[1], net[0]) if net is not None else _DECODE
    if key != _DECODE:
        return key
    seg = decode_frame(frame.ts, linktype, data, frame.wirelen)
    if type(seg) is Segment:
        src = int.from_bytes(seg.src, "big")
        return _mix(src, int.from_bytes(seg.dst, "big"), seg.sport ^ seg.dport)
    if type(seg) is Datagram:
        return _udp_key(int.from_bytes(seg.src, "big"), seg.sport,
                        int.from_bytes(seg.dst, "big"), seg.dport)
    if type(seg) is IcmpUnreachable:
        qsrc, sport, qdst, dport = seg.key
        if seg.udp:
            return _udp_key(int.from_bytes(qsrc, "big"), sport, int.from_bytes(qdst, "big"),
                            dport)
        return _mix(int.from_bytes(qsrc, "big"), int.from_bytes(qdst, "big"), sport ^ dport)
    return 0


def shard_of(frame: Frame, shards: int) -> int:
    """Which of ``shards`` workers handles this frame."""
    return frame_key(frame) % shards


class ShardEngine(Engine):
    """An :class:`Engine` for ``shard`` of ``shards``: it analyzes the frames of its shard
    and only sees the time of the others.

    :meth:`wants` is the filter a reader applies (``CaptureReader.keep``), so the frames of
    other shards are mostly left in the reader; :meth:`run_shard` takes what passes it.
    """

    def __init__(
        self,
        capture: str,
        shard: int,
        shards: int,
        *,
        tls_ports: Iterable[int] = (),
        keylog: KeyLog | None = None,
    ) -> None:
        super().__init__(capture, tls_ports=tls_ports, keylog=keylog)
        self.shard = shard
        self.shards = shards
        self._mine = False
        """What :meth:`wants` said of the frame it saw last: it belongs to this shard."""

    def wants(self, frame: Frame) -> bool:
        """Whether a frame must reach :meth:`run_shard`: one of this shard, or one of
        another shard that does more to the clock than move its last timestamp (the first
        frame, or one at which idle expiry is due; see :meth:`skip`). Of any other frame
        only the time is taken, here, and the frame is left behind.

        :meth:`run_shard` relies on this being called for each frame it gets, just before
        it gets it (as a reader's filter or ``filter(engine.wants, frames)`` do)."""
        if frame_key(frame) % self.shards == self.shard:
            self._mine = True
            return True
        self._mine = False
        ts = frame.ts
        st = self.stats
        last = st.last_ts
        if last is None or ts >= self._next_expiry:
            return True
        if ts > last:
            st.last_ts = ts
        return False

    def skip(self, ts: float) -> list[HandshakeRecord]:
        """A frame of another shard at packet time ``ts``: the clock moves exactly as in
        :meth:`Engine.feed` (first/last timestamp, idle expiry every
        ``_EXPIRY_INTERVAL``); nothing is counted."""
        st = self.stats
        if st.first_ts is None:
            st.first_ts = ts
            self._next_expiry = ts + _EXPIRY_INTERVAL
        if st.last_ts is None or ts > st.last_ts:
            st.last_ts = ts
        if ts >= self._next_expiry:
            out: list[HandshakeRecord] = []
            self._next_expiry = ts + _EXPIRY_INTERVAL
            self._expire(ts, out)
            return out
        return []

    def run_shard(self, frames: Iterable[Frame]) -> Iterator[HandshakeRecord]:
        """Feed this shard's frames, skip the others' (``frames`` as :meth:`wants` let them
        through), then finish."""
        for frame in frames:
            records = self.feed(frame) if self._mine else self.skip(frame.ts)
            if records:
                yield from records
        yield from self.drain()

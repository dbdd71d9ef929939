"""The engine: frames in, handshake records out, as connections end.

One :class:`Engine` per capture (a file, or a live interface). It decodes each frame and
routes it to its transport: a TCP segment to its connection
(:class:`~analyzer.flows.tcp.TcpConnection`, found or created in the flow table, which
feeds the connection's handshake core), a UDP datagram to its QUIC connection or DTLS
association in the UDP flow table, found by 4-tuple or, for QUIC, by connection ID, or
opened by the UDP seam (:mod:`analyzer.engine.udp`). It returns the records of
connections that ended (both FINs, a RST, a QUIC CONNECTION_CLOSE once the peers' last
datagrams are in, idle expiry by packet time, table limit, or end of capture). It
does no I/O and never reads the clock: time comes from packets (and from
:meth:`Engine.tick` in live capture).

Fast path: a connection whose handshake is settled is only counted (packets, bytes,
FIN/RST) from the frame's raw headers — its payload is neither decoded, reassembled nor
parsed.

ICMP destination-unreachable errors quoting a packet of a live connection (either
direction) go to that connection (TCP) or to the UDP seam; they are counted with
``other`` frames and never take the fast path.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from mypy_extensions import mypyc_attr

from analyzer import limits
from analyzer.anomalies import Anomaly
from analyzer.decode import decode_frame, tcp_count_view
from analyzer.decode.types import ACK, FIN, RST, SYN, Datagram, IcmpUnreachable, Segment
from analyzer.engine.udp import DTLS_PORTS, QUIC_PORTS, UdpSeam
from analyzer.flows.connection import Connection, DatagramConnection
from analyzer.flows.preamble import DEFAULT_TLS_PORTS
from analyzer.flows.table import FlowTable
from analyzer.flows.tcp import TcpConnection
from analyzer.quic.connection import QuicConnection
from analyzer.record import HandshakeRecord
from analyzer.sources.base import Frame
from analyzer.tls.keylog import KeyLog

_EXPIRY_INTERVAL: Final = 1.0
"""Seconds of packet time between two scans for idle connections."""


@dataclass(slots=True, kw_only=True)
class CaptureStats:
    """What the engine saw besides TLS connections, for the summary."""

    frames: int = 0
    tcp_segments: int = 0
    udp_quic: int = 0
    """UDP datagrams to or from a QUIC port (443) that belong to no connection analyzed
    (a QUIC connection whose start the capture missed, other traffic on that port)."""
    quic_datagrams: int = 0
    """UDP datagrams of the QUIC connections analyzed."""
    udp_other: int = 0
    other: int = 0
    connections: int = 0
    """TCP connections tracked."""
    records: int = 0
    """TLS-relevant connections reported."""
    first_ts: float | None = None
    last_ts: float | None = None
    anomalies: Counter[str] = field(default_factory=Counter)


@mypyc_attr(allow_interpreted_subclasses=True)
class Engine:
    """Stateful, I/O-free analysis of one capture."""

    def __init__(
        self,
        capture: str,
        *,
        tls_ports: Iterable[int] = (),
        report_at_settle: bool = False,
        table: FlowTable[TcpConnection] | None = None,
        keylog: KeyLog | None = None,
    ) -> None:
        self.capture = capture
        self.keylog = keylog
        """Secrets for decrypting handshakes (``--keylog``, pcapng secrets blocks)."""
        self.tls_ports = DEFAULT_TLS_PORTS | frozenset(tls_ports)
        self.report_at_settle = report_at_settle
        """Live mode: report a record as soon as its handshake settles (close ``open``)."""
        self.table: FlowTable[TcpConnection] = table if table is not None else FlowTable()
        self.udp_table: FlowTable[DatagramConnection] = FlowTable()
        """QUIC connections and DTLS associations (:mod:`analyzer.engine.udp`)."""
        self.udp = UdpSeam(
            dtls_ports=DTLS_PORTS | frozenset(tls_ports),
            quic_ports=QUIC_PORTS | frozenset(tls_ports),
            keylog=keylog,
        )
        """Opens QUIC connections and DTLS associations; finds QUIC connections by ID."""
        self._draining: OrderedDict[int, tuple[float, QuicConnection]] = OrderedDict()
        """QUIC connections (by id) after a visible CONNECTION_CLOSE, with the packet time
        after which they are reported (``QUIC_CLOSE_DRAIN``), in that order; one leaves
        when it is reported, so this holds no more than the UDP flow table."""
        self.stats = CaptureStats()
        self._next_expiry = 0.0
        self._closed: OrderedDict[tuple[bytes, int, bytes, int], float] = OrderedDict()
        """4-tuples (in one orientation, see :func:`either_way`) of connections closed by
        FIN or RST or evicted once settled, with the time: retransmissions and segments in
        flight after the close are not new connections."""

    # ------------------------------------------------------------------ input

    def feed(self, frame: Frame) -> list[HandshakeRecord]:
        """Process one frame; return the records of connections that ended."""
        st = self.stats
        st.frames += 1
        ts = frame.ts
        if st.first_ts is None:
            st.first_ts = ts
            self._next_expiry = ts + _EXPIRY_INTERVAL
        if st.last_ts is None or ts > st.last_ts:
            st.last_ts = ts
        out: list[HandshakeRecord] = []
        view = tcp_count_view(frame.linktype, frame.data)
        if view is not None:
            # Fast path: a packet of a settled connection, no SYN/FIN/RST: count it.
            key, flags, length = view
            conn = self.table.get(key)
            if conn is not None and conn.settled and not flags & (SYN | FIN | RST):
                st.tcp_segments += 1
                conn.packets += 1
                if ts > conn.last_ts:
                    conn.last_ts = ts
                if length:
                    if key[1] == conn.key[1] and key[0] == conn.key[0]:
                        conn.client.bytes += length
                    else:
                        conn.server.bytes += length
                if ts >= self._next_expiry:
                    self._next_expiry = ts + _EXPIRY_INTERVAL
                    self._expire(ts, out)
                return out
        seg = decode_frame(ts, frame.linktype, frame.data, frame.wirelen)
        if type(seg) is Segment:
            st.tcp_segments += 1
            self._segment(seg, out)
        elif type(seg) is Datagram:
            self._datagram(seg, out)
        elif type(seg) is IcmpUnreachable:
            st.other += 1
            quoted = (self.udp_table if seg.udp else self.table).get(seg.key)
            if quoted is not None:
                quoted.icmp_unreachable(seg)
        else:
            st.other += 1
            if seg.anomaly is not None:  # type: ignore[union-attr]
                st.anomalies[str(seg.anomaly)] += 1  # type: ignore[union-attr]
        if ts >= self._next_expiry:
            self._next_expiry = ts + _EXPIRY_INTERVAL
            self._expire(ts, out)
        return out

    def tick(self, ts: float) -> list[HandshakeRecord]:
        """Packet time advanced with no packet (live capture): expire idle connections."""
        out: list[HandshakeRecord] = []
        if self.stats.last_ts is None or ts > self.stats.last_ts:
            self.stats.last_ts = ts
        self._expire(ts, out)
        return out

    def _datagram(self, dgram: Datagram, out: list[HandshakeRecord]) -> None:
        """A UDP datagram: to its QUIC connection (by 4-tuple, else by connection ID) or
        DTLS association, or the start of one (:class:`analyzer.engine.udp.UdpSeam`)."""
        table = self.udp_table
        seam = self.udp
        conn = table.get((dgram.src, dgram.sport, dgram.dst, dgram.dport))
        if conn is not None:
            from_client = dgram.src == conn.key[0] and dgram.sport == conn.key[1]
            if conn.starts_anew(from_client, dgram.payload):
                # The client's port was reused for a new connection: the old one ends.
                table.remove(conn)
                self._report(conn, conn.close_reason(), out)
                conn = None
        if conn is None:
            moved = seam.find(dgram.payload)
            if moved is not None:
                conn, from_client = moved  # the same connection on another 4-tuple
            else:
                conn = seam.open(dgram)
                if conn is None:
                    self._count_udp(dgram, None)
                    return
                from_client = dgram.src == conn.key[0] and dgram.sport == conn.key[1]
                self.stats.connections += 1
                table.add(conn)
                self._evict(table, dgram.ts, out)
        self._count_udp(dgram, conn)
        conn.packets += 1
        if dgram.truncated:
            conn.anomaly(Anomaly.SNAPLEN_TRUNCATED)  # its payload is cut: not all was read
        if dgram.ts > conn.last_ts:
            conn.last_ts = dgram.ts
        if conn.settled:
            conn.datagram(from_client, dgram.payload, dgram.ts)  # counted only
            return
        conn.datagram(from_client, dgram.payload, dgram.ts)
        settled = conn.is_settled()
        if isinstance(conn, QuicConnection):
            seam.learn(conn)
            if conn.closed_at is not None:
                self._draining[id(conn)] = (conn.closed_at + limits.QUIC_CLOSE_DRAIN, conn)
                if self.report_at_settle and not conn.reported and conn.relevant():
                    conn.reported = True
                    out.append(conn.record(self.capture, "connection_close", None))
        if settled or conn.established:
            table.mark_settled(conn)
            if self.report_at_settle and settled and not conn.reported and conn.relevant():
                conn.reported = True
                out.append(conn.record(self.capture, "open", None))

    def _count_udp(self, dgram: Datagram, conn: DatagramConnection | None) -> None:
        st = self.stats
        if isinstance(conn, QuicConnection):
            st.quic_datagrams += 1
        elif conn is None and (dgram.sport in QUIC_PORTS or dgram.dport in QUIC_PORTS):
            st.udp_quic += 1
        else:
            st.udp_other += 1

    def finish(self) -> list[HandshakeRecord]:
        """End of capture: report every connection still open."""
        return list(self.drain())

    def drain(self) -> Iterator[HandshakeRecord]:
        """:meth:`finish` one record at a time: a full table's records are never all in
        memory at once."""
        out: list[HandshakeRecord] = []
        for conn in self.table.drain():
            self._report(conn, "capture_end", out)
            if out:
                yield out.pop()
        for udp in self.udp_table.drain():
            self._report(udp, udp.close_reason(), out)
            if out:
                yield out.pop()

    def run(self, frames: Iterable[Frame]) -> Iterator[HandshakeRecord]:
        """Feed every frame, then finish; yield records as connections end."""
        for frame in frames:
            records = self.feed(frame)  # a native call when compiled (a bound method is not)
            if records:
                yield from records
        yield from self.drain()

    # ------------------------------------------------------------------ TCP

    def _segment(self, seg: Segment, out: list[HandshakeRecord]) -> None:
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        conn = self.table.get(key)
        flags = seg.flags
        if conn is not None and flags & SYN and not flags & ACK:
            from_client = conn.key[0] == seg.src and conn.key[1] == seg.sport
            if not from_client or conn.syn_seq not in (None, seg.seq):
                # A new SYN on a known 4-tuple: port reuse; the old connection ends.
                self.table.remove(conn)
                self._report(conn, conn.close_reason(), out)
                conn = None
        if conn is None:
            new_syn = flags & SYN and not flags & ACK
            if not new_syn and self._closed_recently(key, seg.ts):
                return  # a late segment (or SYN-ACK) of a connection already reported
            conn = self._new(seg, key, out)
            if conn is None:
                return
        conn.packets += 1
        ts = seg.ts
        if ts > conn.last_ts:
            conn.last_ts = ts
        from_client = seg.src == conn.key[0] and seg.sport == conn.key[1]
        if conn.settled:
            # Fast path: count only.
            if seg.payload:
                if from_client:
                    conn.client.bytes += len(seg.payload)
                else:
                    conn.server.bytes += len(seg.payload)
        else:
            conn.segment(seg, from_client)
            if conn.is_settled():
                self.table.mark_settled(conn)
                if self.report_at_settle and not conn.reported and conn.relevant():
                    conn.reported = True
                    out.append(conn.record(self.capture, "open", None))
            elif conn.established:
                # Out of its handshake: it idles like an established connection
                # (IDLE_TIMEOUT) while the first records after the handshake are awaited.
                self.table.mark_settled(conn)
        if flags & (FIN | RST):
            close = conn.close_flags(seg, from_client)
            if close is not None:
                self._closed_by_flags(conn, seg.ts)
                self._report(conn, close, out)

    def _new(
        self, seg: Segment, key: tuple[bytes, int, bytes, int], out: list[HandshakeRecord]
    ) -> TcpConnection | None:
        flags = seg.flags
        if flags & RST or (not seg.payload and not flags & SYN):
            return None  # a stray ACK/FIN/RST of a connection we never saw (or reported)
        if flags & SYN and flags & ACK:
            key = (seg.dst, seg.dport, seg.src, seg.sport)  # SYN-ACK: the sender is the server
        elif not flags & SYN and (
            seg.sport in self.tls_ports
            or (seg.dport not in self.tls_ports and seg.sport < seg.dport)
        ):
            # Mid-stream: guess that the side on a known TLS port, else the lower port, is
            # the server; the connection swaps sides if the guess is proved wrong.
            key = (seg.dst, seg.dport, seg.src, seg.sport)
        conn = TcpConnection(key, seg.ts, tls_port=key[3] in self.tls_ports, keylog=self.keylog)
        self.stats.connections += 1
        self.table.add(conn)
        self._evict(self.table, seg.ts, out)
        return conn

    def _evict(
        self, table: FlowTable[TcpConnection] | FlowTable[DatagramConnection], ts: float,
        out: list[HandshakeRecord],
    ) -> None:
        """Report the connections a full table lets go of (idle longest first)."""
        for old in table.over_limit():
            old.anomaly(Anomaly.FLOW_TABLE_LIMIT)
            if isinstance(old, TcpConnection) and (old.settled or old.established):
                self._remember_closed(old, ts)  # its later packets are not a new connection
            self._report(old, old.close_reason(idle=True), out)
            self.stats.anomalies["flow_table_limit"] += 1

    def _closed_by_flags(self, conn: TcpConnection, ts: float) -> None:
        """Forget the connection but remember its 4-tuple for a while (like TIME_WAIT)."""
        self.table.remove(conn)
        self._remember_closed(conn, ts)

    def _closed_recently(self, key: tuple[bytes, int, bytes, int], ts: float) -> bool:
        """Whether ``key`` belongs to a connection closed (or evicted) lately; a packet of
        it keeps it remembered (an evicted connection may go on for long)."""
        known = either_way(key)
        if known not in self._closed:
            return False
        self._closed.move_to_end(known)
        self._closed[known] = max(ts, self._closed[known])
        return True

    def _remember_closed(self, conn: TcpConnection, ts: float) -> None:
        closed = self._closed
        known = either_way(conn.key)
        closed.pop(known, None)  # to the back: the dict stays in time order
        closed[known] = ts
        while closed and (
            len(closed) > limits.MAX_CLOSED_TUPLES
            or next(iter(closed.values())) + limits.CLOSED_TUPLE_TIMEOUT < ts
        ):
            closed.popitem(last=False)

    # ------------------------------------------------------------------ output

    def _expire(self, now: float, out: list[HandshakeRecord]) -> None:
        for conn in self.table.expired(now):
            self._report(conn, conn.close_reason(idle=True), out)
        draining = self._draining
        while draining:
            deadline, closed = next(iter(draining.values()))
            if deadline >= now:
                break
            self.udp_table.remove(closed)
            self._report(closed, "connection_close", out)  # (it leaves the queue there)
        for udp in self.udp_table.expired(now):
            self._report(udp, udp.close_reason(idle=True), out)

    def _report(self, conn: Connection, close: str, out: list[HandshakeRecord]) -> None:
        conn.closed = True
        if isinstance(conn, QuicConnection):
            self.udp.forget(conn)
            self._draining.pop(id(conn), None)
        if conn.reported and not self.report_at_settle:
            return
        if conn.reported:
            return  # live mode already reported it when it settled
        if not conn.relevant():
            return
        conn.flush()
        conn.reported = True
        self.stats.records += 1
        out.append(conn.record(self.capture, close, self.stats.last_ts))


def either_way(key: tuple[bytes, int, bytes, int]) -> tuple[bytes, int, bytes, int]:
    """A 4-tuple in the same orientation whichever side sent the packet."""
    src, sport, dst, dport = key
    return key if (src, sport) <= (dst, dport) else (dst, dport, src, sport)

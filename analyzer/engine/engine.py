"""The engine: frames in, handshake records out, as connections end.

One :class:`Engine` per capture (a file, or a live interface). It decodes each frame,
finds or creates the connection, hands TCP events to its tracker, and returns the
records of connections that ended (both FINs, a RST, idle expiry by packet time, table
limit, or end of capture). It does no I/O and never reads the clock: time comes from
packets (and from :meth:`Engine.tick` in live capture).

Fast path: a connection whose handshake is settled is only counted (packets, bytes,
FIN/RST) — its payload is neither reassembled nor parsed.

ICMP destination-unreachable errors quoting a segment of a live connection (either
direction) are handed to its tracker, which keeps the first for the record; they are
counted with ``other`` frames and never take the fast path.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from analyzer import limits
from analyzer.anomalies import Anomaly
from analyzer.decode import decode_frame, tcp_count_view
from analyzer.decode.types import ACK, FIN, RST, SYN, Datagram, IcmpUnreachable, Segment
from analyzer.engine.preamble import DEFAULT_TLS_PORTS
from analyzer.engine.tracker import Connection
from analyzer.flows.table import FlowTable
from analyzer.record import HandshakeRecord
from analyzer.sources.base import Frame

QUIC_PORTS = frozenset({443, 8443})
"""UDP ports whose traffic is counted as QUIC (not analyzed yet, SPEC §5)."""
DTLS_PORTS = frozenset({443, 4433, 5061, 5684, 3478})
_EXPIRY_INTERVAL = 1.0
"""Seconds of packet time between two scans for idle connections."""


@dataclass(slots=True, kw_only=True)
class CaptureStats:
    """What the engine saw besides TLS connections, for the summary."""

    frames: int = 0
    tcp_segments: int = 0
    udp_quic: int = 0
    """UDP datagrams to or from port 443 (likely QUIC): counted, not analyzed."""
    udp_other: int = 0
    other: int = 0
    connections: int = 0
    """TCP connections tracked."""
    records: int = 0
    """TLS-relevant connections reported."""
    first_ts: float | None = None
    last_ts: float | None = None
    anomalies: Counter[str] = field(default_factory=Counter)


class Engine:
    """Stateful, I/O-free analysis of one capture."""

    def __init__(
        self,
        capture: str,
        *,
        tls_ports: Iterable[int] = (),
        report_at_settle: bool = False,
        table: FlowTable[Connection] | None = None,
    ) -> None:
        self.capture = capture
        self.tls_ports = DEFAULT_TLS_PORTS | frozenset(tls_ports)
        self.report_at_settle = report_at_settle
        """Live mode: report a record as soon as its handshake settles (close ``open``)."""
        self.table: FlowTable[Connection] = table if table is not None else FlowTable()
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
            if seg.sport in QUIC_PORTS or seg.dport in QUIC_PORTS:
                st.udp_quic += 1
            else:
                st.udp_other += 1
        elif type(seg) is IcmpUnreachable:
            st.other += 1
            conn = self.table.get(seg.key)
            if conn is not None:
                conn.icmp_unreachable(seg)
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

    def run(self, frames: Iterable[Frame]) -> Iterator[HandshakeRecord]:
        """Feed every frame, then finish; yield records as connections end."""
        feed = self.feed
        for frame in frames:
            records = feed(frame)
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
                self._report(conn, conn_close(conn), out)
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
        payload = seg.payload
        if conn.settled:
            # Fast path: count only.
            if payload:
                if from_client:
                    conn.client.bytes += len(payload)
                else:
                    conn.server.bytes += len(payload)
            if flags & (FIN | RST):
                self._close_flags(conn, seg, from_client, out)
            return
        if flags & SYN:
            if flags & ACK:
                if not from_client:
                    conn.tcp_synack(ts, seg.seq)
            elif from_client:
                conn.tcp_syn(ts, seg.seq)
        if seg.truncated:
            # The snaplen cut this segment: its bytes are fed as far as they go and the
            # rest is a hole (judged like any capture loss).
            conn.anomaly(Anomaly.SNAPLEN_TRUNCATED)
        if payload:
            # Data on a SYN (TCP Fast Open) starts one after the SYN's own sequence number.
            seq = (seg.seq + 1) & 0xFFFFFFFF if flags & SYN else seg.seq
            conn.tcp_data(ts, from_client, seq, payload)
        if flags & ACK and not flags & SYN and (from_client or conn.synack or conn.syn_count == 0):
            # A server ACK before its SYN-ACK belongs to an older connection (a challenge
            # ACK, RFC 5961 §4): it acknowledges nothing of this one.
            conn.peer_ack(from_client, seg.ack)
        if conn.is_settled():
            self.table.mark_settled(conn)
            if self.report_at_settle and not conn.reported and conn.relevant():
                conn.reported = True
                out.append(conn.record(self.capture, "open", None))
        elif conn.established:
            # Out of its handshake: it idles like an established connection (IDLE_TIMEOUT)
            # while the first records after the handshake are awaited.
            self.table.mark_settled(conn)
        if flags & (FIN | RST):
            self._close_flags(conn, seg, from_client, out)

    def _new(
        self, seg: Segment, key: tuple[bytes, int, bytes, int], out: list[HandshakeRecord]
    ) -> Connection | None:
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
            # the server; the tracker swaps sides if the guess is proved wrong.
            key = (seg.dst, seg.dport, seg.src, seg.sport)
        conn = Connection(key, seg.ts, tls_port=key[3] in self.tls_ports)
        self.stats.connections += 1
        self.table.add(conn)
        for old in self.table.over_limit():
            old.anomaly(Anomaly.FLOW_TABLE_LIMIT)
            if old.settled or old.established:
                self._remember_closed(old, seg.ts)  # its later packets are not a new connection
            self._report(old, conn_close(old, idle=True), out)
            self.stats.anomalies["flow_table_limit"] += 1
        return conn

    def _close_flags(
        self, conn: Connection, seg: Segment, from_client: bool, out: list[HandshakeRecord]
    ) -> None:
        if seg.flags & RST:
            if from_client and not conn.synack and conn.syn_seq is not None and (
                seg.seq != (conn.syn_seq + 1) & 0xFFFFFFFF
            ):
                # RFC 9293 §3.10.7.3: in SYN-SENT a client answers an ACK that is not for
                # its SYN (a challenge ACK) with a RST carrying that ACK's number, then
                # retransmits its SYN: the connection goes on.
                conn.note(seg.ts, "client", "RST (answering an ACK of an older connection)")
                return
            conn.tcp_rst(seg.ts, from_client)
            self._closed_by_flags(conn, seg.ts)
            self._report(conn, "rst_client" if conn.rst_by == "client" else "rst_server", out)
            return
        conn.tcp_fin(seg.ts, from_client, seg.seq, len(seg.payload))
        if conn.client.fin and conn.server.fin:
            self._closed_by_flags(conn, seg.ts)
            self._report(conn, "fin", out)

    def _closed_by_flags(self, conn: Connection, ts: float) -> None:
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

    def _remember_closed(self, conn: Connection, ts: float) -> None:
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
            self._report(conn, conn_close(conn, idle=True), out)

    def _report(self, conn: Connection, close: str, out: list[HandshakeRecord]) -> None:
        conn.closed = True
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


def conn_close(conn: Connection, *, idle: bool = False) -> str:
    """How a connection ended when no RST/FIN-pair closed it."""
    if conn.rst_by is not None:
        return "rst_client" if conn.rst_by == "client" else "rst_server"
    if conn.close_by is not None:
        return "fin"
    return "idle_timeout" if idle else "capture_end"

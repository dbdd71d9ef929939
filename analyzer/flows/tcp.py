"""The TCP transport: one connection's segments in, its TLS bytes out to the handshake core.

A :class:`TcpConnection` owns the connection's two reassemblers
(:class:`~analyzer.flows.reassembly.Reassembler`), follows SYN, SYN-ACK, FIN, RST,
acknowledgements and retransmissions, reads the plaintext that may come before TLS (an
HTTP CONNECT tunnel, a STARTTLS upgrade: :mod:`analyzer.flows.preamble`), and hands the
in-order bytes of each direction's TLS stream to its
:class:`~analyzer.handshake.core.HandshakeCore`. A SOCKS negotiation
(:mod:`analyzer.flows.socks`) is followed step by step into the timeline; TLS starts after
the proxy grants the request, and a refusal settles the connection. It knows nothing of
TLS messages; when the core has settled (or a gap broke a stream) it lets go of its
buffers and only counts.

Transport rules:

- The side that sent the SYN is the client; without a SYN, the side that sends a
  ClientHello (the orientation is swapped if the first guess was wrong).
- A gap in a direction (bytes the capture lost) stops parsing: the handshake's evidence
  is incomplete from there.
- At the end, a hole still open with data behind it was never delivered (the receiver
  never acknowledged it): a server flight lost on the way is noted.
"""

from __future__ import annotations

from analyzer import limits
from analyzer.anomalies import Anomaly
from analyzer.decode.types import ACK, RST, SYN, Segment
from analyzer.flows import preamble, socks
from analyzer.flows.connection import Connection
from analyzer.flows.reassembly import Reassembler
from analyzer.flows.table import FlowKey
from analyzer.handshake.build import TransportFacts, duration
from analyzer.handshake.core import HandshakeCore
from analyzer.record import Side
from analyzer.text import first_line, last_line, printable
from analyzer.tls.keylog import KeyLog


class Direction:
    """One direction of the connection: reassembly plus its plaintext preamble."""

    __slots__ = ("bytes", "fin", "plain", "rx", "segments")

    def __init__(self) -> None:
        self.rx = Reassembler()
        self.plain = bytearray()
        """Bytes seen before TLS started (CONNECT / SOCKS / STARTTLS preamble), bounded."""
        self.bytes = 0
        self.segments = 0
        self.fin = False


class TcpConnection(Connection):
    """The TCP side of one connection, feeding its handshake core."""

    __slots__ = (
        "ch_end_seq",
        "ch_segments",
        "client",
        "client_acked_ch",
        "close_by",
        "last_ack",
        "mode",
        "proxy_status",
        "proxy_status_line",
        "proxy_target",
        "rst_by",
        "server",
        "socks",
        "starttls",
        "syn_count",
        "syn_seq",
        "syn_ts",
        "synack",
        "synack_ts",
        "tls_port",
        "ts_client_fin",
        "ts_close",
    )

    def __init__(
        self, key: FlowKey, ts: float, *, tls_port: bool, keylog: KeyLog | None = None
    ) -> None:
        super().__init__(key, ts, HandshakeCore(ts, stage="tcp_syn", keylog=keylog))
        self.tls_port = tls_port
        self.client = Direction()
        self.server = Direction()
        self.mode = "detect"
        """Client side: detect | tls | preamble | socks | plaintext."""
        self.syn_count = 0
        self.syn_seq: int | None = None
        """Sequence number of the client's first SYN (a SYN with another one is a new
        connection on the same 4-tuple)."""
        self.synack = False
        self.syn_ts: float | None = None
        self.synack_ts: float | None = None
        self.rst_by: Side | None = None
        self.close_by: Side | None = None
        self.ts_close: float | None = None
        self.ts_client_fin: float | None = None
        self.last_ack: list[int | None] = [None, None]
        """Latest acknowledgement number sent by the server (False) and by the client."""
        self.ch_segments = 0
        self.ch_end_seq: int | None = None
        self.client_acked_ch = False
        self.proxy_target: str | None = None
        self.proxy_status: int | None = None
        self.proxy_status_line: str | None = None
        self.starttls: str | None = None
        self.socks: socks.SocksSession | None = None
        """The SOCKS negotiation, on a connection whose client started one."""

    def settle(self) -> None:
        """Stop parsing payload: from now on packets are only counted. The reassemblers
        and parsers let go of their buffers."""
        if self.settled:
            return
        self.settled = True
        self.core.settle()
        for d in (self.client, self.server):
            d.rx.release()
            d.plain = bytearray()

    def _sync(self) -> None:
        """The core settled while being fed: settle the transport too."""
        if self.core.settled and not self.settled:
            self.settle()

    def swap(self) -> None:
        """The first guess of who is the client was wrong (no SYN seen): swap sides."""
        src, sport, dst, dport = self.key
        self.key = (dst, dport, src, sport)
        self.client, self.server = self.server, self.client

    # ------------------------------------------------------------------ segments

    def segment(self, seg: Segment, from_client: bool) -> None:
        """A segment of a connection still in its handshake (not its FIN or RST, see
        :meth:`close_flags`)."""
        flags = seg.flags
        ts = seg.ts
        if flags & SYN:
            if flags & ACK:
                if not from_client:
                    self.tcp_synack(ts, seg.seq)
            elif from_client:
                self.tcp_syn(ts, seg.seq)
        if seg.truncated:
            # The snaplen cut this segment: its bytes are fed as far as they go and the
            # rest is a hole (judged like any capture loss).
            self.anomaly(Anomaly.SNAPLEN_TRUNCATED)
        if seg.payload:
            # Data on a SYN (TCP Fast Open) starts one after the SYN's own sequence number.
            seq = (seg.seq + 1) & 0xFFFFFFFF if flags & SYN else seg.seq
            self.tcp_data(ts, from_client, seq, seg.payload)
        if flags & ACK and not flags & SYN and (from_client or self.synack or self.syn_count == 0):
            # A server ACK before its SYN-ACK belongs to an older connection (a challenge
            # ACK, RFC 5961 §4): it acknowledges nothing of this one.
            self.peer_ack(from_client, seg.ack)

    def close_flags(self, seg: Segment, from_client: bool) -> str | None:
        """A FIN or RST: how the connection ended (``fin``, ``rst_client``,
        ``rst_server``), or None while it goes on."""
        if seg.flags & RST:
            if from_client and not self.synack and self.syn_seq is not None and (
                seg.seq != (self.syn_seq + 1) & 0xFFFFFFFF
            ):
                # RFC 9293 §3.10.7.3: in SYN-SENT a client answers an ACK that is not for
                # its SYN (a challenge ACK) with a RST carrying that ACK's number, then
                # retransmits its SYN: the connection goes on.
                self.note(seg.ts, "client", "RST (answering an ACK of an older connection)")
                return None
            self.tcp_rst(seg.ts, from_client)
            return "rst_client" if self.rst_by == "client" else "rst_server"
        self.tcp_fin(seg.ts, from_client, seg.seq, len(seg.payload))
        return "fin" if self.client.fin and self.server.fin else None

    def close_reason(self, *, idle: bool = False) -> str:
        """How the connection ended when no RST/FIN-pair closed it."""
        if self.rst_by is not None:
            return "rst_client" if self.rst_by == "client" else "rst_server"
        if self.close_by is not None:
            return "fin"
        return "idle_timeout" if idle else "capture_end"

    def tcp_syn(self, ts: float, seq: int) -> None:
        self.syn_count += 1
        self.core.from_start = True
        if self.syn_ts is None:
            self.syn_ts = ts
            self.syn_seq = seq
            self.note(ts, "client", "SYN")
        self.client.rx.syn(seq)

    def tcp_synack(self, ts: float, seq: int) -> None:
        if not self.synack:
            self.synack = True
            self.synack_ts = ts
            self.note(ts, "server", "SYN-ACK")
            self.core.reach("tcp_open")
        self.server.rx.syn(seq)

    def tcp_fin(self, ts: float, from_client: bool, seq: int, payload_len: int) -> None:
        d = self.client if from_client else self.server
        if not d.fin:
            d.fin = True
            if not self.settled:
                d.rx.fin(seq, payload_len)
            self.note(ts, "client" if from_client else "server", "FIN")
            if from_client:
                self.ts_client_fin = ts
            if self.close_by is None:
                self.close_by = "client" if from_client else "server"
                self.ts_close = ts

    def tcp_rst(self, ts: float, from_client: bool) -> None:
        side: Side = "client" if from_client else "server"
        if self.rst_by is None:
            self.rst_by = side
            self.note(ts, side, "RST")
            if self.close_by is None or not self.core.established:
                self.close_by = side
                self.ts_close = ts

    def peer_ack(self, from_client: bool, ack: int) -> None:
        """An ACK from one side: the other side's bytes before ``ack`` were delivered."""
        self.last_ack[from_client] = ack
        other = self.server if from_client else self.client
        had_gap = other.rx.gap
        data = other.rx.peer_ack(ack)
        if data:
            self.stream(not from_client, data, self.last_ts)
        if other.rx.gap and not had_gap:
            self.anomaly(Anomaly.CAPTURE_GAP)
            if not self.core.established:
                self.anomaly(Anomaly.HANDSHAKE_LOST)
            self.settle()
        if (
            not from_client
            and self.ch_end_seq is not None
            and not self.client_acked_ch
            and ((ack - self.ch_end_seq) & 0xFFFFFFFF) < 0x80000000
        ):
            self.client_acked_ch = True

    def tcp_data(self, ts: float, from_client: bool, seq: int, payload: bytes) -> None:
        d = self.client if from_client else self.server
        d.bytes += len(payload)
        if self.settled:
            return
        if self.core.stage == "tcp_syn":
            self.core.reach("tcp_open")
        data = d.rx.data(seq, payload)
        d.segments += 1
        if data:
            self.stream(from_client, data, ts)
        if d.rx.gap:
            if not self.core.established:
                self.anomaly(Anomaly.HANDSHAKE_LOST)
            self.settle()

    # ------------------------------------------------------------------ byte streams

    def stream(self, from_client: bool, data: bytes, ts: float) -> None:
        """In-order bytes from one direction: TLS, or the plaintext before it."""
        if self.settled:
            return
        if self.mode == "tls" and (from_client or not self.socks_reply_pending()):
            self.tls_bytes(from_client, data, ts)
        elif from_client:
            self.client_start(data, ts)
        elif self.socks is not None and self.mode != "plaintext":
            self.socks_server(data, ts)
        else:
            self.server_start(data, ts)

    def tls_bytes(self, from_client: bool, data: bytes, ts: float) -> None:
        core = self.core
        if not core.accepts(from_client):
            return
        if from_client and core.ch is None:
            self.ch_segments += 1
            core.tls_bytes(True, data, ts)
            if core.ts_ch is not None:  # this data completed the ClientHello
                self.ch_end_seq = self.client.rx.next_seq
        else:
            core.tls_bytes(from_client, data, ts)
        self._sync()

    def client_start(self, data: bytes, ts: float) -> None:
        c = self.client
        if self.mode == "plaintext":
            return
        if len(c.plain) + len(data) > limits.MAX_PREAMBLE:
            self.anomaly(Anomaly.NOT_TLS)
            self.mode = "plaintext"
            self.settle()
            return
        c.plain += data
        buf = bytes(c.plain)
        if self.mode == "detect":
            kind = preamble.classify_client_start(
                buf, socks_port=self.key[3] in preamble.SOCKS_PORTS
            )
            if kind == "need_more":
                return
            if kind in ("tls", "sslv2"):
                self.start_tls(0, ts)
                return
            if kind == "socks":
                self.mode = "socks"
                self.socks = socks.SocksSession(buf[0])
            elif kind == "connect" or self.key[3] in preamble.STARTTLS_PORTS:
                self.mode = "preamble"
            else:
                self.mode = "plaintext"
                self.core.not_tls = "client"
                self.core.client_first_bytes = first_line(buf)
                self.note(ts, "client", f"not TLS: {self.core.client_first_bytes!r}")
                return
        if self.mode == "socks":
            self.socks_client(buf, ts)
            return
        if self.mode == "preamble":
            if self.proxy_target is None and buf.startswith(b"CONNECT "):
                self.proxy_target = preamble.connect_target(buf)
                if self.proxy_target is not None:
                    self.note(ts, "client", f"CONNECT {self.proxy_target}")
            if self.starttls is None and preamble.starttls_command(buf):
                self.starttls = preamble.STARTTLS_PORTS.get(self.key[3], "smtp")
                self.note(ts, "client", f"STARTTLS ({self.starttls})")
            at = preamble.find_client_hello(buf)
            if at >= 0:
                if self.proxy_target is None and self.starttls is None:
                    self.starttls = preamble.STARTTLS_PORTS.get(self.key[3])
                self.start_tls(at, ts)

    def server_start(self, data: bytes, ts: float) -> None:
        s = self.server
        if len(s.plain) < limits.MAX_PREAMBLE:
            s.plain += data[: limits.MAX_PREAMBLE - len(s.plain)]
        buf = bytes(s.plain)
        core = self.core
        if self.mode == "plaintext":
            # The client spoke something else than TLS: keep the server's answer as evidence.
            core.server_first_bytes = first_line(buf)
            self.note(ts, "server", f"answer: {core.server_first_bytes!r}")
            self.settle()
        elif self.proxy_target is not None and self.proxy_status is None:
            status = preamble.http_status(buf)
            if status is not None:
                self.proxy_status, self.proxy_status_line = status
                self.note(ts, "server", f"proxy: {self.proxy_status_line}")
                if not 200 <= self.proxy_status < 300:
                    self.settle()
        elif self.mode == "preamble":
            core.server_first_bytes = last_line(buf) or core.server_first_bytes
        elif (
            self.mode == "detect"
            and self.syn_count == 0
            and not self.client.plain
            and preamble.classify_client_start(buf) in ("tls", "sslv2")
        ):
            if preamble.find_client_hello(buf) == 0:
                # No SYN seen and the side taken for the server sends a ClientHello: swap.
                self.swap()
                self.server.plain = bytearray()
                self.client.plain = bytearray()
                self.client_start(buf, ts)
            else:
                # Mid-stream, the server's TLS comes first: follow both sides from here,
                # in wire order.
                self.start_tls(0, ts)

    # ------------------------------------------------------------------ SOCKS

    def socks_reply_pending(self) -> bool:
        """The SOCKS server's answers are not complete yet (its bytes are still SOCKS)."""
        return self.socks is not None and self.socks.server.state == "need_more"

    def socks_client(self, buf: bytes, ts: float) -> None:
        """The client's bytes so far on a SOCKS connection: its messages, then the first
        bytes through the tunnel (TLS starts there, or the tunnel carries plaintext)."""
        session = self.socks
        if session is None:
            return
        for message in session.feed_client(buf):
            self.note(ts, "client", socks.describe(message))
        parsed = session.client
        if parsed.state == "malformed":
            self.note(ts, "client", "not SOCKS: the negotiation is not followed further")
            self.anomaly(parsed.anomaly or Anomaly.SOCKS_MALFORMED)
            self.settle()
            return
        if parsed.state == "need_more":
            return
        self.proxy_target = session.target
        rest = buf[parsed.end :]
        kind = preamble.classify_client_start(rest) if rest else "need_more"
        if kind == "need_more":
            return
        if kind in ("tls", "sslv2"):
            self.start_tls(parsed.end, ts)
            return
        # The tunnel carries something other than TLS (plain HTTP through the proxy).
        self.mode = "plaintext"
        self.core.not_tls = "client"
        self.core.client_first_bytes = first_line(rest)
        self.note(ts, "client", f"not TLS through the tunnel: {self.core.client_first_bytes!r}")
        self.server.plain = bytearray()

    def socks_server(self, data: bytes, ts: float) -> None:
        """The server's bytes on a SOCKS connection: its answers, then the tunnel's."""
        session, s = self.socks, self.server
        if session is None:
            return
        s.plain += data[: limits.MAX_PREAMBLE - len(s.plain)]
        if session.server.state != "need_more":
            return  # granted, the client's TLS not started yet: the bytes wait for it
        buf = bytes(s.plain)
        for message in session.feed_server(buf):
            self.note(ts, "server", socks.describe(message))
        parsed = session.server
        if parsed.state == "need_more":
            return
        if parsed.state == "malformed":
            if self.key[3] not in preamble.SOCKS_PORTS and not parsed.messages:
                self.not_socks(buf, ts)
                return
            self.note(ts, "server", "not SOCKS: the negotiation is not followed further")
            self.anomaly(parsed.anomaly or Anomaly.SOCKS_MALFORMED)
            self.settle()
            return
        self.proxy_status = session.status
        self.proxy_status_line = session.status_line
        if not session.granted:
            self.settle()
            return
        del s.plain[: parsed.end]
        if self.mode == "tls" and s.plain:
            rest = bytes(s.plain)
            s.plain = bytearray()
            self.tls_bytes(False, rest, ts)

    def not_socks(self, server_buf: bytes, ts: float) -> None:
        """The client's first bytes only looked like SOCKS (a port other than 1080) and
        the server's answer is not SOCKS: the client spoke some other protocol."""
        session = self.socks
        c = self.client
        client_bytes = bytes(c.plain)
        if session is not None:
            client_bytes = socks.redacted(client_bytes, session.client)
        self.socks = None
        self.proxy_target = None
        self.mode = "plaintext"
        self.core.not_tls = "client"
        self.core.client_first_bytes = first_line(client_bytes)
        self.core.server_first_bytes = first_line(server_buf)
        self.note(ts, "server", f"answer: {printable(server_buf[:32])!r} (not SOCKS)")
        self.settle()

    def start_tls(self, offset: int, ts: float) -> None:
        """TLS starts at ``offset`` in the client's buffered bytes; the server's TLS
        starts with its next byte (after its SOCKS answers, in a SOCKS tunnel)."""
        self.mode = "tls"
        self.core.start_tls()
        c, s = self.client, self.server
        data = bytes(c.plain[offset:])
        s_rest, keep = b"", bytearray()
        if self.socks is not None:
            if self.socks_reply_pending():  # the client did not wait for the grant
                keep = s.plain
            else:  # the server's SOCKS answers were taken off: the rest is the tunnel's
                s_rest = bytes(s.plain)
        elif self.starttls is None and self.proxy_target is None:
            s_rest = bytes(s.plain)  # no preamble: anything the server sent is TLS too
        c.plain = bytearray()
        s.plain = keep
        self.tls_bytes(True, data, ts)
        if s_rest:
            self.tls_bytes(False, s_rest, ts)

    # ------------------------------------------------------------------ the end

    def flush(self) -> None:
        """The connection ended: holes still open with data behind them were never
        delivered (the receiver never acknowledged them). A settled connection's streams
        were not followed to their end, so they are not judged."""
        if self.settled:
            return
        if (
            not self.core.established
            and self.undelivered(from_client=False)
            and (self.server.rx.retransmits)
        ):
            # The server kept sending its flight and the client never acknowledged it.
            self.anomaly(Anomaly.SERVER_FLIGHT_LOST)
        for d, is_server in ((self.client, False), (self.server, True)):
            had_gap = d.rx.gap
            d.rx.flush()
            if d.rx.gap and not had_gap:
                self.anomaly(Anomaly.NETWORK_LOSS)
                if is_server and not self.core.established:
                    self.anomaly(Anomaly.SERVER_FLIGHT_LOST)

    def undelivered(self, *, from_client: bool) -> int:
        """Bytes one side sent that the other never acknowledged (0 if unknown)."""
        sender = self.client if from_client else self.server
        ack = self.last_ack[not from_client]
        end = sender.rx.next_seq
        if ack is None or end is None:
            return 0
        diff = (end - ack) & 0xFFFFFFFF
        return diff if diff < 0x80000000 else 0

    def relevant(self) -> bool:
        """SPEC §2: a ClientHello, a known TLS port, a CONNECT or SOCKS tunnel (also one
        refused before its request) or STARTTLS."""
        return (
            self.core.ch is not None
            or self.tls_port
            or self.proxy_target is not None
            or self.socks is not None
            or self.starttls is not None
        )

    def facts(self) -> TransportFacts:
        """What TCP saw of the connection, for the record."""
        client, server = self.client, self.server
        anomalies = {str(a) for d in (client, server) for a in d.rx.anomalies}
        midstream = client.rx.midstream or server.rx.midstream
        if midstream and self.syn_count == 0 and not self.synack:
            anomalies.add(str(Anomaly.MIDSTREAM))
        syn_retransmits = max(self.syn_count - 1, 0)
        return TransportFacts(
            key=self.key,
            first_ts=self.core.first_ts,
            last_ts=self.last_ts,
            proxy_kind=self.proxy_kind(),
            proxy_target=self.proxy_target,
            proxy_status=self.proxy_status,
            proxy_status_line=self.proxy_status_line,
            starttls=self.starttls,
            client_bytes=client.bytes,
            server_bytes=server.bytes,
            packets=self.packets,
            tcp_rtt=duration(self.syn_ts, self.synack_ts),
            client_retransmits=client.rx.retransmits + syn_retransmits,
            server_retransmits=server.rx.retransmits,
            gap_bytes=client.rx.gap_bytes + server.rx.gap_bytes,
            anomalies=frozenset(anomalies),
            client_hello_segments=self.ch_segments,
            client_hello_acked=self.client_acked_ch,
            server_unacked_bytes=self.undelivered(from_client=False),
            syn_count=self.syn_count,
            synack=self.synack,
            icmp_error=self.icmp_error,
            icmp_from=self.icmp_from,
            icmp_mtu=self.icmp_mtu,
            ts_close=self.ts_close,
            close_by=self.close_by,
            ts_client_fin=self.ts_client_fin,
        )

    def proxy_kind(self) -> str | None:
        if self.socks is not None:
            return self.socks.kind
        return "http_connect" if self.proxy_target is not None else None

"""One TCP connection: from segments to the facts of its TLS handshake.

The tracker owns the connection's two reassemblers and two TLS stream parsers, applies
the transition table of :mod:`analyzer.engine.machine` and the joint rules below, and
builds the :class:`~analyzer.record.HandshakeRecord` when the connection ends. It
records facts only; judgement (outcome, failure, reason) is :mod:`analyzer.diagnosis`.

Joint rules (the ones that need both directions):

- The side that sent the SYN is the client; without a SYN, the side that sends a
  ClientHello (the orientation is swapped if the first guess was wrong).
- TLS 1.3 (ServerHello ``supported_versions`` 0x0304 or a draft): everything after the
  ServerHello is opaque; ChangeCipherSpec is compatibility noise; the handshake is
  established when, after the server's encrypted flight, the client sends an encrypted
  record longer than an alert (SPEC §3).
- TLS ≤ 1.2: a direction's records are encrypted after its ChangeCipherSpec; the handshake
  is established once both sides sent ChangeCipherSpec and their encrypted Finished.
- Once the handshake is settled (established and the first records after it seen, a
  fatal alert, a gap, or not TLS), payload is no longer parsed: the connection takes the
  fast path where packets and bytes are only counted.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import sys
from base64 import b32encode
from collections.abc import Callable
from typing import Final

from analyzer import limits
from analyzer.anomalies import Anomaly
from analyzer.decode.icmp import describe_unreachable, unreachable_name
from analyzer.decode.types import IcmpUnreachable
from analyzer.engine import machine, preamble
from analyzer.engine.machine import CCS, FIN
from analyzer.fingerprints import client_fingerprints, ja3s
from analyzer.flows.reassembly import Reassembler
from analyzer.flows.table import FlowKey
from analyzer.record import AlertInfo, HandshakeRecord, Side, TimelineEntry
from analyzer.tls import events as ev
from analyzer.tls.certificate import LeafFacts, chain_sha256, describe_leaf, name_matches
from analyzer.tls.enums import HandshakeType as H
from analyzer.tls.enums import is_grease
from analyzer.tls.messages import CertificateChain, ClientHello, ServerHello, ServerKeyExchange
from analyzer.tls.names import alert_name, cipher_name, group_name, sigalg_name, version_name
from analyzer.tls.stream import TLSStream

ALERT_SIZED: Final = 24
"""SPEC §3: an encrypted record of at most this many payload bytes may be an alert."""

TLS13: Final = 0x0304
PRE_SHARED_KEY_EXT: Final = 41
_ZERO_SESSION_ID: Final = bytes(32)
_POST_HANDSHAKE_RECORDS: Final = 6
"""Encrypted records looked at after a TLS 1.3 client's flight before settling."""


def is_tls13(version: int) -> bool:
    """TLS 1.3 or one of its drafts (0x7fNN, and Facebook's 0x7eNN)."""
    return version == TLS13 or (version >> 8) in (0x7F, 0x7E)


@functools.lru_cache(maxsize=65536)
def ip_text(addr: bytes) -> str:
    """An address as text, one shared string per address (records hold many copies)."""
    return str(ipaddress.ip_address(addr))


def make_uid(capture: str, key: FlowKey, ts: float) -> str:
    """Stable id: a short hash of the capture name, 4-tuple and first packet time."""
    src, sport, dst, dport = key
    h = hashlib.blake2b(digest_size=10)
    h.update(f"{capture}|{src.hex()}|{sport}|{dst.hex()}|{dport}|{ts:.6f}".encode())
    return "C" + b32encode(h.digest()).decode().lower()


class Direction:
    """One direction of the connection: reassembly plus what its bytes turned out to be."""

    __slots__ = ("bytes", "fin", "plain", "rx", "segments", "tls")

    def __init__(self) -> None:
        self.rx = Reassembler()
        self.tls: TLSStream | None = None
        self.plain = bytearray()
        """Bytes seen before TLS started (CONNECT / STARTTLS preamble), bounded."""
        self.bytes = 0
        self.segments = 0
        self.fin = False


class Connection:
    """The tracker for one TCP connection."""

    __slots__ = (
        "alerts",
        "anomalies",
        "app_data",
        "ccs_seen",
        "cert",
        "ch",
        "ch_end_seq",
        "ch_segments",
        "client",
        "client_acked_ch",
        "client_certs",
        "client_enc_after_flight",
        "client_first_bytes",
        "close_by",
        "closed",
        "established",
        "finished_seen",
        "first_ts",
        "history",
        "hrr",
        "icmp_error",
        "icmp_from",
        "key",
        "last_ack",
        "last_step",
        "last_ts",
        "mode",
        "not_tls",
        "packets",
        "proxy_status",
        "proxy_status_line",
        "proxy_target",
        "reported",
        "rst_by",
        "server",
        "server_enc_after_client",
        "server_first_bytes",
        "server_flight",
        "settled",
        "sh",
        "sh_first",
        "ske_curve",
        "stage",
        "starttls",
        "syn_count",
        "syn_seq",
        "syn_ts",
        "synack",
        "synack_ts",
        "timeline",
        "tls_port",
        "ts_ch",
        "ts_close",
        "ts_established",
        "ts_failure",
        "ts_sh",
    )

    def __init__(self, key: FlowKey, ts: float, *, tls_port: bool) -> None:
        self.key = key
        """(client ip, client port, server ip, server port)."""
        self.first_ts = ts
        self.last_ts = ts
        self.tls_port = tls_port
        self.client = Direction()
        self.server = Direction()
        self.packets = 0
        self.settled = False
        self.closed = False
        self.reported = False
        self.mode = "detect"
        """Client side: detect | tls | preamble | plaintext."""
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
        self.stage = "tcp_syn"
        self.history: list[str] = []
        # Per side, indexed by ``from_client`` (False: server, True: client); lists of two
        # cost a third of two-key dicts, and there are four per connection.
        self.last_step: list[int | None] = [None, None]
        self.last_ack: list[int | None] = [None, None]
        """Latest acknowledgement number sent by the server (False) and by the client."""
        self.ch: ClientHello | None = None
        self.sh: ServerHello | None = None
        self.sh_first: ServerHello | None = None
        self.hrr = False
        self.cert: CertificateChain | None = None
        self.client_certs: int | None = None
        self.ske_curve: int | None = None
        self.alerts: list[AlertInfo] = []
        self.ccs_seen = [False, False]
        self.finished_seen = [False, False]
        self.server_flight = 0
        self.client_enc_after_flight: list[int] = []
        self.server_enc_after_client: list[int] = []
        self.established = False
        self.app_data = False
        self.anomalies: set[str] | None = None
        """Codes, once there is one (an empty set costs 216 bytes per connection)."""
        self.timeline: list[TimelineEntry] = []
        self.ch_segments = 0
        self.ch_end_seq: int | None = None
        self.client_acked_ch = False
        self.ts_ch: float | None = None
        self.ts_sh: float | None = None
        self.ts_established: float | None = None
        self.ts_failure: float | None = None
        self.not_tls: Side | None = None
        self.server_first_bytes: str | None = None
        self.client_first_bytes: str | None = None
        self.proxy_target: str | None = None
        self.proxy_status: int | None = None
        self.proxy_status_line: str | None = None
        self.starttls: str | None = None
        self.icmp_error: str | None = None
        self.icmp_from: str | None = None

    # ------------------------------------------------------------------ small helpers

    def note(self, ts: float, sender: str, what: str) -> None:
        if len(self.timeline) < limits.MAX_TIMELINE:
            self.timeline.append(
                TimelineEntry(t=ts - self.first_ts, sender=sender, what=sys.intern(what))  # type: ignore[arg-type]
            )

    def anomaly(self, code: Anomaly | str) -> None:
        if self.anomalies is None:
            self.anomalies = set()
        if len(self.anomalies) < limits.MAX_ANOMALIES:
            self.anomalies.add(str(code))

    def reach(self, stage: str) -> None:
        if machine.STAGE_ORDER[stage] > machine.STAGE_ORDER[self.stage]:
            self.stage = stage

    def add_letter(self, ch: str) -> None:
        if not self.established and len(self.history) < limits.MAX_HISTORY:
            self.history.append(ch)

    @property
    def tls13(self) -> bool:
        return self.sh is not None and is_tls13(self.sh.version)

    def swap(self) -> None:
        """The first guess of who is the client was wrong (no SYN seen): swap sides."""
        src, sport, dst, dport = self.key
        self.key = (dst, dport, src, sport)
        self.client, self.server = self.server, self.client

    def is_settled(self) -> bool:
        return self.settled

    def settle(self) -> None:
        """Stop parsing payload: from now on packets are only counted. The reassemblers
        and parsers let go of their buffers."""
        if self.settled:
            return
        self.settled = True
        for d in (self.client, self.server):
            d.rx.release()
            d.tls = None
            d.plain = bytearray()

    # ------------------------------------------------------------------ TCP events

    def icmp_unreachable(self, error: IcmpUnreachable) -> None:
        """An ICMP destination-unreachable error quoting a packet of this connection: the
        first one is kept for the record, every one goes to the timeline."""
        sender = ip_text(error.src)
        if self.icmp_error is None:
            self.icmp_error = unreachable_name(error.v6, error.code)
            self.icmp_from = sender
        src, sport = error.key[0], error.key[1]
        about = "client" if src == self.key[0] and sport == self.key[1] else "server"
        self.note(error.ts, "-", f"{describe_unreachable(error)} from {sender}, "
                  f"quoting a {about} packet")

    def tcp_syn(self, ts: float, seq: int) -> None:
        self.syn_count += 1
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
            self.reach("tcp_open")
        self.server.rx.syn(seq)

    def tcp_fin(self, ts: float, from_client: bool, seq: int, payload_len: int) -> None:
        d = self.client if from_client else self.server
        if not d.fin:
            d.fin = True
            if not self.settled:
                d.rx.fin(seq, payload_len)
            self.note(ts, "client" if from_client else "server", "FIN")
            if self.close_by is None:
                self.close_by = "client" if from_client else "server"
                self.ts_close = ts

    def tcp_rst(self, ts: float, from_client: bool) -> None:
        side: Side = "client" if from_client else "server"
        if self.rst_by is None:
            self.rst_by = side
            self.note(ts, side, "RST")
            if self.close_by is None or not self.established:
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
            if not self.established:
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
        if self.stage == "tcp_syn":
            self.reach("tcp_open")
        data = d.rx.data(seq, payload)
        d.segments += 1
        if data:
            self.stream(from_client, data, ts)
        if d.rx.gap:
            if not self.established:
                self.anomaly(Anomaly.HANDSHAKE_LOST)
            self.settle()

    # ------------------------------------------------------------------ byte streams

    def stream(self, from_client: bool, data: bytes, ts: float) -> None:
        """In-order bytes from one direction."""
        if self.settled:
            return
        d = self.client if from_client else self.server
        if d.tls is not None:
            self.tls_bytes(from_client, data, ts)
            return
        if from_client:
            self.client_start(data, ts)
        else:
            self.server_start(data, ts)

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
            kind = preamble.classify_client_start(buf)
            if kind == "need_more":
                return
            if kind in ("tls", "sslv2"):
                self.start_tls(0, ts)
                return
            if kind == "connect" or self.key[3] in preamble.STARTTLS_PORTS:
                self.mode = "preamble"
            else:
                self.mode = "plaintext"
                self.not_tls = "client"
                self.client_first_bytes = preamble.first_line(buf)
                self.note(ts, "client", f"not TLS: {self.client_first_bytes!r}")
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
        if self.mode == "plaintext":
            # The client spoke something else than TLS: keep the server's answer as evidence.
            self.server_first_bytes = preamble.first_line(buf)
            self.note(ts, "server", f"answer: {self.server_first_bytes!r}")
            self.settle()
        elif self.proxy_target is not None and self.proxy_status is None:
            status = preamble.http_status(buf)
            if status is not None:
                self.proxy_status, self.proxy_status_line = status
                self.note(ts, "server", f"proxy: {self.proxy_status_line}")
                if not 200 <= self.proxy_status < 300:
                    self.settle()
        elif self.mode == "preamble":
            self.server_first_bytes = preamble.last_line(buf) or self.server_first_bytes
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

    def start_tls(self, offset: int, ts: float) -> None:
        """TLS starts at ``offset`` in the client's buffered bytes; the server's TLS
        starts with its next byte."""
        self.mode = "tls"
        c, s = self.client, self.server
        c.tls = TLSStream(is_client=True)
        s.tls = TLSStream(is_client=False)
        data = bytes(c.plain[offset:])
        s_rest = b""
        if self.starttls is None and self.proxy_target is None:
            s_rest = bytes(s.plain)  # no preamble: anything the server sent is TLS too
        c.plain = bytearray()
        s.plain = bytearray()
        self.tls_bytes(True, data, ts)
        if s_rest:
            self.tls_bytes(False, s_rest, ts)

    def tls_bytes(self, from_client: bool, data: bytes, ts: float) -> None:
        d = self.client if from_client else self.server
        stream = d.tls
        if stream is None or stream.dead:  # settled while the other side was being fed
            return
        if from_client and self.ch is None:
            self.ch_segments += 1
        for event in stream.feed(data):
            self.tls_event(from_client, event, ts)
            if self.settled:
                return

    # ------------------------------------------------------------------ TLS events

    def tls_event(self, from_client: bool, event: ev.TLSEvent, ts: float) -> None:
        sender: Side = "client" if from_client else "server"
        if isinstance(event, ev.HandshakeMsg):
            self.handshake(from_client, event, ts)
        elif isinstance(event, ev.ApplicationData):
            self.encrypted_record(from_client, event.length, ts)
        elif isinstance(event, ev.ChangeCipherSpec):
            self.step(from_client, CCS, ts, "ChangeCipherSpec")
            self.ccs_seen[from_client] = True
            if self.sh is not None and not self.tls13:
                d = self.client if from_client else self.server
                assert d.tls is not None
                d.tls.encrypted = True
        elif isinstance(event, ev.EncryptedHandshake):
            self.encrypted_finished(from_client, ts)
        elif isinstance(event, ev.Alert):
            self.alert(sender, event, ts)
        elif isinstance(event, ev.Heartbeat):
            self.add_letter("B" if from_client else "b")
        elif isinstance(event, ev.NotTLS):
            self.not_tls = sender
            text = preamble.first_line(event.prefix)
            if from_client:
                self.client_first_bytes = text
            else:
                self.server_first_bytes = text
            self.note(ts, sender, f"not TLS: {text!r}")
            if self.ts_failure is None:
                self.ts_failure = ts
            self.settle()
        elif isinstance(event, ev.ParseAnomaly):
            self.anomaly(event.anomaly)

    def step(self, from_client: bool, step: int, ts: float, what: str) -> None:
        """Apply the transition table and history letters for one handshake step."""
        prev = self.last_step[from_client]
        if not machine.allowed(from_client, prev, step):
            self.anomaly(Anomaly.UNEXPECTED_MESSAGE)
        if not from_client and self.ch is None and step != CCS and self.syn_count:
            self.anomaly(Anomaly.UNEXPECTED_MESSAGE)  # (mid-stream the hello was missed)
        self.last_step[from_client] = step
        if step != FIN:
            self.add_letter(machine.letter(from_client, step))
        stage = machine.STAGE_OF.get((from_client, step))
        if stage:
            self.reach(stage)
        self.note(ts, "client" if from_client else "server", what)

    def handshake(self, from_client: bool, msg: ev.HandshakeMsg, ts: float) -> None:
        parsed = msg.parsed
        msg_type = msg.msg_type
        name = _message_name(msg_type)
        if isinstance(parsed, ServerHello) and parsed.is_hrr:
            msg_type = H.hello_retry_request
            name = "HelloRetryRequest"
            self.hrr = True
        self.step(from_client, msg_type, ts, name)
        if isinstance(parsed, ClientHello) and from_client:
            if self.ch is None:
                self.ch = parsed
                self.ts_ch = ts
                self.ch_end_seq = self.client.rx.next_seq
                if parsed.sslv2:
                    self.anomaly(Anomaly.SSLV2_HELLO)
        elif isinstance(parsed, ServerHello) and not from_client:
            if self.sh_first is None:
                self.sh_first = parsed
            if self.ts_sh is None:
                self.ts_sh = ts
            if not parsed.is_hrr or self.sh is None:
                self.sh = parsed
        elif isinstance(parsed, CertificateChain):
            if from_client:
                self.client_certs = len(parsed.certificates)
            elif self.cert is None:
                self.cert = parsed
        elif isinstance(parsed, ServerKeyExchange) and not from_client:
            self.ske_curve = parsed.named_curve

    def encrypted_finished(self, from_client: bool, ts: float) -> None:
        """A handshake record after this side's CCS (TLS ≤ 1.2): its Finished."""
        if self.finished_seen[from_client]:
            return
        self.finished_seen[from_client] = True
        self.step(from_client, FIN, ts, "Finished (encrypted)")
        if all(self.finished_seen) and all(self.ccs_seen):
            self.establish(ts)

    def encrypted_record(self, from_client: bool, length: int, ts: float) -> None:
        """An application_data record: data, or in TLS 1.3 the encrypted handshake."""
        sender: Side = "client" if from_client else "server"
        if self.tls13:
            if not from_client:
                if self.client_enc_after_flight:
                    self.server_enc_after_client.append(length)
                    self.note(ts, sender, f"encrypted record ({length} bytes)")
                else:
                    self.server_flight += 1
                    if self.server_flight == 1:
                        self.note(ts, sender, "encrypted handshake flight")
            elif self.server_flight:
                self.client_enc_after_flight.append(length)
                self.note(ts, sender, f"encrypted record ({length} bytes)")
                if not self.established and length > ALERT_SIZED:
                    self.establish(ts)
                elif self.established and length > ALERT_SIZED:
                    self.reach("application_data")
            total = len(self.client_enc_after_flight) + len(self.server_enc_after_client)
            if self.established and (
                (len(self.client_enc_after_flight) >= 2 and self.server_enc_after_client)
                or total >= _POST_HANDSHAKE_RECORDS
            ):
                self.settle()
            return
        if self.established:
            self.app_data = True
            self.reach("application_data")
            self.note(ts, sender, "application data")
            self.settle()
        elif self.ch is not None:
            self.note(ts, sender, f"application data before the handshake ({length} bytes)")

    def establish(self, ts: float) -> None:
        self.established = True
        self.ts_established = ts
        self.reach("established")
        self.note(ts, "-", "established")

    def alert(self, sender: Side, alert: ev.Alert, ts: float) -> None:
        level = {1: "warning", 2: "fatal"}.get(alert.level) if alert.level is not None else None
        desc = alert_name(alert.description) if alert.description is not None else None
        if len(self.alerts) < limits.MAX_ALERTS:
            self.alerts.append(
                AlertInfo(
                    sender=sender,
                    level=level,
                    description=desc,
                    code=alert.description,
                    encrypted=alert.encrypted,
                    ts=ts,
                )
            )
        if alert.encrypted:
            self.note(ts, sender, "encrypted alert")
        else:
            self.add_letter("L" if sender == "client" else "l")
            self.note(ts, sender, f"alert {level or alert.level} {desc}")
        if (level == "fatal" or alert.encrypted) and not self.established:
            if self.ts_failure is None:
                self.ts_failure = ts
            self.settle()
        elif self.established:
            self.settle()

    def flush(self) -> None:
        """The connection ended: holes still open with data behind them were never
        delivered (the receiver never acknowledged them). A settled connection's streams
        were not followed to their end, so they are not judged."""
        if self.settled:
            return
        if (
            not self.established
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
                if is_server and not self.established:
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

    # ------------------------------------------------------------------ the record

    def relevant(self) -> bool:
        """SPEC §2: a ClientHello, a known TLS port, a CONNECT tunnel or STARTTLS."""
        return (
            self.ch is not None
            or self.tls_port
            or self.proxy_target is not None
            or self.starttls is not None
        )

    def record(self, capture: str, close: str, capture_end: float | None) -> HandshakeRecord:
        """The facts of this connection as a record (no judgement yet)."""
        c_ip, c_port, s_ip, s_port = self.key
        ch, sh, first_sh = self.ch, self.sh, self.sh_first
        alerts = self.alerts_with_inferred()
        plain = [a for a in alerts if not a.encrypted]
        rec: dict[str, object] = {
            "uid": make_uid(capture, self.key, self.first_ts),
            "capture": capture,
            "ts": self.first_ts,
            "ts_end": self.last_ts,
            "client_ip": ip_text(c_ip),
            "client_port": c_port,
            "server_ip": ip_text(s_ip),
            "server_port": s_port,
            "proxy_kind": "http_connect" if self.proxy_target is not None else None,
            "proxy_target": self.proxy_target,
            "proxy_status": self.proxy_status,
            "proxy_status_line": self.proxy_status_line,
            "starttls": self.starttls,
            "history": "".join(self.history),
            "stage": self.stage,
            "established": self.established,
            "alerts": alerts,
            "last_alert": plain[-1].description if plain else None,
            "hrr": self.hrr,
            "close": close,
            "client_bytes": self.client.bytes,
            "server_bytes": self.server.bytes,
            "packets": self.packets,
            "tcp_rtt": _duration(self.syn_ts, self.synack_ts),
            "retransmits": self.client.rx.retransmits
            + self.server.rx.retransmits
            + max(self.syn_count - 1, 0),
            "client_retransmits": self.client.rx.retransmits + max(self.syn_count - 1, 0),
            "server_retransmits": self.server.rx.retransmits,
            "gap_bytes": self.client.rx.gap_bytes + self.server.rx.gap_bytes,
            "anomalies": self.anomaly_codes(),
            "client_hello_segments": self.ch_segments if ch is not None else 0,
            "client_hello_acked": self.client_acked_ch,
            "server_unacked_bytes": self.undelivered(from_client=False),
            "client_certificates": self.client_certs,
            "syn_count": self.syn_count,
            "synack": self.synack,
            "icmp_error": self.icmp_error,
            "icmp_from": self.icmp_from,
            "ts_client_hello": self.ts_ch,
            "ts_server_hello": self.ts_sh,
            "ts_close": self.ts_close,
            "close_by": self.close_by,
            "server_first_bytes": self.server_first_bytes,
            "client_first_bytes": self.client_first_bytes,
            "client_encrypted_after_server_flight": list(self.client_enc_after_flight),
            "server_encrypted_after_client_flight": list(self.server_enc_after_client),
            "capture_end": capture_end,
            "timeline": list(self.timeline),
        }
        end = self.ts_established or self.ts_failure or self.ts_close
        rec["handshake_time"] = _duration(self.ts_ch, end)
        if ch is not None:
            versions = [v for v in ch.supported_versions if not is_grease(v)]
            if not versions:
                versions = [ch.legacy_version]
                if ch.sslv2:
                    versions = [0x0002, ch.legacy_version] if ch.legacy_version != 2 else [2]
            rec["sni"] = ch.sni
            rec["offered_versions"] = [version_name(v) for v in versions]
            rec["offered_ciphers"] = names(cipher_name, ch.cipher_suites)
            rec["offered_groups"] = names(group_name, ch.supported_groups)
            rec["offered_sigalgs"] = names(sigalg_name, ch.signature_algorithms, False)
            rec["key_share_groups"] = names(group_name, ch.key_share_groups)
            rec["alpn_offered"] = [_text(p) for p in ch.alpn]
            rec["ja3_string"], rec["ja3"], rec["ja4"] = client_fingerprints(ch)
        if sh is not None:
            rec["version"] = version_name(sh.version)
            rec["cipher"] = cipher_name(sh.cipher_suite)
            group = sh.key_share_group if is_tls13(sh.version) else self.ske_curve
            rec["group"] = group_name(group) if group is not None else None
            rec["alpn"] = _text(sh.alpn) if sh.alpn is not None else None
            rec["resumed"] = self.resumed()
        if first_sh is not None:
            rec["ja3s_string"], rec["ja3s"] = ja3s(first_sh)
        if self.cert is not None and self.cert.certificates:
            chain = self.cert.certificates[: limits.MAX_CHAIN_CERTS]
            rec["cert_chain"] = tuple(chain)
            leaf, hashes = leaf_facts(tuple(chain))
            rec["cert_chain_sha256"] = list(hashes)
            if leaf is not None:
                rec["cert_subject"] = leaf.subject
                rec["cert_issuer"] = leaf.issuer
                rec["cert_sans"] = list(leaf.sans or ())
                rec["cert_not_before"] = leaf.not_before
                rec["cert_not_after"] = leaf.not_after
                rec["cert_self_issued"] = leaf.self_issued
                rec["cert_signature_hash"] = leaf.signature_hash
                rec["cert_error"] = leaf.error
                if leaf.key_type:
                    bits = f"-{leaf.key_bits}" if leaf.key_bits else ""
                    rec["cert_key"] = f"{leaf.key_type}{bits}"
                if leaf.error:
                    self.anomaly(Anomaly.MALFORMED_CERTIFICATE)
                elif ch is not None and ch.sni:
                    sans = list(leaf.sans or ())
                    rec["sni_matches_cert"] = sni_matches(ch.sni, tuple(sans), leaf.common_name)
        return HandshakeRecord(**rec)  # type: ignore[arg-type]

    def anomaly_codes(self) -> list[str]:
        codes = set(self.anomalies or ())
        for d in (self.client, self.server):
            codes.update(str(a) for a in d.rx.anomalies)
        midstream = self.client.rx.midstream or self.server.rx.midstream
        if midstream and self.syn_count == 0 and not self.synack:
            codes.add(str(Anomaly.MIDSTREAM))
        return sorted(codes)[: limits.MAX_ANOMALIES]

    def alerts_with_inferred(self) -> list[AlertInfo]:
        """The alerts, plus TLS 1.3 alert-sized encrypted records that ended a side's
        part of the handshake (marked encrypted: they are inferred to be alerts)."""
        alerts = list(self.alerts)
        if self.tls13:
            for sender, sizes, after in (
                ("client", self.client_enc_after_flight, self.server_flight > 0),
                ("server", self.server_enc_after_client, bool(self.client_enc_after_flight)),
            ):
                if after and sizes and sizes[-1] <= ALERT_SIZED and len(sizes) <= 2:
                    alerts.append(
                        AlertInfo(
                            sender=sender,  # type: ignore[arg-type]
                            level=None,
                            description=None,
                            code=None,
                            encrypted=True,
                            ts=self.last_ts,
                        )
                    )
        return alerts

    def resumed(self) -> bool:
        """Zeek's rules: same non-empty session id echoed (TLS ≤ 1.2); a session ticket
        with an empty session id and a client CCS without ClientKeyExchange; or a PSK
        offered by the client and accepted by the server (TLS 1.3)."""
        ch, sh = self.ch, self.sh
        if ch is None or sh is None:
            return False
        if is_tls13(sh.version):
            return ch.psk and any(e.type == PRE_SHARED_KEY_EXT for e in sh.extensions)
        sid = ch.session_id
        if sid and sid != _ZERO_SESSION_ID and sid == sh.session_id:
            return True
        return ch.session_ticket and not sid and self.ccs_seen[True] and "G" not in self.history


@functools.lru_cache(maxsize=1024)
def leaf_facts(chain: tuple[bytes, ...]) -> tuple[LeafFacts | None, list[str]]:
    """Leaf facts and chain hashes, cached: a server sends the same chain to every client."""
    return describe_leaf(chain), chain_sha256(chain)


@functools.lru_cache(maxsize=4096)
def sni_matches(sni: str, sans: tuple[str, ...], cn: str | None) -> bool:
    return name_matches(sni, list(sans), cn)


def names(
    namer: Callable[[int], str], codes: tuple[int, ...], skip_grease: bool = True
) -> list[str]:
    """IANA names of a hello's list (GREASE left out), worked out once per distinct short
    list: clients send the same lists on every connection. A long list (only a crafted
    hello has hundreds of cipher suites) is not remembered."""
    if len(codes) > _MAX_CACHED_NAMES:
        return list(_names_of(namer, codes, skip_grease))
    return list(_cached_names(namer, codes, skip_grease))


def _names_of(
    namer: Callable[[int], str], codes: tuple[int, ...], skip_grease: bool
) -> tuple[str, ...]:
    return tuple(namer(c) for c in codes if not (skip_grease and is_grease(c)))


_cached_names = functools.lru_cache(maxsize=limits.MAX_INTERNED)(_names_of)
_MAX_CACHED_NAMES = limits.MAX_INTERNED_LENGTH // 2
"""Codes in the longest list whose names are remembered (as many as interned lists hold)."""


def _duration(start: float | None, end: float | None) -> float | None:
    """Seconds from ``start`` to ``end``; None when unknown or when the capture's clock
    ran backwards between them."""
    if start is None or end is None or end < start:
        return None
    return end - start


def _text(value: bytes) -> str:
    return preamble.printable(value)


_MESSAGE_NAMES: Final[dict[int, str]] = {
    H.hello_request: "HelloRequest",
    H.client_hello: "ClientHello",
    H.server_hello: "ServerHello",
    H.hello_verify_request: "HelloVerifyRequest",
    H.new_session_ticket: "NewSessionTicket",
    H.hello_retry_request: "HelloRetryRequest",
    H.encrypted_extensions: "EncryptedExtensions",
    H.certificate: "Certificate",
    H.server_key_exchange: "ServerKeyExchange",
    H.certificate_request: "CertificateRequest",
    H.server_hello_done: "ServerHelloDone",
    H.certificate_verify: "CertificateVerify",
    H.client_key_exchange: "ClientKeyExchange",
    H.finished: "Finished",
    H.certificate_status: "CertificateStatus",
}


def _message_name(msg_type: int) -> str:
    return _MESSAGE_NAMES.get(msg_type, f"handshake message {msg_type}")

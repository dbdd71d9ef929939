"""The handshake core: TLS facts of one connection, whatever carries them.

One :class:`HandshakeCore` per connection (TCP, and later QUIC and DTLS). It knows TLS
messages, directions and time, and nothing of TCP flags or UDP datagrams: a transport
adapter (:mod:`analyzer.flows.tcp` for TCP) feeds it either the bytes of each direction's
TLS stream (:meth:`HandshakeCore.tls_bytes`, parsed here by two
:class:`~analyzer.tls.stream.TLSStream`) or events it parsed from its own framing
(:meth:`HandshakeCore.event`). The core applies the transition table of
:mod:`analyzer.handshake.machine` and the joint rules below, and keeps the facts that
:mod:`analyzer.handshake.build` turns into the record. It records facts only; judgement is
:mod:`analyzer.diagnosis`.

Joint rules (the ones that need both directions):

- A server may not send a handshake message before the ClientHello of a connection seen
  from its start (``from_start``; mid-stream the hello was simply missed).
- TLS 1.3 (ServerHello ``supported_versions`` 0x0304 or a draft): everything after the
  ServerHello is opaque; ChangeCipherSpec is compatibility noise; the handshake is
  established when, after the server's encrypted flight, the client sends an encrypted
  record longer than an alert (SPEC §3).
- TLS ≤ 1.2: a direction's records are encrypted after its ChangeCipherSpec; the handshake
  is established once both sides sent ChangeCipherSpec and their encrypted Finished.
- With a key log, each direction's stream opens the encrypted records that can still
  change the verdict (:mod:`analyzer.tls.stream`): decrypted messages and alerts are
  facts like visible ones (certificate, ALPN, a client certificate request, the real
  alert), noted in the timeline, but add no ``history`` letters (Zeek's letters are those
  of the plaintext). TLS 1.3 is then established by the client's decrypted Finished
  instead of by record sizes, and a record that was opened never settles the connection
  before what it carried (an alert after the handshake, a ticket) is taken in. An empty
  key log changes nothing; a followed one (live) is polled when a connection finds no
  secrets, since the client may have written them just after the packets were captured.
- Once the handshake is settled (established and the first records after it seen, a
  fatal alert, or not TLS) the core stops parsing (:attr:`HandshakeCore.settled`); the
  transport then only counts packets and bytes.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import TYPE_CHECKING, Final

from analyzer import limits
from analyzer.anomalies import Anomaly
from analyzer.handshake import machine
from analyzer.handshake.machine import CCS, FIN
from analyzer.record import TIMELINE_SETTERS, AlertInfo, Side, TimelineEntry
from analyzer.text import first_line
from analyzer.tls import events as ev
from analyzer.tls.enums import HandshakeType as H
from analyzer.tls.messages import (
    CertificateChain,
    ClientHello,
    EncryptedExtensions,
    ServerHello,
    ServerKeyExchange,
)
from analyzer.tls.names import alert_name
from analyzer.tls.stream import TLSStream

if TYPE_CHECKING:
    from analyzer.tls.decrypt import DirectionKeys, NoKeys, SessionKeys
    from analyzer.tls.keylog import KeyLog

ALERT_SIZED: Final = 24
"""SPEC §3: an encrypted record of at most this many payload bytes may be an alert."""

TLS13: Final = 0x0304
PRE_SHARED_KEY_EXT: Final = 41
ENCRYPT_THEN_MAC_EXT: Final = 22
_ZERO_SESSION_ID: Final = bytes(32)
_TIMELINE_SETTERS: Final = TIMELINE_SETTERS
_SERVER_DATA_RECORDS: Final = 4
"""TLS <= 1.2: the server's data records looked at, after the handshake, for the client's
first one (whether the client sent data decides whether it accepted the server)."""
_POST_HANDSHAKE_RECORDS: Final = 6
"""Encrypted records looked at after a TLS 1.3 client's flight before settling."""


def is_tls13(version: int) -> bool:
    """TLS 1.3 or one of its drafts (0x7fNN, and Facebook's 0x7eNN)."""
    return version == TLS13 or (version >> 8) in (0x7F, 0x7E)


class HandshakeCore:
    """The TLS handshake of one connection, as facts."""

    __slots__ = (
        "alerts",
        "anomalies",
        "app_data",
        "ccs_seen",
        "cert",
        "cert_requested",
        "ch",
        "client_certs",
        "client_data",
        "client_enc_after_flight",
        "client_first_bytes",
        "client_tls",
        "decrypted",
        "ee_alpn",
        "established",
        "finished_seen",
        "first_ts",
        "from_start",
        "history",
        "hrr",
        "keylog",
        "last_step",
        "not_tls",
        "server_data_records",
        "server_enc_after_client",
        "server_first_bytes",
        "server_flight",
        "server_tls",
        "session",
        "settled",
        "sh",
        "sh_first",
        "ske_curve",
        "stage",
        "timeline",
        "ts_ch",
        "ts_established",
        "ts_failure",
        "ts_now",
        "ts_sh",
    )

    def __init__(self, first_ts: float, *, stage: str, keylog: KeyLog | None = None) -> None:
        self.first_ts = first_ts
        """The connection's first packet: timeline times count from it."""
        self.stage = stage
        self.from_start = False
        """The transport saw the connection open (a TCP SYN): the ClientHello cannot have
        been missed."""
        self.settled = False
        self.client_tls: TLSStream | None = None
        self.server_tls: TLSStream | None = None
        self.history: list[str] = []
        # Per side, indexed by ``from_client`` (False: server, True: client); lists of two
        # cost a third of two-key dicts.
        self.last_step: list[int | None] = [None, None]
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
        self.client_data = False
        """The client sent application data after the handshake (TLS <= 1.2)."""
        self.server_data_records = 0
        self.anomalies: set[str] | None = None
        """Codes, once there is one (an empty set costs 216 bytes per connection)."""
        self.timeline: list[TimelineEntry] = []
        self.ts_ch: float | None = None
        self.ts_sh: float | None = None
        self.ts_established: float | None = None
        self.ts_failure: float | None = None
        self.not_tls: Side | None = None
        """The side that spoke something other than TLS where TLS was expected."""
        self.server_first_bytes: str | None = None
        self.client_first_bytes: str | None = None
        self.keylog = keylog
        """Secrets for decryption; None (or empty): the handshake is read as the wire
        shows it."""
        self.session: SessionKeys | NoKeys | None = None
        """This connection's keys from the key log, once asked."""
        self.decrypted = [False, False]
        """Per side (indexed by ``from_client``): records opened with the key log."""
        self.cert_requested = False
        """The server sent a CertificateRequest (plaintext, or decrypted)."""
        self.ee_alpn: bytes | None = None
        """TLS 1.3: the ALPN of the decrypted EncryptedExtensions."""
        self.ts_now = first_ts
        """Time of the event being handled (for notes made by the key source)."""

    # ------------------------------------------------------------------ shared facts

    def note(self, ts: float, sender: str, what: str) -> None:
        """A step for ``tlsa show``'s timeline (the transport notes its own steps too)."""
        if len(self.timeline) < limits.MAX_TIMELINE:
            # TimelineEntry(t=..., sender=..., what=...) without the frozen dataclass's
            # __init__ (object.__setattr__ per field): 8,100 -> 3,800 instructions a step.
            entry = object.__new__(TimelineEntry)
            set_t, set_sender, set_what = _TIMELINE_SETTERS
            set_t(entry, ts - self.first_ts)
            set_sender(entry, sender)
            set_what(entry, sys.intern(what))
            self.timeline.append(entry)

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

    def settle(self) -> None:
        """Stop parsing: the streams let go of their buffers. The transport sees
        :attr:`settled` and stops feeding."""
        if self.settled:
            return
        self.settled = True
        self.client_tls = None
        self.server_tls = None

    # ------------------------------------------------------------------ input

    def start_tls(self) -> None:
        """TLS starts now in both directions (after any plaintext preamble)."""
        self.client_tls = TLSStream(is_client=True)
        self.server_tls = TLSStream(is_client=False)

    def accepts(self, from_client: bool) -> bool:
        """Whether bytes of this direction are still parsed."""
        stream = self.client_tls if from_client else self.server_tls
        return stream is not None and not stream.dead

    def tls_bytes(self, from_client: bool, data: bytes, ts: float) -> None:
        """In-order bytes of one direction's TLS stream."""
        stream = self.client_tls if from_client else self.server_tls
        if stream is None or stream.dead:  # settled while the other side was being fed
            return
        for event in stream.feed(data):
            self.event(from_client, event, ts)
            if self.settled:
                return

    def event(self, from_client: bool, event: ev.TLSEvent, ts: float) -> None:
        """One TLS event from one direction, in wire order."""
        sender: Side = "client" if from_client else "server"
        self.ts_now = ts
        if isinstance(event, ev.HandshakeMsg):
            if event.decrypted:
                self.decrypted_message(from_client, event, ts)
            else:
                self.handshake(from_client, event, ts)
        elif isinstance(event, ev.ApplicationData):
            if event.decrypted:
                self.decrypted[from_client] = True
            self.encrypted_record(from_client, event.length, ts, opened=event.decrypted)
        elif isinstance(event, ev.ChangeCipherSpec):
            self.step(from_client, CCS, ts, "ChangeCipherSpec")
            self.ccs_seen[from_client] = True
            if self.sh is not None and not self.tls13:
                stream = self.client_tls if from_client else self.server_tls
                if stream is not None:
                    stream.encrypted = True
        elif isinstance(event, ev.EncryptedHandshake):
            self.encrypted_finished(from_client, ts)
        elif isinstance(event, ev.Alert):
            self.alert(sender, event, ts)
        elif isinstance(event, ev.Heartbeat):
            self.add_letter("B" if from_client else "b")
        elif isinstance(event, ev.NotTLS):
            self.not_tls = sender
            text = first_line(event.prefix)
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

    # ------------------------------------------------------------------ handshake steps

    def step(self, from_client: bool, step: int, ts: float, what: str) -> None:
        """Apply the transition table and history letters for one handshake step."""
        prev = self.last_step[from_client]
        if not machine.allowed(from_client, prev, step):
            self.anomaly(Anomaly.UNEXPECTED_MESSAGE)
        if not from_client and self.ch is None and step != CCS and self.from_start:
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
        name = message_name(msg_type)
        if isinstance(parsed, ServerHello) and parsed.is_hrr:
            msg_type = H.hello_retry_request
            name = "HelloRetryRequest"
            self.hrr = True
        self.step(from_client, msg_type, ts, name)
        if isinstance(parsed, ClientHello) and from_client:
            if self.ch is None:
                self.ch = parsed
                self.ts_ch = ts
                if parsed.sslv2:
                    self.anomaly(Anomaly.SSLV2_HELLO)
        elif isinstance(parsed, ServerHello) and not from_client:
            if self.sh_first is None:
                self.sh_first = parsed
            if self.ts_sh is None:
                self.ts_sh = ts
            if not parsed.is_hrr or self.sh is None:
                self.sh = parsed
            keylog = self.keylog
            if not parsed.is_hrr and keylog is not None and (len(keylog) or keylog.poll()):
                self.expect_keys()  # (an empty key log changes nothing; a followed one may grow)
        elif isinstance(parsed, CertificateChain):
            if from_client:
                self.client_certs = len(parsed.certificates)
            elif self.cert is None:
                self.cert = parsed
        elif isinstance(parsed, ServerKeyExchange) and not from_client:
            self.ske_curve = parsed.named_curve
        elif msg_type == H.certificate_request and not from_client:
            self.cert_requested = True

    def decrypted_message(self, from_client: bool, msg: ev.HandshakeMsg, ts: float) -> None:
        """A handshake message opened with the key log: a fact, but no history letter and
        no step of the transition table (those follow the plaintext)."""
        sender: Side = "client" if from_client else "server"
        self.decrypted[from_client] = True
        self.note(ts, sender, f"{message_name(msg.msg_type)} (decrypted)")
        parsed = msg.parsed
        if isinstance(parsed, CertificateChain):
            if from_client:
                self.client_certs = len(parsed.certificates)
            elif self.cert is None:
                self.cert = parsed
                self.reach("server_certificate")
        elif isinstance(parsed, EncryptedExtensions) and not from_client:
            self.ee_alpn = parsed.alpn
        elif msg.msg_type == H.certificate_request and not from_client:
            self.cert_requested = True
        elif msg.msg_type == H.finished and self.tls13:
            if not from_client:
                self.reach("server_done")
            else:
                self.reach("client_finished")
                if not self.established:
                    # The client checked the server's flight and finished (RFC 8446 §4.4.4).
                    self.establish(ts)

    def expect_keys(self) -> None:
        """The ServerHello settled version and suite: each direction will ask for its keys
        at its first encrypted record."""
        tls13 = self.tls13
        for from_client, stream in ((True, self.client_tls), (False, self.server_tls)):
            if stream is not None:
                stream.expect_keys(partial(self.keys_for, from_client), tls13=tls13)

    def keys_for(self, from_client: bool) -> DirectionKeys | None:
        """One direction's decryptors from the key log (the session's keys are worked out
        once, at the first direction that asks)."""
        from analyzer.tls.decrypt import NoKeys, NoKeysReason, session_keys

        if self.session is None and self.keylog is not None and self.ch and self.sh:
            sh, keylog, client_random = self.sh, self.keylog, self.ch.random
            secrets = keylog.lookup(client_random)
            if secrets is None and keylog.poll():  # a followed key log may have just grown
                secrets = keylog.lookup(client_random)
            self.session = session_keys(
                secrets,
                version=sh.version,
                cipher_suite=sh.cipher_suite,
                client_random=client_random,
                server_random=sh.random,
                encrypt_then_mac=any(e.type == ENCRYPT_THEN_MAC_EXT for e in sh.extensions),
            )
            if isinstance(self.session, NoKeys):
                self.note(self.ts_now, "-", f"not decrypted: {self.session.detail}")
                if self.session.reason is not NoKeysReason.NO_SECRETS:
                    self.anomaly(Anomaly.DECRYPT_UNSUPPORTED)
        if self.session is None or isinstance(self.session, NoKeys):
            return None
        return self.session.client if from_client else self.session.server

    def encrypted_finished(self, from_client: bool, ts: float) -> None:
        """A handshake record after this side's CCS (TLS ≤ 1.2): its Finished."""
        if self.finished_seen[from_client]:
            return
        self.finished_seen[from_client] = True
        self.step(from_client, FIN, ts, "Finished (encrypted)")
        if all(self.finished_seen) and all(self.ccs_seen):
            self.establish(ts)

    def encrypted_record(
        self, from_client: bool, length: int, ts: float, *, opened: bool = False
    ) -> None:
        """An application_data record: data, or in TLS 1.3 the encrypted handshake."""
        sender: Side = "client" if from_client else "server"
        if self.tls13:
            self.tls13_record(from_client, length, ts, opened=opened)
            return
        if self.established:
            if not self.app_data:
                self.note(ts, sender, "application data")
            self.app_data = True
            self.reach("application_data")
            if from_client:
                self.client_data = True
                self.settle()
            else:
                # A server that speaks first (SMTP, IMAP over TLS), or answers a client that
                # already left: whether the client sends data is still to be seen.
                self.server_data_records += 1
                if self.server_data_records >= _SERVER_DATA_RECORDS:
                    self.settle()
        elif self.ch is not None:
            self.note(ts, sender, f"application data before the handshake ({length} bytes)")

    def tls13_record(self, from_client: bool, length: int, ts: float, *, opened: bool) -> None:
        """TLS 1.3 encrypted records: the server's flight, then the client's (without keys,
        established when it is longer than an alert; with keys, by its decrypted
        Finished), then what each side sends next."""
        if not from_client:
            if self.client_enc_after_flight:
                self.server_enc_after_client.append(length)
                self.note(ts, "server", f"encrypted record ({length} bytes)")
            else:
                self.server_flight += 1
                if self.server_flight == 1:
                    self.note(ts, "server", "encrypted handshake flight")
        elif self.server_flight:
            self.client_enc_after_flight.append(length)
            self.note(ts, "client", f"encrypted record ({length} bytes)")
            if not self.established and length > ALERT_SIZED and not opened:
                self.establish(ts)
            elif self.established and length > ALERT_SIZED:
                self.reach("application_data")
        if opened:
            return  # what it carried comes next (an alert settles by itself)
        total = len(self.client_enc_after_flight) + len(self.server_enc_after_client)
        if self.established and (
            (len(self.client_enc_after_flight) >= 2 and self.server_enc_after_client)
            or total >= _POST_HANDSHAKE_RECORDS
        ):
            self.settle()

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
        if alert.decrypted:
            self.decrypted[sender == "client"] = True
            self.note(ts, sender, f"alert {level or alert.level} {desc} (decrypted)")
        elif alert.encrypted:
            self.note(ts, sender, "encrypted alert")
        else:
            self.add_letter("L" if sender == "client" else "l")
            self.note(ts, sender, f"alert {level or alert.level} {desc}")
        if (level == "fatal" or alert.encrypted) and not self.established:
            if self.ts_failure is None:
                self.ts_failure = ts
            self.settle()
        elif self.established and not (alert.decrypted and level != "fatal"):
            self.settle()
        # (a decrypted close_notify after the handshake: the peer's answer, e.g. a server's
        # certificate_required, may still come; the post-handshake record limit settles it)

    # ------------------------------------------------------------------ facts for the record

    def alerts_with_inferred(self, last_ts: float) -> list[AlertInfo]:
        """The alerts, plus TLS 1.3 alert-sized encrypted records that ended a side's
        part of the handshake (marked encrypted: they are inferred to be alerts)."""
        alerts = list(self.alerts)
        if self.tls13:
            for sender, sizes, after in (
                ("client", self.client_enc_after_flight, self.server_flight > 0),
                ("server", self.server_enc_after_client, bool(self.client_enc_after_flight)),
            ):
                if self.decrypted[sender == "client"]:
                    continue  # the key log showed what the records were
                if after and sizes and sizes[-1] <= ALERT_SIZED and len(sizes) <= 2:
                    alerts.append(
                        AlertInfo(
                            sender=sender,  # type: ignore[arg-type]
                            level=None,
                            description=None,
                            code=None,
                            encrypted=True,
                            ts=last_ts,
                        )
                    )
        return alerts

    def client_sent_data(self) -> bool:
        """Whether the client sent application data after the handshake. TLS 1.3 without
        keys: a record longer than an alert after the one that completed the handshake
        (its Finished)."""
        if self.tls13:
            return any(size > ALERT_SIZED for size in self.client_enc_after_flight[1:])
        return self.client_data

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


def message_name(msg_type: int) -> str:
    return _MESSAGE_NAMES.get(msg_type, f"handshake message {msg_type}")

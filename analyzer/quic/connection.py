"""The QUIC transport: one connection's datagrams in, its TLS events out to the handshake core.

A :class:`QuicConnection` is the adapter between the engine's UDP seam and the handshake
core, as :mod:`analyzer.dtls.connection` is for DTLS. Its
:class:`~analyzer.quic.parser.QuicConnectionParser` removes the Initial protection and
gives the TLS messages of the CRYPTO frames, which go to the core as TCP's do: the hellos
(SNI, ALPN, JA3, JA4 with ``q``, version, cipher, group) and ``history`` letters for them.
What only QUIC has becomes transport facts: the version, Zeek's quic.log history, packet
counts, the visible CONNECTION_CLOSE, Version Negotiation, Initials repeated into silence,
the largest datagram of each side.

Rules that are QUIC's own (SPEC §3):

- **Established**: 1-RTT packets from both sides after Handshake packets from both (the
  short headers of a datagram come after its long headers, so a client's Handshake
  packet and 1-RTT packet in one datagram count in that order). With a key log the core
  establishes earlier, at the client's decrypted Finished, as over TCP.
- **Key log**: at each ClientHello the core's key log is asked for the client and server
  handshake traffic secrets of its random; the parser then opens the Handshake packets.
  What they hold (EncryptedExtensions, the certificate, both Finished, a CRYPTO_ERROR
  close) reaches the core marked ``decrypted``: facts, but no ``history`` letters.
- **A close**: a CONNECTION_CLOSE carrying CRYPTO_ERROR 0x01XX is TLS alert XX, sent by
  whoever sent the close (a fatal alert for the core). One in an Initial is visible to
  anyone, yet Zeek's ``ssl_history`` has no letter for it (it is no TLS message in a
  CRYPTO frame), so its ``l`` is taken back. Any visible close settles the connection
  and :attr:`QuicConnection.closed_at` tells the engine to report it once the peers'
  last datagrams are in (:data:`analyzer.limits.QUIC_CLOSE_DRAIN`).
- **Retry and Version Negotiation**: the client starts its handshake over with a new
  ClientHello; the core starts over too (:meth:`QuicConnection.restart`), so the record
  describes the handshake the server answered. The timeline and anomalies carry over;
  the first attempt stays visible in ``quic_history`` and the timeline.
- **Settled** once established and a 1-RTT packet follows (``application_data``), or on a
  visible close; then datagrams are only counted.

Not here: which datagrams belong to the connection (the engine's UDP seam, by 4-tuple and
connection ID), judgement (:mod:`analyzer.diagnosis.rules.quic`).
"""

from __future__ import annotations

from analyzer.flows.connection import DatagramConnection
from analyzer.flows.table import FlowKey
from analyzer.handshake.build import TransportFacts
from analyzer.handshake.core import HandshakeCore
from analyzer.quic.events import ConnectionClose, PacketSeen, QuicEvent, Retry, VersionNegotiation
from analyzer.quic.packet import peek_long_header
from analyzer.quic.parser import QuicConnectionParser
from analyzer.quic.versions import PacketType, version_name
from analyzer.text import printable
from analyzer.tls.events import Alert, HandshakeMsg, ParseAnomaly
from analyzer.tls.keylog import KeyLog
from analyzer.tls.messages import ClientHello

_HS, _1RTT = PacketType.handshake, PacketType.one_rtt
_LONG_FIXED = 0xC0
_FIRST_DCID = 8
"""RFC 9000 §7.2: a client's first Destination Connection ID is at least 8 bytes."""
_FIRST_NOTED = {_HS: 1, _1RTT: 4}
"""Bits of :attr:`QuicConnection.noted` (shifted by one for the client)."""


class QuicConnection(DatagramConnection):
    """The QUIC side of one connection (its 4-tuple is the one it started on)."""

    __slots__ = (
        "client_bytes",
        "close",
        "closed_at",
        "hs_base",
        "keyed",
        "max_datagram",
        "noted",
        "parser",
        "quic_port",
        "routing_ids",
        "server_bytes",
        "server_versions",
    )

    def __init__(
        self, key: FlowKey, ts: float, *, quic_port: bool, from_start: bool,
        keylog: KeyLog | None = None,
    ) -> None:
        super().__init__(key, ts, HandshakeCore(ts, stage="client_hello", keylog=keylog))
        self.core.from_start = from_start
        self.parser = QuicConnectionParser(await_secrets=bool(keylog))
        self.quic_port = quic_port
        """The server's port is a QUIC port (443): a record even without a ClientHello."""
        self.client_bytes = 0
        self.server_bytes = 0
        self.max_datagram: list[int | None] = [None, None]
        """Largest UDP payload per side, indexed by ``from_client``."""
        self.hs_base: tuple[int, int] | None = None
        """1-RTT packets (server, client) sent before Handshake packets from both sides
        were seen; None until then."""
        self.keyed: bytes | None = None
        """The client random whose secrets were installed (one lookup per ClientHello)."""
        self.close: ConnectionClose | None = None
        self.closed_at: float | None = None
        """Time of the first visible CONNECTION_CLOSE: the engine reports the connection
        once its draining time has passed."""
        self.server_versions: tuple[int, ...] = ()
        self.noted = 0
        """First packets already in the timeline (:data:`_FIRST_NOTED`)."""
        self.routing_ids: list[bytes] = []
        """Connection IDs the engine's UDP seam routes to this connection."""

    # ------------------------------------------------------------------ input

    def datagram(self, from_client: bool, payload: bytes, ts: float) -> None:
        """One datagram of the connection (UDP payload); once settled, only counted."""
        size = len(payload)
        if from_client:
            self.client_bytes += size
        else:
            self.server_bytes += size
        largest = self.max_datagram[from_client]
        if largest is None or size > largest:
            self.max_datagram[from_client] = size
        parser = self.parser
        if self.settled:
            parser.counted(from_client, payload, ts)
            return
        before = (parser.packet_count(False, _1RTT), parser.packet_count(True, _1RTT))
        self._events(from_client, parser.datagram(from_client, payload, ts), ts)
        if not self.settled:
            self._keys(ts)
        if not self.settled:
            self._progress(from_client, before, ts)

    def _events(self, from_client: bool, events: list[QuicEvent], ts: float) -> None:
        sender = "client" if from_client else "server"
        core = self.core
        for event in events:
            if isinstance(event, HandshakeMsg | Alert) and core.settled:
                continue  # the core decided; the transport's facts still count
            if isinstance(event, HandshakeMsg):
                if from_client and isinstance(event.parsed, ClientHello) and core.ch:
                    core = self.restart(ts)
                core.event(from_client, event, ts)
            elif isinstance(event, Alert):
                letters = len(core.history)
                core.event(from_client, event, ts)
                if not event.decrypted:
                    del core.history[letters:]  # a close is no TLS message: no letter
            elif isinstance(event, ParseAnomaly):
                core.event(from_client, event, ts)
            elif isinstance(event, PacketSeen):
                self._seen(from_client, event, ts)
            elif isinstance(event, ConnectionClose):
                self._on_close(event, ts)
            elif isinstance(event, VersionNegotiation):
                if not from_client and not self.server_versions:
                    self.server_versions = event.versions
                self.note(ts, sender, "Version Negotiation: "
                          + ", ".join(version_name(v) for v in event.versions))
            elif isinstance(event, Retry):
                bad = ", bad integrity tag" if event.tag_valid is False else ""
                self.note(ts, sender, f"Retry ({event.token_length}-byte token{bad})")
        if core.settled or self.close is not None:
            self.settle()

    def _seen(self, from_client: bool, seen: PacketSeen, ts: float) -> None:
        """The first Handshake and 1-RTT packet of each side go to the timeline."""
        bit = _FIRST_NOTED.get(seen.type, 0) << from_client
        if bit and not self.noted & bit:
            self.noted |= bit
            what = "Handshake" if seen.type is _HS else "1-RTT"
            self.note(ts, "client" if from_client else "server",
                      f"{what} packet ({seen.length} bytes, encrypted)")

    def restart(self, ts: float) -> HandshakeCore:
        """A new ClientHello after Retry or Version Negotiation: the handshake starts
        over in a new core (returned); the timeline and anomalies carry over."""
        old = self.core
        core = HandshakeCore(old.first_ts, stage="client_hello", keylog=old.keylog)
        core.from_start = old.from_start
        core.timeline = old.timeline
        core.anomalies = old.anomalies
        self.core = core
        self.keyed = None
        self.hs_base = None
        self.note(ts, "client", "the client starts its handshake over")
        return core

    def _keys(self, ts: float) -> None:
        """With a key log, install the handshake traffic secrets of the ClientHello's
        random in the parser (once found; looked up again until they are)."""
        core = self.core
        if not core.keylog or core.ch is None or self.keyed == core.ch.random:
            return
        secrets = core.keylog.lookup(core.ch.random)
        if secrets is None:
            return
        self.keyed = core.ch.random
        for from_client, secret in ((True, secrets.client_handshake_traffic),
                                    (False, secrets.server_handshake_traffic)):
            if secret is not None:
                self._events(from_client, self.parser.install_handshake_secret(from_client,
                                                                               secret), ts)

    def _on_close(self, close: ConnectionClose, ts: float) -> None:
        sender = "client" if close.from_client else "server"
        kind = "application" if close.application else "transport"
        reason = f" {printable(close.reason.encode())!r}" if close.reason else ""
        self.note(ts, sender, f"CONNECTION_CLOSE ({kind} error 0x{close.error_code:x}{reason}, "
                  f"in a{'n Initial' if close.packet_type is PacketType.initial else ' Handshake'}"
                  " packet)")
        if self.close is None:
            self.close = close
            self.closed_at = ts

    def _progress(self, from_client: bool, before: tuple[int, int], ts: float) -> None:
        """Establishment by packet types (SPEC §3), then the 1-RTT packet that settles."""
        parser, core = self.parser, self.core
        if self.hs_base is None:
            if parser.packet_count(True, _HS) and parser.packet_count(False, _HS):
                # This datagram's 1-RTT packets came after its Handshake packets.
                base = list(before)
                base[not from_client] = parser.packet_count(not from_client, _1RTT)
                self.hs_base = (base[0], base[1])
            else:
                return
        one_rtt = (parser.packet_count(False, _1RTT), parser.packet_count(True, _1RTT))
        if not (one_rtt[0] > self.hs_base[0] and one_rtt[1] > self.hs_base[1]):
            return
        if not core.established:
            core.establish(ts)
        elif one_rtt[from_client] > before[from_client]:
            core.reach("application_data")
            core.note(ts, "client" if from_client else "server", "1-RTT data")
            self.settle()

    def starts_anew(self, from_client: bool, payload: bytes) -> bool:
        """Whether a datagram on this connection's 4-tuple is the first Initial of a new
        connection (the client's port was reused): a client Initial whose DCID is none of
        this connection's, with a first-DCID length (RFC 9000 §7.2: 8 bytes or more),
        after the server answered this one (a new DCID after Version Negotiation or
        before any answer is the same client trying again)."""
        if (
            not from_client
            or not payload
            or payload[0] & _LONG_FIXED != _LONG_FIXED
            or not self.parser.server_answered
        ):
            return False
        ids = peek_long_header(payload)
        if ids is None or ids.type is not PacketType.initial or len(ids.dcid) < _FIRST_DCID:
            return False
        return all(ids.dcid != cid for cid, _ in self.parser.connection_ids())

    # ------------------------------------------------------------------ record

    def relevant(self) -> bool:
        """A ClientHello, or a client's long header to a QUIC port (an unknown version,
        a first Initial that could not be read)."""
        return self.core.ch is not None or (self.quic_port and self.client_bytes > 0)

    def close_reason(self, *, idle: bool = False) -> str:
        if self.close is not None:
            return "connection_close"
        return super().close_reason(idle=idle)

    def facts(self) -> TransportFacts:
        f = self.parser.facts()
        close = self.close
        return TransportFacts(
            key=self.key,
            first_ts=self.core.first_ts,
            last_ts=self.last_ts,
            transport="quic",
            quic_version=f.version_name,
            quic_history=f.history,
            client_bytes=self.client_bytes,
            server_bytes=self.server_bytes,
            packets=self.packets,
            client_retransmits=f.client_initial_repeats,
            client_max_datagram=self.max_datagram[True],
            server_max_datagram=self.max_datagram[False],
            icmp_error=self.icmp_error,
            icmp_from=self.icmp_from,
            ts_close=self.closed_at,
            close_by=None if close is None else "client" if close.from_client else "server",
            quic_close_code=None if close is None else close.error_code,
            quic_close_application=close is not None and close.application,
            quic_close_reason=printable(close.reason.encode()) if close and close.reason
            else None,
            quic_server_versions=tuple(version_name(v) for v in self.server_versions),
            quic_client_handshake_packets=f.client.handshake,
            quic_server_handshake_packets=f.server.handshake,
            quic_client_one_rtt_packets=f.client.one_rtt,
        )


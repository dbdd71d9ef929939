"""One QUIC connection, sans-IO: UDP payloads in, QUIC and TLS events out.

What it does: :class:`QuicConnectionParser` is fed each datagram of one connection with
its direction. It splits coalesced packets (:mod:`analyzer.quic.packet`), removes the
protection of Initial packets of both sides with keys derived from the client's first
Destination Connection ID (RFC 9001 §5.2; after a Retry, from the DCID the Retry gave;
after Version Negotiation, from the client's new first DCID), reads their frames
(:mod:`analyzer.quic.frames`), puts each side's CRYPTO data back in order
(:mod:`analyzer.quic.crypto_stream`) and turns it into the TLS handshake messages the TCP
path produces, with :class:`~analyzer.tls.handshake.HandshakeReassembler` (QUIC carries
TLS handshake messages without records, RFC 9001 §4). Handshake, 0-RTT and 1-RTT packets
are counted without keys; with a handshake traffic secret installed
(:meth:`~QuicConnectionParser.install_handshake_secret`, from a key log), Handshake packets
are decrypted the same way and EncryptedExtensions, Certificate, CertificateVerify and
Finished come out too, marked ``decrypted`` (as the TCP path marks what a key log opened);
a CRYPTO_ERROR close becomes a fatal :class:`~analyzer.tls.events.Alert`, ``encrypted``
and ``decrypted`` when it came in a Handshake packet. It builds Zeek's quic.log
``history`` as packets come (:mod:`analyzer.quic.history`).

What it does not do: decide which datagrams belong to the connection (the engine does,
with :func:`~analyzer.quic.packet.peek_long_header`), judge the handshake, read key logs,
decrypt 0-RTT or 1-RTT packets, or look at time (``ts`` is only recorded).

Memory per connection: a few hundred bytes of state, Initial keys for at most two DCIDs,
and, only while data is out of order or secrets are awaited, buffers bounded by
``MAX_QUIC_CRYPTO_PENDING`` and ``MAX_QUIC_PENDING_PACKETS``.
"""

from __future__ import annotations

from dataclasses import replace

from analyzer.anomalies import Anomaly
from analyzer.limits import MAX_QUIC_PENDING_PACKETS, MAX_QUIC_VERSIONS
from analyzer.quic.crypto import SUITES, PacketKeys, initial_keys, packet_keys, retry_tag_valid
from analyzer.quic.crypto_stream import CryptoStream
from analyzer.quic.events import (
    ConnectionClose,
    Decrypted,
    PacketCounts,
    PacketSeen,
    QuicEvent,
    QuicFacts,
    Retry,
    UnknownVersion,
    VersionNegotiation,
)
from analyzer.quic.frames import Ack, Crypto, Padding, Ping, parse_frames
from analyzer.quic.frames import ConnectionClose as CloseFrame
from analyzer.quic.history import ZeekQuicHistory
from analyzer.quic.packet import (
    FIXED_BIT,
    FORM_BIT,
    LongPacket,
    RetryPacket,
    ShortPacket,
    UnknownVersionPacket,
    VersionNegotiationPacket,
    split_datagram,
)
from analyzer.quic.versions import VERSIONS, ZEEK_VERSIONS, PacketType, version_name
from analyzer.tls.enums import AlertLevel, HandshakeType
from analyzer.tls.events import Alert, HandshakeMsg, ParseAnomaly
from analyzer.tls.handshake import HandshakeReassembler
from analyzer.tls.messages import ServerHello

CLIENT, SERVER = 0, 1
INITIAL, HANDSHAKE = 0, 1
"""Indexes of the per-side and per-level state."""

_COUNTED = ("initial", "zero_rtt", "handshake", "one_rtt", "retry", "version_negotiation",
            "unknown_version", "undecryptable")
_TYPE_INDEX = {PacketType.initial: 0, PacketType.zero_rtt: 1, PacketType.handshake: 2,
               PacketType.one_rtt: 3, PacketType.retry: 4, PacketType.version_negotiation: 5}
_UNKNOWN, _UNDECRYPTABLE = 6, 7
_ZEEK_LETTER = {PacketType.initial: "I", PacketType.handshake: "H", PacketType.zero_rtt: "Z"}

_ZEEK_FRAMES = (Padding, Ping, Ack, Crypto)
"""Frames Zeek's grammar reads in an Initial, with CONNECTION_CLOSE 0x1c; any other makes
it give up on the rest of the datagram."""


class _Level:
    """One side's CRYPTO stream at one level and the handshake messages it carries."""

    __slots__ = ("messages", "reassembler", "stream")

    def __init__(self) -> None:
        self.stream = CryptoStream()
        self.reassembler = HandshakeReassembler()
        self.messages = 0


class QuicConnectionParser:
    """The QUIC layer of one connection (both directions).

    Call :meth:`datagram` for each UDP payload in capture order; read :meth:`facts` at any
    time. ``await_secrets``: a key log is loaded, so Handshake packets that arrive before
    their secret is installed are held (at most ``MAX_QUIC_PENDING_PACKETS`` per side)
    and decrypted when it is.
    """

    __slots__ = (
        "_await_secrets", "_closes", "_counts", "_decrypted", "_first_ts", "_history",
        "_hs_keys", "_hs_secrets", "_initial_dcid", "_initial_keys", "_largest", "_last_ts",
        "_levels", "_offered", "_original_dcid", "_pending", "_repeats", "_retry", "_scids",
        "_server_answered", "_short_seen", "_suite", "_unanswered", "_version",
    )

    def __init__(self, *, await_secrets: bool = False) -> None:
        self._await_secrets = await_secrets
        self._version: list[int | None] = [None, None]
        self._original_dcid: bytes | None = None
        self._initial_dcid: bytes | None = None
        """The DCID the Initial keys come from (changes after Retry or VN)."""
        self._initial_keys: dict[tuple[int, bytes], tuple[PacketKeys, PacketKeys]] = {}
        self._scids: list[bytes | None] = [None, None]
        self._counts = [[0] * len(_COUNTED), [0] * len(_COUNTED)]
        self._largest = [[-1, -1], [-1, -1]]
        self._levels: list[list[_Level | None]] = [[None, None], [None, None]]
        self._hs_secrets: list[bytes | None] = [None, None]
        self._hs_keys: list[PacketKeys | None] = [None, None]
        self._suite: int | None = None
        self._pending: list[list[LongPacket]] = [[], []]
        self._decrypted = [False, False]
        self._short_seen = [False, False]
        self._server_answered = False
        """The server sent an Initial, Handshake or 1-RTT packet (not only Retry or VN)."""
        self._unanswered = 0
        """Client datagrams with an Initial since the server's last datagram."""
        self._repeats = 0
        self._retry: Retry | None = None
        self._offered: tuple[int, ...] = ()
        self._closes: list[ConnectionClose] = []
        self._first_ts: list[float | None] = [None, None]
        self._last_ts: list[float | None] = [None, None]
        self._history = ZeekQuicHistory()

    # -- what the engine reads ------------------------------------------------------

    def facts(self) -> QuicFacts:
        version = self._version[SERVER]
        if version is None:
            version = self._version[CLIENT]
        return QuicFacts(
            version=version,
            version_name=version_name(version) if version is not None else None,
            offered_versions=self._offered,
            client_initial_dcid=self._original_dcid,
            client_scid=self._scids[CLIENT],
            server_scid=self._scids[SERVER],
            history=self._history.text,
            history_rows=self._history.rows,
            client=PacketCounts(**dict(zip(_COUNTED, self._counts[CLIENT], strict=True))),
            server=PacketCounts(**dict(zip(_COUNTED, self._counts[SERVER], strict=True))),
            client_initial_repeats=self._repeats,
            retry=self._retry,
            closes=tuple(self._closes),
            decrypted=tuple(side for side, done in zip(("client", "server"), self._decrypted,
                                                       strict=True) if done),
        )

    def packet_count(self, from_client: bool, packet_type: PacketType) -> int:
        """Packets of one type one side sent so far (cheaper than :meth:`facts`)."""
        return self._counts[CLIENT if from_client else SERVER][_TYPE_INDEX[packet_type]]

    @property
    def server_answered(self) -> bool:
        """The server sent an Initial, Handshake or 1-RTT packet (not only Retry or VN)."""
        return self._server_answered

    def connection_ids(self) -> tuple[tuple[bytes, bool], ...]:
        """The connection IDs seen so far, each with whether packets carrying it as their
        DCID go to the client: the client's first DCID, the Retry's and the server's
        latest SCID (to the server), the client's latest SCID (to the client)."""
        found = [(self._original_dcid, False), (self._scids[SERVER], False),
                 (self._scids[CLIENT], True)]
        if self._retry is not None:
            found.append((self._retry.scid, False))
        return tuple((cid, to_client) for cid, to_client in found if cid)

    def short_dcid_length(self, to_client: bool) -> int:
        """Length of the DCID in short headers sent to that side: the length of the
        connection ID that side chose (its long headers' SCID); 0 until one was seen."""
        scid = self._scids[CLIENT if to_client else SERVER]
        return len(scid) if scid is not None else 0

    def times(self, from_client: bool) -> tuple[float | None, float | None]:
        """Timestamps of the first and last datagram of one side."""
        side = CLIENT if from_client else SERVER
        return self._first_ts[side], self._last_ts[side]

    # -- input -------------------------------------------------------------------------

    def install_handshake_secret(self, from_client: bool, secret: bytes) -> list[QuicEvent]:
        """Install one side's TLS 1.3 handshake traffic secret (``CLIENT_/SERVER_HANDSHAKE_
        TRAFFIC_SECRET`` of a key log). Keys are derived once the ServerHello gave the
        cipher suite; held Handshake packets of that side are decrypted now, and their
        events returned."""
        side = CLIENT if from_client else SERVER
        self._hs_secrets[side] = secret
        self._derive_handshake_keys(side)
        events: list[QuicEvent] = []
        self._replay(side, events)
        return events

    def _replay(self, side: int, events: list[QuicEvent]) -> None:
        """Decrypt the Handshake packets of one side held until its keys existed."""
        if self._hs_keys[side] is not None and self._pending[side]:
            held, self._pending[side] = self._pending[side], []
            for packet in held:
                self._handshake(side, packet, events, replay=True)

    def datagram(self, from_client: bool, data: bytes, ts: float) -> list[QuicEvent]:
        """Events for one UDP payload sent by the client (``from_client``) or the server."""
        side = CLIENT if from_client else SERVER
        if self._first_ts[side] is None:
            self._first_ts[side] = ts
        self._last_ts[side] = ts
        events: list[QuicEvent] = []
        split = split_datagram(data, self.short_dcid_length(to_client=not from_client))
        zeek = True  # Zeek still reads this datagram
        progress = self._initial_progress()
        has_initial = False
        for first, packet in split.packets:
            if zeek and not first & FIXED_BIT:
                self._history.discarded(from_client)
                zeek = False
            if isinstance(packet, LongPacket):
                has_initial |= packet.type is PacketType.initial
                zeek = self._long(side, packet, zeek, events)
            elif isinstance(packet, ShortPacket):
                self._short(side, packet, zeek, events)
            elif isinstance(packet, RetryPacket):
                self._on_retry(side, packet, zeek, events)
            elif isinstance(packet, VersionNegotiationPacket):
                self._on_version_negotiation(side, packet, zeek, events)
            else:
                self._on_unknown_version(side, packet, zeek, events)
        if split.anomaly is not None:
            events.append(split.anomaly)
        if zeek and split.rest and not split.rest[0] & FIXED_BIT:
            self._history.discarded(from_client)  # zero padding after the packets
        self._replay(side, events)  # the ServerHello may have just given the cipher suite
        new_crypto = self._initial_progress() != progress
        if side == SERVER:
            self._unanswered = 0
            self._server_answered |= any(
                isinstance(packet, LongPacket | ShortPacket) for _, packet in split.packets)
        elif has_initial:
            self._unanswered += 1
            if self._unanswered > 1 and not self._server_answered and not new_crypto:
                self._repeats += 1  # (the next part of a long ClientHello is no repeat)
        return events

    def counted(self, from_client: bool, data: bytes, ts: float) -> None:
        """A datagram of a connection whose handshake is settled: a short-header datagram
        (one 1-RTT packet, RFC 9000 §12.2) is only counted, from its first byte, with its
        history letter; any other is read as :meth:`datagram` reads it (rare once
        settled), its events dropped."""
        if not data or data[0] & FORM_BIT:
            self.datagram(from_client, data, ts)
            return
        side = CLIENT if from_client else SERVER
        if self._first_ts[side] is None:
            self._first_ts[side] = ts
        self._last_ts[side] = ts
        if not data[0] & FIXED_BIT:
            self._history.discarded(from_client)
            return
        self._counts[side][_TYPE_INDEX[PacketType.one_rtt]] += 1
        self._history.short_packet(from_client)

    def _initial_progress(self) -> int:
        """CRYPTO bytes of the client's Initials received so far, in order or held (a
        datagram that does not change it brought nothing new: a repeat)."""
        state = self._levels[CLIENT][INITIAL]
        return 0 if state is None else state.stream.delivered + state.stream.pending

    # -- packet types ------------------------------------------------------------------

    def _count(self, side: int, index: int) -> None:
        self._counts[side][index] += 1

    def _long(self, side: int, packet: LongPacket, zeek: bool, events: list[QuicEvent]) -> bool:
        """Handle an Initial, 0-RTT or Handshake packet; return whether Zeek goes on."""
        from_client = side == CLIENT
        self._count(side, _TYPE_INDEX[packet.type])
        self._version[side] = packet.version
        self._scids[side] = packet.scid
        if zeek:
            if packet.type is PacketType.initial and len(packet.data) - packet.pn_offset < 20:
                zeek = False  # Zeek's grammar requires room for a packet number and sample
            else:
                self._history.long_packet(from_client, _ZEEK_LETTER[packet.type])
        if packet.type is PacketType.initial:
            if from_client and self._original_dcid is None:
                self._original_dcid = packet.dcid
            return self._initial(side, packet, zeek, events)
        if packet.type is PacketType.handshake:
            self._handshake(side, packet, events)
        else:
            events.append(_seen(packet))
        return zeek

    def _initial(self, side: int, packet: LongPacket, zeek: bool, events: list[QuicEvent]) -> bool:
        from_client = side == CLIENT
        zeek_reads = zeek and self._history.would_decrypt(from_client)
        if zeek_reads and from_client:
            self._history.dcid_known = True
        opened = None
        if from_client and self._initial_dcid is None:
            self._initial_dcid = packet.dcid
        if self._initial_dcid is not None:
            opened = self._keys(packet.version, self._initial_dcid)[side].unprotect(
                packet.data, packet.pn_offset, self._largest[side][INITIAL])
            if opened is None and from_client and packet.dcid != self._initial_dcid:
                # A new attempt (after Version Negotiation) may start from a new DCID.
                opened = self._keys(packet.version, packet.dcid)[side].unprotect(
                    packet.data, packet.pn_offset, self._largest[side][INITIAL])
                if opened is not None:
                    self._restart(packet.dcid)
        if opened is None:
            self._count(side, _UNDECRYPTABLE)
            events.append(_seen(packet))
            why = "no client Initial seen" if self._initial_dcid is None else "tag mismatch"
            events.append(ParseAnomaly(anomaly=Anomaly.QUIC_UNDECRYPTABLE,
                                       detail=f"Initial packet: {why}"))
            return zeek and not zeek_reads  # Zeek throws on a failed decryption
        if zeek_reads:
            self._history.decrypted += 1
        self._largest[side][INITIAL] = max(self._largest[side][INITIAL], opened.packet_number)
        events.append(_seen(packet, opened.packet_number))
        return self._frames(side, INITIAL, PacketType.initial, opened.payload, zeek, zeek_reads,
                            events)

    def _handshake(self, side: int, packet: LongPacket, events: list[QuicEvent],
                   replay: bool = False) -> None:
        keys = self._hs_keys[side]
        if keys is None:
            events.append(_seen(packet))
            if not self._await_secrets or (self._suite is not None and self._suite not in SUITES):
                return  # no key log, or a suite whose packets are only counted
            if len(self._pending[side]) < MAX_QUIC_PENDING_PACKETS:
                self._pending[side].append(packet)
            elif not replay:
                events.append(ParseAnomaly(anomaly=Anomaly.QUIC_CRYPTO_LIMIT,
                                           detail="Handshake packets held for a key log"))
            return
        opened = keys.unprotect(packet.data, packet.pn_offset, self._largest[side][HANDSHAKE])
        if opened is None:
            self._count(side, _UNDECRYPTABLE)
            if not replay:
                events.append(_seen(packet))
            events.append(ParseAnomaly(anomaly=Anomaly.QUIC_UNDECRYPTABLE,
                                       detail="Handshake packet with the installed secret"))
            return
        self._largest[side][HANDSHAKE] = max(self._largest[side][HANDSHAKE], opened.packet_number)
        if not replay:
            events.append(_seen(packet, opened.packet_number))
        if not self._decrypted[side]:
            self._decrypted[side] = True
            events.append(Decrypted(packet_type=PacketType.handshake))
        self._frames(side, HANDSHAKE, PacketType.handshake, opened.payload, False, False, events)

    def _frames(self, side: int, level: int, packet_type: PacketType, payload: bytes,
                zeek: bool, zeek_reads: bool, events: list[QuicEvent]) -> bool:
        """Act on the frames of a decrypted payload; return whether Zeek goes on."""
        from_client = side == CLIENT
        parsed = parse_frames(payload, handshake_level=True)
        events.extend(parsed.anomalies)
        if zeek_reads and parsed.anomalies:
            zeek = False
        for frame in parsed.frames:
            if isinstance(frame, Crypto):
                self._crypto(side, level, frame, zeek_reads, events)
            elif isinstance(frame, CloseFrame):
                if zeek_reads and not frame.application:
                    self._history.connection_close(from_client)
                self._on_close(side, packet_type, frame, events)
            zeek_knows = isinstance(frame, _ZEEK_FRAMES) or (
                isinstance(frame, CloseFrame) and not frame.application)
            if zeek_reads and not zeek_knows:
                zeek_reads = zeek = False
        return zeek

    def _crypto(self, side: int, level: int, frame: Crypto, zeek_reads: bool,
                events: list[QuicEvent]) -> None:
        state = self._levels[side][level]
        if state is None:
            state = self._levels[side][level] = _Level()
        data, anomalies = state.stream.add(frame.offset, frame.data)
        events.extend(anomalies)
        if not data:
            return
        for event in state.reassembler.add(data):
            if not isinstance(event, HandshakeMsg):
                events.append(event)
                continue
            if level == HANDSHAKE:
                event = replace(event, decrypted=True)  # opened with a key log's secret
            events.append(event)
            state.messages += 1
            if level == INITIAL and state.messages == 1 and zeek_reads:
                hello = HandshakeType.client_hello if side == CLIENT else HandshakeType.server_hello
                self._history.first_message(side == CLIENT, event.msg_type == hello)
            if isinstance(event.parsed, ServerHello) and side == SERVER and not event.parsed.is_hrr:
                self._suite = event.parsed.cipher_suite
                self._derive_handshake_keys(CLIENT)
                self._derive_handshake_keys(SERVER)

    def _on_close(self, side: int, packet_type: PacketType, frame: CloseFrame,
                  events: list[QuicEvent]) -> None:
        close = ConnectionClose(
            from_client=side == CLIENT, error_code=frame.error_code, frame_type=frame.frame_type,
            reason=frame.reason.decode("utf-8", "replace"), application=frame.application,
            packet_type=packet_type)
        if close in self._closes:
            return  # the same close repeated (RFC 9000 §10.2.1 lets a closing peer resend it)
        if not any(known.from_client == close.from_client for known in self._closes):
            self._closes.append(close)
        events.append(close)
        alert = close.tls_alert
        if alert is not None:
            # In an Initial anyone can read it; in a Handshake packet only a key log did.
            hidden = packet_type is PacketType.handshake
            events.append(Alert(level=AlertLevel.fatal, description=alert, encrypted=hidden,
                                length=0, decrypted=hidden))

    def _short(self, side: int, packet: ShortPacket, zeek: bool, events: list[QuicEvent]) -> None:
        self._count(side, _TYPE_INDEX[PacketType.one_rtt])
        if zeek:
            self._history.short_packet(side == CLIENT)
        if not self._short_seen[side]:
            self._short_seen[side] = True
            events.append(PacketSeen(type=PacketType.one_rtt, version=None, dcid=packet.dcid,
                                     scid=None, length=packet.length))

    def _on_retry(self, side: int, packet: RetryPacket, zeek: bool,
                  events: list[QuicEvent]) -> None:
        self._count(side, _TYPE_INDEX[PacketType.retry])
        if zeek:
            self._history.retry(side == CLIENT)
        events.append(PacketSeen(type=PacketType.retry, version=packet.version, dcid=packet.dcid,
                                 scid=packet.scid, length=len(packet.data)))
        valid = None
        if self._initial_dcid is not None:
            valid = retry_tag_valid(VERSIONS[packet.version], self._initial_dcid, packet.data)
        retry = Retry(scid=packet.scid, token_length=len(packet.token), tag_valid=valid)
        events.append(retry)
        if side == CLIENT or valid is False:
            detail = "Retry sent by the client" if side == CLIENT else "Retry integrity tag"
            events.append(ParseAnomaly(anomaly=Anomaly.QUIC_BAD_RETRY, detail=detail))
            return
        if self._server_answered or self._retry is not None:
            return  # RFC 9000 §17.2.5.2: a client accepts one Retry, before any other answer
        self._retry = retry
        self._restart(None)

    def _on_version_negotiation(self, side: int, packet: VersionNegotiationPacket, zeek: bool,
                                events: list[QuicEvent]) -> None:
        self._count(side, _TYPE_INDEX[PacketType.version_negotiation])
        if zeek:
            self._history.unhandled_version(side == CLIENT)
        versions = packet.versions[:MAX_QUIC_VERSIONS]
        length = 7 + len(packet.dcid) + len(packet.scid) + 4 * len(packet.versions)
        events.append(PacketSeen(type=PacketType.version_negotiation, version=0, dcid=packet.dcid,
                                 scid=packet.scid, length=length))
        events.append(VersionNegotiation(versions=versions))
        if side == SERVER and not self._server_answered:
            self._offered = versions
            self._restart(None)

    def _on_unknown_version(self, side: int, packet: UnknownVersionPacket, zeek: bool,
                            events: list[QuicEvent]) -> None:
        self._count(side, _UNKNOWN)
        if side == CLIENT or self._version[side] is None:
            self._version[side] = packet.version
        if zeek and packet.version not in ZEEK_VERSIONS:
            self._history.unhandled_version(side == CLIENT)
        events.append(UnknownVersion(version=packet.version))
        events.append(ParseAnomaly(anomaly=Anomaly.QUIC_UNKNOWN_VERSION,
                                   detail=f"version {version_name(packet.version)}"))

    # -- keys --------------------------------------------------------------------------

    def _restart(self, dcid: bytes | None) -> None:
        """The client starts its handshake over (after Retry or Version Negotiation):
        new Initial keys from ``dcid`` (or the client's next Initial), new CRYPTO streams."""
        self._initial_dcid = dcid
        self._levels[CLIENT][INITIAL] = self._levels[SERVER][INITIAL] = None
        self._largest[CLIENT][INITIAL] = self._largest[SERVER][INITIAL] = -1

    def _keys(self, version: int, dcid: bytes) -> tuple[PacketKeys, PacketKeys]:
        key = (version, dcid)
        found = self._initial_keys.get(key)
        if found is None:
            if len(self._initial_keys) >= 2:
                self._initial_keys.clear()
            found = self._initial_keys[key] = initial_keys(VERSIONS[version], dcid)
        return found

    def _derive_handshake_keys(self, side: int) -> None:
        secret = self._hs_secrets[side]
        suite = self._suite
        if secret is None or suite is None or suite not in SUITES:
            return
        version = self._version[SERVER] or self._version[CLIENT]
        info = VERSIONS.get(version) if version is not None else None
        prefix = info.label_prefix if info is not None else b"quic "
        self._hs_keys[side] = packet_keys(suite, secret, prefix)


def _seen(packet: LongPacket, packet_number: int | None = None) -> PacketSeen:
    return PacketSeen(type=packet.type, version=packet.version, dcid=packet.dcid, scid=packet.scid,
                      length=len(packet.data), packet_number=packet_number,
                      decrypted=packet_number is not None)

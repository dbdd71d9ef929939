"""One DTLS association, sans-IO: its UDP datagrams in, TLS events out.

What it does: :class:`DTLSAssociation` takes each datagram of one association (the
engine keys associations by UDP 4-tuple and says which side sent it) and returns, in wire
order, the events of :mod:`analyzer.tls.events` that TLS over TCP produces, so the same
handshake core reads both:

- epoch 0 records (RFC 6347 §4.1): handshake messages reassembled from fragments
  (:mod:`analyzer.dtls.handshake`) as :class:`HandshakeMsg` with the TLS layer's typed
  values, :class:`ChangeCipherSpec`, plaintext :class:`Alert`;
- records of epoch > 0, encrypted (RFC 6347 §4.1: the epoch says so, no guessing from the
  ChangeCipherSpec): the first handshake record of each epoch per side is its Finished
  (:class:`EncryptedHandshake`), alerts are encrypted :class:`Alert`, application data
  :class:`ApplicationData`;
- DTLS 1.3 unified-header records (RFC 9147 §4) and DTLS 1.2 connection-ID records
  (RFC 9146) as :class:`ApplicationData`, the way TLS 1.3 over TCP shows its encrypted
  records;
- retransmitted flights (RFC 6347 §4.2.4) folded: counted in the facts and reported once
  per datagram as :class:`~analyzer.dtls.events.Retransmission`, never emitted twice;
  duplicated datagrams (same epoch and sequence number, RFC 6347 §4.1.2.6) counted only;
- :class:`ParseAnomaly` for what does not parse, with the rest of the datagram skipped.

Datagrams of other protocols on the 5-tuple (STUN, RTP/RTCP, ... RFC 7983) are counted.
:meth:`DTLSAssociation.facts` returns the numbers the record needs (retransmissions,
largest datagram per side, the cookie exchange, DTLS 1.3 and legacy records).

What it does not do: the state machine, history letters, stages and diagnosis (the
handshake core), associations, idle expiry and ICMP (the engine), decryption.
A parser that has seen nothing holds three references: a flood of spoofed ClientHellos
costs one small object per source until its datagrams arrive.
"""

from __future__ import annotations

from analyzer.anomalies import Anomaly
from analyzer.dtls.demux import Channel, channel
from analyzer.dtls.events import (
    REPEATED_CCS,
    DTLSEvent,
    DTLSFacts,
    Retransmission,
    SideFacts,
)
from analyzer.dtls.handshake import Fate, FragmentAssembler
from analyzer.dtls.records import DTLS_LEGACY, DTLSRecord, UnifiedRecord, read_records
from analyzer.limits import DTLS_REPLAY_WINDOW
from analyzer.tls.enums import ContentType, ExtensionType
from analyzer.tls.events import (
    Alert,
    ApplicationData,
    ChangeCipherSpec,
    EncryptedHandshake,
    HandshakeMsg,
    Heartbeat,
    ParseAnomaly,
)
from analyzer.tls.messages import ClientHello, Extension, HelloVerifyRequest, ServerHello
from analyzer.tls.stream import ALERT_LENGTH, parse_alert

_CCS_KEY = (1 << 16, 0)
_FINISHED_KEY = (1 << 16, 1)
"""Where a ChangeCipherSpec and an encrypted Finished sit in a flight, after every
message_seq: the keys by which one resent flight is told from the next."""

_WINDOW_MASK = (1 << DTLS_REPLAY_WINDOW) - 1


class _Side:
    """What one side has sent (created at its first datagram)."""

    __slots__ = (
        "assembler",
        "ccs_epoch",
        "counts",
        "epoch",
        "finished_epoch",
        "first_ts",
        "largest",
        "last_ts",
        "repeated",
        "run",
        "windows",
    )

    def __init__(self, ts: float) -> None:
        self.counts = dict.fromkeys(_COUNTS, 0)
        self.largest = 0
        self.first_ts = self.last_ts = ts
        self.epoch = -1
        """Highest record epoch seen from this side (-1: none yet)."""
        self.windows: dict[int, tuple[int, int]] = {}
        """epoch -> (highest sequence number, bitmap of the ones below it), the current
        and the previous epoch only."""
        self.ccs_epoch = -1
        """Highest epoch in which a ChangeCipherSpec was emitted."""
        self.finished_epoch = 0
        """Highest epoch whose first encrypted handshake record (Finished) was emitted."""
        self.run: tuple[int, int] | None = None
        """Key of the last item of a retransmission under way, None after new data."""
        self.assembler: FragmentAssembler | None = None
        self.repeated: list[int] = []
        """What the datagram being read repeated whole (see :class:`Retransmission`)."""

    def seen(self, epoch: int, sequence: int) -> bool:
        """Mark a record number; True if it was marked already (a duplicate)."""
        top, bits = self.windows.get(epoch, (-1, 0))
        ahead = sequence - top
        if ahead > 0:
            # shifts stay below the window: a 48-bit jump must not build a 2^48-bit int
            bits = ((bits << ahead) | 1) & _WINDOW_MASK if ahead < DTLS_REPLAY_WINDOW else 1
            top = sequence
        else:
            if -ahead >= DTLS_REPLAY_WINDOW:
                return True  # too old to tell: treated as a duplicate, as RFC 6347 §4.1.2.6 does
            bit = 1 << -ahead
            if bits & bit:
                return True
            bits |= bit
        self.windows[epoch] = (top, bits)
        if len(self.windows) > 2:
            del self.windows[min(self.windows)]
        return False

    def resent(self, key: tuple[int, int], length: int) -> None:
        """Count one repeated item; a key not after the previous one starts a new flight."""
        if self.run is None or key <= self.run:
            self.counts["flights_resent"] += 1
        self.run = key
        self.counts["items_resent"] += 1
        self.counts["bytes_resent"] += length


_COUNTS = (
    "datagrams",
    "bytes",
    "records",
    "flights_resent",
    "items_resent",
    "bytes_resent",
    "duplicates",
    "dtls13_records",
    "legacy_records",
    "cid_records",
    "non_dtls",
)


class _Hellos:
    """Facts the hellos give (created at the first that gives one)."""

    __slots__ = ("channels", "client_cid", "cookie_echoed", "hello_verify_cookie", "server_cid")

    def __init__(self) -> None:
        self.hello_verify_cookie: int | None = None
        self.cookie_echoed = False
        self.channels: tuple[str, ...] = ()
        self.client_cid: int | None = None
        """Connection ID length in the client's records (RFC 9146: the server's choice)."""
        self.server_cid: int | None = None
        """Connection ID length in the server's records (the client's choice)."""


class DTLSAssociation:
    """The DTLS parser of one association (both directions)."""

    __slots__ = ("_client", "_hellos", "_server")

    def __init__(self) -> None:
        self._client: _Side | None = None
        self._server: _Side | None = None
        self._hellos: _Hellos | None = None

    def datagram(self, from_client: bool, data: bytes, ts: float) -> list[DTLSEvent]:
        """The events of one UDP payload sent by the client (``from_client``) or the
        server at packet time ``ts``, in wire order."""
        side = self._client if from_client else self._server
        if side is None:
            side = _Side(ts)
            if from_client:
                self._client = side
            else:
                self._server = side
        other = self._server if from_client else self._client
        if other is not None:
            other.run = None  # the peer spoke: its next repeat is a new flight
        counts = side.counts
        counts["datagrams"] += 1
        counts["bytes"] += len(data)
        side.largest = max(side.largest, len(data))
        side.last_ts = ts
        kind = channel(data)
        if kind is not Channel.dtls:
            counts["non_dtls"] += 1
            hellos = self._facts_of_hellos()
            if kind.value not in hellos.channels:
                hellos.channels = (*hellos.channels, kind.value)
            return []
        known = self._hellos
        cid = None if known is None else known.client_cid if from_client else known.server_cid
        records, problem = read_records(data, cid)
        events: list[DTLSEvent] = []
        before = counts["items_resent"], counts["bytes_resent"]
        for record in records:
            counts["records"] += 1
            if isinstance(record, UnifiedRecord):
                counts["dtls13_records"] += 1
                events.append(ApplicationData(length=record.length))
            else:
                self._record(from_client, side, record, events)
        if problem is not None:
            events.append(problem)
        items, length = counts["items_resent"] - before[0], counts["bytes_resent"] - before[1]
        if items:
            events.append(Retransmission(items=items, length=length, repeated=tuple(side.repeated)))
            side.repeated.clear()
        return events

    def _record(
        self, from_client: bool, side: _Side, record: DTLSRecord, events: list[DTLSEvent]
    ) -> None:
        counts = side.counts
        if record.version == DTLS_LEGACY:
            counts["legacy_records"] += 1
        epoch = record.epoch
        if side.epoch >= 0 and epoch > side.epoch + 1:
            detail = f"epoch {epoch} after {side.epoch}"
            events.append(ParseAnomaly(anomaly=Anomaly.DTLS_EPOCH_JUMP, detail=detail))
            return
        side.epoch = max(side.epoch, epoch)
        if side.seen(epoch, record.sequence):
            counts["duplicates"] += 1
            return
        ctype, fragment = record.content_type, record.fragment
        if ctype == ContentType.tls12_cid:
            counts["cid_records"] += 1
            events.append(ApplicationData(length=len(fragment)))
        elif ctype == ContentType.handshake:
            if epoch:
                self._finished(side, epoch, len(fragment), events)
            else:
                self._handshake(from_client, side, fragment, events)
        elif ctype == ContentType.change_cipher_spec:
            if epoch <= side.ccs_epoch:
                side.resent(_CCS_KEY, len(fragment))
                side.repeated.append(REPEATED_CCS)
            else:
                side.ccs_epoch = epoch
                side.run = None
                events.append(ChangeCipherSpec())
        elif ctype == ContentType.alert:
            events.append(_alert(epoch, fragment))
        elif ctype == ContentType.application_data:
            events.append(ApplicationData(length=len(fragment)))
        elif ctype == ContentType.heartbeat:
            events.append(Heartbeat(length=len(fragment)))
        # a plaintext DTLS 1.3 ACK (RFC 9147 §7) is counted as a record only

    @staticmethod
    def _finished(side: _Side, epoch: int, length: int, events: list[DTLSEvent]) -> None:
        """The first encrypted handshake record of an epoch is the Finished; one that
        follows a repeated flight is that Finished again."""
        if epoch <= side.finished_epoch and side.run is not None:
            side.resent(_FINISHED_KEY, length)
            return
        side.finished_epoch = max(side.finished_epoch, epoch)
        side.run = None
        events.append(EncryptedHandshake(length=length))

    def _handshake(
        self, from_client: bool, side: _Side, fragment: bytes, events: list[DTLSEvent]
    ) -> None:
        if side.assembler is None:
            side.assembler = FragmentAssembler()
        results, problem = side.assembler.add_record(fragment)
        for placed in results:
            if placed.fate is Fate.RESENT:
                side.resent((placed.seq, placed.offset), placed.size)
                if placed.whole:
                    side.repeated.append(placed.msg_type)
            elif placed.fate is Fate.NEW:
                side.run = None
            for event in placed.events:
                if isinstance(event, HandshakeMsg):
                    self._learn(from_client, event)
                events.append(event)
        if problem is not None:
            events.append(problem)

    def _facts_of_hellos(self) -> _Hellos:
        if self._hellos is None:
            self._hellos = _Hellos()
        return self._hellos

    def _learn(self, from_client: bool, msg: HandshakeMsg) -> None:
        """Facts the hellos give: the cookie exchange, connection ID lengths."""
        parsed = msg.parsed
        if isinstance(parsed, HelloVerifyRequest) and not from_client:
            self._facts_of_hellos().hello_verify_cookie = len(parsed.cookie)
        elif isinstance(parsed, ClientHello) and from_client:
            cid = _cid_length(parsed.extensions)
            if parsed.cookie or cid is not None:
                hellos = self._facts_of_hellos()
                hellos.cookie_echoed |= bool(parsed.cookie)
                if cid is not None:  # the client asks to receive this CID: the server sends it
                    hellos.server_cid = cid
        elif isinstance(parsed, ServerHello) and not from_client:
            cid = _cid_length(parsed.extensions)
            if cid is not None:
                self._facts_of_hellos().client_cid = cid

    def facts(self) -> DTLSFacts:
        """The association's DTLS facts so far."""
        hellos = self._hellos or _Hellos()
        return DTLSFacts(
            client=_side_facts(self._client),
            server=_side_facts(self._server),
            hello_verify_cookie=hellos.hello_verify_cookie,
            cookie_echoed=hellos.cookie_echoed,
            channels=hellos.channels,
        )

    @property
    def client_epoch(self) -> int:
        """Highest epoch the client used (-1 before any record): a ClientHello of epoch 0
        after the client reached epoch 1 starts a new association on the same 4-tuple."""
        return self._client.epoch if self._client is not None else -1


def _alert(epoch: int, fragment: bytes) -> Alert | ParseAnomaly:
    """Alerts of epoch > 0 are encrypted; plaintext ones are two bytes (RFC 6347 §4.1)."""
    if epoch:
        return Alert(level=None, description=None, encrypted=True, length=len(fragment))
    if len(fragment) == ALERT_LENGTH:
        return parse_alert(fragment)
    detail = f"plaintext alert record of {len(fragment)} bytes"
    return ParseAnomaly(anomaly=Anomaly.BAD_ALERT, detail=detail)


def _cid_length(extensions: tuple[Extension, ...]) -> int | None:
    """RFC 9146 §3: ``opaque cid<0..2^8-1>`` in the connection_id extension."""
    for ext in extensions:
        if ext.type == ExtensionType.connection_id and ext.data:
            return ext.data[0] if len(ext.data) == 1 + ext.data[0] else None
    return None


def _side_facts(side: _Side | None) -> SideFacts:
    if side is None:
        return SideFacts()
    return SideFacts(
        largest_datagram=side.largest,
        incomplete_messages=side.assembler.incomplete if side.assembler is not None else 0,
        first_ts=side.first_ts,
        last_ts=side.last_ts,
        **side.counts,
    )

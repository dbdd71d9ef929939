"""One direction of a TLS connection: reassembled TCP bytes in, TLS events out (sans-IO).

What it does: :class:`TLSStream` joins the record layer (:mod:`analyzer.tls.records`) and
the handshake layer (:mod:`analyzer.tls.handshake`) and turns the other content types
into events: ChangeCipherSpec (RFC 5246 §7.1), Alert (RFC 8446 §6), application_data
lengths, Heartbeat (RFC 6520). Events come in wire order, and the same bytes give the
same events however they are split across calls.

Rules:
- The first bytes must start a TLS record (or, from the client, an SSLv2-compatible
  ClientHello); otherwise one :class:`NotTLS` and the stream is ``dead``.
- Once the stream's framing is lost (unknown content type, bad record version, absurd
  record length, handshake message over the limit) it reports why and is ``dead``.
- ``encrypted`` is set by the caller (the engine) after this direction's
  ChangeCipherSpec in TLS ≤ 1.2; from then on handshake records are only counted
  (:class:`EncryptedHandshake`). In TLS 1.3 the caller leaves it unset: encrypted
  records travel as application_data.
- An alert record of two bytes is a plaintext alert; any other length is an encrypted
  one (level and description unknown).
- With a key log (:meth:`TLSStream.expect_keys`), the encrypted records that can still
  change the verdict are opened (:mod:`analyzer.tls.decrypt`): in TLS 1.3 the handshake
  epoch (EncryptedExtensions, Certificate, CertificateVerify, Finished) and the small
  records after it (tickets, KeyUpdate, alerts); in TLS ≤ 1.2 the Finished and alerts
  after this direction's ChangeCipherSpec. The record's own event comes first, then what
  it carried (``decrypted`` set). Bulk application data is never opened; a record that
  does not authenticate is ``decrypt_failed`` and ends decryption of the direction.

What it does not do: find keys (the caller gives a source), judge the order of messages
(the handshake core does), or touch the other direction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Final

from analyzer.anomalies import Anomaly
from analyzer.tls.enums import AlertLevel, ContentType, HandshakeType
from analyzer.tls.events import (
    Alert,
    ApplicationData,
    ChangeCipherSpec,
    EncryptedHandshake,
    HandshakeMsg,
    Heartbeat,
    ParseAnomaly,
    TLSEvent,
)
from analyzer.tls.handshake import HandshakeReassembler
from analyzer.tls.hello import parse_sslv2_client_hello
from analyzer.tls.records import Record, RecordReader, SSLv2Record

if TYPE_CHECKING:
    from analyzer.tls.decrypt import Decryptor, DirectionKeys

KeySource = Callable[[], "DirectionKeys | None"]
"""Called once, at this direction's first encrypted record: its keys, or None."""

ALERT_LENGTH: Final = 2
"""A plaintext alert: AlertLevel (1) + AlertDescription (1)."""

# Content types as plain ints: compared natively in the compiled build (an enum member is
# looked up and compared as an object on every record).
_HANDSHAKE: Final[int] = ContentType.handshake.value
_CHANGE_CIPHER_SPEC: Final[int] = ContentType.change_cipher_spec.value
_ALERT: Final[int] = ContentType.alert.value
_APPLICATION_DATA: Final[int] = ContentType.application_data.value


def parse_alert(fragment: bytes) -> Alert | ParseAnomaly:
    """The alert an alert record carries (RFC 8446 §6).

    Two bytes: a plaintext alert, whose level must be warning or fatal. Any other
    non-zero length: an encrypted alert. An empty record is ``bad_alert``.
    """
    length = len(fragment)
    if length == ALERT_LENGTH:
        level, description = fragment[0], fragment[1]
        if level not in (AlertLevel.warning, AlertLevel.fatal):
            return ParseAnomaly(anomaly=Anomaly.BAD_ALERT, detail=f"alert level {level}")
        return Alert(level=level, description=description, encrypted=False, length=length)
    if length == 0:
        return ParseAnomaly(anomaly=Anomaly.BAD_ALERT, detail="empty alert record")
    return Alert(level=None, description=None, encrypted=True, length=length)


class TLSStream:
    """The TLS parser of one direction of one connection."""

    __slots__ = (
        "_decryptor",
        "_handshake",
        "_inner",
        "_key_source",
        "_keys",
        "_records",
        "_tls13",
        "decrypted",
        "encrypted",
        "is_client",
    )

    def __init__(self, is_client: bool) -> None:
        self.is_client = is_client
        self.encrypted = False
        """Set by the caller after this direction's TLS ≤ 1.2 ChangeCipherSpec."""
        self._records = RecordReader(is_client=is_client)
        self._handshake = HandshakeReassembler()
        self._key_source: KeySource | None = None
        self._keys: DirectionKeys | None = None
        self._decryptor: Decryptor | None = None
        self._inner: HandshakeReassembler | None = None
        """The handshake messages of the decrypted records."""
        self._tls13 = False
        self.decrypted = False
        """At least one record of this direction was opened with a key log."""

    def expect_keys(self, source: KeySource, *, tls13: bool) -> None:
        """The hellos are done: the keys of this direction will come from ``source``,
        asked once, at the first encrypted record (a live key log may be written just
        after the ServerHello is captured)."""
        self._key_source = source
        self._tls13 = tls13

    @property
    def dead(self) -> bool:
        """Parsing stopped for good (not TLS, lost framing, or a limit hit)."""
        return self._records.dead

    @property
    def buffered(self) -> int:
        """Bytes held between calls: at most one partial record and one partial handshake
        message (bounded by MAX_TLS_RECORD and MAX_HANDSHAKE_MESSAGE)."""
        return self._records.buffered + self._handshake.buffered

    def feed(self, data: bytes) -> Iterator[TLSEvent]:
        """Buffer ``data`` and yield the events it completes, in wire order.

        Events are produced as the iterator advances, so setting ``encrypted`` while
        handling a ChangeCipherSpec applies to the very next record, even one that came
        in the same call. Records the iterator did not reach stay buffered and are
        parsed by the next call; consume each iterator before feeding again.
        """
        self._records.feed(data)
        return self._events()

    def _events(self) -> Iterator[TLSEvent]:
        while not self.dead:
            item = self._records.next()
            if item is None:
                return
            if isinstance(item, Record):
                yield from self._record(item)
                if self._handshake.dead:
                    self._records.close()
            elif isinstance(item, SSLv2Record):
                yield from self._sslv2(item)
            else:  # NotTLS or the anomaly that stopped the record layer
                yield item

    def _record(self, record: Record) -> Iterator[TLSEvent]:
        ctype, fragment = record.content_type, record.fragment
        if ctype == _HANDSHAKE:
            if not self.encrypted:
                yield from self._handshake.add(fragment)
                return
            self._handshake.discard()  # a message cut by the ChangeCipherSpec never completes
            yield EncryptedHandshake(length=len(fragment))
            if self._can_open():
                yield from self._open(record)
            return
        if self._handshake.buffered:
            detail = f"content type {ctype} inside a handshake message"
            yield ParseAnomaly(anomaly=Anomaly.INTERLEAVED_RECORD, detail=detail)
        if ctype == _CHANGE_CIPHER_SPEC:
            yield ChangeCipherSpec()
        elif ctype == _ALERT:
            if self.encrypted and self._can_open():
                yield from self._open_alert(record)
            else:
                yield parse_alert(fragment)
        elif ctype == _APPLICATION_DATA:
            if self._tls13 and self._can_open():
                opened = list(self._open(record))
                failed = bool(opened) and isinstance(opened[0], ParseAnomaly) and (
                    opened[0].anomaly is Anomaly.DECRYPT_FAILED)
                yield ApplicationData(length=len(fragment), decrypted=bool(opened) and not failed)
                yield from opened
            else:
                yield ApplicationData(length=len(fragment))
        else:  # the record layer lets through content types 20..24 only
            yield Heartbeat(length=len(fragment))

    # ------------------------------------------------------------------ key log

    def _can_open(self) -> bool:
        """Whether this encrypted record goes through a decryptor (asking the key source
        at the first one)."""
        if self._key_source is not None:
            keys, self._key_source = self._key_source(), None
            if keys is not None:
                self._keys = keys
                self._decryptor = keys.handshake if self._tls13 else keys.application
                self._inner = HandshakeReassembler()
        return self._decryptor is not None

    def _open(self, record: Record) -> Iterator[TLSEvent]:
        """Decrypt one record and yield what it carried (nothing for a record not worth
        opening: bulk data, or an unknown inner type)."""
        from analyzer.tls.decrypt import Failed

        dec, inner = self._decryptor, self._inner
        assert dec is not None and inner is not None
        ctype, fragment = record.content_type, record.fragment
        if not dec.worth_opening(ctype, len(fragment)):
            dec.skip(fragment)
            return
        result = dec.decrypt(ctype, record.version, fragment)
        if isinstance(result, Failed):
            self._decryptor = None  # wrong secrets or damaged bytes: stop here
            yield ParseAnomaly(anomaly=Anomaly.DECRYPT_FAILED, detail=result.reason.value)
            return
        self.decrypted = True
        if result.content_type == ContentType.handshake:
            for event in inner.add(result.data):
                if isinstance(event, HandshakeMsg):
                    self._after_message(event.msg_type)
                    yield replace(event, decrypted=True)
                else:
                    yield event
        elif result.content_type == ContentType.alert:
            alert = parse_alert(result.data)
            if isinstance(alert, Alert):
                yield replace(alert, encrypted=True, length=len(fragment), decrypted=True)
            else:
                yield alert

    def _open_alert(self, record: Record) -> Iterator[TLSEvent]:
        """A TLS ≤ 1.2 alert after ChangeCipherSpec: decrypted, or as an encrypted one."""
        opened = list(self._open(record))
        if not any(isinstance(event, Alert) for event in opened):
            opened.append(parse_alert(record.fragment))
        yield from opened

    def _after_message(self, msg_type: int) -> None:
        """TLS 1.3 epochs: after this side's Finished its application keys apply; after a
        KeyUpdate, the next ones (RFC 8446 §4.6.3, §7.2)."""
        if not self._tls13 or self._keys is None:
            return
        if msg_type == HandshakeType.finished and self._decryptor is self._keys.handshake:
            self._decryptor = self._keys.application
        elif msg_type == HandshakeType.key_update and self._decryptor is not None:
            self._decryptor.key_update()  # type: ignore[attr-defined]

    def _sslv2(self, record: SSLv2Record) -> Iterator[TLSEvent]:
        hello = parse_sslv2_client_hello(record.data)
        length = len(record.data) - 3  # after the 2-byte header and msg_type
        if isinstance(hello, ParseAnomaly):
            yield hello
            yield HandshakeMsg(msg_type=HandshakeType.client_hello, length=length)
        else:
            yield HandshakeMsg(msg_type=HandshakeType.client_hello, length=length, parsed=hello)

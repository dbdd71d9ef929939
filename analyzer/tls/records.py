"""The TLS record layer of one direction: a byte stream in, whole records out.

What it does: :class:`RecordReader` buffers the reassembled bytes of one direction and
splits them into :class:`Record` values (RFC 8446 §5.1 TLSPlaintext / RFC 5246 §6.2.1),
answering "need more" (``None``) until a whole record is buffered. At the very start of
a client's stream it also accepts an SSLv2-compatible ClientHello (RFC 5246 E.2: a
2-byte header with the high bit set, then msg_type 1), returned as :class:`SSLv2Record`.

It stops for good (``dead``) when the stream cannot be TLS or has lost its framing:
- the first bytes are not a record header (content type 20..24, major version 3) nor,
  for the client, an SSLv2 hello: :class:`NotTLS` with the first bytes as evidence;
- later, an unknown content type or a major version other than 3: the stream is
  desynchronised (``unknown_content_type`` / ``bad_record_version``);
- a length beyond :data:`analyzer.limits.MAX_TLS_RECORD` (``record_too_long``).

What it does not do: look inside fragments (see :mod:`analyzer.tls.stream`), decrypt,
or handle DTLS. At most one partial record stays buffered between calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from analyzer.anomalies import Anomaly
from analyzer.limits import MAX_TLS_RECORD
from analyzer.tls.enums import TLS_CONTENT_TYPES, HandshakeType
from analyzer.tls.events import NotTLS, ParseAnomaly

RECORD_HEADER: Final = 5
"""ContentType (1) + ProtocolVersion (2) + uint16 length."""

SSLV2_HELLO_FIXED: Final = 9
"""RFC 5246 E.2: msg_type, version and three uint16 lengths precede the variable parts."""

NOT_TLS_PREFIX: Final = 64
"""Bytes kept as evidence when a stream turns out not to be TLS (enough for an HTTP
status line or an SMTP greeting)."""

_CONTENT_TYPES: Final[frozenset[int]] = TLS_CONTENT_TYPES
_MAX_TLS_RECORD: Final[int] = MAX_TLS_RECORD
"""Module constants of this compiled module: read from C statics, not looked up by name."""


@dataclass(slots=True, kw_only=True)  # not frozen: a frozen one is built by object.__setattr__
class Record:
    """One TLSPlaintext/TLSCiphertext record (RFC 8446 §5.1)."""

    content_type: int
    version: int
    """``legacy_record_version``."""
    fragment: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class SSLv2Record:
    """An SSLv2-compatible ClientHello record (RFC 5246 E.2), header included."""

    data: bytes


RecordItem = Record | SSLv2Record | NotTLS | ParseAnomaly
"""What :meth:`RecordReader.next` returns besides "need more" (``None``)."""


class RecordReader:
    """Splits one direction's bytes into records. Feed bytes, then call :meth:`next`
    until it returns ``None`` (need more)."""

    __slots__ = ("_buf", "_is_client", "_pos", "_started", "dead")

    def __init__(self, *, is_client: bool) -> None:
        self._is_client = is_client
        self._buf = bytearray()
        self._pos = 0
        """Start of the unread bytes in ``_buf`` (compacted on the next feed)."""
        self._started = False
        """The first record header has been accepted."""
        self.dead = False
        """Parsing stopped for good; further bytes are ignored."""

    @property
    def buffered(self) -> int:
        """Bytes held and not yet returned as a record."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        if self.dead:
            return
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next(self) -> RecordItem | None:
        """The next whole record, a reason to stop, or ``None`` when more bytes are needed."""
        item = self._next()
        if item is None and self._pos:
            # Waiting for bytes: keep only the partial record, not the records returned
            # (a connection that goes quiet would otherwise hold them until its end).
            self._buf = self._buf[self._pos :]
            self._pos = 0
        return item

    def _next(self) -> RecordItem | None:
        if self.dead:
            return None
        if not self._started:
            first = self._first()
            if first is not None or not self._started:
                return first
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if avail >= 1 and buf[pos] not in _CONTENT_TYPES:
            return self._stop(Anomaly.UNKNOWN_CONTENT_TYPE, f"content type {buf[pos]}")
        if avail >= 2 and buf[pos + 1] != 3:
            # Only the major byte is judged (it may be all that has arrived).
            return self._stop(Anomaly.BAD_RECORD_VERSION, f"record major version {buf[pos + 1]}")
        if avail < RECORD_HEADER:
            return None
        length = (buf[pos + 3] << 8) | buf[pos + 4]
        if length > _MAX_TLS_RECORD:
            return self._stop(Anomaly.RECORD_TOO_LONG, f"record length {length}")
        end = pos + RECORD_HEADER + length
        if len(buf) < end:
            return None
        self._pos = end
        return Record(
            content_type=buf[pos],
            version=(buf[pos + 1] << 8) | buf[pos + 2],
            fragment=bytes(buf[pos + RECORD_HEADER : end]),
        )

    def _first(self) -> SSLv2Record | NotTLS | None:
        """Judge the first bytes of the stream. Sets ``_started`` once they look like a
        TLS record header; returns an SSLv2 hello, NotTLS, or None (TLS, or need more)."""
        buf = self._buf
        if not buf:
            return None
        if self._is_client and buf[0] & 0x80:
            # SSLv2 header: length (15 bits), msg_type 1, version major 0 (SSLv2) or 3
            if len(buf) < 4:
                return None
            if buf[2] != HandshakeType.client_hello or buf[3] not in (0, 3):
                return self._not_tls()
            end = 2 + ((buf[0] & 0x7F) << 8 | buf[1])
            if end < 2 + SSLV2_HELLO_FIXED:
                return self._not_tls()
            if len(buf) < end:
                return None
            self._started = True
            self._pos = end
            return SSLv2Record(data=bytes(buf[:end]))
        if buf[0] not in TLS_CONTENT_TYPES or (len(buf) >= 2 and buf[1] != 3):
            return self._not_tls()
        self._started = len(buf) >= 2
        return None

    def close(self) -> None:
        """Stop for good and drop what is buffered (the caller lost the thread)."""
        self.dead = True
        self._buf = bytearray()
        self._pos = 0

    def _not_tls(self) -> NotTLS:
        prefix = bytes(self._buf[:NOT_TLS_PREFIX])
        self.close()
        return NotTLS(prefix=prefix)

    def _stop(self, anomaly: Anomaly, detail: str) -> ParseAnomaly:
        self.close()
        return ParseAnomaly(anomaly=anomaly, detail=detail)

"""QUIC frames of a decrypted packet payload (RFC 9000 §12.4, §19).

What it does: :func:`parse_frames` reads every frame of a payload in order. The frames a
handshake observer needs become values (PADDING runs, PING, ACK/ACK_ECN, CRYPTO,
CONNECTION_CLOSE of both kinds, NEW_TOKEN, HANDSHAKE_DONE); every other RFC 9000 and
RFC 9221 frame is stepped over by its known layout and kept as :class:`OtherFrame`. A
frame type not allowed at the packet's encryption level (RFC 9000 §12.4, Table 3: Initial
and Handshake packets carry only PADDING, PING, ACK, CRYPTO and CONNECTION_CLOSE 0x1c) is
reported as ``quic_bad_frame`` but still read.

What it does not do: reassemble CRYPTO data (:mod:`analyzer.quic.crypto_stream`) or
act on ACKs. An unknown frame type cannot be stepped over (frames carry no length), so
it ends the payload with ``quic_bad_frame``, as does a truncated frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from analyzer.anomalies import Anomaly
from analyzer.limits import MAX_QUIC_REASON
from analyzer.quic.varint import varint
from analyzer.tls.cursor import Cursor, Malformed
from analyzer.tls.events import ParseAnomaly


class FrameType(IntEnum):
    """RFC 9000 §19 and RFC 9221 §4 frame types (STREAM's 0x08-0x0f as its base)."""

    PADDING = 0x00
    PING = 0x01
    ACK = 0x02
    ACK_ECN = 0x03
    RESET_STREAM = 0x04
    STOP_SENDING = 0x05
    CRYPTO = 0x06
    NEW_TOKEN = 0x07
    STREAM = 0x08
    MAX_DATA = 0x10
    MAX_STREAM_DATA = 0x11
    MAX_STREAMS_BIDI = 0x12
    MAX_STREAMS_UNI = 0x13
    DATA_BLOCKED = 0x14
    STREAM_DATA_BLOCKED = 0x15
    STREAMS_BLOCKED_BIDI = 0x16
    STREAMS_BLOCKED_UNI = 0x17
    NEW_CONNECTION_ID = 0x18
    RETIRE_CONNECTION_ID = 0x19
    PATH_CHALLENGE = 0x1A
    PATH_RESPONSE = 0x1B
    CONNECTION_CLOSE = 0x1C
    APPLICATION_CLOSE = 0x1D
    """CONNECTION_CLOSE of type 0x1d: an application error code, no frame type."""
    HANDSHAKE_DONE = 0x1E
    DATAGRAM = 0x30
    DATAGRAM_LEN = 0x31


HANDSHAKE_LEVEL_FRAMES = frozenset(
    {FrameType.PADDING, FrameType.PING, FrameType.ACK, FrameType.ACK_ECN, FrameType.CRYPTO,
     FrameType.CONNECTION_CLOSE}
)
"""RFC 9000 §12.4 Table 3: the frames allowed in Initial and Handshake packets."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Padding:
    """A run of PADDING bytes (each is a one-byte frame)."""

    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping:
    """RFC 9000 §19.2."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    """RFC 9000 §19.3: only the largest acknowledged packet number is kept."""

    largest: int
    ecn: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Crypto:
    """RFC 9000 §19.6: TLS handshake bytes at an offset of this level's stream."""

    offset: int
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClose:
    """RFC 9000 §19.19. ``application`` for type 0x1d (no frame type there)."""

    error_code: int
    frame_type: int | None
    reason: bytes
    """At most ``MAX_QUIC_REASON`` bytes of the reason phrase, as sent."""
    application: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class NewToken:
    """RFC 9000 §19.7: a token for a future connection (its length only)."""

    length: int


@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeDone:
    """RFC 9000 §19.20: the server confirms the handshake."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OtherFrame:
    """Any other known frame, stepped over."""

    type: int


Frame = Padding | Ping | Ack | Crypto | ConnectionClose | NewToken | HandshakeDone | OtherFrame


def _ack(cur: Cursor, frame_type: int) -> Ack:
    largest = varint(cur)
    varint(cur)  # ACK Delay
    ranges = varint(cur)
    varint(cur)  # First ACK Range
    if ranges > cur.remaining // 2:  # each range is at least two bytes
        raise Malformed(f"ACK with {ranges} ranges in {cur.remaining} bytes")
    for _ in range(ranges):
        varint(cur)  # Gap
        varint(cur)  # ACK Range Length
    ecn = frame_type == FrameType.ACK_ECN
    if ecn:
        for _ in range(3):
            varint(cur)
    return Ack(largest=largest, ecn=ecn)


def _crypto(cur: Cursor, frame_type: int) -> Crypto:
    offset = varint(cur)
    data = cur.bytes(varint(cur))
    if offset + len(data) >= 1 << 62:
        raise Malformed(f"CRYPTO data ends beyond 2^62 (offset {offset})")
    return Crypto(offset=offset, data=data)


def _close(cur: Cursor, frame_type: int) -> ConnectionClose:
    error_code = varint(cur)
    application = frame_type == FrameType.APPLICATION_CLOSE
    offending = None if application else varint(cur)
    reason = cur.bytes(varint(cur))
    return ConnectionClose(error_code=error_code, frame_type=offending,
                           reason=reason[:MAX_QUIC_REASON], application=application)


def _new_token(cur: Cursor, frame_type: int) -> NewToken:
    token = cur.bytes(varint(cur))
    if not token:
        raise Malformed("empty NEW_TOKEN")
    return NewToken(length=len(token))


def _stream(cur: Cursor, frame_type: int) -> OtherFrame:
    varint(cur)  # Stream ID
    if frame_type & 0x04:
        varint(cur)  # Offset
    if frame_type & 0x02:
        cur.bytes(varint(cur))
    else:
        cur.rest()
    return OtherFrame(type=frame_type)


def _new_connection_id(cur: Cursor, frame_type: int) -> OtherFrame:
    varint(cur)  # Sequence Number
    varint(cur)  # Retire Prior To
    cid_length = cur.u8()
    if not 1 <= cid_length <= 20:
        raise Malformed(f"NEW_CONNECTION_ID with a {cid_length}-byte CID")
    cur.bytes(cid_length + 16)  # Connection ID, Stateless Reset Token
    return OtherFrame(type=frame_type)


def _datagram(cur: Cursor, frame_type: int) -> OtherFrame:
    if frame_type == FrameType.DATAGRAM_LEN:
        cur.bytes(varint(cur))
    else:
        cur.rest()
    return OtherFrame(type=frame_type)


def _varints(count: int) -> Callable[[Cursor, int], OtherFrame]:
    def read(cur: Cursor, frame_type: int) -> OtherFrame:
        for _ in range(count):
            varint(cur)
        return OtherFrame(type=frame_type)

    return read


def _fixed(length: int) -> Callable[[Cursor, int], OtherFrame]:
    def read(cur: Cursor, frame_type: int) -> OtherFrame:
        cur.bytes(length)
        return OtherFrame(type=frame_type)

    return read


def _ping(cur: Cursor, frame_type: int) -> Ping:
    return Ping()


def _handshake_done(cur: Cursor, frame_type: int) -> HandshakeDone:
    return HandshakeDone()


_READERS: dict[int, Callable[[Cursor, int], Frame]] = {
    FrameType.PING: _ping,
    FrameType.ACK: _ack,
    FrameType.ACK_ECN: _ack,
    FrameType.RESET_STREAM: _varints(3),
    FrameType.STOP_SENDING: _varints(2),
    FrameType.CRYPTO: _crypto,
    FrameType.NEW_TOKEN: _new_token,
    **{t: _stream for t in range(0x08, 0x10)},
    FrameType.MAX_DATA: _varints(1),
    FrameType.MAX_STREAM_DATA: _varints(2),
    FrameType.MAX_STREAMS_BIDI: _varints(1),
    FrameType.MAX_STREAMS_UNI: _varints(1),
    FrameType.DATA_BLOCKED: _varints(1),
    FrameType.STREAM_DATA_BLOCKED: _varints(2),
    FrameType.STREAMS_BLOCKED_BIDI: _varints(1),
    FrameType.STREAMS_BLOCKED_UNI: _varints(1),
    FrameType.NEW_CONNECTION_ID: _new_connection_id,
    FrameType.RETIRE_CONNECTION_ID: _varints(1),
    FrameType.PATH_CHALLENGE: _fixed(8),
    FrameType.PATH_RESPONSE: _fixed(8),
    FrameType.CONNECTION_CLOSE: _close,
    FrameType.APPLICATION_CLOSE: _close,
    FrameType.HANDSHAKE_DONE: _handshake_done,
    FrameType.DATAGRAM: _datagram,
    FrameType.DATAGRAM_LEN: _datagram,
}
"""How to read (or step over) each known frame type, after its type."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedFrames:
    """The frames of one payload, and what went wrong, if anything."""

    frames: tuple[Frame, ...]
    anomalies: tuple[ParseAnomaly, ...] = ()


def parse_frames(payload: bytes, handshake_level: bool) -> ParsedFrames:
    """Every frame of a decrypted payload, in order.

    ``handshake_level``: the payload is from an Initial or Handshake packet, where only
    :data:`HANDSHAKE_LEVEL_FRAMES` are allowed. A payload with no frame at all is a
    protocol violation (RFC 9000 §12.4) and is reported too.
    """
    cur = Cursor(payload, "QUIC frame")
    frames: list[Frame] = []
    anomalies: list[ParseAnomaly] = []
    while not cur.at_end:
        start = cur.remaining
        try:
            frame_type = varint(cur)
            if frame_type == FrameType.PADDING:
                rest = payload[len(payload) - cur.remaining :]
                run = len(rest) - len(rest.lstrip(b"\x00"))
                cur.bytes(run)
                frames.append(Padding(count=1 + run))
                continue
            read = _READERS.get(frame_type)
            if read is None:
                raise Malformed(f"unknown frame type 0x{frame_type:x}")
            frame = read(cur, frame_type)
        except Malformed as exc:
            at = len(payload) - start
            anomalies.append(_bad(f"{exc} at payload offset {at}"))
            break
        if handshake_level and frame_type not in HANDSHAKE_LEVEL_FRAMES:
            anomalies.append(_bad(f"frame type 0x{frame_type:x} in an Initial or Handshake packet"))
        frames.append(frame)
    if not payload:
        anomalies.append(_bad("packet without frames"))
    return ParsedFrames(frames=tuple(frames), anomalies=tuple(anomalies))


def _bad(detail: str) -> ParseAnomaly:
    return ParseAnomaly(anomaly=Anomaly.QUIC_BAD_FRAME, detail=detail)

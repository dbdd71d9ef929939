"""The handshake layer: messages reassembled from record fragments, and their bodies.

What it does: :class:`HandshakeReassembler` joins the fragments of plaintext handshake
records into whole messages (RFC 8446 §4 ``Handshake``: msg_type, uint24 length, body):
one message may span records, one record may carry several messages. Each whole message
becomes a :class:`HandshakeMsg`, with the typed value for the bodies we read
(:func:`parse_handshake_body`): hellos (:mod:`analyzer.tls.hello`), Certificate and
ServerKeyExchange (here).

What it does not do: decide whether a record is encrypted (the caller does), check the
order of messages (the engine's state machine), or parse X.509 (certificates stay DER,
see :mod:`analyzer.tls.certificate`).

RFCs: 8446 §4 (Handshake), §4.4.2 (Certificate, TLS 1.3 form); 5246 §7.4.2 (Certificate),
§7.4.3 (ServerKeyExchange); 8422 §5.4 (ServerECDHParams).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from analyzer.anomalies import Anomaly
from analyzer.limits import MAX_CHAIN_CERTS, MAX_HANDSHAKE_MESSAGE
from analyzer.tls.cursor import Cursor, Malformed, total
from analyzer.tls.enums import ECCurveType, HandshakeType
from analyzer.tls.events import HandshakeMsg, ParseAnomaly
from analyzer.tls.hello import (
    parse_client_hello,
    parse_encrypted_extensions,
    parse_hello_retry_request,
    parse_server_hello,
)
from analyzer.tls.messages import CertificateChain, ParsedMessage, ServerKeyExchange

HANDSHAKE_HEADER: Final = 4
"""HandshakeType (1) + uint24 length."""


def _certificate_list_tls12(cur: Cursor) -> list[bytes]:
    """RFC 5246 §7.4.2: ``ASN.1Cert certificate_list<0..2^24-1>``, each ``<1..2^24-1>``."""
    certificates: list[bytes] = []
    with cur.vector(3) as entries:
        while not entries.at_end:
            certificates.append(_cert_data(entries))
    return certificates


def _certificate_tls13(cur: Cursor) -> list[bytes]:
    """RFC 8446 §4.4.2: request context, then ``CertificateEntry certificate_list<..>``
    whose entries carry their own extensions (skipped)."""
    cur.opaque(1)
    certificates: list[bytes] = []
    with cur.vector(3) as entries:
        while not entries.at_end:
            certificates.append(_cert_data(entries))
            entries.opaque(2)
    return certificates


def _cert_data(cur: Cursor) -> bytes:
    data = cur.opaque(3)
    if not data:
        raise Malformed("empty certificate")
    return data


def parse_certificate(body: bytes) -> CertificateChain | ParseAnomaly:
    """A Certificate message: the DER certificates, sender's first, at most
    :data:`MAX_CHAIN_CERTS` kept (``chain_too_long`` if more were sent).

    Both forms are read: TLS ≤ 1.2 (a uint24 list of uint24 certificates) and TLS 1.3
    (request context and per-entry extensions, seen in clear only in draft captures).
    The TLS ≤ 1.2 form is recognised by its list length filling the body exactly.
    """
    tls12 = len(body) >= 3 and int.from_bytes(body[:3]) == len(body) - 3
    read = _certificate_list_tls12 if tls12 else _certificate_tls13
    certificates = total(read, body, "Certificate")
    if isinstance(certificates, ParseAnomaly):
        return certificates
    too_many = len(certificates) > MAX_CHAIN_CERTS
    return CertificateChain(
        certificates=tuple(certificates[:MAX_CHAIN_CERTS]),
        anomalies=(Anomaly.CHAIN_TOO_LONG,) if too_many else (),
    )


def parse_server_key_exchange(body: bytes) -> ServerKeyExchange:
    """RFC 8422 §5.4: the named curve of an ECDHE ServerKeyExchange, else None.

    The message does not say its key exchange; the body is taken as ServerECDHParams
    when it starts with curve_type named_curve (3), a curve, and an EC point that fits
    in the body. DHE, PSK and explicit-curve bodies give ``named_curve=None``.
    """
    if len(body) >= 4 and body[0] == ECCurveType.named_curve and 0 < body[3] <= len(body) - 4:
        return ServerKeyExchange(named_curve=int.from_bytes(body[1:3]))
    return ServerKeyExchange(named_curve=None)


_BODY_PARSERS: Final[dict[int, Callable[[bytes], ParsedMessage | ParseAnomaly]]] = {
    HandshakeType.client_hello: parse_client_hello,
    HandshakeType.server_hello: parse_server_hello,
    HandshakeType.hello_retry_request: parse_hello_retry_request,
    HandshakeType.certificate: parse_certificate,
    HandshakeType.server_key_exchange: parse_server_key_exchange,
    HandshakeType.encrypted_extensions: parse_encrypted_extensions,
}
"""The message bodies that become typed values; others are kept as type and length."""


def parse_handshake_body(msg_type: int, body: bytes) -> ParsedMessage | ParseAnomaly | None:
    """The typed value of a message body, an anomaly, or None for types we do not read."""
    parse = _BODY_PARSERS.get(msg_type)
    return parse(body) if parse is not None else None


def handshake_events(msg_type: int, body: bytes, records: int) -> list[HandshakeMsg | ParseAnomaly]:
    """Events for one whole message: its anomalies first, then the message."""
    parsed = parse_handshake_body(msg_type, body)
    if isinstance(parsed, ParseAnomaly):
        detail = f"{_type_name(msg_type)}: {parsed.detail}"
        problem = ParseAnomaly(anomaly=parsed.anomaly, detail=detail)
        return [problem, HandshakeMsg(msg_type=msg_type, length=len(body), records=records)]
    stepped_over = (
        () if parsed is None or isinstance(parsed, ServerKeyExchange) else parsed.anomalies
    )
    events: list[HandshakeMsg | ParseAnomaly] = []
    if stepped_over:
        what = _type_name(msg_type)
        events = [ParseAnomaly(anomaly=anomaly, detail=what) for anomaly in stepped_over]
    events.append(HandshakeMsg(msg_type=msg_type, length=len(body), parsed=parsed, records=records))
    return events


_TYPE_NAMES: Final = {t.value: t.name for t in HandshakeType}


def _type_name(msg_type: int) -> str:
    name = _TYPE_NAMES.get(msg_type)
    return name if name is not None else f"handshake type {msg_type}"


class HandshakeReassembler:
    """Joins plaintext handshake fragments of one direction into whole messages.

    Holds at most one partial message (bounded by :data:`MAX_HANDSHAKE_MESSAGE` plus one
    record). A message announcing more than that is reported (``handshake_too_long``)
    and the reassembler stops for good (``dead``).
    """

    __slots__ = ("_buf", "_span", "dead")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._span = 0
        """Records that contributed bytes to the buffered partial message."""
        self.dead = False

    @property
    def buffered(self) -> int:
        """Bytes of a partial message held."""
        return len(self._buf)

    def discard(self) -> None:
        """Forget a partial message that can no longer complete."""
        self._buf.clear()
        self._span = 0

    def add(self, fragment: bytes) -> list[HandshakeMsg | ParseAnomaly]:
        """Add one record's fragment; return the events of the messages it completes."""
        if self.dead:
            return []
        buf = self._buf
        self._span = self._span + 1 if buf else 1
        buf += fragment
        events: list[HandshakeMsg | ParseAnomaly] = []
        pos = 0
        while len(buf) - pos >= HANDSHAKE_HEADER:
            msg_type = buf[pos]
            length = int.from_bytes(buf[pos + 1 : pos + HANDSHAKE_HEADER])
            if length > MAX_HANDSHAKE_MESSAGE:
                self.dead = True
                self._buf = bytearray()
                detail = f"{_type_name(msg_type)} of {length} bytes"
                events.append(ParseAnomaly(anomaly=Anomaly.HANDSHAKE_TOO_LONG, detail=detail))
                return events
            end = pos + HANDSHAKE_HEADER + length
            if len(buf) < end:
                break
            body = bytes(buf[pos + HANDSHAKE_HEADER : end])
            events.extend(handshake_events(msg_type, body, self._span))
            pos = end
            self._span = 1  # what is left came with this fragment
        del buf[:pos]
        if not buf:
            self._span = 0
        return events

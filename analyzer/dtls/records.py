"""The DTLS record layer: one UDP datagram in, its records out (sans-IO).

What it does: :func:`read_records` splits a datagram into records, in wire order:

- DTLSPlaintext / DTLSCiphertext of DTLS 1.0 and 1.2 (RFC 6347 §4.1): content type,
  version, epoch, 48-bit sequence number, length, fragment — several per datagram;
- the DTLS 1.2 connection-ID record (RFC 9146 §4, content type ``tls12_cid``), whose CID
  length the caller knows from the hellos (unknown: the record runs to the datagram end);
- the DTLS 1.3 unified header (RFC 9147 §4): ``001CSLEE`` then an optional CID, an 8- or
  16-bit (encrypted) sequence number and an optional length; an opaque
  :class:`UnifiedRecord`;
- OpenConnect's and Cisco AnyConnect's legacy DTLS, record version 0x0100 (OpenSSL's
  ``DTLS1_BAD_VER``), framed like DTLS 1.0.

A header that does not parse stops the datagram: the records before it are returned with
one ``dtls_bad_record`` anomaly (RFC 6347 §4.1.2.7: invalid records are discarded; a
datagram is the unit of loss, so the next datagram is read afresh).

What it does not do: look inside fragments, judge epochs or sequence numbers (the
association does, :mod:`analyzer.dtls.parser`), or decrypt. Which datagrams are DTLS at
all is :mod:`analyzer.dtls.demux`'s question.
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.anomalies import Anomaly
from analyzer.limits import MAX_TLS_RECORD
from analyzer.tls.enums import ContentType
from analyzer.tls.events import ParseAnomaly

PLAINTEXT_HEADER = 13
"""ContentType (1) + ProtocolVersion (2) + epoch (2) + sequence_number (6) + length (2)."""

DTLS_1_0 = 0xFEFF
DTLS_1_2 = 0xFEFD
DTLS_1_3 = 0xFEFC
"""Only in supported_versions: DTLS 1.3 records say 0xfefd (RFC 9147 §5.3)."""
DTLS_LEGACY = 0x0100
"""Pre-RFC DTLS as OpenConnect/ocserv and AnyConnect negotiate it (``DTLS1_BAD_VER``)."""

RECORD_VERSIONS = frozenset({DTLS_1_0, DTLS_1_2, DTLS_LEGACY})
"""Versions a DTLS record header may carry (RFC 9147 §4 keeps 0xfefd for DTLS 1.3)."""

PLAINTEXT_TYPES = frozenset(range(ContentType.change_cipher_spec, ContentType.ack + 1))
"""RFC 9147 §4.1: a first byte of 20..26 is a DTLSPlaintext-style header (25 carries a
connection ID, RFC 9146)."""

UNIFIED_MASK = 0xE0
UNIFIED_BITS = 0x20
"""RFC 9147 §4: the unified header's first byte is ``001CSLEE``."""
_C, _S, _L = 0x10, 0x08, 0x04


@dataclass(frozen=True, slots=True, kw_only=True)
class DTLSRecord:
    """One record with the RFC 6347 header (or RFC 9146's, for ``tls12_cid``)."""

    content_type: int
    version: int
    epoch: int
    sequence: int
    """48-bit record sequence number (RFC 6347 §4.1)."""
    fragment: bytes
    """The record body; for ``tls12_cid`` whose CID length is unknown, everything after
    the sequence number."""
    wire_length: int
    """Header and body: the bytes this record took in the datagram."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UnifiedRecord:
    """A DTLS 1.3 ciphertext record (RFC 9147 §4): opaque without keys."""

    epoch_bits: int
    """The low two bits of the epoch (2 = handshake, 3 and up = application data)."""
    length: int
    """Bytes of the encrypted record body."""
    wire_length: int


RecordItem = DTLSRecord | UnifiedRecord


def read_records(
    data: bytes, cid_length: int | None = None
) -> tuple[list[RecordItem], ParseAnomaly | None]:
    """The records of one datagram, and the anomaly that stopped reading it, if any.

    ``cid_length`` is the length of the connection ID this sender puts in its records
    (learned from the hellos' ``connection_id`` extension), None when unknown.
    """
    records: list[RecordItem] = []
    pos, end = 0, len(data)
    while pos < end:
        first = data[pos]
        item: RecordItem | ParseAnomaly
        if first in PLAINTEXT_TYPES:
            item = _plaintext(data, pos, cid_length)
        elif first & UNIFIED_MASK == UNIFIED_BITS:
            item = _unified(data, pos, cid_length)
        else:
            item = _bad(f"byte {first:#04x} at offset {pos} starts no DTLS record")
        if isinstance(item, ParseAnomaly):
            return records, item
        records.append(item)
        pos += item.wire_length
    return records, None


def _bad(detail: str) -> ParseAnomaly:
    return ParseAnomaly(anomaly=Anomaly.DTLS_BAD_RECORD, detail=detail)


def _plaintext(data: bytes, pos: int, cid_length: int | None) -> DTLSRecord | ParseAnomaly:
    left = len(data) - pos
    if left < PLAINTEXT_HEADER:
        return _bad(f"{left} bytes at offset {pos}, a {PLAINTEXT_HEADER}-byte header wanted")
    ctype = data[pos]
    version = int.from_bytes(data[pos + 1 : pos + 3])
    if version not in RECORD_VERSIONS:
        return _bad(f"record version {version:#06x}")
    epoch = int.from_bytes(data[pos + 3 : pos + 5])
    sequence = int.from_bytes(data[pos + 5 : pos + 11])
    head = pos + 11
    if ctype == ContentType.tls12_cid:
        if cid_length is None:  # RFC 9146 §4: the CID length is not on the wire
            return DTLSRecord(
                content_type=ctype,
                version=version,
                epoch=epoch,
                sequence=sequence,
                fragment=data[head:],
                wire_length=left,
            )
        head += cid_length
    if len(data) < head + 2:
        return _bad(f"record header at offset {pos} cut by the datagram end")
    length = int.from_bytes(data[head : head + 2])
    body = head + 2
    if length > MAX_TLS_RECORD or body + length > len(data):
        return _bad(f"record length {length} at offset {pos}, {len(data) - body} bytes left")
    return DTLSRecord(
        content_type=ctype,
        version=version,
        epoch=epoch,
        sequence=sequence,
        fragment=data[body : body + length],
        wire_length=body + length - pos,
    )


def _unified(data: bytes, pos: int, cid_length: int | None) -> UnifiedRecord | ParseAnomaly:
    first = data[pos]
    if first & _C and cid_length is None:
        # the CID length was negotiated out of sight: the rest is one opaque record
        return UnifiedRecord(
            epoch_bits=first & 3, length=len(data) - pos - 1, wire_length=len(data) - pos
        )
    cid = cid_length if first & _C and cid_length else 0
    head = pos + 1 + cid + (2 if first & _S else 1)
    if first & _L:
        if len(data) < head + 2:
            return _bad(f"unified header at offset {pos} cut by the datagram end")
        length = int.from_bytes(data[head : head + 2])
        head += 2
        if length > MAX_TLS_RECORD or head + length > len(data):
            return _bad(f"unified record length {length} at offset {pos}, {len(data) - head} left")
    else:  # RFC 9147 §4: without a length the record fills the datagram
        length = len(data) - head
        if length < 0:
            return _bad(f"unified header at offset {pos} cut by the datagram end")
    return UnifiedRecord(epoch_bits=first & 3, length=length, wire_length=head + length - pos)

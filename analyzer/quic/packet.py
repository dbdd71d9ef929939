"""QUIC packet headers: one UDP datagram in, its packets out, nothing decrypted.

What it does:

- :func:`split_datagram` cuts a datagram into its coalesced packets (RFC 9000 §12.2):
  long-header Initial, 0-RTT and Handshake packets, each ending where its Length says
  (§17.2.2-17.2.4), then at most one short-header (1-RTT) packet, which runs to the end
  (§17.3). Retry (§17.2.5) and Version Negotiation (§17.2.1) packets are read whole.
  Long headers of unknown versions are read as far as the invariants go (RFC 8999 §5.1).
- :func:`peek_long_header` and :func:`short_header_dcid` are the cheap look-ups a UDP
  demultiplexer needs: version and connection IDs without keys.

What it does not do: remove header protection (:mod:`analyzer.quic.crypto`), so packet
numbers and the key-phase bits stay unknown here; decide which connection a datagram
belongs to. Parsing is total: a damaged packet ends the datagram with a ``ParseAnomaly``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from analyzer.anomalies import Anomaly
from analyzer.limits import MAX_QUIC_PACKETS_PER_DATAGRAM
from analyzer.quic.varint import varint
from analyzer.quic.versions import VERSION_NEGOTIATION, VERSIONS, PacketType
from analyzer.tls.cursor import Cursor, Malformed
from analyzer.tls.events import ParseAnomaly

MAX_CID_LENGTH: Final = 20
"""RFC 9000 §17.2: connection IDs of known versions are at most 20 bytes."""

FORM_BIT: Final = 0x80
FIXED_BIT: Final = 0x40


@dataclass(frozen=True, slots=True, kw_only=True)
class LongPacket:
    """An Initial, 0-RTT or Handshake packet, still protected."""

    type: PacketType
    version: int
    dcid: bytes
    scid: bytes
    token: bytes = b""
    """Initial only (RFC 9000 §17.2.2): an address-validation token, usually from a Retry
    or NEW_TOKEN."""
    pn_offset: int
    """Where the (protected) Packet Number field starts in ``data``."""
    data: bytes = field(repr=False)
    """The whole packet, header to the end of its Length."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPacket:
    """RFC 9000 §17.2.5: a server's request to repeat the Initial with a token."""

    version: int
    dcid: bytes
    scid: bytes
    """The connection ID the client must use as DCID from now on (and for Initial keys)."""
    token: bytes
    tag: bytes
    """The last 16 bytes: the integrity tag (RFC 9001 §5.8)."""
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionNegotiationPacket:
    """RFC 9000 §17.2.1: the versions a server offers instead of the client's."""

    dcid: bytes
    scid: bytes
    versions: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownVersionPacket:
    """A long header of a version this package cannot read beyond the invariants."""

    version: int
    dcid: bytes
    scid: bytes
    length: int
    """Bytes from this header to the end of the datagram."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ShortPacket:
    """RFC 9000 §17.3.1: a 1-RTT packet, running to the end of the datagram."""

    dcid: bytes
    length: int


Packet = LongPacket | RetryPacket | VersionNegotiationPacket | UnknownVersionPacket | ShortPacket


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitDatagram:
    """The packets of one datagram, in order, and what was left."""

    packets: tuple[tuple[int, Packet], ...]
    """``(first byte on the wire, packet)`` pairs. The first byte is still protected; only
    its two high bits (header form, fixed bit) are meaningful before decryption."""
    rest: bytes = b""
    """Bytes after the last packet that are not a packet (padding or damage)."""
    anomaly: ParseAnomaly | None = None
    """Why the rest could not be read, when it is not all zero padding."""


def split_datagram(data: bytes, short_dcid_length: int) -> SplitDatagram:
    """The coalesced packets of one UDP payload.

    ``short_dcid_length`` is the length of the connection ID a short header sent to this
    receiver carries (the CID the receiver chose; RFC 9000 §17.3.1 gives it no length
    field). Zero bytes after the last packet are padding (RFC 9000 §14.1 lets a sender pad
    a datagram); anything else unreadable gives ``quic_bad_packet``.
    """
    packets: list[tuple[int, Packet]] = []
    pos = 0
    while pos < len(data) and len(packets) < MAX_QUIC_PACKETS_PER_DATAGRAM:
        first = data[pos]
        if packets and first == 0:
            break  # padding after a packet
        if not first & FORM_BIT:
            if len(data) - pos < 1 + short_dcid_length:
                return _bad(packets, data[pos:], "short header shorter than its connection ID")
            dcid = data[pos + 1 : pos + 1 + short_dcid_length]
            packets.append((first, ShortPacket(dcid=dcid, length=len(data) - pos)))
            return SplitDatagram(packets=tuple(packets))
        try:
            packet, end = _long_packet(data, pos)
        except Malformed as exc:
            return _bad(packets, data[pos:], str(exc))
        packets.append((first, packet))
        pos = end
    rest = data[pos:]
    if rest.strip(b"\x00"):
        what = "packets" if len(packets) >= MAX_QUIC_PACKETS_PER_DATAGRAM else "bytes"
        return _bad(packets, rest, f"{len(rest)} {what} after the last packet not read")
    return SplitDatagram(packets=tuple(packets), rest=rest)


def _bad(packets: list[tuple[int, Packet]], rest: bytes, detail: str) -> SplitDatagram:
    anomaly = ParseAnomaly(anomaly=Anomaly.QUIC_BAD_PACKET, detail=detail)
    return SplitDatagram(packets=tuple(packets), rest=rest, anomaly=anomaly)


def _cid(cur: Cursor, known: bool) -> bytes:
    cid = cur.opaque(1)
    if known and len(cid) > MAX_CID_LENGTH:
        raise Malformed(f"connection ID of {len(cid)} bytes")
    return cid


def _long_packet(data: bytes, start: int) -> tuple[Packet, int]:
    """One long-header packet at ``start``: the packet and where the next one starts."""
    cur = Cursor(memoryview(data)[start:], "QUIC long header")
    first = cur.u8()
    version = cur.u32()
    info = VERSIONS.get(version)
    known = info is not None or version == VERSION_NEGOTIATION
    dcid = _cid(cur, known)
    scid = _cid(cur, known)
    if version == VERSION_NEGOTIATION:
        if cur.remaining % 4 or not cur.remaining:
            raise Malformed(f"Version Negotiation with {cur.remaining} bytes of versions")
        versions = tuple(cur.u32() for _ in range(cur.remaining // 4))
        return VersionNegotiationPacket(dcid=dcid, scid=scid, versions=versions), len(data)
    if info is None:
        rest = len(data) - start
        return UnknownVersionPacket(version=version, dcid=dcid, scid=scid, length=rest), len(data)
    kind = info.packet_type(first)
    if kind is PacketType.retry:
        body = cur.rest()
        if len(body) < 16:
            raise Malformed(f"Retry of {len(body)} bytes after its header")
        retry = RetryPacket(version=version, dcid=dcid, scid=scid, token=body[:-16],
                            tag=body[-16:], data=data[start:])
        return retry, len(data)
    token = cur.bytes(varint(cur)) if kind is PacketType.initial else b""
    length = varint(cur)
    if length > cur.remaining:
        raise Malformed(f"Length {length} beyond the datagram ({cur.remaining} left)")
    header_length = len(data) - start - cur.remaining
    end = start + header_length + length
    packet = LongPacket(type=kind, version=version, dcid=dcid, scid=scid, token=token,
                        pn_offset=header_length, data=data[start:end])
    return packet, end


@dataclass(frozen=True, slots=True, kw_only=True)
class LongHeaderIds:
    """What a demultiplexer can read from a long header without keys."""

    version: int
    known: bool
    """A version this package decrypts, or Version Negotiation (version 0)."""
    type: PacketType | None
    """None for unknown versions (their type bits mean nothing here)."""
    dcid: bytes
    scid: bytes


def peek_long_header(datagram: bytes) -> LongHeaderIds | None:
    """Version and connection IDs of a datagram's first packet, if it has a long header
    that fits the QUIC invariants (RFC 8999 §5.1: CIDs up to 255 bytes for unknown
    versions, 20 for known ones); None otherwise. Costs a few slices, no crypto."""
    if len(datagram) < 7 or not datagram[0] & FORM_BIT:
        return None
    cur = Cursor(datagram, "QUIC long header")
    try:
        first = cur.u8()
        version = cur.u32()
        info = VERSIONS.get(version)
        known = info is not None or version == VERSION_NEGOTIATION
        dcid = _cid(cur, known)
        scid = _cid(cur, known)
    except Malformed:
        return None
    if version == VERSION_NEGOTIATION:
        kind: PacketType | None = PacketType.version_negotiation
    else:
        kind = info.packet_type(first) if info is not None else None
    return LongHeaderIds(version=version, known=known, type=kind, dcid=dcid, scid=scid)


def short_header_dcid(datagram: bytes, length: int) -> bytes | None:
    """The Destination Connection ID of a short-header datagram whose receiver uses CIDs
    of ``length`` bytes, or None if the datagram has a long header or is too short."""
    if not datagram or datagram[0] & FORM_BIT or len(datagram) < 1 + length:
        return None
    return datagram[1 : 1 + length]

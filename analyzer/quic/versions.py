"""QUIC versions: what each one changes in the wire image and in Initial protection.

What it does: one table, :data:`VERSIONS`, of the versions whose Initial packets can be
read without keys, each with its Initial salt (RFC 9001 §5.2), the Retry integrity key and
nonce (RFC 9001 §5.8), the prefix of its packet-protection labels (``quic `` or
``quicv2 ``, RFC 9369 §3.3.2) and its long-header packet type codes (RFC 9000 §17.2;
RFC 9369 §3.2 reassigns them). :func:`version_name` gives the text of the record's
``quic_version``.

What it does not do: negotiate anything, or know versions whose salts were never
published (Google QUIC ``Q050``/``T051`` use another wire image and are left out).

Covered: QUIC v1 (RFC 9000, RFC 9001), QUIC v2 (RFC 9369), IETF drafts 22-34 (salts from
draft-ietf-quic-tls-22, -23, -29 and -33, the ones Wireshark and Zeek use) and mvfst's
``0xfaceb001``/``0xfaceb002``/``0xfaceb00e`` (drafts 22 and 27 on the wire). RFC 9000
§15 (version numbers, reserved ``0x?a?a?a?a`` versions that force Version Negotiation).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final


class PacketType(Enum):
    """Packet types as this package names them, whatever their wire code."""

    initial = "initial"
    zero_rtt = "0rtt"
    handshake = "handshake"
    retry = "retry"
    one_rtt = "1rtt"
    """Short header (RFC 9000 §17.3)."""
    version_negotiation = "version_negotiation"


_V1_TYPES: Final = (PacketType.initial, PacketType.zero_rtt, PacketType.handshake,
                    PacketType.retry)
"""RFC 9000 §17.2: long packet type bits 0b00..0b11."""

_V2_TYPES: Final = (PacketType.retry, PacketType.initial, PacketType.zero_rtt,
                    PacketType.handshake)
"""RFC 9369 §3.2: Initial 0b01, 0-RTT 0b10, Handshake 0b11, Retry 0b00."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionInfo:
    """What a known version changes (all values are public constants, not secrets)."""

    number: int
    name: str
    """Text of ``quic_version``: ``v1``, ``v2``, ``draft-29``; mvfst's numbers in hex."""
    initial_salt: bytes
    retry_key: bytes | None
    """AES-128-GCM key of the Retry integrity tag; None before draft 25 (no tag)."""
    retry_nonce: bytes | None
    label_prefix: bytes
    """``quic `` for v1 and the drafts, ``quicv2 `` for v2 (RFC 9369 §3.3.2)."""
    packet_types: tuple[PacketType, PacketType, PacketType, PacketType]
    """Long-header type code (0..3) to packet type."""

    def packet_type(self, first_byte: int) -> PacketType:
        """The type of a long-header packet from its first byte (bits 0x30)."""
        return self.packet_types[(first_byte & 0x30) >> 4]


_SALT_DRAFT_22 = bytes.fromhex("7fbcdb0e7c66bbe9193a96cd21519ebd7a02644a")
_SALT_DRAFT_23 = bytes.fromhex("c3eef712c72ebb5a11a7d2432bb46365bef9f502")
_SALT_DRAFT_29 = bytes.fromhex("afbfec289993d24c9e9786f19c6111e04390a899")
_SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
_SALT_V2 = bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9")

_RETRY_DRAFT_25 = (bytes.fromhex("4d32ecdb2a2133c841e4043df27d4430"),
                   bytes.fromhex("4d1611d05513a552c587d575"))
"""draft-ietf-quic-tls-25 §5.8 (used until draft 28)."""
_RETRY_DRAFT_29 = (bytes.fromhex("ccce187ed09a09d05728155a6cb96be1"),
                   bytes.fromhex("e54930f97f2136f0530a8c1c"))
_RETRY_V1 = (bytes.fromhex("be0c690b9f66575a1d766b54e368c84e"),
             bytes.fromhex("461599d35d632bf2239825bb"))
_RETRY_V2 = (bytes.fromhex("8fb4b01b56ac48e260fbcbcead7ccc92"),
             bytes.fromhex("d86969bc2d7c6d9990efb04a"))

VERSION_1: Final = 0x00000001
VERSION_2: Final = 0x6B3343CF
VERSION_NEGOTIATION: Final = 0x00000000


def _draft(n: int) -> VersionInfo:
    retry: tuple[bytes, bytes] | tuple[None, None]
    if n >= 33:  # draft 33 moved to the salt and Retry key RFC 9001 kept
        salt, retry = _SALT_V1, _RETRY_V1
    elif n >= 29:
        salt, retry = _SALT_DRAFT_29, _RETRY_DRAFT_29
    elif n >= 23:
        salt, retry = _SALT_DRAFT_23, _RETRY_DRAFT_25 if n >= 25 else (None, None)
    else:
        salt, retry = _SALT_DRAFT_22, (None, None)
    return VersionInfo(number=0xFF000000 | n, name=f"draft-{n}", initial_salt=salt,
                       retry_key=retry[0], retry_nonce=retry[1], label_prefix=b"quic ",
                       packet_types=_V1_TYPES)


def _mvfst(number: int, draft: int) -> VersionInfo:
    like = _draft(draft)
    return VersionInfo(number=number, name=f"0x{number:08x}",
                       initial_salt=like.initial_salt, retry_key=like.retry_key,
                       retry_nonce=like.retry_nonce, label_prefix=b"quic ",
                       packet_types=_V1_TYPES)


VERSIONS: Final[dict[int, VersionInfo]] = {
    info.number: info
    for info in (
        VersionInfo(number=VERSION_1, name="v1", initial_salt=_SALT_V1,
                    retry_key=_RETRY_V1[0], retry_nonce=_RETRY_V1[1],
                    label_prefix=b"quic ", packet_types=_V1_TYPES),
        VersionInfo(number=VERSION_2, name="v2", initial_salt=_SALT_V2,
                    retry_key=_RETRY_V2[0], retry_nonce=_RETRY_V2[1],
                    label_prefix=b"quicv2 ", packet_types=_V2_TYPES),
        *(_draft(n) for n in range(22, 35)),
        _mvfst(0xFACEB001, 22),
        _mvfst(0xFACEB002, 27),
        _mvfst(0xFACEB00E, 27),
    )
}
"""Versions whose Initial packets this package decrypts, by number."""

ZEEK_VERSIONS: Final = frozenset({*VERSIONS, 0xFACEB011, 0xFACEB012, 0xFACEB013})
"""Versions Zeek's QUIC analyzer parses (its ``QUIC.spicy``); any other long header is
an "unhandled version" there (``U`` in its history)."""


def version_name(number: int) -> str:
    """``v1``, ``v2``, ``draft-29``, … or ``0xNNNNNNNN`` for any other version."""
    info = VERSIONS.get(number)
    return info.name if info is not None else f"0x{number:08x}"


def is_reserved_version(number: int) -> bool:
    """RFC 9000 §15: ``0x?a?a?a?a`` versions exist to make peers negotiate (greasing)."""
    return number & 0x0F0F0F0F == 0x0A0A0A0A

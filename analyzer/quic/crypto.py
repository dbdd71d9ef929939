"""QUIC packet protection: keys, header protection, payload decryption, Retry tags.

What it does:

- :func:`initial_keys` derives both sides' Initial keys from the client's first
  Destination Connection ID and the version's salt (RFC 9001 §5.2; RFC 9369 §3.3.1).
- :func:`packet_keys` derives the key, IV and header-protection key of any TLS 1.3
  traffic secret (RFC 9001 §5.1), e.g. a handshake traffic secret from a key log, for
  the three AEADs QUIC uses (table :data:`SUITES`).
- :meth:`PacketKeys.unprotect` removes header protection (RFC 9001 §5.4: AES-ECB or
  ChaCha20 masks), decodes the packet number (RFC 9000 §17.1, Appendix A.3) and opens
  the AEAD (RFC 9001 §5.3). A packet that does not authenticate gives ``None``.
- :func:`retry_tag_valid` checks a Retry packet's integrity tag (RFC 9001 §5.8).

What it does not do: key updates or 1-RTT keys, choose which keys a packet needs (the
connection parser does), or parse headers (:mod:`analyzer.quic.packet`). Every derivation
goes through :mod:`analyzer.tls.keyschedule`; every cipher comes from ``cryptography``,
imported at the first packet that needs it (``import analyzer`` stays light). Keys never
leave this module as text: :class:`PacketKeys`'s repr shows only its suite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from analyzer.quic.versions import VersionInfo

SAMPLE_LENGTH: Final = 16
"""RFC 9001 §5.4.2: the header-protection sample is 16 bytes of ciphertext, taken 4 bytes
after the start of the Packet Number field."""

TAG_LENGTH: Final = 16
"""All three AEADs have a 16-byte tag (RFC 9001 §5.3)."""

INITIAL_SUITE: Final = 0x1301
"""Initial packets use TLS_AES_128_GCM_SHA256's AEAD and hash (RFC 9001 §5.2)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Suite:
    """What QUIC needs of a TLS 1.3 cipher suite (RFC 9001 §5.3, §5.4.3, §5.4.4)."""

    hash_name: str
    key_length: int
    chacha: bool
    """ChaCha20-Poly1305 payloads and ChaCha20 header masks; else AES-GCM and AES-ECB."""


SUITES: Final[dict[int, Suite]] = {
    0x1301: Suite(hash_name="sha256", key_length=16, chacha=False),
    0x1302: Suite(hash_name="sha384", key_length=32, chacha=False),
    0x1303: Suite(hash_name="sha256", key_length=32, chacha=True),
}
"""TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256 (RFC 8446
§B.4). TLS_AES_128_CCM_SHA256 is allowed by RFC 9001 but unused in practice: its packets
are counted, not decrypted. A shared suite table in the TLS layer could replace this one;
QUIC needs only these three columns of it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Unprotected:
    """A packet whose protection was removed."""

    packet_number: int
    header: bytes
    """The header with its first byte and packet number unmasked (the AEAD's AAD)."""
    payload: bytes
    """The plaintext frames."""


class PacketKeys:
    """One direction's keys at one encryption level.

    Holds the key bytes and builds the cipher objects per packet: an AES-GCM object keeps
    a few KB of OpenSSL state once used, and a connection sees only a handful of the
    packets these keys are for, so building them costs less than keeping them.
    """

    __slots__ = ("_chacha", "_hp", "_iv", "_key", "suite")

    def __init__(self, suite: int, key: bytes, iv: bytes, hp: bytes) -> None:
        self.suite = suite
        self._chacha = SUITES[suite].chacha
        self._key = key
        self._iv = int.from_bytes(iv)
        self._hp = hp

    def __repr__(self) -> str:
        return f"PacketKeys(suite=0x{self.suite:04x})"

    def mask(self, sample: bytes) -> bytes:
        """The 5-byte header-protection mask for a 16-byte sample (RFC 9001 §5.4.3-4)."""
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        if self._chacha:
            # ChaCha20: counter = sample[0:4] little-endian, nonce = sample[4:16]; that is
            # exactly cryptography's 16-byte ChaCha20 "nonce" argument.
            chacha = Cipher(algorithms.ChaCha20(self._hp, sample), mode=None).encryptor()
            return chacha.update(bytes(5))
        return Cipher(algorithms.AES(self._hp), modes.ECB()).encryptor().update(sample)[:5]

    def unprotect(self, packet: bytes, pn_offset: int, largest_pn: int) -> Unprotected | None:
        """Remove header and payload protection from one packet, or None if it does not
        authenticate (wrong keys, damaged, or forged) or is too short to sample.

        ``packet`` is the whole packet (header to the end of its Length), ``pn_offset``
        where its Packet Number field starts, ``largest_pn`` the largest packet number
        authenticated so far in this packet number space (-1 if none).
        """
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

        sample_at = pn_offset + 4
        if len(packet) < sample_at + SAMPLE_LENGTH:
            return None
        mask = self.mask(packet[sample_at : sample_at + SAMPLE_LENGTH])
        # RFC 9001 §5.4.1: four low bits of a long header's first byte, five of a short one's.
        first = packet[0] ^ (mask[0] & (0x0F if packet[0] & 0x80 else 0x1F))
        pn_length = (first & 0x03) + 1
        pn_bytes = bytes(
            b ^ m for b, m in zip(packet[pn_offset : pn_offset + pn_length], mask[1:], strict=False)
        )
        header = bytes([first]) + packet[1:pn_offset] + pn_bytes
        packet_number = decode_packet_number(largest_pn, int.from_bytes(pn_bytes), pn_length * 8)
        nonce = (self._iv ^ packet_number).to_bytes(12)
        aead = ChaCha20Poly1305(self._key) if self._chacha else AESGCM(self._key)
        try:
            payload = aead.decrypt(nonce, packet[pn_offset + pn_length :], header)
        except InvalidTag:
            return None
        return Unprotected(packet_number=packet_number, header=header, payload=payload)


def decode_packet_number(largest: int, truncated: int, bits: int) -> int:
    """RFC 9000 Appendix A.3: the full packet number closest to ``largest + 1``."""
    expected = largest + 1
    window = 1 << bits
    half = window // 2
    candidate = (expected & ~(window - 1)) | truncated
    if candidate <= expected - half and candidate < (1 << 62) - window:
        return candidate + window
    if candidate > expected + half and candidate >= window:
        return candidate - window
    return candidate


def packet_keys(suite: int, secret: bytes, label_prefix: bytes = b"quic ") -> PacketKeys:
    """Keys of one direction from a TLS 1.3 traffic secret (RFC 9001 §5.1).

    ``suite`` must be a key of :data:`SUITES`; ``label_prefix`` is the version's
    (``quicv2 `` for QUIC v2).
    """
    from analyzer.tls.keyschedule import hkdf_expand_label

    info = SUITES[suite]
    h = info.hash_name
    return PacketKeys(
        suite,
        key=hkdf_expand_label(h, secret, label_prefix + b"key", b"", info.key_length),
        iv=hkdf_expand_label(h, secret, label_prefix + b"iv", b"", 12),
        hp=hkdf_expand_label(h, secret, label_prefix + b"hp", b"", info.key_length),
    )


def initial_secrets(version: VersionInfo, dcid: bytes) -> tuple[bytes, bytes]:
    """``(client_initial_secret, server_initial_secret)`` (RFC 9001 §5.2)."""
    from analyzer.tls.keyschedule import hkdf_expand_label, hkdf_extract

    initial = hkdf_extract("sha256", version.initial_salt, dcid)
    return (
        hkdf_expand_label("sha256", initial, b"client in", b"", 32),
        hkdf_expand_label("sha256", initial, b"server in", b"", 32),
    )


def initial_keys(version: VersionInfo, dcid: bytes) -> tuple[PacketKeys, PacketKeys]:
    """``(client keys, server keys)`` of the Initial packets of a connection whose client
    chose ``dcid`` as its first Destination Connection ID."""
    client, server = initial_secrets(version, dcid)
    prefix = version.label_prefix
    return packet_keys(INITIAL_SUITE, client, prefix), packet_keys(INITIAL_SUITE, server, prefix)


def retry_tag_valid(version: VersionInfo, original_dcid: bytes, retry: bytes) -> bool | None:
    """Whether a Retry packet's last 16 bytes are its integrity tag (RFC 9001 §5.8):
    the AES-128-GCM tag over the Retry Pseudo-Packet (the client's original DCID, then
    the Retry without its tag). None for versions without a tag or a packet too short."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if version.retry_key is None or version.retry_nonce is None or len(retry) < TAG_LENGTH:
        return None
    pseudo = bytes([len(original_dcid)]) + original_dcid + retry[:-TAG_LENGTH]
    expected = AESGCM(version.retry_key).encrypt(version.retry_nonce, b"", pseudo)
    return expected == retry[-TAG_LENGTH:]

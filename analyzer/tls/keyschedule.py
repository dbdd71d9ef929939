"""The key schedule: secrets in, traffic keys out (RFC 8446 §7; RFC 9001 §5; RFC 5246 §5, §6.3).

One module for every place the analysis derives keys: key-log decryption of TLS 1.3
handshakes (RFC 8446 §7.1, §7.3, and §7.2 for KeyUpdate), of TLS ≤ 1.2 from a master
secret (the PRF of RFC 5246 §5 and of RFC 4346 §5 / RFC 2246 §5, the key block of
RFC 5246 §6.3), and QUIC's Initial and Handshake packet protection (RFC 9001 §5.1-§5.4,
which reuses TLS 1.3's ``HKDF-Expand-Label``). HKDF and every cipher come from
``cryptography``; the TLS ≤ 1.2 PRF is ``P_hash`` over the standard library's ``hmac``
(a keyed hash, not a cipher).

What it does not do: find secrets (key logs are read in :mod:`analyzer.tls.keylog`),
parse records or packets, or keep per-connection state. Secrets and keys never leave the
functions that use them: nothing here formats them as text (:class:`KeyBlock` hides its
fields from ``repr``).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
}
"""The hashes TLS 1.3 cipher suites use (RFC 8446 §B.4), by name."""


def hkdf_extract(hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract (RFC 5869 §2.2): ``HMAC-Hash(salt, IKM)``."""
    digest = hashlib.new(hash_name)
    if not salt:
        salt = bytes(digest.digest_size)
    return hmac.new(salt, ikm, hash_name).digest()


def hkdf_expand_label(
    hash_name: str, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """HKDF-Expand-Label (RFC 8446 §7.1): the label gets the ``tls13 `` prefix."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + bytes([len(context)]) + context
    return HKDFExpand(algorithm=HASHES[hash_name](), length=length, info=info).derive(secret)


def derive_secret(hash_name: str, secret: bytes, label: bytes, transcript_hash: bytes) -> bytes:
    """Derive-Secret (RFC 8446 §7.1) with the transcript's hash already computed."""
    return hkdf_expand_label(hash_name, secret, label, transcript_hash, len(transcript_hash))


def tls13_traffic_keys(
    hash_name: str, secret: bytes, key_length: int, iv_length: int = 12
) -> tuple[bytes, bytes]:
    """The write key and IV of a TLS 1.3 traffic secret (RFC 8446 §7.3)."""
    key = hkdf_expand_label(hash_name, secret, b"key", b"", key_length)
    return key, hkdf_expand_label(hash_name, secret, b"iv", b"", iv_length)


def tls13_next_secret(hash_name: str, secret: bytes) -> bytes:
    """application_traffic_secret_N+1 after a KeyUpdate (RFC 8446 §7.2)."""
    return hkdf_expand_label(hash_name, secret, b"traffic upd", b"", len(secret))


def p_hash(hash_name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    """P_hash (RFC 5246 §5): ``HMAC(secret, A(i) + seed)`` with ``A(i) = HMAC(secret,
    A(i-1))``, ``A(0) = seed``, cut to ``length`` bytes."""
    out = bytearray()
    a = seed
    while len(out) < length:
        a = hmac.digest(secret, a, hash_name)
        out += hmac.digest(secret, a + seed, hash_name)
    return bytes(out[:length])


def prf_tls12(hash_name: str, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """The TLS 1.2 PRF (RFC 5246 §5): ``P_<hash>(secret, label + seed)``; SHA-256 unless
    the cipher suite names SHA-384 (RFC 5289 §3)."""
    return p_hash(hash_name, secret, label + seed, length)


def prf_tls10(secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """The TLS 1.0 and 1.1 PRF (RFC 2246 §5, RFC 4346 §5): the secret split in two
    halves (sharing the middle byte when its length is odd), ``P_MD5`` of the first
    XOR ``P_SHA-1`` of the second."""
    half = (len(secret) + 1) // 2
    md5 = p_hash("md5", secret[:half], label + seed, length)
    sha1 = p_hash("sha1", secret[len(secret) - half :], label + seed, length)
    return bytes(x ^ y for x, y in zip(md5, sha1, strict=True))


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyBlock:
    """The key block of a TLS ≤ 1.2 connection, partitioned (RFC 5246 §6.3). Every field
    is secret and left out of ``repr``; IVs are empty where the record carries its own
    (CBC in TLS 1.1 and later)."""

    client_mac: bytes = field(repr=False)
    server_mac: bytes = field(repr=False)
    client_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)
    client_iv: bytes = field(repr=False)
    server_iv: bytes = field(repr=False)


def key_block(
    *,
    prf_hash: str | None,
    master_secret: bytes,
    server_random: bytes,
    client_random: bytes,
    mac_length: int,
    key_length: int,
    iv_length: int,
) -> KeyBlock:
    """``PRF(master_secret, "key expansion", server_random + client_random)`` cut into
    MAC keys, write keys and IVs, client's first (RFC 5246 §6.3). ``prf_hash`` None
    selects the TLS 1.0/1.1 PRF."""
    need = 2 * (mac_length + key_length + iv_length)
    seed = server_random + client_random
    if prf_hash is None:
        block = prf_tls10(master_secret, b"key expansion", seed, need)
    else:
        block = prf_tls12(prf_hash, master_secret, b"key expansion", seed, need)
    parts: list[bytes] = []
    at = 0
    for size in (mac_length, mac_length, key_length, key_length, iv_length, iv_length):
        parts.append(block[at : at + size])
        at += size
    client_mac, server_mac, client_key, server_key, client_iv, server_iv = parts
    return KeyBlock(
        client_mac=client_mac,
        server_mac=server_mac,
        client_key=client_key,
        server_key=server_key,
        client_iv=client_iv,
        server_iv=server_iv,
    )

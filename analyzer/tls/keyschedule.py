"""The key schedule: secrets in, traffic keys out (RFC 8446 §7; RFC 9001 §5).

One module for every place the analysis derives keys: key-log decryption of TLS 1.3
handshakes (RFC 8446 §7.1, §7.3) and QUIC's Initial and Handshake packet protection
(RFC 9001 §5.1-§5.4, which reuses TLS 1.3's ``HKDF-Expand-Label``). HKDF and every AEAD
come from ``cryptography``; nothing here writes a cipher by hand.

What it does not do: find secrets (key logs are read elsewhere), parse records or
packets, or keep per-connection state. Secrets and keys never leave the functions that
use them: nothing here formats them as text.
"""

from __future__ import annotations

import hashlib
import hmac
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

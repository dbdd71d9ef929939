"""What it takes to decrypt a cipher suite: its record protection, key sizes and hashes.

What it does: :func:`suite_params` reads a cipher suite's IANA name (from
:mod:`analyzer.tls.names`, the one name table) and returns :class:`SuiteParams`: the
protocol family (TLS 1.3 or TLS ≤ 1.2), the bulk cipher (AES-GCM, AES-CCM, AES-CCM_8,
ChaCha20-Poly1305, AES-CBC or 3DES-CBC), key and IV lengths, the record MAC of CBC
suites, and the hash of the PRF (TLS ≤ 1.2) or of HKDF (TLS 1.3). The name says it all:
``TLS_<key exchange>_WITH_<cipher>_<mac or PRF hash>`` for TLS ≤ 1.2 (RFC 5246 appendix
C, RFC 5289, RFC 6655, RFC 7905), ``TLS_<AEAD>_<hash>`` for TLS 1.3 (RFC 8446 §B.4).
QUIC reuses the TLS 1.3 entries (``hash_name``, ``aead_class``, ``key_length``) for its
own packet protection (RFC 9001 §5).

What it does not do: decrypt (:mod:`analyzer.tls.decrypt`), or know key exchanges.
Suites it cannot decrypt give None: NULL, RC4, DES, IDEA, Camellia, ARIA, SEED, GOST,
SM4, AEGIS (no implementation in ``cryptography``), export grades, the pre-standard
ChaCha20 code points (another nonce), SSLv2 specs and the ``SSL_``-named FIPS and
Fortezza suites.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import Enum

from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from analyzer.tls.names import cipher_name


class BulkCipher(Enum):
    """How records are protected."""

    AES_GCM = "AES-GCM"
    AES_CCM = "AES-CCM"
    AES_CCM_8 = "AES-CCM-8"
    """AES-CCM with an 8-byte tag (RFC 6655 §4, RFC 8446 §B.4)."""
    CHACHA20_POLY1305 = "ChaCha20-Poly1305"
    AES_CBC = "AES-CBC"
    TRIPLE_DES_CBC = "3DES-CBC"

    @property
    def is_aead(self) -> bool:
        return self not in (BulkCipher.AES_CBC, BulkCipher.TRIPLE_DES_CBC)


AeadClass = type[AESGCM] | type[AESCCM] | type[ChaCha20Poly1305]

_AEAD_CLASSES: dict[BulkCipher, AeadClass] = {
    BulkCipher.AES_GCM: AESGCM,
    BulkCipher.AES_CCM: AESCCM,
    BulkCipher.AES_CCM_8: AESCCM,
    BulkCipher.CHACHA20_POLY1305: ChaCha20Poly1305,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SuiteParams:
    """Decryption parameters of one cipher suite."""

    code: int
    name: str
    """IANA name, as :func:`analyzer.tls.names.cipher_name` gives it."""
    tls13: bool
    """A TLS 1.3 suite (keys from traffic secrets); otherwise TLS ≤ 1.2 (a key block)."""
    cipher: BulkCipher
    key_length: int
    iv_length: int
    """TLS 1.3 and TLS 1.2 ChaCha20: the 12-byte nonce base. TLS 1.2 GCM and CCM: the
    4-byte implicit salt (RFC 5288 §3, RFC 6655 §3). CBC: the block size (the IV TLS 1.0
    takes from the key block; TLS 1.1 and later send it in each record)."""
    tag_length: int
    """AEAD tag bytes (16, or 8 for CCM_8); 0 for CBC."""
    explicit_nonce_length: int
    """Bytes of per-record nonce sent before the ciphertext in TLS 1.2: 8 for GCM and
    CCM, 0 for ChaCha20 (RFC 7905 §2) and TLS 1.3; the IV of CBC records."""
    mac: str | None
    """``hashlib`` name of the record MAC (HMAC) of CBC suites: sha1, sha256, sha384."""
    mac_length: int
    hash_name: str
    """The PRF hash of TLS 1.2 (sha256 unless the suite names SHA-384), or the HKDF hash
    of TLS 1.3. TLS 1.0 and 1.1 use their own MD5/SHA-1 PRF whatever this says."""

    @property
    def block_size(self) -> int:
        """Cipher block size of CBC suites (0 for AEADs)."""
        if self.cipher is BulkCipher.AES_CBC:
            return 16
        return 8 if self.cipher is BulkCipher.TRIPLE_DES_CBC else 0

    @property
    def aead_class(self) -> AeadClass | None:
        """The ``cryptography`` AEAD class (construct AESCCM with ``tag_length``)."""
        return _AEAD_CLASSES.get(self.cipher)


_TLS13 = re.compile(r"TLS_(AES_128_GCM|AES_256_GCM|CHACHA20_POLY1305|AES_128_CCM_8|AES_128_CCM)"
                    r"_(SHA256|SHA384)")
_TLS12 = re.compile(r"TLS_\w+?_WITH_(AES_(?:128|256)_(?:GCM|CCM_8|CCM|CBC)|CHACHA20_POLY1305"
                    r"|3DES_EDE_CBC)(?:_(SHA|SHA256|SHA384))?")
_HASHES = {"SHA": "sha1", "SHA256": "sha256", "SHA384": "sha384"}
_MAC_LENGTHS = {"sha1": 20, "sha256": 32, "sha384": 48}


def _bulk(text: str) -> tuple[BulkCipher, int]:
    """The cipher and key length of a name part such as ``AES_256_CCM_8``."""
    if text == "CHACHA20_POLY1305":
        return BulkCipher.CHACHA20_POLY1305, 32
    if text == "3DES_EDE_CBC":
        return BulkCipher.TRIPLE_DES_CBC, 24
    _aes, bits, mode = text.split("_", 2)
    cipher = {"GCM": BulkCipher.AES_GCM, "CCM": BulkCipher.AES_CCM,
              "CCM_8": BulkCipher.AES_CCM_8, "CBC": BulkCipher.AES_CBC}[mode]
    return cipher, int(bits) // 8


def _tls13(code: int, name: str, match: re.Match[str]) -> SuiteParams:
    cipher, key_length = _bulk(match[1])
    return SuiteParams(
        code=code, name=name, tls13=True, cipher=cipher, key_length=key_length, iv_length=12,
        tag_length=8 if cipher is BulkCipher.AES_CCM_8 else 16, explicit_nonce_length=0,
        mac=None, mac_length=0, hash_name=_HASHES[match[2]],
    )


def _tls12(code: int, name: str, match: re.Match[str]) -> SuiteParams | None:
    cipher, key_length = _bulk(match[1])
    suffix = _HASHES.get(match[2] or "")
    if not cipher.is_aead:
        if suffix is None:
            return None
        block = 16 if cipher is BulkCipher.AES_CBC else 8
        return SuiteParams(
            code=code, name=name, tls13=False, cipher=cipher, key_length=key_length,
            iv_length=block, tag_length=0, explicit_nonce_length=block, mac=suffix,
            mac_length=_MAC_LENGTHS[suffix],
            hash_name="sha384" if suffix == "sha384" else "sha256",
        )
    if suffix == "sha1":
        return None
    chacha = cipher is BulkCipher.CHACHA20_POLY1305
    return SuiteParams(
        code=code, name=name, tls13=False, cipher=cipher, key_length=key_length,
        iv_length=12 if chacha else 4, tag_length=8 if cipher is BulkCipher.AES_CCM_8 else 16,
        explicit_nonce_length=0 if chacha else 8, mac=None, mac_length=0,
        hash_name=suffix or "sha256",
    )


@functools.cache  # at most 2^16 codes, each a small frozen value
def suite_params(code: int) -> SuiteParams | None:
    """What decrypting ``code`` takes, or None when it cannot be decrypted here."""
    name = cipher_name(code)
    match = _TLS13.fullmatch(name)
    if match is not None:
        return _tls13(code, name, match)
    match = _TLS12.fullmatch(name)
    return _tls12(code, name, match) if match is not None else None

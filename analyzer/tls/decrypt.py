"""Record decryption with key log secrets: one decryptor per direction and epoch.

What it does: :func:`session_keys` turns a connection's :class:`~analyzer.tls.keylog.Secrets`
and what its hellos negotiated (version, cipher suite, randoms, encrypt_then_mac) into a
:class:`Decryptor` per direction and epoch, or :class:`NoKeys` saying why there is none.
A decryptor holds its keys and the record sequence number, and turns one encrypted record
into :class:`Plain` (the real content type and the plaintext) or :class:`Failed` (why it
did not authenticate). It never raises on record bytes and never returns plaintext whose
tag or MAC did not check.

- TLS 1.3 (RFC 8446 §5.2-§5.3, §7.3): the nonce is the IV XOR the sequence number, the
  AAD the 5-byte record header, the inner plaintext ends with the real content type
  after any zero padding. AES-128/256-GCM, ChaCha20-Poly1305, AES-128-CCM, AES-128-CCM-8.
  :meth:`Tls13Decryptor.key_update` moves to the next traffic secret (RFC 8446 §4.6.3).
- TLS 1.2 AEADs: GCM (RFC 5288 §3) and CCM/CCM_8 (RFC 6655 §3) with a 4-byte implicit
  salt and an 8-byte explicit nonce in each record; ChaCha20-Poly1305 (RFC 7905 §2) with
  the IV XOR the sequence number. AAD: sequence number, type, version, plaintext length
  (RFC 5246 §6.2.3.3).
- CBC (RFC 5246 §6.2.3.2): AES and 3DES with HMAC-SHA1/SHA-256/SHA-384, MAC-then-encrypt
  with its padding checked, or encrypt-then-MAC when negotiated (RFC 7366). TLS 1.1 and
  later send the IV in each record; TLS 1.0 chains it from the previous record's last
  ciphertext block (RFC 2246 §6.2.3.2).

Which records to open: :meth:`Decryptor.worth_opening`. The analysis wants handshake
messages and alerts, never bulk application data; see its docstring for the rule.

What it does not do: find the secrets (:mod:`analyzer.tls.keylog`), split records
(:mod:`analyzer.tls.records`) or parse what comes out (:mod:`analyzer.tls.handshake`),
SSLv3, TLS 1.3 drafts, DTLS, 0-RTT early data, truncated_hmac, compression. Keys and
plaintext never appear in a ``repr``.
"""

from __future__ import annotations

import hashlib
import hmac
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from analyzer.limits import MAX_OPENED_APPLICATION_RECORD, MAX_TLS_RECORD
from analyzer.tls.enums import ContentType, ProtocolVersion
from analyzer.tls.keylog import Secrets
from analyzer.tls.keyschedule import key_block, tls13_next_secret, tls13_traffic_keys
from analyzer.tls.names import cipher_name, version_name
from analyzer.tls.suites import BulkCipher, SuiteParams, suite_params


class FailReason(Enum):
    """Why a record did not decrypt."""

    TOO_SHORT = "too_short"
    """Shorter than its nonce, tag, MAC or one cipher block."""
    TOO_LONG = "too_long"
    """Longer than any record may be (``MAX_TLS_RECORD``)."""
    BAD_LENGTH = "bad_length"
    """CBC ciphertext that is not a whole number of blocks."""
    BAD_TAG = "bad_tag"
    """The AEAD tag did not authenticate."""
    BAD_MAC = "bad_mac"
    """The CBC record's HMAC did not match."""
    BAD_PADDING = "bad_padding"
    """CBC padding bytes that do not all equal the padding length."""
    NO_CONTENT_TYPE = "no_content_type"
    """A TLS 1.3 inner plaintext of zeros only: no content type (RFC 8446 §5.4)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Plain:
    """A decrypted record."""

    content_type: int
    """The real content type: TLS 1.3's inner one, else the record's."""
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed:
    """A record that did not decrypt; the caller records ``decrypt_failed``."""

    reason: FailReason


class Epoch(Enum):
    """Which keys of a direction a decryptor holds."""

    HANDSHAKE = "handshake"
    """TLS 1.3 handshake traffic keys: from the ServerHello to this side's Finished."""
    APPLICATION = "application"
    """TLS 1.3 application traffic keys (after this side's Finished), or the only keys of
    TLS ≤ 1.2 (after this side's ChangeCipherSpec: Finished, alerts, application data)."""


def _xor_seq(iv: bytes, seq: int) -> bytes:
    """The per-record nonce of TLS 1.3 and RFC 7905: the IV XOR the padded sequence number."""
    return (int.from_bytes(iv) ^ seq).to_bytes(len(iv))


Aead = AESGCM | AESCCM | ChaCha20Poly1305


def _aead(suite: SuiteParams, key: bytes) -> Aead:
    if suite.cipher is BulkCipher.AES_GCM:
        return AESGCM(key)
    if suite.cipher is BulkCipher.CHACHA20_POLY1305:
        return ChaCha20Poly1305(key)
    return AESCCM(key, tag_length=suite.tag_length)


class Decryptor(ABC):
    """The keys of one direction and epoch, and its next record sequence number.

    Each record the sender protected with these keys takes one sequence number: pass it
    to :meth:`decrypt`, or to :meth:`skip` when it is not worth opening. A record that
    fails keeps the sequence number where it was, so the next record can still be tried
    (the way a TLS 1.3 server skips rejected 0-RTT records, RFC 8446 §4.2.10); after a
    failure the caller normally stops decrypting the direction.
    """

    __slots__ = ("epoch", "seq", "suite")

    def __init__(self, suite: SuiteParams, epoch: Epoch) -> None:
        self.suite = suite
        self.epoch = epoch
        self.seq = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.suite.name}, {self.epoch.value}, seq={self.seq})"

    def decrypt(self, content_type: int, version: int, fragment: bytes) -> Plain | Failed:
        """Open one record (its header's type and version, and its fragment)."""
        if len(fragment) > MAX_TLS_RECORD:
            return Failed(reason=FailReason.TOO_LONG)
        result = self._open(content_type, version, fragment)
        if isinstance(result, Plain):
            self.seq += 1
        return result

    def skip(self, fragment: bytes) -> None:
        """Account for a record that is not opened (see :meth:`worth_opening`): it takes
        a sequence number, and in TLS 1.0 CBC its last block is the next record's IV."""
        self.seq += 1

    @abstractmethod
    def worth_opening(self, content_type: int, length: int) -> bool:
        """Can this record (header type, fragment length) hold what the analysis reads:
        a handshake message or an alert?"""

    @abstractmethod
    def _open(self, content_type: int, version: int, fragment: bytes) -> Plain | Failed: ...


class Tls13Decryptor(Decryptor):
    """TLS 1.3 record protection (RFC 8446 §5.2-§5.3) from one traffic secret."""

    __slots__ = ("_aead", "_iv", "_secret")

    def __init__(self, suite: SuiteParams, epoch: Epoch, secret: bytes) -> None:
        super().__init__(suite, epoch)
        self._secret = secret
        self._aead, self._iv = self._keys()

    def _keys(self) -> tuple[Aead, bytes]:
        key, iv = tls13_traffic_keys(self.suite.hash_name, self._secret, self.suite.key_length)
        return _aead(self.suite, key), iv

    def key_update(self) -> None:
        """After this direction's KeyUpdate message: the next application traffic secret
        (RFC 8446 §7.2), from sequence number 0."""
        self._secret = tls13_next_secret(self.suite.hash_name, self._secret)
        self._aead, self._iv = self._keys()
        self.seq = 0

    def worth_opening(self, content_type: int, length: int) -> bool:
        """Rule: every protected record carries the outer type application_data (RFC 8446
        §5.2); any other type is plaintext (ChangeCipherSpec, an alert sent before keys)
        and is never opened. In the handshake epoch every record is handshake or alert:
        open it. In the application epoch the wanted messages are small (an alert, a
        KeyUpdate, a NewSessionTicket), so a record longer than
        ``MAX_OPENED_APPLICATION_RECORD`` is taken for application data and skipped."""
        if content_type != ContentType.application_data:
            return False
        return self.epoch is Epoch.HANDSHAKE or length <= MAX_OPENED_APPLICATION_RECORD

    def _open(self, content_type: int, version: int, fragment: bytes) -> Plain | Failed:
        if len(fragment) <= self.suite.tag_length:
            return Failed(reason=FailReason.TOO_SHORT)
        aad = bytes([content_type]) + version.to_bytes(2) + len(fragment).to_bytes(2)
        try:
            inner = self._aead.decrypt(_xor_seq(self._iv, self.seq), fragment, aad)
        except InvalidTag:
            return Failed(reason=FailReason.BAD_TAG)
        inner = inner.rstrip(b"\x00")
        if not inner:
            return Failed(reason=FailReason.NO_CONTENT_TYPE)
        return Plain(content_type=inner[-1], data=inner[:-1])


def _worth_opening_tls12(content_type: int) -> bool:
    """TLS ≤ 1.2 shows the real content type: only handshake (Finished, renegotiation)
    and alert records are opened, never application data or heartbeats."""
    return content_type in (ContentType.handshake, ContentType.alert)


class Tls12AeadDecryptor(Decryptor):
    """TLS 1.2 AEAD records: GCM and CCM (RFC 5288, RFC 6655), ChaCha20 (RFC 7905)."""

    __slots__ = ("_aead", "_iv")

    def __init__(self, suite: SuiteParams, key: bytes, iv: bytes) -> None:
        super().__init__(suite, Epoch.APPLICATION)
        self._aead = _aead(suite, key)
        self._iv = iv

    def worth_opening(self, content_type: int, length: int) -> bool:
        return _worth_opening_tls12(content_type)

    def _open(self, content_type: int, version: int, fragment: bytes) -> Plain | Failed:
        explicit, tag = self.suite.explicit_nonce_length, self.suite.tag_length
        if len(fragment) < explicit + tag:
            return Failed(reason=FailReason.TOO_SHORT)
        nonce = self._iv + fragment[:explicit] if explicit else _xor_seq(self._iv, self.seq)
        body = fragment[explicit:]
        aad = (self.seq.to_bytes(8) + bytes([content_type]) + version.to_bytes(2)
               + (len(body) - tag).to_bytes(2))
        try:
            data = self._aead.decrypt(nonce, body, aad)
        except InvalidTag:
            return Failed(reason=FailReason.BAD_TAG)
        return Plain(content_type=content_type, data=data)


class CbcDecryptor(Decryptor):
    """TLS 1.0-1.2 CBC records with HMAC (RFC 5246 §6.2.3.2, RFC 2246 §6.2.3.2), and
    encrypt-then-MAC (RFC 7366)."""

    __slots__ = ("_algorithm", "_chained_iv", "_etm", "_mac_key")

    def __init__(
        self, suite: SuiteParams, *, version: int, mac_key: bytes, key: bytes, iv: bytes,
        encrypt_then_mac: bool,
    ) -> None:
        super().__init__(suite, Epoch.APPLICATION)
        self._mac_key = mac_key
        self._algorithm: algorithms.AES | TripleDES = (
            algorithms.AES(key) if suite.cipher is BulkCipher.AES_CBC else TripleDES(key)
        )
        self._chained_iv: bytes | None = iv if version == ProtocolVersion.TLSv1_0 else None
        """TLS 1.0: the IV of the next record (the key block's, then the last ciphertext
        block of each record). None when every record sends its own IV."""
        self._etm = encrypt_then_mac

    def worth_opening(self, content_type: int, length: int) -> bool:
        return _worth_opening_tls12(content_type)

    def skip(self, fragment: bytes) -> None:
        super().skip(fragment)
        size = self.suite.block_size
        if self._chained_iv is not None:
            end = len(fragment) - self.suite.mac_length if self._etm else len(fragment)
            if end >= size:
                self._chained_iv = fragment[end - size : end]

    def _mac(self, content_type: int, version: int, data: bytes) -> bytes:
        header = self.seq.to_bytes(8) + bytes([content_type]) + version.to_bytes(2)
        digest = self.suite.mac or "sha1"
        return hmac.digest(self._mac_key, header + len(data).to_bytes(2) + data, digest)

    def _cbc(self, data: bytes) -> tuple[bytes, bytes] | None:
        """Decrypt IV and ciphertext: (plaintext, last ciphertext block), or None when the
        ciphertext is not a whole, non-empty number of blocks."""
        size = self.suite.block_size
        if self._chained_iv is None:
            iv, ciphertext = data[:size], data[size:]
        else:
            iv, ciphertext = self._chained_iv, data
        if not ciphertext or len(ciphertext) % size:
            return None
        decryptor = Cipher(self._algorithm, modes.CBC(iv)).decryptor()
        return decryptor.update(ciphertext) + decryptor.finalize(), ciphertext[-size:]

    def _open(self, content_type: int, version: int, fragment: bytes) -> Plain | Failed:
        mac_length = self.suite.mac_length
        if self._etm:
            if len(fragment) < mac_length:
                return Failed(reason=FailReason.TOO_SHORT)
            cut = len(fragment) - mac_length
            body, mac = fragment[:cut], fragment[cut:]
            if not hmac.compare_digest(mac, self._mac(content_type, version, body)):
                return Failed(reason=FailReason.BAD_MAC)
            opened = self._cbc(body)
            if opened is None:
                return Failed(reason=FailReason.BAD_LENGTH)
            plain, last = opened
            end = _unpad(plain, 0)
            if end is None:
                return Failed(reason=FailReason.BAD_PADDING)
            data = plain[:end]
        else:
            opened = self._cbc(fragment)
            if opened is None:
                return Failed(reason=FailReason.BAD_LENGTH)
            plain, last = opened
            end = _unpad(plain, mac_length)
            if end is None:
                return Failed(reason=FailReason.BAD_PADDING)
            data, mac = plain[:end], plain[end : end + mac_length]
            if not hmac.compare_digest(mac, self._mac(content_type, version, data)):
                return Failed(reason=FailReason.BAD_MAC)
        if self._chained_iv is not None:
            self._chained_iv = last
        return Plain(content_type=content_type, data=data)


def _unpad(plain: bytes, mac_length: int) -> int | None:
    """Where the content ends in ``content + MAC + padding + padding_length``: every
    padding byte must equal the padding length (RFC 5246 §6.2.3.2). None if not."""
    pad = plain[-1]
    end = len(plain) - pad - 1 - mac_length
    if end < 0 or plain[len(plain) - pad - 1 :] != bytes([pad]) * (pad + 1):
        return None
    return end


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectionKeys:
    """The decryptors of one direction (None where the key log lacks the secret)."""

    handshake: Decryptor | None
    """TLS 1.3: for records from the ServerHello to this side's Finished. Always None
    for TLS ≤ 1.2."""
    application: Decryptor | None
    """TLS 1.3: for records after this side's Finished. TLS ≤ 1.2: for records after
    this side's ChangeCipherSpec."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionKeys:
    """A connection's decryptors, per direction."""

    suite: SuiteParams
    version: int
    client: DirectionKeys
    server: DirectionKeys


class NoKeysReason(Enum):
    """Why a connection gets no decryptors."""

    NO_SECRETS = "no_secrets"
    """The key logs hold nothing for this client random."""
    MISSING_SECRETS = "missing_secrets"
    """They hold secrets, but not those this version needs (TLS 1.3 traffic secrets,
    or a TLS ≤ 1.2 master secret), or of a length that does not fit the suite's hash."""
    UNSUPPORTED_VERSION = "unsupported_version"
    """SSLv3, a TLS 1.3 draft, DTLS, or a version no hello settled."""
    UNSUPPORTED_SUITE = "unsupported_suite"
    """A cipher suite this module cannot decrypt, or one that does not belong to the
    version."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NoKeys:
    """No decryptors, and why (``detail`` is one line without secrets)."""

    reason: NoKeysReason
    detail: str


_TLS12_FAMILY = (ProtocolVersion.TLSv1_0, ProtocolVersion.TLSv1_1, ProtocolVersion.TLSv1_2)


def session_keys(
    secrets: Secrets | None,
    *,
    version: int,
    cipher_suite: int,
    client_random: bytes,
    server_random: bytes,
    encrypt_then_mac: bool = False,
) -> SessionKeys | NoKeys:
    """Decryptors for a connection, once its ServerHello is seen.

    ``version`` is the negotiated one (supported_versions if present), ``cipher_suite``
    the ServerHello's, ``encrypt_then_mac`` whether the ServerHello echoed that extension
    (RFC 7366 §2; it matters for CBC suites only). ``secrets`` is
    ``KeyLog.lookup(client_random)``.
    """
    if secrets is None:
        return NoKeys(reason=NoKeysReason.NO_SECRETS,
                      detail="the key log has no secrets for this connection")
    suite = suite_params(cipher_suite)
    if version == ProtocolVersion.TLSv1_3:
        if suite is None or not suite.tls13:
            return _unsupported_suite(cipher_suite, version)
        return _tls13(suite, secrets)
    if version not in _TLS12_FAMILY:
        return NoKeys(reason=NoKeysReason.UNSUPPORTED_VERSION,
                      detail=f"{version_name(version)} cannot be decrypted")
    aead = suite is not None and suite.cipher.is_aead
    if suite is None or suite.tls13 or (aead and version != ProtocolVersion.TLSv1_2):
        return _unsupported_suite(cipher_suite, version)
    if secrets.master_secret is None:
        return NoKeys(reason=NoKeysReason.MISSING_SECRETS,
                      detail="the key log has no CLIENT_RANDOM master secret for this "
                             f"{version_name(version)} connection")
    block = key_block(
        prf_hash=suite.hash_name if version == ProtocolVersion.TLSv1_2 else None,
        master_secret=secrets.master_secret,
        server_random=server_random,
        client_random=client_random,
        mac_length=suite.mac_length,
        key_length=suite.key_length,
        iv_length=suite.iv_length if aead or version == ProtocolVersion.TLSv1_0 else 0,
    )
    client: Decryptor
    server: Decryptor
    if aead:
        client = Tls12AeadDecryptor(suite, block.client_key, block.client_iv)
        server = Tls12AeadDecryptor(suite, block.server_key, block.server_iv)
    else:
        client = CbcDecryptor(suite, version=version, mac_key=block.client_mac,
                              key=block.client_key, iv=block.client_iv,
                              encrypt_then_mac=encrypt_then_mac)
        server = CbcDecryptor(suite, version=version, mac_key=block.server_mac,
                              key=block.server_key, iv=block.server_iv,
                              encrypt_then_mac=encrypt_then_mac)
    return SessionKeys(suite=suite, version=version,
                       client=DirectionKeys(handshake=None, application=client),
                       server=DirectionKeys(handshake=None, application=server))


def _unsupported_suite(cipher_suite: int, version: int) -> NoKeys:
    return NoKeys(reason=NoKeysReason.UNSUPPORTED_SUITE,
                  detail=f"{cipher_name(cipher_suite)} cannot be decrypted "
                         f"in {version_name(version)}")


def _tls13(suite: SuiteParams, secrets: Secrets) -> SessionKeys | NoKeys:
    size = hashlib.new(suite.hash_name).digest_size

    def decryptor(epoch: Epoch, secret: bytes | None) -> Decryptor | None:
        if secret is None or len(secret) != size:
            return None
        return Tls13Decryptor(suite, epoch, secret)

    client = DirectionKeys(
        handshake=decryptor(Epoch.HANDSHAKE, secrets.client_handshake_traffic),
        application=decryptor(Epoch.APPLICATION, secrets.client_traffic_0),
    )
    server = DirectionKeys(
        handshake=decryptor(Epoch.HANDSHAKE, secrets.server_handshake_traffic),
        application=decryptor(Epoch.APPLICATION, secrets.server_traffic_0),
    )
    if not any((client.handshake, client.application, server.handshake, server.application)):
        return NoKeys(reason=NoKeysReason.MISSING_SECRETS,
                      detail=f"the key log has no TLS 1.3 traffic secrets of {size} bytes "
                             "for this connection")
    return SessionKeys(suite=suite, version=int(ProtocolVersion.TLSv1_3), client=client,
                       server=server)

"""Facts about the server's leaf certificate, and host name matching.

What it does: reads the DER certificates of a Certificate message (RFC 8446 §4.4.2,
RFC 5246 §7.4.2) with ``cryptography`` and reports what troubleshooting needs about the
leaf: names, validity, key, signature hash, CA flag (RFC 5280 §4.1, §4.2.1.6, §4.2.1.9);
the SHA-256 of every certificate in the chain; whether a host name is covered by the
certificate's names (RFC 6125 §6.4, as tightened by RFC 9525 §6.3).

What it does not do: verify signatures, build or check a chain against trust anchors, or
judge validity against a time (diagnosis does that with the capture's time).

Never raises on hostile input: DER the library rejects gives a :class:`LeafFacts` with
``error`` set; a part that fails on its own (``cryptography`` parses extensions lazily)
leaves that field None and is named in ``error``. ``cryptography`` is imported inside the
functions so that importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from cryptography import x509

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class LeafFacts:
    """What the leaf certificate says; fields that could not be read are None."""

    subject: str | None = None
    """RFC 4514 string of the subject, e.g. ``CN=api.example.com,O=Example``."""
    issuer: str | None = None
    """RFC 4514 string of the issuer."""
    common_name: str | None = None
    """The subject's most specific (last) commonName, if any."""
    sans: tuple[str, ...] = ()
    """DNS names and IP addresses of subjectAltName, as text, in certificate order;
    empty when the extension is absent or unreadable (``error`` then says so)."""
    not_before: float | None = None
    """Start of validity, seconds since the epoch (negative before 1970)."""
    not_after: float | None = None
    """End of validity, seconds since the epoch."""
    self_issued: bool | None = None
    """Subject and issuer are the same name (RFC 5280 §3.2): self-signed, or a root."""
    key_type: str | None = None
    """``RSA``, ``EC``, ``Ed25519``, ``Ed448``, ``DSA``, ... (the algorithm OID's dotted
    form for keys ``cryptography`` does not know)."""
    key_bits: int | None = None
    """Key size in bits as OpenSSL reports it (RSA modulus, EC curve size, 256 for
    Ed25519, 456 for Ed448)."""
    signature_hash: str | None = None
    """Hash of the certificate's signature: ``sha256``, ``sha1``, ``md5``, ...; None for
    hash-less schemes (Ed25519) and unknown algorithms."""
    is_ca: bool | None = None
    """basicConstraints cA (False when the extension is absent)."""
    error: str | None = None
    """Why the DER, or a part of it, could not be read; None when all went well."""


def chain_sha256(chain: Sequence[bytes]) -> list[str]:
    """Lower-case hex SHA-256 of each DER certificate, in order, parseable or not."""
    return [hashlib.sha256(der).hexdigest() for der in chain]


def describe_leaf(chain: Sequence[bytes]) -> LeafFacts | None:
    """Facts about ``chain[0]``; None for an empty chain (an empty Certificate message)."""
    if not chain:
        return None
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(chain[0])
    except Exception as exc:  # the library's boundary: any failure means "not parseable"
        return LeafFacts(error=f"certificate: {_describe(exc)}")

    problems: list[str] = []

    def read(part: str, getter: Callable[[], _T]) -> _T | None:
        try:
            return getter()
        except Exception as exc:  # lazily parsed parts fail on their own
            problems.append(f"{part}: {_describe(exc)}")
            return None

    key_type, key_bits = read("subjectPublicKeyInfo", lambda: _key_facts(cert)) or (None, None)
    return LeafFacts(
        subject=read("subject", lambda: cert.subject.rfc4514_string()),
        issuer=read("issuer", lambda: cert.issuer.rfc4514_string()),
        common_name=read("subject", lambda: _common_name(cert)),
        sans=read("subjectAltName", lambda: _sans(cert)) or (),
        not_before=read("notBefore", lambda: cert.not_valid_before_utc.timestamp()),
        not_after=read("notAfter", lambda: cert.not_valid_after_utc.timestamp()),
        self_issued=read("issuer", lambda: cert.subject == cert.issuer),
        key_type=key_type,
        key_bits=key_bits,
        signature_hash=read("signatureAlgorithm", lambda: _signature_hash(cert)),
        is_ca=read("basicConstraints", lambda: _is_ca(cert)),
        error="; ".join(dict.fromkeys(problems)) or None,
    )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _common_name(cert: x509.Certificate) -> str | None:
    from cryptography.x509.oid import NameOID

    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        return None
    value = names[-1].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _sans(cert: x509.Certificate) -> tuple[str, ...]:
    from cryptography import x509

    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    names: list[str] = []
    for general_name in extension.value:
        if isinstance(general_name, x509.DNSName):
            names.append(general_name.value)
        elif isinstance(general_name, x509.IPAddress):
            names.append(str(general_name.value))
    return tuple(names)


def _is_ca(cert: x509.Certificate) -> bool:
    from cryptography import x509

    try:
        extension = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return extension.value.ca


def _signature_hash(cert: x509.Certificate) -> str | None:
    from cryptography.exceptions import UnsupportedAlgorithm

    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    return algorithm.name if algorithm is not None else None


_FIXED_SIZE_KEYS: dict[str, tuple[str, int | None]] = {
    "Ed25519PublicKey": ("Ed25519", 256),
    "Ed448PublicKey": ("Ed448", 456),
    "X25519PublicKey": ("X25519", 253),
    "X448PublicKey": ("X448", 448),
}
"""Keys without a ``key_size``; sizes as OpenSSL's EVP_PKEY_get_bits reports them."""


def _key_facts(cert: x509.Certificate) -> tuple[str, int | None]:
    """Key type and size; the algorithm OID when ``cryptography`` cannot load the key."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

    try:
        key = cert.public_key()
    except UnsupportedAlgorithm:
        return cert.public_key_algorithm_oid.dotted_string, None
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    class_name = type(key).__name__
    return _FIXED_SIZE_KEYS.get(class_name, (class_name.removesuffix("PublicKey"), None))


def name_matches(host: str, sans: Sequence[str], cn: str | None) -> bool:
    """Whether ``host`` is covered by the certificate's names (RFC 6125 §6.4, RFC 9525).

    Case-insensitive, trailing dots ignored, U-labels compared as A-labels. A wildcard is
    only a whole left-most label (``*.example.com``); it stands for exactly one non-empty
    label and needs at least two labels after it. IP addresses (host or SAN) compare as
    addresses and never match a DNS name or a wildcard. The subject CN is consulted only
    when there are no DNS/IP SANs at all.
    """
    host_ip = _ip(host.strip().strip("[]"))
    target = None if host_ip is not None else _normalise(host)
    if host_ip is None and (target is None or "*" in target):
        return False
    presented = [name for name in sans if name]
    if not presented and cn:
        presented = [cn]
    for name in presented:
        name_ip = _ip(name.strip())
        if host_ip is not None or name_ip is not None:
            if host_ip is not None and host_ip == name_ip:
                return True
            continue
        pattern = _normalise(name)
        if pattern is not None and target is not None and _dns_match(pattern, target):
            return True
    return False


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _normalise(name: str) -> str | None:
    """Lower-case A-label form without the trailing dot; None if it is not a host name."""
    name = name.strip().rstrip(".").lower()
    if not name or ".." in name:
        return None
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii").lower()
        except UnicodeError:
            return None
    return name


def _dns_match(pattern: str, host: str) -> bool:
    if "*" not in pattern:
        return pattern == host
    first, _, rest = pattern.partition(".")
    if first != "*" or "*" in rest or rest.count(".") < 1:
        return False  # partial (f*.example.com), non-left-most, or too broad (*.com)
    label, _, host_rest = host.partition(".")
    return bool(label) and host_rest == rest

"""JA3, JA3S and JA4 fingerprints of TLS hellos.

What it does: turns a parsed :class:`~analyzer.tls.messages.ClientHello` or
:class:`~analyzer.tls.messages.ServerHello` into the published fingerprints, exactly as
their specifications define them:

- JA3 and JA3S (salesforce/ja3 README): ``SSLVersion,Ciphers,Extensions,EllipticCurves,
  EllipticCurvePointFormats`` (JA3S: ``SSLVersion,Cipher,Extensions``), decimal values
  joined by ``-``, GREASE values (RFC 8701) removed, and the MD5 of that string.
- JA4 (FoxIO-LLC/ja4, ``technical_details/JA4.md``), e.g.
  ``t13d1516h2_8daaf6152771_e5627efa2ab1``.

What it does not do: parse bytes (the hello parsers do), or compute JA4S and the rest of
JA4+, which are under a restrictive licence.

SSLv2-compatible ClientHellos (RFC 5246 appendix E.2) are fingerprinted from the same
fields, as Zeek's JA3/JA4 scripts do: the advertised version, the cipher specs that are
TLS cipher suites (the three-byte SSLv2-only specs are not kept by the parser, Zeek lists
them) and no extensions. Wireshark, Suricata and salesforce's ja3.py compute nothing for
such a hello; callers that want to match them can leave the fingerprint out when
``ClientHello.sslv2`` is set.

DTLS ClientHellos (RFC 6347 §4.2.1) are fingerprinted from the same fields: JA3's version
is the hello's (65277 for DTLS 1.2, 65279 for DTLS 1.0) and the cookie is no part of it,
as Wireshark computes ``dtls.handshake.ja3_full`` (checked against tshark on real
captures) and as Zeek's JA3 script does from its ``ssl_client_hello`` event, which DTLS
raises too. JA4 takes ``d`` as its first character and ``d1``/``d2``/``d3`` as version
(JA4.md, "TLS and DTLS Version"). So the two ClientHellos around a HelloVerifyRequest
have one fingerprint, like the two around a HelloRetryRequest. Where the references
part: JA4.md has no code for OpenConnect's pre-standard 0x0100, which gets ``00`` as any
unlisted version does, and Wireshark 4.0 names no JA4 at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from analyzer.tls.enums import ExtensionType, is_grease
from analyzer.tls.messages import ClientHello, ServerHello

_JA4_VERSIONS: dict[int, str] = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}
"""JA4.md, "TLS and DTLS Version"; anything else is ``00``."""

_IN_PART_A = frozenset(
    {ExtensionType.server_name, ExtensionType.application_layer_protocol_negotiation}
)
"""JA4.md: SNI and ALPN are already in the first part, so the extension hash leaves them out."""

_EMPTY_HASH = "000000000000"
"""JA4.md: an empty list is shown as twelve zeros, not as the hash of nothing."""


def _without_grease(values: Iterable[int]) -> list[int]:
    return [value for value in values if not is_grease(value)]


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("ascii"), usedforsecurity=False).hexdigest()


def _decimal(values: Iterable[int]) -> str:
    return "-".join(str(value) for value in values)


def ja3(ch: ClientHello) -> tuple[str, str]:
    """The JA3 string of a ClientHello and its MD5 (hex).

    ``771,4865-4866-...,0-23-65281-...,29-23-24,0``: legacy version, cipher suites,
    extension types in wire order, supported groups, EC point formats; GREASE removed
    from every list. Missing lists stay empty between their commas.
    """
    text = ",".join(
        (
            str(ch.legacy_version),
            _decimal(_without_grease(ch.cipher_suites)),
            _decimal(_without_grease(ext.type for ext in ch.extensions)),
            _decimal(_without_grease(ch.supported_groups)),
            _decimal(ch.ec_point_formats),
        )
    )
    return text, _md5(text)


def ja3s(sh: ServerHello) -> tuple[str, str]:
    """The JA3S string of a ServerHello and its MD5 (hex).

    ``771,49199,65281-0-11-16-23``: legacy version, chosen suite, extension types in wire
    order (GREASE removed).
    """
    text = ",".join(
        (
            str(sh.legacy_version),
            str(sh.cipher_suite),
            _decimal(_without_grease(ext.type for ext in sh.extensions)),
        )
    )
    return text, _md5(text)


def ja4(ch: ClientHello, transport: str = "t") -> str:
    """The JA4 fingerprint of a ClientHello.

    ``transport`` is ``t`` (TLS over TCP), ``q`` (QUIC) or ``d`` (DTLS).
    """
    extension_types = _without_grease(ext.type for ext in ch.extensions)
    ciphers = _without_grease(ch.cipher_suites)
    part_a = "".join(
        (
            transport,
            _ja4_version(ch, extension_types),
            "d" if ExtensionType.server_name in extension_types else "i",
            f"{min(len(ciphers), 99):02d}",
            f"{min(len(extension_types), 99):02d}",
            _ja4_alpn(ch.alpn[0] if ch.alpn else b""),
        )
    )
    part_b = _sha256_12(",".join(f"{code:04x}" for code in sorted(ciphers)))
    hashed_extensions = sorted(code for code in extension_types if code not in _IN_PART_A)
    signature_algorithms = _without_grease(ch.signature_algorithms)
    extensions_text = ",".join(f"{code:04x}" for code in hashed_extensions)
    if signature_algorithms:
        # JA4.md: with no signature algorithms the string ends without an underscore.
        extensions_text += "_" + ",".join(f"{code:04x}" for code in signature_algorithms)
    part_c = _sha256_12(extensions_text)
    return f"{part_a}_{part_b}_{part_c}"


def _ja4_version(ch: ClientHello, extension_types: list[int]) -> str:
    """Highest non-GREASE supported_versions value if the extension is there, else the
    legacy version (the record-layer version is never used)."""
    if ExtensionType.supported_versions in extension_types:
        offered = _without_grease(ch.supported_versions)
        return _JA4_VERSIONS.get(max(offered), "00") if offered else "00"
    return _JA4_VERSIONS.get(ch.legacy_version, "00")


def _is_ascii_alnum(byte: int) -> bool:
    return 0x30 <= byte <= 0x39 or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


def _ja4_alpn(first: bytes) -> str:
    """First and last character of the first ALPN value; ``00`` when there is none or it
    is empty; a single character counts as both. When either end is not an ASCII letter or
    digit, the first and last characters of the value's hex are used instead."""
    if not first:
        return "00"
    head, tail = first[0], first[-1]
    if _is_ascii_alnum(head) and _is_ascii_alnum(tail):
        return chr(head) + chr(tail)
    as_hex = first.hex()
    return as_hex[0] + as_hex[-1]


def _sha256_12(text: str) -> str:
    if not text:
        return _EMPTY_HASH
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12]


_CLIENT_CACHE: dict[tuple[object, ...], tuple[str, str, str]] = {}
_CLIENT_CACHE_SIZE = 4096


def client_fingerprints(ch: ClientHello, transport: str = "t") -> tuple[str, str, str]:
    """``(ja3 string, ja3, ja4)`` of a ClientHello, cached on the fields they depend on
    (the same client software sends the same hello shape on every connection).
    ``transport`` is JA4's first character: ``t`` (TCP), ``q`` (QUIC), ``d`` (DTLS)."""
    key = (
        transport,
        ch.legacy_version,
        ch.cipher_suites,
        tuple(ext.type for ext in ch.extensions),
        ch.supported_groups,
        ch.ec_point_formats,
        ch.supported_versions,
        ch.signature_algorithms,
        ch.alpn[:1],
    )
    found = _CLIENT_CACHE.get(key)
    if found is None:
        if len(_CLIENT_CACHE) >= _CLIENT_CACHE_SIZE:
            _CLIENT_CACHE.clear()
        text, digest = ja3(ch)
        found = _CLIENT_CACHE[key] = (text, digest, ja4(ch, transport))
    return found

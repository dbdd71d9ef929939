"""Warnings: problems worth knowing even when the handshake succeeded (SPEC §3).

One catalogue of codes; each record lists the ones that apply, established or not.
"""

from __future__ import annotations

from typing import Final

from analyzer.engine.record import HandshakeRecord
from analyzer.limits import EXPIRY_WARNING_DAYS
from analyzer.tls.names import is_weak_cipher

DEPRECATED_VERSIONS: Final = frozenset({"SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"})
MIN_RSA_BITS: Final = 2048
WEAK_HASHES: Final = frozenset({"sha1", "md5"})

CATALOGUE: Final = {
    "deprecated_version": "SSLv2, SSLv3, TLS 1.0 or TLS 1.1 was negotiated",
    "weak_cipher": "a NULL, export, anonymous, RC4, DES/3DES or MD5 cipher suite was chosen",
    "short_rsa_key": f"the leaf certificate has an RSA key under {MIN_RSA_BITS} bits",
    "sha1_signature": "the leaf certificate is signed with SHA-1 (or MD5)",
    "cert_expiring_soon": f"the leaf certificate expires within {EXPIRY_WARNING_DAYS} days "
    "of the capture",
    "no_sni": "the ClientHello carried no server_name",
    "self_signed": "the leaf certificate is self-signed",
}


def warnings_for(r: HandshakeRecord, cert_status: str | None) -> list[str]:
    out: list[str] = []
    if r.version in DEPRECATED_VERSIONS:
        out.append("deprecated_version")
    if r.cipher is not None and is_weak_cipher(r.cipher):
        out.append("weak_cipher")
    if r.cert_key and r.cert_key.startswith("RSA-"):
        bits = r.cert_key.removeprefix("RSA-")
        if bits.isdigit() and int(bits) < MIN_RSA_BITS:
            out.append("short_rsa_key")
    if r.cert_signature_hash in WEAK_HASHES:
        out.append("sha1_signature")
    if r.cert_not_after is not None and 0 <= r.cert_not_after - r.ts < EXPIRY_WARNING_DAYS * 86400:
        out.append("cert_expiring_soon")
    if r.offered_versions and not r.sni:
        out.append("no_sni")
    if cert_status == "self_signed":
        out.append("self_signed")
    return out

"""Warnings: problems worth knowing even when the handshake succeeded (SPEC §3).

One catalogue of codes; each record lists the ones that apply, established or not.
"""

from __future__ import annotations

from typing import Final

from analyzer.limits import EXPIRY_WARNING_DAYS
from analyzer.record import HandshakeRecord
from analyzer.tls.names import is_weak_cipher

DEPRECATED_VERSIONS: Final = frozenset(
    {"SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "DTLSv0.9", "DTLSv1.0"}  # RFC 8996
)
MIN_RSA_BITS: Final = 2048
WEAK_HASHES: Final = frozenset({"sha1", "md5"})

CATALOGUE: Final = {
    "deprecated_version": "SSLv2, SSLv3, TLS 1.0, TLS 1.1 or DTLS 1.0 was negotiated",
    "weak_cipher": "a NULL, export, anonymous, RC4, DES/3DES or MD5 cipher suite was chosen",
    "short_rsa_key": f"the leaf certificate has an RSA key under {MIN_RSA_BITS} bits",
    "sha1_signature": "the leaf certificate is signed with SHA-1 (or MD5)",
    "cert_expiring_soon": f"the leaf certificate expires within {EXPIRY_WARNING_DAYS} days "
    "of the capture",
    "no_sni": "the ClientHello carried no server_name",
    "self_signed": "the leaf certificate is self-signed",
    "no_forward_secrecy": "the cipher suite has a static RSA or (EC)DH key exchange: a "
    "stolen server key decrypts recorded traffic",
    "quic_fallback": "the client fell back to TCP after a QUIC attempt to the same server "
    "failed or got no answer (on both records; set with the cross-connection evidence)",
    "cert_problem_ignored": "the handshake was established although the certificate is "
    "expired, not yet valid or does not cover the SNI: the client does not check it "
    "(curl -k, verification off)",
    "chain_not_verifiable": "the server's chain does not verify against this analysis's "
    "trust store, but its client completed the handshake with it: the client trusts a CA "
    "the analysis was not given (a private PKI, an inspecting proxy); give --ca-bundle to "
    "check the chain",
}

_STATIC_KEY_EXCHANGE: Final = ("TLS_RSA_", "TLS_ECDH_", "TLS_DH_")
EVERY_CLIENT_SEES: Final = frozenset({"expired", "not_yet_valid", "hostname_mismatch"})
"""Certificate problems any client sees, whatever CAs it (or this analysis) trusts (SPEC §3
``cert_status`` lists them first)."""
TRUST_PROBLEMS: Final = frozenset({"self_signed", "incomplete_chain", "untrusted"})
"""Certificate problems that depend on whose trust store is asked."""


def short_rsa_bits(r: HandshakeRecord) -> int | None:
    """The leaf's RSA key size when it is under :data:`MIN_RSA_BITS`, else None."""
    bits = (r.cert_key or "").removeprefix("RSA-")
    if r.cert_key and r.cert_key.startswith("RSA-") and bits.isdigit():
        return int(bits) if int(bits) < MIN_RSA_BITS else None
    return None


def warnings_for(r: HandshakeRecord, cert_status: str | None, outcome: str) -> list[str]:
    out: list[str] = []
    if r.version in DEPRECATED_VERSIONS:
        out.append("deprecated_version")
    if r.cipher is not None and is_weak_cipher(r.cipher):
        out.append("weak_cipher")
    if short_rsa_bits(r) is not None:
        out.append("short_rsa_key")
    if r.cert_signature_hash in WEAK_HASHES:
        out.append("sha1_signature")
    if r.cert_not_after is not None and 0 <= r.cert_not_after - r.ts < EXPIRY_WARNING_DAYS * 86400:
        out.append("cert_expiring_soon")
    if r.offered_versions and not r.sni:
        out.append("no_sni")
    if cert_status == "self_signed":
        out.append("self_signed")
    if r.cipher is not None and r.cipher.startswith(_STATIC_KEY_EXCHANGE):
        out.append("no_forward_secrecy")
    # self-signed has its own warning
    if outcome == "established" and cert_status in EVERY_CLIENT_SEES:
        out.append("cert_problem_ignored")
    return out

"""Certificate status at capture time: ``cert_status`` (SPEC §3).

Dates, self-signature, chain completeness and host name are judged from the certificates
themselves; trust is decided by building a path from the leaf through the certificates the
server sent to an anchor of the trust store, checking each signature with
``cryptography`` (``verify_directly_issued_by``). The trust store is certifi's by default,
so results do not depend on the machine, plus any ``--ca-bundle`` file. Results are cached
by chain (and by the dates separately), so a million connections to one server cost one
path building.

This module reads finished records only.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from analyzer.record import HandshakeRecord

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.hashes import HashAlgorithm
    from cryptography.x509 import Certificate

MAX_PATH = 8
"""Certificates in a path from leaf to anchor; real chains have 2 to 4."""

INTERCEPTION_HINTS = (
    "proxy",
    "inspection",
    "intercept",
    "squid",
    "mitm",
    "zscaler",
    "fortinet",
    "fortigate",
    "bluecoat",
    "blue coat",
    "palo alto",
    "netskope",
    "forcepoint",
    "sophos",
    "charles",
    "fiddler",
    "kaspersky",
    "avast",
    "eset ssl",
    "untangle",
)
"""Words in an issuer name that mark a TLS-inspecting proxy or security product."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Trust:
    """How the chain the server sent relates to the trust store."""

    trusted: bool
    """A path leads from the leaf to a trust anchor with valid signatures."""
    incomplete: bool
    """The path breaks because an issuer was neither sent nor in the store, and the
    certificate it breaks at is not itself a root."""
    self_signed: bool
    """The leaf is its own issuer (name and signature)."""
    interception: bool
    """The untrusted issuer looks like a TLS-inspecting proxy."""
    broken_signature: bool
    """An issuer was found by name but its signature does not verify."""
    issuer: str | None
    """The name where trust broke (the untrusted or missing issuer)."""


@functools.cache
def _store(ca_bundle: str | None) -> tuple[dict[bytes, list[Certificate]], frozenset[bytes]]:
    """Trust anchors by subject (DER of the name), and their fingerprints."""
    import certifi
    from cryptography import x509

    bundles = [certifi.where(), *([ca_bundle] if ca_bundle else [])]
    pems = []
    for name in bundles:
        with open(name, "rb") as f:
            pems.append(f.read())
    by_subject: dict[bytes, list[Certificate]] = {}
    fingerprints: set[bytes] = set()
    for pem in pems:
        with warnings.catch_warnings():
            # certifi's bundle holds an old root with a negative serial number.
            warnings.simplefilter("ignore")
            certs = x509.load_pem_x509_certificates(pem)
        for cert in certs:
            by_subject.setdefault(cert.subject.public_bytes(), []).append(cert)
            fingerprints.add(cert.fingerprint(_sha256()))
    return by_subject, frozenset(fingerprints)


def _sha256() -> HashAlgorithm:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


def load_ca_bundle(ca_bundle: str | None) -> None:
    """Load the trust store now (raises OSError/ValueError for a bad ``--ca-bundle``)."""
    _store(ca_bundle)


def _issued_by(cert: Certificate, issuer: Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:
        return False
    return True


def _trusted(self_signed: bool) -> Trust:
    return Trust(
        trusted=True,
        incomplete=False,
        self_signed=self_signed,
        interception=False,
        broken_signature=False,
        issuer=None,
    )


@functools.lru_cache(maxsize=4096)
def chain_trust(chain: tuple[bytes, ...], ca_bundle: str | None) -> Trust | None:
    """Trust facts for a DER chain (leaf first), or None if the leaf cannot be parsed."""
    from cryptography import x509

    certs: list[Certificate] = []
    for der in chain:
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except Exception:
            if not certs:
                return None
    anchors, anchor_prints = _store(ca_bundle)
    sent: dict[bytes, list[Certificate]] = {}
    for c in certs[1:]:
        sent.setdefault(c.subject.public_bytes(), []).append(c)
    leaf = certs[0]
    self_signed = leaf.issuer == leaf.subject and _issued_by(leaf, leaf)
    current = leaf
    broken = False
    for _ in range(MAX_PATH):
        if current.fingerprint(_sha256()) in anchor_prints:
            return _trusted(self_signed)
        issuer_name = current.issuer.public_bytes()
        trusted_issuers = [a for a in anchors.get(issuer_name, []) if _issued_by(current, a)]
        if trusted_issuers:
            return _trusted(self_signed)
        if anchors.get(issuer_name):
            broken = True
        candidates = [c for c in sent.get(issuer_name, []) if c is not current]
        nxt = next((c for c in candidates if _issued_by(current, c)), None)
        if nxt is None:
            broken = broken or bool(candidates)
            break
        if nxt.issuer == nxt.subject:
            current = nxt
            break
        current = nxt
    root_reached = current.issuer == current.subject
    issuer_text = current.issuer.rfc4514_string()
    # Incomplete: the leaf's own issuer is missing. A chain that breaks above a CA the
    # server did send ends at a root the store does not know: untrusted.
    return Trust(
        trusted=False,
        incomplete=current is leaf and not root_reached and not broken,
        self_signed=self_signed,
        interception=any(h in issuer_text.lower() for h in INTERCEPTION_HINTS),
        broken_signature=broken,
        issuer=issuer_text,
    )


def cert_problems(record: HandshakeRecord, *, ca_bundle: str | None, verify: bool) -> list[str]:
    """Every SPEC §3 ``cert_status`` problem the leaf has, in the spec's order (expired,
    not_yet_valid, hostname_mismatch: problems every client sees; then self_signed,
    incomplete_chain, untrusted: those that depend on whose trust store is asked); empty
    when the certificate is fine or was not visible."""
    if not record.cert_chain:
        return []
    problems = []
    at = record.ts
    if record.cert_not_after is not None and at > record.cert_not_after:
        problems.append("expired")
    if record.cert_not_before is not None and at < record.cert_not_before:
        problems.append("not_yet_valid")
    if record.sni_matches_cert is False:
        problems.append("hostname_mismatch")
    if verify:
        trust = chain_trust(record.cert_chain, ca_bundle)
        if trust is not None and not trust.trusted:
            if trust.self_signed:
                problems.append("self_signed")
            elif trust.incomplete and not trust.interception:
                problems.append("incomplete_chain")
            else:
                problems.append("untrusted")
    return problems


def cert_status(problems: list[str], visible: bool) -> str | None:
    """SPEC §3 ``cert_status``: the first problem, ``ok``, or None when not visible."""
    if not visible:
        return None
    return problems[0] if problems else "ok"

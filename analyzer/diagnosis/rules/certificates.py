"""The certificate verdicts: a failure named from the certificate's own status (dates,
host name, trust) and from what a client's alert says about it."""

from __future__ import annotations

from analyzer.diagnosis import remedies as rm
from analyzer.diagnosis.verdict import Verdict
from analyzer.diagnosis.warnings import MIN_RSA_BITS, WEAK_HASHES, short_rsa_bits
from analyzer.diagnosis.wording import alert_text, server, when
from analyzer.record import AlertInfo, HandshakeRecord


def certificate_verdict(
    r: HandshakeRecord,
    status: str | None,
    *,
    inferred: bool,
    alert: AlertInfo | None = None,
    after_handshake: bool = False,
) -> Verdict | None:
    """A certificate failure named from the certificate's own status, when it is bad."""
    if status in (None, "ok"):
        return None
    said = f"; the {alert_text(alert)}" if alert is not None else ""
    then = " after the handshake, before sending data" if after_handshake else ""
    closing = f"; the client closed{then}" if alert is None or after_handshake else ""
    leaf = f"the certificate of {server(r)} (subject {r.cert_subject}, issuer {r.cert_issuer})"
    if status in ("expired", "not_yet_valid"):
        word = "expired on" if status == "expired" else "is not valid before"
        date = r.cert_not_after if status == "expired" else r.cert_not_before
        return Verdict(
            outcome="failed",
            failure="certificate_expired",
            side="client",
            inferred=inferred,
            reason=(
                f"{leaf} {word} {when(date)}, and the connection was made on "
                f"{when(r.ts)}{said}{closing}"
            ),
            remedy=(
                "Renew or reinstall the server's certificate (and check the clocks of "
                f"client and server); confirm the dates: {rm.show_certs(r)}"
            ),
        )
    if status == "hostname_mismatch":
        return Verdict(
            outcome="failed",
            failure="sni_mismatch",
            side="client",
            inferred=inferred,
            reason=(
                f"the client asked for {r.sni!r} but {leaf} covers "
                f"{', '.join(r.cert_sans) or 'no DNS name'}{said}{closing}"
            ),
            remedy=(
                f"Serve a certificate whose SANs include {r.sni} (or connect with a name the "
                f"certificate covers); confirm: {rm.curl(r)}"
            ),
        )
    detail = {
        "self_signed": "is self-signed",
        "incomplete_chain": (
            f"was sent without the certificate that issued it ({r.cert_issuer}), which the "
            "trust store does not hold either: the server omits an intermediate (the chain "
            "is incomplete), or the issuer is a private CA the client lacks"
        ),
        "untrusted": f"chains to an issuer the client does not trust ({r.cert_issuer})",
    }[status]
    if status == "untrusted" and any(
        h in (r.cert_issuer or "").lower() for h in ("proxy", "inspection", "intercept")
    ):
        detail += ", which looks like a TLS-inspecting proxy"
    fix = {
        "self_signed": "Install a certificate issued by a CA the clients trust, or add this "
        "certificate to the clients' trust store",
        "incomplete_chain": "Configure the server to send the full chain (nginx: "
        "ssl_certificate with the leaf followed by the intermediates); if the issuer is a "
        "private CA, install it in the client's trust store",
        "untrusted": "Add the issuing CA to the clients' trust store (for an inspecting "
        "proxy: its CA), or use a certificate from a CA the clients trust",
    }[status]
    return Verdict(
        outcome="failed",
        failure="certificate_untrusted",
        side="client",
        inferred=inferred,
        reason=f"{leaf} {detail}{said}{closing}",
        remedy=f"{fix}; confirm: {rm.show_certs(r)}",
    )


_ALERT_NAMES_PROBLEMS = {
    "certificate_expired": ("expired", "not_yet_valid"),
    # OpenSSL's bad_certificate: not yet valid, host name mismatch (checked in the
    # handshake), key or digest too weak.
    "bad_certificate": ("not_yet_valid", "hostname_mismatch"),
    "unknown_ca": ("self_signed", "incomplete_chain", "untrusted"),
}
"""The certificate problems each client alert stands for, most likely first."""


def status_for_alert(desc: str | None, problems: list[str]) -> str | None:
    """Of the certificate's problems, the one the client's alert names (None if none)."""
    for problem in _ALERT_NAMES_PROBLEMS.get(desc or "", ()):
        if problem in problems:
            return problem
    return None


def weak_key_detail(r: HandshakeRecord) -> str | None:
    """What OpenSSL's default security level refuses in this leaf, if anything."""
    weak = []
    if (bits := short_rsa_bits(r)) is not None:
        weak.append(f"has a {bits}-bit RSA key")
    if r.cert_signature_hash in WEAK_HASHES:
        weak.append(f"is signed with {r.cert_signature_hash.upper()}")
    if not weak:
        return None
    return (
        f"{' and '.join(weak)}, which OpenSSL's default security level ({MIN_RSA_BITS}-bit "
        "RSA, no SHA-1) refuses"
    )


def weak_key_verdict(
    r: HandshakeRecord, said: str, leaf: HandshakeRecord | None = None
) -> Verdict | None:
    """``certificate_invalid`` when the leaf (``leaf``: where it is visible, another
    connection of the same server) has what OpenSSL's default security level refuses."""
    seen = leaf or r
    weak = weak_key_detail(seen)
    if weak is None:
        return None
    return Verdict(
        outcome="failed",
        failure="certificate_invalid",
        side="client",
        reason=f"{said}: the certificate of {server(r)} ({seen.cert_subject}) {weak}",
        remedy=(
            "Reissue the certificate with an RSA key of 2048 bits or more (or an EC "
            f"key) and a SHA-256 signature; confirm: {rm.show_cert_details(r)}"
        ),
    )

"""Rules on a plaintext alert: what the alert that ended the handshake says, read with the
rest of the record (who sent it, at which stage, what the client offered, what the
certificate shows).

:func:`rule_alert` tries :data:`ALERT_STEPS` in order, one named step per kind of alert;
the first that recognises the alert decides.
"""

from __future__ import annotations

from collections.abc import Callable

from analyzer.diagnosis import remedies as rm
from analyzer.diagnosis.readings import OLD_VERSIONS_MAX, VERSION_RANK, rank
from analyzer.diagnosis.rules.certificates import (
    certificate_verdict,
    status_for_alert,
    weak_key_verdict,
)
from analyzer.diagnosis.rules.negotiation import broad_tls12_offer, cipher_verdict, version_remedy
from analyzer.diagnosis.verdict import Facts, Verdict, failed
from analyzer.diagnosis.wording import (
    after_ch,
    alert_text,
    groups_text,
    offered_ciphers_text,
    server,
    versions_text,
)
from analyzer.record import AlertInfo, HandshakeRecord

PROTOCOL_ERRORS = {
    "decode_error",
    "illegal_parameter",
    "unexpected_message",
    "record_overflow",
    "decompression_failure",
    "bad_record_mac",
    "decryption_failed",
    "missing_extension",
    "unsupported_extension",
}
CERT_ALERTS = {
    "bad_certificate",
    "unsupported_certificate",
    "certificate_revoked",
    "certificate_expired",
    "certificate_unknown",
    "unknown_ca",
    "decrypt_error",
    "access_denied",
}
CLIENT_CERT_REFUSALS = {
    "unknown_ca": "it does not trust the issuer of the client's certificate",
    "unsupported_certificate": "the client's certificate is not usable for client "
    "authentication (its type, key usage or extendedKeyUsage without clientAuth)",
    "certificate_expired": "the client's certificate is expired or not yet valid",
    "certificate_revoked": "the client's certificate is revoked",
    "bad_certificate": "the client's certificate failed the server's checks",
    "certificate_unknown": "the client's certificate failed the server's checks",
    "access_denied": "the client's certificate is valid but not allowed in",
    "decrypt_error": "the client's CertificateVerify signature did not check out",
}
"""What a server's alert says about the client certificate it was sent."""

AlertStep = Callable[[HandshakeRecord, Facts, AlertInfo], Verdict | None]


def said(r: HandshakeRecord, a: AlertInfo) -> str:
    """``server sent fatal handshake_failure 0.3 ms after the ClientHello``."""
    return alert_text(a) + after_ch(r, a.ts)


def best_offered(r: HandshakeRecord) -> int:
    return max((rank(v) for v in r.offered_versions), default=-1)


def refused_hello(r: HandshakeRecord, a: AlertInfo) -> bool:
    """The server refused the ClientHello outright (no ServerHello) with a generic alert."""
    return (
        a.description in ("handshake_failure", "internal_error", "insufficient_security")
        and a.sender == "server"
        and r.version is None
    )


def version_refused(r: HandshakeRecord, f: Facts, a: AlertInfo) -> Verdict | None:
    """``protocol_version``, or a hello offering only old versions refused outright."""
    old_only = 0 <= best_offered(r) <= OLD_VERSIONS_MAX
    if a.description == "protocol_version" or (refused_hello(r, a) and old_only):
        offered = versions_text(r.offered_versions)
        return failed(
            "version_mismatch",
            a.sender,
            f"the client offered {offered} to {server(r)}; the {said(r, a)}",
            version_remedy(r),
        )
    return None


def fallback_refused(r: HandshakeRecord, f: Facts, a: AlertInfo) -> Verdict | None:
    """``inappropriate_fallback`` (RFC 7507): the client retried with a lower version and
    TLS_FALLBACK_SCSV, and the server supports a higher one, so it refused the downgrade.
    There is a common version: the first attempt failed for another reason."""
    if a.description != "inappropriate_fallback":
        return None
    return failed(
        "other_alert",
        a.sender,
        f"the client offered {versions_text(r.offered_versions)} to {server(r)} as a "
        f"fallback (TLS_FALLBACK_SCSV); the {said(r, a)}: the server supports a higher "
        "version, so it refused the downgrade; the client's earlier attempt at a higher "
        "version failed for another reason",
        "Find why the client's first attempt failed (its previous connection to this "
        "server, or a middlebox dropping modern hellos) instead of falling back; confirm "
        f"what the server accepts: {rm.s_client(r, '-tls1_2')}",
    )


def tls13_only_server(r: HandshakeRecord, f: Facts, a: AlertInfo) -> Verdict | None:
    """A broad TLS 1.2-only hello refused with handshake_failure: the server wants 1.3."""
    if not (
        refused_hello(r, a)
        and a.description == "handshake_failure"
        and best_offered(r) == VERSION_RANK["TLSv1.2"]
        and broad_tls12_offer(r)
    ):
        return None
    return failed(
        "version_mismatch",
        "server",
        f"the client offered only {versions_text(r.offered_versions)} to {server(r)}, with "
        f"{offered_ciphers_text(r)}, ECDHE AES-GCM for RSA and ECDSA certificates "
        f"among them, and {groups_text(r)}; the {said(r, a)} with no ServerHello: a server "
        "with TLS 1.2 enabled accepts such an offer, so this one most likely accepts "
        "only TLS 1.3 (inferred: the alert does not say which)",
        version_remedy(r),
        inferred=True,
    )


def client_rejects_certificate(r: HandshakeRecord, f: Facts, a: AlertInfo) -> Verdict | None:
    """A client's certificate alert: named from the certificate's status where it is
    visible, else from what the alert stands for."""
    desc = a.description
    if desc not in CERT_ALERTS or a.sender != "client":
        return None
    text = said(r, a)
    status = status_for_alert(desc, f.cert_problems)
    if status is None and desc == "bad_certificate":
        # OpenSSL's bad_certificate names the host name, the dates or a weak key, never
        # trust (unknown_ca does): a weak key explains it before any trust problem.
        weak = weak_key_verdict(r, f"the {text}")
        if weak is not None:
            return weak
    by_status = certificate_verdict(r, status or f.cert_status, inferred=False, alert=a)
    if by_status is not None:
        return by_status
    if desc == "certificate_expired":
        return failed(
            "certificate_expired",
            "client",
            f"the {text}: the server certificate of {server(r)} is expired or not yet valid"
            + ("" if r.cert_chain_sha256 else " (the certificate is encrypted in TLS 1.3)"),
            f"Renew the server's certificate; confirm the dates: {rm.show_certs(r)}",
        )
    if desc == "bad_certificate" and not r.cert_chain_sha256:
        # OpenSSL clients send bad_certificate for a host name mismatch checked in the
        # handshake, a certificate not yet valid, or a key or digest too weak; the
        # certificate is encrypted, so SPEC §4's reading of the alert stands.
        asked = f"{r.sni!r}" if r.sni else "the address it connected to (no SNI)"
        return failed(
            "sni_mismatch",
            "client",
            f"the {text}; the certificate of {server(r)} is encrypted (TLS 1.3): "
            "OpenSSL-based clients (Python, s_client and others) send this "
            f"alert when the certificate does not cover the name they asked for "
            f"({asked}), and less often for a certificate not yet valid or a key or "
            "signature too weak; inferred: the host name",
            f"Check that the certificate covers {asked} (then its dates and key): "
            f"{rm.show_cert_details(r)}",
            inferred=True,
        )
    if desc in ("unknown_ca", "certificate_unknown", "certificate_revoked", "access_denied"):
        issuer = f" (issuer {r.cert_issuer})" if r.cert_issuer else ""
        return failed(
            "certificate_untrusted",
            "client",
            f"the {text}: it does not trust the certificate of {server(r)}{issuer}",
            "Install a certificate from a CA the client trusts and send the full "
            f"chain, or add the CA to the client's trust store; confirm: {rm.show_certs(r)}",
        )
    weak = weak_key_verdict(r, f"the {text}")
    if weak is not None:
        return weak
    return failed(
        "certificate_invalid",
        "client",
        f"the {text}: the certificate of {server(r)} is unusable (malformed, bad "
        "signature, wrong key usage or unsupported algorithm)",
        f"Check the certificate's key usage and algorithms: {rm.show_cert_details(r)}",
    )


def unrecognized_name(r: HandshakeRecord, f: Facts, a: AlertInfo) -> Verdict | None:
    """``unrecognized_name``: no SNI where the server needs one, or a name it does not host."""
    if a.description != "unrecognized_name":
        return None
    if not r.sni:
        return failed(
            "sni_mismatch",
            a.sender,
            f"the client sent no server name (SNI) to {rm.target(r)}; the {said(r, a)}: the "
            "server needs one to choose a certificate",
            "Make the client send SNI (connect by host name, not IP; or set the server "
            "name explicitly), or give the server a default certificate; confirm: "
            f"{rm.s_client(r, '-noservername')}",
        )
    return failed(
        "sni_mismatch",
        a.sender,
        f"the client asked {rm.target(r)} for {r.sni!r}; the {said(r, a)}: the server does "
        "not host that name",
        f"Add a server block for {r.sni} on the server (nginx: server_name), or use a "
        f"name it hosts; confirm: {rm.s_client(r)}",
    )


def client_certificate_refused(r: HandshakeRecord, f: Facts, a: AlertInfo) -> Verdict | None:
    """The server wanted a client certificate it did not get or did not accept."""
    desc = a.description
    if not (
        desc == "certificate_required"
        or (
            a.sender == "server"
            and r.client_certificates is not None
            and (
                desc == "handshake_failure"
                or desc in CERT_ALERTS
                # GnuTLS answers an empty Certificate with decode_error
                or (r.client_certificates == 0 and desc in PROTOCOL_ERRORS)
            )
        )
    ):
        return None
    what = (
        "an empty client Certificate"
        if r.client_certificates == 0
        else "the client's certificate"
        if r.client_certificates
        else "its encrypted flight"
    )
    meaning = CLIENT_CERT_REFUSALS.get(desc or "") if r.client_certificates else None
    confirm = rm.s_client(r, "-cert", "client.pem", "-key", "client.key")
    return failed(
        "client_certificate_required",
        "server",
        f"{server(r)} asked for a client certificate and, after {what}, the {said(r, a)}"
        + (f": {meaning}" if meaning else ""),
        "Give the client a certificate the server accepts: issued by a CA the server "
        "trusts for clients, with extendedKeyUsage clientAuth, within its dates; "
        "inspect it: openssl x509 -in client.pem -noout -issuer -dates -ext "
        f"extendedKeyUsage; confirm: {confirm}"
        if r.client_certificates
        else "Configure the client with a certificate and key the server accepts "
        f"(or relax the server's client verification); confirm: {confirm}",
    )


def alpn_refused(r: HandshakeRecord, f: Facts, a: AlertInfo) -> Verdict | None:
    if a.description != "no_application_protocol":
        return None
    return failed(
        "alpn_mismatch",
        a.sender,
        f"the client offered ALPN {r.alpn_offered or '[]'} to {server(r)}; the {said(r, a)}",
        "Offer an application protocol the server supports (or configure the server's "
        f"ALPN list); confirm: {rm.s_client(r, '-alpn', 'h2,http/1.1')}",
    )


def cipher_refused(r: HandshakeRecord, f: Facts, a: AlertInfo) -> Verdict | None:
    if a.description in ("handshake_failure", "insufficient_security") and r.version is None:
        return cipher_verdict(r, a)
    return None


def protocol_error(r: HandshakeRecord, f: Facts, a: AlertInfo) -> Verdict | None:
    if a.description not in PROTOCOL_ERRORS:
        return None
    return failed(
        "protocol_error",
        a.sender,
        f"the {said(r, a)} at stage {r.stage} of the handshake with {server(r)}: one side "
        "sent a message the other could not accept",
        f"Update the TLS stack of the {a.sender}'s peer or look for a middlebox altering "
        f"the handshake; reproduce: {rm.s_client(r, '-msg')}",
    )


def gave_up(r: HandshakeRecord, f: Facts, a: AlertInfo) -> Verdict | None:
    """``close_notify`` or ``user_canceled`` before the end of the handshake."""
    if a.description not in ("close_notify", "user_canceled"):
        return None
    return failed(
        "handshake_aborted",
        a.sender,
        f"the {said(r, a)} at stage {r.stage}: the {a.sender} gave up on the handshake with "
        f"{server(r)}",
        f"Look at the {a.sender}'s logs for why it gave up; reproduce: {rm.s_client(r)}",
    )


def other_alert(r: HandshakeRecord, f: Facts, a: AlertInfo) -> Verdict | None:
    """Any other fatal alert (a warning after an established handshake is no failure)."""
    if a.level != "fatal" and r.established:
        return None
    return failed(
        "other_alert",
        a.sender,
        f"the {said(r, a)} at stage {r.stage} of the handshake with {server(r)}",
        f"Look at the {a.sender}'s logs for the cause; reproduce: {rm.s_client(r, '-msg')}",
    )


ALERT_STEPS: tuple[AlertStep, ...] = (
    version_refused,
    fallback_refused,
    tls13_only_server,
    client_rejects_certificate,
    unrecognized_name,
    client_certificate_refused,
    alpn_refused,
    cipher_refused,
    protocol_error,
    gave_up,
    other_alert,
)
"""The steps of :func:`rule_alert`, in order."""


def rule_alert(r: HandshakeRecord, f: Facts) -> Verdict | None:
    a = f.alert
    if a is None or a.description is None:
        return None
    for step in ALERT_STEPS:
        verdict = step(r, f, a)
        if verdict is not None:
            return verdict
    return None

"""TLS 1.3 inference: what encrypted records and their sizes say when the certificate
and the alerts are encrypted (SPEC §1, last row), and the established handshakes that a
visible reason still fails (a client that left right after the handshake, a server's
alert-sized answer to the client's flight)."""

from __future__ import annotations

from analyzer.diagnosis import remedies as rm
from analyzer.diagnosis.readings import ALERT_SIZED, client_sent_data
from analyzer.diagnosis.rules.certificates import certificate_verdict
from analyzer.diagnosis.verdict import Facts, Verdict
from analyzer.diagnosis.warnings import EVERY_CLIENT_SEES
from analyzer.diagnosis.wording import server
from analyzer.record import HandshakeRecord


def rule_established(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if not r.established:
        return None
    if not r.offered_versions and "midstream" in r.anomalies:
        return Verdict(
            outcome="incomplete",
            reason=(
                "the capture started after this connection's ClientHello; the rest of the "
                "handshake completed"
            ),
        )
    if f.alert is not None and f.alert.level == "fatal":
        return None  # a fatal alert after the handshake, read with a key log: rule_alert
    srv = r.server_encrypted_after_client_flight
    server_said = any(a.sender == "server" and a.description is not None for a in r.alerts)
    if (r.version == "TLSv1.3" and srv and all(size <= ALERT_SIZED for size in srv)
            and not server_said):  # (a key log shows what that record was)
        # The server answered the client's flight with an alert-sized record and nothing
        # else (a successful server sends tickets or data first). Who closed first is a
        # race and proves nothing.
        what = (
            "an empty client Certificate"
            if r.client_certificates == 0
            else "the client's encrypted flight"
        )
        return Verdict(
            outcome="failed",
            failure="client_certificate_required",
            side="server",
            inferred=True,
            reason=(
                f"TLS 1.3 with {server(r)}: right after {what} the server sent a "
                f"{srv[0]}-byte encrypted record (alert-sized) and nothing else before the "
                "connection closed; "
                "inferred: the server requires a client certificate or rejected the one sent"
            ),
            remedy=(
                "Configure the client with a certificate and key the server accepts; "
                f"confirm: {rm.s_client(r, '-cert', 'client.pem', '-key', 'client.key')}"
            ),
        )
    # A client alert, or only a FIN (wget) when the problem does not depend on the trust
    # store this analysis used (a private CA's probes leave like that too). The client
    # finished its handshake, so the chain's trust is not in question (the certificate
    # status has no trust problem left, see judge_certificate).
    client_left = any(a.sender == "client" for a in r.alerts) or (
        r.close_by == "client" and f.cert_status in EVERY_CLIENT_SEES
    )
    if client_left and not client_sent_data(r) and r.cert_chain_sha256:
        # The client finished the handshake and left (an alert, or only a FIN like wget)
        # without a word of data, and the certificate it saw (TLS <= 1.2) gives the
        # visible reason. Under TLS 1.3 the same
        # pattern is usually a probe with nothing to send: without a visible reason the
        # handshake stays established (SPEC §3 outcome).
        cert = certificate_verdict(r, f.cert_status, inferred=True, after_handshake=True)
        if cert is not None:
            return cert
    return Verdict(outcome="established")


def rule_tls13_inferred(r: HandshakeRecord, f: Facts) -> Verdict | None:
    sizes = r.client_encrypted_after_server_flight
    if r.established or r.version != "TLSv1.3" or not sizes or sizes[0] > ALERT_SIZED:
        return None
    return Verdict(
        outcome="failed",
        failure="certificate_untrusted",
        side="client",
        inferred=True,
        reason=(
            f"TLS 1.3 with {server(r)}: right after the server's encrypted flight the client "
            f"sent a {sizes[0]}-byte encrypted record (alert-sized) and "
            f"{'closed' if r.close_by == 'client' else 'stopped'}: the client rejected the "
            "server, most likely its certificate (inferred: TLS 1.3 encrypts the certificate "
            "and the alert)"
        ),
        remedy=(
            "Check the server's certificate chain, dates and names against the client's "
            f"trust store: {rm.show_certs(r)}; its names and key: {rm.show_cert_details(r)}"
        ),
    )


def rule_encrypted_alert(r: HandshakeRecord, f: Facts) -> Verdict | None:
    enc = [a for a in r.alerts if a.encrypted]
    if r.established or not enc or f.alert is not None:
        return None
    a = enc[0]
    return Verdict(
        outcome="failed",
        failure="other_alert",
        side=a.sender,
        inferred=True,
        reason=(
            f"the {a.sender} sent an encrypted alert at stage {r.stage} of the handshake "
            f"with {server(r)}; its content is not visible"
        ),
        remedy=f"Look at the {a.sender}'s logs; reproduce: {rm.s_client(r, '-msg')}",
    )

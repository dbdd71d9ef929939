"""Rules on how a connection ended without an alert: a client that gave up before a slow
server answered, a capture that cut the handshake (``incomplete``: nobody is blamed), a
side that closed mid-handshake (``handshake_aborted``), and the last resort."""

from __future__ import annotations

from analyzer.diagnosis import remedies as rm
from analyzer.diagnosis.readings import captured_to_end
from analyzer.diagnosis.rules.certificates import certificate_verdict
from analyzer.diagnosis.verdict import Facts, Verdict
from analyzer.diagnosis.warnings import EVERY_CLIENT_SEES
from analyzer.diagnosis.wording import after_ch, ms, mtu_hole, mtu_probe, server
from analyzer.record import HandshakeRecord

SLOW_SERVER = 0.5
"""Seconds a client waits for the ServerHello before its close reads as a timeout (client
timeouts are seconds; a browser cancelling a load leaves within milliseconds)."""


def rule_client_gave_up_first(r: HandshakeRecord, f: Facts) -> Verdict | None:
    """The client closed (FIN) before the server's first answer, which came later: after
    a wait, the server was too slow for the client's timeout; at once, the client gave up
    on its own (whatever the client's kernel did with the late answer)."""
    if r.established or r.alerts or r.close_by != "client" or r.ts_server_hello is None:
        return None
    fin = r.ts_client_fin
    if fin is None or fin >= r.ts_server_hello or r.ts_client_hello is None:
        return None
    if fin - r.ts_client_hello < SLOW_SERVER:
        return Verdict(
            outcome="failed",
            failure="handshake_aborted",
            side="client",
            reason=(
                f"the client closed (FIN){after_ch(r, fin)}, before {server(r)} answered "
                f"(its ServerHello came{after_ch(r, r.ts_server_hello)}): the client "
                "abandoned the handshake on its own (a browser cancelling a load or a "
                "preconnect, a process exiting)"
            ),
            remedy=f"Look at the client's logs for why it gave up; reproduce: {rm.s_client(r)}",
        )
    return Verdict(
        outcome="failed",
        failure="no_server_response",
        side="server",
        reason=(
            f"the client gave up{after_ch(r, fin)} and closed before {server(r)} "
            f"answered; the server's ServerHello came{after_ch(r, r.ts_server_hello)}, too "
            "late: the server (or its backend) is too slow for the client's timeout"
        ),
        remedy=(
            "Find what makes the server slow to answer the ClientHello (overload, a slow "
            "backend, DNS or OCSP lookups), or raise the client's connect timeout; time it: "
            f"time {rm.s_client(r)}"
        ),
    )


def rule_incomplete(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if r.established:
        return None
    if not r.offered_versions and "midstream" in r.anomalies:
        return Verdict(
            outcome="incomplete",
            reason="the capture started after this connection's handshake began",
        )
    if r.gap_bytes and "handshake_lost" in r.anomalies:
        return Verdict(
            outcome="incomplete",
            reason=f"the capture lost {r.gap_bytes} bytes of the handshake",
        )
    if captured_to_end(r) and r.close_by is None:
        return Verdict(
            outcome="incomplete",
            reason=(
                f"the capture ended {ms((r.capture_end or r.ts_end) - r.ts_end)} after the "
                f"last packet, at stage {r.stage}, with the handshake still going"
            ),
        )
    return None


def rule_aborted(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if r.established or r.close_by is None:
        return None
    sender = r.close_by
    if sender == "client" and not r.offered_versions and r.client_bytes == 0:
        return None  # a connect-only probe: rule_no_client_hello
    if "server_flight_lost" in r.anomalies and sender == "client":
        return Verdict(
            outcome="failed",
            failure="handshake_aborted",
            side="network",
            reason=(
                f"{server(r)} sent its handshake flight ({r.server_unacked_bytes} bytes, "
                f"{r.server_retransmits} retransmission(s)) but the client never "
                f"acknowledged it, and gave up {after_ch(r, r.ts_close).strip() or 'later'} "
                f"at stage {r.stage}: large segments are lost on the path ({mtu_hole(r)})"
            ),
            remedy=(
                "Allow ICMP 'fragmentation needed' on the path or clamp the MSS "
                "(iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS "
                f"--clamp-mss-to-pmtu); confirm: {mtu_probe(r)}"
            ),
        )
    if (
        sender == "client"
        and r.client_cert_requested
        and r.client_certificates is None
        and f.cert_status not in EVERY_CLIENT_SEES
    ):
        # A browser asked for a client certificate it has none of (or must ask the user
        # for) closes and tries again: the request, not the server's chain, ended it.
        return Verdict(
            outcome="failed",
            failure="client_certificate_required",
            side="client",
            reason=(
                f"{server(r)} asked for a client certificate (CertificateRequest) and the "
                f"client closed {after_ch(r, r.ts_close).strip() or 'then'} without sending "
                "one, with no alert: it has no certificate for this server (a browser asks "
                "the user, or gives up)"
            ),
            remedy=(
                "Give the client a certificate the server accepts (browsers: import it with "
                "its key into the certificate store), or make client certificates optional "
                "on the server (nginx ssl_verify_client optional); confirm: "
                f"{rm.s_client(r, '-cert', 'client.pem', '-key', 'client.key')}"
            ),
        )
    if sender == "client" and r.cert_chain_sha256:
        cert = certificate_verdict(r, f.cert_status, inferred=True)
        if cert is not None:
            return cert
    if r.offered_versions:
        what = f"at stage {r.stage}{after_ch(r, r.ts_close)}"
    else:
        what = "before any ClientHello"
    return Verdict(
        outcome="failed",
        failure="handshake_aborted",
        side=sender,
        reason=(
            f"the {sender} closed the connection with {server(r)} {what}, with no alert "
            f"({r.client_bytes} bytes from the client, {r.server_bytes} from the server)"
        ),
        remedy=f"Look at the {sender}'s logs for why it gave up; reproduce: {rm.s_client(r)}",
    )


def rule_fallback(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if r.close == "capture_end":
        return Verdict(
            outcome="incomplete",
            reason=f"the capture ended at stage {r.stage} with the handshake unfinished",
        )
    return Verdict(
        outcome="failed",
        failure="handshake_aborted",
        side="client",
        reason=(
            f"the handshake with {server(r)} stopped at stage {r.stage} and the connection "
            f"went idle ({ms(r.ts_end - r.ts)} after it began)"
        ),
        remedy=f"Reproduce: {rm.s_client(r)}",
    )

"""Rules on QUIC evidence: Initials nobody answered or an ICMP error refused, a server's
Version Negotiation with no common version, a CONNECTION_CLOSE (a TLS alert inside
CRYPTO_ERROR, or a transport error named with its reason phrase), and a client that closed
inside encrypted Handshake packets (inferred, as for TLS 1.3 over TCP).

A CONNECTION_CLOSE with CRYPTO_ERROR 0x01XX is TLS alert XX (RFC 9001 §4.8): the handshake
core already holds it as a fatal alert from whoever closed, so :func:`rule_quic_alert`
lets the alert rules (:mod:`.alerts`) judge it and only says that it came as a QUIC close;
an ALPN refusal gets an HTTP/3 remedy. The other rules are QUIC's own. Commands that
confirm: ``curl --http3-only`` (a curl built with HTTP/3: Debian 12's is not),
``openssl s_client -quic`` (OpenSSL 3.2 and later), ``nc -u -z`` (UDP: silence proves
nothing, a refusal does) and the firewall rule to look at.
"""

from __future__ import annotations

from dataclasses import replace

from analyzer.diagnosis import remedies as rm
from analyzer.diagnosis.readings import captured_to_end
from analyzer.diagnosis.rules.alerts import rule_alert, said
from analyzer.diagnosis.verdict import Facts, Verdict, failed
from analyzer.diagnosis.wording import ended, ms, server
from analyzer.quic.errors import TransportError, crypto_alert, error_name
from analyzer.record import HandshakeRecord

REASON_CHARS = 100
"""Characters of a CONNECTION_CLOSE reason phrase quoted in a reason."""

_ICMP_REFUSALS = frozenset({"port_unreachable", "admin_prohibited", "protocol_unreachable"})

_CLOSE_FAILURES: dict[int, str] = {
    TransportError.NO_ERROR: "handshake_aborted",
    TransportError.CONNECTION_REFUSED: "handshake_aborted",
    TransportError.APPLICATION_ERROR: "handshake_aborted",
    TransportError.INVALID_TOKEN: "handshake_aborted",
    TransportError.INTERNAL_ERROR: "other_alert",
    TransportError.VERSION_NEGOTIATION_ERROR: "version_mismatch",
}
"""Failure category of a transport error closing a handshake; any other code is a
violation of the protocol (``protocol_error``)."""

_CLOSE_MEANING: dict[int, str] = {
    TransportError.NO_ERROR: "it gave up on the handshake without an error",
    TransportError.CONNECTION_REFUSED: "the server refuses connections (overloaded, or "
    "configured to refuse this client)",
    TransportError.INVALID_TOKEN: "the address-validation token (from a Retry or an "
    "earlier connection) was not accepted",
    TransportError.INTERNAL_ERROR: "an internal error of its QUIC stack",
    TransportError.VERSION_NEGOTIATION_ERROR: "the versions in the version_information "
    "transport parameter do not match what was negotiated (a downgrade, RFC 9368)",
    TransportError.TRANSPORT_PARAMETER_ERROR: "the peer's transport parameters were "
    "malformed or not allowed",
    TransportError.CRYPTO_BUFFER_EXCEEDED: "too much handshake data arrived ahead of "
    "what it could process",
    TransportError.PROTOCOL_VIOLATION: "the peer broke a rule of the QUIC protocol",
}


def quoted(text: str) -> str:
    """A reason phrase as it appears in a reason: printable already, cut, in quotes."""
    cut = text[:REASON_CHARS] + ("…" if len(text) > REASON_CHARS else "")
    return '"' + cut.replace('"', "'") + '"'


def http3_probes(r: HandshakeRecord) -> str:
    """Commands that open a QUIC connection to this server as the client did."""
    return (
        f"{rm.curl(r, '--http3-only')} (needs a curl built with HTTP/3; Debian 12's is "
        f"not), or {rm.s_client(r)} (OpenSSL 3.2 or later)"
    )


def firewall_check(r: HandshakeRecord, verb: str = "check") -> str:
    port = r.server_port
    return (
        f"{verb} that the server listens on UDP {port} (on the server: ss -lunp "
        f"'sport = :{port}') and that no firewall or security group drops or rejects UDP "
        f"{port} on the path (iptables -L -n -v | grep -w 'udp.*{port}'; on the server: "
        f"iptables -I INPUT -p udp --dport {port} -j ACCEPT)"
    )


def _unanswered(r: HandshakeRecord) -> bool:
    return r.transport == "quic" and r.server_bytes == 0 and r.client_bytes > 0


def _initials(r: HandshakeRecord) -> str:
    sent = r.packets
    return f"{sent} Initial{'s' if sent != 1 else ''}"


def rule_quic_refused(r: HandshakeRecord, f: Facts) -> Verdict | None:
    """The client's Initials answered by an ICMP error instead of the server."""
    if not _unanswered(r) or r.icmp_error not in _ICMP_REFUSALS:
        return None
    own = r.icmp_from == r.server_ip
    by = "the server's host" if own else f"{r.icmp_from}, a router or firewall on the path"
    cause = (
        f"nothing listens on UDP {r.server_port} there, or a host firewall rejects it "
        "(iptables REJECT answers this way by default)"
        if own and r.icmp_error == "port_unreachable"
        else "a firewall rejects the datagrams"
    )
    return failed(
        "udp_refused",
        "server" if own else "network",
        f"the client's QUIC Initial to {server(r)} was answered by ICMP "
        f"{r.icmp_error.replace('_', ' ')} from {by} ({_initials(r)} sent over "
        f"{ms(r.ts_end - r.ts)}): {cause}",
        f"{firewall_check(r, 'Check')}; confirm the refusal: nc -u -z -v "
        f"{r.server_ip} {r.server_port} (a refused port says so), then {http3_probes(r)}",
    )


def rule_quic_no_answer(r: HandshakeRecord, f: Facts) -> Verdict | None:
    """The client's Initials repeated into silence."""
    if not _unanswered(r):
        return None
    if r.client_retransmits == 0 and captured_to_end(r):
        return Verdict(
            outcome="incomplete",
            reason="the capture ended while the client's first QUIC Initial was pending",
        )
    icmp = (
        f"; ICMP {r.icmp_error.replace('_', ' ')} came back from {r.icmp_from}"
        if r.icmp_error
        else ""
    )
    if r.client_retransmits == 0:
        what = (
            f"{_initials(r)} from the client to {server(r)}, no answer{icmp}, not repeated: "
            "the client gave up at once (a browser whose TCP connection won the race does) "
            "or the capture misses the server's packets; if neither, "
        )
    else:
        what = (
            f"{_initials(r)} from the client to {server(r)} over {ms(r.ts_end - r.ts)}, "
            f"no answer{icmp}: "
        )
    return failed(
        "udp_no_answer",
        "network",
        f"{what}a firewall drops UDP {r.server_port}, or nothing listens there",
        f"Allow QUIC through: {firewall_check(r)}; nc -u -z -v {r.server_ip} "
        f"{r.server_port} cannot tell a drop from a listener (UDP has no handshake); "
        f"confirm with {http3_probes(r)}",
    )


def rule_quic_version(r: HandshakeRecord, f: Facts) -> Verdict | None:
    """A server's Version Negotiation listing no version the client went on with."""
    if (
        r.transport != "quic"
        or not r.quic_server_versions
        or r.established
        or r.version is not None
        or r.quic_version in r.quic_server_versions
    ):
        return None
    theirs = ", ".join(r.quic_server_versions)
    return failed(
        "version_mismatch",
        "server",
        f"the client offered QUIC {r.quic_version} to {server(r)}; the server answered with "
        f"Version Negotiation offering only {theirs}, and the client did not try again with "
        f"one of them: no common QUIC version ({r.packets} datagrams, then {ended(r)})",
        f"Enable QUIC {r.quic_server_versions[0]} on the client (or {r.quic_version} on the "
        f"server); confirm with a client that speaks it: {http3_probes(r)}",
    )


def rule_quic_alert(r: HandshakeRecord, f: Facts) -> Verdict | None:
    """A CONNECTION_CLOSE with CRYPTO_ERROR: the TLS alert it carries decides."""
    code = r.quic_close_code
    a = f.alert
    if r.transport != "quic" or code is None or r.quic_close_application or a is None:
        return None
    if crypto_alert(code) != a.code:
        return None
    where = "an encrypted Handshake packet" if a.encrypted else "an Initial packet"
    phrase = f", reason {quoted(r.quic_close_reason)}" if r.quic_close_reason else ""
    carried = (
        f" (a QUIC CONNECTION_CLOSE with CRYPTO_ERROR 0x{code:x}{phrase}, in {where})"
    )
    if a.description == "no_application_protocol":
        offered = ", ".join(r.alpn_offered) or "none"
        return failed(
            "alpn_mismatch",
            a.sender,
            f"the client offered ALPN {offered} over QUIC to {server(r)}; the {said(r, a)}"
            f"{carried}: the server speaks none of them over QUIC",
            "Offer the server's protocol (h3 for HTTP/3) or add the client's to the "
            f"server's ALPN list; confirm: {rm.s_client(r, '-alpn', 'h3')} or "
            f"{rm.curl(r, '--http3-only')} (needs a curl built with HTTP/3)",
        )
    verdict = rule_alert(r, f)
    if verdict is None or verdict.reason is None:
        return verdict
    return replace(verdict, reason=verdict.reason + carried)


def rule_quic_close(r: HandshakeRecord, f: Facts) -> Verdict | None:
    """Any other CONNECTION_CLOSE before the handshake completed: the error named."""
    code = r.quic_close_code
    if r.transport != "quic" or code is None or r.established or r.close_by is None:
        return None
    sender = r.close_by
    if r.quic_close_application:
        failure = "handshake_aborted"
        name = f"application error 0x{code:x}"
        meaning = "the application on top of QUIC (HTTP/3) closed it"
    else:
        failure = _CLOSE_FAILURES.get(code, "protocol_error")
        name = f"{error_name(code)} (0x{code:x})"
        meaning = _CLOSE_MEANING.get(code, "")
        if crypto_alert(code) is not None:
            meaning = "a TLS alert"
    phrase = f" and reason {quoted(r.quic_close_reason)}" if r.quic_close_reason else ""
    return failed(
        failure,
        sender,
        f"the {sender} closed the QUIC connection with {server(r)} at stage {r.stage} "
        f"with {name}{phrase}" + (f": {meaning}" if meaning else ""),
        f"Look at the {sender}'s QUIC logs for this error (qlog, or its debug log); "
        f"reproduce: {http3_probes(r)}",
    )


def rule_quic_hidden_close(r: HandshakeRecord, f: Facts) -> Verdict | None:
    """After the server's Handshake flight the client sent Handshake packets only, never
    a 1-RTT packet, and went quiet: it closed inside an encrypted Handshake packet, most
    likely rejecting the certificate (the TLS 1.3 inference, SPEC §1)."""
    if (
        r.transport != "quic"
        or r.established
        or f.alert is not None
        or r.quic_close_code is not None
        or r.decrypted
        or not r.quic_server_handshake_packets
        or not r.quic_client_handshake_packets
        or r.quic_client_one_rtt_packets
        or captured_to_end(r)
    ):
        return None
    quiet = (
        f"then nothing more in the {ms(r.capture_end - r.ts_end)} the capture went on"
        if r.close == "capture_end" and r.capture_end is not None
        else f"then {ended(r)}"
    )
    return failed(
        "certificate_untrusted",
        "client",
        f"QUIC with {server(r)}: after the server's {r.quic_server_handshake_packets} "
        f"Handshake packet(s) (its encrypted certificate flight) the client sent "
        f"{r.quic_client_handshake_packets} Handshake packet(s) and never a 1-RTT packet, "
        f"{quiet}: the client rejected the server, most likely its certificate "
        "(inferred: QUIC encrypts the certificate and the CONNECTION_CLOSE; a key log "
        "would show both)",
        "Check the server's certificate chain, dates and names against the client's "
        f"trust store: {rm.show_certs(r)}; its names and key: {rm.show_cert_details(r)}",
        inferred=True,
    )

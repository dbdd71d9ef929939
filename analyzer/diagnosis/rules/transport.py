"""Rules on transport evidence: a SYN refused or unanswered, ICMP errors, resets during
the handshake, a ClientHello nobody answered.

A refused SYN is ``tcp_refused`` (the server, or the network when a router's ICMP error
says so); a SYN never answered is ``tcp_no_answer``; over UDP (QUIC, DTLS), a first flight
answered by ICMP port unreachable is ``udp_refused`` and one repeated into silence is
``udp_no_answer``; a RST after the ClientHello with no
alert is ``reset_during_handshake`` (the network when it looks forged: no acknowledgement
of the hello by the server); a ClientHello that got nothing back is
``no_server_response`` (the network when the hello or the server's flight was lost on
the path).
"""

from __future__ import annotations

from analyzer.diagnosis import remedies as rm
from analyzer.diagnosis.readings import captured_to_end
from analyzer.diagnosis.verdict import Facts, Verdict
from analyzer.diagnosis.wording import after_ch, ended, ms, mtu_hole, mtu_probe, plural, server
from analyzer.record import HandshakeRecord

_ICMP_REFUSALS = frozenset({"port_unreachable", "admin_prohibited", "protocol_unreachable"})


_ICMP_NO_PATH = frozenset(
    {"net_unreachable", "host_unreachable", "source_route_failed", "beyond_scope", "unreachable"}
)


def rule_icmp_unreachable(r: HandshakeRecord, f: Facts) -> Verdict | None:
    """A SYN answered by an ICMP destination-unreachable error instead of a SYN-ACK."""
    if r.icmp_error is None or r.synack or r.syn_count == 0:
        return None
    what = f"ICMP {r.icmp_error.replace('_', ' ')}"
    own = r.icmp_from == r.server_ip
    by = "the server's host" if own else f"{r.icmp_from}, a router or firewall on the path"
    port = r.server_port
    if r.icmp_error in _ICMP_REFUSALS:
        cause = (
            f"nothing listens on port {port}, or a host firewall rejects it (iptables REJECT "
            "answers this way by default)"
            if own and r.icmp_error == "port_unreachable"
            else "a firewall rejects the connection"
        )
        check = (
            f"Check that the service listens on port {port} (on the server: ss -ltnp "
            f"'sport = :{port}') and the server's REJECT rules (iptables -L -n -v)"
            if own
            else f"Check the REJECT rules of the router or firewall {r.icmp_from} for "
            f"{r.server_ip} port {port} (iptables -L FORWARD -n -v)"
        )
        return Verdict(
            outcome="failed",
            failure="tcp_refused",
            side="server" if own else "network",
            reason=(
                f"the SYN to {rm.target(r)} was answered by {what} from {by} "
                f"({r.syn_count} SYN sent): {cause}"
            ),
            remedy=f"{check}; confirm: nc -vz {r.server_ip} {port}",
        )
    if r.icmp_error in _ICMP_NO_PATH:
        return Verdict(
            outcome="failed",
            failure="tcp_no_answer",
            side="network",
            reason=(
                f"the SYN to {rm.target(r)} got no SYN-ACK but {what} from {by}: the host is "
                "down or cannot be reached (no route, or no ARP/neighbour answer), or a "
                "firewall rejects with this error (a firewall can forge it)"
            ),
            remedy=(
                f"Check that {r.server_ip} is up and routed from the client (ip route get "
                f"{r.server_ip}); confirm: nc -vz -w 5 {r.server_ip} {port}"
            ),
        )
    return None


def rule_tcp_refused(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if r.syn_count == 0 or r.synack or r.close != "rst_server":
        return None
    delay = (r.ts_close - r.ts) if r.ts_close is not None else None
    return Verdict(
        outcome="failed",
        failure="tcp_refused",
        side="server",
        reason=(
            f"the SYN to {rm.target(r)} was answered by a RST after {ms(delay)} "
            f"({r.syn_count} SYN sent): nothing listens on port {r.server_port}, or a "
            "firewall rejects the connection (a firewall can forge this RST)"
        ),
        remedy=(
            f"Check that the service listens on port {r.server_port} (on the server: "
            f"ss -ltnp 'sport = :{r.server_port}') and that no firewall rejects it; "
            f"confirm: nc -vz {r.server_ip} {r.server_port}"
        ),
    )


_FIRST_FLIGHT = {"quic": "Initial", "dtls": "ClientHello"}
"""What a UDP transport's client sends first, per transport."""


def _udp_unanswered(r: HandshakeRecord) -> bool:
    return r.transport != "tcp" and r.server_bytes == 0 and r.client_bytes > 0


def _udp_probe(r: HandshakeRecord) -> str:
    """A command that sends the same first flight from the client's side (for DTLS, with
    the client's best version, e.g. ``-dtls1_2``)."""
    return rm.dtls_probe(r) if r.transport == "dtls" else rm.s_client(r)


def rule_udp_refused(r: HandshakeRecord, f: Facts) -> Verdict | None:
    """The client's first flight over UDP answered by an ICMP error instead of the server."""
    if not _udp_unanswered(r) or r.icmp_error not in _ICMP_REFUSALS:
        return None
    own = r.icmp_from == r.server_ip
    by = "the server's host" if own else f"{r.icmp_from}, a router or firewall on the path"
    flight = _FIRST_FLIGHT.get(r.transport, "first datagram")
    port = r.server_port
    cause = (
        f"nothing listens on UDP port {port}, or a host firewall rejects it"
        if own and r.icmp_error == "port_unreachable"
        else "a firewall rejects the datagrams"
    )
    return Verdict(
        outcome="failed",
        failure="udp_refused",
        side="server" if own else "network",
        reason=(
            f"the client's {r.transport.upper()} {flight} to {server(r)} was answered by ICMP "
            f"{r.icmp_error.replace('_', ' ')} from {by} ({plural(r.packets, 'datagram')} "
            f"sent): {cause}"
        ),
        remedy=(
            f"Check that the service listens on UDP port {port} (on the server: ss -lunp "
            f"'sport = :{port}') and that no firewall rejects UDP {port}; confirm: "
            f"{_udp_probe(r)}"
        ),
    )


def rule_udp_no_answer(r: HandshakeRecord, f: Facts) -> Verdict | None:
    """The client's first flight over UDP repeated with no answer at all."""
    if not _udp_unanswered(r):
        return None
    if r.client_retransmits == 0 and captured_to_end(r):
        return Verdict(
            outcome="incomplete", reason="the capture ended while the first flight was pending"
        )
    flight = _FIRST_FLIGHT.get(r.transport, "first datagram")
    icmp = (
        f"; ICMP {r.icmp_error.replace('_', ' ')} came back from {r.icmp_from}"
        if r.icmp_error
        else ""
    )
    silent = (
        " (a host with nothing listening would most often answer with ICMP port "
        "unreachable, so a silent drop is likelier)"
        if not r.icmp_error
        else ""
    )
    return Verdict(
        outcome="failed",
        failure="udp_no_answer",
        side="network",
        reason=(
            f"{plural(r.packets, 'datagram')} carrying the client's {r.transport.upper()} "
            f"{flight} to {server(r)} over {ms(r.ts_end - r.ts)} got no answer{icmp}: a "
            f"firewall drops UDP {r.server_port}, or nothing listens there{silent}"
        ),
        remedy=(
            f"Check firewall rules and security groups for UDP port {r.server_port} on the "
            f"path (on the server: iptables -S INPUT | grep -w {r.server_port}; nft list "
            f"ruleset), and that the service listens on it (ss -lunp 'sport = "
            f":{r.server_port}'); confirm: {_udp_probe(r)}"
        ),
    )


def rule_tcp_no_answer(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if r.syn_count == 0 or r.synack or r.close.startswith("rst"):
        return None
    if r.syn_count == 1 and captured_to_end(r):
        return Verdict(outcome="incomplete", reason="the capture ended while the SYN was pending")
    return Verdict(
        outcome="failed",
        failure="tcp_no_answer",
        side="network",
        reason=(
            f"{r.syn_count} SYN(s) to {rm.target(r)} over {ms(r.ts_end - r.ts)} got no "
            "SYN-ACK: a firewall drops the traffic, or the host is down or unreachable"
        ),
        remedy=(
            "Check firewall rules and security groups on the path to the server, and that "
            f"the host is up; confirm: nc -vz -w 5 {r.server_ip} {r.server_port}"
        ),
    )


def rule_reset(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if r.established or not r.offered_versions or not r.close.startswith("rst"):
        return None
    sender = "client" if r.close == "rst_client" else "server"
    forged = sender == "server" and not r.client_hello_acked and r.version is None
    segs = (
        f"; the ClientHello spanned {r.client_hello_segments} TCP segments"
        if r.client_hello_segments > 1
        else ""
    )
    if forged:
        return Verdict(
            outcome="failed",
            failure="reset_during_handshake",
            side="network",
            reason=(
                f"a RST from the server's address arrived{after_ch(r, r.ts_close)} to "
                f"{server(r)}, before any ServerHello and without the server acknowledging "
                f"the ClientHello{segs}: it looks forged by a middlebox (firewall, IPS, SNI "
                "filter)"
            ),
            remedy=(
                "Find the middlebox that resets this SNI or this large ClientHello (it may "
                "not handle a hello split over segments, e.g. with a post-quantum key "
                f"share); compare with a small hello: {rm.s_client(r, '-groups', 'X25519')}"
            ),
        )
    stage = "ServerHello" if r.version else "ClientHello"
    return Verdict(
        outcome="failed",
        failure="reset_during_handshake",
        side=sender,
        reason=(
            f"the {sender} reset the connection{after_ch(r, r.ts_close)} (stage {r.stage}, "
            f"after the {stage}) with {server(r)}, without any alert{segs}"
        ),
        remedy=f"Check the {sender}'s logs for why it reset; reproduce: {rm.s_client(r)}",
    )


def _gave_up(r: HandshakeRecord, waited: str) -> str:
    """When the client's last try was: its own close, or only its last packet."""
    if r.close_by == "client":
        return f"the client gave up after {waited}"
    return f"the client's last try came {waited} after the first, then {ended(r)}"


def rule_no_server_response(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if not r.offered_versions or r.version is not None or r.server_first_bytes is not None:
        return None
    if r.alerts:
        return None
    waited = ms(r.ts_end - (r.ts_client_hello or r.ts))
    if r.server_bytes and "server_flight_lost" in r.anomalies:
        return Verdict(
            outcome="failed",
            failure="no_server_response",
            side="network",
            reason=(
                f"{server(r)} sent its handshake flight but the large segments never arrived "
                f"(only {r.server_bytes} bytes did, with a hole before them); the client "
                f"waited {waited}: {mtu_hole(r)}"
            ),
            remedy=(
                "Allow ICMP 'fragmentation needed' on the path, or clamp the MSS "
                "(iptables ... -j TCPMSS --clamp-mss-to-pmtu); confirm with a smaller MTU: "
                f"{mtu_probe(r)}"
            ),
        )
    if not r.client_hello_acked:
        big = r.client_hello_segments > 1
        return Verdict(
            outcome="failed",
            failure="no_server_response",
            side="network",
            reason=(
                f"the ClientHello to {server(r)} was never acknowledged "
                f"({r.client_retransmits} retransmission(s)); {_gave_up(r, waited)}: the "
                "path drops it"
                + (
                    f"; it spanned {r.client_hello_segments} TCP segments, so a path that "
                    "loses full-size segments (an MTU black hole) or a middlebox dropping "
                    "large hellos fits"
                    if big
                    else ""
                )
                + (f"; {mtu_hole(r)}" if r.icmp_error == "fragmentation_needed" else "")
            ),
            remedy=(
                "Look for an MTU black hole or a middlebox dropping large ClientHellos "
                "(post-quantum key shares and long ALPN lists make them large); compare "
                f"with a small hello: {rm.s_client(r, '-groups', 'X25519')}; check the path "
                f"MTU: {mtu_probe(r)}"
                if big
                else "Look for a firewall or IPS dropping TLS to this server or this SNI; "
                f"confirm: {rm.s_client(r)}"
            ),
        )
    if r.close_by == "server":
        return None  # the server closed: handshake_aborted
    return Verdict(
        outcome="failed",
        failure="no_server_response",
        side="server",
        reason=(
            f"{server(r)} acknowledged the ClientHello at the TCP level but sent nothing in "
            f"{waited}, until {ended(r)}: the service behind the port is "
            "not answering TLS"
        ),
        remedy=(
            "Check that the server process accepts and serves TLS on this port (hung "
            f"process, wrong backend, load balancer health); confirm: {rm.s_client(r)}"
        ),
    )

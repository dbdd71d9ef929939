"""Rules on DTLS evidence: the cookie exchange, and flights resent over a lossy or narrow
path (RFC 6347 §4.2.1, §4.2.4, §4.1.1.1).

Over UDP nothing acknowledges a datagram; a DTLS peer that gets no answer resends its
last flight, and a server asks for a cookie (HelloVerifyRequest) before it does any work.
What that shows on the wire:

- A HelloVerifyRequest and no ClientHello carrying its cookie: the client never got it
  (``udp_no_answer`` when the client kept resending its first ClientHello: the server's
  datagrams do not reach it), or never meant to continue (``handshake_aborted`` by the
  client: one ClientHello and silence, as a spoofed source in a ClientHello flood looks).
- The server's flight resent while the client keeps resending its ClientHello, with the
  server's datagrams larger than a path's safe size or its messages arriving incomplete:
  the server's flight does not get through (``no_server_response`` on the network: an
  MTU smaller than the server's datagrams, IP fragments dropped).
- The client echoed the cookie and the server still sent no ServerHello: the server
  refused the cookie or stopped (``no_server_response`` by the server).

What it does not do: alerts (they are decided before these rules, as over TCP), or UDP
silence and ICMP errors with no DTLS answer at all (:mod:`.transport`'s ``udp_*`` rules).
"""

from __future__ import annotations

from typing import Final

from analyzer.diagnosis import remedies as rm
from analyzer.diagnosis.readings import captured_to_end
from analyzer.diagnosis.verdict import Facts, Verdict, failed
from analyzer.diagnosis.wording import ms, plural, server
from analyzer.record import HandshakeRecord

SAFE_DATAGRAM: Final = 1232
"""UDP payload bytes that cross any IPv6 path unfragmented (1280-byte minimum MTU less
40 bytes of IPv6 and 8 of UDP header, RFC 8200 §5), the size DNS settled on for the same
reason: a server datagram larger than this may need an MTU some paths do not have."""


def _unfinished(r: HandshakeRecord) -> bool:
    return (
        r.transport == "dtls" and bool(r.offered_versions) and not r.established and not r.alerts
    )


def _client_stuck_at_hello(r: HandshakeRecord) -> bool:
    """The client sent nothing after its (last) ClientHello: no letter of its own follows
    it in the history."""
    after = r.history[r.history.rfind("C") + 1 :]
    return "C" in r.history and not any(c.isupper() for c in after)


def rule_dtls_cookie_unanswered(r: HandshakeRecord, f: Facts) -> Verdict | None:
    """A HelloVerifyRequest the client never answered with its cookie."""
    if not _unfinished(r) or r.dtls_cookie_length is None or r.dtls_cookie_echoed:
        return None
    hellos = 1 + r.client_retransmits
    hvrs = r.dtls_server_datagrams or 0
    cookie = f"a HelloVerifyRequest carrying a {r.dtls_cookie_length}-byte cookie"
    if r.client_retransmits:
        return failed(
            "udp_no_answer",
            "network",
            (
                f"{server(r)} answered the client's DTLS ClientHello with {cookie} "
                f"({hvrs} in all), but the client never sent its "
                f"ClientHello again with the cookie: it resent its first one "
                f"{plural(r.client_retransmits, 'time')} over {ms(r.ts_end - r.ts)} as if "
                f"nothing came back: the server's datagrams do not reach the client (a "
                f"firewall or NAT on the return path drops UDP from port {r.server_port}), "
                "or the client cannot do the cookie exchange"
            ),
            (
                f"Check that UDP from {rm.target(r)} back to the client passes every "
                "firewall and NAT on the path (a rule that lets the request out must let "
                "the answer in; on the client: iptables -S INPUT; nft list ruleset); "
                f"confirm that a HelloVerifyRequest arrives: {rm.dtls_probe(r, '-msg')}"
            ),
        )
    if captured_to_end(r):
        return Verdict(
            outcome="incomplete",
            reason="the capture ended while the server's HelloVerifyRequest was pending",
        )
    return failed(
        "handshake_aborted",
        "client",
        (
            f"the client sent {plural(hellos, 'ClientHello')} to {server(r)}, was answered "
            f"with {cookie}, and sent nothing more: its source address may be spoofed (a "
            "flood of ClientHellos, which the cookie exchange keeps from costing the "
            "server a handshake), or the client gave up or cannot do the cookie exchange"
        ),
        (
            "If many such associations come from many addresses, it is a ClientHello flood "
            f"the cookie exchange absorbs (rate-limit UDP {r.server_port} if it costs "
            "bandwidth); otherwise look at the client's logs; confirm the server side: "
            f"{rm.dtls_probe(r, '-msg')}"
        ),
    )


def rule_dtls_flight_lost(r: HandshakeRecord, f: Facts) -> Verdict | None:
    """The server's flight resent until the client gave up, the client never getting
    past its ClientHello."""
    if not _unfinished(r) or not r.server_retransmits or not r.client_retransmits:
        return None
    if not _client_stuck_at_hello(r) or not (r.version or r.dtls_server_incomplete):
        return None
    big = (r.server_max_datagram or 0) > SAFE_DATAGRAM
    incomplete = r.dtls_server_incomplete or 0
    if big:
        evidence = (
            f": its datagrams are up to {r.server_max_datagram} bytes (the client's up to "
            f"{r.client_max_datagram}), more than some paths carry (a link with a smaller "
            "MTU, with IP fragments or ICMP 'fragmentation needed' dropped)"
        )
    elif incomplete:
        evidence = (
            f": {plural(incomplete, 'handshake message')} of its flight arrived incomplete "
            f"or not at all while datagrams of up to {r.server_max_datagram} bytes got "
            "through: its larger datagrams are lost on the path (a link with a smaller "
            "MTU, with IP fragments or ICMP 'fragmentation needed' dropped)"
        )
    else:
        evidence = ": the server's datagrams are lost on the way to the client"
    probe = r.server_max_datagram if big else 1472  # a full-size Ethernet packet
    return failed(
        "no_server_response",
        "network",
        (
            f"{server(r)} sent its handshake flight and resent it "
            f"{plural(r.server_retransmits, 'time')}, but the client never answered it and "
            f"resent its ClientHello {plural(r.client_retransmits, 'time')} until it gave "
            f"up{evidence}"
        ),
        (
            "Make the server's flights fit the path: lower the server's DTLS MTU (OpenSSL "
            "SSL_set_mtu, s_server -mtu 1200; GnuTLS gnutls_dtls_set_mtu) or allow IP "
            "fragments and ICMP 'fragmentation needed' on the path; check the path: ping -M "
            f"do -s {probe} {r.server_ip}; see which of the server's messages arrive: "
            f"{rm.dtls_probe(r, '-msg')}"
            if big or incomplete
            else f"Check that UDP from {rm.target(r)} reaches the client through every "
            "firewall and NAT on the path; see which of the server's messages arrive: "
            f"{rm.dtls_probe(r, '-msg')}"
        ),
    )


def rule_dtls_no_server_hello(r: HandshakeRecord, f: Facts) -> Verdict | None:
    """The server answered (a HelloVerifyRequest, or something short of a ServerHello)
    but never sent its ServerHello."""
    if not _unfinished(r) or r.version is not None or not r.server_bytes:
        return None
    if r.client_retransmits == 0 and captured_to_end(r):
        return Verdict(
            outcome="incomplete",
            reason="the capture ended while the client waited for the ServerHello",
        )
    if r.dtls_cookie_echoed and r.dtls_cookie_length is not None:
        reason = (
            f"{server(r)} asked for a cookie (HelloVerifyRequest), the client sent its "
            f"ClientHello with it {plural(1 + r.client_retransmits, 'time')}, and the "
            "server never sent its ServerHello: it refused the cookie (the client's "
            "address or port changed between the two hellos, e.g. a NAT rebinding, or "
            "the server's cookie secret changed) or it stopped serving"
        )
    else:
        reason = (
            f"{server(r)} sent {plural(r.dtls_server_datagrams or 0, 'datagram')} "
            f"({r.server_bytes} bytes) but no ServerHello to the client's ClientHello "
            f"(resent {plural(r.client_retransmits, 'time')}): the service on UDP "
            f"{r.server_port} is not serving DTLS handshakes"
        )
    return failed(
        "no_server_response",
        "server",
        reason,
        f"Look at the server's logs for refused or failed handshakes; confirm: "
        f"{rm.dtls_probe(r, '-msg')}",
    )


def rule_dtls_final_flight_unanswered(r: HandshakeRecord, f: Facts) -> Verdict | None:
    """The client sent its last flight (Finished after ChangeCipherSpec) and resent it, and
    the server never answered with its own: it gave up on the handshake without an alert
    (GnuTLS does so when the client's certificate is missing or refused)."""
    if not _unfinished(r) or r.version is None or not r.client_retransmits:
        return None
    if r.stage != "client_finished":
        return None
    resent = plural(r.client_retransmits, "time")
    if r.client_cert_requested:
        what = (
            "an empty client Certificate" if r.client_certificates == 0
            else "the client's certificate" if r.client_certificates
            else "the client's flight"
        )
        return failed(
            "client_certificate_required",
            "server",
            f"{server(r)} asked for a client certificate (CertificateRequest); after "
            f"{what} and the client's Finished (resent {resent}) it never answered, with "
            "no alert: it refused the handshake for want of an acceptable client "
            "certificate (its log says why)",
            "Give the client a certificate the server accepts (issued by a CA the server "
            "trusts for clients, with extendedKeyUsage clientAuth); confirm: "
            f"{rm.dtls_probe(r, '-cert', 'client.pem', '-key', 'client.key')}",
        )
    return failed(
        "no_server_response",
        "server",
        f"the client sent its last handshake flight to {server(r)} (Finished, resent "
        f"{resent}) and the server never answered it, with no alert: it dropped the "
        "handshake (its log says why)",
        f"Look at the server's logs for failed handshakes; confirm: {rm.dtls_probe(r, '-msg')}",
    )

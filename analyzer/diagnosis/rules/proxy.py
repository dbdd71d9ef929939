"""Rules on proxy evidence (``proxy_error``): an HTTP CONNECT answered with an error, a
SOCKS4/4a/5 negotiation the proxy refused (a reply code, no acceptable authentication
method, authentication refused), or a tunnel the proxy closed before the server's hello.

The SOCKS reply codes and their meanings are RFC 1928 §6 (SOCKS5) and the SOCKS4 paper's
(90-93); the words quoted come from :mod:`analyzer.flows.socks`."""

from __future__ import annotations

from analyzer.diagnosis import remedies as rm
from analyzer.diagnosis.verdict import Facts, Verdict
from analyzer.flows import socks
from analyzer.record import HandshakeRecord

_PROXY_MEANING = {
    403: "the proxy's access rules deny this destination",
    407: "the proxy requires authentication",
    502: "the proxy could not reach the destination",
    503: "the proxy could not reach the destination",
    504: "the proxy timed out reaching the destination",
}


def _proxy_remedy(r: HandshakeRecord, status: int | None) -> str:
    probe = rm.curl(r)
    if status == 407:
        return (
            "Give the client proxy credentials (curl: -x http://USER:PASS@PROXY:PORT, or "
            f"--proxy-user); confirm: {probe}"
        )
    if status == 403:
        return (
            f"Allow CONNECT to {r.proxy_target} in the proxy's rules (squid: http_access "
            f"allow for this destination and its port in SSL_ports); confirm: {probe}"
        )
    return (
        f"Check that {r.proxy_target} is reachable from the proxy host (DNS, routes, a "
        f"service listening); confirm: {probe}"
    )


def rule_proxy_status(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if rm.is_socks(r):
        return _socks_refusal(r)
    if r.proxy_target is None or r.sni is not None:
        return None
    status = r.proxy_status
    if status is not None and 200 <= status < 300:
        return None
    if status is None:
        if r.close_by != "server" and not r.close.startswith("rst"):
            return None
        line = "closed the connection without answering"
    else:
        line = f"answered {r.proxy_status_line!r}"
    meaning = _PROXY_MEANING.get(status or 0, "the tunnel was not opened")
    return Verdict(
        outcome="failed",
        failure="proxy_error",
        side="proxy",
        reason=(
            f"the proxy {r.server_ip}:{r.server_port} {line} to CONNECT {r.proxy_target}: "
            f"{meaning}; no TLS was attempted"
        ),
        remedy=_proxy_remedy(r, status),
    )


def rule_proxy_closed(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if r.proxy_target is None or r.established or r.version is not None:
        return None
    if r.close_by != "server":
        return None
    if rm.is_socks(r):
        asked = f"granted the {_name(r)} request for {r.proxy_target}"
    else:
        asked = f"answered {r.proxy_status_line!r} to CONNECT {r.proxy_target}"
    return Verdict(
        outcome="failed",
        failure="proxy_error",
        side="proxy",
        reason=(
            f"the proxy {r.server_ip}:{r.server_port} {asked} and then closed the "
            "tunnel before any ServerHello (the proxy's log says why: the destination "
            "closed or refused, or one of its rules ended the tunnel)"
        ),
        remedy=_proxy_remedy(r, r.proxy_status) if not rm.is_socks(r) else (
            f"Check that {r.proxy_target} is reachable from the proxy host and accepts "
            f"connections from it (DNS, routes, a service listening); confirm: {rm.curl(r)}"
        ),
    )


# -- SOCKS ------------------------------------------------------------------------------------

_SOCKS5_MEANING = {
    1: "the proxy failed for a reason of its own (its log says which)",
    2: "the proxy's rules do not allow this client to reach this destination",
    3: "the proxy has no route to the destination's network",
    4: "the proxy cannot reach the destination host (no route to it, or its name does "
    "not resolve on the proxy)",
    5: "the destination refused the proxy's connection: nothing listens on that port, or "
    "a firewall rejects it",
    6: "the proxy's connection to the destination timed out",
    7: "the proxy does not support the command the client asked for",
    8: "the proxy does not accept this kind of destination address (IPv6, or a host name "
    "for it to resolve)",
}
_SOCKS4_MEANING = {
    91: "the proxy refused the request or could not reach the destination (SOCKS4 has "
    "one code for both; the proxy's log says which)",
    92: "the proxy wants to ask identd (RFC 1413) on the client who the user is, and "
    "could not reach it",
    93: "the user id the client sent differs from the one identd on the client reports",
}


def _name(r: HandshakeRecord) -> str:
    return {"socks4": "SOCKS4", "socks4a": "SOCKS4a"}.get(r.proxy_kind or "", "SOCKS5")


def _socks_refusal(r: HandshakeRecord) -> Verdict | None:
    """A SOCKS negotiation the proxy ended without opening the tunnel."""
    if r.sni is not None:
        return None
    status, line = r.proxy_status, r.proxy_status_line or ""
    proxy = f"the {_name(r)} proxy {r.server_ip}:{r.server_port}"
    if status is None:
        if line.startswith(socks.NO_ACCEPTABLE_METHOD):
            return _socks_failed(
                r, f"{proxy} answered the client's greeting with {line}: it requires an "
                "authentication method the client did not offer; no request was made",
                _fix_no_method(r))
        if line.startswith(socks.AUTH_REFUSED):
            return _socks_failed(
                r, f"{proxy} refused the client's credentials ({line}) and closed; no "
                "request was made", _fix_credentials(r))
        if r.close_by != "server" and not r.close.startswith("rst"):
            return None
        step = f"the request for {r.proxy_target}" if r.proxy_target else "the negotiation"
        return _socks_failed(
            r, f"{proxy} closed the connection without answering {step}; no TLS was "
            "attempted", _fix_reachable(r))
    if (r.proxy_kind == "socks5" and status == 0) or (r.proxy_kind != "socks5" and status == 90):
        return None
    table = _SOCKS5_MEANING if r.proxy_kind == "socks5" else _SOCKS4_MEANING
    meaning = table.get(status, "the tunnel was not opened")
    return _socks_failed(
        r, f"{proxy} answered the request for {r.proxy_target} with {line!r}: {meaning}; "
        "no TLS was attempted", _fix_reply(r, status))


def _socks_failed(r: HandshakeRecord, reason: str, remedy: str) -> Verdict:
    return Verdict(outcome="failed", failure="proxy_error", side="proxy", reason=reason,
                   remedy=remedy)


def _fix_no_method(r: HandshakeRecord) -> str:
    probe = rm.curl(r, "--proxy-user", "USER:PASS")
    return (
        "Give the client the proxy's credentials (curl: --proxy-user USER:PASS, which "
        "offers username/password), or let this client in without authentication "
        f"(dante: socksmethod: none); confirm: {probe}"
    )


def _fix_credentials(r: HandshakeRecord) -> str:
    probe = rm.curl(r, "--proxy-user", "USER:PASS")
    return (
        "Check the user name and password the client gives the proxy (the proxy's log "
        "says why it refused them; dante checks the system's password database); "
        f"confirm: {probe}"
    )


def _fix_reachable(r: HandshakeRecord) -> str:
    where = r.proxy_target or "the destination"
    return (
        f"Check that {where} is reachable from the proxy host (DNS, routes, a service "
        f"listening) and what the proxy's log says of this client; confirm: {rm.curl(r)}"
    )


def _fix_reply(r: HandshakeRecord, status: int) -> str:
    probe = rm.curl(r)
    host, _, port = (r.proxy_target or "").rpartition(":")
    check = f"nc -vz {host.strip('[]') or 'HOST'} {port or 443}"
    if status in (2, 91) and r.proxy_kind == "socks4a":
        return (
            f"If the proxy does not do SOCKS4a (dante does not: it tries to connect to "
            f"0.0.0.x), use SOCKS5 with the host name (curl --socks5-hostname); else allow "
            f"{r.proxy_target} for this client in the proxy's rules; confirm: {probe}"
        )
    if status in (2, 91):
        return (
            f"Allow {r.proxy_target} for this client in the proxy's rules (dante: a "
            f"'socks pass' rule for it before any 'socks block'), or use the proxy meant "
            f"for it; confirm: {probe}"
        )
    if status in (3, 4, 6):
        return (
            f"Check DNS and routes from the proxy host to {r.proxy_target} (on the proxy "
            f"host: getent hosts {host.strip('[]') or 'HOST'}; {check}); confirm: {probe}"
        )
    if status == 5:
        return (
            f"Start the service on {r.proxy_target}, or fix the port or the firewall "
            f"rejecting the proxy (on the proxy host: {check}); confirm: {probe}"
        )
    if status == 7:
        return (
            "Use a CONNECT request (curl does) or a proxy that supports the command; "
            f"confirm: {probe}"
        )
    if status == 8:
        return (
            "Send the destination in a form the proxy accepts (curl: --socks5-hostname to "
            f"let the proxy resolve the name, --socks5 to send an address); confirm: {probe}"
        )
    if status in (92, 93):
        return (
            "Run identd (RFC 1413) on the client with the right user, or drop the proxy's "
            f"ident requirement (or use SOCKS5 with username/password); confirm: {probe}"
        )
    return f"Read the proxy's log for this connection (it names the error); confirm: {probe}"

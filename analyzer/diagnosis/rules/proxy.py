"""Rules on proxy evidence: an HTTP CONNECT answered with an error, or a tunnel the proxy
closed before the server's hello (``proxy_error``)."""

from __future__ import annotations

from analyzer.diagnosis import remedies as rm
from analyzer.diagnosis.verdict import Facts, Verdict
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
    return Verdict(
        outcome="failed",
        failure="proxy_error",
        side="proxy",
        reason=(
            f"the proxy {r.server_ip}:{r.server_port} answered "
            f"{r.proxy_status_line!r} to CONNECT {r.proxy_target} and then closed the "
            "tunnel before any ServerHello (the proxy's log says why: the destination "
            "closed or refused, or one of its rules ended the tunnel)"
        ),
        remedy=_proxy_remedy(r, r.proxy_status),
    )

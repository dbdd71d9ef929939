"""SOCKS proxies: Dante (``danted``) and OpenSSH's ``ssh -D``, with curl as the client.

The capture is taken on the client's side, filtered to the proxy port 1080: it shows the
SOCKS negotiation (greeting, method, authentication, request, reply) and, when the proxy
grants the request, the TLS handshake inside the tunnel. The proxies run on the server
host and reach the origin there; the names they resolve for SOCKS4a and SOCKS5 host-name
requests come from a per-namespace ``/etc/hosts`` (``tests/harness/socks.py``). Truth:
curl's exit status and error text, and the proxy's own log (Dante logs every request it
passes or blocks; ``ssh -v`` logs every channel it opens and why one failed).
"""

from __future__ import annotations

from tests.harness import socks as proxies
from tests.harness.pki import LeafKind
from tests.harness.servers import Server

from .base import (
    Ctx,
    Expect,
    ScenarioError,
    check,
    check_http,
    check_log,
    established,
    failed,
    scenario,
)
from .nginx import NGINX, WWW, one_site

PORT = 1080
BLOCKED = "blocked.example.com"
BLOCKED_IP = "10.99.0.3"
"""A second address of the server host, for the blocked name (Dante's rules resolve names
to addresses: the blocked site must not share www's)."""
DANTE = "Dante 1.4.2 SOCKS4/SOCKS5 server on :1080"
SSH_D = "OpenSSH 9.2 'ssh -N -D :1080' to an sshd on the proxy host"
PROXY_USER, PROXY_PASSWORD = "socksuser", "c0rrect-h0rse"


def hosts(ctx: Ctx) -> dict[str, str]:
    return {WWW: ctx.sip, BLOCKED: BLOCKED_IP}


def start_dante(ctx: Ctx, *, socksmethod: str = "none", rules: str = "") -> Server:
    """Dante on the server host, with its own /etc/hosts (and a user for 'username')."""
    users = {PROXY_USER: PROXY_PASSWORD} if "username" in socksmethod else None
    ctx.stack.enter_context(proxies.etc_overlay(ctx.lab.server, hosts=hosts(ctx), users=users))
    return ctx.server(proxies.dante(ctx.lab.server, ctx.work / "dante", ip=ctx.sip,
                                    port=PORT, socksmethod=socksmethod, rules=rules))


def start_ssh(ctx: Ctx) -> proxies.SshSocks:
    ctx.stack.enter_context(proxies.etc_overlay(ctx.lab.server, hosts=hosts(ctx)))
    proxy = proxies.ssh_socks(ctx.lab.server, ctx.work / "ssh", ip=ctx.sip, port=PORT)
    ctx.stack.callback(proxy.stop)
    return proxy


@scenario(tools=(*proxies.DANTE_TOOLS,), stack="Dante + curl", server_ports=(PORT,),
          shows="SOCKS5 with the host name and SOCKS4 with an address, both granted; "
                "TLS 1.3 and TLS 1.2 inside the tunnels")
def socks_dante_ok(ctx: Ctx) -> list[Expect]:
    one_site(ctx, WWW)
    srv = start_dante(ctx)
    with ctx.capture([PORT]):
        five = ctx.curl(f"https://{WWW}/", "--socks5-hostname", f"{ctx.sip}:{PORT}",
                        resolve=False)
        four = ctx.curl(f"https://{WWW}/", "--socks4", f"{ctx.sip}:{PORT}", "--tls-max",
                        "1.2")
    said5, said4 = check_http(five, 200), check_http(four, 200)
    srv.stop()
    logged = check_log(srv, rf"pass\(\d\): tcp/connect \[: {ctx.cip}\.\d+ {ctx.sip}\.{PORT} ->"
                            rf" {ctx.sip}\.\d+ {ctx.sip}\.443")
    return [
        established(f"{DANTE} (socksmethod none); {NGINX} behind it; curl --socks5-hostname "
                    f"{said5} through the tunnel; {logged}", sni=WWW, version="TLSv1.3"),
        established(f"{DANTE}; curl --socks4 (curl resolved {WWW} itself and sent the "
                    f"address) --tls-max 1.2 {said4}", sni=WWW, version="TLSv1.2"),
    ]


@scenario(tools=(*proxies.DANTE_TOOLS,), stack="Dante + curl", server_ports=(PORT,),
          shows="SOCKS refusals: a 'socks block' rule (SOCKS5 reply 2), a closed port "
                "(reply 5), and SOCKS4a to Dante, which does not speak it (SOCKS4 reply 91)")
def socks_dante_refused(ctx: Ctx) -> list[Expect]:
    one_site(ctx, WWW)
    ctx.lab.add_server_ip(BLOCKED_IP)
    srv = start_dante(ctx, rules=f"socks block {{ from: 0.0.0.0/0 to: {BLOCKED} "
                                 "log: connect error }")
    proxy = f"{ctx.sip}:{PORT}"
    with ctx.capture([PORT]):
        blocked = ctx.curl(f"https://{BLOCKED}/", "--socks5-hostname", proxy, resolve=False)
        closed = ctx.curl(f"https://{WWW}:8443/", "--socks5-hostname", proxy, resolve=False)
        four_a = ctx.curl(f"https://{WWW}/", "--socks4a", proxy, resolve=False)
    said_b = check(blocked, exit=97, says=f"Can't complete SOCKS5 connection to {BLOCKED}. (2)")
    said_c = check(closed, exit=97, says=f"Can't complete SOCKS5 connection to {WWW}. (5)")
    said_a = check(four_a, exit=97, says="(91), request rejected or failed")
    srv.stop()
    log_b = check_log(srv, r"blocked by higher-level socks-rule #1")
    log_c = check_log(srv, r"remote peer error \(Connection refused\)")
    log_a = check_log(srv, r"connect\(2\) to 0\.0\.0\.1\.443 from \S+ failed")
    return [
        failed("proxy_error", "proxy", f"{DANTE} with 'socks block' for {BLOCKED}; curl "
               f"--socks5-hostname {said_b}; {log_b}", sni=None),
        failed("proxy_error", "proxy", f"{DANTE}; nothing listens on {WWW}:8443; curl "
               f"--socks5-hostname {said_c}; {log_c}", sni=None),
        failed("proxy_error", "proxy", f"{DANTE}, which has no SOCKS4a (it takes the "
               f"0.0.0.1 placeholder as the address); curl --socks4a {said_a}; {log_a}",
               sni=None),
    ]


@scenario(tools=(*proxies.DANTE_TOOLS,), stack="Dante + curl", server_ports=(PORT,),
          shows="SOCKS5 username/password (RFC 1929): no credentials (0xFF, no acceptable "
                "method), a wrong password (status 1), then the right one and TLS inside")
def socks_dante_auth(ctx: Ctx) -> list[Expect]:
    one_site(ctx, WWW)
    srv = start_dante(ctx, socksmethod="username")
    proxy = f"{ctx.sip}:{PORT}"
    with ctx.capture([PORT]):
        bare = ctx.curl(f"https://{WWW}/", "--socks5-hostname", proxy, resolve=False)
        wrong = ctx.curl(f"https://{WWW}/", "--socks5-hostname", proxy, "--proxy-user",
                         f"{PROXY_USER}:wrong-password", resolve=False)
        right = ctx.curl(f"https://{WWW}/", "--socks5-hostname", proxy, "--proxy-user",
                         f"{PROXY_USER}:{PROXY_PASSWORD}", resolve=False)
    said_bare = check(bare, exit=97, says="No authentication method was acceptable")
    said_wrong = check(wrong, exit=97, says="User was rejected by the SOCKS5 server")
    said_right = check_http(right, 200)
    srv.stop()
    logged = check_log(srv, rf'system password authentication failed for user "{PROXY_USER}"',
                       rf"pass\(\d\): tcp/connect \[: username%{PROXY_USER}@")
    setup = f"{DANTE} with 'socksmethod: username' (the system's password database)"
    return [
        failed("proxy_error", "proxy", f"{setup}; curl --socks5-hostname without "
               f"credentials offered only 'no authentication' and {said_bare}", sni=None),
        failed("proxy_error", "proxy", f"{setup}; curl --proxy-user {PROXY_USER}:(wrong) "
               f"{said_wrong}; {logged}", sni=None),
        established(f"{setup}; curl --proxy-user {PROXY_USER}:(right) {said_right} "
                    "through the tunnel", sni=WWW, version="TLSv1.3"),
    ]


@scenario(tools=(*proxies.DANTE_TOOLS,), stack="Dante + nginx + curl", server_ports=(PORT,),
          shows="a TLS failure inside a granted SOCKS5 tunnel: the origin's certificate is "
                "expired (TLS 1.2, so the dates are on the wire)")
def socks_dante_expired_tls12(ctx: Ctx) -> list[Expect]:
    ctx.nginx(ctx.site(WWW, ctx.pki.server(WWW, kind=LeafKind.EXPIRED), protocols="TLSv1.2",
                       default=True))
    start_dante(ctx)
    with ctx.capture([PORT]):
        run = ctx.curl(f"https://{WWW}/", "--socks5-hostname", f"{ctx.sip}:{PORT}",
                       resolve=False)
    said = check(run, exit=60, says="certificate has expired")
    return [failed("certificate_expired", "client",
                   f"{DANTE} granting the request; {NGINX} limited to TLSv1.2 with a leaf that "
                   f"expired 35 days ago; curl --socks5-hostname {said}", sni=WWW,
                   version="TLSv1.2")]


@scenario(tools=(*proxies.SSH_TOOLS,), stack="ssh -D + curl", server_ports=(PORT,),
          shows="OpenSSH's SOCKS proxy: SOCKS4a and SOCKS5 granted, TLS 1.3 inside; a "
                "destination that refuses: ssh closes without a reply")
def socks_ssh_dynamic(ctx: Ctx) -> list[Expect]:
    one_site(ctx, WWW)
    proxy = start_ssh(ctx)
    addr = f"{ctx.sip}:{PORT}"
    with ctx.capture([PORT]):
        four_a = ctx.curl(f"https://{WWW}/", "--socks4a", addr, resolve=False)
        five = ctx.curl(f"https://{WWW}/", "--socks5-hostname", addr, resolve=False)
        refused = ctx.curl(f"https://{WWW}:8443/", "--socks5-hostname", addr, resolve=False)
    said_a, said_5 = check_http(four_a, 200), check_http(five, 200)
    said_r = check(refused, exit=97, says="connection to proxy closed")
    proxy.stop()
    text = proxy.text()
    for pattern in (f"listening port {PORT} for {WWW} port 443", "open failed: connect "
                    "failed: Connection refused", f"connect_to {WWW} port 8443: failed"):
        if pattern not in text:
            raise ScenarioError(f"ssh -D: log lacks {pattern!r}; log was:\n{text[-3000:]}")
    return [
        established(f"{SSH_D}; {NGINX}; curl --socks4a {said_a}; ssh -v logged the "
                    f"direct-tcpip channel to {WWW} port 443", sni=WWW, version="TLSv1.3"),
        established(f"{SSH_D}; curl --socks5-hostname {said_5}", sni=WWW, version="TLSv1.3"),
        failed("proxy_error", "proxy", f"{SSH_D}; nothing listens on {WWW}:8443; sshd logged "
               f"'connect_to {WWW} port 8443: failed', ssh 'open failed: connect failed: "
               f"Connection refused' and closed the SOCKS connection without a reply; curl "
               f"--socks5-hostname {said_r}", sni=None),
    ]

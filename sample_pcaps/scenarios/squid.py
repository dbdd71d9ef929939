"""squid as an explicit forward proxy (``curl -x``): CONNECT tunnels and their failures.

The capture is taken on the client's side and filtered to the proxy port, as a user behind
a proxy would capture: it shows the CONNECT request, squid's status line and, when the
tunnel opens, the TLS handshake inside it. squid runs on the server host and reaches the
origin nginx there (hosts_file maps the names to it).
"""

from __future__ import annotations

import shutil
import subprocess

from tests.harness import servers
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

PORT = 3128
SQUID = "squid 5.7 forward proxy on :3128"


def start_squid(ctx: Ctx, rules: str, *, http_port: str = f"http_port {PORT}") -> Server:
    hosts = ctx.work / "hosts"
    hosts.write_text(f"{ctx.sip} www.example.com blocked.example.com\n")
    hosts.chmod(0o644)
    return ctx.server(servers.squid(ctx.lab.server, ctx.work / "squid", f"""
{http_port}
hosts_file {hosts}
acl SSL_ports port 443 8443
acl CONNECT method CONNECT
http_access deny CONNECT !SSL_ports
{rules}
""", port=PORT))


def via_proxy(ctx: Ctx, url: str, *args: str) -> list[str]:
    return ["-x", f"http://{ctx.sip}:{PORT}", *args, url]


@scenario(tools=("squid",), stack="squid + curl", server_ports=(PORT,), in_test=True,
          shows="CONNECT allowed: 200 Connection established, TLS 1.3 inside the tunnel")
def squid_connect_ok(ctx: Ctx) -> list[Expect]:
    one_site(ctx, WWW)
    srv = start_squid(ctx, "http_access allow all")
    with ctx.capture([PORT]):
        run = ctx.curl(f"https://{WWW}/", "-x", f"http://{ctx.sip}:{PORT}", resolve=False)
    said = check_http(run, 200)
    srv.stop()
    logged = check_log(srv, rf"TCP_TUNNEL/200 .* CONNECT {WWW}:443")
    return [established(f"{SQUID} allowing CONNECT to 443; {NGINX} behind it; curl -x {said} "
                        f"through the tunnel; {logged}", sni=WWW, version="TLSv1.3")]


@scenario(tools=("squid",), stack="squid + curl", server_ports=(PORT,),
          shows="CONNECT denied by an ACL: squid answers 403, no TLS ever starts")
def squid_connect_denied_403(ctx: Ctx) -> list[Expect]:
    host = "blocked.example.com"
    srv = start_squid(ctx, f"acl blocked dstdomain {host}\nhttp_access deny blocked\n"
                           "http_access allow all")
    with ctx.capture([PORT]):
        run = ctx.curl(f"https://{host}/", "-x", f"http://{ctx.sip}:{PORT}", resolve=False)
    said = check(run, exit=56, says="CONNECT tunnel failed, response 403")
    srv.stop()
    logged = check_log(srv, rf"TCP_DENIED/403 .* CONNECT {host}:443")
    return [failed("proxy_error", "proxy",
                   f"{SQUID} with 'http_access deny' for dstdomain {host}; curl -x {said}; "
                   f"{logged}", sni=None)]


@scenario(tools=("squid",), stack="squid + curl", server_ports=(PORT,),
          shows="proxy authentication required: squid answers 407 to a CONNECT without "
                "credentials; with them, the tunnel and TLS succeed")
def squid_proxy_auth_407(ctx: Ctx) -> list[Expect]:
    one_site(ctx, WWW)
    hashed = subprocess.run(["openssl", "passwd", "-apr1", "s3cret"], capture_output=True,
                            text=True, check=True).stdout.strip()
    passwd = ctx.work / "passwd"
    passwd.write_text(f"alice:{hashed}\n")
    passwd.chmod(0o644)
    srv = start_squid(ctx, f"""
auth_param basic program /usr/lib/squid/basic_ncsa_auth {passwd}
auth_param basic realm proxy
acl authed proxy_auth REQUIRED
http_access allow authed
http_access deny all
""")
    proxy = ["-x", f"http://{ctx.sip}:{PORT}"]
    with ctx.capture([PORT]):
        bare = ctx.curl(f"https://{WWW}/", *proxy, resolve=False)
        authed = ctx.curl(f"https://{WWW}/", *proxy, "--proxy-user", "alice:s3cret",
                          resolve=False)
    said = check(bare, exit=56, says="CONNECT tunnel failed, response 407")
    said2 = check_http(authed, 200)
    srv.stop()
    logged = check_log(srv, rf"TCP_DENIED/407 .* CONNECT {WWW}:443",
                       rf"TCP_TUNNEL/200 .* CONNECT {WWW}:443 alice")
    return [
        failed("proxy_error", "proxy",
               f"{SQUID} requiring Basic proxy authentication; curl -x without credentials "
               f"{said}; {logged}", sni=None),
        established(f"{SQUID} requiring Basic proxy authentication; curl -x --proxy-user "
                    f"alice:... {said2} through the tunnel", sni=WWW, version="TLSv1.3"),
    ]


@scenario(tools=("squid",), stack="squid + curl", server_ports=(PORT,),
          shows="CONNECT to a port where nothing listens: squid answers 503")
def squid_connect_refused_503(ctx: Ctx) -> list[Expect]:
    srv = start_squid(ctx, "http_access allow all")
    with ctx.capture([PORT]):
        run = ctx.curl(f"https://{WWW}:8443/", "-x", f"http://{ctx.sip}:{PORT}",
                       resolve=False)
    said = check(run, exit=56, says="CONNECT tunnel failed, response 503")
    srv.stop()
    logged = check_log(srv, rf"/503 .* CONNECT {WWW}:8443")
    return [failed("proxy_error", "proxy",
                   f"{SQUID}; nothing listens on {WWW}:8443; curl -x https://{WWW}:8443/ "
                   f"{said}; {logged}", sni=None)]


def bump_config(ctx: Ctx) -> tuple[str, str]:
    """(http_port line, helper lines) for ssl-bump with the untrusted inspection CA."""
    pki = ctx.pki
    ca = ctx.work / "bump-ca.pem"
    ca.write_bytes(pki.inspection_ca.read_bytes() + pki.inspection_ca_key.read_bytes())
    ca.chmod(0o644)
    db = ctx.work / "ssl_db"
    made = subprocess.run(["/usr/lib/squid/security_file_certgen", "-c", "-s", str(db), "-M",
                           "4MB"], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        raise ScenarioError(f"security_file_certgen: {made.stderr}")
    shutil.chown(db, "proxy", "proxy")
    for p in db.rglob("*"):
        shutil.chown(p, "proxy", "proxy")
    port = (f"http_port {PORT} ssl-bump generate-host-certificates=on "
            f"dynamic_cert_mem_cache_size=4MB tls-cert={ca}")
    helpers = (f"sslcrtd_program /usr/lib/squid/security_file_certgen -s {db} -M 4MB\n"
               "sslcrtd_children 2 startup=1 idle=1\n"
               f"tls_outgoing_options cafile={pki.root}\n")
    return port, helpers


@scenario(tools=("squid",), stack="squid ssl-bump + curl", server_ports=(PORT,),
          shows="TLS interception (ssl_bump) with a CA the client does not trust: "
                "curl rejects the forged certificate inside the tunnel")
def squid_sslbump_untrusted(ctx: Ctx) -> list[Expect]:
    one_site(ctx, WWW)
    port, helpers = bump_config(ctx)
    start_squid(ctx, f"""{helpers}
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump bump all
http_access allow all
""", http_port=port)
    with ctx.capture([PORT]):
        run = ctx.curl(f"https://{WWW}/", "-x", f"http://{ctx.sip}:{PORT}", resolve=False)
    said = check(run, exit=60, says="self-signed certificate in certificate chain")
    return [failed("certificate_untrusted", "client",
                   f"{SQUID} with ssl_bump (peek, then bump) signing forged certificates with "
                   f"'Corporate TLS Inspection CA', which the client does not trust; curl -x "
                   f"{said}", sni=WWW, version="TLSv1.3")]


@scenario(tools=("squid",), stack="squid ssl-bump + curl", server_ports=(PORT,),
          shows="proxy closes the tunnel: squid answers the CONNECT with 200, peeks at the "
                "SNI and terminates blocked.example.com right after the ClientHello")
def squid_sni_terminate(ctx: Ctx) -> list[Expect]:
    host = "blocked.example.com"
    ctx.nginx(ctx.site(WWW, ctx.pki.server(WWW), default=True)
              + ctx.site(host, ctx.pki.server(host)))
    port, helpers = bump_config(ctx)
    srv = start_squid(ctx, f"""{helpers}
acl step1 at_step SslBump1
acl blocked_sni ssl::server_name {host}
ssl_bump peek step1
ssl_bump terminate blocked_sni
ssl_bump splice all
http_access allow all
""", http_port=port)
    proxy = ["-x", f"http://{ctx.sip}:{PORT}"]
    with ctx.capture([PORT]):
        ok = ctx.curl(f"https://{WWW}/", *proxy, resolve=False)
        cut = ctx.curl(f"https://{host}/", *proxy, resolve=False)
    said_ok = check_http(ok, 200)
    said = check(cut, exit=35, says="SSL_ERROR_SYSCALL")
    srv.stop()
    logged = check_log(srv, rf"CONNECT {host}:443")
    rules = f"'ssl_bump peek step1; ssl_bump terminate' for ssl::server_name {host}"
    return [
        established(f"{SQUID} with {rules}, splice otherwise; curl -x to {WWW} {said_ok} "
                    "(spliced: the origin's own handshake)", sni=WWW, version="TLSv1.3"),
        failed("proxy_error", "proxy",
               f"{SQUID} with {rules}; squid answered the CONNECT with 200, read the "
               f"ClientHello's SNI and closed the tunnel; curl -x to {host} {said}; {logged}",
               sni=host),
    ]

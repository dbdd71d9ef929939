"""nginx scenarios: the everyday HTTPS server with the settings most sites copy.

``ssl_protocols TLSv1.2 TLSv1.3`` and ``ssl_ciphers 'HIGH:!aNULL:!MD5'``; clients are curl
and ``openssl s_client`` (OpenSSL 3). OpenSSL clients send their certificate alert in
plaintext even under TLS 1.3 (before switching to handshake keys), so those failures are
visible on the wire.
"""

from __future__ import annotations

from tests.harness.pki import LeafKind
from tests.harness.servers import Server

from .base import Ctx, Expect, check, check_http, check_log, established, failed, scenario

WWW = "www.example.com"
NGINX = "nginx 1.22 (ssl_protocols TLSv1.2 TLSv1.3; ssl_ciphers HIGH:!aNULL:!MD5)"


def one_site(ctx: Ctx, name: str, kind: LeafKind = LeafKind.GOOD, extra: str = "",
             ports: tuple[int, ...] = (443,)) -> Server:
    """nginx serving ``name`` with a certificate of ``kind`` as the default server."""
    return ctx.nginx(ctx.site(name, ctx.pki.server(name, kind=kind), extra=extra,
                              default=True), ports=ports)


@scenario(stack="nginx + curl", shows="successful TLS 1.2 handshake and HTTP GET", in_test=True)
def nginx_tls12_ok(ctx: Ctx) -> list[Expect]:
    one_site(ctx, WWW)
    with ctx.capture([443]):
        run = ctx.curl(f"https://{WWW}/", "--tls-max", "1.2")
    said = check_http(run, 200)
    return [established(f"{NGINX}; curl --tls-max 1.2 fetched / (curl {said})",
                        sni=WWW, version="TLSv1.2")]


@scenario(stack="nginx + curl", shows="successful TLS 1.3 handshake and HTTP GET")
def nginx_tls13_ok(ctx: Ctx) -> list[Expect]:
    one_site(ctx, WWW)
    with ctx.capture([443]):
        run = ctx.curl(f"https://{WWW}/")
    said = check_http(run, 200)
    return [established(f"{NGINX}; curl fetched / over TLS 1.3 (curl {said})",
                        sni=WWW, version="TLSv1.3")]


@scenario(stack="nginx + openssl s_client",
          shows="TLS 1.1-only client; nginx answers with a protocol_version alert", in_test=True)
def nginx_version_mismatch(ctx: Ctx) -> list[Expect]:
    srv = one_site(ctx, WWW)
    with ctx.capture([443]):
        run = ctx.s_client(WWW, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", sni=WWW)
    said = check(run, exit=1, says="alert protocol version")
    logged = check_log(srv, r"unsupported protocol")
    return [failed("version_mismatch", "server",
                   f"{NGINX}; openssl s_client -tls1_1 {said}; {logged}", sni=WWW)]


@scenario(stack="nginx + openssl s_client",
          shows="client offering only ECDSA suites to an RSA-certificate server: "
                "handshake_failure, no shared cipher")
def nginx_cipher_mismatch(ctx: Ctx) -> list[Expect]:
    srv = one_site(ctx, WWW)
    with ctx.capture([443]):
        run = ctx.s_client(WWW, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256", sni=WWW)
    said = check(run, exit=1, says="alert handshake failure")
    logged = check_log(srv, r"no shared cipher")
    return [failed("cipher_mismatch", "server",
                   f"{NGINX} with an RSA certificate; openssl s_client -tls1_2 -cipher "
                   f"ECDHE-ECDSA-AES128-GCM-SHA256 {said}; {logged}", sni=WWW)]


# Certificate problems, each once with TLS 1.2 (certificate visible) and once with TLS 1.3.
_CERT_CASES = {
    "expired": (LeafKind.EXPIRED, "certificate_expired", "certificate has expired",
                "an expired certificate", r"alert certificate expired"),
    "not_yet_valid": (LeafKind.NOT_YET_VALID, "certificate_expired",
                      "certificate is not yet valid", "a not-yet-valid certificate",
                      r"alert (bad certificate|certificate expired)"),
    "self_signed": (LeafKind.SELF_SIGNED, "certificate_untrusted", "self-signed certificate",
                    "a self-signed certificate", r"alert (unknown ca|bad certificate)"),
    "missing_intermediate": (LeafKind.MISSING_INTERMEDIATE, "certificate_untrusted",
                             "unable to get local issuer certificate",
                             "a leaf certificate without its intermediate CA in the chain",
                             r"alert unknown ca"),
}


def _cert_scenario(case: str, tls13: bool) -> None:
    kind, failure, text, desc, alert = _CERT_CASES[case]
    host = f"{case.replace('_', '-')}.example.com"
    version = "TLSv1.3" if tls13 else "TLSv1.2"
    args = () if tls13 else ("--tls-max", "1.2")
    name = f"nginx_{case}_{'tls13' if tls13 else 'tls12'}"

    def run(ctx: Ctx) -> list[Expect]:
        srv = one_site(ctx, host, kind)
        with ctx.capture([443]):
            res = ctx.curl(f"https://{host}/", *args)
        said = check(res, exit=60, says=text)
        logged = check_log(srv, alert)
        return [failed(failure, "client",
                       f"{NGINX} serving {desc}; curl {' '.join(args) or '(TLS 1.3)'} {said}; "
                       f"{logged}", sni=host, version=version)]

    scenario(stack="nginx + curl", name=name, in_test=(case == "expired" and not tls13),
             shows=f"{desc}; curl rejects it over {version} with a plaintext alert")(run)


for _case in _CERT_CASES:
    _cert_scenario(_case, tls13=False)
    _cert_scenario(_case, tls13=True)


def _wrong_host(tls13: bool) -> None:
    version = "TLSv1.3" if tls13 else "TLSv1.2"
    args = () if tls13 else ("--tls-max", "1.2")

    def run(ctx: Ctx) -> list[Expect]:
        srv = one_site(ctx, WWW)
        with ctx.capture([443]):
            res = ctx.curl("https://other.example.net/", *args)
        said = check(res, exit=60, says="no alternative certificate subject name matches")
        logged = check_log(srv, r"client closed connection")
        return [failed("sni_mismatch", "client",
                       f"{NGINX} with a certificate for {WWW} only; curl --resolve "
                       f"other.example.net:443:{ctx.sip} {' '.join(args)} completed the "
                       f"handshake, checked the name and closed ({said}); {logged}",
                       sni="other.example.net", version=version)]

    scenario(stack="nginx + curl", name=f"nginx_wrong_host_{'tls13' if tls13 else 'tls12'}",
             shows=f"certificate for {WWW} presented for SNI other.example.net over {version}; "
                   "curl completes the handshake, then closes")(run)


_wrong_host(tls13=False)
_wrong_host(tls13=True)


@scenario(stack="nginx + curl",
          shows="ssl_reject_handshake on for unknown names: unrecognized_name alert")
def nginx_unrecognized_name(ctx: Ctx) -> list[Expect]:
    cert = ctx.pki.server(WWW)
    srv = ctx.nginx(ctx.site("_", cert, default=True, extra="ssl_reject_handshake on;")
                    + ctx.site(WWW, cert))
    with ctx.capture([443]):
        res = ctx.curl("https://unknown.example.com/")
    said = check(res, exit=35, says="unrecognized name")
    logged = check_log(srv, r"handshake rejected")
    return [failed("sni_mismatch", "server",
                   f"{NGINX} with ssl_reject_handshake on in the default server and only "
                   f"{WWW} configured; curl to unknown.example.com {said}; {logged}",
                   sni="unknown.example.com")]


@scenario(stack="nginx + curl",
          shows="client connects by IP address, so sends no SNI, to a server that needs one "
                "(ssl_reject_handshake in the default server): unrecognized_name")
def nginx_no_sni(ctx: Ctx) -> list[Expect]:
    cert = ctx.pki.server(WWW)
    srv = ctx.nginx(ctx.site("_", cert, default=True, extra="ssl_reject_handshake on;")
                    + ctx.site(WWW, cert))
    with ctx.capture([443]):
        res = ctx.client(["curl", "-sS", "-o", "/dev/null", "--cacert", str(ctx.pki.root),
                          "-H", f"Host: {WWW}", f"https://{ctx.sip}/"])
    said = check(res, exit=35, says="unrecognized name")
    logged = check_log(srv, r"handshake rejected")
    return [failed("sni_mismatch", "server",
                   f"{NGINX} hosting only {WWW} by name, ssl_reject_handshake on in the default "
                   f"server; curl https://{ctx.sip}/ -H 'Host: {WWW}' sends no SNI (an IP "
                   f"address) and {said}; {logged}", sni=None)]


@scenario(stack="nginx + curl",
          shows="ssl_verify_client on: without a client certificate nginx completes the "
                "handshake and answers HTTP 400 inside TLS; with one, HTTP 200")
def nginx_verify_client_http400(ctx: Ctx) -> list[Expect]:
    host = "mtls.example.com"
    client = ctx.pki.client("alice")
    one_site(ctx, host, extra=f"ssl_verify_client on; ssl_verify_depth 2; "
                              f"ssl_client_certificate {ctx.pki.root};")
    with ctx.capture([443]):
        bare = ctx.curl(f"https://{host}/")
        with_cert = ctx.curl(f"https://{host}/", "--cert", str(client.chain), "--key",
                             str(client.key))
    said = check_http(bare, 400)
    said2 = check_http(with_cert, 200)
    base = f"{NGINX} with ssl_verify_client on"
    return [
        established(f"{base}; curl without a client certificate: handshake completed, "
                    f"curl {said} ('No required SSL certificate was sent') inside TLS",
                    sni=host, version="TLSv1.3"),
        established(f"{base}; curl with a client certificate from the test CA {said2}",
                    sni=host, version="TLSv1.3"),
    ]


@scenario(stack="nginx + openssl s_client",
          shows="client offering only ALPN 'imap' to an http2 server: no_application_protocol")
def nginx_alpn_mismatch(ctx: Ctx) -> list[Expect]:
    srv = ctx.nginx(ctx.site(WWW, ctx.pki.server(WWW), default=True, listen="http2"))
    with ctx.capture([443]):
        run = ctx.s_client(WWW, "-alpn", "imap", sni=WWW)
    said = check(run, exit=1, says="alert no application protocol")
    logged = check_log(srv, r"no application protocol")
    return [failed("alpn_mismatch", "server",
                   f"{NGINX} with http2 (ALPN h2, http/1.1); openssl s_client -alpn imap "
                   f"{said}; {logged}", sni=WWW)]


@scenario(stack="nginx + curl",
          shows="plaintext HTTP sent to the TLS port: nginx answers HTTP 400 in plaintext")
def nginx_http_to_tls_port(ctx: Ctx) -> list[Expect]:
    srv = one_site(ctx, WWW)
    with ctx.capture([443]):
        res = ctx.curl(f"http://{WWW}:443/")
    said = check_http(res, 400)
    logged = check_log(srv, r"400")
    return [Expect(outcome="not_tls", failure="not_tls", failure_side="server", sni=None,
                   setup=f"{NGINX}; curl http://{WWW}:443/ sent plain HTTP to the TLS port: "
                         f"curl {said} ('The plain HTTP request was sent to HTTPS port'), "
                         f"then nginx closed; {logged}")]


@scenario(stack="nginx + curl", server_ports=(8080,), tls_ports=(8080,),
          shows="TLS ClientHello sent to a plain HTTP port: HTTP 400 back, curl "
                "'wrong version number'", in_test=True)
def nginx_tls_to_http_port(ctx: Ctx) -> list[Expect]:
    srv = ctx.nginx("server { listen 8080; location / { return 200 \"plain\\n\"; } }",
                    ports=(8080,))
    with ctx.capture([8080]):
        res = ctx.curl(f"https://{WWW}:8080/")
    said = check(res, exit=35, says="wrong version number")
    logged = check_log(srv, r'"\\x16\\x03\\x01.*" 400')
    return [failed("not_tls", "server",
                   f"nginx plain HTTP listener on 8080; curl https://{WWW}:8080/ sent a "
                   f"ClientHello, nginx answered HTTP 400 and closed, curl {said}; {logged}",
                   sni=WWW)]

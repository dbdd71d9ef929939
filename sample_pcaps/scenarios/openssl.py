"""OpenSSL ``s_server``/``s_client`` and stunnel scenarios.

A default OpenSSL 3 server (``s_server``, security level 1) answers a TLS 1.1-only client
with ``internal_error`` rather than ``protocol_version``; ``-Verify 1`` requires a client
certificate (TLS 1.3: the ``certificate_required`` alert is encrypted); ``-alpn`` without
overlap ends with ``no_application_protocol``; ``-groups P-384`` forces a
HelloRetryRequest; ``-sess_out``/``-sess_in`` resume sessions. stunnel with
``verifyChain`` refuses a TLS 1.2 client without a certificate (plaintext
``handshake_failure``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.harness import servers
from tests.harness.servers import Server

from .base import Ctx, Expect, ScenarioError, check, check_log, established, failed, scenario

WWW = "www.example.com"


def s_server(ctx: Ctx, *args: str, name: str = "s_server") -> Server:
    """``openssl s_server -www`` on 443 with the good chain for www.example.com."""
    cert = ctx.pki.server(WWW)
    return ctx.server(servers.s_server(
        ctx.lab.server, ctx.work / name,
        ["-cert", str(cert.cert), "-cert_chain", str(ctx.pki.intermediate), "-key",
         str(cert.key), "-www", *args], name=name))


def tshark_count(path: Path, display_filter: str) -> int:
    """Number of packets of ``path`` matching a Wireshark display filter."""
    done = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", display_filter],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ScenarioError(f"tshark: {done.stderr}")
    return len(done.stdout.splitlines())


@scenario(stack="openssl s_server + s_client", in_test=True,
          shows="default OpenSSL 3 server, TLS 1.1-only client: internal_error alert "
                "(OpenSSL's way of saying no common version)")
def openssl_version_internal_error(ctx: Ctx) -> list[Expect]:
    srv = s_server(ctx)
    with ctx.capture([443]):
        run = ctx.s_client(WWW, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", sni=WWW)
    said = check(run, exit=1, says="alert internal error")
    logged = check_log(srv, r"no suitable signature algorithm")
    return [failed("version_mismatch", "server",
                   "openssl s_server (OpenSSL 3.0 defaults, security level 1); openssl "
                   f"s_client -tls1_1 {said}; {logged}", sni=WWW)]


@scenario(stack="openssl s_server + s_client",
          shows="server speaks only ALPN h2, client offers only http/1.1: "
                "no_application_protocol")
def openssl_alpn_mismatch(ctx: Ctx) -> list[Expect]:
    srv = s_server(ctx, "-alpn", "h2")
    with ctx.capture([443]):
        run = ctx.s_client(WWW, "-alpn", "http/1.1", sni=WWW)
    said = check(run, exit=1, says="alert no application protocol")
    logged = check_log(srv, r"no application protocol")
    return [failed("alpn_mismatch", "server",
                   f"openssl s_server -alpn h2; openssl s_client -alpn http/1.1 {said}; {logged}",
                   sni=WWW)]


@scenario(stack="openssl s_server + s_client",
          shows="TLS 1.3 server requiring a client certificate (-Verify 1), client sends "
                "none: encrypted certificate_required alert after the client's Finished")
def openssl_client_cert_required_tls13(ctx: Ctx) -> list[Expect]:
    srv = s_server(ctx, "-Verify", "1", "-CAfile", str(ctx.pki.root))
    with ctx.capture([443]):
        run = ctx.s_client(WWW, "-ign_eof", sni=WWW, input="")
    said = check(run, exit=1, says="alert certificate required")
    logged = check_log(srv, r"peer did not return a certificate")
    return [failed("client_certificate_required", "server",
                   f"openssl s_server -Verify 1 (TLS 1.3); openssl s_client without a client "
                   f"certificate {said}; {logged}", sni=WWW, version="TLSv1.3")]


@scenario(tools=("stunnel",), stack="stunnel + curl", server_ports=(8443,), tls_ports=(8443,),
          shows="stunnel with verifyChain (TLS 1.2), curl without a client certificate: "
                "empty Certificate, plaintext handshake_failure")
def stunnel_client_cert_required_tls12(ctx: Ctx) -> list[Expect]:
    cert = ctx.pki.server(WWW)
    srv = ctx.server(servers.stunnel(ctx.lab.server, ctx.work / "stunnel", f"""
[https]
accept = 8443
connect = 127.0.0.1:8080
cert = {cert.chain}
key = {cert.key}
CAfile = {ctx.pki.root}
verifyChain = yes
sslVersionMax = TLSv1.2
""", ports=[8443]))
    with ctx.capture([8443]):
        run = ctx.curl(f"https://{WWW}:8443/")
    said = check(run, exit=35, says="alert handshake failure")
    logged = check_log(srv, r"peer did not return a certificate")
    return [failed("client_certificate_required", "server",
                   f"stunnel 5.68 (verifyChain = yes, sslVersionMax = TLSv1.2); curl without "
                   f"a client certificate {said}; {logged}", sni=WWW, version="TLSv1.2")]


@scenario(stack="openssl s_server + s_client",
          shows="server accepts only P-384, client's key share is X25519: HelloRetryRequest, "
                "then success")
def openssl_hello_retry_request(ctx: Ctx) -> list[Expect]:
    s_server(ctx, "-groups", "P-384")
    with ctx.capture([443]):
        run = ctx.s_client(WWW, "-groups", "X25519:P-384", sni=WWW,
                           input="GET / HTTP/1.0\r\n\r\n")
    said = check(run, exit=0, says=["New, TLSv1.3", "Verification: OK"])
    hellos = tshark_count(ctx.raw, "tls.handshake.type == 1")
    if hellos != 2:
        raise ScenarioError(f"expected 2 ClientHellos (HelloRetryRequest), tshark saw {hellos}")
    return [established("openssl s_server -groups P-384; openssl s_client -groups X25519:P-384 "
                        f"sent an X25519 key share, got a HelloRetryRequest and a second "
                        f"ClientHello (2 ClientHellos per tshark), {said}", sni=WWW,
                        version="TLSv1.3")]


@scenario(stack="openssl s_server + s_client",
          shows="session resumption: TLS 1.2 by session id, TLS 1.3 by PSK ticket "
                "(full handshake, then resumed, for each)")
def openssl_resumption(ctx: Ctx) -> list[Expect]:
    s_server(ctx)
    sess12, sess13 = ctx.work / "s12.pem", ctx.work / "s13.pem"
    req = "GET / HTTP/1.0\r\n\r\n"
    with ctx.capture([443]):  # -ign_eof: read until s_server closes, tickets included
        runs = [
            ctx.s_client(WWW, "-ign_eof", "-tls1_2", "-no_ticket", "-sess_out", str(sess12),
                         sni=WWW, input=req),
            ctx.s_client(WWW, "-ign_eof", "-tls1_2", "-no_ticket", "-sess_in", str(sess12),
                         sni=WWW, input=req),
            ctx.s_client(WWW, "-ign_eof", "-sess_out", str(sess13), sni=WWW, input=req),
            ctx.s_client(WWW, "-ign_eof", "-sess_in", str(sess13), sni=WWW, input=req),
        ]
    saids = [
        check(runs[0], exit=0, says="New, TLSv1.2"),
        check(runs[1], exit=0, says="Reused, TLSv1.2"),
        check(runs[2], exit=0, says="New, TLSv1.3"),
        check(runs[3], exit=0, says="Reused, TLSv1.3"),
    ]
    base = "openssl s_server (session cache and tickets on); openssl s_client"
    return [
        established(f"{base} -tls1_2 -no_ticket -sess_out, full handshake: {saids[0]}",
                    sni=WWW, version="TLSv1.2"),
        established(f"{base} -tls1_2 -no_ticket -sess_in, resumed by session id: {saids[1]}",
                    sni=WWW, version="TLSv1.2"),
        established(f"{base} -sess_out (TLS 1.3), full handshake: {saids[2]}",
                    sni=WWW, version="TLSv1.3"),
        established(f"{base} -sess_in (TLS 1.3), resumed with a PSK ticket: {saids[3]}",
                    sni=WWW, version="TLSv1.3"),
    ]




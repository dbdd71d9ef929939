"""Alerts that real OpenSSL 3 peers send for reasons other than trust or versions.

- A 1024-bit RSA leaf: OpenSSL 3 clients (security level 2, Debian's default) refuse it
  with ``bad_certificate`` ("EE certificate key too weak"); the server must drop to
  ``@SECLEVEL=0`` to load and serve it at all (``-cipher DEFAULT@SECLEVEL=0`` sets the
  level of the whole context, TLS 1.3 included).
- A TLS 1.2 session resumed with a cipher list that no longer holds the session's suite:
  the server answers ``illegal_parameter`` ("required cipher missing"), what a client
  sees after its cipher configuration changed under a session cache.
- ``TLS_FALLBACK_SCSV`` (RFC 7507) from a client that offers only TLS 1.2 to a TLS 1.3
  server: ``inappropriate_fallback``.

Truth: the client's exit status and error text, the server's own error lines.
"""

from __future__ import annotations

from tests.harness import servers
from tests.harness.private_pki import weak_rsa_leaf

from .base import Ctx, Expect, check, check_log, established, failed, scenario
from .openssl import WWW, s_server

S_SERVER = "openssl s_server (OpenSSL 3.0)"


@scenario(stack="openssl s_server + s_client, curl",
          shows="a 1024-bit RSA leaf served at @SECLEVEL=0; OpenSSL 3 clients refuse it with "
                "bad_certificate (TLS 1.2 and TLS 1.3)")
def openssl_rsa1024_refused(ctx: Ctx) -> list[Expect]:
    pki = ctx.pki
    # Signed by the test intermediate (its key is TestPKI's own): only the key size is wrong.
    cert, key = weak_rsa_leaf(ctx.work / "weak", pki.intermediate, pki._int_key,
                              (WWW,), 1024, org="Example Test PKI")
    srv = ctx.server(servers.s_server(ctx.lab.server, ctx.work / "s_server", [
        "-cert", str(cert), "-cert_chain", str(pki.intermediate), "-key", str(key), "-www",
        "-cipher", "DEFAULT@SECLEVEL=0"]))
    with ctx.capture([443]):
        tls12 = ctx.s_client(WWW, "-tls1_2", sni=WWW)
        tls13 = ctx.curl(f"https://{WWW}/")
    said12 = check(tls12, exit=1, says="EE certificate key too weak", what="s_client")
    said13 = check(tls13, exit=60, says="EE certificate key too weak", what="curl")
    logged = check_log(srv, r"alert bad certificate")
    setup = (f"{S_SERVER} with -cipher DEFAULT@SECLEVEL=0 serving a 1024-bit RSA leaf under "
             "the test intermediate; clients at Debian's security level 2")
    return [
        failed("certificate_invalid", "client",
               f"{setup}; openssl s_client -tls1_2 -verify_return_error {said12}; {logged}",
               sni=WWW, version="TLSv1.2"),
        failed("certificate_invalid", "client", f"{setup}; curl (TLS 1.3) {said13}",
               sni=WWW, version="TLSv1.3"),
    ]


@scenario(stack="openssl s_server + s_client",
          shows="TLS 1.2 resumption offering a cipher list without the session's suite: "
                "illegal_parameter from the server")
def openssl_resume_cipher_missing(ctx: Ctx) -> list[Expect]:
    srv = s_server(ctx)
    session = ctx.work / "session.pem"
    with ctx.capture([443]):
        first = ctx.s_client(WWW, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256",
                             "-sess_out", str(session), sni=WWW)
        again = ctx.s_client(WWW, "-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384",
                             "-sess_in", str(session), sni=WWW)
    said1 = check(first, exit=0, says="Verify return code: 0 (ok)", what="s_client")
    said2 = check(again, exit=1, says="alert illegal parameter", what="s_client")
    logged = check_log(srv, r"required cipher missing")
    return [
        established(f"{S_SERVER}; openssl s_client -tls1_2 -cipher "
                    f"ECDHE-RSA-AES128-GCM-SHA256 -sess_out {said1}", sni=WWW,
                    version="TLSv1.2"),
        failed("protocol_error", "server",
               f"{S_SERVER}; the same client resumed that session with -cipher "
               f"ECDHE-RSA-AES256-GCM-SHA384 -sess_in and {said2}; {logged}", sni=WWW),
    ]


@scenario(stack="openssl s_server + s_client",
          shows="client offering TLS 1.2 with TLS_FALLBACK_SCSV to a TLS 1.3 server: "
                "inappropriate_fallback")
def openssl_inappropriate_fallback(ctx: Ctx) -> list[Expect]:
    srv = s_server(ctx)
    with ctx.capture([443]):
        run = ctx.s_client(WWW, "-tls1_2", "-fallback_scsv", sni=WWW)
    said = check(run, exit=1, says="alert inappropriate fallback", what="s_client")
    logged = check_log(srv, r"inappropriate fallback")
    return [failed("other_alert", "server",
                   f"{S_SERVER} (TLS 1.2 and 1.3); openssl s_client -tls1_2 -fallback_scsv "
                   f"(RFC 7507, as a client retrying with a lower version does) {said}; "
                   f"{logged}", sni=WWW)]

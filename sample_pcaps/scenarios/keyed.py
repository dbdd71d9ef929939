"""Captures with their key logs: each client writes its own ``SSLKEYLOGFILE``-format key
log, stored beside the captures as ``keys/NAME.keys`` (secrets of a throw-away test PKI
and of these connections only).

They are the TLS 1.3 failures that are only inferred without keys: GnuTLS and Chromium
encrypt the alert that rejects a certificate, curl checks the host name after the
handshake and leaves with a close_notify, and a server refuses a missing client
certificate with an alert encrypted after the client's Finished. With the key log
(``tlsa analyze --keylog sample_pcaps/keys/NAME.keys``) the certificate, the
EncryptedExtensions, the CertificateRequest and the alerts are read.
"""

from __future__ import annotations

import subprocess

from tests.harness import servers
from tests.harness.capture import tcp_connections
from tests.harness.keyclients import (
    KeyedClient,
    chromium,
    chromium_profile,
    curl,
    gnutls,
    openssl,
    python,
)
from tests.harness.netns import Run
from tests.harness.pki import LeafKind

from .base import Ctx, Expect, ScenarioError, check, check_log, established, failed, scenario
from .nginx import NGINX, WWW, one_site

TLS13 = "ssl_protocols TLSv1.3;"


def _run(ctx: Ctx, client: KeyedClient) -> Run:
    return ctx.lab.client.run(client.argv, env=client.env, input=client.input, timeout=60)


def _tshark_encrypted_alerts(ctx: Ctx) -> int:
    """Alerts tshark can read without the key log (an encrypted one is not among them)."""
    done = subprocess.run(["tshark", "-n", "-r", str(ctx.raw), "-Y", "tls.alert_message.desc"],
                          capture_output=True, text=True, check=False)
    return len(done.stdout.splitlines())


@scenario(tools=("gnutls-cli",), stack="nginx + gnutls-cli, key log", in_test=True,
          shows="TLS 1.3: GnuTLS rejects an expired certificate with an encrypted alert; "
                "keys/ has its key log")
def keyed_gnutls_tls13_expired(ctx: Ctx) -> list[Expect]:
    host = "expired.example.com"
    one_site(ctx, host, LeafKind.EXPIRED, extra=TLS13)
    with ctx.capture([443]):
        run = _run(ctx, gnutls(host, ctx.sip, 443, ctx.keys, ca=ctx.pki.root))
    said = check(run, exit=1, says=["The certificate chain uses expired certificate"],
                 what="gnutls-cli")
    if _tshark_encrypted_alerts(ctx):
        raise ScenarioError("expected gnutls-cli's alert to be encrypted")
    return [failed("certificate_expired", "client",
                   f"{NGINX} with TLS 1.3 only and an expired certificate; gnutls-cli 3.7 with "
                   f"SSLKEYLOGFILE {said}; its alert is encrypted", sni=host,
                   version="TLSv1.3")]


@scenario(tools=("chromium", "certutil"), stack="nginx + chromium, key log",
          shows="TLS 1.3: Chromium rejects a certificate from an untrusted inspection CA "
                "(encrypted alert); keys/ has its --ssl-key-log-file")
def keyed_chromium_tls13_untrusted(ctx: Ctx) -> list[Expect]:
    host = "intranet.example.com"
    one_site(ctx, host, LeafKind.INSPECTION, extra=TLS13)
    home = ctx.work / "home"
    chromium_profile(home, ctx.pki.root)
    with ctx.capture([443]):
        run = _run(ctx, chromium(host, ctx.sip, 443, ctx.keys, home=home))
    if "ERR_CERT_AUTHORITY_INVALID" not in run.output:
        raise ScenarioError(f"chromium did not reject the certificate: "
                            f"{run.output[-2000:]}")
    n = len(tcp_connections(ctx.raw, (443,)))
    return [failed("certificate_untrusted", "client",
                   f"{NGINX} with TLS 1.3 only and a certificate issued by an untrusted "
                   "inspection CA; headless chromium 156 (test root trusted in its NSS "
                   "database, --ssl-key-log-file) reported net::ERR_CERT_AUTHORITY_INVALID; "
                   f"connection {i + 1} of {n} it opened", sni=host, version="TLSv1.3")
            for i in range(n)]


@scenario(stack="nginx + curl, key log",
          shows="TLS 1.3: curl checks the host name after the handshake and leaves with an "
                "encrypted close_notify; keys/ has its key log")
def keyed_curl_tls13_wrong_host(ctx: Ctx) -> list[Expect]:
    asked = "other.example.com"
    one_site(ctx, WWW, extra=TLS13)
    with ctx.capture([443]):
        run = _run(ctx, curl(asked, ctx.sip, 443, ctx.keys, "--tlsv1.3", ca=ctx.pki.root))
    said = check(run, exit=60, says=["no alternative certificate subject name matches"],
                 what="curl")
    return [failed("sni_mismatch", "client",
                   f"{NGINX} with TLS 1.3 only, serving {WWW}; curl --tlsv1.3 with SSLKEYLOGFILE "
                   f"asked for {asked} and {said}", sni=asked, version="TLSv1.3")]


@scenario(tools=("haproxy",), stack="haproxy + Python ssl, key log",
          shows="TLS 1.3: haproxy (verify required) refuses a client without a certificate "
                "after its Finished (encrypted certificate_required); keys/ has Python's "
                "keylog_filename")
def keyed_haproxy_client_cert_required_tls13(ctx: Ctx) -> list[Expect]:
    cert = ctx.pki.server(WWW)
    pem = ctx.work / "haproxy.pem"
    pem.write_bytes(cert.chain.read_bytes() + cert.key.read_bytes())
    srv = ctx.server(servers.haproxy(ctx.lab.server, ctx.work / "haproxy", f"""
frontend https
    mode http
    option httplog
    bind :443 ssl crt {pem} ca-file {ctx.pki.root} verify required ssl-min-ver TLSv1.3
    http-request return status 200 content-type text/plain string ok
""", ports=[443]))
    with ctx.capture([443]):
        run = _run(ctx, python(WWW, ctx.sip, 443, ctx.keys, ca=ctx.pki.root))
    said = check(run, exit=1, says=["CERTIFICATE_REQUIRED"], what="python")
    logged = check_log(srv, r"SSL handshake failure")
    return [failed("client_certificate_required", "server",
                   "haproxy 2.6 with verify required (TLS 1.3 only); Python ssl with "
                   f"keylog_filename and no client certificate {said}; {logged}", sni=WWW,
                   version="TLSv1.3")]


@scenario(stack="openssl s_server + s_client, key log",
          shows="TLS 1.2 AES-CBC with encrypt_then_mac, then TLS 1.3 resumed with a ticket: "
                "both succeed; keys/ has s_client's -keylogfile")
def keyed_openssl_tls12_cbc_and_tls13_resumption(ctx: Ctx) -> list[Expect]:
    cert = ctx.pki.server(WWW)
    ctx.server(servers.s_server(ctx.lab.server, ctx.work / "s_server",
                                ["-cert", str(cert.cert), "-cert_chain", str(cert.chain),
                                 "-key", str(cert.key), "-www"], port=443))
    session = ctx.work / "session.pem"
    with ctx.capture([443]):
        cbc = _run(ctx, openssl(WWW, ctx.sip, 443, ctx.keys, "-tls1_2", "-cipher",
                                "ECDHE-RSA-AES128-SHA256", ca=ctx.pki.root))
        first = _run(ctx, openssl(WWW, ctx.sip, 443, ctx.keys, "-tls1_3", "-sess_out",
                                  str(session), ca=ctx.pki.root))
        again = _run(ctx, openssl(WWW, ctx.sip, 443, ctx.keys, "-tls1_3", "-sess_in",
                                  str(session), ca=ctx.pki.root))
    said = [check(cbc, exit=0, says=["ECDHE-RSA-AES128-SHA256"], what="s_client"),
            check(first, exit=0, says=["New, TLSv1.3"], what="s_client"),
            check(again, exit=0, says=["Reused, TLSv1.3"], what="s_client")]
    base = "openssl s_server -www; s_client -keylogfile"
    return [established(f"{base} -tls1_2 -cipher ECDHE-RSA-AES128-SHA256 (encrypt_then_mac "
                        f"offered and echoed) {said[0]}", sni=WWW, version="TLSv1.2"),
            established(f"{base} -tls1_3 -sess_out {said[1]}", sni=WWW, version="TLSv1.3"),
            established(f"{base} -tls1_3 -sess_in {said[2]}", sni=WWW, version="TLSv1.3")]

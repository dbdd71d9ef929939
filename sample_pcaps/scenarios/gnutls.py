"""gnutls-cli scenarios: GnuTLS encrypts its TLS 1.3 alerts, unlike OpenSSL clients."""

from __future__ import annotations

from tests.harness.pki import LeafKind

from .base import Ctx, Expect, ScenarioError, check, established, failed, scenario
from .nginx import one_site
from .openssl import s_server, tshark_count


def gnutls_cli(ctx: Ctx, sni: str, *args: str) -> list[str]:
    return ["gnutls-cli", "--x509cafile", str(ctx.pki.root), "--sni-hostname", sni,
            "--verify-hostname", sni, "-p", "443", *args, ctx.sip]


@scenario(tools=("gnutls-cli",), stack="nginx + gnutls-cli", in_test=True,
          shows="TLS 1.3 client rejects an untrusted server certificate: only an encrypted "
                "alert on the wire")
def gnutls_tls13_untrusted(ctx: Ctx) -> list[Expect]:
    host = "intranet.example.com"
    one_site(ctx, host, LeafKind.INSPECTION)
    with ctx.capture([443]):
        run = ctx.client(gnutls_cli(ctx, host), input="")
    said = check(run, exit=1, says=["The certificate is NOT trusted",
                                    "The certificate issuer is unknown"])
    if tshark_count(ctx.raw, "tls.alert_message") != 0:
        raise ScenarioError("expected no plaintext alert from gnutls-cli under TLS 1.3")
    return [failed("certificate_untrusted", "client",
                   "nginx serving a certificate from an untrusted inspection CA; gnutls-cli "
                   f"3.7 {said}; its alert is encrypted (tshark sees no plaintext alert)",
                   sni=host, version="TLSv1.3")]


@scenario(tools=("gnutls-cli",), stack="openssl s_server + gnutls-cli",
          shows="GnuTLS client (X25519 and P-256 key shares) to a P-384-only server: "
                "HelloRetryRequest, then success")
def gnutls_hello_retry_request(ctx: Ctx) -> list[Expect]:
    host = "www.example.com"
    s_server(ctx, "-groups", "P-384")
    with ctx.capture([443]):
        run = ctx.client(gnutls_cli(ctx, host), input="")
    said = check(run, exit=0, says=["Handshake was completed", "SECP384R1"])
    hellos = tshark_count(ctx.raw, "tls.handshake.type == 1")
    if hellos != 2:
        raise ScenarioError(f"expected 2 ClientHellos (HelloRetryRequest), tshark saw {hellos}")
    return [established(f"openssl s_server -groups P-384; gnutls-cli 3.7 got a "
                        f"HelloRetryRequest (2 ClientHellos per tshark), {said}", sni=host,
                        version="TLSv1.3")]

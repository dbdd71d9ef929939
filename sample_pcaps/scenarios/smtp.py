"""STARTTLS on SMTP with Postfix: an upgrade that succeeds and one the server refuses.

The refused one is the classic misconfiguration: ``smtpd_tls_security_level = may`` with
a certificate file that does not exist. Postfix still advertises STARTTLS, then answers
the command with ``454 4.7.0 TLS not available due to local problem``; no ClientHello is
ever sent, so the truth is ``not_tls`` with no failure category (SPEC §3/§4: the server
side did not expect TLS).
"""

from __future__ import annotations

from tests.harness import servers

from .base import Ctx, Expect, check, check_log, established, scenario

MX = "mail.example.com"
POSTFIX = "Postfix 3.7 smtpd on :25"


@scenario(tools=("postfix",), stack="Postfix + openssl s_client -starttls smtp",
          server_ports=(25,),
          shows="SMTP STARTTLS: EHLO, STARTTLS, 220, then a TLS 1.3 handshake")
def smtp_starttls_ok(ctx: Ctx) -> list[Expect]:
    cert = ctx.pki.server(MX)
    srv = ctx.server(servers.postfix(ctx.lab.server, ctx.work / "postfix", f"""
smtpd_tls_security_level = may
smtpd_tls_chain_files = {cert.key}, {cert.chain}
smtpd_tls_loglevel = 1
"""))
    with ctx.capture([25]):
        run = ctx.s_client(MX, "-starttls", "smtp", "-crlf", sni=MX, port=25,
                           input="QUIT\r\n")
    said = check(run, exit=0, says=["Verification: OK", "New, TLSv1.3"])
    srv.stop()
    logged = check_log(srv, r"Anonymous TLS connection established from .*TLSv1\.3")
    return [established(f"{POSTFIX} (smtpd_tls_security_level = may, good certificate); "
                        f"openssl s_client -starttls smtp {said}; {logged}", sni=MX,
                        version="TLSv1.3")]


@scenario(tools=("postfix",), stack="Postfix + curl smtp --ssl-reqd", server_ports=(25,),
          shows="SMTP STARTTLS refused: Postfix advertises STARTTLS but answers 454 (its "
                "certificate file is missing); no ClientHello")
def smtp_starttls_refused(ctx: Ctx) -> list[Expect]:
    srv = ctx.server(servers.postfix(ctx.lab.server, ctx.work / "postfix", f"""
smtpd_tls_security_level = may
smtpd_tls_cert_file = {ctx.work}/missing-cert.pem
smtpd_tls_key_file = {ctx.work}/missing-key.pem
"""))
    with ctx.capture([25]):
        run = ctx.client(["curl", "-sS", "--ssl-reqd", "--resolve", f"{MX}:25:{ctx.sip}",
                          "--cacert", str(ctx.pki.root), "--mail-from", "alice@example.com",
                          "--mail-rcpt", "bob@example.com", "-T", "/dev/null", f"smtp://{MX}/client.example.com"])
    said = check(run, exit=64, says="STARTTLS denied")
    srv.stop()
    logged = check_log(srv, r"cannot get RSA certificate|No such file")
    return [Expect(outcome="not_tls", sni=None,
                   setup=f"{POSTFIX} with smtpd_tls_security_level = may but its certificate "
                         "file missing: it still advertises STARTTLS and answers it with 454 "
                         f"4.7.0 'TLS not available due to local problem'; curl smtp "
                         f"--ssl-reqd {said}; {logged}")]

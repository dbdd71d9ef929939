"""Diagnoses on failures made by stacks and settings the sample captures do not use.

Each test sets up a real server (gnutls-serv, nginx, openssl s_server) and a real client
in private namespaces, checks what the client itself reported (its exit status and error
text: the ground truth), then checks the record. Where the remedy names a command that
shows what the server accepts, the command is run against the same server.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from analyzer.api import analyze
from analyzer.record import HandshakeRecord
from tests.harness import TestPKI, missing_requirements
from tests.harness.servers import Server

SAMPLES = Path(__file__).resolve().parents[1] / "sample_pcaps"
if str(SAMPLES) not in sys.path:
    sys.path.insert(0, str(SAMPLES))

from scenarios.base import Ctx  # noqa: E402

pytestmark = pytest.mark.skipif(
    (why := missing_requirements(("ip", "tcpdump", "nginx", "openssl", "curl", "gnutls-serv")))
    is not None,
    reason=why or "",
)

WWW = "www.example.com"

def records(ctx: Ctx) -> list[HandshakeRecord]:
    return list(analyze(ctx.raw, ca_bundle=ctx.pki.root, cross=True))


def only_record(ctx: Ctx) -> HandshakeRecord:
    found = records(ctx)
    assert len(found) == 1, [r.reason for r in found]
    return found[0]


def gnutls_serv(ctx: Ctx, *args: str) -> Server:
    cert = ctx.pki.server(WWW)
    work = ctx.work / "gnutls-serv"
    work.mkdir(parents=True, exist_ok=True)
    argv = ["gnutls-serv", "--http", "-p", "443", "--x509certfile", str(cert.chain),
            "--x509keyfile", str(cert.key), *args]
    return ctx.server(Server(ctx.lab.server, "gnutls-serv", argv, workdir=work, ports=[443]))


def accepted_check(ctx: Ctx, remedy: str | None) -> str:
    """Run the remedy's 'check what the server accepts' command; its output."""
    assert remedy is not None
    m = re.search(r"then check what the server accepts: (.+)$", remedy)
    assert m, remedy
    return ctx.client(["bash", "-c", m.group(1)]).output


def test_tls13_only_gnutls_server_refusing_a_tls12_client_is_a_version_mismatch(
    ctx: Ctx,
) -> None:
    gnutls_serv(ctx, "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.3")
    with ctx.capture([443]):
        run = ctx.s_client(WWW, "-tls1_2", sni=WWW)
    assert run.returncode != 0 and "alert handshake failure" in run.output
    r = only_record(ctx)
    assert (r.outcome, r.failure, r.failure_side, r.inferred) == (
        "failed", "version_mismatch", "server", True)
    assert r.last_alert == "handshake_failure" and "only TLS 1.3" in (r.reason or "")
    assert "-tls1_3" in (r.remedy or "")
    assert "TLSv1.3" in accepted_check(ctx, r.remedy)


def test_gnutls_decode_error_after_an_empty_client_certificate(ctx: Ctx) -> None:
    gnutls_serv(ctx, "--require-client-cert", "--x509cafile", str(ctx.pki.root))
    with ctx.capture([443]):
        run = ctx.curl(f"https://{WWW}/", "--tls-max", "1.2")
    assert run.returncode == 35, run.output  # curl: SSL connect error
    r = only_record(ctx)
    assert r.client_certificates == 0 and r.last_alert == "decode_error"
    assert (r.failure, r.failure_side) == ("client_certificate_required", "server")
    assert "empty client Certificate" in (r.reason or "")


def test_tls13_only_client_to_a_tls12_server_says_to_enable_tls13_on_the_server(
    ctx: Ctx,
) -> None:
    cert = ctx.pki.server(WWW)
    ctx.nginx(ctx.site(WWW, cert, protocols="TLSv1.2", default=True))
    with ctx.capture([443]):
        run = ctx.curl(f"https://{WWW}/", "--tlsv1.3", "--tls-max", "1.3")
    assert run.returncode == 35 and "protocol version" in run.output
    r = only_record(ctx)
    assert (r.failure, r.failure_side) == ("version_mismatch", "server")
    assert (r.remedy or "").startswith("The client offers only TLS 1.3")
    assert "TLSv1.2" in accepted_check(ctx, r.remedy)


def test_host_name_rejected_in_the_handshake(ctx: Ctx) -> None:
    cert = ctx.pki.server(WWW)
    ctx.nginx(ctx.site(WWW, cert, default=True))
    asked = "wrong.example"
    with ctx.capture([443]):
        runs = [ctx.s_client(WWW, version, "-verify_hostname", asked, sni=asked)
                for version in ("-tls1_2", "-tls1_3")]
    for run in runs:
        assert run.returncode != 0 and "hostname mismatch" in run.output
    tls12, tls13 = sorted(records(ctx), key=lambda r: r.ts)
    # TLS 1.2 shows the certificate: the names are compared.
    assert (tls12.failure, tls12.failure_side) == ("sni_mismatch", "client")
    # TLS 1.3 hides it, and bad_certificate stands for several checks: alone, the host
    # name (inferred); the same server's visible certificate (the TLS 1.2 connection)
    # confirms it.
    assert tls13.last_alert == "bad_certificate" and tls13.version == "TLSv1.3"
    assert tls13.failure == "sni_mismatch", tls13.reason
    assert tls12.uid in (tls13.reason or "")
    alone = diagnose_alone(ctx, tls13)
    assert alone.failure == "sni_mismatch" and alone.inferred and asked in (alone.reason or "")


def diagnose_alone(ctx: Ctx, r: HandshakeRecord) -> HandshakeRecord:
    """The record as it is before cross-connection evidence."""
    return next(x for x in analyze(ctx.raw, ca_bundle=ctx.pki.root) if x.uid == r.uid)


def test_refused_broad_tls12_offer_is_a_cipher_mismatch_when_the_server_took_tls12(
    ctx: Ctx,
) -> None:
    cert = ctx.pki.server(WWW)
    chacha = "ECDHE-RSA-CHACHA20-POLY1305"
    ctx.nginx(ctx.site(WWW, cert, protocols="TLSv1.2", ciphers=chacha, default=True))
    with ctx.capture([443]):
        ok = ctx.s_client(WWW, "-tls1_2", "-cipher", chacha, sni=WWW)
        refused = ctx.s_client(WWW, "-tls1_2", "-cipher", "ECDHE+AESGCM", sni=WWW)
    assert ok.returncode == 0 and "alert handshake failure" in refused.output
    good, bad = sorted(records(ctx), key=lambda r: r.ts)
    assert good.outcome == "established" and good.version == "TLSv1.2"
    # Alone, a refused TLS 1.2 hello this broad points at a TLS 1.3-only server...
    assert diagnose_alone(ctx, bad).failure == "version_mismatch"
    # ... but the same server negotiated TLS 1.2 with the other client.
    assert (bad.failure, bad.failure_side) == ("cipher_mismatch", "server")
    assert "the version is not what it refused" in (bad.reason or "")


def test_no_common_group_names_the_groups_and_reproduces_with_them(ctx: Ctx) -> None:
    from scenarios.openssl import s_server

    s_server(ctx, "-groups", "P-256")
    with ctx.capture([443]):
        run = ctx.s_client(WWW, "-tls1_3", "-groups", "X448", sni=WWW)
    assert run.returncode != 0 and "handshake failure" in run.output
    r = only_record(ctx)
    assert (r.failure, r.failure_side) == ("cipher_mismatch", "server")
    assert "groups x448 (key share)" in (r.reason or "")
    assert "x25519 or secp256r1" in (r.reason or "")
    remedy = r.remedy or ""
    reproduce = re.search(r"reproduce: (.+?); then", remedy)
    default = re.search(r"OpenSSL's default offer: (.+)$", remedy)
    assert reproduce and default, remedy
    assert "-groups X448" in reproduce.group(1)
    # The reproduce line fails the same way; OpenSSL's default offer gets through.
    assert "handshake failure" in ctx.client(["bash", "-c", reproduce.group(1)]).output
    assert "New, TLSv1.3, Cipher is TLS_" in ctx.client(["bash", "-c", default.group(1)]).output


def test_tls12_client_certificate_from_an_untrusted_ca(ctx: Ctx) -> None:
    from scenarios.openssl import s_server

    rogue = TestPKI(ctx.work / "rogue").client("client.example.com")
    s_server(ctx, "-Verify", "1", "-verify_return_error")
    with ctx.capture([443]):
        run = ctx.s_client(WWW, "-tls1_2", "-cert", str(rogue.cert), "-key", str(rogue.key),
                           sni=WWW)
    assert run.returncode != 0 and "unknown ca" in run.output
    r = only_record(ctx)
    assert r.client_certificates and r.last_alert == "unknown_ca"
    assert (r.failure, r.failure_side) == ("client_certificate_required", "server")
    assert "does not trust the issuer of the client's certificate" in (r.reason or "")


def test_tls_to_a_plaintext_smtp_port_suggests_starttls(ctx: Ctx, tmp_path: Path) -> None:
    banner = tmp_path / "banner.py"
    banner.write_text(
        "import socket\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('0.0.0.0', 465)); s.listen()\n"
        "while True:\n"
        "    c, _ = s.accept(); c.sendall(b'220 mail.example.com ESMTP\\r\\n'); c.recv(4096)\n"
        "    c.close()\n"
    )
    ctx.server(Server(ctx.lab.server, "banner", [sys.executable, str(banner)],
                      workdir=tmp_path, ports=[465]))
    with ctx.capture([465]):
        run = ctx.curl("smtps://mail.example.com:465/", "--mail-from", "a@example.com",
                       "--mail-rcpt", "b@example.com", "-T", "/dev/null")
    assert run.returncode == 35 and "wrong version number" in run.output
    r = only_record(ctx)
    assert (r.outcome, r.failure) == ("failed", "not_tls")
    assert (r.server_first_bytes or "").startswith("220 mail.example.com")
    assert "-starttls smtp" in (r.remedy or "") and "http://" not in (r.remedy or "")


def test_client_timing_out_on_a_slow_server_blames_the_server(
    ctx: Ctx, tmp_path: Path
) -> None:
    cert = ctx.pki.server(WWW)
    slow = tmp_path / "slow.py"
    slow.write_text(
        "import socket, ssl, sys, time\n"
        "tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
        f"tls.load_cert_chain({str(cert.chain)!r}, {str(cert.key)!r})\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('0.0.0.0', 443)); s.listen()\n"
        "while True:\n"
        "    c, _ = s.accept(); time.sleep(2.5)  # a slow backend before the handshake\n"
        "    try:\n"
        "        tls.wrap_socket(c, server_side=True).close()\n"
        "    except OSError as e:\n"
        "        print('handshake failed:', e, flush=True)\n"
    )
    ctx.server(Server(ctx.lab.server, "slow", [sys.executable, str(slow)], workdir=tmp_path,
                      ports=[443]))
    with ctx.capture([443]):
        run = ctx.curl(f"https://{WWW}/", "--max-time", "1")
        ctx.client(["sleep", "2"])  # the late server flight and the client kernel's RST
    assert run.returncode == 28, run.output  # curl: operation timed out
    r = only_record(ctx)
    assert (r.outcome, r.failure, r.failure_side) == ("failed", "no_server_response", "server")
    assert "too late" in (r.reason or "")


def test_connect_only_health_check_is_not_a_failed_handshake(ctx: Ctx) -> None:
    cert = ctx.pki.server(WWW)
    ctx.nginx(ctx.site(WWW, cert, default=True))
    with ctx.capture([443]):
        run = ctx.client([sys.executable, "-c", "import socket; "
                          f"socket.create_connection(({ctx.sip!r}, 443)).close()"])
    assert run.returncode == 0, run.output
    r = only_record(ctx)
    assert (r.outcome, r.failure, r.failure_side) == ("not_tls", None, None)
    assert "health check" in (r.reason or "")

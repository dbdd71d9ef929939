"""Headless chromium (Debian's build) fetching from nginx.

Chromium's ClientHello carries GREASE, an ECH GREASE extension and an X25519MLKEM768
post-quantum key share, which makes it larger than one segment: it spans two TCP segments.
The second scenario puts a middlebox in the path that resets any connection whose first
data segment is a partial ClientHello (a full-size segment starting with a TLS handshake
record), as some firewalls did when post-quantum key shares appeared. Chromium may open
more than one connection (a spare socket, retries); every connection gets the same truth,
and each is checked on the wire with tshark.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path

from tests.harness.capture import tcp_connections

from .base import Ctx, Expect, ScenarioError, established, failed, iptables, scenario
from .nginx import NGINX, WWW

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--enable-logging=stderr",
                  "--v=0")
# A full-size TCP segment to 443 whose payload starts with a TLS handshake record header.
SPLIT_HELLO_RULE = ["INPUT", "-p", "tcp", "--dport", "443", "-m", "length", "--length",
                    "1400:65535", "-m", "u32", "--u32", "0>>22&0x3C@ 12>>26&0x3C@ 0>>8=0x160301",
                    "-j", "REJECT", "--reject-with", "tcp-reset"]


def _spki_pin(cert: Path) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_pem_x509_certificate(cert.read_bytes()).public_key()
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def _chromium(ctx: Ctx) -> tuple[str, str]:
    """Start nginx (h2), run chromium --dump-dom; return (dom, stderr)."""
    cert = ctx.pki.server(WWW)
    ctx.nginx(ctx.site(WWW, cert, default=True, listen="http2", body="hello from nginx"))
    profile = ctx.work / "profile"
    run = ctx.client(["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                      f"--host-resolver-rules=MAP {WWW} {ctx.sip}",
                      f"--ignore-certificate-errors-spki-list={_spki_pin(cert.cert)}",
                      "--dump-dom", f"https://{WWW}/"], timeout=60)
    if run.timed_out:
        raise ScenarioError(f"chromium timed out: {run.stderr[-2000:]}")
    return run.stdout, run.stderr


def _split_hellos(path: Path) -> int:
    """Connections whose ClientHello tshark reassembled from more than one segment."""
    done = subprocess.run(["tshark", "-n", "-r", str(path), "-Y",
                           "tls.handshake.type == 1 && tcp.reassembled.length"],
                          capture_output=True, text=True, check=False)
    return len(done.stdout.splitlines())


def _client_finished_streams(path: Path) -> set[int]:
    """TCP streams in which the client sent an encrypted record (its TLS 1.3 Finished)."""
    done = subprocess.run(["tshark", "-n", "-r", str(path), "-Y",
                           "tcp.dstport == 443 && tls.record.opaque_type == 23", "-T",
                           "fields", "-e", "tcp.stream"], capture_output=True, text=True,
                          check=False)
    return {int(s) for s in done.stdout.split()}


@scenario(tools=("chromium",),
          stack="nginx + chromium", shows="headless chromium 156 fetches a page: GREASE, "
          "ECH GREASE, X25519MLKEM768 key share, ClientHello over two segments; TLS 1.3")
def browser_chromium_ok(ctx: Ctx) -> list[Expect]:
    with ctx.capture([443]):
        dom, err = _chromium(ctx)
    if "hello from nginx" not in dom:
        raise ScenarioError(f"chromium did not render the page: {dom[-500:]} {err[-2000:]}")
    conns = tcp_connections(ctx.raw, (443,))
    finished = _client_finished_streams(ctx.raw)
    if len(finished) != len(conns) or _split_hellos(ctx.raw) < 1:
        raise ScenarioError(f"expected every chromium connection to finish its handshake with "
                            f"a split ClientHello: {len(conns)} connections, finished "
                            f"{sorted(finished)}")
    return [established(f"{NGINX} with http2; headless chromium --dump-dom rendered the page "
                        "('hello from nginx'), trusting the test key via "
                        "--ignore-certificate-errors-spki-list; its ClientHello spans two "
                        f"segments; connection {n + 1} of {len(conns)} chromium opened, "
                        "handshake completed", sni=WWW, version="TLSv1.3")
            for n in range(len(conns))]


@scenario(tools=("chromium",),
          stack="nginx + chromium + iptables u32",
          shows="middlebox resets connections whose first segment is a partial ClientHello: "
                "chromium's two-segment hello is reset every time (ERR_CONNECTION_RESET)")
def browser_chromium_split_hello_reset(ctx: Ctx) -> list[Expect]:
    with iptables(ctx.lab.server, SPLIT_HELLO_RULE), ctx.capture([443]):
        dom, err = _chromium(ctx)
    if "ERR_CONNECTION_RESET" not in err or "hello from nginx" in dom:
        raise ScenarioError(f"expected chromium to fail with ERR_CONNECTION_RESET: {err[-2000:]}")
    conns = tcp_connections(ctx.raw, (443,))
    if not conns or _client_finished_streams(ctx.raw):
        raise ScenarioError("expected only reset handshakes")
    rule = " ".join(SPLIT_HELLO_RULE[:-4])
    return [failed("reset_during_handshake", "network",
                   f"{NGINX}; a middlebox rule 'iptables -A {rule} -j REJECT --reject-with "
                   "tcp-reset' resets any connection whose first data segment is a full-size "
                   "segment starting a TLS handshake record (a partial ClientHello); chromium "
                   "reported 'Page load failed: net::ERR_CONNECTION_RESET' after "
                   f"{len(conns)} attempts; this is attempt {n + 1}", sni=WWW)
            for n in range(len(conns))]

"""The client's evidence outranks the analysis's trust store (a private PKI analysed
without its CA), and trust learnt from other clients of the same capture.

Each test sets up a real nginx with a certificate from the lab's own root (not in certifi,
so the analysis cannot verify it unless given the root) and real clients, checks what
each client reported (its exit status: the ground truth), then analyses the capture both
with and without the root: outcome, failure and side must agree with the set-up both ways.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from analyzer.api import analyze
from analyzer.record import HandshakeRecord
from tests.harness import missing_requirements

SAMPLES = Path(__file__).resolve().parents[1] / "sample_pcaps"
if str(SAMPLES) not in sys.path:
    sys.path.insert(0, str(SAMPLES))

from scenarios.base import Ctx  # noqa: E402

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(
        (why := missing_requirements(("ip", "tcpdump", "nginx", "openssl", "curl")))
        is not None,
        reason=why or "",
    ),
]

WWW = "www.example.com"


def both_ways(ctx: Ctx) -> list[tuple[HandshakeRecord, HandshakeRecord]]:
    """Each connection's record with the lab's root given, and without it."""
    with_ca = sorted(analyze(ctx.raw, ca_bundle=ctx.pki.root, cross=True),
                     key=lambda r: r.client_port)
    without = sorted(analyze(ctx.raw, cross=True), key=lambda r: r.client_port)
    assert [r.client_port for r in with_ca] == [r.client_port for r in without]
    return list(zip(with_ca, without, strict=True))


def verdict(r: HandshakeRecord) -> tuple[str, str | None, str | None]:
    return (r.outcome, r.failure, r.failure_side)


def test_a_probe_that_completes_the_handshake_is_established_without_the_ca(ctx: Ctx) -> None:
    ctx.nginx(ctx.site(WWW, ctx.pki.server(WWW), protocols="TLSv1.2", default=True))
    with ctx.capture([443]):
        run = ctx.s_client(WWW, "-tls1_2", sni=WWW, input="")  # trusts the root; no data
    assert run.returncode == 0 and "Verify return code: 0 (ok)" in run.output
    [(known, unknown)] = both_ways(ctx)
    assert verdict(known) == verdict(unknown) == ("established", None, None)
    assert known.cert_trust == "ca_bundle" and known.cert_status == "ok"
    assert unknown.cert_trust == "clients" and unknown.cert_status == "ok"
    assert "chain_not_verifiable" in unknown.warnings


def test_a_wrong_host_is_named_as_such_without_the_ca(ctx: Ctx) -> None:
    ctx.nginx(ctx.site(WWW, ctx.pki.server(WWW), protocols="TLSv1.2", default=True))
    with ctx.capture([443]):
        run = ctx.curl("https://other.example.net/")
    assert run.returncode == 60 and "other.example.net" in run.output  # curl: no match
    [(known, unknown)] = both_ways(ctx)
    assert verdict(known) == verdict(unknown) == ("failed", "sni_mismatch", "client"), (
        known.client_data, known.close_by, known.stage, known.cert_status, known.history,
        known.timeline)
    assert unknown.cert_status == "hostname_mismatch"


def test_other_clients_trust_the_chain_this_client_lacks_its_ca(ctx: Ctx) -> None:
    ctx.nginx(ctx.site(WWW, ctx.pki.server(WWW), protocols="TLSv1.2", default=True))
    with ctx.capture([443]):
        good = [ctx.curl(f"https://{WWW}/") for _ in range(2)]  # trusting the root
        bad = ctx.client(["curl", "-sS", "-o", "/dev/null", "--resolve",
                          f"{WWW}:443:{ctx.sip}", f"https://{WWW}/"])  # certifi's store
    assert [g.stdout for g in good] == ["200", "200"]
    assert bad.returncode == 60, bad.output  # curl: unable to get local issuer certificate
    pairs = both_ways(ctx)
    assert [verdict(u) for _, u in pairs] == [
        ("established", None, None),
        ("established", None, None),
        ("failed", "certificate_untrusted", "client"),
    ]
    assert [verdict(k) for k, _ in pairs] == [verdict(u) for _, u in pairs]
    rejected = pairs[2][1]
    assert rejected.cert_trust == "clients"
    assert "2 other connection(s) of this capture completed their handshake" in (
        rejected.reason or "")
    assert "this client's trust store" in (rejected.reason or "")
    assert "-CAfile" in (rejected.remedy or "") and "--cacert" in (rejected.remedy or "")


"""Remedies are commands a person can paste: run them against the real server again.

Each test starts a real nginx in a private network namespace, makes a real client fail,
analyzes the capture, then runs the command the remedy names in the client's namespace
and checks that it reproduces the failure the diagnosis named (what the server or the
certificate really does, not what our record says).
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path

import pytest

from analyzer.api import analyze
from analyzer.record import HandshakeRecord
from tests.harness import LeafKind, missing_requirements

SAMPLES = Path(__file__).resolve().parents[1] / "sample_pcaps"
if str(SAMPLES) not in sys.path:
    sys.path.insert(0, str(SAMPLES))

from scenarios.base import Ctx  # noqa: E402
from scenarios.nginx import one_site  # noqa: E402

pytestmark = pytest.mark.skipif(
    (why := missing_requirements(("ip", "tcpdump", "nginx", "openssl", "curl"))) is not None,
    reason=why or "",
)

WWW = "www.example.com"


def only_record(ctx: Ctx) -> HandshakeRecord:
    records = list(analyze(ctx.raw, ca_bundle=ctx.pki.root))
    assert len(records) == 1, [r.reason for r in records]
    return records[0]


def command(remedy: str | None, label: str) -> str:
    """The command after ``label:`` in a remedy (up to the next '; ' clause)."""
    assert remedy is not None
    m = re.search(rf"{label}: (.+?)(?:; then |$)", remedy)
    assert m, remedy
    return m.group(1)


def run(ctx: Ctx, cmd: str, **env: str) -> str:
    prefix = " ".join(f"{k}={v}" for k, v in env.items())
    done = ctx.client(["bash", "-c", f"{prefix} {cmd}".strip()], timeout=20)
    return done.output


def test_version_mismatch_remedy_reproduces_the_refusal(ctx: Ctx) -> None:
    one_site(ctx, WWW)
    with ctx.capture([443]):
        ctx.s_client(WWW, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", sni=WWW)
    r = only_record(ctx)
    assert r.failure == "version_mismatch"
    reproduce = command(r.remedy, "reproduce")
    assert "-tls1_1" in reproduce and ctx.sip in reproduce
    assert "alert protocol version" in run(ctx, reproduce)
    # ... and the version the remedy suggests is accepted.
    accepted = command(r.remedy, "then check what the server accepts")
    assert "Protocol  : TLSv1.2" in run(ctx, accepted) or "TLSv1.2" in run(ctx, accepted)


def test_cipher_mismatch_remedy_reproduces_the_refusal(ctx: Ctx) -> None:
    one_site(ctx, WWW)
    with ctx.capture([443]):
        ctx.s_client(WWW, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256", sni=WWW)
    r = only_record(ctx)
    assert r.failure == "cipher_mismatch"
    reproduce = command(r.remedy, "reproduce")
    assert "ECDHE-ECDSA-AES128-GCM-SHA256" in reproduce
    assert "alert handshake failure" in run(ctx, reproduce)


def test_expired_certificate_remedy_shows_the_past_date(ctx: Ctx) -> None:
    one_site(ctx, "expired.example.com", kind=LeafKind.EXPIRED)
    with ctx.capture([443]):
        ctx.curl("https://expired.example.com/", "--tls-max", "1.2")
    r = only_record(ctx)
    assert r.failure == "certificate_expired"
    out = run(ctx, command(r.remedy, "confirm the dates"))
    m = re.search(r"notAfter=(.+)", out)
    assert m, out
    not_after = dt.datetime.strptime(m.group(1).strip(), "%b %d %H:%M:%S %Y %Z")
    assert not_after.replace(tzinfo=dt.UTC) < dt.datetime.now(dt.UTC)


def test_sni_mismatch_remedy_reproduces_the_name_error(ctx: Ctx) -> None:
    one_site(ctx, WWW)
    with ctx.capture([443]):
        ctx.curl("https://other.example.net/", "--tls-max", "1.2")
    r = only_record(ctx)
    assert r.failure == "sni_mismatch"
    out = run(ctx, command(r.remedy, "confirm"), CURL_CA_BUNDLE=str(ctx.pki.root))
    assert "no alternative certificate subject name matches" in out

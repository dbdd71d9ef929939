"""Python ``ssl`` client scenarios (OpenSSL underneath: certificate alerts are plaintext)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.harness.pki import LeafKind

from .base import Ctx, Expect, ScenarioError, established, failed, scenario
from .nginx import one_site

CLIENT = Path(__file__).with_name("pyclient.py")
PYTHON = f"Python {sys.version_info.major}.{sys.version_info.minor} ssl"


def pyclient(ctx: Ctx, sni: str, *args: str) -> list[dict[str, Any]]:
    """Run ``pyclient.py`` in the client namespace; one dict per connection it made."""
    run = ctx.client([sys.executable, str(CLIENT), ctx.sip, "443", sni, str(ctx.pki.root),
                      *args])
    if run.returncode != 0:
        raise ScenarioError(f"pyclient failed: {run.output}")
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]


@scenario(stack="nginx + Python ssl",
          shows="certificate issued by an untrusted TLS-inspection CA; Python rejects it over "
                "TLS 1.3 (plaintext alert)")
def python_untrusted_inspection_ca(ctx: Ctx) -> list[Expect]:
    host = "intranet.example.com"
    one_site(ctx, host, LeafKind.INSPECTION)
    with ctx.capture([443]):
        res = pyclient(ctx, host)
    err = res[0]["error"] or ""
    if res[0]["ok"] or "CERTIFICATE_VERIFY_FAILED" not in err:
        raise ScenarioError(f"expected a certificate verification error, got {res}")
    return [failed("certificate_untrusted", "client",
                   f"nginx serving a certificate issued by 'Corporate TLS Inspection CA' (not "
                   f"in the client's trust store); {PYTHON} client raised {err}", sni=host,
                   version="TLSv1.3")]


@scenario(stack="nginx + Python ssl",
          shows="TLS 1.2 session-ticket resumption: full handshake then an abbreviated one")
def python_resumption_tls12(ctx: Ctx) -> list[Expect]:
    host = "www.example.com"
    one_site(ctx, host)
    with ctx.capture([443]):
        res = pyclient(ctx, host, "--tls12", "--resume", "2")
    if len(res) != 2 or not all(r["ok"] and r["status"] == 200 for r in res) \
            or res[0]["reused"] or not res[1]["reused"]:
        raise ScenarioError(f"expected a full then a resumed TLS 1.2 handshake, got {res}")
    base = f"nginx (session tickets on); {PYTHON} client with maximum_version TLSv1.2"
    return [
        established(f"{base}: full handshake, HTTP 200, session_reused=False", sni=host,
                    version="TLSv1.2"),
        established(f"{base}, offering the first session: HTTP 200, session_reused=True",
                    sni=host, version="TLSv1.2"),
    ]

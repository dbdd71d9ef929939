"""SOCKS tunnels made by real proxies and clients, against their own reports and tshark.

Dante (SOCKS4 and SOCKS5, with and without username/password, rules that block a
destination) and OpenSSH's ``ssh -D`` (SOCKS4, 4a and 5) in the server namespace; curl
``--socks4``, ``--socks4a``, ``--socks5``, ``--socks5-hostname`` (``--proxy-user``) in the
client namespace; nginx behind the proxy. The truth is what curl and the proxy reported
(the sample scenarios of ``sample_pcaps/scenarios/socks.py`` check it); the SOCKS facts
(version, target, reply code) and the SNI are compared with tshark's SOCKS dissector.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from analyzer.api import analyze
from analyzer.record import HandshakeRecord
from tests.harness import missing_requirements

SAMPLES = Path(__file__).resolve().parents[1] / "sample_pcaps"
if str(SAMPLES) not in sys.path:
    sys.path.insert(0, str(SAMPLES))

from scenarios import socks as scn  # noqa: E402
from scenarios.base import Ctx, Expect, check, check_log  # noqa: E402

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(
        (why := missing_requirements(("ip", "tcpdump", "tshark", "nginx", "curl", "danted",
                                      "sshd", "ssh", "ssh-keygen"))) is not None,
        reason=why or "",
    ),
]


@dataclass(frozen=True, slots=True)
class Wire:
    """What tshark reads of one SOCKS connection."""

    kind: str | None
    target: str | None
    status: int | None
    sni: str | None


def tshark_socks(path: Path) -> dict[int, Wire]:
    """Per client port: SOCKS version and request (first CONNECT seen), the proxy's first
    reply code, and the first ClientHello's SNI, from tshark's SOCKS and TLS dissectors."""
    fields = ["tcp.srcport", "tcp.dstport", "socks.version", "socks.command",
              "socks.remote_name", "socks.v4a_dns_name", "socks.dst", "socks.dstV6",
              "socks.dstport", "socks.results", "tls.handshake.extensions_server_name"]
    argv = ["tshark", "-n", "-r", str(path), "-Y", "socks || tls.handshake.type == 1",
            "-T", "fields"]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    seen: dict[int, dict[str, str]] = {}
    for line in out.splitlines():
        v = dict(zip(fields, line.split("\t"), strict=False))
        from_client = v["tcp.dstport"] == str(scn.PORT)
        port = int(v["tcp.srcport"] if from_client else v["tcp.dstport"])
        got = seen.setdefault(port, {})
        if from_client:
            got.setdefault("version", v["socks.version"])
            if v.get("tls.handshake.extensions_server_name"):
                got.setdefault("sni", v["tls.handshake.extensions_server_name"])
            if v["socks.command"] == "1":
                for key in ("socks.v4a_dns_name", "socks.remote_name", "socks.dstV6",
                            "socks.dst"):
                    if v.get(key) and not (key == "socks.dst" and "name" in got):
                        got.setdefault("name", v[key])
                        break
                if v["socks.dstport"]:
                    got.setdefault("port", v["socks.dstport"])
        elif v.get("socks.results"):
            got.setdefault("status", v["socks.results"])
    wire = {}
    for port, got in seen.items():
        version = got.get("version")
        name = got.get("name")
        if version == "4" and name == "0.0.0.1":
            name = None  # a SOCKS4a request whose name tshark did not show
        kind = {"5": "socks5", "4": "socks4"}.get(version or "")
        if version == "4" and got.get("name") and not _is_ip(got["name"]):
            kind = "socks4a"
        target = None
        if name and got.get("port"):
            target = f"[{name}]:{got['port']}" if ":" in name else f"{name}:{got['port']}"
        wire[port] = Wire(kind=kind, target=target,
                          status=int(got["status"]) if "status" in got else None,
                          sni=got.get("sni"))
    return wire


def _is_ip(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def records(ctx: Ctx) -> list[HandshakeRecord]:
    return sorted(analyze(ctx.raw, ca_bundle=ctx.pki.root, cross=True), key=lambda r: r.ts)


SCENARIOS: list[Callable[[Ctx], list[Expect]]] = [
    scn.socks_dante_ok, scn.socks_dante_refused, scn.socks_dante_auth,
    scn.socks_dante_expired_tls12, scn.socks_ssh_dynamic,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_real_socks_tunnels_match_the_truth_and_tshark(
    ctx: Ctx, scenario: Callable[[Ctx], list[Expect]]
) -> None:
    truths = scenario(ctx)  # raises unless curl and the proxy reported the intended truth
    found = records(ctx)
    assert len(found) == len(truths), [r.reason for r in found]
    wire = tshark_socks(ctx.raw)
    for rec, exp in zip(found, truths, strict=True):
        assert (rec.outcome, rec.failure, rec.failure_side, rec.sni, rec.version) == (
            exp.outcome, exp.failure, exp.failure_side, exp.sni, exp.version), rec.reason
        fact = wire[rec.client_port]
        assert rec.proxy_kind == fact.kind
        assert rec.proxy_status == fact.status
        assert rec.sni == fact.sni
        if fact.target is not None:
            assert rec.proxy_target == fact.target
        if rec.outcome == "established":
            assert rec.ja3 and rec.ja4 and rec.proxy_status in (0, 90)
        if rec.failure == "proxy_error":
            assert rec.reason and rec.remedy and f"{ctx.sip}:{scn.PORT}" in rec.remedy
        steps = " | ".join(e.what for e in rec.timeline)
        assert ("SOCKS5 greeting" in steps) == (rec.proxy_kind == "socks5")


def test_dante_unreachable_networks_hosts_and_a_socks4_rule(ctx: Ctx) -> None:
    """Dante's replies when it cannot connect: no route at all (network unreachable), an
    'unreachable' route (host unreachable), and SOCKS4 refused by a rule (91). The
    addresses exist only as routes in the server namespace: no packet leaves it."""
    from scenarios.nginx import WWW, one_site

    one_site(ctx, WWW)
    ctx.lab.server.ip("route", "add", "unreachable", "10.97.0.0/24")
    srv = scn.start_dante(ctx, rules="socks block { from: 0.0.0.0/0 to: 0.0.0.0/0 port = 8443 "
                                     "log: connect error }")
    proxy = f"{ctx.sip}:{scn.PORT}"
    with ctx.capture([scn.PORT]):
        net = ctx.curl("https://10.98.0.1/", "--socks5", proxy, resolve=False)
        host = ctx.curl("https://10.97.0.1/", "--socks5", proxy, resolve=False)
        rule = ctx.curl(f"https://{WWW}:8443/", "--socks4", proxy)
    check(net, exit=97, says="Can't complete SOCKS5 connection to 10.98.0.1. (3)")
    check(host, exit=97, says="Can't complete SOCKS5 connection to 10.97.0.1. (4)")
    check(rule, exit=97, says="(91), request rejected or failed")
    srv.stop()
    check_log(srv, r"Network is unreachable", r"No route to host",
              r"blocked by higher-level socks-rule #1")
    found = records(ctx)
    assert [(r.proxy_kind, r.proxy_target, r.proxy_status) for r in found] == [
        ("socks5", "10.98.0.1:443", 3), ("socks5", "10.97.0.1:443", 4),
        ("socks4", f"{ctx.sip}:8443", 91)]
    meanings = ["no route to the destination's network", "cannot reach the destination host",
                "refused the request or could not reach the destination"]
    for rec, meaning in zip(found, meanings, strict=True):
        assert (rec.outcome, rec.failure, rec.failure_side) == ("failed", "proxy_error", "proxy")
        assert rec.reason and meaning in rec.reason and rec.proxy_status_line
        assert rec.proxy_status_line in rec.reason
    assert found[2].remedy and "curl -v --socks4 10.99.0.1:1080 https://10.99.0.1:8443/" in (
        found[2].remedy)


def test_proxy_passwords_appear_in_no_output(ctx: Ctx, tmp_path: Path) -> None:
    """tshark shows the RFC 1929 passwords of the capture; tlsa's outputs never do."""
    scn.socks_dante_auth(ctx)
    dissected = subprocess.run(["tshark", "-n", "-r", str(ctx.raw), "-V", "-Y", "socks"],
                               capture_output=True, text=True, check=True).stdout
    secrets = (scn.PROXY_PASSWORD, "wrong-password")
    assert all(s in dissected for s in secrets)  # on the wire, so the check below can fail
    tlsa = [sys.executable, "-m", "analyzer"]
    wide = {**os.environ, "COLUMNS": "250"}
    jsonl = subprocess.run([*tlsa, "analyze", str(ctx.raw), "-f", "jsonl"],
                           capture_output=True, text=True, check=True).stdout
    uids = [json.loads(line)["uid"] for line in jsonl.splitlines()]
    assert len(uids) == 3
    texts = [jsonl]
    for uid in uids:
        texts.append(subprocess.run([*tlsa, "show", uid, str(ctx.raw)], capture_output=True,
                                    text=True, check=True, env=wide).stdout)
    texts.append(subprocess.run([*tlsa, "analyze", str(ctx.raw), "-f", "csv"],
                                capture_output=True, text=True, check=True).stdout)
    report = tmp_path / "report"
    subprocess.run([*tlsa, "report", str(ctx.raw), "-o", str(report)], capture_output=True,
                   text=True, check=True)
    texts += [p.read_text(errors="replace") for p in report.rglob("*") if p.is_file()]
    for text in texts:
        for secret in secrets:
            assert secret not in text
    assert "password not shown" in texts[1] + texts[2] + texts[3]

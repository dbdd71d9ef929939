"""QUIC records from real stacks talking over a network namespace pair, captured with
tcpdump and read by the whole pipeline (engine, diagnosis, cross-connection evidence).

Peers: the aioquic client and server of :mod:`tests.harness.quic` (QUIC v1 and v2, Retry,
Version Negotiation with and without a common version, ALPN the server does not speak,
expired, untrusted and wrong-host certificates), headless Chromium speaking HTTP/3 to the
aioquic HTTP/3 server of :mod:`tests.harness.h3`, a server whose UDP 443 is dropped by
iptables, a host where nothing listens (ICMP port unreachable), and a fallback: the
client's QUIC attempt blocked, then curl reaching nginx over TCP. Chromium is not the
fallback client: forced onto QUIC (``--origin-to-force-quic-on``) it never falls back, and
unforced it only tries QUIC after an Alt-Svc from a TCP connection it then keeps using; so
the attempt is aioquic's, followed by curl, as a script falling back would.

Truth: the set-up (which certificate, which versions, what is dropped) and what client and
server reported (their JSON lines: handshake, the close each received); tshark is the
second opinion on SNI, ALPN and the QUIC version. Certificate failures are checked without
a key log (the client's close travels in an encrypted Handshake packet: inferred, side
client) and with the peers' key log (the exact category, not inferred).
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from analyzer.api import Run, collect
from analyzer.diagnosis import DiagnosisOptions
from analyzer.limits import INCOMPLETE_GRACE
from analyzer.record import HandshakeRecord
from analyzer.tls.keylog import KeyLog
from tests.harness import Capture, Lab, LeafKind, TestPKI, missing_requirements
from tests.harness.h3 import requests, start_h3_server
from tests.harness.quic import run_client, server_lines, start_server, tshark_quic
from tests.harness.servers import nginx

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(
        (why := missing_requirements(("ip", "iptables", "tcpdump", "tshark"))) is not None,
        reason=why or "",
    ),
    pytest.mark.skipif(importlib.util.find_spec("aioquic") is None, reason="aioquic missing"),
]

HOST = "www.example.com"


@dataclass
class Scenario:
    pcap: Path
    keys: Path
    client: dict[str, Any]
    server: list[dict[str, Any]]
    ca: Path

    def records(self, *, keylog: bool = False, workers: int = 1) -> list[HandshakeRecord]:
        keys = KeyLog.from_files([self.keys]) if keylog and self.keys.exists() else None
        return collect([str(self.pcap)], Run(), keylog=keys, workers=workers,
                       options=DiagnosisOptions(ca_bundle=str(self.ca)))

    def quic(self, *, keylog: bool = False) -> HandshakeRecord:
        found = [r for r in self.records(keylog=keylog) if r.transport == "quic"]
        assert len(found) == 1, [(r.client_port, r.server_port) for r in found]
        return found[0]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("quic-real-pki"))


def _marker(lab: Lab) -> None:
    """A datagram to a closed port after the grace time: the capture goes on after the
    client gave up (a cut capture would make the handshake ``incomplete``)."""
    time.sleep(INCOMPLETE_GRACE + 0.5)
    lab.client.run(["python3", "-c", "import socket; socket.socket(socket.AF_INET, "
                    f"socket.SOCK_DGRAM).sendto(b'x', ('{lab.server_ip}', 9))"], timeout=10)


def scenario(tmp: Path, pki: TestPKI, server: list[str] | None, client: list[str], *,
             kind: LeafKind = LeafKind.GOOD, drop: bool = False,
             linger: bool = False) -> Scenario:
    cert = pki.server(HOST, kind=kind)
    keys, pcap = tmp / "keys.log", tmp / "quic.pcap"
    with Lab() as lab:
        if drop:
            lab.server.sh(["iptables", "-A", "INPUT", "-p", "udp", "--dport", "443", "-j",
                           "DROP"])
        srv = None
        if server is not None:
            srv = start_server(lab.server, tmp / "srv",
                               ["--cert", str(cert.chain), "--key", str(cert.key), *server])
        try:
            with Capture(lab.client, pcap, bpf="udp or icmp"):
                result = run_client(lab.client, ["--host", lab.server_ip, "--sni", HOST,
                                                 "--cafile", str(pki.root), "--keylog",
                                                 str(keys), *client])
                if linger:
                    _marker(lab)
        finally:
            if srv is not None:
                srv.stop()
        lines = server_lines(srv) if srv is not None else []
    return Scenario(pcap=pcap, keys=keys, client=result, server=lines, ca=pki.root)


def agrees_with_tshark(s: Scenario, r: HandshakeRecord) -> None:
    rows = tshark_quic(s.pcap)
    names = {v for row in rows for v in row["tls.handshake.extensions_server_name"]}
    assert names == {r.sni}
    alpn = next(row["tls.handshake.extensions_alpn_str"] for row in rows
                if "1" in row["tls.handshake.type"])
    assert alpn == r.alpn_offered
    first = next(row["quic.version"][0] for row in rows if row["quic.version"])
    versions = {"v1": "0x00000001", "v2": "0x6b3343cf"}
    assert versions.get(r.quic_version or "", r.quic_version) == first


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_established(tmp_path: Path, pki: TestPKI, version: str) -> None:
    s = scenario(tmp_path, pki, [f"--versions={version}"], [f"--versions={version}"])
    assert s.client["ok"]
    r = s.quic()
    assert (r.quic_version, r.established, r.outcome, r.history) == (version, True,
                                                                      "established", "Cs")
    assert r.close in ("capture_end", "idle_timeout") and r.decrypted == []
    agrees_with_tshark(s, r)
    keyed = s.quic(keylog=True)
    assert keyed.decrypted == ["client", "server"] and keyed.alpn == s.client["handshake"]["alpn"]
    assert (keyed.cert_status, keyed.established) == ("ok", True)
    assert (keyed.quic_history, keyed.packets) == (r.quic_history, r.packets)
    assert [x.to_dict() for x in s.records(workers=2)] == [x.to_dict() for x in s.records()]


def test_retry_restarts_the_handshake(tmp_path: Path, pki: TestPKI) -> None:
    s = scenario(tmp_path, pki, ["--retry"], [])
    assert s.client["ok"]
    r = s.quic()
    # The record describes the handshake the server answered; the first attempt shows in
    # Zeek's quic history (a row ending in the Retry) and the timeline.
    assert (r.established, r.history, r.outcome) == (True, "Cs", "established")
    assert "r" in (r.quic_history or "") and "unexpected_message" not in r.anomalies
    assert any("starts its handshake over" in e.what for e in r.timeline)
    assert any(e.what.startswith("Retry (") for e in r.timeline)
    agrees_with_tshark(s, r)
    assert s.quic(keylog=True).decrypted == ["client", "server"]


def test_version_negotiation_then_a_common_version(tmp_path: Path, pki: TestPKI) -> None:
    s = scenario(tmp_path, pki, ["--versions=v1"], ["--versions=v2,v1"])
    assert s.client["ok"] and s.client["handshake"]["version"] == 1
    r = s.quic()
    assert (r.quic_version, r.quic_server_versions, r.outcome) == ("v1", ["v1"], "established")
    assert r.history == "Cs"


def test_version_negotiation_without_a_common_version(tmp_path: Path, pki: TestPKI) -> None:
    s = scenario(tmp_path, pki, ["--versions=v1"], ["--versions=v2"], linger=True)
    assert "common protocol version" in s.client["closed"]["reason"]
    r = s.quic()
    assert (r.outcome, r.failure, r.failure_side) == ("failed", "version_mismatch", "server")
    assert "QUIC v2" in (r.reason or "") and "offering only v1" in (r.reason or "")


def test_alpn_mismatch(tmp_path: Path, pki: TestPKI) -> None:
    s = scenario(tmp_path, pki, ["--alpn=h3"], ["--alpn=hq-interop"])
    received = s.client["closed"]
    r = s.quic()
    assert (r.failure, r.failure_side, r.inferred, r.close) == (
        "alpn_mismatch", "server", False, "connection_close")
    assert (r.quic_close_code, r.quic_close_reason) == (received["error_code"],
                                                        received["reason"])
    assert r.alpn_offered == ["hq-interop"] and r.last_alert == "no_application_protocol"
    agrees_with_tshark(s, r)


@pytest.mark.parametrize(
    ("kind", "client_args", "keyed_failure"),
    [
        (LeafKind.EXPIRED, [], "certificate_expired"),
        (LeafKind.INSPECTION, [], "certificate_untrusted"),
        (LeafKind.GOOD, ["--sni", "other.example.org"], "sni_mismatch"),
    ],
    ids=["expired", "untrusted", "wrong_host"],
)
def test_certificate_rejected_by_the_client(tmp_path: Path, pki: TestPKI, kind: LeafKind,
                                            client_args: list[str], keyed_failure: str) -> None:
    s = scenario(tmp_path, pki, [], client_args, kind=kind, linger=True)
    assert not s.client["ok"]
    (report,) = [line for line in s.server if line.get("event") == "closed"]
    # Without keys the close is inside an encrypted Handshake packet: inferred.
    r = s.quic()
    assert (r.outcome, r.failure, r.failure_side, r.inferred) == (
        "failed", "certificate_untrusted", "client", True)
    assert r.quic_close_code is None and r.quic_client_one_rtt_packets == 0
    # With the key log: the close the server received, and the category of the set-up.
    keyed = s.quic(keylog=True)
    assert (keyed.failure, keyed.failure_side, keyed.inferred) == (keyed_failure, "client",
                                                                   False)
    assert (keyed.quic_close_code, keyed.quic_close_reason, keyed.close_by) == (
        report["error_code"], report["reason"], "client")
    assert keyed.decrypted == ["client", "server"] and keyed.cert_chain_sha256


def test_udp_dropped(tmp_path: Path, pki: TestPKI) -> None:
    s = scenario(tmp_path, pki, None, ["--idle=3", "--timeout=3"], drop=True)
    assert not s.client["ok"]
    r = s.quic()
    initials = sum(row["quic.long.packet_type"].count("0") for row in tshark_quic(s.pcap))
    assert (r.failure, r.failure_side) == ("udp_no_answer", "network")
    assert r.packets == initials >= 2 and r.client_retransmits == initials - 1
    assert (r.reason or "").startswith(f"{initials} Initials from the client to 10.99.0.1:443")


def test_nothing_listens(tmp_path: Path, pki: TestPKI) -> None:
    s = scenario(tmp_path, pki, None, ["--idle=3", "--timeout=3"])
    r = s.quic()
    assert (r.failure, r.failure_side, r.icmp_error, r.icmp_from) == (
        "udp_refused", "server", "port_unreachable", "10.99.0.1")


def _spki_pin(cert: Path) -> str:
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_pem_x509_certificate(cert.read_bytes()).public_key()
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_chromium_over_http3(tmp_path: Path, pki: TestPKI) -> None:
    cert = pki.server(HOST)
    keys, pcap = tmp_path / "chromium.keys", tmp_path / "chromium.pcap"
    with Lab() as lab:
        srv = start_h3_server(lab.server, tmp_path / "h3", ["--cert", str(cert.chain),
                                                            "--key", str(cert.key)])
        try:
            with Capture(lab.client, pcap, bpf="udp or icmp or tcp"):
                run = lab.client.run(
                    ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={tmp_path / 'profile'}",
                     f"--origin-to-force-quic-on={HOST}:443",
                     f"--host-resolver-rules=MAP {HOST} {lab.server_ip}",
                     f"--ignore-certificate-errors-spki-list={_spki_pin(cert.cert)}",
                     f"--ssl-key-log-file={keys}", "--dump-dom", f"https://{HOST}/"],
                    timeout=90)
        finally:
            srv.stop()
        answered = requests(srv)
    assert "hello over HTTP/3" in run.stdout and answered[0]["path"] == "/"
    s = Scenario(pcap=pcap, keys=keys, client={}, server=[], ca=pki.root)
    records = s.records()
    assert [r.transport for r in records] == ["quic"]  # no TCP: HTTP/3 only
    r = records[0]
    assert (r.sni, r.alpn_offered, r.quic_version, r.outcome) == (HOST, ["h3"], "v1",
                                                                  "established")
    assert r.ja4 is not None and r.ja4.startswith("q13d") and r.client_retransmits == 0
    agrees_with_tshark(s, r)
    keyed = s.quic(keylog=True)
    assert keyed.decrypted == ["client", "server"] and keyed.alpn == "h3"
    assert keyed.cert_status == "ok" and keyed.sni_matches_cert


@pytest.mark.skipif(shutil.which("nginx") is None or shutil.which("curl") is None,
                    reason="nginx or curl missing")
def test_fallback_from_quic_to_tcp(tmp_path: Path, pki: TestPKI) -> None:
    cert = pki.server(HOST)
    pcap = tmp_path / "fallback.pcap"
    site = (f"server {{ listen 443 ssl http2; server_name {HOST}; ssl_certificate {cert.chain};"
            f" ssl_certificate_key {cert.key}; location / {{ return 200 'over tcp\\n'; }} }}")
    with Lab() as lab:
        lab.server.sh(["iptables", "-A", "INPUT", "-p", "udp", "--dport", "443", "-j", "DROP"])
        web = nginx(lab.server, tmp_path / "nginx", site, ports=[443])
        try:
            with Capture(lab.client, pcap, bpf="udp or icmp or tcp"):
                attempt = run_client(lab.client, ["--host", lab.server_ip, "--sni", HOST,
                                                  "--cafile", str(pki.root), "--idle=1.5",
                                                  "--timeout=1.5"])
                fetched = lab.client.run(
                    ["curl", "-sS", "--cacert", str(pki.root), "--resolve",
                     f"{HOST}:443:{lab.server_ip}", f"https://{HOST}/"], timeout=30)
        finally:
            web.stop()
    assert not attempt["ok"] and fetched.stdout == "over tcp\n"
    s = Scenario(pcap=pcap, keys=tmp_path / "none", client=attempt, server=[], ca=pki.root)
    records = s.records()
    (q,) = [r for r in records if r.transport == "quic"]
    (t,) = [r for r in records if r.transport == "tcp"]
    assert (q.failure, t.outcome) == ("udp_no_answer", "established")
    assert "quic_fallback" in q.warnings and "quic_fallback" in t.warnings
    assert f"connection {t.uid}" in (q.reason or "")
    assert f"QUIC attempt {q.uid}" in (t.reason or "")
    assert [x.to_dict() for x in s.records(workers=2)] == [x.to_dict() for x in records]


def _live_quic(server_ip: str, cafile: str) -> list[tuple[str, str, str | None, str]]:
    """In the client namespace: a live session with its default filter (what
    ``analyzer.live`` runs) while an aioquic client offers an ALPN the server refuses; the
    client starts once dumpcap captures (``start`` returns then), however loaded the
    machine."""
    import subprocess
    import sys
    import threading

    from analyzer.live import LiveSession

    def connect() -> None:
        subprocess.run([sys.executable, "-m", "tests.harness.quic", "client", "--host",
                        server_ip, "--sni", HOST, "--cafile", cafile, "--alpn", "hq-interop"],
                       capture_output=True, timeout=30, check=False)

    session = LiveSession("eth0")
    client = threading.Thread(target=connect)
    try:
        session.start()
        client.start()
        return [(r.transport, r.outcome, r.failure, r.close)
                for r in session.records(count=1, duration=20)]
    finally:
        session.close()
        if client.ident is not None:  # started
            client.join()


@pytest.mark.skipif(shutil.which("dumpcap") is None, reason="dumpcap is not installed")
def test_live_capture_reports_a_refused_quic_connection_at_once(tmp_path: Path,
                                                                 pki: TestPKI) -> None:
    cert = pki.server(HOST)
    with Lab() as lab:
        srv = start_server(lab.server, tmp_path / "srv", ["--cert", str(cert.chain), "--key",
                                                          str(cert.key), "--alpn", "h3"])
        try:
            got = lab.client.call(_live_quic, lab.server_ip, str(pki.root), timeout=60)
        finally:
            srv.stop()
    # The CONNECTION_CLOSE settles it: reported then, without waiting for the drain.
    assert got == [("quic", "failed", "alpn_mismatch", "connection_close")]

"""OpenConnect VPN DTLS (the AnyConnect protocol) between ``ocserv`` and ``openconnect``
in namespaces: the DTLS channel our layer reads, checked against what both ends logged
and against tshark.

Three ways the DTLS channel starts: PSK-NEGOTIATE (a DTLS 1.2 PSK handshake), the legacy
resumption of the session the TLS channel announced (``X-DTLS-Session-ID``) in DTLS 1.2,
and in OpenConnect's pre-standard DTLS, record version 0x0100.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from analyzer.dtls import DTLSAssociation
from analyzer.tls.events import ChangeCipherSpec, EncryptedHandshake, HandshakeMsg
from analyzer.tls.messages import ClientHello, ServerHello
from analyzer.tls.names import cipher_name, version_name
from tests.harness import Capture, Lab, TestPKI, missing_requirements
from tests.harness.dtls import associations, ocserv, tshark_dtls

pytestmark = pytest.mark.root

_missing = missing_requirements(("ip", "tcpdump", "tshark", "ocserv", "ocpasswd", "openconnect"))
if _missing:
    pytest.skip(_missing, allow_module_level=True)


def vpn(tmp: Path, *, legacy: bool, client_args: tuple[str, ...] = ()) -> tuple[str, Path, str]:
    """Connect openconnect to ocserv, hold the tunnel for a moment, and return what the
    client printed, the capture of UDP 443 and the client's address."""
    pki = TestPKI(tmp / "pki")
    cert = pki.server("vpn.example.com", "10.99.0.1")
    pcap = tmp / "vpn.pcap"
    with Lab() as lab:
        srv = ocserv(lab.server, tmp / "ocserv", cert.chain, cert.key, legacy=legacy)
        try:
            with Capture(lab.client, pcap, bpf="udp port 443"):
                proc = lab.client.popen(
                    ["openconnect", "-v", "--passwd-on-stdin", "-u", "alice",
                     "--cafile", str(pki.root), "-s", "/bin/true", *client_args,
                     "https://10.99.0.1/"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    text=True,
                )  # fmt: skip
                assert proc.stdin is not None
                proc.stdin.write("secret\n")
                proc.stdin.flush()
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and not (
                    tmp / "ocserv" / "ocserv.stderr"
                ).read_text().count("DTLS"):
                    time.sleep(0.2)
                time.sleep(1.5)  # let the DTLS handshake and the MTU probes finish
                proc.terminate()
                out = proc.communicate(timeout=10)[0]
        finally:
            srv.stop()
        return out, pcap, lab.client_ip


def read(pcap: Path, client_ip: str) -> tuple[list[object], DTLSAssociation]:
    (assoc,) = associations(pcap, client_ip)
    parser = DTLSAssociation()
    events: list[object] = []
    for from_client, data, ts in assoc.datagrams:
        events += parser.datagram(from_client, data, ts)
    return events, parser


def established_with(out: str) -> str:
    """openconnect's "Established DTLS connection ... Ciphersuite (DTLS1.2)-(PSK)-(...)"."""
    found = re.search(r"Established DTLS connection .*Ciphersuite \((DTLS[\d.]+)\)-\((\w+)\)", out)
    assert found, out[-2000:]
    return found.group(1) + "/" + found.group(2)


def hellos(events: list[object]) -> tuple[ClientHello, ServerHello]:
    (ch,) = [
        e.parsed
        for e in events
        if isinstance(e, HandshakeMsg) and isinstance(e.parsed, ClientHello)
    ]
    (sh,) = [
        e.parsed
        for e in events
        if isinstance(e, HandshakeMsg) and isinstance(e.parsed, ServerHello)
    ]
    assert isinstance(ch, ClientHello) and isinstance(sh, ServerHello)
    return ch, sh


def tshark_server_hello(pcap: Path) -> tuple[int, int]:
    (row,) = [r for r in tshark_dtls(pcap) if "2" in r.get("dtls.handshake.type", [])]
    return int(row["dtls.handshake.version"][0], 16), int(row["dtls.handshake.ciphersuite"][0], 16)


def test_psk_negotiate(tmp_path: Path) -> None:
    out, pcap, client_ip = vpn(tmp_path, legacy=False)
    assert established_with(out) == "DTLS1.2/PSK"
    assert "X-DTLS-CipherSuite: PSK-NEGOTIATE" in out
    events, parser = read(pcap, client_ip)
    _, sh = hellos(events)
    assert version_name(sh.version) == "DTLSv1.2" and "PSK" in cipher_name(sh.cipher_suite)
    assert tshark_server_hello(pcap) == (sh.legacy_version, sh.cipher_suite)
    assert sum(isinstance(e, EncryptedHandshake) for e in events) == 2
    assert parser.facts().client.legacy_records == 0


@pytest.mark.parametrize(
    ("args", "version", "record_version"),
    [((), "DTLSv1.2", 0xFEFD), (("--dtls-ciphers=AES128-SHA",), "DTLSv0.9", 0x0100)],
)
def test_legacy_resumption(
    tmp_path: Path, args: tuple[str, ...], version: str, record_version: int
) -> None:
    out, pcap, client_ip = vpn(tmp_path, legacy=True, client_args=args)
    assert established_with(out).split("/")[0] == version.replace("v", "")
    session_id = re.search(r"X-DTLS-Session-ID: ([0-9a-f]+)", out)
    assert session_id
    events, parser = read(pcap, client_ip)
    ch, sh = hellos(events)
    # AnyConnect's DTLS resumes the session the TLS channel announced: an abbreviated
    # handshake, ServerHello then the server's ChangeCipherSpec and Finished
    assert ch.session_id.hex() == sh.session_id.hex() == session_id.group(1)
    assert version_name(sh.version) == version
    assert tshark_server_hello(pcap) == (sh.legacy_version, sh.cipher_suite)
    kinds = [
        type(e).__name__
        for e in events
        if isinstance(e, HandshakeMsg | ChangeCipherSpec | EncryptedHandshake)
    ]
    assert kinds == [
        "HandshakeMsg",
        "HandshakeMsg",
        "ChangeCipherSpec",
        "EncryptedHandshake",
        "ChangeCipherSpec",
        "EncryptedHandshake",
    ]
    facts = parser.facts()
    legacy = facts.client.legacy_records + facts.server.legacy_records
    assert legacy == (
        facts.client.records + facts.server.records if record_version == 0x0100 else 0
    )

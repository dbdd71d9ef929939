"""Real DTLS handshakes captured in network namespaces, read by our DTLS layer and checked
against how each scenario was set up, what client and server reported, and tshark.

Peers: ``openssl s_server``/``s_client`` (DTLS 1.2, DTLS 1.0 at SECLEVEL 0, cookie
exchange, MTU 500), ``gnutls-serv``/``gnutls-cli --udp``; failures: version and cipher
mismatch, expired and untrusted certificates, a required client certificate, a server
behind an iptables drop, nothing listening (ICMP port unreachable).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from analyzer.dtls import DTLSAssociation, DTLSFacts, Opening, opening
from analyzer.fingerprints import ja3
from analyzer.tls.enums import HandshakeType
from analyzer.tls.events import Alert, HandshakeMsg
from analyzer.tls.messages import ClientHello, ServerHello
from analyzer.tls.names import version_name
from tests.harness import Capture, Lab, LeafKind, TestPKI, missing_requirements
from tests.harness.dtls import DTLS_PORT as PORT
from tests.harness.dtls import DTLS_SNI as SNI
from tests.harness.dtls import (
    Association,
    associations,
    s_client,
    s_server,
    tshark_dtls,
    udp_server,
)
from tests.harness.netns import Run

pytestmark = pytest.mark.root

LOW = "DEFAULT@SECLEVEL=0"  # DTLS 1.0 needs SHA-1 signatures, refused at the default level

_missing = missing_requirements(("ip", "tcpdump", "tshark", "openssl"))
if _missing:
    pytest.skip(_missing, allow_module_level=True)


@dataclass
class Outcome:
    """One scenario: what the peers said, and our and tshark's reading of the capture."""

    client: Run
    server_text: str
    assoc: Association
    events: list[object]
    facts: DTLSFacts
    tshark: list[dict[str, list[str]]]
    icmp: int = 0
    messages: list[tuple[bool, int]] = field(default_factory=list)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("dtls-pki"))


def scenario(
    tmp: Path,
    server: list[str] | None,
    client: list[str],
    *,
    drop: bool = False,
    timeout: float = 15.0,
) -> Outcome:
    """Run ``server`` (None: nothing listens) and ``client`` in a Lab, capture on the
    client's side, and read the capture."""
    pcap = tmp / "dtls.pcap"
    with Lab() as lab:
        if drop:  # the server host silently drops what the client sends
            lab.server.sh(
                ["iptables", "-A", "INPUT", "-p", "udp", "--dport", str(PORT), "-j", "DROP"]
            )
        srv = udp_server(lab.server, tmp / "srv", "server", server, PORT) if server else None
        try:
            with Capture(lab.client, pcap, bpf="udp or icmp"):
                run = lab.client.run(client, input="", timeout=timeout)
        finally:
            if srv is not None:
                srv.stop()
        server_text = srv.text() if srv is not None else ""
        client_ip = lab.client_ip
    (assoc,) = [a for a in associations(pcap, client_ip) if a.server[1] == PORT]
    parser = DTLSAssociation()
    events: list[object] = []
    for from_client, data, ts in assoc.datagrams:
        events += parser.datagram(from_client, data, ts)
    rows = tshark_dtls(pcap)
    outcome = Outcome(
        client=run,
        server_text=server_text,
        assoc=assoc,
        events=events,
        facts=parser.facts(),
        tshark=rows,
        icmp=sum(1 for r in rows if r.get("icmp.type") == ["3"]),
    )
    outcome.messages = _messages_by_side(assoc)
    return outcome


def _messages_by_side(assoc: Association) -> list[tuple[bool, int]]:
    """Our handshake messages in the order they completed, with who sent them."""
    parser = DTLSAssociation()
    out = []
    for from_client, data, ts in assoc.datagrams:
        for event in parser.datagram(from_client, data, ts):
            if isinstance(event, HandshakeMsg):
                out.append((from_client, event.msg_type))
    return out


def tshark_messages(out: Outcome) -> list[tuple[bool, int]]:
    """tshark's plaintext handshake messages, one per (sender, message_seq, type) in order
    of first sight: fragments and retransmissions counted once."""
    client_ip = out.assoc.client[0]
    seen: set[tuple[bool, int, int]] = set()
    found = []
    for row in out.tshark:
        if not row.get("ip.src") or row.get("icmp.type"):
            continue
        from_client = row["ip.src"] == [client_ip]
        for typ, seq in zip(
            row.get("dtls.handshake.type", []),
            row.get("dtls.handshake.message_seq", []),
            strict=False,
        ):
            key = (from_client, int(seq), int(typ))
            if key not in seen:
                seen.add(key)
                found.append((from_client, int(typ)))
    return found


def tshark_alerts(out: Outcome) -> list[tuple[bool, int]]:
    client_ip = out.assoc.client[0]
    return [
        (row["ip.src"] == [client_ip], int(desc))
        for row in out.tshark
        if row.get("ip.src") and not row.get("icmp.type")
        for desc in row.get("dtls.alert_message.desc", [])
    ]


def our_alerts(out: Outcome) -> list[tuple[bool, int]]:
    parser = DTLSAssociation()
    found = []
    for from_client, data, ts in out.assoc.datagrams:
        for event in parser.datagram(from_client, data, ts):
            if isinstance(event, Alert) and not event.encrypted and event.description is not None:
                found.append((from_client, event.description))
    return found


def hello(
    out: Outcome, kind: type[ClientHello] | type[ServerHello]
) -> list[ClientHello | ServerHello]:
    return [
        e.parsed for e in out.events if isinstance(e, HandshakeMsg) and isinstance(e.parsed, kind)
    ]


def check_against_tshark(out: Outcome) -> None:
    """Messages, alerts, SNI, version, cipher and JA3 as tshark reads the same capture."""
    assert out.messages == tshark_messages(out)
    assert our_alerts(out) == tshark_alerts(out)
    client_ip = out.assoc.client[0]
    first_hellos = _first_client_hellos(out)  # a resent ClientHello is not a new one
    ja3_theirs = [j for r in first_hellos for j in r.get("dtls.handshake.ja3_full", [])]
    hellos = hello(out, ClientHello)
    assert [ja3(ch)[0] for ch in hellos if isinstance(ch, ClientHello)] == ja3_theirs
    sni_theirs = [
        s for r in first_hellos for s in r.get("dtls.handshake.extensions_server_name", [])
    ]
    assert [ch.sni for ch in hellos if isinstance(ch, ClientHello)] == sni_theirs
    server_rows = [
        r
        for r in out.tshark
        if r.get("ip.src")
        and r["ip.src"] != [client_ip]
        and "2" in r.get("dtls.handshake.type", [])
    ]
    shs = [sh for sh in hello(out, ServerHello) if isinstance(sh, ServerHello)]
    if server_rows:
        row = server_rows[0]
        assert int(row["dtls.handshake.ciphersuite"][0], 16) == shs[0].cipher_suite
        versions = row["dtls.handshake.version"]
        assert int(versions[0], 16) == shs[0].legacy_version
    else:
        assert shs == []


def _first_client_hellos(out: Outcome) -> list[dict[str, list[str]]]:
    """tshark's client frames that carry a ClientHello of a message_seq not seen before."""
    seen: set[str] = set()
    rows = []
    for row in out.tshark:
        if row.get("ip.src") != [out.assoc.client[0]] or row.get("icmp.type"):
            continue
        pairs = zip(
            row.get("dtls.handshake.type", []),
            row.get("dtls.handshake.message_seq", []),
            strict=False,
        )
        new = [seq for typ, seq in pairs if typ == "1" and seq not in seen]
        if new:
            seen.update(new)
            rows.append(row)
    return rows


def test_dtls12_with_cookie_exchange(tmp_path: Path, pki: TestPKI) -> None:
    out = scenario(tmp_path, s_server(pki, "-dtls1_2", "-listen"), s_client(pki, "-dtls1_2"))
    assert "Protocol  : DTLSv1.2" in out.client.stdout, out.client.summary()
    check_against_tshark(out)
    (sh,) = hello(out, ServerHello)
    assert isinstance(sh, ServerHello) and version_name(sh.version) == "DTLSv1.2"
    assert opening(out.assoc.datagrams[0][1]) is Opening.CLIENT_HELLO
    sides = [c for c, _ in out.messages]
    types = [t for _, t in out.messages]
    assert types[:3] == [
        HandshakeType.client_hello,
        HandshakeType.hello_verify_request,
        HandshakeType.client_hello,
    ]
    assert sides[:3] == [True, False, True]
    assert out.facts.hello_verify_cookie and out.facts.cookie_echoed
    first, second = hello(out, ClientHello)
    assert isinstance(first, ClientHello) and isinstance(second, ClientHello)
    assert (
        first.cookie == b""
        and second.cookie
        and len(second.cookie) == out.facts.hello_verify_cookie
    )
    assert ja3(first) == ja3(second)
    assert sum(1 for e in out.events if type(e).__name__ == "EncryptedHandshake") == 2
    assert out.facts.client.flights_resent == out.facts.server.flights_resent == 0


def test_dtls10_at_seclevel_0(tmp_path: Path, pki: TestPKI) -> None:
    out = scenario(
        tmp_path,
        s_server(pki, "-dtls1", "-cipher", LOW),
        s_client(pki, "-dtls1", "-cipher", LOW),
    )
    assert "Protocol  : DTLSv1" in out.client.stdout, out.client.summary()
    check_against_tshark(out)
    (sh,) = hello(out, ServerHello)
    assert isinstance(sh, ServerHello) and version_name(sh.version) == "DTLSv1.0"


def test_version_mismatch(tmp_path: Path, pki: TestPKI) -> None:
    out = scenario(
        tmp_path,
        s_server(pki, "-dtls1_2"),
        s_client(pki, "-dtls1", "-cipher", LOW),
    )
    assert "Cipher    : 0000" in out.client.stdout  # no cipher: the handshake failed
    check_against_tshark(out)
    assert (False, 70) in our_alerts(out)  # the server's protocol_version
    offered = {ch.legacy_version for ch in hello(out, ClientHello) if isinstance(ch, ClientHello)}
    assert offered == {0xFEFF}


def test_cipher_mismatch(tmp_path: Path, pki: TestPKI) -> None:
    out = scenario(
        tmp_path,
        s_server(pki, "-dtls1_2", "-cipher", "AES128-SHA"),
        s_client(pki, "-dtls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384"),
    )
    check_against_tshark(out)
    assert (False, 40) in our_alerts(out)  # handshake_failure
    assert hello(out, ServerHello) == []


@pytest.mark.parametrize(
    ("kind", "alert"),
    [(LeafKind.EXPIRED, 45), (LeafKind.INSPECTION, 48)],  # certificate_expired, unknown_ca
)
def test_certificate_refused_by_the_client(
    tmp_path: Path, pki: TestPKI, kind: LeafKind, alert: int
) -> None:
    out = scenario(tmp_path, s_server(pki, "-dtls1_2", kind=kind), s_client(pki, "-dtls1_2"))
    check_against_tshark(out)
    assert our_alerts(out) == [(True, alert)]
    assert "verify error" in out.client.stdout + out.client.stderr


def test_client_certificate_required(tmp_path: Path, pki: TestPKI) -> None:
    out = scenario(tmp_path, s_server(pki, "-dtls1_2", "-Verify", "1"), s_client(pki, "-dtls1_2"))
    check_against_tshark(out)
    types = [t for c, t in out.messages if not c]
    assert HandshakeType.certificate_request in types
    assert [t for c, t in out.messages if c][-2:] == [
        HandshakeType.certificate,
        HandshakeType.client_key_exchange,
    ]
    assert our_alerts(out) == [(False, 40)]  # handshake_failure, in clear
    assert "peer did not return a certificate" in out.server_text


def test_mtu_500_fragments_the_flight(tmp_path: Path, pki: TestPKI) -> None:
    out = scenario(
        tmp_path, s_server(pki, "-dtls1_2", "-mtu", "500"), s_client(pki, "-dtls1_2", "-mtu", "500")
    )
    assert "Protocol  : DTLSv1.2" in out.client.stdout, out.client.summary()
    check_against_tshark(out)
    assert out.facts.server.largest_datagram <= 500
    (cert,) = [
        e
        for e in out.events
        if isinstance(e, HandshakeMsg) and e.msg_type == HandshakeType.certificate
    ]
    assert isinstance(cert, HandshakeMsg) and cert.records > 1
    tshark_fragments = sum(
        1
        for r in out.tshark
        if r.get("ip.src") != [out.assoc.client[0]]
        for t in r.get("dtls.handshake.type", [])
        if t == "11"
    )
    assert cert.records == tshark_fragments


def test_server_behind_a_drop(tmp_path: Path, pki: TestPKI) -> None:
    out = scenario(
        tmp_path,
        s_server(pki, "-dtls1_2"),
        [*s_client(pki, "-dtls1_2"), "-timeout"],
        drop=True,
        timeout=6,
    )
    sent = [d for d in out.assoc.datagrams if d[0]]
    assert len(sent) >= 2 and all(c for c, _, _ in out.assoc.datagrams)
    assert out.messages == [(True, HandshakeType.client_hello)]
    assert out.facts.client.flights_resent == len(sent) - 1
    assert out.facts.server.datagrams == 0
    check_against_tshark(out)


def test_nothing_listening(tmp_path: Path, pki: TestPKI) -> None:
    out = scenario(tmp_path, None, [*s_client(pki, "-dtls1_2"), "-timeout"], timeout=6)
    assert out.icmp >= 1  # port unreachable: the engine's evidence for udp_refused
    assert out.messages[:1] == [(True, HandshakeType.client_hello)]
    assert out.facts.server.datagrams == 0


@pytest.mark.skipif(shutil.which("gnutls-serv") is None, reason="gnutls-bin not installed")
def test_gnutls_over_udp(tmp_path: Path, pki: TestPKI) -> None:
    cert = pki.server(SNI)
    server = [
        "gnutls-serv",
        "--udp",
        "--port",
        str(PORT),
        "--x509certfile",
        str(cert.chain),
        "--x509keyfile",
        str(cert.key),
    ]
    client = [
        "gnutls-cli",
        "--udp",
        "--port",
        str(PORT),
        "--x509cafile",
        str(pki.root),
        "--sni-hostname",
        SNI,
        "--verify-hostname",
        SNI,
        "10.99.0.1",
    ]
    out = scenario(tmp_path, server, client)
    assert "Handshake was completed" in out.client.stdout + out.client.stderr, out.client.summary()
    check_against_tshark(out)
    (sh,) = hello(out, ServerHello)
    assert isinstance(sh, ServerHello) and version_name(sh.version) == "DTLSv1.2"
    assert sum(1 for e in out.events if type(e).__name__ == "EncryptedHandshake") == 2

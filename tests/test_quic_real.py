"""QUIC handshakes between a real aioquic client and server in private namespaces,
captured with tcpdump and read back by the QUIC connection parser.

Truth comes from the set-up and from what client and server reported (their JSON lines:
negotiated version and ALPN, the CONNECTION_CLOSE each received); tshark is the second
opinion on SNI, versions, ALPN, Retry and Version Negotiation fields and the
CONNECTION_CLOSE, with the peers' key log (``-o tls.keylog_file``) where Handshake
packets matter. Scenarios: QUIC v1 and v2, Retry, Version Negotiation (with and without
a common version), an ALPN the server does not speak, an untrusted, an expired and a
wrong-host certificate, a ClientHello longer than one Initial, and a server whose UDP 443
is dropped.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from analyzer.quic import (
    ConnectionClose,
    Decrypted,
    QuicConnectionParser,
    Retry,
    VersionNegotiation,
)
from analyzer.tls.enums import HandshakeType
from analyzer.tls.events import Alert, HandshakeMsg, ParseAnomaly
from analyzer.tls.messages import ClientHello
from tests.harness import Capture, Lab, LeafKind, TestPKI, missing_requirements
from tests.harness.quic import (
    parse_flow,
    read_keylog,
    run_client,
    server_lines,
    start_server,
    tshark_quic,
    udp_flows,
)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(
        (why := missing_requirements(("ip", "iptables", "tcpdump", "tshark"))) is not None,
        reason=why or "",
    ),
    pytest.mark.skipif(importlib.util.find_spec("aioquic") is None, reason="aioquic missing"),
]

HOST = "www.example.com"
V2 = 0x6B3343CF


@dataclass
class Outcome:
    flow: Any
    client: dict[str, Any]
    server: list[dict[str, Any]]
    facts: Any
    events: list[Any]
    tshark: list[dict[str, list[str]]]
    """tshark's rows, decrypted with the key log."""
    tshark_plain: list[dict[str, list[str]]]
    """tshark's rows without the key log."""
    facts_plain: Any
    """The parser's facts without the key log."""
    events_plain: list[Any]
    secrets: dict[str, bytes]

    def messages(self, from_keylog: bool = True) -> list[int]:
        events = self.events if from_keylog else self.events_plain
        return [e.msg_type for e in events if isinstance(e, HandshakeMsg)]

    def tshark_values(self, field: str, *, plain: bool = False) -> list[str]:
        return [v for row in (self.tshark_plain if plain else self.tshark) for v in row[field]]


@pytest.fixture
def quic_lab(tmp_path: Path) -> Iterator[tuple[Lab, TestPKI, Path]]:
    pki = TestPKI(tmp_path / "pki")
    with Lab() as lab:
        yield lab, pki, tmp_path


def _run(lab_pki: tuple[Lab, TestPKI, Path], server: list[str] | None, client: list[str], *,
         kind: LeafKind = LeafKind.GOOD, drop: bool = False) -> Outcome:
    lab, pki, tmp = lab_pki
    cert = pki.server(HOST, kind=kind)
    keylog = tmp / "keys.log"
    pcap = tmp / "quic.pcap"
    srv = None
    if drop:
        lab.server.sh(["iptables", "-A", "INPUT", "-p", "udp", "--dport", "443", "-j", "DROP"])
    if server is not None:
        srv = start_server(lab.server, tmp / "srv",
                           ["--cert", str(cert.chain), "--key", str(cert.key), *server])
    try:
        with Capture(lab.client, pcap, bpf="udp port 443"):
            result = run_client(lab.client, ["--host", lab.server_ip, "--sni", HOST,
                                             "--cafile", str(pki.root), "--keylog", str(keylog),
                                             *client])
    finally:
        if srv is not None:
            srv.stop()
    flows = udp_flows(pcap)
    assert len(flows) == 1
    secrets = read_keylog(keylog) if keylog.exists() else {}
    parser, events = parse_flow(flows[0], secrets)
    plain_parser, plain_events = parse_flow(flows[0])
    return Outcome(
        flow=flows[0], client=result, server=server_lines(srv) if srv is not None else [],
        facts=parser.facts(), events=events,
        tshark=tshark_quic(pcap, keylog if keylog.exists() else None),
        tshark_plain=tshark_quic(pcap),
        facts_plain=plain_parser.facts(), events_plain=plain_events, secrets=secrets,
    )


def _client_hellos(outcome: Outcome) -> list[ClientHello]:
    return [e.parsed for e in outcome.events
            if isinstance(e, HandshakeMsg) and isinstance(e.parsed, ClientHello)]


def _check_hello_against_tshark(outcome: Outcome) -> None:
    hellos = _client_hellos(outcome)
    assert hellos and {h.sni for h in hellos} == {HOST}
    assert set(outcome.tshark_values("tls.handshake.extensions_server_name")) == {HOST}
    assert [a.decode() for a in hellos[0].alpn] == ["h3"]
    assert not [e for e in outcome.events if isinstance(e, ParseAnomaly)]


@pytest.mark.parametrize(("versions", "number", "name"), [("v1", 1, "v1"), ("v2", V2, "v2")])
def test_handshake_with_key_log(quic_lab: Any, versions: str, number: int, name: str) -> None:
    outcome = _run(quic_lab, [f"--versions={versions}"], [f"--versions={versions}"])
    assert outcome.client["ok"] and outcome.client["handshake"] == {"alpn": "h3",
                                                                    "version": number}
    _check_hello_against_tshark(outcome)
    facts = outcome.facts
    assert facts.version_name == name
    assert set(outcome.tshark_values("quic.version")) == {f"0x{number:08x}"}
    # The key log opens both sides' Handshake packets: EncryptedExtensions, Certificate,
    # CertificateVerify and both Finished, as tshark shows them with the same key log.
    expected = [HandshakeType.client_hello, HandshakeType.server_hello,
                HandshakeType.encrypted_extensions, HandshakeType.certificate,
                HandshakeType.certificate_verify, HandshakeType.finished, HandshakeType.finished]
    assert sorted(outcome.messages()) == sorted(expected)
    assert sorted(int(t) for t in outcome.tshark_values("tls.handshake.type")) == sorted(expected)
    assert facts.decrypted == ("client", "server")
    assert sum(isinstance(e, Decrypted) for e in outcome.events) == 2
    # Secrets installed only after the whole connection was fed: the held packets open.
    late = QuicConnectionParser(await_secrets=True)
    held = [e for ts, from_client, data in outcome.flow.datagrams
            for e in late.datagram(from_client, data, ts)]
    random = _client_hellos(outcome)[0].random.hex()
    for label, from_client in (("CLIENT", True), ("SERVER", False)):
        secret = outcome.secrets[f"{label}_HANDSHAKE_TRAFFIC_SECRET {random}"]
        held += late.install_handshake_secret(from_client, secret)
    assert sorted(e.msg_type for e in held if isinstance(e, HandshakeMsg)) == sorted(expected)
    # Without it: the hellos only, and the same packet counts.
    assert outcome.messages(from_keylog=False) == [1, 2]
    assert (outcome.facts_plain.client, outcome.facts_plain.server) == (facts.client, facts.server)
    assert facts.client.one_rtt > 0 and facts.server.one_rtt > 0
    assert facts.client.handshake > 0 and facts.server.handshake > 0
    assert facts.closes == ()  # aioquic closes in a 1-RTT packet
    history = facts.history
    assert history.startswith("IS") and "is" in history and "H" in history and "h" in history
    assert "O" in history and "o" in history and facts.history_rows == (history,)


def test_retry(quic_lab: Any) -> None:
    outcome = _run(quic_lab, ["--retry"], [])
    assert outcome.client["ok"]
    _check_hello_against_tshark(outcome)
    facts = outcome.facts
    retries = [e for e in outcome.events if isinstance(e, Retry)]
    assert len(retries) == 1 and facts.retry == retries[0] and retries[0].tag_valid is True
    (token,) = outcome.tshark_values("quic.retry_token")
    assert retries[0].token_length == len(token.replace(":", "")) // 2
    assert facts.server_scid is not None
    # Zeek logs a row up to the Retry, then a new one for the client's second attempt.
    assert facts.history_rows[0].startswith("IS") and facts.history_rows[0].endswith("r")
    assert facts.history_rows[1].startswith("IS")
    assert len(_client_hellos(outcome)) == 2  # aioquic starts its handshake over
    assert facts.decrypted == ("client", "server")


def test_version_negotiation_then_a_common_version(quic_lab: Any) -> None:
    outcome = _run(quic_lab, ["--versions=v1"], ["--versions=v2,v1"])
    assert outcome.client["ok"] and outcome.client["handshake"]["version"] == 1
    _check_hello_against_tshark(outcome)
    facts = outcome.facts
    offered = [e.versions for e in outcome.events if isinstance(e, VersionNegotiation)]
    assert offered == [(1,)] and facts.offered_versions == (1,)
    assert outcome.tshark_values("quic.supported_version") == ["0x00000001"]
    assert facts.version_name == "v1" and facts.server.version_negotiation == 1
    # The VN packet's fixed bit is random (RFC 9000 §17.2.1): Zeek calls it an unhandled
    # version ("u", which ends its row) when the bit is set, a discarded packet ("x") when not.
    assert facts.history.startswith(("ISXu", "ISXx"))


def test_version_negotiation_without_a_common_version(quic_lab: Any) -> None:
    outcome = _run(quic_lab, ["--versions=v1"], ["--versions=v2"])
    assert not outcome.client["ok"]
    assert "common protocol version" in outcome.client["closed"]["reason"]
    facts = outcome.facts
    assert facts.version_name == "v2" and facts.offered_versions == (1,)
    assert facts.server.initial == 0 and facts.closes == ()


def test_alpn_mismatch(quic_lab: Any) -> None:
    outcome = _run(quic_lab, ["--alpn=h3"], ["--alpn=hq-interop"])
    received = outcome.client["closed"]
    assert not outcome.client["ok"] and received["error_code"] == 0x100 + 120
    (close,) = [e for e in outcome.events if isinstance(e, ConnectionClose)]
    assert (close.from_client, close.error_code, close.frame_type, close.reason) == (
        False, received["error_code"], received["frame_type"], received["reason"])
    assert close.tls_alert == 120  # no_application_protocol
    assert Alert(level=2, description=120, encrypted=False, length=0) in outcome.events
    # tshark, without any key: the close is in the server's Initial.
    assert outcome.tshark_values("quic.cc.error_code", plain=True) == [str(close.error_code)]
    assert outcome.tshark_values("quic.cc.reason_phrase", plain=True) == [close.reason]
    assert outcome.facts_plain.closes == (close,)
    assert outcome.facts.history.endswith("c")


@pytest.mark.parametrize(
    ("kind", "client_args", "alert"),
    [
        (LeafKind.GOOD, ["--sni", "other.example.org"], 42),  # aioquic: bad_certificate
        (LeafKind.EXPIRED, [], 45),  # certificate_expired
        (LeafKind.INSPECTION, [], 42),
    ],
    ids=["wrong_host", "expired", "untrusted"],
)
def test_certificate_rejected_by_the_client(quic_lab: Any, kind: LeafKind,
                                            client_args: list[str], alert: int) -> None:
    outcome = _run(quic_lab, [], client_args, kind=kind)
    assert not outcome.client["ok"]
    (report,) = [line for line in outcome.server if line.get("event") == "closed"]
    # The client's close travels in a Handshake packet: only the key log shows it.
    assert outcome.facts_plain.closes == ()
    assert outcome.tshark_values("quic.cc.error_code", plain=True) == []
    (close,) = [e for e in outcome.events if isinstance(e, ConnectionClose)]
    assert (close.from_client, close.error_code, close.reason) == (
        True, report["error_code"], report["reason"])
    assert close.tls_alert == alert
    assert outcome.tshark_values("quic.cc.error_code") == [str(close.error_code)]
    assert outcome.tshark_values("quic.cc.reason_phrase") == [close.reason]
    assert HandshakeType.certificate in outcome.messages()


def test_client_hello_over_two_initials(quic_lab: Any) -> None:
    outcome = _run(quic_lab, [], ["--large-hello"])
    assert outcome.client["ok"]
    _check_hello_against_tshark(outcome)
    (hello,) = [e for e in outcome.events
                if isinstance(e, HandshakeMsg) and e.msg_type == HandshakeType.client_hello]
    assert hello.length > 1200
    assert outcome.facts.history.startswith("IiIS") or outcome.facts.history.startswith("IIS")


def test_server_that_does_not_answer(quic_lab: Any) -> None:
    outcome = _run(quic_lab, None, ["--idle=3", "--timeout=3"], drop=True)
    assert not outcome.client["ok"]
    facts = outcome.facts
    client_initials = sum(r["quic.long.packet_type"].count("0") for r in outcome.tshark)
    assert facts.client.initial == client_initials >= 2
    assert facts.client_initial_repeats == facts.client.initial - 1
    assert facts.server == type(facts.server)()  # nothing at all from the server
    _check_hello_against_tshark(outcome)
    assert facts.history.startswith("IS")

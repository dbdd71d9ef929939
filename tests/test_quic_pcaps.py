"""Every QUIC connection in the shared reference captures, against tshark and against what
suricata-verify's tests expect of the same captures.

For each UDP flow whose first datagram is a long header of a known version, the parser's
SNI, offered ALPN, QUIC version and connection IDs must equal tshark's; the JA4 over the
QUIC ClientHellos must be the one the ``test.yaml`` files give (``quic.ja4``), the JA3 the
one Suricata matches in ``quic-v2-ja3`` and ``quic-ietf-ja3`` and tshark computes.
The captures are read from ``../shared/pcaps``; the module is skipped when it is absent.
"""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from analyzer.fingerprints import client_fingerprints, ja3s
from analyzer.quic import PacketType, peek_long_header, version_name
from analyzer.tls.events import HandshakeMsg, ParseAnomaly
from analyzer.tls.messages import ClientHello, ServerHello
from tests.harness.quic import UdpFlow, parse_flow, tshark_quic, udp_flows

PCAPS = Path(__file__).resolve().parents[2] / "shared" / "pcaps"
SURICATA = PCAPS / "suricata-verify"

pytestmark = [
    pytest.mark.skipif(not PCAPS.is_dir(), reason=f"reference captures absent: {PCAPS}"),
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed"),
]


def _captures() -> list[Path]:
    if not PCAPS.is_dir():
        return []
    return sorted(p for p in PCAPS.rglob("*") if p.suffix in (".pcap", ".pcapng", ".cap"))


def _is_quic(flow: UdpFlow) -> bool:
    ids = peek_long_header(flow.datagrams[0][2])
    return ids is not None and ids.known and ids.type is PacketType.initial


@cache
def _flows(path: Path) -> tuple[UdpFlow, ...]:
    return tuple(udp_flows(path))


@cache
def _quic(path: Path) -> tuple[tuple[UdpFlow, Any, tuple[Any, ...]], ...]:
    return tuple((flow, *parse_flow(flow)) for flow in _flows(path) if _is_quic(flow))


QUIC_FILES = [p for p in _captures() if _quic(p)]


def test_the_quic_captures_are_the_ones_tshark_sees() -> None:
    with_udp = [p for p in _captures() if _flows(p)]
    tshark = {p for p in with_udp if tshark_quic(p)}
    assert set(QUIC_FILES) == tshark
    assert len(QUIC_FILES) >= 8


@pytest.mark.parametrize("path", QUIC_FILES, ids=lambda p: str(p.relative_to(PCAPS)))
def test_agrees_with_tshark(path: Path) -> None:
    rows = tshark_quic(path)
    for flow, parser, events in _quic(path):
        ports = (str(flow.client[1]), str(flow.server[1]))
        mine = [r for r in rows if (*r["udp.srcport"], *r["udp.dstport"]) in (ports, ports[::-1])]
        client_rows = [r for r in mine if r["udp.srcport"] == [ports[0]]]
        hellos = _messages(events, ClientHello)
        assert len(hellos) == 1
        hello = hellos[0]
        tshark_sni = {v for r in client_rows for v in r["tls.handshake.extensions_server_name"]}
        assert {hello.sni} - {None} == tshark_sni
        first_ch = next(r for r in client_rows if "1" in r["tls.handshake.type"])
        assert [a.decode() for a in hello.alpn] == first_ch["tls.handshake.extensions_alpn_str"]
        facts = parser.facts()
        assert f"0x{facts.version:08x}" == client_rows[0]["quic.version"][0]
        assert facts.client_initial_dcid.hex() == client_rows[0]["quic.dcid"][0]
        server_scids = {v for r in mine if r["udp.srcport"] == [ports[1]] for v in r["quic.scid"]}
        if facts.server_scid is not None:
            assert server_scids == {facts.server_scid.hex()}
        assert client_fingerprints(hello, "q")[1] == first_ch["tls.handshake.ja3"][0]
        assert not [e for e in events if isinstance(e, ParseAnomaly)]
        long_packets = sum(len(r["quic.version"]) for r in mine)  # tshark 4.0 types no v2
        counted = facts.client.initial + facts.client.handshake + facts.server.initial \
            + facts.server.handshake + facts.client.zero_rtt + facts.server.zero_rtt
        assert counted == long_packets


def _messages(events: tuple[Any, ...], kind: type[Any]) -> list[Any]:
    return [e.parsed for e in events if isinstance(e, HandshakeMsg) and isinstance(e.parsed, kind)]


def _suricata_ja4() -> list[tuple[Path, int, str]]:
    """(pcap, count, ja4) for every ``quic.ja4`` a test.yaml check expects."""
    found = []
    for path in sorted(SURICATA.glob("*/test.yaml")):
        test = yaml.safe_load(path.read_text())
        named = test.get("pcap", "input.pcap")
        if not isinstance(named, str):
            continue  # "pcap: false": a test without a capture
        pcap = path.parent / named
        for check in test.get("checks", []):
            match = check.get("filter", {}).get("match", {})
            if match.get("event_type") == "quic" and "quic.ja4" in match:
                found.append((pcap.resolve(), check["filter"]["count"], match["quic.ja4"]))
    return found


def test_ja4_over_quic_matches_suricata_verify() -> None:
    expectations = _suricata_ja4()
    assert len(expectations) >= 4
    for pcap, count, expected in expectations:
        hellos = [h for _, _, events in _quic(pcap) for h in _messages(events, ClientHello)]
        assert [client_fingerprints(h, "q")[2] for h in hellos] == [expected] * count


def test_ja3_over_quic_as_suricata_computes_it() -> None:
    ((_, _, events),) = _quic(SURICATA / "quic-v2-ja3" / "input.pcap")
    (hello,) = _messages(events, ClientHello)
    # suricata-verify quic-v2-ja3/test.rules (sid 3) and ja3-lua-rules-quic/test-ja3.lua
    # match this ja3.string on the capture's QUIC v2 ClientHello.
    assert client_fingerprints(hello, "q")[0] == (
        "771,4865-4866-4867,5-10-11-13-65281-23-16-18-43-51-57,29-23-24-25,0")
    # quic-v2-ja3/test.yaml: extensions[0] is status_request, extensions[6] alpn "h3".
    assert (hello.extensions[0].type, hello.extensions[6].type, hello.alpn) == (5, 16, (b"h3",))


def test_ja3s_over_quic_as_suricata_computes_it() -> None:
    ((_, parser, events),) = _quic(SURICATA / "quic-ietf-ja3" / "input.pcap")
    (hello,) = _messages(events, ServerHello)
    # suricata-verify quic-ietf-ja3/test.rules, sid 3 (which its test.yaml expects to fire).
    assert ja3s(hello)[0] == "771,4866,43-51-41"
    assert version_name(parser.facts().version) == "v1"


def test_quic_histories_of_the_reference_captures() -> None:
    # Letters from the rules of Zeek's QUIC analyzer (see analyzer/quic/history.py); the
    # single-Initial captures hold only the client's first packet.
    histories = {flow.client[1]: parser.facts().history
                 for path in QUIC_FILES for flow, parser, _ in _quic(path)}
    assert histories[51333] == "IS"
    assert histories[64629].startswith("ISish")  # quic-v2-ja3: server Initial + Handshake
    assert histories[56785].startswith("ISish")  # quic-ietf-ja3


# -- the same captures, as records of the whole pipeline ----------------------------------------


@cache
def _records(path: Path) -> tuple[Any, ...]:
    from analyzer.api import Run, collect

    return tuple(r for r in collect([path], Run(), workers=1) if r.transport == "quic")


@pytest.mark.parametrize("path", QUIC_FILES, ids=lambda p: str(p.relative_to(PCAPS)))
def test_records_agree_with_tshark(path: Path) -> None:
    rows = tshark_quic(path)
    flows = _quic(path)
    records = _records(path)
    assert len(records) == len(flows)  # one record per QUIC connection
    for flow, parser, _ in flows:
        ports = (str(flow.client[1]), str(flow.server[1]))
        client_rows = [r for r in rows if (*r["udp.srcport"], *r["udp.dstport"]) == ports]
        (record,) = [r for r in records if (r.client_port, r.server_port) == flow.client[1:]
                     + flow.server[1:]]
        assert record.client_ip == flow.client[0] and record.server_ip == flow.server[0]
        tshark_sni = {v for r in client_rows for v in r["tls.handshake.extensions_server_name"]}
        assert {record.sni} - {None} == tshark_sni
        first_ch = next(r for r in client_rows if "1" in r["tls.handshake.type"])
        assert record.alpn_offered == first_ch["tls.handshake.extensions_alpn_str"]
        assert record.ja3 == first_ch["tls.handshake.ja3"][0]
        assert record.quic_version == version_name(int(client_rows[0]["quic.version"][0], 16))
        assert record.quic_history == parser.facts().history
        assert record.transport == "quic" and record.anomalies == []


def test_record_ja4_matches_suricata_verify() -> None:
    for pcap, count, expected in _suricata_ja4():
        assert [r.ja4 for r in _records(pcap)] == [expected] * count


def test_record_ja3_string_as_suricata_computes_it() -> None:
    (record,) = _records(SURICATA / "quic-v2-ja3" / "input.pcap")
    assert record.ja3_string == (
        "771,4865-4866-4867,5-10-11-13-65281-23-16-18-43-51-57,29-23-24-25,0")
    assert (record.quic_version, record.alpn_offered) == ("v2", ["h3"])
    (ietf,) = _records(SURICATA / "quic-ietf-ja3" / "input.pcap")
    assert ietf.ja3s_string == "771,4866,43-51-41" and ietf.quic_version == "v1"

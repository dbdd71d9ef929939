"""QUIC connections through the engine: records from real aioquic peers run in memory.

The client and server are aioquic's sans-IO ``QuicConnection`` driven against each other
(:mod:`tests.quic_frames`); truth comes from how each scenario is set up and from what the
peers reported (handshake completed, the close each received, how many Initials the
client sent into silence). Checked here: the record of an established v1 and v2
connection with and without a key log, an ALPN refusal, a certificate refusal in an
Initial, Initials into silence and refused by ICMP, a connection that moves to another
4-tuple (NAT rebinding) and stays one record, the draining after a CONNECTION_CLOSE, which
first datagrams open a connection, the flow table and the connection-ID index bounded
under a flood, identical records with several workers, the shard key, the live capture
filter, the ``--transport`` filter and the summary.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import dpkt
import pytest

from analyzer.api import Run, collect
from analyzer.diagnosis import DiagnosisOptions, diagnose
from analyzer.engine.engine import Engine
from analyzer.limits import MAX_QUIC_ROUTING_IDS, QUIC_CLOSE_DRAIN
from analyzer.quic import QuicConnectionParser
from analyzer.record import HandshakeRecord
from analyzer.scale.shard import frame_key
from analyzer.tls.keylog import KeyLog
from tests.harness.pki import TestPKI
from tests.harness.quic import crypto_frame, long_packet
from tests.quic_frames import (
    CLIENT,
    HOST,
    SERVER,
    T0,
    Exchange,
    address,
    exchange,
    frames,
    icmp_unreachable,
    udp_frame,
    write_pcap,
)

aioquic = pytest.importorskip("aioquic")
V2 = 0x6B3343CF


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("quic-pki"))


@pytest.fixture(scope="module")
def good(pki: TestPKI) -> Any:
    return pki.server(HOST)


def run(exch: Exchange | list[Any], *, keylog: KeyLog | None = None,
        pki: TestPKI | None = None) -> list[HandshakeRecord]:
    """The diagnosed records of an exchange (or of frames) read by one engine."""
    frame_list = frames(exch.datagrams) if isinstance(exch, Exchange) else exch
    engine = Engine("quic.pcap", keylog=keylog)
    options = DiagnosisOptions(ca_bundle=str(pki.root) if pki else None)
    return [diagnose(r, options) for r in engine.run(frame_list)]


def only(records: list[HandshakeRecord]) -> HandshakeRecord:
    assert len(records) == 1, [(r.client_port, r.server_port) for r in records]
    return records[0]


def names(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


# -- established ----------------------------------------------------------------------------


@pytest.mark.parametrize(("versions", "name"), [((1,), "v1"), ((V2,), "v2")])
def test_an_established_connection(pki: TestPKI, good: Any, versions: tuple[int, ...],
                                   name: str) -> None:
    exch = exchange(good.chain, good.key, cafile=pki.root, versions=versions, keylog=True)
    assert "HandshakeCompleted" in names(exch.client_events)
    r = only(run(exch, pki=pki))
    assert (r.transport, r.quic_version, r.sni, r.alpn_offered) == ("quic", name, HOST, ["h3"])
    assert (r.version, r.established, r.stage, r.outcome) == (
        "TLSv1.3", True, "application_data", "established")
    # Zeek's ssl_history of the CRYPTO frames' messages; the rest is encrypted.
    assert r.history == "Cs" and r.ja4 is not None and r.ja4.startswith("q13d")
    assert r.client_port == CLIENT[1] and r.server_port == SERVER[1]
    sent = [(c, len(d)) for _, c, d in exch.datagrams]
    assert r.packets == len(sent)
    assert r.client_bytes == sum(n for c, n in sent if c)
    assert r.server_bytes == sum(n for c, n in sent if not c)
    assert r.client_max_datagram == max(n for c, n in sent if c)
    assert r.server_max_datagram == max(n for c, n in sent if not c)
    assert r.tcp_rtt is None and r.client_retransmits == 0 and r.close == "capture_end"
    assert r.wireshark_filter.startswith("ip.addr==") and "udp.port==443" in r.wireshark_filter
    # The record's QUIC facts are the parser's over every datagram (counted after settling).
    parser = QuicConnectionParser()
    for ts, from_client, data in exch.datagrams:
        parser.datagram(from_client, data, ts)
    facts = parser.facts()
    assert r.quic_history == facts.history
    assert r.quic_client_handshake_packets == facts.client.handshake > 0
    assert r.quic_client_one_rtt_packets == facts.client.one_rtt > 0
    assert r.decrypted == [] and r.cert_chain_sha256 == [] and r.alpn is None


def test_a_key_log_opens_the_handshake_and_changes_nothing_else(pki: TestPKI,
                                                               good: Any) -> None:
    exch = exchange(good.chain, good.key, cafile=pki.root, keylog=True)
    keys = KeyLog()
    assert keys.add_text(exch.keylog, source="aioquic") >= 4
    plain, empty = only(run(exch, pki=pki)), only(run(exch, keylog=KeyLog(), pki=pki))
    assert plain == empty  # an empty key log is no key log
    r = only(run(exch, keylog=keys, pki=pki))
    assert r.decrypted == ["client", "server"] and r.alpn == "h3"
    leaf = good.cert.read_text()
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    der = x509.load_pem_x509_certificate(leaf.encode()).public_bytes(Encoding.DER)
    assert r.cert_chain_sha256[0] == hashlib.sha256(der).hexdigest()
    assert (r.cert_status, r.sni_matches_cert, r.established) == ("ok", True, True)
    same = ("quic_history", "packets", "client_bytes", "server_bytes", "history", "ja4",
            "ja3", "quic_client_one_rtt_packets", "quic_client_handshake_packets", "uid")
    assert {f: getattr(r, f) for f in same} == {f: getattr(plain, f) for f in same}


# -- failures -----------------------------------------------------------------------------


def test_alpn_refused_in_the_servers_initial(pki: TestPKI, good: Any) -> None:
    exch = exchange(good.chain, good.key, cafile=pki.root, client_alpn=["hq-interop"])
    (closed,) = exch.reported("client", aioquic.quic.events.ConnectionTerminated)
    assert closed.error_code == 0x100 + 120  # CRYPTO_ERROR no_application_protocol
    r = only(run(exch, pki=pki))
    assert (r.outcome, r.failure, r.failure_side, r.inferred) == (
        "failed", "alpn_mismatch", "server", False)
    assert (r.close, r.close_by, r.quic_close_code, r.quic_close_reason) == (
        "connection_close", "server", closed.error_code, closed.reason_phrase)
    assert r.last_alert == "no_application_protocol" and not r.alerts[0].encrypted
    assert r.history == "C"  # a CONNECTION_CLOSE is no TLS alert message: no "l"
    assert "0x178" in (r.reason or "") and f'"{closed.reason_phrase}"' in (r.reason or "")
    assert "-quic" in (r.remedy or "") and "-alpn h3" in (r.remedy or "")


def test_certificate_refused_in_the_clients_initial(pki: TestPKI, good: Any) -> None:
    # The client checks the server's flight before it ever sent a Handshake packet, so
    # its close goes in an Initial too (RFC 9000 §10.2.3), visible without keys.
    exch = exchange(good.chain, good.key, cafile=pki.root, sni="other.example.org")
    (closed,) = exch.reported("server", aioquic.quic.events.ConnectionTerminated)
    assert "doesn't match" in closed.reason_phrase
    r = only(run(exch, pki=pki))
    assert (r.failure, r.failure_side, r.close_by) == ("sni_mismatch", "client", "client")
    assert r.last_alert == "bad_certificate" and r.inferred  # the certificate is encrypted
    assert "CRYPTO_ERROR 0x12a" in (r.reason or "") and "an Initial packet" in (r.reason or "")
    keyed = exchange(good.chain, good.key, cafile=pki.root, sni="other.example.org",
                     keylog=True)
    keys = KeyLog()
    keys.add_text(keyed.keylog, source="aioquic")
    r = only(run(keyed, keylog=keys, pki=pki))
    # With the key log the certificate is visible: the host name, not inferred.
    assert (r.failure, r.failure_side, r.inferred, r.cert_status, r.sni_matches_cert) == (
        "sni_mismatch", "client", False, "hostname_mismatch", False)


def test_initials_into_silence(pki: TestPKI, good: Any) -> None:
    exch = exchange(good.chain, good.key, cafile=pki.root, drop_server=True)
    sent = [d for d in exch.datagrams if d[1]]
    assert len(sent) == len(exch.datagrams) >= 3  # aioquic repeats its Initial
    r = only(run(exch, pki=pki))
    assert (r.outcome, r.failure, r.failure_side) == ("failed", "udp_no_answer", "network")
    assert r.client_retransmits == len(sent) - 1 and r.server_bytes == 0
    assert (r.reason or "").startswith(f"{len(sent)} Initials from the client to 10.99.0.1:443")
    remedy = r.remedy or ""
    assert "--http3-only" in remedy and "nc -u -z" in remedy and "iptables" in remedy
    assert "Debian 12" in remedy and "OpenSSL 3.2" in remedy


@pytest.mark.parametrize(("sender", "side"), [("10.99.0.1", "server"), ("10.99.0.254",
                                                                        "network")])
def test_initials_refused_by_icmp(pki: TestPKI, good: Any, sender: str, side: str) -> None:
    exch = exchange(good.chain, good.key, cafile=pki.root, drop_server=True)
    frame_list = []
    for frame in frames(exch.datagrams):
        frame_list += [frame, icmp_unreachable(frame.ts + 0.0001, frame, sender=sender)]
    r = only(run(frame_list, pki=pki))
    assert (r.failure, r.failure_side, r.icmp_error, r.icmp_from) == (
        "udp_refused", side, "port_unreachable", sender)
    assert "ICMP port unreachable" in (r.reason or "") and "nc -u -z" in (r.remedy or "")


# -- connection IDs, draining, opening --------------------------------------------------------


def test_a_connection_rebound_to_another_port_stays_one_record(pki: TestPKI,
                                                               good: Any) -> None:
    exch = exchange(good.chain, good.key, cafile=pki.root, pings=6)
    before = only(run(exch, pki=pki))
    # From the client's sixth datagram on, a NAT gives it another port (both directions).
    moved = ("10.99.0.2", 61_000)
    frame_list, seen = [], 0
    for ts, from_client, data in exch.datagrams:
        seen += from_client
        client = moved if seen >= 6 else CLIENT
        frame_list.append(udp_frame(ts, client, SERVER, data) if from_client
                          else udp_frame(ts, SERVER, client, data))
    assert seen >= 6
    after = only(run(frame_list, pki=pki))
    same = ("uid", "packets", "client_bytes", "server_bytes", "quic_history", "established",
            "outcome", "client_port")
    assert {f: getattr(after, f) for f in same} == {f: getattr(before, f) for f in same}


def test_a_reused_client_port_starts_a_new_connection(pki: TestPKI, good: Any) -> None:
    # Two connections one after the other from the same client port (a client whose OS
    # gave the same ephemeral port again): the second Initial has a DCID the first
    # connection never used, after the server answered the first.
    first = exchange(good.chain, good.key, cafile=pki.root)
    second = exchange(good.chain, good.key, cafile=pki.root, client_alpn=["hq-interop"])
    later = [(ts + 1.0, c, d) for ts, c, d in second.datagrams]
    records = run([*frames(first.datagrams), *frames(later)], pki=pki)
    assert [(r.outcome, r.failure) for r in records] == [("established", None),
                                                         ("failed", "alpn_mismatch")]
    assert records[0].packets == len(first.datagrams)
    assert records[1].packets == len(second.datagrams)


def test_the_id_index_forgets_a_reported_connection(pki: TestPKI, good: Any) -> None:
    exch = exchange(good.chain, good.key, cafile=pki.root)
    engine = Engine("quic.pcap")
    for frame in frames(exch.datagrams):
        engine.feed(frame)
    assert 0 < len(engine.udp) <= MAX_QUIC_ROUTING_IDS
    list(engine.drain())
    assert len(engine.udp) == 0


def test_a_closed_connection_drains_then_is_reported(pki: TestPKI, good: Any) -> None:
    exch = exchange(good.chain, good.key, cafile=pki.root, client_alpn=["hq-interop"])
    frame_list = frames(exch.datagrams)
    first = frame_list[0]
    late = udp_frame(first.ts + 0.5, CLIENT, SERVER, exch.datagrams[0][2])  # in flight
    other = udp_frame(first.ts + QUIC_CLOSE_DRAIN + 2, ("10.99.0.2", 53_000),
                      ("10.99.0.53", 53), b"\x12\x34" + bytes(10))  # DNS: time moves on
    engine = Engine("quic.pcap")
    out = [r for f in [*frame_list, late] for r in engine.feed(f)]
    assert out == []  # still draining
    reported = engine.feed(other)
    r = only(reported)
    assert r.close == "connection_close" and r.packets == len(frame_list) + 1
    assert list(engine.drain()) == []


def _initial(dcid: bytes, version: int = 1) -> bytes:
    return long_packet(crypto_frame(0, b"\x01\x00\x00\x04\x03\x03\x00\x00"), key_dcid=dcid,
                       version=version, pad_to=1200)


@pytest.mark.parametrize(
    ("payload", "dport", "opens", "reported"),
    [
        (_initial(b"\x11" * 8), 5000, True, False),  # known version, any port; no hello
        (b"\xc3\x1a\x2a\x3a\x4a" + bytes(1195), 443, True, True),  # unknown version to 443
        (b"\xc3\x1a\x2a\x3a\x4a" + bytes(1195), 5000, False, False),
        (b"\x80\x00\x00\x00\x01" + bytes(60), 5000, False, False),  # RTP-like, no fixed bit
        (b"\x40" + bytes(40), 443, False, False),  # a short header of nothing known
    ],
    ids=["initial_any_port", "unknown_version_443", "unknown_version_other", "rtp",
         "short_header"],
)
def test_which_first_datagrams_open_a_connection(payload: bytes, dport: int, opens: bool,
                                                 reported: bool) -> None:
    engine = Engine("quic.pcap")
    engine.feed(udp_frame(T0, CLIENT, ("10.99.0.1", dport), payload))
    assert (len(engine.udp_table) == 1) is opens
    records = list(engine.drain())
    assert bool(records) is reported
    if reported:
        assert records[0].quic_version == "0x1a2a3a4a" and records[0].transport == "quic"


def test_version_negotiation_first_is_oriented_by_the_port() -> None:
    vn = b"\x80\x00\x00\x00\x00\x04\x01\x02\x03\x04\x04\x05\x06\x07\x08\x00\x00\x00\x01"
    engine = Engine("quic.pcap")
    engine.feed(udp_frame(T0, SERVER, CLIENT, vn))
    conn = engine.udp_table.get((address(CLIENT[0]), CLIENT[1], address(SERVER[0]), 443))
    assert conn is not None and conn.key == (address(CLIENT[0]), CLIENT[1],
                                             address(SERVER[0]), 443)
    assert list(engine.drain()) == []  # the client sent nothing: no record


def test_a_flood_of_initials_stays_bounded() -> None:
    rng = random.Random(7)
    engine = Engine("quic.pcap")
    engine.udp_table.max_handshaking = engine.udp_table.max_flows = 200
    reported = 0
    for i in range(1000):
        dcid = rng.randbytes(8)
        frame = udp_frame(T0 + i * 1e-4, ("10.99.0.2", 1024 + i), SERVER, _initial(dcid))
        reported += len(engine.feed(frame))
    assert len(engine.udp_table) <= 200
    assert len(engine.udp) <= 200 * MAX_QUIC_ROUTING_IDS
    assert reported + len(list(engine.drain())) == 1000  # each on port 443: a record
    assert len(engine.udp) == 0


# -- workers, shards ------------------------------------------------------------------------


def _capture(pki: TestPKI, good: Any, path: Path) -> Path:
    """Several connections, one rebound mid-way, one refused by ICMP."""
    frame_list = []
    for i, kw in enumerate([{}, {"client_alpn": ["hq"]}, {"drop_server": True},
                            {"versions": (V2,)}, {"pings": 6}]):
        exch = exchange(good.chain, good.key, cafile=pki.root, **kw)
        client = ("10.99.0.2", 40_000 + i)
        part = []
        for j, (ts, from_client, data) in enumerate(exch.datagrams):
            c = ("10.99.0.2", 45_000 + i) if i == 4 and j > 6 else client
            f = udp_frame(ts + i * 0.01, c, SERVER, data) if from_client \
                else udp_frame(ts + i * 0.01, SERVER, c, data)
            part.append(f)
            if i == 2:
                part.append(icmp_unreachable(f.ts + 1e-4, f, sender="10.99.0.1"))
        frame_list += part
    frame_list.sort(key=lambda f: f.ts)
    return write_pcap(path, frame_list)


def test_workers_give_the_same_quic_records(pki: TestPKI, good: Any, tmp_path: Path) -> None:
    path = _capture(pki, good, tmp_path / "many.pcap")
    options = DiagnosisOptions(ca_bundle=str(pki.root))
    one = collect([str(path)], Run(), workers=1, options=options)
    two = collect([str(path)], Run(), workers=2, options=options)
    assert len(one) == 5 and {r.transport for r in one} == {"quic"}
    assert [r.to_dict() for r in one] == [r.to_dict() for r in two]
    assert {r.failure for r in one} == {None, "alpn_mismatch", "udp_refused"}


def test_the_shard_key_keeps_a_connection_and_its_icmp_errors_together() -> None:
    out = udp_frame(T0, CLIENT, SERVER, b"\xc0" + bytes(30))
    back = udp_frame(T0, SERVER, CLIENT, b"\xc0" + bytes(30))
    rebound = udp_frame(T0, ("192.0.2.77", 33_333), SERVER, b"\x40" + bytes(30))
    error = icmp_unreachable(T0, out, sender="10.99.0.254")
    keys = {frame_key(f) for f in (out, back, rebound, error)}
    assert len(keys) == 1
    tcp_like = {frame_key(udp_frame(T0, ("10.99.0.2", p), ("10.99.0.9", 53), b"x"))
                for p in range(40_000, 40_050)}
    assert len(tcp_like) == 1  # one server endpoint: one shard (the price of migration)


# -- edges: live filter, CLI ------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_the_live_default_filter_takes_quic_and_dtls_ports(tmp_path: Path) -> None:
    from analyzer.live import DEFAULT_BPF, default_bpf

    def udp(port: int) -> bytes:
        return udp_frame(T0, ("10.99.0.2", 40_000), ("10.99.0.1", port), b"\xc0hi").data

    kept = [udp(443), udp(4433), udp(5061), udp(5684)]
    quoted = icmp_unreachable(T0, udp_frame(T0, CLIENT, SERVER, b"\xc0" + bytes(40)),
                              sender="10.99.0.1").data
    kept.append(quoted)
    dropped = [udp(53), udp(8443)]
    src = tmp_path / "all.pcap"
    with src.open("wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=1)
        for i, data in enumerate(kept + dropped):
            writer.writepkt(data, T0 + i)

    def through(bpf: str) -> list[bytes]:
        out = tmp_path / "kept.pcap"
        done = subprocess.run(["tcpdump", "-r", str(src), "-w", str(out), bpf],
                              capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        with out.open("rb") as f:
            return [bytes(buf) for _, buf in dpkt.pcap.Reader(f)]

    assert through(DEFAULT_BPF) == kept
    assert through(default_bpf([8443])) == [*kept, udp(8443)]


def test_transport_filter_and_summary(pki: TestPKI, good: Any, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from analyzer.cli import app

    path = _capture(pki, good, tmp_path / "many.pcap")
    runner = CliRunner()
    ca = ["--ca-bundle", str(pki.root)]
    done = runner.invoke(app, ["analyze", str(path), "-f", "jsonl", "--transport", "quic", *ca])
    assert done.exit_code == 0, done.output
    assert len(done.output.splitlines()) == 5
    done = runner.invoke(app, ["analyze", str(path), "-f", "jsonl", "--transport", "tcp", *ca])
    assert done.exit_code == 0 and done.output.strip() == ""
    done = runner.invoke(app, ["summary", str(path), "-f", "json", *ca])
    data = json.loads(done.output)
    assert data["transport_mix"] == [{"transport": "quic", "connections": 5, "established": 3,
                                      "failed": 2}]
    assert data["quic_versions"] == {"v1": 4, "v2": 1} and data["udp_quic_datagrams"] == 0
    done = runner.invoke(app, ["summary", str(path), *ca])
    assert "quic (v1 4, v2 1)" in done.output



def test_dask_gives_the_same_quic_records(pki: TestPKI, good: Any, tmp_path: Path) -> None:
    pytest.importorskip("dask.dataframe")
    import analyzer
    import analyzer.dask

    path = _capture(pki, good, tmp_path / "many.pcap")
    expected = analyzer.read_pcap(path, ca_bundle=str(pki.root))
    ddf = analyzer.dask.read_pcaps(path, shard_bytes=0, ca_bundle=str(pki.root))
    got = ddf.compute()
    columns = ["uid", "transport", "quic_version", "outcome", "failure", "packets",
               "client_bytes", "server_bytes", "quic_history", "reason"]

    def rows(df: Any) -> list[list[Any]]:
        frame = df[columns].sort_values("uid").astype(object)
        return frame.where(frame.notna(), None).values.tolist()  # type: ignore[no-any-return]

    assert len(got) == 5 and rows(got) == rows(expected)


def test_closes_waiting_to_drain_stay_bounded() -> None:
    # Servers refusing every connection in their Initial (CONNECTION_REFUSED), faster than
    # the drain time: connections the table lets go of leave the drain queue too.
    from tests.harness.quic import close_frame

    rng = random.Random(3)
    engine = Engine("quic.pcap")
    engine.udp_table.max_handshaking = engine.udp_table.max_flows = 50
    reported = 0
    for i in range(300):
        dcid = rng.randbytes(8)
        client = ("10.99.0.2", 2000 + i)
        ts = T0 + i * 1e-3
        refused = long_packet(close_frame(0x02, b"busy"), key_dcid=dcid, dcid=b"\x05" * 8,
                              scid=rng.randbytes(8), from_client=False, pad_to=200)
        reported += len(engine.feed(udp_frame(ts, client, SERVER, _initial(dcid))))
        reported += len(engine.feed(udp_frame(ts + 1e-4, SERVER, client, refused)))
        assert len(engine._draining) <= len(engine.udp_table) <= 50
    records = list(engine.drain())
    assert reported + len(records) == 300
    assert {r.close for r in records} == {"connection_close"}
    assert {r.quic_close_code for r in records} == {0x02}

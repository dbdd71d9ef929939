"""DTLS diagnosis on a capture of every kind of association (tests/dtls_capture.py): the
category, side and the evidence each reason cites, the remedies' DTLS commands, and the
record fields the rules read (cookie, datagrams, incomplete messages).

The captures of real stacks are in tests/test_dtls_engine_real.py (root); this file runs
everywhere and pins the wording of each DTLS verdict.
"""

from __future__ import annotations

import pytest

from analyzer.api import Run, collect
from analyzer.record import HandshakeRecord
from tests.dtls_capture import KINDS, PORT, client_address, write_pcap


@pytest.fixture(scope="module")
def by_kind(tmp_path_factory: pytest.TempPathFactory) -> dict[str, HandshakeRecord]:
    path = write_pcap(tmp_path_factory.mktemp("dtls") / "kinds.pcap", 2 * len(KINDS))
    records = {r.client_ip: r for r in collect(path, Run(), workers=1)}
    return {kind: records[client_address(n)] for n, kind in enumerate(KINDS)}


def verdict(r: HandshakeRecord) -> tuple[str, str | None, str | None]:
    return r.outcome, r.failure, r.failure_side


def test_established(by_kind: dict[str, HandshakeRecord]) -> None:
    r = by_kind["established"]
    assert verdict(r) == ("established", None, None)
    assert (r.transport, r.version, r.history) == ("dtls", "DTLSv1.2", "CvCsknGIi")
    assert (r.dtls_cookie_length, r.dtls_cookie_echoed) == (16, True)
    assert (r.dtls_client_datagrams, r.dtls_server_datagrams) == (4, 4)
    assert r.dtls_client_incomplete == r.dtls_server_incomplete == 0
    assert r.tcp_rtt is None and r.syn_count == 0 and r.ja4 and r.ja4.startswith("dd2d")


def test_alert(by_kind: dict[str, HandshakeRecord]) -> None:
    r = by_kind["alert"]
    assert verdict(r) == ("failed", "cipher_mismatch", "server")
    assert r.dtls_cookie_length is None and r.dtls_cookie_echoed is False
    # the remedy's commands speak DTLS: no TLS-only flag survives
    assert "-dtls" in str(r.remedy) and "-no_tls1_3" not in str(r.remedy)


def test_unanswered(by_kind: dict[str, HandshakeRecord]) -> None:
    r = by_kind["unanswered"]
    assert verdict(r) == ("failed", "udp_no_answer", "network")
    assert r.history == "CCC"  # Zeek counts each whole hello again
    assert "3 datagrams carrying the client's DTLS ClientHello" in str(r.reason)
    assert f"UDP {PORT}" in str(r.reason) and "-dtls1_2" in str(r.remedy)
    assert f"iptables -S INPUT | grep -w {PORT}" in str(r.remedy)


def test_cookie_never_taken_up(by_kind: dict[str, HandshakeRecord]) -> None:
    r = by_kind["cookie_unanswered"]
    assert verdict(r) == ("failed", "udp_no_answer", "network")
    assert r.history == "CvCvCv" and r.client_retransmits == 2
    assert "HelloVerifyRequest carrying a 16-byte cookie (3 in all)" in str(r.reason)
    assert "return path" in str(r.reason) and "-msg" in str(r.remedy)


def test_spoofed_source(by_kind: dict[str, HandshakeRecord]) -> None:
    r = by_kind["spoofed"]
    assert verdict(r) == ("failed", "handshake_aborted", "client")
    assert "spoofed" in str(r.reason) and "flood" in str(r.remedy)


def test_cookie_refused(by_kind: dict[str, HandshakeRecord]) -> None:
    r = by_kind["cookie_refused"]
    assert verdict(r) == ("failed", "no_server_response", "server")
    assert r.dtls_cookie_echoed and "refused the cookie" in str(r.reason)


def test_flight_lost(by_kind: dict[str, HandshakeRecord]) -> None:
    r = by_kind["flight_lost"]
    assert verdict(r) == ("failed", "no_server_response", "network")
    assert r.server_retransmits == 2 and r.client_retransmits == 2
    assert r.server_max_datagram is not None and r.server_max_datagram > 1232
    assert f"datagrams are up to {r.server_max_datagram} bytes" in str(r.reason)
    assert f"ping -M do -s {r.server_max_datagram}" in str(r.remedy)
    assert "s_server -mtu" in str(r.remedy)


def test_icmp_refused(by_kind: dict[str, HandshakeRecord]) -> None:
    r = by_kind["refused"]
    assert verdict(r) == ("failed", "udp_refused", "server")
    assert "ICMP port unreachable from the server's host (1 datagram sent)" in str(r.reason)


def test_a_new_association_on_the_same_four_tuple_gets_its_own_record() -> None:
    # The client's port is reused: after a whole association (epoch 1 reached), a new
    # ClientHello of epoch 0 starts another one, as a new SYN does over TCP.
    from analyzer.engine.engine import Engine
    from analyzer.sources.base import Frame
    from tests.dtls_capture import PORT, SERVER, conversation, frame

    client, sport = "10.20.0.1", 40000
    talk = conversation("established") + [
        (10.0 + t, c, p) for t, c, p in conversation("established")
    ]
    engine = Engine("reuse.pcap")
    records = []
    for t, from_client, payload in talk:
        src, sp, dst, dp = (client, sport, SERVER, PORT) if from_client else (
            SERVER, PORT, client, sport)
        buf = frame(src, sp, dst, dp, payload)
        records += engine.feed(Frame(1_795_600_000.0 + t, 1, buf, len(buf)))
    records += engine.finish()
    assert len(records) == 2
    assert [r.established for r in records] == [True, True]
    assert records[1].ts - records[0].ts == pytest.approx(10.0)

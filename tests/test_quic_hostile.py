"""The QUIC connection parser against hostile and broken input: garbage and truncated
datagrams, Initials that do not authenticate, a CONNECTION_CLOSE forged into such a
packet, CRYPTO data at absurd or conflicting offsets, a ClientHello spread over several
Initials in any order, forged Retry and Version Negotiation packets, and a flood of
Initials with random DCIDs (one parser each: per-connection memory must stay small).

Packets are protected by aioquic (``tests.harness.quic.long_packet``), an implementation
independent of ours, with the keys each scenario needs.
"""

from __future__ import annotations

import itertools
import os
import random
import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.anomalies import Anomaly
from analyzer.quic import ConnectionClose, QuicConnectionParser, Retry
from analyzer.quic.events import QuicEvent
from analyzer.tls.events import Alert, HandshakeMsg, ParseAnomaly
from analyzer.tls.messages import ClientHello
from tests.harness.quic import close_frame, crypto_frame, long_packet
from tests.test_quic_vectors import V1_CLIENT_FRAMES, V1_CLIENT_INITIAL, V1_SERVER_INITIAL

DCID = bytes.fromhex("0011223344556677")
SERVER_CID = bytes.fromhex("a1a2a3a4a5a6a7a8")
CLIENT_HELLO = V1_CLIENT_FRAMES[4:]
"""RFC 9001 A.2's ClientHello message (after its CRYPTO frame header 06 00 40f1)."""


def _anomalies(events: list[QuicEvent]) -> list[Anomaly]:
    return [e.anomaly for e in events if isinstance(e, ParseAnomaly)]


def _hellos(events: list[QuicEvent]) -> list[ClientHello]:
    return [e.parsed for e in events
            if isinstance(e, HandshakeMsg) and isinstance(e.parsed, ClientHello)]


def _client_initial(frames: bytes, pn: int = 0, **kwargs: object) -> bytes:
    return long_packet(frames, key_dcid=DCID, packet_number=pn, pad_to=1200, **kwargs)  # type: ignore[arg-type]


def _server_initial(frames: bytes, key_dcid: bytes = DCID, pn: int = 0) -> bytes:
    return long_packet(frames, key_dcid=key_dcid, dcid=b"\x01\x02\x03\x04", scid=SERVER_CID,
                       from_client=False, packet_number=pn)


def test_an_initial_that_does_not_authenticate() -> None:
    damaged = bytearray(V1_CLIENT_INITIAL)
    damaged[600] ^= 0x01
    parser = QuicConnectionParser()
    events = parser.datagram(True, bytes(damaged), 1.0)
    assert _anomalies(events) == [Anomaly.QUIC_UNDECRYPTABLE]
    assert _hellos(events) == []
    facts = parser.facts()
    assert (facts.client.initial, facts.client.undecryptable) == (1, 1)
    assert facts.history == "I"  # Zeek counts the Initial before trying to decrypt it
    # The genuine packet afterwards still works.
    assert _hellos(parser.datagram(True, V1_CLIENT_INITIAL, 1.1))[0].sni == "example.com"


def test_a_forged_connection_close_does_not_count() -> None:
    parser = QuicConnectionParser()
    parser.datagram(True, _client_initial(crypto_frame(0, CLIENT_HELLO)), 1.0)
    # CRYPTO_ERROR + handshake_failure, protected with keys of a DCID the client never used.
    forged = _server_initial(close_frame(0x128, b"forged"), key_dcid=bytes(8))
    events = parser.datagram(False, forged, 1.1)
    assert _anomalies(events) == [Anomaly.QUIC_UNDECRYPTABLE]
    assert not [e for e in events if isinstance(e, ConnectionClose | Alert)]
    facts = parser.facts()
    assert facts.closes == () and "c" not in facts.history
    # The same close with the right keys is reported, with its TLS alert.
    events = parser.datagram(False, _server_initial(close_frame(0x128, b"real", 6)), 1.2)
    closes = [e for e in events if isinstance(e, ConnectionClose)]
    assert [(c.error_code, c.frame_type, c.reason, c.tls_alert) for c in closes] == [
        (0x128, 6, "real", 40)]
    assert [e for e in events if isinstance(e, Alert)] == [
        Alert(level=2, description=40, encrypted=False, length=0)]
    assert parser.facts().history == "ISiic"  # Zeek letters the forged Initial too


def test_crypto_at_absurd_and_conflicting_offsets() -> None:
    parser = QuicConnectionParser()
    hostile = (crypto_frame(1 << 40, b"far away") + crypto_frame(300, b"A" * 20)
               + crypto_frame(310, b"B" * 20))
    events = parser.datagram(True, _client_initial(hostile), 1.0)
    assert _anomalies(events) == [Anomaly.QUIC_CRYPTO_LIMIT, Anomaly.QUIC_CRYPTO_MISMATCH]
    # More out-of-order data than the buffer holds, in many packets.
    for pn in range(1, 40):
        events += parser.datagram(True, _client_initial(crypto_frame(1000 + 1100 * pn,
                                                                     bytes(1000)), pn), 1.0)
    assert Anomaly.QUIC_CRYPTO_LIMIT in _anomalies(events)
    # The real ClientHello still comes through.
    events = parser.datagram(True, _client_initial(crypto_frame(0, CLIENT_HELLO), pn=50), 1.1)
    assert [h.sni for h in _hellos(events)] == ["example.com"]


def test_a_client_hello_over_several_initials_in_any_order() -> None:
    expected = _hellos(QuicConnectionParser().datagram(True, V1_CLIENT_INITIAL, 0.0))
    rnd = random.Random(7)
    for _ in range(5):
        cuts = sorted(rnd.sample(range(1, len(CLIENT_HELLO)), 4))
        bounds = [0, *cuts, len(CLIENT_HELLO)]
        pieces = [(a, CLIENT_HELLO[a:b]) for a, b in itertools.pairwise(bounds)]
        pieces += rnd.sample(pieces, 2)  # retransmissions
        rnd.shuffle(pieces)
        parser = QuicConnectionParser()
        events: list[QuicEvent] = []
        for pn, (offset, data) in enumerate(pieces):
            events += parser.datagram(True, _client_initial(crypto_frame(offset, data), pn), 1.0)
        assert _hellos(events) == expected
        assert _anomalies(events) == []
        history = parser.facts().history
        assert (history.count("I"), history.count("S"), len(history)) == (len(pieces), 1,
                                                                         len(pieces) + 1)


def test_forged_retry_and_late_version_negotiation_change_nothing() -> None:
    parser = QuicConnectionParser()
    parser.datagram(True, V1_CLIENT_INITIAL, 1.0)
    bad_retry = bytes.fromhex("f0 00000001 00 04 01020304 746f6b") + bytes(16)
    events = parser.datagram(False, bad_retry, 1.1)
    assert [e.tag_valid for e in events if isinstance(e, Retry)] == [False]
    assert _anomalies(events) == [Anomaly.QUIC_BAD_RETRY]
    assert parser.facts().retry is None
    events = parser.datagram(False, V1_SERVER_INITIAL, 1.2)  # still decrypts: no reset
    assert not _anomalies(events)
    vn = bytes.fromhex("80 00000000 00 08 8394c8f03e515708 6b3343cf")
    parser.datagram(False, vn, 1.3)
    assert parser.facts().offered_versions == ()  # after a real answer, VN is ignored


def test_server_initial_without_the_client_initial() -> None:
    parser = QuicConnectionParser()
    events = parser.datagram(False, V1_SERVER_INITIAL, 1.0)
    assert [(e.anomaly, e.detail) for e in events if isinstance(e, ParseAnomaly)] == [
        (Anomaly.QUIC_UNDECRYPTABLE, "Initial packet: no client Initial seen")]


def test_repeated_initials_with_no_answer() -> None:
    parser = QuicConnectionParser()
    for i in range(4):
        parser.datagram(True, V1_CLIENT_INITIAL, float(i))
    facts = parser.facts()
    assert (facts.client.initial, facts.client_initial_repeats, facts.server.initial) == (4, 3, 0)
    parser.datagram(False, V1_SERVER_INITIAL, 5.0)
    parser.datagram(True, V1_CLIENT_INITIAL, 6.0)
    assert parser.facts().client_initial_repeats == 3


def test_secrets_never_show() -> None:
    secret = bytes(range(32))
    parser = QuicConnectionParser(await_secrets=True)
    events = parser.datagram(True, V1_CLIENT_INITIAL, 1.0)
    events += parser.install_handshake_secret(True, secret)
    events += parser.datagram(False, V1_SERVER_INITIAL, 1.1)
    text = repr(parser) + repr(parser.facts()) + repr(events) + str(parser.facts())
    for form in (secret.hex(), repr(secret), str(list(secret))):
        assert form not in text
    assert "PacketKeys(suite=0x1301)" in repr(parser._hs_keys[0])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=1300)), max_size=6),
       st.sampled_from([b"", V1_CLIENT_INITIAL, V1_CLIENT_INITIAL[:600]]))
def test_garbage_datagrams_never_raise(datagrams: list[tuple[bool, bytes]], start: bytes) -> None:
    parser = QuicConnectionParser(await_secrets=True)
    if start:
        parser.datagram(True, start, 0.0)
    for i, (from_client, data) in enumerate(datagrams):
        for event in parser.datagram(from_client, data, float(i)):
            if isinstance(event, ParseAnomaly):
                assert event.anomaly.value.startswith(("quic_", "malformed", "trailing",
                                                       "handshake_too_long"))
    parser.install_handshake_secret(False, bytes(48))
    parser.facts()


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 1199), st.binary(min_size=1, max_size=64))
def test_valid_prefix_with_random_suffix(cut: int, suffix: bytes) -> None:
    parser = QuicConnectionParser()
    data = V1_CLIENT_INITIAL[:cut] + suffix
    events = parser.datagram(True, data, 0.0)
    intact = data[: len(V1_CLIENT_INITIAL)] == V1_CLIENT_INITIAL  # the suffix restored it
    assert all(not isinstance(e, HandshakeMsg) for e in events) or intact


def test_a_flood_of_initials_keeps_each_connection_small() -> None:
    packets = [long_packet(crypto_frame(0, CLIENT_HELLO), key_dcid=os.urandom(8), pad_to=1200)
               for _ in range(50)]
    parsers = []
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(400):
        parser = QuicConnectionParser()
        assert _hellos(parser.datagram(True, packets[i % 50], float(i)))
        parsers.append(parser)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    per_parser = sum(s.size_diff for s in after.compare_to(before, "filename")) / len(parsers)
    assert per_parser < 6_000, per_parser

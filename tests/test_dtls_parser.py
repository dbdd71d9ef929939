"""One DTLS association: datagrams in, TLS events out, in every order the network may
deliver them (whole, every prefix, fragment by fragment, reversed, duplicated, resent),
plus hostile input and the memory an association holds."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.anomalies import Anomaly
from analyzer.dtls import DTLSAssociation, Retransmission
from analyzer.dtls.events import DTLSEvent
from analyzer.tls.enums import HandshakeType
from analyzer.tls.events import (
    Alert,
    ApplicationData,
    ChangeCipherSpec,
    EncryptedHandshake,
    HandshakeMsg,
    Heartbeat,
    ParseAnomaly,
)
from analyzer.tls.messages import CertificateChain, ClientHello, HelloVerifyRequest, ServerHello
from tests.dtls_fixtures import (
    CLIENT_HELLO_BODY,
    HELLO_VERIFY_BODY,
    SERVER_HELLO_BODY,
    SKE_BODY,
    UNIFIED_RECORD,
    client_hello_body,
    fragment,
    fragments,
    record,
)

FAKE_CERT = bytes(range(256)) * 3
CERT_BODY = (len(FAKE_CERT) + 3).to_bytes(3) + len(FAKE_CERT).to_bytes(3) + FAKE_CERT
COOKIE = b"\xc0\xff\xee\x00"
HS, CCS, ALERT, APP = 22, 20, 21, 23

Datagram = tuple[bool, bytes]


class Seq:
    """Record sequence numbers per side and epoch, as a sender numbers its records."""

    def __init__(self) -> None:
        self.next: dict[tuple[bool, int], int] = {}

    def rec(self, client: bool, ctype: int, payload: bytes, epoch: int = 0) -> bytes:
        n = self.next.get((client, epoch), 0)
        self.next[(client, epoch)] = n + 1
        return record(ctype, payload, epoch=epoch, seq=n)


SERVER_MESSAGES = [(2, 1, SERVER_HELLO_BODY), (11, 2, CERT_BODY), (12, 3, SKE_BODY), (14, 4, b"")]


def server_flight(seq: Seq, size: int, per_datagram: int = 2) -> list[Datagram]:
    """ServerHello..ServerHelloDone cut into ``size``-byte fragments, one per record."""
    recs = [
        seq.rec(False, HS, part)
        for msg_type, mseq, body in SERVER_MESSAGES
        for part in fragments(msg_type, mseq, body, size)
    ]
    return [
        (False, b"".join(recs[i : i + per_datagram])) for i in range(0, len(recs), per_datagram)
    ]


def handshake(size: int = 200, seq: Seq | None = None, per_datagram: int = 2) -> list[Datagram]:
    """A DTLS 1.2 handshake with a cookie exchange, then data and a closing alert."""
    s = seq or Seq()
    return [
        (True, s.rec(True, HS, fragment(1, 0, CLIENT_HELLO_BODY))),
        (False, s.rec(False, HS, fragment(3, 0, HELLO_VERIFY_BODY))),
        (True, s.rec(True, HS, fragment(1, 1, client_hello_body(COOKIE)))),
        *server_flight(s, size, per_datagram),
        (
            True,
            s.rec(True, HS, fragment(16, 2, b"\x20" + bytes(32)))
            + s.rec(True, CCS, b"\x01")
            + s.rec(True, HS, bytes(40), epoch=1),
        ),
        (False, s.rec(False, CCS, b"\x01") + s.rec(False, HS, bytes(40), epoch=1)),
        (True, s.rec(True, APP, bytes(30), epoch=1)),
        (True, s.rec(True, ALERT, bytes(26), epoch=1)),
    ]


def summary(events: Iterable[DTLSEvent]) -> list[str]:
    """Events as comparable strings (a message's fragment count left out)."""
    out = []
    for e in events:
        if isinstance(e, HandshakeMsg):
            out.append(f"hs{e.msg_type}:{e.length}:{type(e.parsed).__name__}")
        elif isinstance(e, Alert):
            out.append(f"alert:{e.level}:{e.description}:{e.encrypted}")
        elif isinstance(e, ParseAnomaly):
            out.append(f"anomaly:{e.anomaly}")
        elif isinstance(e, Retransmission):
            continue
        else:
            out.append(type(e).__name__ + f":{getattr(e, 'length', '')}")
    return out


def feed(
    datagrams: Iterable[Datagram], assoc: DTLSAssociation | None = None
) -> tuple[list[DTLSEvent], DTLSAssociation]:
    assoc = assoc or DTLSAssociation()
    events: list[DTLSEvent] = []
    for i, (client, data) in enumerate(datagrams):
        events += assoc.datagram(client, data, float(i))
    return events, assoc


EXPECTED = [
    "hs1:95:ClientHello",
    "hs3:7:HelloVerifyRequest",
    "hs1:99:ClientHello",
    "hs2:45:ServerHello",
    f"hs11:{len(CERT_BODY)}:CertificateChain",
    "hs12:8:ServerKeyExchange",
    "hs14:0:NoneType",
    "hs16:33:NoneType",
    "ChangeCipherSpec:",
    "EncryptedHandshake:40",
    "ChangeCipherSpec:",
    "EncryptedHandshake:40",
    "ApplicationData:30",
    "alert:None:None:True",
]


def test_whole_handshake() -> None:
    events, assoc = feed(handshake())
    assert summary(events) == EXPECTED
    hellos = [e.parsed for e in events if isinstance(e, HandshakeMsg)]
    assert isinstance(hellos[1], HelloVerifyRequest) and hellos[1].cookie == COOKIE
    assert isinstance(hellos[2], ClientHello) and hellos[2].cookie == COOKIE
    assert isinstance(hellos[3], ServerHello) and hellos[3].cipher_suite == 0xC02F
    assert isinstance(hellos[4], CertificateChain) and hellos[4].certificates == (FAKE_CERT,)
    facts = assoc.facts()
    assert (facts.hello_verify_cookie, facts.cookie_echoed) == (len(COOKIE), True)
    assert facts.client.flights_resent == facts.server.flights_resent == 0
    assert facts.server.largest_datagram == max(len(d) for c, d in handshake() if not c)
    assert facts.client.datagrams == 5 and facts.server.datagrams == len(handshake()) - 5


def test_every_prefix_gives_a_prefix_of_the_events() -> None:
    datagrams = handshake()
    full = summary(feed(datagrams)[0])
    for cut in range(len(datagrams) + 1):
        prefix = summary(feed(datagrams[:cut])[0])
        assert prefix == full[: len(prefix)]
    # and each datagram cut short gives only what it holds whole, plus an anomaly
    for client, data in datagrams:
        for cut in range(len(data)):
            events = DTLSAssociation().datagram(client, data[:cut], 0.0)
            assert all(
                isinstance(e, HandshakeMsg | ParseAnomaly | ChangeCipherSpec) for e in events
            )


def test_fragment_by_fragment() -> None:
    for size in (1, 13, 64, 500, 5000):
        for per_datagram in (1, 3, 1000):
            events, _ = feed(handshake(size, per_datagram=per_datagram))
            assert summary(events) == EXPECTED
            cert = next(e for e in events if isinstance(e, HandshakeMsg) and e.msg_type == 11)
            assert cert.records == -(-len(CERT_BODY) // size)


def test_reversed_fragment_order() -> None:
    """Each message's fragments in reverse: the same events. The whole flight reversed:
    the same messages, in the order they complete."""
    s = Seq()
    datagrams = handshake(seq=s)
    flight = [d for d in datagrams if not d[0]][1:-1]  # the ServerHello..ServerHelloDone flight
    start = datagrams.index(flight[0])
    per_message = [
        (False, s.rec(False, HS, part))
        for msg_type, mseq, body in SERVER_MESSAGES
        for part in reversed(fragments(msg_type, mseq, body, 100))
    ]
    swapped = datagrams[:start] + per_message + datagrams[start + len(flight) :]
    assert summary(feed(swapped)[0]) == EXPECTED
    backwards = datagrams[:start] + flight[::-1] + datagrams[start + len(flight) :]
    assert sorted(summary(feed(backwards)[0])) == sorted(EXPECTED)


def test_duplicated_datagrams_are_counted_not_emitted() -> None:
    datagrams = handshake()
    events, assoc = feed([d for d in datagrams for _ in range(2)])
    assert summary(events) == EXPECTED
    assert not [e for e in events if isinstance(e, Retransmission)]
    facts = assoc.facts()
    assert (
        facts.client.duplicates + facts.server.duplicates
        == facts.client.records // 2 + facts.server.records // 2
    )


def test_resent_flights_are_folded() -> None:
    s = Seq()
    first, hvr, second, *server, client_final, server_final, data, alert = handshake(seq=s)
    resent_hello = [(True, s.rec(True, HS, fragment(1, 0, CLIENT_HELLO_BODY))) for _ in range(3)]
    resent_server = server_flight(s, 200, per_datagram=3)
    resent_final = (
        True,
        s.rec(True, HS, fragment(16, 2, b"\x20" + bytes(32)))
        + s.rec(True, CCS, b"\x01")
        + s.rec(True, HS, bytes(40), epoch=1),
    )
    resent_server_final = (False, s.rec(False, CCS, b"\x01") + s.rec(False, HS, bytes(40), epoch=1))
    datagrams = [
        first,
        *resent_hello,
        hvr,
        second,
        *server,
        *resent_server,
        client_final,
        resent_final,
        resent_final,  # a duplicate of the resent copy: counted as a duplicate
        server_final,
        resent_server_final,
        data,
        alert,
    ]
    events, assoc = feed(datagrams)
    assert summary(events) == EXPECTED
    facts = assoc.facts()
    assert facts.client.flights_resent == 4  # three ClientHellos, one final flight
    assert facts.server.flights_resent == 2
    assert facts.client.items_resent == 3 + 3
    assert facts.client.duplicates == 3
    retransmissions = [e for e in events if isinstance(e, Retransmission)]
    assert len(retransmissions) == 3 + len(resent_server) + 1 + 1
    assert facts.client.bytes_resent + facts.server.bytes_resent == sum(
        r.length for r in retransmissions
    )
    assert retransmissions[0] == Retransmission(
        items=1, length=12 + len(CLIENT_HELLO_BODY), repeated=(HandshakeType.client_hello,)
    )


def test_epoch_jump_is_skipped() -> None:
    s = Seq()
    datagrams = handshake(seq=s)
    jump = (True, record(HS, bytes(40), epoch=5))
    events, _ = feed([*datagrams[:-2], jump, *datagrams[-2:]])
    assert "anomaly:dtls_epoch_jump" in summary(events)
    assert [x for x in summary(events) if not x.startswith("anomaly")] == EXPECTED


def test_plaintext_alert_and_heartbeat() -> None:
    assoc = DTLSAssociation()
    events = assoc.datagram(False, record(ALERT, b"\x02\x28") + record(24, b"\x01\x00", seq=1), 0.0)
    assert events == [
        Alert(level=2, description=40, encrypted=False, length=2),
        Heartbeat(length=2),
    ]
    (bad,) = assoc.datagram(False, record(ALERT, b"\x02", seq=2), 0.0)
    assert isinstance(bad, ParseAnomaly) and bad.anomaly is Anomaly.BAD_ALERT


def test_dtls13_records_and_other_protocols() -> None:
    assoc = DTLSAssociation()
    stun = bytes.fromhex("0001 0000 2112a442") + bytes(12)
    rtp = bytes.fromhex("80 60 0001") + bytes(20)
    assoc.datagram(True, stun, 0.0)
    assoc.datagram(True, record(HS, fragment(1, 0, CLIENT_HELLO_BODY)), 0.1)
    events = assoc.datagram(
        False, record(HS, fragment(2, 0, SERVER_HELLO_BODY)) + UNIFIED_RECORD, 0.2
    )
    assert summary(events) == ["hs2:45:ServerHello", "ApplicationData:5"]
    assoc.datagram(True, rtp, 0.3)
    facts = assoc.facts()
    assert facts.server.dtls13_records == 1
    assert facts.client.non_dtls == 2 and facts.channels == ("stun", "rtp_rtcp")


def test_legacy_openconnect_records_are_counted() -> None:
    assoc = DTLSAssociation()
    events = assoc.datagram(
        True, record(HS, fragment(1, 0, CLIENT_HELLO_BODY), version=0x0100), 0.0
    )
    assert summary(events) == ["hs1:95:ClientHello"]
    # DTLS1_BAD_VER's ChangeCipherSpec carries a 2-byte message_seq after the 0x01
    assert assoc.datagram(False, record(CCS, b"\x01\x00\x02", version=0x0100), 0.0) == [
        ChangeCipherSpec()
    ]
    assert assoc.facts().client.legacy_records == 1 and assoc.facts().server.legacy_records == 1


def test_connection_id_records() -> None:
    cid_ext = bytes.fromhex("0036 0003 02 abcd")  # connection_id: a 2-byte CID
    sh = SERVER_HELLO_BODY[:-7] + (5 + len(cid_ext)).to_bytes(2) + SERVER_HELLO_BODY[-5:] + cid_ext
    assoc = DTLSAssociation()
    assoc.datagram(True, record(HS, fragment(1, 0, CLIENT_HELLO_BODY)), 0.0)
    (msg,) = assoc.datagram(False, record(HS, fragment(2, 0, sh)), 0.0)
    assert isinstance(msg, HandshakeMsg) and isinstance(msg.parsed, ServerHello)
    cid_record = bytes.fromhex("19 fefd 0001 000000000000 abcd 0003 010203") + record(
        APP, b"\x00", epoch=1, seq=1
    )
    events = assoc.datagram(True, cid_record, 0.0)
    assert events == [ApplicationData(length=3), ApplicationData(length=1)]
    assert assoc.facts().client.cid_records == 1


def test_empty_parser_is_small() -> None:
    assoc = DTLSAssociation()
    assert sys.getsizeof(assoc) <= 64
    assert not hasattr(assoc, "__dict__")


def test_memory_under_a_flood_of_absurd_fragments() -> None:
    assoc = DTLSAssociation()
    for seq in range(200):
        head = bytes([11]) + (200_000).to_bytes(3) + seq.to_bytes(2) + (seq * 1000).to_bytes(3)
        assoc.datagram(False, record(HS, head + (1000).to_bytes(3) + bytes(1000), seq=seq), 0.0)
    server = assoc._server
    assert server is not None and server.assembler is not None
    assert server.assembler.buffered <= 8 * 25 * 1000


_EVENT_TYPES = (
    HandshakeMsg,
    ChangeCipherSpec,
    Alert,
    ApplicationData,
    EncryptedHandshake,
    Heartbeat,
    ParseAnomaly,
    Retransmission,
)


@settings(max_examples=300)
@given(
    st.integers(0, len(handshake())),
    st.lists(st.tuples(st.booleans(), st.binary(max_size=120)), max_size=6),
)
def test_valid_prefix_then_garbage_never_raises(cut: int, garbage: list[Datagram]) -> None:
    events, assoc = feed([*handshake()[:cut], *garbage])
    assert all(isinstance(e, _EVENT_TYPES) for e in events)
    assoc.facts()


@settings(max_examples=200)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 40), st.binary(max_size=60)), max_size=8))
def test_mutated_records_never_raise(edits: list[tuple[bool, int, bytes]]) -> None:
    datagrams = handshake(64)
    mutated = []
    for client, at, junk in edits:
        _, data = datagrams[at % len(datagrams)]
        pos = at * 7 % max(len(data), 1)
        mutated.append((client, data[:pos] + junk + data[pos + len(junk) :]))
    events, _ = feed(mutated)
    assert all(isinstance(e, _EVENT_TYPES) for e in events)

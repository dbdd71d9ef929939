"""DTLS handshake layer: the DTLS ClientHello and HelloVerifyRequest (RFC 6347 §4.2.1)
and fragment reassembly (RFC 6347 §4.2.3): order, overlap, duplicates, hostile headers."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.anomalies import Anomaly
from analyzer.dtls.handshake import FRAGMENT_HEADER, Fate, FragmentAssembler
from analyzer.fingerprints import client_fingerprints
from analyzer.limits import MAX_DTLS_PARTIAL_BYTES, MAX_DTLS_PARTIAL_MESSAGES
from analyzer.tls.events import HandshakeMsg, ParseAnomaly
from analyzer.tls.hello import parse_client_hello, parse_hello_verify_request
from analyzer.tls.messages import ClientHello, HelloVerifyRequest
from tests.dtls_fixtures import (
    CLIENT_HELLO_BODY,
    HELLO_VERIFY_BODY,
    client_hello_body,
    fragment,
    fragments,
)

CERT_BODY = bytes(range(256)) * 4  # an opaque 1 KB body (type 99: not parsed)


def test_dtls_client_hello() -> None:
    ch = parse_client_hello(CLIENT_HELLO_BODY, dtls=True)
    assert isinstance(ch, ClientHello)
    assert (ch.legacy_version, ch.cookie, ch.sni) == (0xFEFD, b"", "dtls.example")
    assert ch.cipher_suites == (0xC02B, 0xC02F, 0x0A0A)
    assert ch.anomalies == ()
    again = parse_client_hello(client_hello_body(b"\xc0\xff\xee\x00"), dtls=True)
    assert isinstance(again, ClientHello) and again.cookie == b"\xc0\xff\xee\x00"
    # the same bytes read as TLS misplace every field after the session id
    tls = parse_client_hello(CLIENT_HELLO_BODY)
    assert isinstance(tls, ParseAnomaly) or (tls.cookie is None and tls.sni is None)


def test_fingerprints_ignore_the_cookie() -> None:
    """JA3 as Wireshark computes it over DTLS (dtls.handshake.ja3): the record says
    65277 and the cookie is not part of it; JA4 starts ``d`` + ``d2`` (JA4.md)."""
    first = parse_client_hello(CLIENT_HELLO_BODY, dtls=True)
    second = parse_client_hello(client_hello_body(b"\x01\x02\x03\x04"), dtls=True)
    assert isinstance(first, ClientHello) and isinstance(second, ClientHello)
    assert client_fingerprints(first, "d") == client_fingerprints(second, "d")
    text, _, ja4 = client_fingerprints(first, "d")
    assert text == "65277,49195-49199,0-10-11-13,29-23,0"
    assert ja4.startswith("dd2d0204")


def test_hello_verify_request() -> None:
    hvr = parse_hello_verify_request(HELLO_VERIFY_BODY)
    assert hvr == HelloVerifyRequest(server_version=0xFEFF, cookie=b"\xc0\xff\xee\x00")
    extra = parse_hello_verify_request(HELLO_VERIFY_BODY + b"\x00")
    assert isinstance(extra, ParseAnomaly) and extra.anomaly is Anomaly.TRAILING_BYTES
    for cut in range(len(HELLO_VERIFY_BODY)):
        short = parse_hello_verify_request(HELLO_VERIFY_BODY[:cut])
        assert isinstance(short, ParseAnomaly) and short.anomaly is Anomaly.MALFORMED_HANDSHAKE


def _messages(asm: FragmentAssembler, record: bytes) -> list[HandshakeMsg | ParseAnomaly]:
    placed, problem = asm.add_record(record)
    events = [e for p in placed for e in p.events]
    return events + ([problem] if problem else [])


def _one(events: list[HandshakeMsg | ParseAnomaly]) -> HandshakeMsg:
    (msg,) = [e for e in events if isinstance(e, HandshakeMsg)]
    return msg


def test_whole_client_hello() -> None:
    asm = FragmentAssembler()
    msg = _one(_messages(asm, fragment(1, 0, CLIENT_HELLO_BODY)))
    assert isinstance(msg.parsed, ClientHello) and msg.parsed.sni == "dtls.example"
    assert (msg.length, msg.records) == (len(CLIENT_HELLO_BODY), 1)


@pytest.mark.parametrize("size", [1, 7, 100, 1000])
@pytest.mark.parametrize("order", ["forward", "reversed", "duplicated", "overlapping"])
def test_fragments_in_any_order(size: int, order: str) -> None:
    parts = fragments(99, 3, CERT_BODY, size)
    if order == "reversed":
        parts.reverse()
    elif order == "duplicated":
        parts = [p for p in parts for _ in range(2)]
    elif order == "overlapping":  # every fragment also sent again shifted by half
        parts = parts + [
            fragment(99, 3, CERT_BODY, off, size) for off in range(size // 2, len(CERT_BODY), size)
        ]
    asm = FragmentAssembler()
    events = [e for part in parts for e in _messages(asm, part)]
    msg = _one(events)
    assert (msg.msg_type, msg.length) == (99, len(CERT_BODY))
    assert not [e for e in events if isinstance(e, ParseAnomaly)]
    assert asm.buffered == 0
    # once complete, any copy is a retransmission
    placed, _ = asm.add_record(parts[0])
    assert [p.fate for p in placed] == [Fate.RESENT]


def test_several_fragments_in_one_record() -> None:
    record = b"".join(fragments(99, 0, CERT_BODY, 300)) + fragment(14, 1, b"")
    events = _messages(FragmentAssembler(), record)
    assert [(e.msg_type, e.length) for e in events if isinstance(e, HandshakeMsg)] == [
        (99, len(CERT_BODY)),
        (14, 0),
    ]


def test_overlapping_fragments_that_differ() -> None:
    asm = FragmentAssembler()
    asm.add_record(fragment(99, 0, CERT_BODY, 0, 100))
    forged = CERT_BODY[:50] + b"\xff" * 100 + CERT_BODY[150:]
    placed, _ = asm.add_record(fragment(99, 0, forged, 50, 100))
    assert placed[0].events[0].anomaly is Anomaly.DTLS_FRAGMENT_MISMATCH  # type: ignore[union-attr]
    rest = _messages(asm, fragment(99, 0, CERT_BODY, 100))
    body_kept = _one(rest)
    assert body_kept.length == len(CERT_BODY)  # the first copy of bytes 50..100 was kept


@pytest.mark.parametrize(
    ("record", "anomaly"),
    [
        # type 99, length 16, message_seq 0, offset 10, fragment_length 8: past the end
        (bytes.fromhex("63 000010 0000 00000a 000008") + bytes(8), Anomaly.DTLS_BAD_FRAGMENT),
        (b"\x63" + (1 << 24 - 1).to_bytes(3) + bytes(8), Anomaly.HANDSHAKE_TOO_LONG),
        (fragment(99, 0, CERT_BODY)[:-1], Anomaly.DTLS_BAD_FRAGMENT),  # cut by the record
        (fragment(99, 0, b"") + b"\x01\x02", Anomaly.DTLS_BAD_FRAGMENT),  # header cut
    ],
)
def test_hostile_fragment_headers(record: bytes, anomaly: Anomaly) -> None:
    events = _messages(FragmentAssembler(), record)
    assert anomaly in [e.anomaly for e in events if isinstance(e, ParseAnomaly)]


def test_message_seq_reused_with_another_type() -> None:
    asm = FragmentAssembler()
    asm.add_record(fragment(11, 2, CERT_BODY, 0, 10))
    events = _messages(asm, fragment(12, 2, CERT_BODY[:20], 0, 10))
    assert [e.anomaly for e in events if isinstance(e, ParseAnomaly)] == [Anomaly.DTLS_BAD_FRAGMENT]


def test_a_new_message_under_an_old_message_seq_is_not_a_retransmission() -> None:
    asm = FragmentAssembler()
    _one(_messages(asm, fragment(1, 0, CLIENT_HELLO_BODY)))
    other = CLIENT_HELLO_BODY[:2] + b"\xee" * 32 + CLIENT_HELLO_BODY[34:]  # another random
    assert _one(_messages(asm, fragment(1, 0, other))).parsed is not None


def test_partial_limits() -> None:
    asm = FragmentAssembler()
    for seq in range(MAX_DTLS_PARTIAL_MESSAGES):
        asm.add_record(fragment(99, seq, CERT_BODY, 0, 10))
    events = _messages(asm, fragment(99, 100, CERT_BODY, 0, 10))
    assert [e.anomaly for e in events if isinstance(e, ParseAnomaly)] == [
        Anomaly.DTLS_REASSEMBLY_LIMIT
    ]
    big = bytes(MAX_DTLS_PARTIAL_BYTES * 3 // 4)  # two of them never fit together
    asm = FragmentAssembler()
    anomalies = []
    for seq in (0, 1):
        for off in range(0, len(big) - 16000, 16000):
            events = _messages(asm, fragment(99, seq, big, off, 16000))
            anomalies += [e.anomaly for e in events if isinstance(e, ParseAnomaly)]
    assert set(anomalies) == {Anomaly.DTLS_REASSEMBLY_LIMIT}
    assert asm.buffered <= MAX_DTLS_PARTIAL_BYTES


def test_every_permutation_of_four_fragments() -> None:
    parts = fragments(99, 0, CERT_BODY, 300)
    assert len(parts) == 4
    for order in itertools.permutations(parts):
        asm = FragmentAssembler()
        events = [e for p in order for e in _messages(asm, p)]
        assert _one(events).length == len(CERT_BODY)


@given(st.binary(max_size=300))
def test_assembler_is_total(suffix: bytes) -> None:
    asm = FragmentAssembler()
    asm.add_record(fragment(1, 0, CLIENT_HELLO_BODY, 0, 40) + suffix)
    placed, problem = asm.add_record(suffix)
    assert all(p.size >= FRAGMENT_HEADER for p in placed)
    assert problem is None or problem.anomaly is Anomaly.DTLS_BAD_FRAGMENT

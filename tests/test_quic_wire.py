"""QUIC wire pieces on commented-hex fixtures: variable-length integers, datagram
splitting, the demultiplexer's look-ups, frames, CRYPTO reassembly and Zeek's history
letters; Hypothesis checks that each parser is total and that CRYPTO data gives the same
messages however it is cut, ordered or repeated."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.anomalies import Anomaly
from analyzer.limits import MAX_QUIC_CRYPTO_SEGMENTS
from analyzer.quic import PacketType, peek_long_header, short_header_dcid
from analyzer.quic.crypto_stream import CryptoStream
from analyzer.quic.frames import (
    Ack,
    ConnectionClose,
    Crypto,
    HandshakeDone,
    NewToken,
    OtherFrame,
    Padding,
    Ping,
    parse_frames,
)
from analyzer.quic.history import ZeekQuicHistory
from analyzer.quic.packet import (
    LongPacket,
    RetryPacket,
    ShortPacket,
    UnknownVersionPacket,
    VersionNegotiationPacket,
    split_datagram,
)
from analyzer.quic.varint import varint
from analyzer.quic.versions import is_reserved_version, version_name
from analyzer.tls.cursor import Cursor, Truncated
from tests.harness.quic import crypto_frame

# -- variable-length integers (RFC 9000 Appendix A.1's examples) ----------------------------


@pytest.mark.parametrize(
    ("wire", "value"),
    [("c2197c5eff14e88c", 151288809941952652), ("9d7f3e7d", 494878333), ("7bbd", 15293),
     ("25", 37), ("4025", 37)],
)
def test_varint_rfc9000_a1(wire: str, value: int) -> None:
    cur = Cursor(bytes.fromhex(wire))
    assert varint(cur) == value
    assert cur.at_end


def test_varint_truncated() -> None:
    with pytest.raises(Truncated):
        varint(Cursor(bytes.fromhex("c2197c")))


def test_version_names() -> None:
    assert [version_name(v) for v in (1, 0x6B3343CF, 0xFF00001D, 0xFACEB002, 0x1A2A3A4A)] == [
        "v1", "v2", "draft-29", "0xfaceb002", "0x1a2a3a4a"]
    assert is_reserved_version(0x1A2A3A4A) and not is_reserved_version(1)


# -- datagrams ------------------------------------------------------------------------------

# Version Negotiation: 80 (long form, fixed bit clear: allowed for VN), version 00000000,
# DCID 04 01020304, SCID 04 05060708, supported versions v1 and v2.
VN = bytes.fromhex("80 00000000 04 01020304 04 05060708 00000001 6b3343cf")

# A Handshake packet: e0 (long, fixed, type 10, pn length 1) v1, DCID 01 aa, SCID 01 bb,
# Length 0x14 = 20 bytes (1 packet number byte and 19 opaque ones).
HANDSHAKE = bytes.fromhex("e0 00000001 01aa 01bb 14") + bytes(range(20))

# An Initial: c0 v1, DCID 01 aa, SCID 01 bb, token 03 746f6b, Length 0x15 = 21.
INITIAL = bytes.fromhex("c0 00000001 01aa 01bb 03746f6b 15") + bytes(range(21))

# A short header (41: fixed bit, pn length 2) with an 8-byte DCID, then opaque bytes.
SHORT = bytes.fromhex("41 0102030405060708") + bytes(30)


def test_split_coalesced_initial_handshake_short() -> None:
    split = split_datagram(INITIAL + HANDSHAKE + SHORT, short_dcid_length=8)
    assert split.anomaly is None and split.rest == b""
    (f1, initial), (f2, handshake), (f3, short) = split.packets
    assert (f1, f2, f3) == (0xC0, 0xE0, 0x41)
    assert isinstance(initial, LongPacket) and initial.type is PacketType.initial
    assert (initial.dcid, initial.scid, initial.token, initial.pn_offset) == (
        b"\xaa", b"\xbb", b"tok", 14)
    assert initial.data == INITIAL
    assert isinstance(handshake, LongPacket) and handshake.type is PacketType.handshake
    assert handshake.data == HANDSHAKE and handshake.pn_offset == 10
    assert isinstance(short, ShortPacket) and short.dcid == bytes(range(1, 9))
    assert short.length == len(SHORT)


def test_split_version_negotiation_retry_unknown() -> None:
    vn = split_datagram(VN, 0).packets[0][1]
    assert vn == VersionNegotiationPacket(dcid=b"\x01\x02\x03\x04", scid=b"\x05\x06\x07\x08",
                                          versions=(1, 0x6B3343CF))
    # Retry (f0: v1 type 11), DCID 00, SCID 01 cc, token "t", 16-byte tag.
    retry = bytes.fromhex("f0 00000001 00 01cc 74") + bytes(16)
    packet = split_datagram(retry, 0).packets[0][1]
    assert isinstance(packet, RetryPacket) and (packet.token, packet.scid) == (b"t", b"\xcc")
    unknown = bytes.fromhex("c0 1a2a3a4a 01aa 00") + bytes(40)
    assert split_datagram(unknown, 0).packets[0][1] == UnknownVersionPacket(
        version=0x1A2A3A4A, dcid=b"\xaa", scid=b"", length=len(unknown))


def test_split_padding_and_damage() -> None:
    padded = split_datagram(INITIAL + bytes(50), 0)
    assert len(padded.packets) == 1 and padded.rest == bytes(50) and padded.anomaly is None
    junk = split_datagram(INITIAL + b"\x00\x17junk", 0)
    assert junk.anomaly is not None and junk.anomaly.anomaly is Anomaly.QUIC_BAD_PACKET
    # Length 0x15 but only 5 bytes follow.
    cut = split_datagram(INITIAL[:20], 0)
    assert cut.packets == () and cut.anomaly is not None
    # A 21-byte DCID in a v1 header.
    long_cid = split_datagram(bytes.fromhex("c0 00000001 15") + bytes(60), 0)
    assert long_cid.packets == () and long_cid.anomaly is not None
    vn_odd = split_datagram(VN + b"\x01", 0)
    assert vn_odd.packets == () and vn_odd.anomaly is not None


def test_demultiplexer_lookups() -> None:
    ids = peek_long_header(INITIAL)
    assert ids is not None
    assert (ids.version, ids.known, ids.type, ids.dcid, ids.scid) == (
        1, True, PacketType.initial, b"\xaa", b"\xbb")
    vn = peek_long_header(VN)
    assert vn is not None and vn.type is PacketType.version_negotiation and vn.known
    unknown = peek_long_header(bytes.fromhex("c0 1a2a3a4a 01aa 00"))
    assert unknown is not None and (unknown.known, unknown.type) == (False, None)
    assert peek_long_header(SHORT) is None
    assert peek_long_header(bytes.fromhex("c0 00000001 08 0102")) is None  # DCID cut
    assert short_header_dcid(SHORT, 8) == bytes(range(1, 9))
    assert short_header_dcid(SHORT, 0) == b""
    assert short_header_dcid(INITIAL, 8) is None
    assert short_header_dcid(b"\x41\x01", 8) is None


# -- frames --------------------------------------------------------------------------------

FRAMES = bytes.fromhex(
    "01"                      # PING
    "02 05 00 01 02 01 00"    # ACK largest 5, delay 0, 1 range, first range 2, gap 1 len 0
    "03 07 00 00 00 01 02 03"  # ACK_ECN largest 7, no ranges, ECN counts 1 2 3
    "06 00 03 010203"         # CRYPTO offset 0, 3 bytes
    "07 02 abcd"              # NEW_TOKEN, 2 bytes
    "1e"                      # HANDSHAKE_DONE
    "0f 04 01 02 aabb"        # STREAM (OFF, LEN, FIN) id 4, offset 1, 2 bytes
    "18 01 00 04 01020304" + "00" * 16 +  # NEW_CONNECTION_ID, 4-byte CID, reset token
    "1c 4128 06 02 6e6f"      # CONNECTION_CLOSE 0x128 (CRYPTO_ERROR + 40), frame 06, "no"
    "1d 4101 00"              # APPLICATION_CLOSE 0x101 (H3_GENERAL_PROTOCOL_ERROR), no reason
    "00 00 00"                # three PADDING bytes
)


def test_parse_frames_fixture() -> None:
    parsed = parse_frames(FRAMES, handshake_level=False)
    assert parsed.anomalies == ()
    assert parsed.frames == (
        Ping(), Ack(largest=5, ecn=False), Ack(largest=7, ecn=True),
        Crypto(offset=0, data=b"\x01\x02\x03"), NewToken(length=2), HandshakeDone(),
        OtherFrame(type=0x0F), OtherFrame(type=0x18),
        ConnectionClose(error_code=0x128, frame_type=6, reason=b"no", application=False),
        ConnectionClose(error_code=0x101, frame_type=None, reason=b"", application=True),
        Padding(count=3),
    )


def test_frames_not_allowed_in_handshake_packets() -> None:
    parsed = parse_frames(FRAMES, handshake_level=True)
    assert len(parsed.frames) == 11
    bad = [a.detail for a in parsed.anomalies]
    assert all(a.anomaly is Anomaly.QUIC_BAD_FRAME for a in parsed.anomalies)
    assert [d.split()[2] for d in bad] == ["0x7", "0x1e", "0xf", "0x18", "0x1d"]


@pytest.mark.parametrize(
    "payload",
    ["", "40", "21", "06 00 05 0102", "02 05 00 ff", "1c 01", "18 01 00 00", "0f 04 01 05 aa"],
)
def test_bad_frames_are_anomalies(payload: str) -> None:
    parsed = parse_frames(bytes.fromhex(payload), handshake_level=False)
    assert [a.anomaly for a in parsed.anomalies] == [Anomaly.QUIC_BAD_FRAME]


def test_long_reason_is_cut() -> None:
    close = parse_frames(bytes.fromhex("1c 00 00 4400") + b"x" * 1024, True).frames[0]
    assert isinstance(close, ConnectionClose) and close.reason == b"x" * 256


# -- CRYPTO reassembly ----------------------------------------------------------------------


def test_crypto_stream_orders_and_drops_repeats() -> None:
    stream = CryptoStream()
    assert stream.add(5, b"fghij") == (b"", [])
    assert stream.pending == 5
    assert stream.add(0, b"abc") == (b"abc", [])
    assert stream.add(0, b"abc") == (b"", [])  # a retransmission
    assert stream.add(2, b"cde") == (b"defghij", [])  # overlaps both sides
    assert (stream.delivered, stream.pending) == (10, 0)


def test_crypto_stream_mismatch_and_limits() -> None:
    stream = CryptoStream()
    stream.add(10, b"abcd")
    data, anomalies = stream.add(12, b"XX")
    assert data == b"" and [a.anomaly for a in anomalies] == [Anomaly.QUIC_CRYPTO_MISMATCH]
    data, anomalies = stream.add(1 << 40, b"far")
    assert [a.anomaly for a in anomalies] == [Anomaly.QUIC_CRYPTO_LIMIT]
    big = CryptoStream()
    for i in range(32):
        assert big.add(100 + 10 * i, b"x") == (b"", [])
    assert [a.anomaly for a in big.add(1000, b"y")[1]] == [Anomaly.QUIC_CRYPTO_LIMIT]
    huge = CryptoStream()
    assert [a.anomaly for a in huge.add(1, bytes(17000))[1]] == [Anomaly.QUIC_CRYPTO_LIMIT]
    assert huge.pending == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=400), st.randoms(use_true_random=False),
       st.integers(1, 40))
def test_crypto_stream_any_cut_and_order_gives_the_same_bytes(
    data: bytes, rnd: random.Random, piece: int
) -> None:
    piece = max(piece, -(-len(data) // MAX_QUIC_CRYPTO_SEGMENTS))  # every piece may wait
    pieces = [(i, data[i : i + piece]) for i in range(0, len(data), piece)]
    pieces += rnd.sample(pieces, k=len(pieces) // 2)  # some repeated
    rnd.shuffle(pieces)
    stream = CryptoStream()
    out = b""
    for offset, chunk in pieces:
        got, anomalies = stream.add(offset, chunk)
        assert anomalies == []
        out += got
    assert out == data and stream.pending == 0


# -- Zeek's history letters -----------------------------------------------------------------


def test_history_short_packets_are_logarithmic() -> None:
    history = ZeekQuicHistory()
    history.long_packet(True, "I")
    for _ in range(9):
        history.short_packet(True)
    for _ in range(3):
        history.short_packet(False)
    assert history.text == "IOOOOoo"  # client at 1, 2, 4, 8; server at 1, 2


def test_history_rows_end_on_retry_close_and_unknown_versions() -> None:
    history = ZeekQuicHistory()
    history.long_packet(True, "I")
    history.first_message(True, hello=True)
    assert not history.would_decrypt(True)  # the client's first message is complete
    history.retry(False)
    assert history.would_decrypt(True) and not history.would_decrypt(False)
    history.short_packet(True)  # no open row: dropped
    history.long_packet(True, "I")
    history.connection_close(False)
    history.first_message(False, hello=True)  # no open row: dropped
    history.unhandled_version(False)
    assert history.rows == ("ISr", "Ic", "u")
    assert history.text == "ISrIcu"


def test_history_discarded_needs_a_decrypted_initial_and_stops_at_100() -> None:
    history = ZeekQuicHistory()
    history.long_packet(True, "I")
    history.discarded(True)
    assert history.text == "I"
    history.decrypted = 1
    for _ in range(150):
        history.discarded(False)
    assert history.text == "I" + "x" * 99  # the row holds 100 letters at most


# -- totality -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([INITIAL, HANDSHAKE, VN, SHORT, INITIAL + HANDSHAKE]),
       st.integers(0, 80), st.binary(max_size=120), st.integers(0, 20))
def test_split_datagram_is_total(valid: bytes, cut: int, suffix: bytes, cid: int) -> None:
    split = split_datagram(valid[: len(valid) - cut] + suffix, cid)
    assert split.anomaly is None or split.anomaly.anomaly is Anomaly.QUIC_BAD_PACKET
    peek_long_header(valid[:cut] + suffix)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_parse_frames_is_total(payload: bytes, handshake_level: bool) -> None:
    parsed = parse_frames(FRAMES[: len(payload) % len(FRAMES)] + payload, handshake_level)
    assert all(a.anomaly is Anomaly.QUIC_BAD_FRAME for a in parsed.anomalies)


def test_every_prefix_of_the_frames_fixture() -> None:
    for end in range(len(FRAMES) + 1):
        parsed = parse_frames(FRAMES[:end], handshake_level=False)
        assert len(parsed.anomalies) <= 1


def test_crypto_frame_builder_round_trip() -> None:
    frame = parse_frames(crypto_frame(70000, b"abc"), True).frames
    assert frame == (Crypto(offset=70000, data=b"abc"),)


def test_the_quic_layer_imports_no_edge_library() -> None:
    import subprocess
    import sys

    code = ("import sys, analyzer.quic; print(' '.join(sorted(m for m in sys.modules "
            "if m.split('.')[0] in {'pandas', 'matplotlib', 'rich', 'typer', 'pyshark', "
            "'aioquic', 'dpkt'})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == ""

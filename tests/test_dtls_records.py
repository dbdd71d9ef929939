"""DTLS record layer and demultiplexing: RFC 6347 §4.1 records, RFC 9147 §4 unified
headers, RFC 9146 connection-ID records, OpenConnect's 0x0100, RFC 7983 first bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.anomalies import Anomaly
from analyzer.dtls import Channel, Opening, channel, opening
from analyzer.dtls.records import DTLSRecord, UnifiedRecord, read_records
from analyzer.tls.events import ParseAnomaly
from tests.dtls_fixtures import (
    CLIENT_HELLO_DATAGRAM,
    UNIFIED_NO_LENGTH,
    UNIFIED_RECORD,
    h,
    record,
)

# RFC 6347 §4.1: an application_data record of epoch 1, sequence 0x0102030405ff.
APP_DATA_EPOCH1 = h("""
17                                              # application_data
fe fd                                           # DTLS 1.2
00 01                                           # epoch 1
01 02 03 04 05 ff                               # sequence number
00 03                                           # length 3
aa bb cc
""")


def test_plaintext_record_fields() -> None:
    records, problem = read_records(APP_DATA_EPOCH1)
    assert problem is None
    assert records == [
        DTLSRecord(
            content_type=23,
            version=0xFEFD,
            epoch=1,
            sequence=0x0102030405FF,
            fragment=b"\xaa\xbb\xcc",
            wire_length=16,
        )
    ]


def test_several_records_in_one_datagram() -> None:
    data = CLIENT_HELLO_DATAGRAM + APP_DATA_EPOCH1 + UNIFIED_RECORD
    records, problem = read_records(data)
    assert problem is None
    assert [type(r) for r in records] == [DTLSRecord, DTLSRecord, UnifiedRecord]
    assert sum(r.wire_length for r in records) == len(data)


def test_unified_headers() -> None:
    (rec,), problem = read_records(UNIFIED_RECORD)
    assert problem is None and rec == UnifiedRecord(epoch_bits=0, length=5, wire_length=10)
    (rec,), problem = read_records(UNIFIED_NO_LENGTH)
    assert problem is None and rec == UnifiedRecord(epoch_bits=2, length=6, wire_length=8)


def test_unified_header_with_connection_id() -> None:
    # 0x3d = 001 C=1 S=1 L=1 EE=01: a 2-byte CID, 16-bit sequence, length
    data = h("3d  c1 c2  00 09  00 02  ee ee")
    (rec,), _ = read_records(data, cid_length=2)
    assert rec == UnifiedRecord(epoch_bits=1, length=2, wire_length=len(data))
    (rec,), _ = read_records(data)  # CID length unknown: one opaque record to the end
    assert isinstance(rec, UnifiedRecord) and rec.wire_length == len(data)


def test_connection_id_record() -> None:
    # RFC 9146 §4: tls12_cid, DTLS 1.2, epoch 1, seq 7, CID (3 bytes), length 2
    data = h("19 fefd 0001 000000000007  0a0b0c  0002 f0f1")
    (rec,), problem = read_records(data, cid_length=3)
    assert problem is None and isinstance(rec, DTLSRecord)
    assert (rec.content_type, rec.epoch, rec.sequence, rec.fragment) == (25, 1, 7, h("f0f1"))
    (rec,), _ = read_records(data)
    assert isinstance(rec, DTLSRecord) and rec.fragment == h("0a0b0c 0002 f0f1")


def test_openconnect_legacy_version() -> None:
    (rec,), problem = read_records(record(22, b"\x01", version=0x0100))
    assert problem is None and isinstance(rec, DTLSRecord) and rec.version == 0x0100


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (h("16 0303 0000 000000000000 0001 00"), "record version 0x0303"),
        (h("16 fefd 0000 000000000000 0009 00"), "record length 9"),
        (h("16 fefd 0000 0000"), "a 13-byte header wanted"),
        (h("05 0102"), "starts no DTLS record"),
        (h("2c 1234 00"), "cut by the datagram end"),
        (h("2c 1234 0010 00"), "unified record length 16"),
    ],
)
def test_bad_records_stop_the_datagram(data: bytes, why: str) -> None:
    records, problem = read_records(APP_DATA_EPOCH1 + data)
    assert len(records) == 1
    assert problem is not None and problem.anomaly is Anomaly.DTLS_BAD_RECORD
    assert why in problem.detail


@given(st.binary(max_size=200), st.one_of(st.none(), st.integers(0, 255)))
def test_read_records_is_total(data: bytes, cid: int | None) -> None:
    records, problem = read_records(APP_DATA_EPOCH1 + data, cid)
    assert sum(r.wire_length for r in records) <= len(APP_DATA_EPOCH1) + len(data)
    assert problem is None or isinstance(problem, ParseAnomaly)


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        (0x00, Channel.stun),
        (0x03, Channel.stun),
        (0x04, Channel.unknown),
        (0x10, Channel.zrtp),
        (0x13, Channel.zrtp),
        (0x14, Channel.dtls),
        (0x3F, Channel.dtls),
        (0x40, Channel.turn_channel),
        (0x4F, Channel.turn_channel),
        (0x50, Channel.quic),
        (0x80, Channel.rtp_rtcp),
        (0xBF, Channel.rtp_rtcp),
        (0xC0, Channel.quic),
    ],
)
def test_rfc7983_channels(first: int, expected: Channel) -> None:
    assert channel(bytes([first, 0, 0, 0])) is expected


def test_opening() -> None:
    assert opening(CLIENT_HELLO_DATAGRAM) is Opening.CLIENT_HELLO
    assert opening(APP_DATA_EPOCH1) is Opening.RECORD
    assert opening(UNIFIED_RECORD) is Opening.RECORD
    assert opening(CLIENT_HELLO_DATAGRAM[:-1]) is None  # the record does not fit
    tls = h("16 0301 0005 0100000100")  # a TLS record: not DTLS
    assert opening(tls + bytes(20)) is None
    stun = h("0001 0000 2112a442") + bytes(12)  # STUN binding request
    assert opening(stun) is None
    assert opening(UNIFIED_NO_LENGTH) is None  # without a length it proves nothing
    assert opening(b"") is None


@given(st.binary(max_size=64))
def test_opening_is_total(data: bytes) -> None:
    assert opening(data) in (None, Opening.CLIENT_HELLO, Opening.RECORD)

"""Record layer (analyzer.tls.records): framing, need-more, SSLv2 start, when to stop."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.anomalies import Anomaly
from analyzer.limits import MAX_TLS_RECORD
from analyzer.tls.events import NotTLS, ParseAnomaly
from analyzer.tls.records import (
    RECORD_HEADER,
    Record,
    RecordItem,
    RecordReader,
    SSLv2Record,
)
from tests.tls_fixtures import (
    RFC8448_CLIENT_HELLO,
    SSLV2_CLIENT_HELLO,
    TLS12_CLIENT_HELLO,
    h,
    record,
)

# A client's first flight and a few more records, as on the wire.
CLIENT_STREAM = (
    record(22, TLS12_CLIENT_HELLO, version=0x0301)
    + h("14 03 03 00 01 01")  # change_cipher_spec
    + h("16 03 03 00 28")
    + bytes(range(40))  # encrypted Finished
    + h("17 03 03 00 00")  # empty application_data (allowed)
    + h("15 03 03 00 02 01 00")  # alert: warning close_notify
)


def drain(reader: RecordReader) -> list[RecordItem]:
    items: list[RecordItem] = []
    while (item := reader.next()) is not None:
        items.append(item)
    return items


def read_all(
    data: bytes, *, is_client: bool = True, cuts: tuple[int, ...] = ()
) -> list[RecordItem]:
    reader = RecordReader(is_client=is_client)
    items: list[RecordItem] = []
    start = 0
    for end in (*cuts, len(data)):
        reader.feed(data[start:end])
        items += drain(reader)
        start = end
    return items


def test_records_in_wire_order() -> None:
    items = read_all(CLIENT_STREAM)
    assert items == [
        Record(content_type=22, version=0x0301, fragment=TLS12_CLIENT_HELLO),
        Record(content_type=20, version=0x0303, fragment=b"\x01"),
        Record(content_type=22, version=0x0303, fragment=bytes(range(40))),
        Record(content_type=23, version=0x0303, fragment=b""),
        Record(content_type=21, version=0x0303, fragment=h("01 00")),
    ]


def test_need_more_until_the_record_is_whole() -> None:
    reader = RecordReader(is_client=True)
    data = record(22, RFC8448_CLIENT_HELLO)
    for i in range(len(data) - 1):
        reader.feed(data[i : i + 1])
        assert reader.next() is None
        assert reader.buffered == i + 1
    reader.feed(data[-1:])
    assert reader.next() == Record(content_type=22, version=0x0303, fragment=RFC8448_CLIENT_HELLO)
    assert reader.buffered == 0 and reader.next() is None


def test_every_split_gives_the_same_records() -> None:
    whole = read_all(CLIENT_STREAM)
    for cut in range(len(CLIENT_STREAM) + 1):
        assert read_all(CLIENT_STREAM, cuts=(cut,)) == whole
    assert read_all(CLIENT_STREAM, cuts=tuple(range(len(CLIENT_STREAM)))) == whole


@pytest.mark.parametrize(
    ("data", "is_client"),
    [
        (b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", True),
        (b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\n\r\n", False),
        (b"SSH-2.0-OpenSSH_9.2\r\n", False),
        (h("16 02 00 00 10"), True),  # handshake type but major version 2
        (h("80 22 01 03 01"), False),  # an SSLv2 hello is accepted from the client only
        (h("80 22 04 03 01"), True),  # SSLv2 header but not a CLIENT-HELLO
        (h("80 05 01 03 01 00 00"), True),  # SSLv2 header too short for a CLIENT-HELLO
        (h("19 03 03 00 01 00"), True),  # tls12_cid is DTLS only
    ],
)
def test_first_bytes_that_are_not_tls(data: bytes, is_client: bool) -> None:
    reader = RecordReader(is_client=is_client)
    reader.feed(data)
    assert reader.next() == NotTLS(prefix=data[:64])
    assert reader.dead and reader.buffered == 0
    reader.feed(record(22, TLS12_CLIENT_HELLO))
    assert reader.next() is None


def test_not_tls_decided_on_the_first_byte() -> None:
    reader = RecordReader(is_client=False)
    reader.feed(b"H")
    assert reader.next() == NotTLS(prefix=b"H")


def test_not_tls_prefix_is_capped() -> None:
    data = b"x" * 1000
    assert read_all(data) == [NotTLS(prefix=data[:64])]


def test_sslv2_client_hello_at_start_then_tls_records() -> None:
    data = SSLV2_CLIENT_HELLO + h("14 03 01 00 01 01")
    items = read_all(data)
    assert items == [
        SSLv2Record(data=SSLV2_CLIENT_HELLO),
        Record(content_type=20, version=0x0301, fragment=b"\x01"),
    ]
    for cut in range(len(data)):
        assert read_all(data, cuts=(cut,)) == items


def test_sslv2_header_later_is_a_desync() -> None:
    items = read_all(record(22, TLS12_CLIENT_HELLO) + SSLV2_CLIENT_HELLO)
    assert isinstance(items[0], Record)
    assert items[1] == ParseAnomaly(anomaly=Anomaly.UNKNOWN_CONTENT_TYPE, detail="content type 128")
    assert len(items) == 2


@pytest.mark.parametrize(
    ("bad_header", "anomaly"),
    [
        (h("16 03 03 48 01"), Anomaly.RECORD_TOO_LONG),
        (h("16 03 03 ff ff"), Anomaly.RECORD_TOO_LONG),
        (h("16 04 00 00 01"), Anomaly.BAD_RECORD_VERSION),
        (h("16 00 02 00 01"), Anomaly.BAD_RECORD_VERSION),
        (h("00 03 03 00 01"), Anomaly.UNKNOWN_CONTENT_TYPE),
        (h("1a 03 03 00 01"), Anomaly.UNKNOWN_CONTENT_TYPE),
        (b"HTTP/", Anomaly.UNKNOWN_CONTENT_TYPE),
    ],
)
def test_lost_framing_stops_the_reader(bad_header: bytes, anomaly: Anomaly) -> None:
    good = record(22, TLS12_CLIENT_HELLO)
    items = read_all(good + bad_header + bytes(10) + good)
    assert items[0] == Record(content_type=22, version=0x0303, fragment=TLS12_CLIENT_HELLO)
    assert isinstance(items[1], ParseAnomaly) and items[1].anomaly == anomaly
    assert len(items) == 2  # nothing after the desync


def test_first_record_too_long_is_not_tls_but_record_too_long() -> None:
    items = read_all(h("16 03 01 ff ff") + bytes(100))
    assert items == [ParseAnomaly(anomaly=Anomaly.RECORD_TOO_LONG, detail="record length 65535")]


def test_record_of_the_maximum_length_is_accepted() -> None:
    payload = bytes(MAX_TLS_RECORD)
    assert read_all(record(23, payload)) == [
        Record(content_type=23, version=0x0303, fragment=payload)
    ]


def test_buffer_holds_at_most_one_partial_record() -> None:
    reader = RecordReader(is_client=False)
    data = record(23, bytes(3000)) * 20
    reader.feed(data[:-10])
    assert len(drain(reader)) == 19
    assert reader.buffered == 3005 - 10


@given(
    cut=st.integers(min_value=0, max_value=len(CLIENT_STREAM)),
    suffix=st.binary(max_size=200),
    chunk=st.integers(min_value=1, max_value=64),
    is_client=st.booleans(),
)
def test_valid_prefix_and_random_suffix_never_raises(
    cut: int, suffix: bytes, chunk: int, is_client: bool
) -> None:
    data = CLIENT_STREAM[:cut] + suffix
    reader = RecordReader(is_client=is_client)
    items: list[RecordItem] = []
    for i in range(0, len(data), chunk):
        reader.feed(data[i : i + chunk])
        items += drain(reader)
        assert reader.buffered <= RECORD_HEADER + MAX_TLS_RECORD
    assert items == read_all(data, is_client=is_client) or isinstance(items[-1], NotTLS)
    stops = [i for i in items if not isinstance(i, Record | SSLv2Record)]
    assert len(stops) <= 1 and (not stops or stops[0] is items[-1])

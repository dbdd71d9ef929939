"""ICMP destination-unreachable errors reach the connection they quote (engine, record,
outputs, shards).

Frames are real: a curl SYN to 10.99.0.1:443 (and to [fd00:99::1]:443) answered by the
server host's ``REJECT --reject-with icmp-port-unreachable`` (``icmp6-port-unreachable``),
captured with tcpdump on the client's side (the ICMP fixtures of ``test_decode``). Other
errors are made from them by changing a byte or two.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import dpkt
import pytest

import analyzer
from analyzer.engine.engine import Engine
from analyzer.output import write_csv, write_jsonl
from analyzer.record import ICMP_ERRORS, RECORD_FIELDS, HandshakeRecord
from analyzer.scale.shard import ShardEngine, frame_key
from analyzer.sources.base import Frame
from tests.test_decode import ICMP4_PORT_UNREACHABLE, ICMP6_PORT_UNREACHABLE, h

T0 = 1_796_285_298.925373

SYN4 = h("""
    d205d706f4ac 7a40acb83921 0800          # Ethernet, IPv4
    4500 003c 6a54 4000 4006 bb9f           # IPv4, 60 bytes, DF, TCP
    0a630002 0a630001                       # 10.99.0.2 -> 10.99.0.1
    932a 01bb 774bf9f7 00000000 a002        # 37674 -> 443, SYN
    faf0 0141 0000
    020405b4 0402080a 943f9c9a 00000000 0103030a
""")
SYN6 = h("""
    9e6162bf5447 2a9aa3412ebd 86dd          # Ethernet, IPv6
    600d74e6 0028 06 40                     # IPv6, 40 bytes, TCP
    fd000099000000000000000000000002 fd000099000000000000000000000001
    ce5a 01bb 834c061f 00000000 a002        # 52826 -> 443, SYN
    fd20 3e27 0000
    020405a0 0402080a dc1edbf2 00000000 0103030a
""")
ICMP4_OFFSET = 34
"""Where the ICMP header starts in the IPv4 fixture (Ethernet 14 + IPv4 20)."""


def frame(data: bytes, dt: float = 0.0) -> Frame:
    return Frame(T0 + dt, 1, data, len(data))


def run(*frames: Frame) -> list[HandshakeRecord]:
    engine = Engine("icmp.pcap")
    return list(engine.run(frames))


def with_code(data: bytes, code: int, sender: bytes | None = None) -> bytes:
    """The IPv4 error with another ICMP code (and sender address)."""
    out = bytearray(data)
    out[ICMP4_OFFSET + 1] = code
    if sender is not None:
        out[26:30] = sender
    return bytes(out)


@pytest.mark.parametrize(
    "syn, error, sender, timeline",
    [
        (SYN4, ICMP4_PORT_UNREACHABLE, "10.99.0.1",
         "ICMP port unreachable (type 3 code 3) from 10.99.0.1, quoting a client packet"),
        (SYN6, ICMP6_PORT_UNREACHABLE, "fd00:99::1",
         "ICMPv6 port unreachable (type 1 code 4) from fd00:99::1, quoting a client packet"),
    ],
    ids=["v4", "v6"],
)
def test_port_unreachable_answering_the_syn(
    syn: bytes, error: bytes, sender: str, timeline: str
) -> None:
    (r,) = run(frame(syn), frame(error, 41e-6))
    assert (r.icmp_error, r.icmp_from) == ("port_unreachable", sender)
    assert r.server_ip == sender and r.server_port == 443
    assert r.stage == "tcp_syn" and r.syn_count == 1 and not r.synack
    assert r.packets == 1 and r.ts_end == r.ts  # an ICMP error is not a TCP packet of it
    assert [e.what for e in r.timeline] == ["SYN", timeline]
    assert r.timeline[1].sender == "-"


def test_an_error_without_its_connection_is_only_counted() -> None:
    engine = Engine("icmp.pcap")
    assert engine.feed(frame(ICMP4_PORT_UNREACHABLE)) == []
    assert engine.finish() == []
    assert engine.stats.other == 1 and engine.stats.connections == 0


def test_records_without_an_error_say_null() -> None:
    (r,) = run(frame(SYN4))
    assert r.icmp_error is None and r.icmp_from is None
    d = r.to_dict()
    assert d["icmp_error"] is None and d["icmp_from"] is None


def test_the_first_error_is_kept_and_every_one_is_in_the_timeline() -> None:
    router = bytes([10, 99, 0, 254])
    later = with_code(ICMP4_PORT_UNREACHABLE, 1, router)  # host unreachable from a router
    (r,) = run(frame(SYN4), frame(ICMP4_PORT_UNREACHABLE, 0.001), frame(SYN4, 1.0),
               frame(later, 1.001))
    assert (r.icmp_error, r.icmp_from) == ("port_unreachable", "10.99.0.1")
    assert [e.what for e in r.timeline if e.sender == "-"] == [
        "ICMP port unreachable (type 3 code 3) from 10.99.0.1, quoting a client packet",
        "ICMP host unreachable (type 3 code 1) from 10.99.0.254, quoting a client packet",
    ]


@pytest.mark.parametrize(
    "code, name",
    [(0, "net_unreachable"), (1, "host_unreachable"), (9, "admin_prohibited"),
     (10, "admin_prohibited"), (13, "admin_prohibited"), (4, "fragmentation_needed")],
)
def test_codes_become_the_record_words(code: int, name: str) -> None:
    router = bytes([10, 99, 0, 254])
    (r,) = run(frame(SYN4), frame(with_code(ICMP4_PORT_UNREACHABLE, code, router), 0.001))
    assert (r.icmp_error, r.icmp_from) == (name, "10.99.0.254")
    assert r.icmp_error in ICMP_ERRORS


def test_an_error_quoting_a_server_packet_is_recorded_too() -> None:
    # The quoted packet turned around: the server's SYN-ACK could not reach the client.
    q = ICMP4_OFFSET + 8  # the quoted IPv4 header, then TCP
    d = ICMP4_PORT_UNREACHABLE
    quoted = bytearray(d)
    quoted[q + 12 : q + 20] = d[q + 16 : q + 20] + d[q + 12 : q + 16]  # addresses
    quoted[q + 20 : q + 24] = d[q + 22 : q + 24] + d[q + 20 : q + 22]  # ports
    quoted[26:30] = bytes([10, 99, 0, 254])
    (r,) = run(frame(SYN4), frame(with_code(bytes(quoted), 1), 0.001))
    assert (r.icmp_error, r.icmp_from) == ("host_unreachable", "10.99.0.254")
    assert r.timeline[-1].what.endswith("quoting a server packet")


def test_an_error_for_another_port_is_not_this_connections() -> None:
    other = bytearray(ICMP4_PORT_UNREACHABLE)
    other[ICMP4_OFFSET + 8 + 20 + 1] ^= 1  # the quoted source port
    (r,) = run(frame(SYN4), frame(bytes(other), 0.001))
    assert r.icmp_error is None


def test_every_output_carries_the_fields(tmp_path: Path) -> None:
    (r,) = run(frame(SYN4), frame(ICMP4_PORT_UNREACHABLE, 41e-6))
    fields = list(RECORD_FIELDS)
    assert fields.index("icmp_from") == fields.index("icmp_error") + 1
    out = io.StringIO()
    write_jsonl([r], out)
    line = json.loads(out.getvalue())
    assert (line["icmp_error"], line["icmp_from"]) == ("port_unreachable", "10.99.0.1")
    out = io.StringIO()
    write_csv([r], out)
    (row,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert (row["icmp_error"], row["icmp_from"]) == ("port_unreachable", "10.99.0.1")

    from analyzer.frame import to_arrow, to_dataframe

    df = to_dataframe([r, *run(frame(SYN6))])
    assert str(df["icmp_error"].dtype) == "category"
    assert list(df["icmp_error"].cat.categories) == list(ICMP_ERRORS)
    assert df["icmp_error"].tolist()[0] == "port_unreachable"
    assert df["icmp_error"].isna().tolist() == [False, True]
    assert str(df["icmp_from"].dtype) == "string"
    table = to_arrow([r])
    assert str(table.schema.field("icmp_error").type) == "string"
    assert table.column("icmp_from").to_pylist() == ["10.99.0.1"]


def test_a_capture_file_end_to_end(tmp_path: Path) -> None:
    path = tmp_path / "reject.pcap"
    with path.open("wb") as f:
        w = dpkt.pcap.Writer(f, linktype=1, nano=False)
        w.writepkt(SYN4, T0)
        w.writepkt(ICMP4_PORT_UNREACHABLE, T0 + 41e-6)
        w.writepkt(SYN6, T0 + 1)
        w.writepkt(ICMP6_PORT_UNREACHABLE, T0 + 1.000024)
    got = {r.server_ip: (r.icmp_error, r.icmp_from) for r in analyzer.analyze(path)}
    assert got == {"10.99.0.1": ("port_unreachable", "10.99.0.1"),
                   "fd00:99::1": ("port_unreachable", "fd00:99::1")}


@pytest.mark.parametrize("syn, error", [(SYN4, ICMP4_PORT_UNREACHABLE),
                                        (SYN6, ICMP6_PORT_UNREACHABLE)], ids=["v4", "v6"])
def test_the_error_goes_to_the_shard_of_its_connection(syn: bytes, error: bytes) -> None:
    assert frame_key(frame(error)) == frame_key(frame(syn))
    frames = [frame(syn), frame(error, 41e-6)]
    whole = [r.to_dict() for r in run(*frames)]
    engines = [ShardEngine("icmp.pcap", shard, 3) for shard in range(3)]
    sharded = [r.to_dict() for e in engines for r in e.run_shard(filter(e.wants, frames))]
    assert sharded == whole and whole[0]["icmp_error"] == "port_unreachable"

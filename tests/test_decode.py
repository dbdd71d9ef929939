"""Frame decoding (analyzer.decode): link layers, IPv4/IPv6, TCP/UDP, and totality.

Fixtures are commented hex: one IPv4 and one IPv6 TCP packet carrying b"hi!", wrapped in
every supported link layer, and two real ICMP/ICMPv6 port-unreachable errors answering a
SYN. Every prefix of every fixture is decoded (a snaplen cut is
never mistaken for a malformed header), Hypothesis feeds random bytes and valid prefixes
with random suffixes, and every frame of the real-world captures is checked against
tshark's reading of the same frame.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.anomalies import Anomaly
from analyzer.decode import (
    ACK,
    PSH,
    SYN,
    Datagram,
    IcmpUnreachable,
    Segment,
    Skipped,
    decode_frame,
    format_ip,
)
from analyzer.decode.icmp import (
    UNREACHABLE_NAMES,
    describe_unreachable,
    error_name,
    unreachable_code_name,
    unreachable_name,
)
from analyzer.limits import MAX_IPV6_EXT_HEADERS, MAX_VLAN_TAGS
from analyzer.sources import CaptureReader

TS = 1_700_000_000.25


def h(text: str) -> bytes:
    """Hex with spaces, newlines and ``#`` comments."""
    lines = (line.split("#", 1)[0] for line in text.splitlines())
    return bytes.fromhex("".join(lines))


TCP_HI = h("""
    c350 01bb            # ports 50000 -> 443
    00000064             # seq 100
    000000c8             # ack 200
    50 18                # data offset 5 (20 bytes), flags PSH|ACK
    ffff 0000 0000       # window 65535, checksum, urgent
    686921               # payload "hi!"
""")

IPV4_TCP = (
    h("""
    45 00 002b           # IPv4, IHL 5, total length 43 = 20 + 20 + 3
    1234 4000            # id, flags DF, fragment offset 0
    40 06 0000           # TTL 64, protocol TCP, checksum (not checked)
    0a000001 0a000002    # 10.0.0.1 -> 10.0.0.2
""")
    + TCP_HI
)

IPV6_TCP = (
    h("""
    60000000             # IPv6, traffic class, flow label
    0017 06 40           # payload length 23, next header TCP, hop limit 64
    20010db8000000000000000000000001   # 2001:db8::1
    20010db8000000000000000000000002   # 2001:db8::2
""")
    + TCP_HI
)

ETH_V4 = h("020000000002 020000000001 0800")  # dst, src MAC, EtherType IPv4
ETH_V6 = h("020000000002 020000000001 86dd")  # EtherType IPv6

SLL_V4 = h("""
    0000 0001 0006        # packet type (to us), ARPHRD_ETHER, address length 6
    020000000001 0000     # link-layer address, padded to 8
    0800                  # protocol: IPv4
""")
SLL2_V6 = h("""
    86dd 0000             # protocol IPv6, reserved
    00000002              # interface index 2
    0001 00 06            # ARPHRD_ETHER, packet type, address length
    020000000001 0000     # link-layer address, padded to 8
""")


def expect_hi(result: object, *, v6: bool = False) -> Segment:
    """The fixture segment, decoded completely."""
    assert type(result) is Segment, result
    addr_len = 16 if v6 else 4
    assert (result.sport, result.dport, result.seq, result.ack) == (50000, 443, 100, 200)
    assert result.flags == PSH | ACK
    assert result.window == 65535
    assert result.payload == b"hi!"
    assert result.truncated is False
    assert len(result.src) == len(result.dst) == addr_len
    assert result.ts == TS
    return result


def decode(linktype: int, frame: bytes, wirelen: int | None = None) -> object:
    return decode_frame(TS, linktype, frame, len(frame) if wirelen is None else wirelen)


# -- link layers -----------------------------------------------------------------------

LINK_FIXTURES: list[tuple[str, int, bytes, bool]] = [
    ("ethernet ipv4", 1, ETH_V4 + IPV4_TCP, False),
    ("ethernet ipv6", 1, ETH_V6 + IPV6_TCP, True),
    ("802.1Q", 1, h("020000000002 020000000001 8100 0064 0800") + IPV4_TCP, False),
    (
        "802.1ad QinQ",  # service tag 88a8, customer tag 8100
        1,
        h("020000000002 020000000001 88a8 00c8 8100 0064 86dd") + IPV6_TCP,
        True,
    ),
    (
        "PPPoE session",  # ver/type 11, code 00, session 0001, length, PPP proto 0021
        1,
        h("020000000002 020000000001 8864 1100 0001 002d 0021") + IPV4_TCP,
        False,
    ),
    (
        "MPLS two labels",  # label 16 (not bottom), label 17 (bottom of stack), TTL 64
        1,
        h("020000000002 020000000001 8847 00010040 00011140") + IPV4_TCP,
        False,
    ),
    ("linux SLL", 113, SLL_V4 + IPV4_TCP, False),
    ("linux SLL2", 276, SLL2_V6 + IPV6_TCP, True),
    ("raw 101 v4", 101, IPV4_TCP, False),
    ("raw 101 v6", 101, IPV6_TCP, True),
    ("raw 12", 12, IPV4_TCP, False),
    ("raw 14", 14, IPV6_TCP, True),
    ("ipv4 228", 228, IPV4_TCP, False),
    ("ipv6 229", 229, IPV6_TCP, True),
    ("NULL little-endian AF_INET", 0, h("02000000") + IPV4_TCP, False),
    ("NULL big-endian AF_INET", 0, h("00000002") + IPV4_TCP, False),
    ("NULL AF_INET6 BSD 24", 0, h("18000000") + IPV6_TCP, True),
    ("NULL AF_INET6 FreeBSD 28", 0, h("1c000000") + IPV6_TCP, True),
    ("NULL AF_INET6 Darwin 30", 0, h("1e000000") + IPV6_TCP, True),
    ("LOOP AF_INET", 108, h("00000002") + IPV4_TCP, False),
    ("LOOP AF_INET6 24", 108, h("00000018") + IPV6_TCP, True),
]


@pytest.mark.parametrize(
    ("linktype", "frame", "v6"),
    [pytest.param(lt, fr, v6, id=name) for name, lt, fr, v6 in LINK_FIXTURES],
)
def test_link_layers(linktype: int, frame: bytes, v6: bool) -> None:
    seg = expect_hi(decode(linktype, frame), v6=v6)
    if v6:
        assert format_ip(seg.src) == "2001:db8::1"
        assert format_ip(seg.dst) == "2001:db8::2"
    else:
        assert seg.src == bytes([10, 0, 0, 1])
        assert seg.dst == bytes([10, 0, 0, 2])


@pytest.mark.parametrize(
    ("linktype", "frame", "v6"),
    [pytest.param(lt, fr, v6, id=name) for name, lt, fr, v6 in LINK_FIXTURES],
)
def test_every_prefix_is_a_snaplen_cut(linktype: int, frame: bytes, v6: bool) -> None:
    """A frame cut anywhere, with its wire length intact, is never taken for malformed."""
    for cut in range(len(frame)):
        result = decode(linktype, frame[:cut], len(frame))
        if type(result) is Segment:
            assert result.truncated
            assert b"hi!".startswith(result.payload)
        else:
            assert result == Skipped(TS, Anomaly.SNAPLEN_TRUNCATED), (cut, result)


@pytest.mark.parametrize(
    ("linktype", "frame", "v6"),
    [pytest.param(lt, fr, v6, id=name) for name, lt, fr, v6 in LINK_FIXTURES],
)
def test_every_prefix_without_snaplen_is_malformed(linktype: int, frame: bytes, v6: bool) -> None:
    """The same cut with wire length = captured length is a malformed frame instead."""
    malformed = {
        Anomaly.BAD_LINK_HEADER,
        Anomaly.BAD_IP_HEADER,
        Anomaly.BAD_TCP_HEADER,
    }
    for cut in range(len(frame)):
        result = decode(linktype, frame[:cut])
        assert type(result) is Skipped, (cut, result)
        assert result.anomaly in malformed, (cut, result)


def test_ethernet_padding_is_ignored() -> None:
    frame = ETH_V4 + IPV4_TCP + bytes(60 - 14 - len(IPV4_TCP))  # padded to the 60-byte minimum
    assert len(frame) == 60
    expect_hi(decode(1, frame))


def test_ethernet_fcs_after_ip_is_ignored() -> None:
    expect_hi(decode(1, ETH_V4 + IPV4_TCP + h("deadbeef")))


def test_too_many_vlan_tags() -> None:
    tags = h("8100 0064") * (MAX_VLAN_TAGS + 1)
    frame = h("020000000002 020000000001") + tags + h("0800") + IPV4_TCP
    assert decode(1, frame) == Skipped(TS, Anomaly.BAD_LINK_HEADER)
    ok = h("020000000002 020000000001") + h("8100 0064") * MAX_VLAN_TAGS + h("0800") + IPV4_TCP
    expect_hi(decode(1, ok))


def test_non_ip_is_skipped_without_anomaly() -> None:
    arp = h("ffffffffffff 020000000001 0806 0001 0800 06 04 0001") + bytes(20)
    assert decode(1, arp) == Skipped(TS, None)
    null_other_af = h("07000000") + IPV4_TCP  # AF 7 is not IP
    assert decode(0, null_other_af) == Skipped(TS, None)
    netlink = h("0004 0338 0000 0000000000000000 0000") + bytes(20)  # ARPHRD_NETLINK 824
    assert decode(113, netlink) == Skipped(TS, None)
    pppoe_lcp = h("020000000002 020000000001 8864 1100 0001 0004 c021") + bytes(4)
    assert decode(1, pppoe_lcp) == Skipped(TS, None)


def test_unknown_linktype() -> None:
    assert decode(147, IPV4_TCP) == Skipped(TS, Anomaly.UNKNOWN_LINKTYPE)


def test_raw_ip_wrong_version() -> None:
    assert decode(101, b"\x50" + IPV4_TCP[1:]) == Skipped(TS, Anomaly.BAD_IP_HEADER)
    assert decode(228, IPV6_TCP) == Skipped(TS, Anomaly.BAD_IP_HEADER)
    assert decode(229, IPV4_TCP) == Skipped(TS, Anomaly.BAD_IP_HEADER)


# -- IPv4 ------------------------------------------------------------------------------


def ipv4(
    *,
    ihl: int = 5,
    total: int | None = None,
    frag: int = 0x4000,
    proto: int = 6,
    options: bytes = b"",
    body: bytes = TCP_HI,
) -> bytes:
    size = 20 + len(options)
    length = size + len(body) if total is None else total
    head = struct.pack("!BBHHHBBH", 0x40 | ihl, 0, length, 1, frag, 64, proto, 0)
    return head + bytes([10, 0, 0, 1, 10, 0, 0, 2]) + options + body


def test_ipv4_options_follow_ihl() -> None:
    frame = ipv4(ihl=6, options=h("01010100"))  # NOP NOP NOP EOL
    expect_hi(decode(101, frame))


@pytest.mark.parametrize("ihl", [0, 1, 4])
def test_ipv4_ihl_below_five(ihl: int) -> None:
    assert decode(101, ipv4(ihl=ihl)) == Skipped(TS, Anomaly.BAD_IP_HEADER)


def test_ipv4_total_length_shorter_than_header() -> None:
    assert decode(101, ipv4(total=19)) == Skipped(TS, Anomaly.BAD_IP_HEADER)
    assert decode(101, ipv4(ihl=6, total=22, options=bytes(4))) == Skipped(
        TS, Anomaly.BAD_IP_HEADER
    )


def test_ipv4_total_length_beyond_the_wire() -> None:
    frame = ipv4(total=44)  # one byte more than the frame carries
    assert decode(101, frame) == Skipped(TS, Anomaly.BAD_IP_HEADER)
    # ... but when the frame was longer on the wire, the snaplen cut it.
    seg = decode(101, frame, len(frame) + 1)
    assert type(seg) is Segment
    assert seg.truncated
    assert seg.payload == b"hi!"


def test_ipv4_total_length_shorter_than_frame_cuts_payload() -> None:
    seg = decode(101, ipv4(total=42))  # the last payload byte is padding
    assert type(seg) is Segment
    assert seg.payload == b"hi"
    assert not seg.truncated


def test_ipv4_total_length_zero_means_segmentation_offload() -> None:
    expect_hi(decode(101, ipv4(total=0)))


@pytest.mark.parametrize(
    "frag",
    [
        0x2000,  # more fragments, offset 0: a first fragment
        0x0001,  # offset 8 bytes, last fragment
        0x2010,  # middle fragment
    ],
)
def test_ipv4_fragments(frag: int) -> None:
    assert decode(101, ipv4(frag=frag)) == Skipped(TS, Anomaly.IP_FRAGMENT)


def test_ipv4_dont_fragment_is_not_a_fragment() -> None:
    expect_hi(decode(101, ipv4(frag=0x4000)))
    expect_hi(decode(101, ipv4(frag=0x0000)))


def test_ipv4_icmp_is_skipped_without_anomaly() -> None:
    echo = h("0800 f7ff 0000 0000")
    assert decode(101, ipv4(proto=1, body=echo)) == Skipped(TS, None)


# -- IPv6 ------------------------------------------------------------------------------


def ipv6(next_header: int, body: bytes, *, length: int | None = None) -> bytes:
    head = struct.pack(
        "!IHBB", 0x60000000, len(body) if length is None else length, next_header, 64
    )
    return (
        head + bytes.fromhex("20010db8" + "00" * 11 + "01" + "20010db8" + "00" * 11 + "02") + body
    )


def ext(next_header: int, size: int = 8) -> bytes:
    """An options-style extension header (hop-by-hop, routing, destination) of ``size``."""
    return bytes([next_header, size // 8 - 1]) + bytes(size - 2)


def test_ipv6_extension_chain() -> None:
    # hop-by-hop -> routing -> destination options (16 bytes) -> fragment -> TCP; the
    # fragment header is atomic (offset 0, no more fragments: RFC 6946), not a fragment
    body = ext(43) + ext(60) + ext(44, 16) + h("06 00 0000 00000001") + TCP_HI
    expect_hi(decode(101, ipv6(0, body)), v6=True)


def test_ipv6_authentication_header() -> None:
    ah = h("06 04 0000 00001000 00000001") + bytes(12)  # payload len 4: (4 + 2) * 4 = 24 bytes
    expect_hi(decode(101, ipv6(51, ah + TCP_HI)), v6=True)


@pytest.mark.parametrize(
    "fragment",
    [
        h("06 00 0001 00000001"),  # offset 0, more fragments: first fragment
        h("06 00 0008 00000001"),  # offset 1, last fragment
    ],
)
def test_ipv6_fragments(fragment: bytes) -> None:
    assert decode(101, ipv6(44, fragment + TCP_HI)) == Skipped(TS, Anomaly.IP_FRAGMENT)


def test_ipv6_chain_limit() -> None:
    chain = b"".join(ext(60) for _ in range(MAX_IPV6_EXT_HEADERS))
    too_long = ipv6(60, chain + ext(6) + TCP_HI)
    assert decode(101, too_long) == Skipped(TS, Anomaly.BAD_IP_HEADER)
    at_limit = ipv6(
        60, b"".join(ext(60) for _ in range(MAX_IPV6_EXT_HEADERS - 1)) + ext(6) + TCP_HI
    )
    expect_hi(decode(101, at_limit), v6=True)


def test_ipv6_extension_header_beyond_payload() -> None:
    frame = ipv6(0, ext(6, 16) + TCP_HI, length=12)  # payload too short for the 16-byte header
    assert decode(101, frame, len(frame)) == Skipped(TS, Anomaly.BAD_IP_HEADER)


def test_ipv6_payload_beyond_wire() -> None:
    frame = ipv6(6, TCP_HI, length=24)
    assert decode(101, frame) == Skipped(TS, Anomaly.BAD_IP_HEADER)


def test_ipv6_jumbogram_runs_to_end_of_frame() -> None:
    jumbo_option = h("06 00 c2 04 00000000")  # hop-by-hop: Jumbo Payload option
    expect_hi(decode(101, ipv6(0, jumbo_option + TCP_HI, length=0)), v6=True)


@pytest.mark.parametrize("next_header", [58, 50, 59])  # ICMPv6, ESP, no next header
def test_ipv6_other_protocols(next_header: int) -> None:
    assert decode(101, ipv6(next_header, bytes(16))) == Skipped(TS, None)


# -- TCP and UDP -----------------------------------------------------------------------


@pytest.mark.parametrize("data_offset", [0, 4])
def test_tcp_data_offset_below_five(data_offset: int) -> None:
    tcp = TCP_HI[:12] + bytes([data_offset << 4]) + TCP_HI[13:]
    assert decode(101, ipv4(body=tcp)) == Skipped(TS, Anomaly.BAD_TCP_HEADER)


def test_tcp_data_offset_beyond_ip_payload() -> None:
    tcp = TCP_HI[:12] + b"\x60" + TCP_HI[13:]  # claims 24 bytes; the IP payload has 23
    assert decode(101, ipv4(body=tcp)) == Skipped(TS, Anomaly.BAD_TCP_HEADER)


def test_tcp_header_longer_than_ip_payload() -> None:
    assert decode(101, ipv4(body=TCP_HI[:19])) == Skipped(TS, Anomaly.BAD_TCP_HEADER)


def test_tcp_options_skipped() -> None:
    syn = h("""
        c350 01bb 00000064 00000000
        70 02 faf0 0000 0000      # data offset 7 (28 bytes), SYN
        020405b4 01030307         # MSS 1460, NOP, window scale 7
    """)
    seg = decode(101, ipv4(body=syn))
    assert type(seg) is Segment
    assert seg.flags == SYN
    assert seg.payload == b""
    assert seg.window == 0xFAF0


def test_tcp_snaplen_cut_in_payload() -> None:
    frame = ETH_V4 + IPV4_TCP
    seg = decode(1, frame[:-2], len(frame))
    assert type(seg) is Segment
    assert seg.payload == b"h"
    assert seg.truncated


def test_tcp_snaplen_cut_in_options_keeps_flags() -> None:
    frame = ipv4(body=TCP_HI[:12] + b"\x60" + TCP_HI[13:20] + bytes(4) + b"hi!")
    seg = decode(101, frame[:42], len(frame))
    assert type(seg) is Segment
    assert seg.payload == b""
    assert seg.truncated
    assert seg.flags == PSH | ACK


UDP_DNS = h("""
    d431 0035 0010 0000    # ports 54321 -> 53, length 16 (8 + 8), checksum
    0102030405060708       # 8 bytes of payload
""")


def test_udp_datagram() -> None:
    result = decode(101, ipv4(proto=17, body=UDP_DNS))
    assert result == Datagram(TS, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 54321, 53, 8,
                              bytes(range(1, 9)), False)
    v6 = decode(1, ETH_V6 + ipv6(17, UDP_DNS))
    assert type(v6) is Datagram
    assert (v6.sport, v6.dport, v6.length) == (54321, 53, 8)
    assert len(v6.src) == 16


@pytest.mark.parametrize("length", [7, 17])
def test_udp_bad_length(length: int) -> None:
    body = UDP_DNS[:4] + struct.pack("!H", length) + UDP_DNS[6:]
    assert decode(101, ipv4(proto=17, body=body)) == Skipped(TS, Anomaly.BAD_UDP_HEADER)


def test_udp_header_cut() -> None:
    assert decode(101, ipv4(proto=17, body=UDP_DNS[:6])) == Skipped(TS, Anomaly.BAD_UDP_HEADER)
    full = ipv4(proto=17, body=UDP_DNS)
    assert decode(101, full[:26], len(full)) == Skipped(TS, Anomaly.SNAPLEN_TRUNCATED)


def test_agrees_with_dpkt_built_packet() -> None:
    tcp = dpkt.tcp.TCP(sport=1234, dport=8443, seq=7, ack=9, flags=dpkt.tcp.TH_ACK, data=b"x" * 50)
    ip = dpkt.ip6.IP6(
        src=bytes(15) + b"\x01", dst=bytes(15) + b"\x02", nxt=6, hlim=64, data=tcp, plen=len(tcp)
    )
    eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=0x86DD, data=ip)
    seg = decode(1, bytes(eth))
    assert type(seg) is Segment
    assert (seg.sport, seg.dport, seg.seq, seg.ack, seg.flags) == (1234, 8443, 7, 9, ACK)
    assert seg.payload == b"x" * 50
    assert format_ip(seg.src) == "::1"


# -- ICMP destination unreachable ------------------------------------------------------

# Real frames: curl to 10.99.0.1:443 and [fd00:99::1]:443, the server host rejecting with
# `iptables ... -j REJECT --reject-with icmp-port-unreachable` (and ip6tables with
# icmp6-port-unreachable); captured with tcpdump on the client's veth.
ICMP4_PORT_UNREACHABLE = h("""
    7a40acb83921 d205d706f4ac 0800          # Ethernet, IPv4
    45c0 0058 5356 0000 4001 11c7           # IPv4, 88 bytes, protocol ICMP
    0a630001 0a630002                       # 10.99.0.1 (the server host) -> 10.99.0.2
    03 03 11f4 00000000                     # type 3 destination unreachable, code 3 port
    4500 003c 6a54 4000 4006 bb9f           # quoted IPv4: 60 bytes, DF, protocol TCP
    0a630002 0a630001                       # 10.99.0.2 -> 10.99.0.1
    932a 01bb 774bf9f7 00000000 a002        # quoted TCP: 37674 -> 443, SYN
    faf0 0141 0000                          # window, checksum, urgent
    020405b4 0402080a 943f9c9a 00000000 0103030a   # SYN options
""")
ICMP6_PORT_UNREACHABLE = h("""
    2a9aa3412ebd 9e6162bf5447 86dd          # Ethernet, IPv6
    6002176a 0058 3a 40                     # IPv6, 88 bytes, next header ICMPv6
    fd000099000000000000000000000001        # fd00:99::1 (the server host)
    fd000099000000000000000000000002        # -> fd00:99::2
    01 04 2805 00000000                     # type 1 destination unreachable, code 4 port
    600d74e6 0028 06 40                     # quoted IPv6: 40 bytes, next header TCP
    fd000099000000000000000000000002        # fd00:99::2
    fd000099000000000000000000000001        # -> fd00:99::1
    ce5a 01bb 834c061f 00000000 a002        # quoted TCP: 52826 -> 443, SYN
    fd20 3e27 0000                          # window, checksum, urgent
    020405a0 0402080a dc1edbf2 00000000 0103030a   # SYN options
""")
ICMP6_NEIGHBOR_SOLICITATION = h("""
    3333ff000001 2a9aa3412ebd 86dd          # Ethernet multicast, IPv6
    60000000 0020 3a ff                     # IPv6, 32 bytes, ICMPv6
    fd000099000000000000000000000002 ff0200000000000000000001ff000001
    87 00 81ce 00000000                     # type 135 neighbor solicitation
    fd000099000000000000000000000001 0101 2a9aa3412ebd   # target, source link-layer option
""")
SERVER4, CLIENT4 = bytes([10, 99, 0, 1]), bytes([10, 99, 0, 2])
SERVER6 = bytes.fromhex("fd000099000000000000000000000001")
CLIENT6 = bytes.fromhex("fd000099000000000000000000000002")
ICMP_FIXTURES = [
    ("icmp4", ICMP4_PORT_UNREACHABLE, False, SERVER4, CLIENT4, 37674),
    ("icmp6", ICMP6_PORT_UNREACHABLE, True, SERVER6, CLIENT6, 52826),
]
QUOTED4 = ICMP4_PORT_UNREACHABLE[42:]
"""The quoted IPv4 packet (after Ethernet, IPv4 and the 8-byte ICMP header)."""
QUOTED6 = ICMP6_PORT_UNREACHABLE[62:]


def icmp4(code: int, quoted: bytes, kind: int = 3) -> bytes:
    """Raw IPv4 (link type 101) carrying an ICMP message of ``kind``/``code``."""
    return ipv4(proto=1, frag=0, body=bytes([kind, code, 0, 0, 0, 0, 0, 0]) + quoted)


def icmp6(code: int, quoted: bytes, kind: int = 1) -> bytes:
    return ipv6(58, bytes([kind, code, 0, 0, 0, 0, 0, 0]) + quoted)


@pytest.mark.parametrize("name, frame, v6, server, client, cport", ICMP_FIXTURES,
                         ids=[f[0] for f in ICMP_FIXTURES])
def test_icmp_port_unreachable_real(
    name: str, frame: bytes, v6: bool, server: bytes, client: bytes, cport: int
) -> None:
    result = decode(1, frame)
    assert result == IcmpUnreachable(
        ts=TS, src=server, v6=v6, code=4 if v6 else 3, key=(client, cport, server, 443)
    )
    assert type(result) is IcmpUnreachable
    assert unreachable_name(result.v6, result.code) == "port_unreachable"
    # dpkt reads the same error and the same quoted segment.
    eth = dpkt.ethernet.Ethernet(frame)
    error = eth.data.data
    inner = error.data.data
    assert (error.type, error.code) == ((1, 4) if v6 else (3, 3))
    assert eth.data.src == result.src
    assert (inner.src, inner.data.sport, inner.dst, inner.data.dport) == result.key
    assert describe_unreachable(result) == (
        "ICMPv6 port unreachable (type 1 code 4)" if v6 else "ICMP port unreachable (type 3 code 3)"
    )


def test_icmp_other_types_are_ordinary_traffic() -> None:
    assert decode(1, ICMP6_NEIGHBOR_SOLICITATION) == Skipped(TS, None)
    assert decode(101, icmp4(0, QUOTED4, kind=11)) == Skipped(TS, None)  # time exceeded
    assert decode(101, icmp6(0, QUOTED6, kind=3)) == Skipped(TS, None)  # time exceeded


def test_packet_too_big_and_fragmentation_needed_carry_the_next_hop_mtu() -> None:
    # RFC 4443 §3.2: type 2, code 0, checksum, then the 32-bit MTU, then the packet.
    too_big = ipv6(58, h("02 00 0000  00000500") + QUOTED6)  # MTU 1280
    result = decode(101, too_big)
    assert type(result) is IcmpUnreachable
    assert (result.too_big, result.mtu, result.key) == (True, 1280, (CLIENT6, 52826, SERVER6, 443))
    assert error_name(result) == "fragmentation_needed"
    assert describe_unreachable(result) == "ICMPv6 packet too big (type 2), next-hop MTU 1280"
    # RFC 1191 §4: type 3 code 4, unused 16 bits, then the 16-bit next-hop MTU.
    needed = ipv4(proto=1, frag=0, body=h("03 04 0000  0000 05dc") + QUOTED4)  # MTU 1500
    result4 = decode(101, needed)
    assert type(result4) is IcmpUnreachable
    assert (result4.too_big, result4.mtu, result4.code) == (False, 1500, 4)
    assert error_name(result4) == "fragmentation_needed"
    # dpkt reads the same MTU fields.
    assert dpkt.ip6.IP6(too_big).data.data.mtu == 1280  # type: ignore[attr-defined]
    assert dpkt.ip.IP(needed).data.data.mtu == 1500  # type: ignore[attr-defined]
    # A pre-RFC 1191 router leaves the MTU zero: unknown.
    old = ipv4(proto=1, frag=0, body=h("03 04 0000  0000 0000") + QUOTED4)
    assert decode(101, old).mtu is None  # type: ignore[union-attr]


def test_icmp_error_about_udp_names_the_datagram() -> None:
    udp = ipv4(proto=17, body=UDP_DNS)
    client, server = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    result = decode(101, icmp4(3, udp))
    assert result == IcmpUnreachable(
        ts=TS, src=client, v6=False, code=3, key=(client, 54321, server, 53), udp=True
    )
    # dpkt reads the same quoted datagram.
    inner = dpkt.ip.IP(icmp4(3, udp)).data.data.data
    assert (inner.src, inner.data.sport, inner.dst, inner.data.dport) == result.key
    v6 = decode(101, icmp6(4, ipv6(17, UDP_DNS)))
    assert type(v6) is IcmpUnreachable and v6.udp and v6.key[1::2] == (54321, 53)


def test_icmp_error_about_a_later_fragment_is_ordinary_traffic() -> None:
    later = QUOTED4[:6] + b"\x00\x10" + QUOTED4[8:]  # fragment offset 16: no TCP header
    assert decode(101, icmp4(3, later)) == Skipped(TS, None)
    fragment6 = QUOTED6[:6] + b"\x2c" + QUOTED6[7:40] + h("06 00 0010 00000001") + QUOTED6[40:]
    assert decode(101, icmp6(4, fragment6)) == Skipped(TS, None)


def test_icmp_quoted_first_fragment_and_extension_headers() -> None:
    first = QUOTED4[:6] + b"\x20\x00" + QUOTED4[8:]  # more fragments, offset 0
    result = decode(101, icmp4(3, first))
    assert type(result) is IcmpUnreachable and result.key == (CLIENT4, 37674, SERVER4, 443)
    # IPv6 quoting hop-by-hop -> destination options -> TCP.
    chained = QUOTED6[:6] + b"\x00" + QUOTED6[7:40] + ext(60) + ext(6) + QUOTED6[40:]
    result6 = decode(101, icmp6(1, chained))
    assert type(result6) is IcmpUnreachable and result6.key == (CLIENT6, 52826, SERVER6, 443)
    assert unreachable_name(True, result6.code) == "admin_prohibited"
    # An IPv4 error quoting an IPv6 packet (a translator's doing) is read by its version.
    mixed = decode(101, icmp4(1, QUOTED6))
    assert type(mixed) is IcmpUnreachable and mixed.key[0] == CLIENT6 and not mixed.v6


def test_icmp_quotation_of_rfc792_minimum_length() -> None:
    minimum = QUOTED4[:28]  # the IP header and the first 64 bits of the segment
    result = decode(101, icmp4(13, minimum))
    assert type(result) is IcmpUnreachable
    assert result.key == (CLIENT4, 37674, SERVER4, 443) and result.code == 13
    for cut in range(0, 28):
        assert decode(101, icmp4(3, QUOTED4[:cut])) == Skipped(TS, Anomaly.BAD_ICMP), cut
    for cut in range(0, 48):
        assert decode(101, icmp6(4, QUOTED6[:cut])) == Skipped(TS, Anomaly.BAD_ICMP), cut
    assert type(decode(101, icmp6(4, QUOTED6[:48]))) is IcmpUnreachable


@pytest.mark.parametrize("quoted", [b"\x75" + QUOTED4[1:], b"\x42" + QUOTED4[1:]],
                         ids=["version-7", "ihl-2"])
def test_icmp_quotation_not_ip_is_malformed(quoted: bytes) -> None:
    assert decode(101, icmp4(3, quoted)) == Skipped(TS, Anomaly.BAD_ICMP)


def test_icmp_shorter_than_its_header_is_malformed() -> None:
    for size in range(8):
        assert decode(101, ipv4(proto=1, body=h("0303 0000 00000000")[:size])) == Skipped(
            TS, Anomaly.BAD_ICMP
        ), size
        assert decode(101, ipv6(58, h("0104 0000 00000000")[:size])) == Skipped(
            TS, Anomaly.BAD_ICMP
        ), size


@pytest.mark.parametrize("name, frame, v6, server, client, cport", ICMP_FIXTURES,
                         ids=[f[0] for f in ICMP_FIXTURES])
def test_icmp_every_prefix_is_a_snaplen_cut_or_enough(
    name: str, frame: bytes, v6: bool, server: bytes, client: bytes, cport: int
) -> None:
    """Cut by the snaplen, an error is still read once the ports and sequence number of
    the quoted segment are in; before that it is a snaplen cut, never malformed."""
    enough = len(frame) - len(QUOTED6 if v6 else QUOTED4) + (48 if v6 else 28)
    for cut in range(14, len(frame)):
        result = decode(1, frame[:cut], len(frame))
        if cut >= enough:
            assert type(result) is IcmpUnreachable, cut
            assert result.key == (client, cport, server, 443)
        else:
            assert result == Skipped(TS, Anomaly.SNAPLEN_TRUNCATED), (cut, result)


@pytest.mark.parametrize("code", range(18))
def test_icmp4_every_code_has_a_name(code: int) -> None:
    result = decode(101, icmp4(code, QUOTED4))
    assert type(result) is IcmpUnreachable and result.code == code
    name = unreachable_name(False, code)
    assert name in UNREACHABLE_NAMES
    assert name == "unreachable" if code > 15 else name != "unreachable"


@pytest.mark.parametrize("code", range(11))
def test_icmp6_every_code_has_a_name(code: int) -> None:
    result = decode(101, icmp6(code, QUOTED6))
    assert type(result) is IcmpUnreachable and result.v6 and result.code == code
    name = unreachable_name(True, code)
    assert name in UNREACHABLE_NAMES
    assert name == "unreachable" if code > 8 else name != "unreachable"


@pytest.mark.parametrize(
    "v6, code, name",
    [
        (False, 0, "net_unreachable"), (False, 1, "host_unreachable"),
        (False, 2, "protocol_unreachable"), (False, 3, "port_unreachable"),
        (False, 4, "fragmentation_needed"), (False, 9, "admin_prohibited"),
        (False, 10, "admin_prohibited"), (False, 13, "admin_prohibited"),
        (True, 0, "net_unreachable"), (True, 1, "admin_prohibited"),
        (True, 3, "host_unreachable"), (True, 4, "port_unreachable"),
        (True, 5, "admin_prohibited"), (True, 6, "admin_prohibited"),
    ],
)
def test_icmp_names_of_the_common_codes(v6: bool, code: int, name: str) -> None:
    assert unreachable_name(v6, code) == name


def test_icmp_code_names_for_the_timeline() -> None:
    assert unreachable_code_name(False, 13) == "communication administratively prohibited"
    assert unreachable_code_name(True, 3) == "address unreachable"
    assert unreachable_code_name(False, 99) == "code 99"


@settings(max_examples=400, deadline=None)
@given(
    fixture=st.sampled_from(ICMP_FIXTURES),
    cut=st.integers(min_value=0, max_value=140),
    suffix=st.binary(max_size=80),
    wire_extra=st.integers(min_value=-3, max_value=40),
)
def test_icmp_valid_prefix_random_suffix_never_raises(
    fixture: tuple[str, bytes, bool, bytes, bytes, int], cut: int, suffix: bytes,
    wire_extra: int,
) -> None:
    frame = fixture[1]
    data = frame[:cut] + suffix
    check_result(decode_frame(TS, 1, data, len(data) + wire_extra))


@settings(max_examples=400, deadline=None)
@given(body=st.binary(max_size=120), v6=st.booleans(), kind=st.sampled_from([1, 3]))
def test_icmp_random_bodies_never_raise(body: bytes, v6: bool, kind: int) -> None:
    frame = ipv6(58, bytes([kind]) + body) if v6 else ipv4(
        proto=1, frag=0, body=bytes([kind]) + body
    )
    check_result(decode_frame(TS, 101, frame, len(frame)))


@settings(max_examples=300, deadline=None)
@given(flip=st.lists(st.tuples(st.integers(0, 140), st.integers(0, 255)), max_size=4))
def test_icmp_corrupted_fixture_bytes_never_raise(flip: list[tuple[int, int]]) -> None:
    for _name, frame, *_rest in ICMP_FIXTURES:
        data = bytearray(frame)
        for at, value in flip:
            if at < len(data):
                data[at] = value
        check_result(decode_frame(TS, 1, bytes(data), len(data)))


# -- helpers ---------------------------------------------------------------------------


def test_format_ip() -> None:
    assert format_ip(bytes([192, 0, 2, 1])) == "192.0.2.1"
    assert format_ip(bytes.fromhex("20010db8000000000000000000000001")) == "2001:db8::1"
    assert format_ip(bytes.fromhex("00000000000000000000ffffc0000201")) == "::ffff:192.0.2.1"
    assert format_ip(b"\x01\x02") == "0102"


# -- totality --------------------------------------------------------------------------

LINKTYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147, 65535]
KINDS = (Segment, Datagram, IcmpUnreachable, Skipped)


def check_result(result: object) -> None:
    assert type(result) in KINDS
    if type(result) is Segment:
        assert len(result.src) in (4, 16)
        assert len(result.src) == len(result.dst)
        assert 0 <= result.sport < 65536
        assert 0 <= result.dport < 65536
    elif type(result) is IcmpUnreachable:
        qsrc, sport, qdst, dport = result.key
        assert len(result.src) in (4, 16)
        assert len(qsrc) in (4, 16) and len(qsrc) == len(qdst)
        assert 0 <= sport < 65536 and 0 <= dport < 65536
        assert 0 <= result.code < 256
    elif type(result) is Skipped:
        assert result.anomaly is None or isinstance(result.anomaly, Anomaly)


@settings(max_examples=400, deadline=None)
@given(
    linktype=st.sampled_from(LINKTYPES),
    data=st.binary(max_size=200),
    extra=st.integers(min_value=-5, max_value=100),
)
def test_random_bytes_never_raise(linktype: int, data: bytes, extra: int) -> None:
    check_result(decode_frame(TS, linktype, data, len(data) + extra))


@settings(max_examples=400, deadline=None)
@given(
    fixture=st.sampled_from(LINK_FIXTURES),
    cut=st.integers(min_value=0, max_value=120),
    suffix=st.binary(max_size=80),
    wire_extra=st.integers(min_value=-3, max_value=40),
)
def test_valid_prefix_random_suffix_never_raises(
    fixture: tuple[str, int, bytes, bool], cut: int, suffix: bytes, wire_extra: int
) -> None:
    _name, linktype, frame, _v6 = fixture
    data = frame[:cut] + suffix
    check_result(decode_frame(TS, linktype, data, len(data) + wire_extra))


@settings(max_examples=300, deadline=None)
@given(flip=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4))
def test_corrupted_fixture_bytes_never_raise(flip: list[tuple[int, int]]) -> None:
    for _name, linktype, frame, _v6 in LINK_FIXTURES:
        data = bytearray(frame)
        for at, value in flip:
            if at < len(data):
                data[at] = value
        check_result(decode_frame(TS, linktype, bytes(data), len(data)))


# -- real-world captures ---------------------------------------------------------------

PCAPS = Path(__file__).parents[1].parent / "shared" / "pcaps"


def _pcap_files() -> list[Path]:
    return sorted(PCAPS.rglob("*.pcap")) if PCAPS.is_dir() else []


@pytest.mark.skipif(not PCAPS.is_dir(), reason=f"real-world captures not found at {PCAPS}")
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("path", _pcap_files(), ids=lambda p: str(p.relative_to(PCAPS)))
def test_segments_agree_with_tshark(path: Path) -> None:
    """Every frame we decode as TCP or UDP has tshark's ports, sequence number and length;
    every frame tshark sees as plain (untunnelled, unfragmented) TCP we decode as TCP."""
    fields = ["tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.len", "udp.length", "ip.proto"]
    fields += ["ipv6.nxt", "ip.flags.mf", "ip.frag_offset", "ipv6.fraghdr.offset"]
    fields += ["ipv6.fraghdr.more"]
    cmd = ["tshark", "-n", "-o", "tcp.analyze_sequence_numbers:FALSE", "-r", str(path)]
    cmd += ["-T", "fields", "-E", "separator=|"] + [a for f in fields for a in ("-e", f)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    rows = [line.split("|") for line in out.stdout.splitlines()]
    reader = CaptureReader(path)
    frames = list(reader)
    if out.returncode != 0:  # a damaged file: tshark stops at the damage, we go on
        assert len(frames) >= len(rows)
        frames = frames[: len(rows)]
    assert len(rows) == len(frames)
    segments = 0
    for number, (frame, row) in enumerate(zip(frames, rows, strict=True), start=1):
        result = decode_frame(frame.ts, frame.linktype, frame.data, frame.wirelen)
        sport, dport, seq, length, udp_length, proto, nxt, mf, frag, frag6, more6 = row
        tunnelled = "," in sport or "," in proto or "," in nxt or "," in udp_length
        fragment = any(v not in ("", "0", "False") for v in (mf, frag, frag6, more6))
        if type(result) is Segment:
            segments += 1
            assert not tunnelled, number
            assert (str(result.sport), str(result.dport), str(result.seq)) == (
                sport,
                dport,
                seq,
            ), number
            if not result.truncated:
                assert str(len(result.payload)) == length, number
        elif type(result) is Datagram:
            assert not tunnelled, number
            assert str(result.length + 8) == udp_length, number
        elif type(result) is IcmpUnreachable:  # tshark reads the quoted TCP header too
            assert (sport, dport) == (str(result.key[1]), str(result.key[3])), number
        elif sport and not tunnelled and not fragment:
            pytest.fail(f"frame {number}: tshark sees TCP, we skipped it: {result}")
    assert segments or not any(row[0] for row in rows)

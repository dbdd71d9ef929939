"""Frame decoding: link layer -> IPv4/IPv6 -> a TCP segment, a UDP datagram, or a skip.

Link layers (https://www.tcpdump.org/linktypes.html): Ethernet with any number of
802.1Q/802.1ad tags up to ``MAX_VLAN_TAGS``, PPPoE sessions (RFC 2516) and MPLS label
stacks (RFC 3032) up to ``MAX_MPLS_LABELS``; Linux cooked captures SLL and SLL2; raw IP
(link types 101, 12, 14, 228, 229); BSD loopback NULL (address family in host byte
order, either byte order accepted) and LOOP (network byte order), with every IPv6
address family value in use (24, 28, 30).

IPv4 (RFC 791): the header length comes from IHL, the packet length from Total Length
(frame padding after it is ignored; a Total Length of 0, written by segmentation
offload, means "the rest of the frame"). IPv6 (RFC 8200): the extension header chain
(hop-by-hop, routing, destination options, fragment, AH, mobility, HIP, shim6) is
followed up to ``MAX_IPV6_EXT_HEADERS``; a payload length of 0 after a hop-by-hop header
is a jumbogram and runs to the end of the frame. Fragments (RFC 791 §3.2, RFC 8200 §4.5)
are skipped as ``IP_FRAGMENT``, first fragments too: nothing is reassembled. An atomic
IPv6 fragment (offset 0, no more fragments, RFC 6946) is an ordinary packet.

TCP (RFC 9293 §3.1): the data offset must fit the IP payload; the payload is what the IP
length says, and ``truncated`` is set when the snaplen cut it. UDP (RFC 768): the
datagram's payload length from its header. ICMPv4 type 3 and ICMPv6 type 1 (destination
unreachable) quoting a TCP segment: :mod:`analyzer.decode.icmp`. Checksums are not
verified: captures taken on the sending host carry offloaded, unfilled checksums.

Everything is ``struct``/indexing on the frame's bytes: no objects besides the result.
The function is total: any bytes give a value, never an exception. Other ICMP, ARP and
other protocols give ``Skipped(ts, None)``; odd input gives ``Skipped`` with an anomaly.
"""

from __future__ import annotations

import socket
import struct
from typing import Final

from analyzer.anomalies import Anomaly
from analyzer.decode.icmp import parse_icmp_unreachable
from analyzer.decode.types import Datagram, Decoded, Segment, Skipped
from analyzer.limits import MAX_IPV6_EXT_HEADERS, MAX_MPLS_LABELS, MAX_VLAN_TAGS

ETH_IPV4: Final = 0x0800
ETH_IPV6: Final = 0x86DD
ETH_VLAN_TAGS: Final = frozenset({0x8100, 0x88A8, 0x9100, 0x9200, 0x9300})
"""802.1Q, 802.1ad, and the pre-standard QinQ values still seen in the wild."""
ETH_PPPOE_SESSION: Final = 0x8864
ETH_MPLS: Final = frozenset({0x8847, 0x8848})
PPP_IPV4: Final = 0x0021
PPP_IPV6: Final = 0x0057

AF_INET: Final = 2
AF_INET6_VALUES: Final = frozenset({24, 28, 30})
"""AF_INET6 on NetBSD/OpenBSD/BSD/OS, FreeBSD/DragonFly, and Darwin."""

ARPHRD_NETLINK: Final = 824
"""Linux cooked captures of netlink sockets: the protocol field is not an EtherType."""

IPPROTO_ICMP: Final = 1
IPPROTO_TCP: Final = 6
IPPROTO_UDP: Final = 17
IPPROTO_ICMPV6: Final = 58
IPV6_EXT_OPTIONS: Final = frozenset({0, 43, 60, 135, 139, 140})
"""Hop-by-hop, routing, destination options, mobility, HIP, shim6: (len + 1) * 8 bytes."""
IPPROTO_FRAGMENT: Final = 44
IPPROTO_AH: Final = 51
IPV6_EXT_HEADERS: Final = IPV6_EXT_OPTIONS | {IPPROTO_FRAGMENT, IPPROTO_AH}

LINKTYPE_NULL: Final = 0
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW: Final = frozenset({101, 12, 14})
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_LOOP: Final = 108
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_LINUX_SLL2: Final = 276

_ip4: Final = struct.Struct("!BxHxxHxB2x4s4s").unpack_from
"""IPv4: version/IHL, total length, flags/fragment offset, protocol, source, destination."""
_tcp: Final = struct.Struct("!HHIIBBH").unpack_from
"""TCP: ports, sequence, acknowledgment, data offset, flags, window."""
_udp: Final = struct.Struct("!HHH").unpack_from
_new: Final = tuple.__new__


def tcp_count_view(
    linktype: int, data: bytes
) -> tuple[tuple[bytes, int, bytes, int], int, int] | None:
    """``((src, sport, dst, dport), tcp flags, payload length)`` of the commonest frame,
    Ethernet + IPv4 without options + TCP, fully captured and not a fragment; None for
    anything else (which :func:`decode_frame` handles). Enough to count a packet of a
    connection that is no longer parsed, for a fraction of a full decode."""
    if linktype != LINKTYPE_ETHERNET or len(data) < 54:
        return None
    # Bytes read one at a time: native integers in the compiled build, no tuple to unpack.
    # EtherType 0x0800, version 4 with IHL 5, protocol TCP, no fragment bits.
    if data[12] != 0x08 or data[13] != 0x00 or data[14] != 0x45 or data[23] != IPPROTO_TCP:
        return None
    if data[20] & 0x3F or data[21]:
        return None
    total = (data[16] << 8) | data[17]
    if 14 + total > len(data):
        return None
    offset = data[46]
    payload = total - 20 - ((offset >> 4) << 2)
    if payload < 0 or offset < 0x50:  # a data offset under 5 words: the decoder rejects it
        return None
    sport = (data[34] << 8) | data[35]
    dport = (data[36] << 8) | data[37]
    return (data[26:30], sport, data[30:34], dport), data[47], payload


def _cut(ts: float, have: int, wire: int, anomaly: Anomaly) -> Skipped:
    """A header that runs past the captured bytes: the snaplen's doing if the frame was
    longer on the wire, else a malformed frame."""
    return Skipped(ts, Anomaly.SNAPLEN_TRUNCATED if wire > have else anomaly)


def decode_frame(ts: float, linktype: int, data: bytes, wirelen: int) -> Decoded:
    """Decode one captured frame down to TCP or UDP; never raises."""
    n = len(data)
    wire = wirelen if wirelen > n else n
    if linktype == LINKTYPE_ETHERNET and n >= 14:
        etype = (data[12] << 8) | data[13]
        off = 14
        if etype != ETH_IPV4 and etype != ETH_IPV6:
            link = _ethertype_chain(ts, data, etype, off, wire)
            if isinstance(link, Skipped):
                return link
            etype, off = link
    else:
        link = _link_header(ts, linktype, data, wire)
        if isinstance(link, Skipped):
            return link
        etype, off = link
    if etype == ETH_IPV6:
        return _ipv6(ts, data, off, wire)
    if etype != ETH_IPV4:
        return Skipped(ts, None)
    # IPv4
    if off + 20 > n:
        return _cut(ts, n, wire, Anomaly.BAD_IP_HEADER)
    vihl: int
    total: int
    frag: int
    proto: int
    src: bytes
    dst: bytes
    vihl, total, frag, proto, src, dst = _ip4(data, off)  # typed: native ints when compiled
    ihl = (vihl & 0x0F) << 2
    if vihl >> 4 != 4 or ihl < 20:
        return Skipped(ts, Anomaly.BAD_IP_HEADER)
    if total == 0:  # segmentation offload: the length was never filled in
        total = wire - off
    end = off + total
    if total < ihl or end > wire:
        return Skipped(ts, Anomaly.BAD_IP_HEADER)
    if frag & 0x3FFF:  # more fragments, or a fragment offset
        return Skipped(ts, Anomaly.IP_FRAGMENT)
    if proto == IPPROTO_TCP:
        return _tcp_segment(ts, data, off + ihl, end, src, dst)
    if proto == IPPROTO_UDP:
        return _udp_datagram(ts, data, off + ihl, end, src, dst)
    if proto == IPPROTO_ICMP:
        return parse_icmp_unreachable(ts, data, off + ihl, end, src, v6=False)
    return Skipped(ts, None)


def _ethertype_chain(
    ts: float, data: bytes, etype: int, off: int, wire: int
) -> tuple[int, int] | Skipped:
    """Peel VLAN tags, a PPPoE session header or an MPLS label stack off a frame whose
    EtherType at ``off - 2`` is ``etype``: (EtherType of the payload, its offset)."""
    n = len(data)
    tags = 0
    while etype in ETH_VLAN_TAGS:
        tags += 1
        if tags > MAX_VLAN_TAGS:
            return Skipped(ts, Anomaly.BAD_LINK_HEADER)
        if off + 4 > n:
            return _cut(ts, n, wire, Anomaly.BAD_LINK_HEADER)
        etype = (data[off + 2] << 8) | data[off + 3]
        off += 4
    if etype == ETH_PPPOE_SESSION:
        if off + 8 > n:
            return _cut(ts, n, wire, Anomaly.BAD_LINK_HEADER)
        ppp = (data[off + 6] << 8) | data[off + 7]
        off += 8
        etype = ETH_IPV4 if ppp == PPP_IPV4 else ETH_IPV6 if ppp == PPP_IPV6 else 0
    elif etype in ETH_MPLS:
        for _ in range(MAX_MPLS_LABELS):
            if off + 4 > n:
                return _cut(ts, n, wire, Anomaly.BAD_LINK_HEADER)
            bottom = data[off + 2] & 0x01
            off += 4
            if bottom:
                break
        else:
            return Skipped(ts, Anomaly.BAD_LINK_HEADER)
        if off >= n:
            return _cut(ts, n, wire, Anomaly.BAD_LINK_HEADER)
        version = data[off] >> 4  # no protocol field after MPLS: guess from the nibble
        etype = ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else 0
    return etype, off


def _address_family(data: bytes, big_endian: bool) -> int:
    """The AF_ value of a NULL/LOOP header; the other byte order is accepted too (files
    written on another machine, or by tools that got it wrong)."""
    first = int.from_bytes(data[:4], "big" if big_endian else "little")
    if first > 0xFFFF:
        return int.from_bytes(data[:4], "little" if big_endian else "big")
    return first


def _link_header(ts: float, linktype: int, data: bytes, wire: int) -> tuple[int, int] | Skipped:
    """(EtherType of the network layer, its offset) for every link type but untagged
    Ethernet, or why the frame is skipped."""
    n = len(data)
    if linktype == LINKTYPE_ETHERNET:  # only shorter than an Ethernet header gets here
        return _cut(ts, n, wire, Anomaly.BAD_LINK_HEADER)
    if linktype in LINKTYPE_RAW:
        if n == 0:
            return _cut(ts, n, wire, Anomaly.BAD_IP_HEADER)
        version = data[0] >> 4
        if version == 4:
            return ETH_IPV4, 0
        if version == 6:
            return ETH_IPV6, 0
        return Skipped(ts, Anomaly.BAD_IP_HEADER)
    if linktype == LINKTYPE_IPV4:
        return ETH_IPV4, 0
    if linktype == LINKTYPE_IPV6:
        return ETH_IPV6, 0
    if linktype in (LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2):
        size = 16 if linktype == LINKTYPE_LINUX_SLL else 20
        if n < size:
            return _cut(ts, n, wire, Anomaly.BAD_LINK_HEADER)
        if linktype == LINKTYPE_LINUX_SLL:
            hatype = (data[2] << 8) | data[3]
            etype = (data[14] << 8) | data[15]
        else:
            hatype = (data[8] << 8) | data[9]
            etype = (data[0] << 8) | data[1]
        if hatype == ARPHRD_NETLINK:
            return Skipped(ts, None)
        if etype in (ETH_IPV4, ETH_IPV6):
            return etype, size
        return _ethertype_chain(ts, data, etype, size, wire)
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if n < 4:
            return _cut(ts, n, wire, Anomaly.BAD_LINK_HEADER)
        family = _address_family(data, big_endian=linktype == LINKTYPE_LOOP)
        if family == AF_INET:
            return ETH_IPV4, 4
        if family in AF_INET6_VALUES:
            return ETH_IPV6, 4
        return Skipped(ts, None)
    return Skipped(ts, Anomaly.UNKNOWN_LINKTYPE)


def _ipv6(ts: float, data: bytes, off: int, wire: int) -> Decoded:
    n = len(data)
    if off + 40 > n:
        return _cut(ts, n, wire, Anomaly.BAD_IP_HEADER)
    if data[off] >> 4 != 6:
        return Skipped(ts, Anomaly.BAD_IP_HEADER)
    length = (data[off + 4] << 8) | data[off + 5]
    nxt = data[off + 6]
    src = data[off + 8 : off + 24]
    dst = data[off + 24 : off + 40]
    at = off + 40
    end = at + length if length or nxt != 0 else wire  # 0 after hop-by-hop: jumbogram
    if end > wire:
        return Skipped(ts, Anomaly.BAD_IP_HEADER)
    for _ in range(MAX_IPV6_EXT_HEADERS + 1):
        if nxt == IPPROTO_TCP:
            return _tcp_segment(ts, data, at, end, src, dst)
        if nxt == IPPROTO_UDP:
            return _udp_datagram(ts, data, at, end, src, dst)
        if nxt == IPPROTO_ICMPV6:
            return parse_icmp_unreachable(ts, data, at, end, src, v6=True)
        if nxt in IPV6_EXT_HEADERS:
            if at + 8 > end:  # every extension header is at least 8 bytes
                return Skipped(ts, Anomaly.BAD_IP_HEADER)
            if at + 8 > n:
                return _cut(ts, n, wire, Anomaly.BAD_IP_HEADER)
            if nxt == IPPROTO_FRAGMENT:
                if ((data[at + 2] << 8) | data[at + 3]) & 0xFFF9:  # offset, or more to come
                    return Skipped(ts, Anomaly.IP_FRAGMENT)
                size = 8
            elif nxt == IPPROTO_AH:
                size = (data[at + 1] + 2) << 2
            else:
                size = (data[at + 1] + 1) << 3
            nxt = data[at]
            at += size
            if at > end:
                return Skipped(ts, Anomaly.BAD_IP_HEADER)
        else:
            return Skipped(ts, None)  # ESP, no next header, other protocols
    return Skipped(ts, Anomaly.BAD_IP_HEADER)  # extension header chain beyond the limit


def _tcp_segment(
    ts: float, data: bytes, at: int, end: int, src: bytes, dst: bytes
) -> Segment | Skipped:
    """The TCP segment at ``at`` of an IP packet ending at ``end`` (may exceed the data)."""
    n = len(data)
    if at + 20 > end:
        return Skipped(ts, Anomaly.BAD_TCP_HEADER)
    if at + 20 > n:
        return Skipped(ts, Anomaly.SNAPLEN_TRUNCATED)
    start = at + ((data[at + 12] >> 4) << 2)
    if start < at + 20 or start > end:
        return Skipped(ts, Anomaly.BAD_TCP_HEADER)
    if end <= n:
        payload = data[start:end]
        truncated = False
    else:
        payload = data[start:n]
        truncated = True
    sport, dport, seq, ack, _offset, flags, window = _tcp(data, at)
    return _new(Segment, (ts, src, dst, sport, dport, seq, ack, flags, window, payload, truncated))


def _udp_datagram(
    ts: float, data: bytes, at: int, end: int, src: bytes, dst: bytes
) -> Datagram | Skipped:
    """The UDP datagram at ``at``; ``length`` is its payload length per its header."""
    if at + 8 > end:
        return Skipped(ts, Anomaly.BAD_UDP_HEADER)
    if at + 8 > len(data):
        return Skipped(ts, Anomaly.SNAPLEN_TRUNCATED)
    sport, dport, length = _udp(data, at)
    if length == 0:  # jumbogram (RFC 2675): the IP length rules
        length = end - at
    if length < 8 or at + length > end:
        return Skipped(ts, Anomaly.BAD_UDP_HEADER)
    stop = at + length
    truncated = stop > len(data)
    payload = data[at + 8 : stop]
    return _new(Datagram, (ts, src, dst, sport, dport, length - 8, payload, truncated))


def format_ip(addr: bytes) -> str:
    """Text form of a packed address: dotted IPv4, RFC 5952 compressed IPv6; other
    lengths (never produced by the decoder) as hex."""
    if len(addr) == 4:
        return socket.inet_ntop(socket.AF_INET, addr)
    if len(addr) == 16:
        return socket.inet_ntop(socket.AF_INET6, addr)
    return addr.hex()

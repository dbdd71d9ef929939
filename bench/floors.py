#!/usr/bin/env python3
"""Floors for the benchmark: the least work a Python reader of a capture can do.

What it does: ``dpkt`` walks the file with dpkt's reader and does nothing with the packets
(the cost of dpkt's record reading alone); ``struct`` reads the file in large blocks and,
per packet, unpacks only the record header and the Ethernet/IPv4/TCP header fields with
``struct.unpack_from`` (no slices, no objects) and counts packets per flow in a dict, which
is the least a fast path that recognises settled connections has to do. Both read pcap,
pcapng and gzip-compressed files. ``syn_tuples`` lists the SYNs of a capture for the corpus
cross-check.

What it does not do: IPv6, VLAN stacks deeper than one tag, or anything beyond headers; the
corpus is Ethernet/IPv4. Usage: ``python bench/floors.py {dpkt,struct} FILE``.
"""

from __future__ import annotations

import gzip
import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

BLOCK = 8 * 1024 * 1024
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
ETHERNET, RAW = 1, 101


def open_file(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def dpkt_loop(path: Path) -> int:
    """Iterate dpkt's reader over every record; return the number of records."""
    import dpkt

    n = 0
    with open_file(path) as f:
        magic = f.read(4)
        f.seek(0)
        reader = dpkt.pcapng.Reader(f) if magic == PCAPNG_MAGIC else dpkt.pcap.Reader(f)
        for _ts, _buf in reader:
            n += 1
    return n


def _blocks(f: BinaryIO) -> Iterator[bytes]:
    while chunk := f.read(BLOCK):
        yield chunk


def records(path: Path) -> Iterator[tuple[int, bytes, int, int]]:
    """(link type, buffer, offset, captured length) per packet, pcap or pcapng."""
    with open_file(path) as f:
        head = f.read(24)
        if head[:4] == PCAPNG_MAGIC:
            yield from _pcapng(f, head)
        else:
            yield from _pcap(f, head)


def _pcap(f: BinaryIO, head: bytes) -> Iterator[tuple[int, bytes, int, int]]:
    order = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    linktype = struct.unpack_from(order + "I", head, 20)[0] & 0xFFFF
    unpack = struct.Struct(order + "8xI4x").unpack_from
    rest = b""
    for chunk in _blocks(f):
        buf = rest + chunk
        pos, end = 0, len(buf)
        while pos + 16 <= end:
            (caplen,) = unpack(buf, pos)
            if pos + 16 + caplen > end:
                break
            yield linktype, buf, pos + 16, caplen
            pos += 16 + caplen
        rest = buf[pos:]


def _pcapng(f: BinaryIO, head: bytes) -> Iterator[tuple[int, bytes, int, int]]:
    order = "<" if head[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    block = struct.Struct(order + "II").unpack_from
    u32 = struct.Struct(order + "I").unpack_from
    u16 = struct.Struct(order + "H").unpack_from
    links: list[int] = []
    rest = head
    for chunk in _blocks(f):
        buf = rest + chunk
        pos, end = 0, len(buf)
        while pos + 8 <= end:
            kind, total = block(buf, pos)
            if total < 12 or pos + total > end:
                break
            if kind == 6:  # Enhanced Packet Block
                (iface,) = u32(buf, pos + 8)
                (caplen,) = u32(buf, pos + 20)
                yield links[iface], buf, pos + 28, caplen
            elif kind == 1:  # Interface Description Block
                links.append(u16(buf, pos + 8)[0])
            elif kind == 0x0A0D0D0A:
                links = []
            pos += total
        rest = buf[pos:]


def struct_walk(path: Path) -> tuple[int, int, int]:
    """Header walk with a per-flow packet count; (packets, TCP packets, flows)."""
    ip_head = struct.Struct("!BxxxxxxxBxxII").unpack_from
    tcp_head = struct.Struct("!HHxxxxxxxxxB").unpack_from
    ether_type = struct.Struct("!H").unpack_from
    flows: dict[tuple[int, int, int, int], int] = {}
    get = flows.get
    packets = tcp = 0
    for linktype, buf, off, _caplen in records(path):
        packets += 1
        if linktype == ETHERNET:
            (etype,) = ether_type(buf, off + 12)
            ip = off + 14
            if etype == 0x8100:
                (etype,) = ether_type(buf, off + 16)
                ip = off + 18
            if etype != 0x0800:
                continue
        elif linktype == RAW:
            ip = off
        else:
            continue
        vihl, proto, src, dst = ip_head(buf, ip)
        if proto != 6:
            continue
        sport, dport, _flags = tcp_head(buf, ip + (vihl & 15) * 4)
        tcp += 1
        key = (src, sport, dst, dport) if src < dst else (dst, dport, src, sport)
        flows[key] = get(key, 0) + 1
    return packets, tcp, len(flows)


def syn_tuples(path: Path) -> dict[tuple[str, int, str, int], int]:
    """(client ip, port, server ip, port) -> distinct initial sequence numbers of its SYNs."""
    found: dict[tuple[str, int, str, int], set[int]] = {}
    for linktype, buf, off, _caplen in records(path):
        if linktype != ETHERNET or buf[off + 12:off + 14] != b"\x08\x00":
            continue
        ip = off + 14
        if buf[ip + 9] != 6:
            continue
        t = ip + (buf[ip] & 15) * 4
        sport, dport, seq, _ack, _off, flags = struct.unpack_from("!HHIIBB", buf, t)
        if flags & 0x12 == 0x02:  # SYN without ACK
            key = (socket.inet_ntoa(buf[ip + 12:ip + 16]), sport,
                   socket.inet_ntoa(buf[ip + 16:ip + 20]), dport)
            found.setdefault(key, set()).add(seq)
    return {k: len(v) for k, v in found.items()}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("dpkt", "struct"):
        print("usage: floors.py {dpkt,struct} FILE", file=sys.stderr)
        return 2
    path = Path(argv[1])
    if argv[0] == "dpkt":
        print(dpkt_loop(path))
    else:
        print(*struct_walk(path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

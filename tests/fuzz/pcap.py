"""Small pcap tools for the robustness tests: read, damage and write classic pcap files.

Only what the tests need: little-endian microsecond pcap (what the samples are), Ethernet
frames with IPv4/IPv6 and TCP, built and patched with ``struct``, never with dpkt objects,
so damaged bytes stay exactly as written.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

PCAP_HEADER = struct.Struct("<IHHiIII")
RECORD = struct.Struct("<IIII")
MAGIC_LE_USEC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
ETH_IPV4 = b"\x08\x00"
ETH_IPV6 = b"\x86\xdd"

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


@dataclass(frozen=True, slots=True)
class Packet:
    """One pcap record."""

    sec: int
    usec: int
    data: bytes
    wirelen: int

    @property
    def ts(self) -> float:
        return self.sec + self.usec / 1e6


def file_header(linktype: int = LINKTYPE_ETHERNET, snaplen: int = 262144) -> bytes:
    return PCAP_HEADER.pack(MAGIC_LE_USEC, 2, 4, 0, 0, snaplen, linktype)


def read_pcap(data: bytes) -> tuple[bytes, list[Packet]]:
    """The file header and the records of a little-endian classic pcap."""
    assert data[:4] == b"\xd4\xc3\xb2\xa1", "little-endian microsecond pcap expected"
    packets = []
    pos = PCAP_HEADER.size
    while pos + RECORD.size <= len(data):
        sec, usec, caplen, wirelen = RECORD.unpack_from(data, pos)
        start = pos + RECORD.size
        packets.append(Packet(sec, usec, data[start : start + caplen], wirelen))
        pos = start + caplen
    return data[: PCAP_HEADER.size], packets


def record_bytes(p: Packet) -> bytes:
    return RECORD.pack(p.sec, p.usec, len(p.data), p.wirelen) + p.data


def write_pcap(header: bytes, packets: list[Packet]) -> bytes:
    return header + b"".join(record_bytes(p) for p in packets)


def record_offsets(header: bytes, packets: list[Packet]) -> list[int]:
    """File offset of each record header, and of the end of the file last."""
    offsets = [len(header)]
    for p in packets:
        offsets.append(offsets[-1] + RECORD.size + len(p.data))
    return offsets


# --- inside an Ethernet frame ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TCPView:
    """Where the headers of an Ethernet/IP/TCP frame are, and what they say."""

    ip: int
    """Offset of the IP header."""
    version: int
    tcp: int
    """Offset of the TCP header."""
    payload: int
    """Offset of the TCP payload."""
    src: bytes
    dst: bytes
    sport: int
    dport: int
    seq: int
    flags: int

    @property
    def key(self) -> tuple[bytes, int, bytes, int]:
        """The 4-tuple in a canonical order (the same for both directions)."""
        a, b = (self.src, self.sport), (self.dst, self.dport)
        lo, hi = sorted((a, b))
        return (lo[0], lo[1], hi[0], hi[1])


def tcp_view(frame: bytes) -> TCPView | None:
    """The TCP headers of an untagged Ethernet frame, or None."""
    if len(frame) < 14:
        return None
    ethertype, ip = frame[12:14], 14
    if ethertype == ETH_IPV4:
        if len(frame) < ip + 20 or frame[ip + 9] != 6:
            return None
        tcp = ip + (frame[ip] & 0x0F) * 4
        src, dst, version = frame[ip + 12 : ip + 16], frame[ip + 16 : ip + 20], 4
    elif ethertype == ETH_IPV6:
        if len(frame) < ip + 40 or frame[ip + 6] != 6:
            return None
        tcp = ip + 40
        src, dst, version = frame[ip + 8 : ip + 24], frame[ip + 24 : ip + 40], 6
    else:
        return None
    if len(frame) < tcp + 20:
        return None
    sport, dport, seq = struct.unpack_from("!HHI", frame, tcp)
    payload = tcp + (frame[tcp + 12] >> 4) * 4
    return TCPView(ip, version, tcp, payload, src, dst, sport, dport, seq, frame[tcp + 13])


def patch(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new) :]


def set_payload(p: Packet, view: TCPView, payload: bytes) -> Packet:
    """The packet with its TCP payload replaced and the IP length fixed."""
    data = p.data[: view.payload] + payload
    if view.version == 4:
        data = patch(data, view.ip + 2, struct.pack("!H", len(data) - view.ip))
    else:
        data = patch(data, view.ip + 4, struct.pack("!H", len(data) - view.ip - 40))
    return replace(p, data=data, wirelen=len(data))


# --- building frames from scratch ---------------------------------------------------------

MAC_CLIENT = bytes.fromhex("020000000001")
MAC_SERVER = bytes.fromhex("020000000002")


def ipv4_tcp(
    src: bytes,
    dst: bytes,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
    *,
    ethernet: bool = True,
) -> bytes:
    """An IPv4/TCP frame (checksums left zero: the analyzer does not check them)."""
    tcp = struct.pack(
        "!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0
    )
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000, 64, 6, 0, src, dst
    )
    frame = ip + tcp + payload
    return (MAC_SERVER + MAC_CLIENT + ETH_IPV4 + frame) if ethernet else frame


class Conversation:
    """Builds one TCP connection's packets in order: client and server sides, sequence
    and acknowledgement numbers kept, one timestamp step per packet."""

    def __init__(
        self,
        client: tuple[bytes, int],
        server: tuple[bytes, int],
        *,
        t0: float = 1_700_000_000.0,
        step: float = 0.001,
        isn: tuple[int, int] = (1000, 5000),
    ) -> None:
        self.client, self.server = client, server
        self.t, self.step = t0, step
        self.seq = {True: isn[0], False: isn[1]}
        self.packets: list[Packet] = []

    def send(self, from_client: bool, flags: int, payload: bytes = b"") -> Packet:
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        ack = self.seq[not from_client] if flags & ACK else 0
        frame = ipv4_tcp(src[0], dst[0], src[1], dst[1], self.seq[from_client], ack, flags, payload)
        self.seq[from_client] += len(payload) + (1 if flags & (SYN | FIN) else 0)
        sec = int(self.t)
        packet = Packet(sec, round((self.t - sec) * 1e6), frame, len(frame))
        self.t += self.step
        self.packets.append(packet)
        return packet

    def handshake(self) -> None:
        self.send(True, SYN)
        self.send(False, SYN | ACK)
        self.send(True, ACK)

    def data(self, from_client: bool, payload: bytes) -> None:
        self.send(from_client, PSH | ACK, payload)
        self.send(not from_client, ACK)


def tls_record(content_type: int, payload: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", content_type, version, len(payload)) + payload

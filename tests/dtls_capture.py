"""A DTLS capture built here, for the tests that need many associations without root:
workers and Dask against one process, the damaged-file suite, a spoofed ClientHello
flood.

Each association is a DTLS 1.2 conversation of one kind (:data:`KINDS`), its datagrams
built from the commented-hex fixtures of :mod:`tests.dtls_fixtures` (RFC 6347 records,
handshake fragments, the cookie exchange), wrapped in Ethernet/IPv4/UDP by dpkt. Clients
have addresses and ports of their own; associations start 0.37 s apart and every
twentieth waits 90 s, so connections still in their handshake expire by packet time in
the middle of the file (``HANDSHAKE_IDLE_TIMEOUT``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import dpkt

from analyzer.tls.enums import ContentType, HandshakeType
from tests.dtls_fixtures import (
    SERVER_HELLO_BODY,
    SKE_BODY,
    client_hello_body,
    fragment,
    fragments,
    record,
)

SERVER = "192.0.2.10"
PORT = 4433
COOKIE = bytes(range(16))
HVR_BODY = b"\xfe\xff" + bytes([len(COOKIE)]) + COOKIE
KINDS = (
    "established",
    "alert",
    "unanswered",
    "cookie_unanswered",
    "flight_lost",
    "refused",
    "spoofed",
    "cookie_refused",
)
"""What each association does, in turn: a full handshake with the cookie exchange and
data; a handshake_failure alert after the ClientHello; a ClientHello resent into silence;
a HelloVerifyRequest never answered (the client resends its first hello); a server
flight in 1400-byte datagrams resent while the client resends its hello; a ClientHello
answered by ICMP port unreachable from the server's address; one ClientHello and its
HelloVerifyRequest, then nothing (a spoofed source); the hello with the cookie resent
into silence (the server refused the cookie)."""
ICMP = b"icmp"
"""In a conversation, a datagram whose payload is this marker stands for the server's
ICMP port unreachable quoting the client's first datagram."""

Datagram = tuple[float, bool, bytes]
"""(seconds from the association's start, sent by the client?, UDP payload)."""


class _Seq:
    """Record sequence numbers of one side (RFC 6347 §4.1: one per record, per epoch)."""

    def __init__(self) -> None:
        self.n = {0: 0, 1: 0}

    def rec(self, ctype: int, payload: bytes, epoch: int = 0) -> bytes:
        out = record(ctype, payload, epoch=epoch, seq=self.n[epoch])
        self.n[epoch] += 1
        return out


def _hs(seq: _Seq, msg_type: int, msg_seq: int, body: bytes) -> bytes:
    return seq.rec(ContentType.handshake, fragment(msg_type, msg_seq, body))


def conversation(kind: str) -> list[Datagram]:
    """The datagrams of one association of ``kind``."""
    c, s = _Seq(), _Seq()
    ch = client_hello_body()
    out: list[Datagram] = [(0.0, True, _hs(c, HandshakeType.client_hello, 0, ch))]
    if kind == "refused":
        return [*out, (0.0005, False, ICMP)]
    if kind == "unanswered":
        return out + [(t, True, _hs(c, HandshakeType.client_hello, 0, ch)) for t in (1.0, 3.0)]
    if kind == "alert":
        return [*out, (0.001, False, s.rec(ContentType.alert, b"\x02("))]
    out.append((0.001, False, _hs(s, HandshakeType.hello_verify_request, 0, HVR_BODY)))
    if kind == "spoofed":
        return out
    if kind == "cookie_refused":
        again = [_hs(c, HandshakeType.client_hello, 1, client_hello_body(COOKIE)) for _ in "abc"]
        return out + [(t, True, d) for t, d in zip((0.002, 1.002, 3.002), again, strict=True)]
    if kind == "cookie_unanswered":
        for t in (1.0, 3.0):
            out.append((t, True, _hs(c, HandshakeType.client_hello, 0, ch)))
            out.append((t + 0.001, False, _hs(s, HandshakeType.hello_verify_request, 0, HVR_BODY)))
        return out
    out.append((0.002, True, _hs(c, HandshakeType.client_hello, 1, client_hello_body(COOKIE))))
    if kind == "flight_lost":
        padded = SERVER_HELLO_BODY[:-7] + b"\x05\x7c\xff\x01\x05\x78" + bytes(1400)
        for t in (0.003, 1.003, 3.003):
            flight = [s.rec(ContentType.handshake, f)
                      for f in fragments(HandshakeType.server_hello, 1, padded, 1380)]
            out += [(t, False, d) for d in flight]
            if t > 1:
                out.append((t - 0.003, True, _hs(c, HandshakeType.client_hello, 1,
                                                 client_hello_body(COOKIE))))
        return sorted(out, key=lambda d: d[0])
    flight = (
        _hs(s, HandshakeType.server_hello, 1, SERVER_HELLO_BODY)
        + _hs(s, HandshakeType.server_key_exchange, 2, SKE_BODY)
        + _hs(s, HandshakeType.server_hello_done, 3, b"")
    )
    out.append((0.003, False, flight))
    client_final = (
        _hs(c, HandshakeType.client_key_exchange, 2, b"\x04" + bytes(4))
        + c.rec(ContentType.change_cipher_spec, b"\x01")
        + c.rec(ContentType.handshake, bytes(40), epoch=1)
    )
    out.append((0.004, True, client_final))
    server_final = s.rec(ContentType.change_cipher_spec, b"\x01") + s.rec(
        ContentType.handshake, bytes(40), epoch=1
    )
    out.append((0.005, False, server_final))
    out.append((0.006, True, c.rec(ContentType.application_data, bytes(100), epoch=1)))
    out.append((0.007, False, c.rec(ContentType.application_data, bytes(300), epoch=1)))
    return out


def frame(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    """An Ethernet/IPv4/UDP frame."""
    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(
        src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=dpkt.ip.IP_PROTO_UDP, data=udp
    )
    ip.len = len(ip)
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip))


def unreachable(quoted: bytes) -> bytes:
    """The receiver's ICMP port unreachable (RFC 792: type 3, code 3) quoting the IPv4
    header and first 8 bytes of the Ethernet frame ``quoted``."""
    ip = dpkt.ethernet.Ethernet(quoted).data
    head = bytes(ip)[: ip.hl * 4 + 8]
    icmp = dpkt.icmp.ICMP(type=3, code=3, data=dpkt.icmp.ICMP.Unreach(data=head))
    out = dpkt.ip.IP(src=ip.dst, dst=ip.src, p=dpkt.ip.IP_PROTO_ICMP, data=icmp)
    out.len = len(out)
    return bytes(dpkt.ethernet.Ethernet(src=b"\x04" * 6, dst=b"\x02" * 6, data=out))


Damage = Callable[[list[Datagram]], list[Datagram]]
"""Rewrites one association's datagrams (the damaged-file suite)."""


def packets(
    associations: int, start: float = 1_795_600_000.0, damage: dict[int, Damage] | None = None
) -> Iterator[tuple[float, bytes]]:
    """(time, frame) of ``associations`` associations, interleaved in time order;
    ``damage`` rewrites the datagrams of the associations it names (by index)."""
    items: list[tuple[float, int, bytes]] = []
    at = start
    for n in range(associations):
        client = client_address(n)
        sport = 40000 + n % 20000
        talk = conversation(KINDS[n % len(KINDS)])
        if damage and n in damage:
            talk = damage[n](talk)
        for t, from_client, payload in talk:
            src, sp, dst, dp = (client, sport, SERVER, PORT) if from_client else (
                SERVER, PORT, client, sport)
            if payload == ICMP:
                buf = unreachable(frame(client, sport, SERVER, PORT, talk[0][2]))
            else:
                buf = frame(src, sp, dst, dp, payload)
            items.append((at + t, len(items), buf))
        at += 90.0 if n % 20 == 19 else 0.37
    items.sort()
    for ts, _, buf in items:
        yield ts, buf


def client_address(n: int) -> str:
    """The client address of association ``n``."""
    return f"10.{20 + n // 60000}.{n // 250 % 240}.{n % 250 + 1}"


def write_pcap(
    path: Path, associations: int = 100, damage: dict[int, Damage] | None = None
) -> Path:
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=65535, linktype=1, nano=False)
        for ts, buf in packets(associations, damage=damage):
            writer.writepkt(buf, ts=ts)
    return path

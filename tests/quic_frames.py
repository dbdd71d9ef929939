"""QUIC connections between a real aioquic client and server, run in memory, as frames.

What it does: :func:`exchange` drives one aioquic client and one aioquic server
(``aioquic.quic.connection.QuicConnection``, the library's sans-IO core) against each
other on a simulated clock: every datagram one sends is handed to the other unless the
scenario drops it, timers fire when nothing else happens (so an unanswered client repeats
its Initial as aioquic does), and each datagram is kept with its time and direction.
:func:`udp_frame` and :func:`icmp_unreachable` wrap datagrams in Ethernet/IPv4 frames the
engine reads; :func:`write_pcap` writes them to a capture file.

Truth comes from the peers: :class:`Exchange` keeps what each of them reported (handshake
done, the close it received). No network, no root: the tests that need the kernel's
behaviour (ICMP, iptables, browsers) use namespaces instead.
"""

from __future__ import annotations

import io
import ipaddress
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dpkt

from analyzer.sources.base import Frame

T0 = float(int(time.time()))
"""Packet time starts now: the test PKI's certificates are valid from the moment they are
made."""
CLIENT = ("10.99.0.2", 50_000)
SERVER = ("10.99.0.1", 443)
HOST = "www.example.com"
FLIGHT_GAP = 0.002
"""Seconds between a datagram being sent and the answer it triggers (a LAN round trip)."""


@dataclass
class Exchange:
    """One simulated connection: its datagrams and what each peer reported."""

    datagrams: list[tuple[float, bool, bytes]] = field(default_factory=list)
    """``(ts, from_client, payload)`` in the order sent."""
    client_events: list[Any] = field(default_factory=list)
    server_events: list[Any] = field(default_factory=list)
    keylog: str = ""
    """The client's key log (NSS format), when asked for."""

    def reported(self, side: str, kind: type) -> list[Any]:
        events = self.client_events if side == "client" else self.server_events
        return [e for e in events if isinstance(e, kind)]


def exchange(
    cert: Path,
    key: Path,
    *,
    cafile: Path | None = None,
    sni: str = HOST,
    client_alpn: Sequence[str] = ("h3",),
    server_alpn: Sequence[str] = ("h3",),
    versions: Sequence[int] = (0x00000001,),
    drop_server: bool = False,
    keylog: bool = False,
    duration: float = 3.0,
    pings: int = 1,
) -> Exchange:
    """Run one connection for ``duration`` simulated seconds (or until both peers are
    quiet). ``drop_server``: nothing reaches the server (a firewall dropping UDP);
    ``pings``: PINGs the client sends once the handshake is done, one each time the
    connection is quiet (each costs a datagram each way)."""
    from aioquic.buffer import Buffer
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection
    from aioquic.quic.packet import pull_quic_header

    out = Exchange()
    log = io.StringIO()
    cconf = QuicConfiguration(is_client=True, alpn_protocols=list(client_alpn),
                              server_name=sni, supported_versions=list(versions))
    if cafile is not None:
        cconf.load_verify_locations(str(cafile))
    if keylog:
        cconf.secrets_log_file = log
    sconf = QuicConfiguration(is_client=False, alpn_protocols=list(server_alpn),
                              supported_versions=list(versions))
    sconf.load_cert_chain(str(cert), str(key))
    client = QuicConnection(configuration=cconf)
    server: Any = None
    now = T0
    client.connect(SERVER, now=now)
    pinged = 0
    while now < T0 + duration:
        moved = False
        for data, _ in client.datagrams_to_send(now=now):
            out.datagrams.append((now, True, data))
            moved = True
            if drop_server:
                continue
            if server is None:
                header = pull_quic_header(Buffer(data=data), host_cid_length=8)
                server = QuicConnection(configuration=sconf,
                                        original_destination_connection_id=header.destination_cid)
            server.receive_datagram(data, CLIENT, now=now + FLIGHT_GAP / 2)
        if server is not None:
            for data, _ in server.datagrams_to_send(now=now + FLIGHT_GAP / 2):
                out.datagrams.append((now + FLIGHT_GAP / 2, False, data))
                moved = True
                client.receive_datagram(data, SERVER, now=now + FLIGHT_GAP)
        _drain(client, out.client_events)
        if server is not None:
            _drain(server, out.server_events)
        now += FLIGHT_GAP
        if not moved and pinged < pings and any(type(e).__name__ == "HandshakeCompleted"
                                                for e in out.client_events):
            pinged += 1
            client.send_ping(pinged)
            continue
        if not moved:
            timers = [t for t in (client.get_timer(), server.get_timer() if server else None)
                      if t is not None]
            if not timers:
                break
            now = max(now, min(timers))
            if now >= T0 + duration:
                break
            if client.get_timer() is not None and client.get_timer() <= now:
                client.handle_timer(now=now)
            if server is not None and server.get_timer() is not None \
                    and server.get_timer() <= now:
                server.handle_timer(now=now)
    out.keylog = log.getvalue()
    return out


def _drain(conn: Any, into: list[Any]) -> None:
    while (event := conn.next_event()) is not None:
        into.append(event)


# -- frames --------------------------------------------------------------------------------

_MACS = (b"\x02\x00\x00\x00\x00\x02", b"\x02\x00\x00\x00\x00\x01")


def udp_frame(ts: float, src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> Frame:
    """An Ethernet/IPv4/UDP frame carrying ``payload``."""
    udp = dpkt.udp.UDP(sport=src[1], dport=dst[1], data=payload)
    udp.ulen = 8 + len(payload)
    ip = dpkt.ip.IP(src=socket.inet_aton(src[0]), dst=socket.inet_aton(dst[0]),
                    p=dpkt.ip.IP_PROTO_UDP, ttl=64, data=udp)
    ip.len = 20 + udp.ulen
    eth = dpkt.ethernet.Ethernet(src=_MACS[0], dst=_MACS[1], type=dpkt.ethernet.ETH_TYPE_IP,
                                 data=ip)
    data = bytes(eth)
    return Frame(ts, 1, data, len(data))


def icmp_unreachable(ts: float, quoted: Frame, *, sender: str, code: int = 3) -> Frame:
    """An ICMP destination-unreachable error (port unreachable by default) from
    ``sender``, quoting the IP packet of ``quoted`` (its header and 64 bytes after it)."""
    eth = dpkt.ethernet.Ethernet(quoted.data)
    inner = bytes(eth.data)[:20 + 64]
    icmp = dpkt.icmp.ICMP(type=3, code=code, data=dpkt.icmp.ICMP.Unreach(data=inner))
    orig = eth.data
    ip = dpkt.ip.IP(src=socket.inet_aton(sender), dst=orig.src, p=dpkt.ip.IP_PROTO_ICMP,
                    ttl=64, data=icmp)
    ip.len = 20 + len(bytes(icmp))
    frame = dpkt.ethernet.Ethernet(src=_MACS[1], dst=_MACS[0], type=dpkt.ethernet.ETH_TYPE_IP,
                                   data=ip)
    data = bytes(frame)
    return Frame(ts, 1, data, len(data))


def frames(
    datagrams: Iterable[tuple[float, bool, bytes]],
    client: tuple[str, int] = CLIENT,
    server: tuple[str, int] = SERVER,
) -> list[Frame]:
    """The datagrams of an exchange as frames between ``client`` and ``server``."""
    return [udp_frame(ts, client, server, data) if from_client
            else udp_frame(ts, server, client, data) for ts, from_client, data in datagrams]


def write_pcap(path: Path, frame_list: Iterable[Frame]) -> Path:
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=1, nano=False)
        for frame in frame_list:
            writer.writepkt(frame.data, frame.ts)
    return path


def address(text: str) -> bytes:
    return ipaddress.ip_address(text).packed

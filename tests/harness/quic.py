"""QUIC peers made with aioquic, and QUIC connections read back from a capture.

What it does:

- ``python -m tests.harness.quic server|client ...`` runs a small aioquic server or
  client (no HTTP: the TLS handshake, a PING each way, then a close), writes its TLS key
  log when asked (``--keylog``) and prints what it saw as one JSON object per line
  (``ready``, ``handshake``, ``closed``, ``result``). :func:`start_server` and
  :func:`run_client` run them inside a namespace and return that JSON.
- :func:`udp_flows` lists the UDP flows of a capture, oriented client → server (the side
  that sent the first datagram), with their datagrams in order; :func:`parse_flow` feeds
  one to :class:`analyzer.quic.QuicConnectionParser`.
- :func:`tshark_quic` is the second opinion: tshark's QUIC fields per packet.

What it does not do: HTTP/3, or anything outside the namespaces it is given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.capture import open_capture, packets
from tests.harness.netns import Netns
from tests.harness.servers import Server

READY_TIMEOUT = 10.0
VERSIONS = {"v1": 0x00000001, "v2": 0x6B3343CF}


# -- reading captures back ------------------------------------------------------------------


@dataclass(slots=True)
class UdpFlow:
    """One UDP 4-tuple, oriented: the client sent the first datagram."""

    client: tuple[str, int]
    server: tuple[str, int]
    datagrams: list[tuple[float, bool, bytes]] = field(default_factory=list)
    """``(ts, from_client, payload)`` in capture order."""


def _ip_packets(path: Path) -> Iterator[tuple[float, Any]]:
    """Like :func:`tests.harness.capture.packets`, also for BSD loopback (NULL/LOOP)."""
    import dpkt

    with path.open("rb") as f:
        reader = open_capture(f)
        if reader.datalink() not in (0, 108):
            yield from packets(path)
            return
        for ts, buf in reader:
            raw = buf[4:]
            if raw and raw[0] >> 4 in (4, 6):
                yield float(ts), dpkt.ip.IP(raw) if raw[0] >> 4 == 4 else dpkt.ip6.IP6(raw)


def udp_flows(path: Path) -> list[UdpFlow]:
    """Every UDP flow of a capture, in order of first datagram."""
    import dpkt

    flows: dict[tuple[tuple[str, int], tuple[str, int]], UdpFlow] = {}
    try:
        for ts, ip in _ip_packets(path):
            _add_datagram(flows, ts, ip)
    except (dpkt.dpkt.NeedData, dpkt.dpkt.UnpackError, ValueError):
        pass  # a capture cut short: the flows read so far
    return list(flows.values())


def _add_datagram(flows: dict[tuple[tuple[str, int], tuple[str, int]], UdpFlow], ts: float,
                  ip: Any) -> None:
    import dpkt

    udp = ip.data
    if not isinstance(udp, dpkt.udp.UDP):
        return
    family = socket.AF_INET6 if len(ip.src) == 16 else socket.AF_INET
    src = (socket.inet_ntop(family, ip.src), udp.sport)
    dst = (socket.inet_ntop(family, ip.dst), udp.dport)
    flow = flows.get((src, dst))
    if flow is not None:
        flow.datagrams.append((ts, True, bytes(udp.data)))
        return
    flow = flows.get((dst, src))
    if flow is not None:
        flow.datagrams.append((ts, False, bytes(udp.data)))
        return
    flows[(src, dst)] = UdpFlow(client=src, server=dst, datagrams=[(ts, True, bytes(udp.data))])


def parse_flow(flow: UdpFlow, secrets: dict[str, bytes] | None = None) -> tuple[Any, list[Any]]:
    """Feed a flow to a fresh parser: ``(parser, events)``. ``secrets`` is a key log as
    :func:`read_keylog` returns it: the ``CLIENT_HANDSHAKE_TRAFFIC_SECRET`` and
    ``SERVER_HANDSHAKE_TRAFFIC_SECRET`` of each ClientHello's random are installed as soon
    as that ClientHello is seen, as the engine will do."""
    from analyzer.quic import QuicConnectionParser
    from analyzer.tls.events import HandshakeMsg
    from analyzer.tls.messages import ClientHello

    parser = QuicConnectionParser(await_secrets=secrets is not None)
    events: list[Any] = []
    for ts, from_client, payload in flow.datagrams:
        new = parser.datagram(from_client, payload, ts)
        events += new
        for event in new:
            if secrets and isinstance(event, HandshakeMsg) and isinstance(event.parsed,
                                                                          ClientHello):
                random = event.parsed.random.hex()
                for label, from_client_side in (("CLIENT_HANDSHAKE_TRAFFIC_SECRET", True),
                                                ("SERVER_HANDSHAKE_TRAFFIC_SECRET", False)):
                    secret = secrets.get(f"{label} {random}")
                    if secret is not None:
                        events += parser.install_handshake_secret(from_client_side, secret)
    return parser, events


def read_keylog(path: Path) -> dict[str, bytes]:
    """``"LABEL client_random_hex"`` → secret, from an NSS key log file."""
    found: dict[str, bytes] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and not line.startswith("#"):
            found[f"{parts[0]} {parts[1].lower()}"] = bytes.fromhex(parts[2])
    return found


TSHARK_FIELDS = (
    "frame.number", "udp.srcport", "udp.dstport", "quic.version", "quic.long.packet_type",
    "quic.dcid", "quic.scid", "tls.handshake.type", "tls.handshake.extensions_server_name",
    "tls.handshake.extensions_alpn_str", "quic.cc.error_code", "quic.cc.frame_type",
    "quic.cc.reason_phrase", "quic.supported_version", "quic.retry_token",
    "quic.retry_integrity_tag", "tls.handshake.ja3", "tls.handshake.certificate",
)


def tshark_quic(path: Path, keylog: Path | None = None) -> list[dict[str, list[str]]]:
    """tshark's QUIC fields, one dict per QUIC frame (each field a list of values)."""
    argv = ["tshark", "-r", str(path), "-Y", "quic", "-T", "fields", "-E", "occurrence=a",
            "-E", "aggregator=|", "-o", "tls.desegment_ssl_records:TRUE"]
    if keylog is not None:
        argv += ["-o", f"tls.keylog_file:{keylog}"]
    for name in TSHARK_FIELDS:
        argv += ["-e", name]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout
    rows = []
    for line in out.splitlines():
        values = line.split("\t")
        rows.append({name: [v for v in value.split("|") if v]
                     for name, value in zip(TSHARK_FIELDS, values, strict=False)})
    return rows


# -- building packets with aioquic's protection (for fixtures the wire rarely shows) --------


def varint(value: int) -> bytes:
    """RFC 9000 §16 encoding, shortest form."""
    for length, prefix in ((1, 0x00), (2, 0x40), (4, 0x80), (8, 0xC0)):
        if value < 1 << (8 * length - 2):
            return (value | prefix << (8 * length - 8)).to_bytes(length, "big")
    raise ValueError(value)


def crypto_frame(offset: int, data: bytes) -> bytes:
    """A CRYPTO frame (RFC 9000 §19.6)."""
    return b"\x06" + varint(offset) + varint(len(data)) + data


def close_frame(code: int, reason: bytes = b"", frame_type: int = 0) -> bytes:
    """A CONNECTION_CLOSE frame of type 0x1c (RFC 9000 §19.19)."""
    return b"\x1c" + varint(code) + varint(frame_type) + varint(len(reason)) + reason


def long_packet(frames: bytes, *, key_dcid: bytes, dcid: bytes | None = None,
                scid: bytes = b"\x01\x02\x03\x04", from_client: bool = True,
                packet_number: int = 0, version: int = 0x00000001, token: bytes = b"",
                pad_to: int = 0) -> bytes:
    """An Initial packet protected by aioquic with keys from ``key_dcid`` (the client's
    first DCID); ``dcid`` defaults to it. ``pad_to`` adds PADDING up to that packet size."""
    from aioquic.quic.crypto import CryptoPair

    dcid = key_dcid if dcid is None else dcid
    type_bits = 0x01 if version == VERSIONS["v2"] else 0x00
    first = 0xC0 | type_bits << 4 | 0x03  # 4-byte packet number
    head = (bytes([first]) + version.to_bytes(4, "big") + bytes([len(dcid)]) + dcid
            + bytes([len(scid)]) + scid + varint(len(token)) + token)
    overhead = len(head) + 2 + 4 + 16
    if pad_to > overhead + len(frames):
        frames += bytes(pad_to - overhead - len(frames))
    length = (0x4000 | (4 + len(frames) + 16)).to_bytes(2, "big")  # 2-byte varint
    header = head + length + packet_number.to_bytes(4, "big")
    pair = CryptoPair()
    pair.setup_initial(cid=key_dcid, is_client=from_client, version=version)
    return pair.encrypt_packet(header, frames, packet_number)


# -- running peers in namespaces ------------------------------------------------------------


def _module_argv(role: str, args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "tests.harness.quic", role, *args]


def start_server(ns: Netns, workdir: Path, args: Sequence[str], *, name: str = "aioquic") -> Server:
    """An aioquic server in ``ns`` (stop it with ``.stop()``); returns once it listens."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = Server(ns, name, _module_argv("server", args), workdir=workdir)
    deadline = time.monotonic() + READY_TIMEOUT
    while '"ready"' not in server.text():
        if server.proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"aioquic server did not start: {server.text()[-2000:]}")
        time.sleep(0.05)
    return server


def run_client(ns: Netns, args: Sequence[str], *, timeout: float = 30.0) -> dict[str, Any]:
    """Run the aioquic client in ``ns`` to completion; its ``result`` object."""
    run = ns.run(_module_argv("client", args), timeout=timeout)
    for line in reversed(run.stdout.splitlines()):
        if line.startswith("{"):
            found: dict[str, Any] = json.loads(line)
            return found
    raise RuntimeError(f"aioquic client printed no result: {run.summary()}\n{run.output[-2000:]}")


def server_lines(server: Server) -> list[dict[str, Any]]:
    """The JSON objects the server printed so far."""
    return [json.loads(line) for line in server.stdout_path.read_text().splitlines()
            if line.startswith("{")]


# -- the peers themselves (run as ``python -m tests.harness.quic``) -------------------------


def _emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def _configuration(args: argparse.Namespace, *, is_client: bool) -> Any:
    from aioquic.quic.configuration import QuicConfiguration

    config = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=args.alpn.split(",") if args.alpn else None,
        supported_versions=[VERSIONS.get(v) or int(v, 16) for v in args.versions.split(",")],
        idle_timeout=args.idle,
    )
    if args.keylog:
        config.secrets_log_file = open(args.keylog, "a")  # noqa: SIM115 (lives as long as the peer)
    return config


def _protocol_class() -> Any:
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted

    class Peer(QuicConnectionProtocol):  # type: ignore[misc]
        """Reports handshake completion and termination as JSON lines."""

        terminated: dict[str, Any] | None = None
        handshake: dict[str, Any] | None = None

        def quic_event_received(self, event: Any) -> None:
            if isinstance(event, HandshakeCompleted):
                self.handshake = {"alpn": event.alpn_protocol,
                                  "version": self._quic._version}
                _emit(event="handshake", **self.handshake)
            elif isinstance(event, ConnectionTerminated):
                self.terminated = {"error_code": event.error_code,
                                   "frame_type": event.frame_type,
                                   "reason": event.reason_phrase}
                _emit(event="closed", **self.terminated)

    return Peer


async def _server(args: argparse.Namespace) -> None:
    from aioquic.asyncio import serve

    config = _configuration(args, is_client=False)
    config.load_cert_chain(args.cert, args.key)
    await serve(args.host, args.port, configuration=config, create_protocol=_protocol_class(),
                retry=args.retry)
    _emit(event="ready")
    await asyncio.Event().wait()


async def _client(args: argparse.Namespace) -> None:
    from aioquic.asyncio import connect

    config = _configuration(args, is_client=True)
    config.server_name = args.sni
    config.quantum_readiness_test = args.large_hello
    if args.cafile:
        config.load_verify_locations(args.cafile)
    else:
        config.verify_mode = ssl.CERT_NONE
    peer_class = _protocol_class()
    peers: list[Any] = []

    def create(*args: Any, **kwargs: Any) -> Any:
        peers.append(peer_class(*args, **kwargs))
        return peers[-1]

    result: dict[str, Any] = {"event": "result"}
    try:
        async with connect(args.host, args.port, configuration=config, create_protocol=create,
                           wait_connected=True) as client:
            await asyncio.wait_for(client.ping(), args.timeout)
            result["ok"] = True
    except Exception as exc:  # any failure is the result being reported
        result["ok"] = False
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["handshake"] = peers[-1].handshake if peers else None
    result["closed"] = peers[-1].terminated if peers else None
    _emit(**result)


def _main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.quic")
    parser.add_argument("role", choices=("server", "client"))
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--alpn", default="h3")
    parser.add_argument("--versions", default="v1", help="v1, v2 or hex, comma-separated")
    parser.add_argument("--keylog")
    parser.add_argument("--idle", type=float, default=5.0)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--retry", action="store_true")
    parser.add_argument("--sni")
    parser.add_argument("--cafile")
    parser.add_argument("--large-hello", action="store_true",
                        help="pad the ClientHello past one Initial packet")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.role == "server":
        asyncio.run(_server(args))
        return
    try:
        asyncio.run(asyncio.wait_for(_client(args), args.timeout + 5))
    except TimeoutError:
        _emit(event="result", ok=False, error="timeout", handshake=None, closed=None)


if __name__ == "__main__":
    _main()

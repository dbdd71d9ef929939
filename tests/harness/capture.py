"""Packet capture with tcpdump/dumpcap inside a namespace, and a connection lister.

What it does: starts ``tcpdump`` (full snaplen, ``--immediate-mode``, packet-buffered
output, a BPF filter on the scenario's ports) inside a namespace, returns only once it is
listening, stops it with SIGINT and checks that the kernel dropped nothing. Also
``dumpcap`` for a pcapng over several interfaces. ``tcp_connections`` lists the TCP
connections of a capture file in order of their first packet (SYN order when every
connection has its SYN), which is how scenario truths are matched to 4-tuples.

What it does not do: decode TLS. The lister reads Ethernet (with 802.1Q tags), Linux
cooked SLL/SLL2 and raw IP in pcap, pcapng and gzip-compressed files via dpkt.
"""

from __future__ import annotations

import gzip
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tests.harness.netns import Netns

READY_TIMEOUT = 10.0  # seconds for tcpdump to say "listening on"
STOP_TIMEOUT = 10.0
SETTLE = 0.3  # seconds of quiet before stopping, so final FIN/ACKs are captured


class CaptureError(RuntimeError):
    """tcpdump failed to start, dropped packets, or wrote nothing usable."""


def port_filter(ports: Iterable[int], proto: str = "tcp") -> str:
    """BPF expression matching any of ``ports``."""
    return " or ".join(f"{proto} port {p}" for p in sorted(set(ports)))


class Capture:
    """tcpdump (or dumpcap with several interfaces) running in a namespace.

    Use as a context manager around the traffic; the file is complete after exit.
    """

    def __init__(
        self,
        ns: Netns,
        path: Path,
        *,
        interfaces: Sequence[str] = ("eth0",),
        bpf: str = "tcp",
        settle: float = SETTLE,
    ) -> None:
        self.ns, self.path, self.bpf, self.settle = ns, path, bpf, settle
        self.interfaces = tuple(interfaces)
        self.stats: str = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._err: list[str] = []
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    def __enter__(self) -> Capture:
        self.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.stop(check=exc_type is None)

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if len(self.interfaces) == 1:
            argv = ["tcpdump", "-i", self.interfaces[0], "-s", "0", "-U", "--immediate-mode",
                    "-n", "-Z", "root", "-w", str(self.path), self.bpf]
            marker = "listening on"
        else:  # one pcapng with an Interface Description Block per interface
            argv = ["dumpcap", "-n", "-s", "0", "-w", str(self.path), "-f", self.bpf]
            for iface in self.interfaces:
                argv += ["-i", iface]
            marker = "Capturing on"
        self._proc = self.ns.popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert self._proc.stderr is not None
        self._reader = threading.Thread(target=self._read_err,
                                        args=(self._proc.stderr, marker), daemon=True)
        self._reader.start()
        if not self._ready.wait(READY_TIMEOUT):
            self._kill()
            raise CaptureError(f"{argv[0]} did not start: {''.join(self._err).strip()}")
        if self._proc.poll() is not None:
            raise CaptureError(f"{argv[0]} exited: {''.join(self._err).strip()}")
        time.sleep(0.05)  # the socket is bound when the banner prints; let the filter attach

    def _read_err(self, stream: IO[bytes], marker: str) -> None:
        for raw in stream:
            line = raw.decode(errors="replace")
            self._err.append(line)
            if marker in line:
                self._ready.set()
        self._ready.set()

    def stop(self, *, check: bool = True) -> None:
        """Stop cleanly; with ``check`` raise unless the kernel dropped 0 packets."""
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        time.sleep(self.settle)
        try:
            proc.send_signal(signal.SIGINT)
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            if check:
                raise CaptureError("capture did not stop on SIGINT") from None
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT)  # the statistics are tcpdump's last words
        self.stats = "".join(self._err)
        if not check:
            return
        if len(self.interfaces) == 1:
            dropped = [int(n) for n in re.findall(r"(\d+) packets? dropped by kernel",
                                                   self.stats)]
        else:  # dumpcap: "Packets received/dropped on interface 'eth0': 12/0 (...)"
            dropped = [int(n) for n in re.findall(r"received/dropped on interface '[^']+': "
                                                   r"\d+/(\d+)", self.stats)]
        if len(dropped) != (1 if len(self.interfaces) == 1 else len(self.interfaces)):
            raise CaptureError(f"no capture statistics: {self.stats.strip()}")
        if any(dropped):
            raise CaptureError(f"the capture dropped packets: {self.stats.strip()}")
        if not self.path.exists() or self.path.stat().st_size < 24:
            raise CaptureError(f"capture file missing or empty: {self.path}")

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None


# -- reading captures back ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    """One TCP connection as seen in a capture, oriented client → server."""

    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    first_ts: float
    packets: int
    syn: bool  # the client's SYN is in the capture

    @property
    def key(self) -> tuple[str, int, str, int]:
        return (self.client_ip, self.client_port, self.server_ip, self.server_port)


def open_capture(f: IO[bytes]) -> Any:
    """A dpkt reader (pcap or pcapng) over ``f``, an open binary file."""
    import dpkt

    magic = f.read(4)
    f.seek(0)
    if magic == b"\x0a\x0d\x0d\x0a":
        return dpkt.pcapng.Reader(f)
    return dpkt.pcap.Reader(f)


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.GzipFile(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def ip_layer(linktype: int, buf: bytes) -> Any:
    """The dpkt IP/IPv6 packet inside one frame of ``linktype``, or None if not decoded."""
    import dpkt

    if linktype == 1:
        eth = dpkt.ethernet.Ethernet(buf)
        return eth.data
    if linktype == 276:
        return dpkt.sll2.SLL2(buf).data
    if linktype == 113:
        return dpkt.sll.SLL(buf).data
    if linktype in (101, 12, 14):
        return dpkt.ip.IP(buf) if buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)
    return None


def packets(path: Path) -> Iterator[tuple[float, Any]]:
    """(timestamp, IP/IPv6 packet) for every IP packet of the capture (pcap/pcapng, .gz)."""
    with _open(path) as f:
        reader = open_capture(f)
        linktype = reader.datalink()
        for ts, buf in reader:
            try:
                ip = ip_layer(linktype, buf)
            except Exception:  # a packet dpkt cannot read is simply not listed
                continue
            if ip is not None and hasattr(ip, "p"):
                yield float(ts), ip


def _addr(ip: Any, raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6 if len(raw) == 16 else socket.AF_INET, raw)


def tcp_connections(path: Path, server_ports: Iterable[int] = ()) -> list[Connection]:
    """TCP connections of ``path`` in order of first packet.

    Orientation: the sender of a SYN without ACK is the client; for a connection whose SYN
    is not captured, the side using one of ``server_ports`` is the server.
    """
    import dpkt

    ports = set(server_ports)
    found: dict[frozenset[tuple[str, int]], dict[str, Any]] = {}
    for ts, ip in packets(path):
        tcp = ip.data
        if not isinstance(tcp, dpkt.tcp.TCP):
            continue
        src, dst = (_addr(ip, ip.src), tcp.sport), (_addr(ip, ip.dst), tcp.dport)
        key = frozenset((src, dst))
        entry = found.get(key)
        is_syn = bool(tcp.flags & dpkt.tcp.TH_SYN) and not tcp.flags & dpkt.tcp.TH_ACK
        if entry is None or (is_syn and entry["closed"]):
            if entry is not None:  # port reuse: close the old one under a unique key
                found[frozenset((src, dst, ("old", len(found))))] = entry
            entry = {"client": None, "first": ts, "packets": 0, "closed": False, "syn": False}
            found[key] = entry
        entry["packets"] += 1
        if tcp.flags & (dpkt.tcp.TH_RST | dpkt.tcp.TH_FIN):
            entry["closed"] = True
        if is_syn and entry["client"] is None:
            entry["client"], entry["server"], entry["syn"] = src, dst, True
        elif entry["client"] is None:
            if dst[1] in ports or (src[1] not in ports and dst[1] < src[1]):
                entry["client"], entry["server"] = src, dst
            else:
                entry["client"], entry["server"] = dst, src
    conns = [
        Connection(
            client_ip=e["client"][0], client_port=e["client"][1],
            server_ip=e["server"][0], server_port=e["server"][1],
            first_ts=e["first"], packets=e["packets"], syn=e["syn"],
        )
        for e in found.values()
    ]
    return sorted(conns, key=lambda c: c.first_ts)


def retransmissions(path: Path, *, min_payload: int = 1) -> list[tuple[str, int, int]]:
    """Data segments seen again with the same direction, sequence number and length.

    Returns (source "ip:port", seq, payload length) per repeated segment, so callers can
    check e.g. that a server's full-size flight was retransmitted.
    """
    import dpkt

    seen: set[tuple[str, int, str, int, int, int]] = set()
    repeats = []
    for _ts, ip in packets(path):
        tcp = ip.data
        if not isinstance(tcp, dpkt.tcp.TCP) or len(tcp.data) < min_payload:
            continue
        src = _addr(ip, ip.src)
        key = (src, tcp.sport, _addr(ip, ip.dst), tcp.dport, tcp.seq, len(tcp.data))
        if key in seen:
            repeats.append((f"{src}:{tcp.sport}", tcp.seq, len(tcp.data)))
        seen.add(key)
    return repeats

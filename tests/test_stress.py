"""Resource bounds (SPEC §6): floods of half-open connections and out-of-order buffers.

Synthetic captures are written with ``struct`` to a temporary directory (raw IPv4 frames,
link type 101): SYN floods, SYN + ClientHello floods (the hello is a real one from
``sample_pcaps/``), connections that each leave a large out-of-order buffer, and floods of
QUIC Initials to UDP 443 from as many clients, each with its own random Destination
Connection ID (the first Initial of a real aioquic client, its DCID rewritten: each one
makes a connection, keys derived from its DCID, and entries in the connection-ID index). Each is
analysed in a fresh subprocess through the streaming API (records written as JSONL to
``/dev/null`` as they come), which reports its peak RSS (``VmHWM`` of
``/proc/self/status``), run time, records and the limits it hit. Checked: peak RSS under
``RSS_LIMIT_MIB``, every limit hit recorded as an anomaly, every evicted connection still
reported (the oldest by packet time go first), and run time linear in packets (two sizes
compared).

``sample_pcaps/``) and connections that each leave a large out-of-order buffer. The
floods have one shape: one SYN every 10 µs (with a ClientHello 1 µs after it), 60,000
client ports per client address, one server port (443).

Each capture is analysed in a fresh subprocess in two ways:

- through the streaming API (records written as JSONL to ``/dev/null`` as they come),
  which reports its peak RSS (``VmHWM`` of ``/proc/self/status``), run time, records and
  the limits it hit: every limit hit recorded as an anomaly, every evicted connection
  still reported (the oldest by packet time go first), run time linear in packets;
- as a user runs it, ``tlsa analyze FILE --format jsonl -o /dev/null --workers 1``, and
  the same with two workers sharing the file: sorted output and cross-connection
  evidence over every record, in one process or in workers and their parent. Its peak
  RSS is the largest of the process tree (``ru_maxrss`` of the waited-for children of a
  wrapper process).

Peak RSS stays under ``RSS_LIMIT_MIB`` in every run. The big runs (a million connections,
the floods of ``make stress``) are ``@pytest.mark.slow``; small versions of each (30,000
connections) run with the normal tests.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analyzer import limits
from tests.fuzz.pcap import ACK, PSH, SYN, file_header, read_pcap, tcp_view

ROOT = Path(__file__).resolve().parents[1]
RSS_LIMIT_MIB = 200
HELLO_SAMPLE = ROOT / "sample_pcaps" / "nginx_tls13_ok.pcap"
T0 = 1_800_000_000
SERVER = bytes([10, 200, 0, 1])

_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
_REC = struct.Struct("<IIII")


# --- synthetic captures -------------------------------------------------------------------


def client_hello_record() -> bytes:
    """The ClientHello of a real curl capture, as its TLS record (one segment)."""
    _, packets = read_pcap(HELLO_SAMPLE.read_bytes())
    for p in packets:
        v = tcp_view(p.data)
        if v is not None and v.dport == 443 and len(p.data) > v.payload:
            payload = p.data[v.payload :]
            if payload[0] == 22 and payload[5] == 1:
                return payload
    raise AssertionError("no ClientHello in the sample")


CLIENT_PORTS = 60_000
"""Client ports per client address in the floods: a flooding host walks through its
ephemeral ports, then the next address takes over."""


def _client(i: int) -> tuple[bytes, int]:
    """A distinct (address, port) per connection number: ``CLIENT_PORTS`` ports of one
    address, then the next address."""
    host = i // CLIENT_PORTS
    return bytes([10, 1, (host >> 8) & 0xFF, host & 0xFF]), 1024 + i % CLIENT_PORTS


class CaptureWriter:
    """Writes raw-IPv4 pcap records fast (one struct pack per header)."""

    def __init__(self, path: Path) -> None:
        self.f = open(path, "wb", buffering=1 << 22)  # noqa: SIM115 - closed by close()
        self.f.write(file_header(linktype=101))
        self.packets = 0

    def segment(
        self,
        ts_us: int,
        src: tuple[bytes, int],
        dst: tuple[bytes, int],
        seq: int,
        ack: int,
        flags: int,
        payload: bytes = b"",
    ) -> None:
        tcp = _TCP.pack(
            src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50, flags, 65535, 0, 0
        )
        length = 40 + len(payload)
        ip = _IP.pack(0x45, 0, length, 0, 0x4000, 64, 6, 0, src[0], dst[0])
        sec, usec = divmod(ts_us, 1_000_000)
        self.f.write(_REC.pack(T0 + sec, usec, length, length) + ip + tcp + payload)
        self.packets += 1

    def close(self) -> None:
        self.f.close()


def write_flood(path: Path, connections: int, *, hello: bool, rate: int = 100_000) -> int:
    """Half-open connections to port 443, ``rate`` per second of packet time: a SYN each,
    and with ``hello`` a ClientHello right after it (no SYN-ACK ever). Returns packets."""
    ch = client_hello_record() if hello else b""
    w = CaptureWriter(path)
    step = 1_000_000 // rate
    server = (SERVER, 443)
    for i in range(connections):
        client = _client(i)
        isn = (i * 2654435761) & 0xFFFFFFFF
        w.segment(i * step, client, server, isn, 0, SYN)
        if hello:
            w.segment(i * step + 1, client, server, isn + 1, 0, PSH | ACK, ch)
    w.close()
    return w.packets


_UDP = struct.Struct("!HHHH")


def write_dtls_flood(path: Path, associations: int, *, rate: int = 100_000) -> int:
    """A flood of DTLS ClientHellos from spoofed sources to UDP 4433, each answered by a
    HelloVerifyRequest that is never taken up (what a server under a flood sees). Every
    other source sends only the first 1,200 bytes of a ClientHello announced at 200 KB
    (held as a partial message: the most a single datagram can make an association
    hold). Returns packets."""
    from tests.dtls_capture import COOKIE, HVR_BODY
    from tests.dtls_fixtures import client_hello_body, fragment, record

    hello = record(22, fragment(1, 0, client_hello_body()), version=0xFEFF)
    big = record(22, fragment(1, 0, bytes(200_000), 0, 1200), version=0xFEFF)
    hvr = record(22, fragment(3, 0, HVR_BODY), version=0xFEFF)
    assert len(COOKIE) == 16
    w = CaptureWriter(path)
    step = 1_000_000 // rate
    server = (SERVER, 4433)
    for i in range(associations):
        client = _client(i)
        for n, (src, dst, payload) in enumerate(
            ((client, server, big if i % 2 else hello), (server, client, hvr))
        ):
            udp = _UDP.pack(src[1], dst[1], 8 + len(payload), 0)
            length = 28 + len(payload)
            ip = _IP.pack(0x45, 0, length, 0, 0x4000, 64, 17, 0, src[0], dst[0])
            sec, usec = divmod(i * step + n, 1_000_000)
            w.f.write(_REC.pack(T0 + sec, usec, length, length) + ip + udp + payload)
            w.packets += 1
    w.close()
    return w.packets


def write_out_of_order(path: Path, connections: int, *, segments: int = 8, size: int = 1400) -> int:
    """Connections whose client sends ``segments`` segments of ``size`` bytes after a
    one-byte hole that is never filled nor acknowledged: each leaves that much in its
    out-of-order buffer. 10,000 connections start per second of packet time."""
    w = CaptureWriter(path)
    server = (SERVER, 443)
    blob = bytes(range(256)) * (size // 256 + 1)
    for i in range(connections):
        t = i * 100
        client = _client(i)
        c_isn, s_isn = (i * 7919) & 0xFFFFFFFF, (i * 104729) & 0xFFFFFFFF
        w.segment(t, client, server, c_isn, 0, SYN)
        w.segment(t + 1, server, client, s_isn, c_isn + 1, SYN | ACK)
        for k in range(segments):
            seq = c_isn + 2 + k * size  # byte c_isn + 1 never comes
            w.segment(t + 2 + k, client, server, seq, s_isn + 1, PSH | ACK, blob[:size])
    w.close()
    return w.packets


def quic_initial() -> bytes:
    """The first datagram of a real aioquic client: an Initial with its ClientHello."""
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection

    client = QuicConnection(configuration=QuicConfiguration(
        is_client=True, alpn_protocols=["h3"], server_name="www.example.com"))
    client.connect(("10.200.0.1", 443), now=0.0)
    return client.datagrams_to_send(now=0.0)[0][0]


def write_quic_flood(path: Path, connections: int, *, rate: int = 100_000) -> int:
    """One Initial per client to UDP 443, ``rate`` per second of packet time, each with a
    random DCID of the same length."""
    import random

    initial = bytearray(quic_initial())
    dcid_length = initial[5]
    rng = random.Random(1)
    f = open(path, "wb", buffering=1 << 22)  # noqa: SIM115 - closed below
    f.write(file_header(linktype=101))
    step = 1_000_000 // rate
    for i in range(connections):
        initial[6 : 6 + dcid_length] = rng.randbytes(dcid_length)
        addr, port = _client(i)
        udp = struct.pack("!HHHH", port, 443, 8 + len(initial), 0) + initial
        ip = _IP.pack(0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, addr, SERVER)
        sec, usec = divmod(i * step, 1_000_000)
        f.write(_REC.pack(T0 + sec, usec, 20 + len(udp), 20 + len(udp)) + ip + udp)
    f.close()
    return connections


# --- measuring in a subprocess ------------------------------------------------------------

MEASURE = r"""
import json, sys, time
from collections import Counter
from analyzer.api import Run, analyze_files
from analyzer.output import jsonl_line

def peak_rss_mib():
    # VmHWM is this process's own peak: ru_maxrss would carry the parent's peak over
    # the vfork + exec that started it.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")

path = sys.argv[1]
run = Run()
start = time.perf_counter()
records = 0
anomalies = Counter()
closes = Counter()
evicted_newest = None
kept_oldest = None
with open("/dev/null", "w") as sink:
    for r in analyze_files([path], run):
        sink.write(jsonl_line(r) + "\n")
        records += 1
        anomalies.update(r.anomalies)
        closes[r.close] += 1
        if "flow_table_limit" in r.anomalies:
            evicted_newest = r.ts if evicted_newest is None else max(evicted_newest, r.ts)
        else:
            kept_oldest = r.ts if kept_oldest is None else min(kept_oldest, r.ts)
seconds = time.perf_counter() - start
stats = run.stats[path.rsplit("/", 1)[-1]]
print(json.dumps({
    "seconds": seconds,
    "maxrss_mib": peak_rss_mib(),
    "records": records,
    "frames": stats.frames,
    "anomalies": dict(anomalies),
    "engine_anomalies": dict(stats.anomalies),
    "closes": dict(closes),
    "evicted_newest": evicted_newest,
    "kept_oldest": kept_oldest,
    "errors": run.errors,
}))
"""


def measure(path: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    print(path.name, json.dumps(result))
    return result


TREE = r"""
import json, os, resource, subprocess, sys, threading, time

def parents():
    out = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    out[int(pid)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    return out

def hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0

peaks = {}
def watch(root, stop):
    while not stop.is_set():
        ppid = parents()
        tree = {root}
        for _ in range(4):
            tree |= {p for p, q in ppid.items() if q in tree}
        for pid in tree:
            peaks[pid] = max(peaks.get(pid, 0), hwm_kib(pid))
        stop.wait(0.05)

start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
stop = threading.Event()
watcher = threading.Thread(target=watch, args=(proc.pid, stop))
watcher.start()
_, err = proc.communicate()
stop.set()
watcher.join()
waited = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({
    "seconds": time.perf_counter() - start,
    "maxrss_mib": max([waited, *peaks.values()]) / 1024,
    "processes": len(peaks),
    "sum_of_peaks_mib": sum(peaks.values()) / 1024,
    "returncode": proc.returncode,
    "stderr": err[-3000:],
}))
"""
"""Runs a command and reports the largest peak RSS in its process tree: ``VmHWM`` of the
command and of every process it starts (workers, and a fork server's children), read
every 50 ms, and ``ru_maxrss`` of the waited-for children."""

SPLIT = r"""
import sys
from analyzer.api import Run
from analyzer.scale.local import collect_jsonl_parallel

run = Run()
lines = collect_jsonl_parallel([sys.argv[1]], run, workers=int(sys.argv[2]), shard_bytes=0)
with open("/dev/null", "w") as sink:
    for line, _ in lines:
        sink.write(line)
assert not run.errors, run.errors
"""
"""``tlsa analyze FILE --format jsonl -o /dev/null --workers N`` (the workers write the
lines) with the file split between the workers whatever its size."""


def measure_sorted(path: Path, workers: int) -> dict[str, Any]:
    """Sorted JSONL of every record with cross-connection evidence, as ``tlsa analyze
    PATH --format jsonl -o /dev/null`` writes it: with one worker, that very command; with
    more, the file split between them (:data:`SPLIT`). Reports the run time and the
    largest peak RSS of the process tree."""
    if workers == 1:
        command = [sys.executable, "-m", "analyzer", "analyze", str(path)]
        command += ["--format", "jsonl", "-o", "/dev/null", "--workers", "1"]
    else:
        command = [sys.executable, "-c", SPLIT, str(path), str(workers)]
    done = subprocess.run(
        [sys.executable, "-c", TREE, *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["returncode"] == 0, result["stderr"]
    print(f"{path.name} sorted, {workers} worker(s)", json.dumps(result))
    return result


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tlsa-stress-") as d:
        yield Path(d)


def check_bounded(result: dict[str, Any], frames: int) -> None:
    assert result["errors"] == []
    assert result["frames"] == frames
    assert result["maxrss_mib"] < RSS_LIMIT_MIB, result


def check_flood(result: dict[str, Any], connections: int) -> None:
    """The table holds at most MAX_HANDSHAKING_FLOWS half-open connections; every eviction
    is counted."""
    evicted = max(connections - limits.MAX_HANDSHAKING_FLOWS, 0)
    assert result["engine_anomalies"].get("flow_table_limit", 0) == evicted
    assert result["records"] >= min(connections, limits.MAX_HANDSHAKING_FLOWS)


def check_evictions_reported(result: dict[str, Any], connections: int) -> None:
    """Every connection has its record; the evicted ones carry ``flow_table_limit`` and are
    the oldest by packet time."""
    evicted = max(connections - limits.MAX_HANDSHAKING_FLOWS, 0)
    assert result["records"] == connections
    assert result["anomalies"].get("flow_table_limit", 0) == evicted
    if evicted:
        assert result["evicted_newest"] < result["kept_oldest"]


def check_out_of_order(result: dict[str, Any], connections: int, segments: int, size: int) -> None:
    """Whatever did not fit in the shared budget was declared a gap, and said so."""
    held = connections * segments * size
    assert result["records"] == connections
    if held > limits.MAX_OOO_TOTAL:
        over = result["anomalies"].get("ooo_buffer_limit", 0)
        assert over >= connections - limits.MAX_OOO_TOTAL // (segments * size) - 1


SMALL = 30_000
"""Connections in the normal-suite floods: more than MAX_HANDSHAKING_FLOWS, so the limit
is hit."""


@pytest.fixture(scope="module")
def small_syn(scratch: Path) -> dict[str, Any]:
    frames = write_flood(scratch / "syn.pcap", SMALL, hello=False)
    result = measure(scratch / "syn.pcap")
    check_bounded(result, frames)
    return result


@pytest.fixture(scope="module")
def small_hello(scratch: Path) -> dict[str, Any]:
    frames = write_flood(scratch / "hello.pcap", SMALL, hello=True)
    result = measure(scratch / "hello.pcap")
    check_bounded(result, frames)
    return result


@pytest.mark.parametrize("workers", [1, 2])
def test_floods_small_sorted(
    scratch: Path, small_syn: dict[str, Any], small_hello: dict[str, Any], workers: int
) -> None:
    for name in ("syn.pcap", "hello.pcap"):
        result = measure_sorted(scratch / name, workers)
        assert result["maxrss_mib"] < RSS_LIMIT_MIB, result


def test_syn_flood_small(small_syn: dict[str, Any]) -> None:
    check_flood(small_syn, SMALL)
    assert small_syn["closes"] == {
        "capture_end": limits.MAX_HANDSHAKING_FLOWS,
        "idle_timeout": SMALL - limits.MAX_HANDSHAKING_FLOWS,
    }


def test_syn_hello_flood_small(small_hello: dict[str, Any]) -> None:
    check_flood(small_hello, SMALL)


def test_syn_flood_small_evictions_reported(small_syn: dict[str, Any]) -> None:
    check_evictions_reported(small_syn, SMALL)


def test_syn_hello_flood_small_evictions_reported(small_hello: dict[str, Any]) -> None:
    check_evictions_reported(small_hello, SMALL)


def test_out_of_order_buffers_small(scratch: Path) -> None:
    # 5,000 connections each leaving 11 KB out of order: 56 MB, over the shared budget.
    n, segments, size = 5_000, 8, 1400
    frames = write_out_of_order(scratch / "ooo.pcap", n, segments=segments, size=size)
    result = measure(scratch / "ooo.pcap")
    check_bounded(result, frames)
    check_out_of_order(result, n, segments, size)
    assert result["anomalies"]["ooo_buffer_limit"] < n  # the first ones fitted


def test_dtls_clienthello_flood_small(scratch: Path) -> None:
    """Spoofed DTLS ClientHellos: the UDP table is bounded like TCP's, every association
    still gets its record, and the partial messages they leave cost what they sent."""
    frames = write_dtls_flood(scratch / "dtls.pcap", SMALL)
    result = measure(scratch / "dtls.pcap")
    check_bounded(result, frames)
    check_flood(result, SMALL)
    check_evictions_reported(result, SMALL)


QUIC_SMALL = 20_000
"""Initials in the normal-suite QUIC flood (each costs key derivation: fewer than SMALL,
still over MAX_HANDSHAKING_FLOWS)."""


def test_quic_initial_flood_small(scratch: Path) -> None:
    pytest.importorskip("aioquic")
    frames = write_quic_flood(scratch / "quic.pcap", QUIC_SMALL)
    result = measure(scratch / "quic.pcap")
    check_bounded(result, frames)
    check_evictions_reported(result, QUIC_SMALL)  # every Initial to 443 gets its record
    assert result["anomalies"]["quic_undecryptable"] == QUIC_SMALL  # keys from each DCID


# --- make stress ------------------------------------------------------------------------


MILLION = 1_000_000


@pytest.mark.slow
@pytest.mark.parametrize("hello", [False, True], ids=["syn", "syn_hello"])
def test_million_half_open_connections(scratch: Path, hello: bool) -> None:
    """The floods of ``make stress``: a million connections, through the API (every record
    checked) and sorted as ``tlsa analyze`` writes it, with one worker and with two."""
    frames = write_flood(scratch / "flood.pcap", MILLION, hello=hello)
    try:
        result = measure(scratch / "flood.pcap")
        check_bounded(result, frames)
        check_flood(result, MILLION)
        check_evictions_reported(result, MILLION)
        for workers in (1, 2):
            done = measure_sorted(scratch / "flood.pcap", workers)
            print(f"{done['seconds'] / frames * 1e6:.1f} µs per packet")
            assert done["maxrss_mib"] < RSS_LIMIT_MIB, done
    finally:
        (scratch / "flood.pcap").unlink()


@pytest.mark.slow
def test_two_hundred_thousand_quic_initials(scratch: Path) -> None:
    # 1.2 KB each (a padded Initial): 250 MB of capture; memory stays that of a full table.
    pytest.importorskip("aioquic")
    n = 200_000
    frames = write_quic_flood(scratch / "quic-flood.pcap", n)
    result = measure(scratch / "quic-flood.pcap")
    (scratch / "quic-flood.pcap").unlink()
    check_bounded(result, frames)
    check_evictions_reported(result, n)


@pytest.mark.slow
def test_hundred_thousand_out_of_order_buffers(scratch: Path) -> None:
    n, segments, size = 100_000, 8, 1400
    frames = write_out_of_order(scratch / "ooo_big.pcap", n, segments=segments, size=size)
    result = measure(scratch / "ooo_big.pcap")
    (scratch / "ooo_big.pcap").unlink()
    check_bounded(result, frames)
    check_out_of_order(result, n, segments, size)


@pytest.mark.slow
def test_run_time_is_linear_in_packets(scratch: Path) -> None:
    sizes = (200_000, 1_000_000)
    per_packet = []
    for n in sizes:
        frames = write_flood(scratch / f"lin{n}.pcap", n, hello=True)
        result = measure(scratch / f"lin{n}.pcap")
        (scratch / f"lin{n}.pcap").unlink()
        per_packet.append(result["seconds"] / frames)
    small, big = per_packet
    assert big < 1.5 * small, f"{small * 1e6:.1f} µs/packet, then {big * 1e6:.1f} µs/packet"


# --- the shared budgets of the reassemblers ----------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from analyzer.anomalies import Anomaly  # noqa: E402
from analyzer.flows import reassembly  # noqa: E402
from analyzer.flows.reassembly import OOO_BUDGET, UNACKED_BUDGET, Reassembler  # noqa: E402
from analyzer.tls.records import RecordReader  # noqa: E402

OPS = st.lists(
    st.tuples(
        st.integers(0, 2),  # which reassembler
        st.sampled_from(["data", "ack", "fin", "flush", "release"]),
        st.integers(0, 3000),  # offset from the stream start
        st.integers(0, 600),  # payload length
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_budgets_count_exactly_what_reassemblers_hold(ops: list[tuple[int, str, int, int]]) -> None:
    ooo0, unacked0 = OOO_BUDGET.used, UNACKED_BUDGET.used
    rs = [Reassembler() for _ in range(3)]
    for r in rs:
        r.syn(0xFFFFFF00)  # streams that cross 2^32
    for which, op, offset, length in ops:
        r = rs[which]
        seq = (0xFFFFFF01 + offset) & 0xFFFFFFFF
        if op == "data":
            r.data(seq, bytes([offset & 0xFF]) * length)
        elif op == "ack":
            r.peer_ack(seq)
        elif op == "fin":
            r.fin(seq, 0)
        elif op == "flush":
            r.flush()
        else:
            r.release()
        assert OOO_BUDGET.used - ooo0 == sum(x._ooo_bytes for x in rs)
        assert UNACKED_BUDGET.used - unacked0 == sum(x._kept_bytes for x in rs)
    del rs, r
    assert (OOO_BUDGET.used, UNACKED_BUDGET.used) == (ooo0, unacked0)  # given back when freed


def test_shared_out_of_order_budget_overflow_is_a_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(OOO_BUDGET, "limit", OOO_BUDGET.used + 2500)
    first, second = Reassembler(), Reassembler()
    for r in (first, second):
        r.syn(1000)
        assert r.data(1002, b"x" * 1000) == b""  # byte 1001 missing: buffered
    assert not first.gap and not second.gap
    assert second.data(3002, b"y" * 1000) == b""  # 3000 bytes held in all: over
    assert second.gap and Anomaly.OOO_BUFFER_LIMIT in second.anomalies
    assert second.gap_bytes == 1 + 1000  # the holes before what was buffered
    assert not first.gap and first.anomalies == set()
    assert first.data(1001, b"z") == b"z" + b"x" * 1000  # the first one still fills its hole


def test_shared_unacked_budget_overflow_forgets_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(UNACKED_BUDGET, "limit", UNACKED_BUDGET.used + 1500)
    first, second = Reassembler(), Reassembler()
    for r in (first, second):
        r.syn(0)
        assert r.data(1, b"a" * 1000) == b"a" * 1000
    # The second one went over: it keeps nothing, so a differing copy is not noticed.
    second.data(1, b"b" * 1000)
    assert second.anomalies == set() and second.retransmits == 1
    first.data(1, b"b" * 1000)
    assert first.anomalies == {Anomaly.OVERLAP_MISMATCH}


def test_reassembler_with_nothing_odd_shares_one_empty_anomaly_set() -> None:
    a, b = Reassembler(), Reassembler()
    assert a.anomalies is b.anomalies == frozenset()
    a.data(5, b"x")  # midstream
    assert a.anomalies == {Anomaly.MIDSTREAM} and b.anomalies == set()
    assert reassembly.Reassembler().anomalies is b.anomalies


def test_record_reader_keeps_no_record_it_returned() -> None:
    # A quiet connection must not hold its ClientHello twice (parsed and raw).
    reader = RecordReader(is_client=True)
    hello = client_hello_record()
    reader.feed(hello + hello[:3])
    assert reader.next() is not None
    assert reader.next() is None
    assert len(reader._buf) == 3  # only the start of the next record


def test_equal_hello_values_are_shared_between_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from analyzer.tls import cursor, hello
    from analyzer.tls.handshake import parse_handshake_body
    from analyzer.tls.messages import ClientHello

    record = client_hello_record()
    body = record[9:]  # after the record and handshake headers
    other = bytearray(body)
    other[2:34] = bytes(32)  # another client random: another connection
    first, second = parse_handshake_body(1, body), parse_handshake_body(1, bytes(other))
    assert isinstance(first, ClientHello) and isinstance(second, ClientHello)
    assert first.random != second.random
    assert first.cipher_suites is second.cipher_suites
    assert first.supported_groups is second.supported_groups
    shared = [a is b for a, b in zip(first.extensions, second.extensions, strict=True)]
    per_connection = [e.type in hello._PER_CONNECTION for e in first.extensions]
    assert shared == [not p for p in per_connection] and any(per_connection)
    # Bounded: a table that is full stops sharing, it does not grow.
    monkeypatch.setattr(cursor, "_UINT_LISTS", {})
    for n in range(limits.MAX_INTERNED + 10):
        cursor.Cursor(b"\x00\x04" + n.to_bytes(4, "big")).uint_list(2, 2)
    assert len(cursor._UINT_LISTS) <= limits.MAX_INTERNED


class _Flow:
    def __init__(self, n: int, ts: float) -> None:
        self.key = (bytes([10, 0, 0, n]), 1000 + n, bytes([10, 0, 0, 1]), 443)
        self.last_ts = ts
        self.settled = False


def test_flow_table_bounds_half_open_flows_apart() -> None:
    from analyzer.flows.table import FlowTable

    table: FlowTable[_Flow] = FlowTable(max_flows=6, max_handshaking=3)
    flows = [_Flow(n, float(n)) for n in range(14)]

    def add(n: int, settle: bool = False) -> list[int]:
        table.add(flows[n])
        if settle:
            table.mark_settled(flows[n])
        return [g.key[1] - 1000 for g in table.over_limit()]

    assert [add(n, settle=n % 2 == 0) for n in range(4)] == [[], [], [], []]
    # In their handshake: 1, 3. More than three waiting: the oldest of them go; the
    # settled ones (0, 2) stay although the table fills.
    assert [add(n) for n in range(4, 10)] == [[], [1], [3], [4], [5], [6]]
    assert len(table) == 5
    for n in (7, 8):
        table.mark_settled(flows[n])
    # Settled: 0, 2, 7, 8; waiting: 9. Over six in all: the oldest settled one goes, not
    # the new connection.
    assert add(10) == []
    assert add(11) == [0]
    assert add(12, settle=True) == [2]
    assert {f.key[1] - 1000 for f in flows if table.get(f.key) is f} == {7, 8, 9, 10, 11, 12}


def test_flow_table_evicts_the_flow_idle_longest() -> None:
    from analyzer.flows.table import FlowTable

    table: FlowTable[_Flow] = FlowTable(max_flows=2, max_handshaking=2)
    flows = [_Flow(n, float(n)) for n in range(3)]
    for flow in flows[:2]:
        table.add(flow)
        table.mark_settled(flow)
    flows[0].last_ts = 5.0  # the first connection is busy since; the second is idle
    table.add(flows[2])
    assert [f.key[1] - 1000 for f in table.over_limit()] == [1]


def test_evicted_settled_connection_starts_no_phantom_record() -> None:
    """A settled connection pushed out of a full table is reported once, with
    ``flow_table_limit``; its later packets, either way, start no new record."""
    from analyzer.engine.engine import Engine
    from analyzer.flows.table import FlowTable
    from analyzer.sources import CaptureReader
    from analyzer.sources.base import Frame

    frames = list(CaptureReader(HELLO_SAMPLE))
    engine = Engine("x", table=FlowTable(max_flows=1, max_handshaking=1))
    records = []
    for i, frame in enumerate(frames):
        records += engine.feed(frame)
        if i == 9:  # settled by now (handshake done, application data seen)
            assert len(engine.table) == 1 and records == []
            ip = _IP.pack(0x45, 0, 40, 0, 0x4000, 64, 6, 0, bytes([10, 9, 9, 9]), SERVER)
            tcp = _TCP.pack(40000, 443, 1, 0, 0x50, SYN, 65535, 0, 0)
            records += engine.feed(Frame(frame.ts + 0.001, 101, ip + tcp, 40))
    records += engine.finish()
    assert len(records) == 2
    evicted, syn = records
    assert "flow_table_limit" in evicted.anomalies and evicted.server_port == 443
    assert "midstream" not in evicted.anomalies
    assert syn.client_ip == "10.9.9.9"

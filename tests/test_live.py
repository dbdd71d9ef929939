"""Live capture: ``tlsa live`` and ``analyzer.live`` on a real interface, real handshakes.

As root, in a private network namespace (tests.harness), ``tlsa live -i lo`` runs as a
real subprocess while Python ``ssl`` servers and Python/openssl clients make a successful
handshake, a version mismatch, an untrusted certificate (TLS 1.2 and 1.3) and a refused
connection. Each record must match how its traffic was made, and must reach the test within
2 seconds of its connection's last packet (packet times from the ``--write`` capture).
Error cases (no such interface, bad filter, no permission, no tshark) print one line and
exit 2. The notebook ``notebooks/03-live.ipynb`` is executed with nbclient.

Run as a script (``python tests/test_live.py traffic ...``) this file is the traffic
maker, started inside the namespace by the tests.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # the traffic maker, run as a script inside the namespace
    sys.path.insert(0, str(ROOT))
TLSA = ROOT / ".venv" / "bin" / "tlsa"
NOTEBOOK = ROOT / "notebooks" / "03-live.ipynb"
LATENCY_LIMIT = 2.0
"""Seconds between a connection's last packet and its record reaching the reader."""
QUIET_AFTER = 2.5
"""Seconds tlsa keeps running after the traffic: a record held back until the end of the
capture would arrive later than ``LATENCY_LIMIT``."""

SUCCESS, VERSION, UNTRUSTED12, UNTRUSTED13, REFUSED = 443, 8443, 853, 4433, 993
"""Server port of each scenario: records are matched to the traffic by it."""
EXPECTED: dict[int, dict[str, Any]] = {
    SUCCESS: {"outcome": "established", "failure": None, "failure_side": None,
              "version": "TLSv1.3", "sni": "www.example.com"},
    VERSION: {"outcome": "failed", "failure": "version_mismatch", "failure_side": "server",
              "last_alert": "protocol_version", "sni": "www.example.com"},
    UNTRUSTED12: {"outcome": "failed", "failure": "certificate_untrusted",
                  "failure_side": "client", "last_alert": "unknown_ca", "version": "TLSv1.2"},
    UNTRUSTED13: {"outcome": "failed", "failure": "certificate_untrusted",
                  "failure_side": "client", "version": "TLSv1.3", "inferred": False,
                  "last_alert": "unknown_ca"},  # OpenSSL clients send this alert unencrypted
    REFUSED: {"outcome": "failed", "failure": "tcp_refused", "failure_side": "server",
              "sni": None},
}


@functools.cache
def _missing() -> str | None:
    """Why the live tests cannot run here (not root, no namespaces, a tool missing)."""
    from tests.harness import missing_requirements

    if not TLSA.exists():
        return f"{TLSA} is not installed"
    return missing_requirements(("ip", "dumpcap", "tshark", "openssl"))


def needs_root(test: Any) -> Any:
    """Marks a test that captures in a private namespace; skipped with the reason."""
    reason = _missing()
    return pytest.mark.root(pytest.mark.skipif(reason is not None, reason=reason or "")(test))


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ns() -> Iterator[Any]:
    from tests.harness import Netns

    with Netns() as namespace:
        yield namespace


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.harness import TestPKI

    return TestPKI(tmp_path_factory.mktemp("pki"))


class Tlsa:
    """``tlsa live`` running inside the namespace; stdout lines stamped on arrival."""

    def __init__(self, ns: Any, *args: str) -> None:
        self.proc = ns.popen([str(TLSA), "live", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.lines: list[tuple[float, str]] = []
        self.err: list[str] = []
        self._ready = threading.Event()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._read_out, args=(self.proc.stdout,), daemon=True),
            threading.Thread(target=self._read_err, args=(self.proc.stderr,), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read_out(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self.lines.append((time.time(), raw.decode()))

    def _read_err(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode()
            self.err.append(line)
            if "capturing on" in line:
                self._ready.set()
        self._ready.set()

    def wait_ready(self) -> None:
        assert self._ready.wait(15), "tlsa live did not start"
        assert self.proc.poll() is None, "".join(self.err)

    def finish(self, sig: int | None = signal.SIGINT, timeout: float = 15) -> int:
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for t in self._threads:
            t.join(5)
        return code


def _last_packets(path: Path) -> dict[tuple[int, int], float]:
    """Time of the last packet of each connection of a capture, by (client, server) port."""
    from tests.harness.capture import packets

    last: dict[tuple[int, int], float] = {}
    for ts, ip in packets(path):
        tcp = ip.data
        if not hasattr(tcp, "sport"):
            continue  # an ICMP error (the default filter keeps them)
        for key in ((tcp.sport, tcp.dport), (tcp.dport, tcp.sport)):
            last[key] = max(last.get(key, 0.0), ts)
    return last


def _ns_pids(ns: Any) -> list[str]:
    out = subprocess.run(["ip", "netns", "pids", ns.name], capture_output=True, text=True)
    return out.stdout.split()


# -- the main check ---------------------------------------------------------------------


@needs_root
def test_live_records_match_the_traffic_and_arrive_promptly(
    ns: Any, pki: Any, tmp_path: Path
) -> None:
    from tests.harness import LeafKind

    good = pki.server("www.example.com")
    bad = pki.server("www.example.com", kind=LeafKind.INSPECTION)
    written = tmp_path / "live.pcapng"
    tlsa = Tlsa(ns, "-i", "lo", "--format", "jsonl", "--write", str(written))
    try:
        tlsa.wait_ready()
        made = ns.run(
            [sys.executable, str(Path(__file__)), "traffic", str(pki.root), str(good.chain),
             str(good.key), str(bad.chain), str(bad.key)],
            timeout=60,
        )
        assert made.returncode == 0, made.output
        truth = {t["server_port"]: t for t in map(json.loads, made.stdout.splitlines())}
        time.sleep(QUIET_AFTER)
    finally:
        code = tlsa.finish()
    stderr = "".join(tlsa.err)
    assert code == 0, stderr
    assert "5 TLS connections" in stderr and "0 dropped" in stderr, stderr

    # The traffic went as planned (ground truth from the clients themselves).
    assert truth[SUCCESS]["ok"]
    assert "protocol version" in truth[VERSION]["error"]
    assert "CERTIFICATE_VERIFY_FAILED" in truth[UNTRUSTED12]["error"]
    assert "CERTIFICATE_VERIFY_FAILED" in truth[UNTRUSTED13]["error"]
    assert "Connection refused" in truth[REFUSED]["error"]

    arrived = [(t, json.loads(line)) for t, line in tlsa.lines]
    records = {r["server_port"]: r for _, r in arrived}
    assert sorted(records) == sorted(EXPECTED), records
    assert len(arrived) == len(EXPECTED)
    for port, want in EXPECTED.items():
        r = records[port]
        got = {k: r[k] for k in want}
        assert got == want, (port, r["reason"], r)
        assert r["capture"] == "lo"
        assert r["close"] != "capture_end", r
        if truth[port]["client_port"] is not None:
            assert r["client_port"] == truth[port]["client_port"]

    # Each record arrived within LATENCY_LIMIT of its connection's last packet.
    last = _last_packets(written)
    delays = {}
    for when, r in arrived:
        end = last[(r["client_port"], r["server_port"])]
        delays[r["server_port"]] = when - end
    assert max(delays.values()) < LATENCY_LIMIT, delays
    print("live record delays after the last packet (s):",
          {p: round(d, 3) for p, d in delays.items()})

    # The --write capture holds the same connections for offline analysis.
    import analyzer

    offline = {r.server_port: (r.client_port, r.outcome, r.failure)
               for r in analyzer.analyze(written)}
    assert offline == {p: (r["client_port"], r["outcome"], r["failure"])
                       for p, r in records.items()}
    # Nothing is left running in the namespace: no dumpcap, no zombie.
    assert _ns_pids(ns) == []


# -- stopping by itself -----------------------------------------------------------------


def _refused(port: int = REFUSED) -> int:
    """One connection to a closed port; returns the client port."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    client_port: int = s.getsockname()[1]
    try:
        s.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        pass
    finally:
        s.close()
    return client_port


@needs_root
def test_count_stops_after_n_records_csv(ns: Any) -> None:
    tlsa = Tlsa(ns, "-i", "lo", "--count", "1", "--format", "csv")
    try:
        tlsa.wait_ready()
        port = ns.call(_refused)
        code = tlsa.finish(sig=None, timeout=10)
    finally:
        tlsa.finish()
    assert code == 0, "".join(tlsa.err)
    rows = [line for _, line in tlsa.lines]
    assert rows[0].startswith("uid,capture,") and len(rows) == 2, rows
    assert f",{port},127.0.0.1,{REFUSED}," in rows[1] and "tcp_refused" in rows[1]
    assert "1 TLS connection in" in "".join(tlsa.err)


@needs_root
def test_duration_table_prints_one_line_per_record(ns: Any, tmp_path: Path) -> None:
    out = tmp_path / "live.txt"
    tlsa = Tlsa(ns, "-i", "lo", "--duration", "1.5", "-o", str(out))
    try:
        tlsa.wait_ready()
        port = ns.call(_refused)
        code = tlsa.finish(sig=None, timeout=10)
    finally:
        tlsa.finish()
    assert code == 0, "".join(tlsa.err)
    lines = out.read_text().splitlines()
    assert len(lines) == 1, lines
    assert f"127.0.0.1:{port} → 127.0.0.1:{REFUSED}" in lines[0]
    assert "failed: tcp_refused" in lines[0] and "answered by a RST" in lines[0]
    summary = tlsa.err[-1]
    assert summary.startswith("tlsa: 1 TLS connection in ")
    assert "failed 1 (tcp_refused 1)" in summary


HELD = 6443
"""Server port of the connection held open while ``tlsa live`` is stopped (no other test
of this module's namespace uses it)."""

_HOLD_OPEN = f"""
import socket, ssl, sys, time
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", {HELD}))
server.listen()
client = socket.create_connection(("127.0.0.1", {HELD}))
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ssl.create_default_context().wrap_bio(incoming, outgoing,
                                              server_hostname="www.example.com")
try:
    tls.do_handshake()
except ssl.SSLWantReadError:
    pass
client.sendall(outgoing.read())  # a ClientHello the server never answers
print(client.getsockname()[1], flush=True)
time.sleep(60)
"""


@needs_root
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_in_order_and_reports_what_is_open(ns: Any, sig: int) -> None:
    tlsa = Tlsa(ns, "-i", "lo", "--format", "jsonl")
    holder = None
    try:
        tlsa.wait_ready()
        holder = ns.popen([sys.executable, "-c", _HOLD_OPEN], stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None
        client_port = int(holder.stdout.readline())
        time.sleep(1.0)  # the hello is captured and read
        code = tlsa.finish(sig=sig, timeout=10)
    finally:
        tlsa.finish()
        if holder is not None:
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait()
    assert code == 0, "".join(tlsa.err)
    records = [json.loads(line) for _, line in tlsa.lines]
    assert [(r["client_port"], r["server_port"], r["close"], r["stage"]) for r in records] == [
        (client_port, HELD, "capture_end", "client_hello")
    ]
    assert "tlsa: 1 TLS connection in " in tlsa.err[-1], tlsa.err
    assert _ns_pids(ns) == []


# -- errors: one line, exit 2 -----------------------------------------------------------


def _tlsa_error(ns: Any, args: list[str], env: dict[str, str] | None = None,
                prefix: list[str] | None = None) -> tuple[int, str, str]:
    run = ns.run([*(prefix or []), str(TLSA), "live", *args], timeout=30, env=env)
    return run.returncode, run.stdout, run.stderr


@needs_root
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-i", "nosuch0"], "tlsa: error: interface 'nosuch0' does not exist"),
        (["-i", "lo", "--bpf", "tcp port"], "tlsa: error: bad BPF filter 'tcp port': "),
        ([], "tlsa: error: tlsa live needs -i INTERFACE"),
    ],
    ids=["no-such-interface", "bad-bpf", "no-interface-given"],
)
def test_errors_are_one_line_and_exit_2(ns: Any, args: list[str], expected: str) -> None:
    code, out, err = _tlsa_error(ns, args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(expected), err


@needs_root
def test_no_permission_is_one_line(ns: Any) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is missing")
    # Root without CAP_NET_RAW/CAP_NET_ADMIN: dumpcap may not open a capture socket.
    code, out, err = _tlsa_error(
        ns, ["-i", "lo"], prefix=["setpriv", "--bounding-set=-net_raw,-net_admin"]
    )
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("tlsa: error: no permission to capture on 'lo'")


def test_missing_tshark_names_the_package(tmp_path: Path) -> None:
    if not TLSA.exists():
        pytest.skip(f"{TLSA} is not installed")
    empty = tmp_path / "bin"
    empty.mkdir()
    run = subprocess.run([str(TLSA), "live", "-i", "lo"], capture_output=True, text=True,
                         env={"PATH": str(empty), "HOME": str(tmp_path)}, timeout=30)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith("tlsa: error: tshark/dumpcap not found: install the Debian "
                                 "package tshark")


def test_dumpcap_messages_become_one_line() -> None:
    from analyzer.sources.live import explain_dumpcap_error

    perm = ["Capturing on 'Loopback: lo'",
            'dumpcap: You do not have permission to capture on device "lo".',
            "(socket: Operation not permitted)"]
    assert explain_dumpcap_error(perm, "lo", "tcp").startswith("no permission to capture on 'lo'")
    down = ["Capturing on 'eth9'",
            "dumpcap: The capture session could not be initiated on interface 'eth9' "
            "(That device is not up)."]
    assert explain_dumpcap_error(down, "eth9", None) == down[1]
    assert explain_dumpcap_error([], "lo", None) == "dumpcap exited before capturing anything"


@pytest.mark.skipif(shutil.which("dumpcap") is None, reason="dumpcap is not installed")
def test_dumpcap_gets_a_larger_kernel_buffer_for_every_interface() -> None:
    pytest.importorskip("pyshark")
    from analyzer.sources.live import LIVE_KERNEL_BUFFER_MIB, dumpcap_command

    argv = dumpcap_command("lo", "tcp")
    assert argv[argv.index("-B") + 1] == str(LIVE_KERNEL_BUFFER_MIB)
    assert argv.index("-B") < argv.index("-i")  # before -i: the default of every interface


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_default_filter_keeps_tcp_and_icmp_unreachable_errors(tmp_path: Path) -> None:
    """libpcap (tcpdump reading a file) compiles the default filter, which keeps TCP and
    ICMP/ICMPv6 destination-unreachable errors and Packet Too Big, also in a VLAN tag, but
    not pings, neighbour discovery or UDP off the QUIC and DTLS ports."""
    import dpkt

    from analyzer.live import DEFAULT_BPF
    from tests.test_decode import (
        ICMP4_PORT_UNREACHABLE,
        ICMP6_NEIGHBOR_SOLICITATION,
        ICMP6_PORT_UNREACHABLE,
    )
    from tests.test_engine_icmp import ICMP4_OFFSET, SYN4, SYN6

    icmp6_type = 14 + 40  # after Ethernet and the IPv6 header

    echo = bytearray(ICMP4_PORT_UNREACHABLE)
    echo[ICMP4_OFFSET : ICMP4_OFFSET + 2] = b"\x08\x00"  # echo request
    udp = bytearray(SYN4)
    udp[23] = 17  # the IPv4 protocol: UDP
    udp[36:38] = b"\x00\x35"  # to port 53: not a QUIC or DTLS port

    def tagged(frame: bytes) -> bytes:
        return frame[:12] + b"\x81\x00\x00\x07" + frame[12:]

    too_big = bytearray(ICMP6_PORT_UNREACHABLE)
    too_big[icmp6_type] = 2  # ICMPv6 Packet Too Big
    kept = [SYN4, ICMP4_PORT_UNREACHABLE, SYN6, ICMP6_PORT_UNREACHABLE, bytes(too_big),
            tagged(SYN4), tagged(ICMP4_PORT_UNREACHABLE), tagged(ICMP6_PORT_UNREACHABLE)]
    dropped = [bytes(echo), ICMP6_NEIGHBOR_SOLICITATION, bytes(udp), tagged(bytes(echo))]
    src, out = tmp_path / "all.pcap", tmp_path / "kept.pcap"
    with src.open("wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=1)
        for i, frame in enumerate(kept + dropped):
            writer.writepkt(frame, 1_700_000_000 + i)
    run = subprocess.run(["tcpdump", "-r", str(src), "-w", str(out), DEFAULT_BPF],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    with out.open("rb") as f:
        assert [bytes(buf) for _ts, buf in dpkt.pcap.Reader(f)] == kept


# -- the Python API ---------------------------------------------------------------------


def _in_ns(ns: Any, fn: Any, *args: Any) -> Any:
    return ns.call(fn, *args, timeout=60)


def _live_inside_a_running_loop(port: int) -> tuple[list[tuple[int, str, str | None]], bool]:
    """In the namespace: analyzer.live from inside a running asyncio loop (as in Jupyter),
    with a refused connection made while it captures. Returns the records and whether the
    loop's policy was left alone."""
    import analyzer

    done = threading.Event()

    def knock() -> None:  # until the capture has seen one
        while not done.wait(0.25):
            _refused(port)

    async def main() -> list[tuple[int, str, str | None]]:
        policy = asyncio.get_event_loop_policy()
        knocker = threading.Thread(target=knock)
        knocker.start()
        try:
            got = [(r.server_port, r.outcome, r.failure)
                   for r in analyzer.live("lo", count=1, duration=10, tls_ports=[port])]
        finally:
            done.set()
            knocker.join()
        assert asyncio.get_event_loop_policy() is policy
        return got

    records = asyncio.run(main())
    return records, threading.active_count() == 1


@needs_root
def test_live_generator_inside_a_running_event_loop(ns: Any) -> None:
    records, threads_gone = _in_ns(ns, _live_inside_a_running_loop, 7443)
    assert records == [(7443, "failed", "tcp_refused")]
    assert threads_gone
    assert _ns_pids(ns) == []


def _ticks_on_a_quiet_interface() -> list[float]:
    from analyzer.sources.base import Tick
    from analyzer.sources.live import LiveSource

    ticks: list[float] = []
    with LiveSource("lo", bpf="tcp port 9") as source:
        started = time.time()
        for event in source.events():
            if isinstance(event, Tick):
                ticks.append(event.ts - started)
            if len(ticks) == 4:
                source.stop()
    return ticks


@needs_root
def test_ticks_advance_packet_time_on_a_quiet_interface(ns: Any) -> None:
    ticks = _in_ns(ns, _ticks_on_a_quiet_interface)
    assert len(ticks) == 4
    assert ticks == sorted(ticks) and len(set(ticks)) == 4, ticks
    # One every LIVE_TICK_INTERVAL (0.25 s) of wall time, on packet time's clock.
    assert 0.0 < ticks[0] < 1.0 and 0.5 < ticks[-1] - ticks[0] < 3.0, ticks


# -- the notebook -----------------------------------------------------------------------


def test_live_notebook_runs() -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    text = "\n".join(
        out.get("text", "") + json.dumps(out.get("data", {}))
        for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
    )
    if os.geteuid() == 0 and shutil.which("dumpcap") is not None:
        assert "tcp_refused" in text and "not_tls" in text, text
    else:
        assert "Skipping the live capture cells" in text, text


# -- traffic maker (runs inside the namespace) -------------------------------------------


def _serve(port: int, ctx: ssl.SSLContext) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)

    def loop() -> None:
        while True:
            conn, _ = listener.accept()
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1024)
                    tls.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
            except (OSError, ssl.SSLError):
                conn.close()

    threading.Thread(target=loop, daemon=True).start()


def _python_client(port: int, cafile: str, tls_max: ssl.TLSVersion | None) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=cafile)
    if tls_max is not None:
        ctx.maximum_version = tls_max
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    result: dict[str, Any] = {"server_port": port, "client_port": sock.getsockname()[1],
                              "ok": False, "error": None}
    try:
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        with ctx.wrap_socket(sock, server_hostname="www.example.com") as tls:
            tls.sendall(b"GET / HTTP/1.0\r\nHost: www.example.com\r\n\r\n")
            result["ok"] = tls.recv(100).startswith(b"HTTP/1.0 200")
    except (OSError, ssl.SSLError) as e:
        result["error"] = f"{type(e).__name__}: {e}"
    finally:
        sock.close()
    return result


def _openssl_client(port: int, cafile: str) -> dict[str, Any]:
    run = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
         "www.example.com", "-tls1_2", "-CAfile", cafile],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10,
    )
    lines = [ln for ln in run.stderr.splitlines() if "alert" in ln] or [run.stderr.strip()]
    return {"server_port": port, "client_port": None, "ok": run.returncode == 0,
            "error": None if run.returncode == 0 else lines[0]}


def traffic(root: str, good_chain: str, good_key: str, bad_chain: str, bad_key: str) -> None:
    """Servers, then one connection per scenario, one JSON line of ground truth each."""

    def server_ctx(chain: str, key: str, tls_min: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(chain, key)
        if tls_min is not None:
            ctx.minimum_version = tls_min
        return ctx

    _serve(SUCCESS, server_ctx(good_chain, good_key))
    _serve(VERSION, server_ctx(good_chain, good_key, ssl.TLSVersion.TLSv1_3))
    _serve(UNTRUSTED12, server_ctx(bad_chain, bad_key))
    _serve(UNTRUSTED13, server_ctx(bad_chain, bad_key))
    clients = [
        lambda: _python_client(SUCCESS, root, None),
        lambda: _openssl_client(VERSION, root),
        lambda: _python_client(UNTRUSTED12, root, ssl.TLSVersion.TLSv1_2),
        lambda: _python_client(UNTRUSTED13, root, None),
        lambda: _python_client(REFUSED, root, None),
    ]
    for client in clients:
        print(json.dumps(client()), flush=True)
        time.sleep(0.3)


if __name__ == "__main__" and sys.argv[1:2] == ["traffic"]:
    traffic(*sys.argv[2:7])

"""Sustained rate of live mode: new TLS connections per second that ``tlsa live`` keeps up with.

Not a test: run it as root (``.venv/bin/python bench/live_rate.py``); it appends a section
to ``bench/RESULTS.md``. In a private network namespace, nginx serves TLS on
``127.0.0.1:443`` (ECDSA P-256, so the server is cheap) and a paced client (Python
``asyncio`` + ``ssl``, verification off) opens new TLS 1.3 connections at a fixed rate for a
few seconds: handshake, close. For each rate, two runs on the same traffic pattern:

- ``tlsa live -i lo --bpf "tcp port 443" --format jsonl``: every successful client
  handshake must come out as an ``established`` record, dumpcap must report no drop, and the
  99th percentile of "record read by us − packet time of the record's last packet" must
  stay under 2 s (records that pile up behind a slow engine would fail this);
- ``tshark -i lo -f "tcp port 443" -l -T fields -Y tls.handshake.type==2``: the same
  criteria with one ServerHello line per handshake.

The highest rate that passes is what the tool keeps up with on this machine. Both tools
share the machine's cores with nginx and the client, as they would on a busy host.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import re
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness import Netns  # noqa: E402
from tests.harness.servers import Server  # noqa: E402

TLSA = ROOT / ".venv" / "bin" / "tlsa"
RESULTS = ROOT / "bench" / "RESULTS.md"
PORT = 443
LATENCY_LIMIT = 2.0
DRAIN = 3.0  # seconds after the traffic for the last records to come out


@dataclass
class Trial:
    tool: str
    rate: int
    sent: int
    ok: int
    achieved: float
    seen: int
    dropped: int | None
    p50: float
    p99: float
    cpu: float  # seconds of CPU of the tool's processes (python + dumpcap, or tshark + dumpcap)

    @property
    def kept_up(self) -> bool:
        return (
            self.ok > 0 and self.seen >= self.ok and not self.dropped
            and self.p99 < LATENCY_LIMIT
        )


# -- traffic ----------------------------------------------------------------------------------


def make_cert(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench.example.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("bench.example.com")]), False)
        .sign(key, hashes.SHA256())
    )
    crt, pem = directory / "bench.crt", directory / "bench.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


ERRORS: dict[str, int] = {}


async def _one(ctx: ssl.SSLContext) -> bool:
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", PORT, ssl=ctx,
                                    server_hostname="bench.example.com"), 10)
    except (OSError, ssl.SSLError, TimeoutError) as e:
        ERRORS[type(e).__name__] = ERRORS.get(type(e).__name__, 0) + 1
        return False
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 5)
    return True


async def _paced(rate: int, seconds: float) -> tuple[int, int, float]:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    total = int(rate * seconds)
    start = time.monotonic()
    tasks = []
    for i in range(total):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(ctx)))
    spent = time.monotonic() - start
    results = await asyncio.gather(*tasks)
    return total, sum(results), total / max(spent, 1e-9)


def client_main(rate: int, seconds: float) -> None:
    """Inside the namespace: paced connections; prints sent, ok, achieved rate as JSON."""
    sent, ok, achieved = asyncio.run(_paced(rate, seconds))
    print(json.dumps({"sent": sent, "ok": ok, "achieved": achieved, "errors": ERRORS}),
          flush=True)


def run_clients(ns: Netns, rate: int, seconds: float, processes: int) -> dict[str, Any]:
    """``processes`` paced clients at ``rate / processes`` each; their totals."""
    share = [rate // processes + (1 if i < rate % processes else 0) for i in range(processes)]
    procs = [ns.popen([sys.executable, __file__, "client", str(r), str(seconds)],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE) for r in share if r]
    total: dict[str, Any] = {"sent": 0, "ok": 0, "achieved": 0.0, "errors": {}}
    for proc in procs:
        out, err = proc.communicate(timeout=seconds * 4 + 60)
        if proc.returncode != 0:
            raise RuntimeError(f"client failed: {err.decode(errors='replace')}")
        one = json.loads(out.decode().strip().splitlines()[-1])
        total["sent"] += one["sent"]
        total["ok"] += one["ok"]
        total["achieved"] += one["achieved"]
        for k, v in one["errors"].items():
            total["errors"][k] = total["errors"].get(k, 0) + v
    return total


def start_nginx(ns: Netns, tmp: Path, crt: Path, key: Path) -> Server:
    """nginx with a worker per core and room for thousands of connections (the harness's
    nginx helper is sized for scenarios, not load)."""
    conf = tmp / "nginx.conf"
    conf.write_text(f"""
worker_processes auto;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log error;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{PORT} ssl backlog=8192;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
        return 200 "ok";
    }}
}}
""")
    return Server(ns, "nginx", ["nginx", "-p", str(tmp), "-c", str(conf), "-g", "daemon off;"],
                  workdir=tmp, ports=[PORT])


# -- one run of one tool ----------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its children (still running) so far."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


class Reader:
    """Lines of a process's stdout, stamped with the wall time they were read."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.lines: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self._thread.start()

    def _run(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self.lines.append((time.time(), raw.decode(errors="replace")))

    def join(self) -> None:
        self._thread.join(10)


def collect_lines(stream: IO[bytes], sink: list[str], ready: threading.Event, marker: str) -> None:
    """Append every line of ``stream`` to ``sink``; set ``ready`` at the line holding
    ``marker`` or at the end (run on a thread: a tool's stderr must be read while it runs)."""
    for raw in stream:
        line = raw.decode(errors="replace")
        sink.append(line)
        if marker in line:
            ready.set()
    ready.set()


def _wait_for(stream: IO[bytes], marker: str, sink: list[str], timeout: float = 20) -> None:
    ready = threading.Event()
    threading.Thread(target=collect_lines, args=(stream, sink, ready, marker),
                     daemon=True).start()
    if not ready.wait(timeout):
        raise RuntimeError(f"{marker!r} not seen: {''.join(sink)}")


def run_tool(ns: Netns, tool: str, rate: int, seconds: float, processes: int) -> Trial:
    if tool == "tlsa":
        argv = [str(TLSA), "live", "-i", "lo", "--bpf", f"tcp port {PORT}", "--format", "jsonl"]
        marker = "capturing on"
    else:
        argv = ["tshark", "-i", "lo", "-f", f"tcp port {PORT}", "-n", "-l",
                "-Y", "tls.handshake.type == 2", "-T", "fields",
                "-e", "frame.time_epoch", "-e", "tcp.dstport"]
        marker = "Capturing on"
    proc = ns.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    err: list[str] = []
    out = Reader(proc.stdout)
    _wait_for(proc.stderr, marker, err)
    cpu_before = cpu_seconds(proc.pid)
    result = run_clients(ns, rate, seconds, processes)
    deadline = time.time() + DRAIN + seconds
    while time.time() < deadline and len(out.lines) < result["ok"]:
        time.sleep(0.1)
    time.sleep(0.5)
    cpu = cpu_seconds(proc.pid) - cpu_before
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    out.join()
    time.sleep(0.2)
    stderr = "".join(err)
    delays: list[float] = []
    seen = 0
    dropped: int | None = None
    if tool == "tlsa":
        for when, line in out.lines:
            r = json.loads(line)
            if r["server_port"] == PORT and r["outcome"] == "established":
                seen += 1
                delays.append(when - r["ts_end"])
        found = re.search(r"(\d+) dropped", stderr)
        dropped = int(found.group(1)) if found else None
    else:
        for when, line in out.lines:
            fields = line.split("\t")
            if len(fields) >= 2 and fields[1].strip() and fields[0]:
                seen += 1
                delays.append(when - float(fields[0]))
        found = re.search(r"(\d+) packets? dropped", stderr)
        dropped = int(found.group(1)) if found else 0
    delays.sort()
    p50 = statistics.median(delays) if delays else float("inf")
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))] if delays else float("inf")
    return Trial(tool=tool, rate=rate, sent=result["sent"], ok=result["ok"],
                 achieved=result["achieved"], seen=seen, dropped=dropped, p50=p50, p99=p99,
                 cpu=cpu)


# -- the whole run ----------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", default="100,200,400,600,800,1000,1200,1400,1600,2000",
                    help="connections per second to try, in order")
    ap.add_argument("--seconds", type=float, default=5.0, help="traffic per trial")
    ap.add_argument("--tools", default="tlsa,tshark")
    ap.add_argument("--clients", type=int, default=2, help="client processes")
    ap.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("live_rate: needs root (network namespace, packet capture)")
    rates = [int(r) for r in args.rates.split(",")]
    load = os.getloadavg()
    trials: list[Trial] = []
    with tempfile.TemporaryDirectory() as tmp, Netns() as ns:
        crt, key = make_cert(Path(tmp))
        server = start_nginx(ns, Path(tmp), crt, key)
        try:
            ns.sh(["sysctl", "-w", "net.core.somaxconn=4096"], check=False)
            for tool in args.tools.split(","):
                for rate in rates:
                    trial = run_tool(ns, tool, rate, args.seconds, args.clients)
                    trials.append(trial)
                    print(f"{tool:6} {rate:5}/s  achieved {trial.achieved:7.1f}/s  "
                          f"ok {trial.ok:5}  seen {trial.seen:5}  dropped {trial.dropped}  "
                          f"p50 {trial.p50:6.3f}s  p99 {trial.p99:6.3f}s  cpu {trial.cpu:5.2f}s  "
                          f"{'kept up' if trial.kept_up else 'FELL BEHIND'}", flush=True)
                    if not trial.kept_up:
                        break
        finally:
            server.stop()
    report = render(trials, args.seconds, load)
    print(report)
    if not args.no_write:
        existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
        RESULTS.write_text(existing.rstrip("\n") + "\n\n" + report)


def render(trials: list[Trial], seconds: float, load: tuple[float, float, float]) -> str:
    best: dict[str, float] = {}
    for t in trials:
        if t.kept_up:
            best[t.tool] = max(best.get(t.tool, 0.0), t.achieved)
    tshark = subprocess.run(["tshark", "-v"], capture_output=True, text=True).stdout
    lines = [
        f"## Live capture sustained rate ({dt.date.today().isoformat()}, bench/live_rate.py)",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, "
        f"{tshark.splitlines()[0].rstrip('.')}."
        f" New TLS 1.3 connections on `lo` in a namespace (nginx, ECDSA P-256; Python asyncio "
        f"client), {seconds:g} s per trial; 'kept up' = every client handshake reported, no "
        f"packet dropped, p99 delay (record read − its last packet) < {LATENCY_LIMIT:g} s. "
        f"Load average when the run started: {load[0]:.1f} (other work shared the machine).",
        "",
        "| tool | target /s | achieved /s | handshakes ok | reported | dropped | p50 delay s "
        "| p99 delay s | tool CPU s | kept up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for t in trials:
        lines.append(
            f"| {t.tool} | {t.rate} | {t.achieved:.0f} | {t.ok} | {t.seen} | {t.dropped} "
            f"| {t.p50:.3f} | {t.p99:.3f} | {t.cpu:.2f} | {'yes' if t.kept_up else 'no'} |"
        )
    lines.append("")
    for tool in sorted({t.tool for t in trials}):
        lines.append(f"- {tool}: highest rate kept up: {best.get(tool, 0.0):.0f} new TLS "
                     "connections/s")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:2] == ["client"]:
        client_main(int(sys.argv[2]), float(sys.argv[3]))
    else:
        main()

"""Cost per QUIC connection: ``tlsa analyze`` against tshark on the same capture.

Not a test: run it as root (``.venv/bin/python bench/quic_cost.py``); it writes (or
replaces) the "QUIC cost per connection" section of ``bench/RESULTS.md``. In a pair of
private network namespaces (the lab of ``tests/harness``), an aioquic server
(``tests/harness/quic.py``: the TLS handshake, a PING each way, a close) serves UDP 443 and
one client process opens ``--connections`` QUIC v1 connections, ``--parallel`` at a time;
one in ``--alpn-every`` offers an ALPN the server refuses (a CONNECTION_CLOSE in the
server's Initial), so the capture has failures too. tcpdump captures the client's side.

Timed, interleaved, median of ``--rounds`` whole processes each:

- ``tlsa analyze FILE --format jsonl -o /dev/null --workers 1``;
- ``tshark -n -r FILE -Y "quic && (tls.handshake.type == 1 || tls.handshake.type == 2)"
  -T fields`` with the fields a QUIC record starts from (addresses, ports, QUIC version,
  connection IDs, handshake type, SNI, ALPN, cipher suite, JA3): tshark removes the Initial
  protection too;
- both on a capture holding a single QUIC connection, for the start-up cost.

Cost per connection = (time on the capture − time on the one-connection capture) /
connections. tlsa's records are checked: one per connection, the refused ones
``alpn_mismatch``, the others ``established``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from installed import as_installed  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
TLSA = ROOT / ".venv" / "bin" / "tlsa"
HOST = "www.example.com"
SECTION = "## QUIC cost per connection"
TSHARK_FIELDS = ("frame.time_epoch", "ip.src", "udp.srcport", "ip.dst", "udp.dstport",
                 "quic.version", "quic.dcid", "quic.scid", "tls.handshake.type",
                 "tls.handshake.extensions_server_name", "tls.handshake.extensions_alpn_str",
                 "tls.handshake.ciphersuite", "tls.handshake.ja3")


# -- the client (run inside the client namespace) --------------------------------------------


async def _one(host: str, alpn: str, cafile: str) -> bool:
    from aioquic.asyncio import connect
    from aioquic.quic.configuration import QuicConfiguration

    config = QuicConfiguration(is_client=True, alpn_protocols=[alpn], server_name=HOST)
    config.load_verify_locations(cafile)
    try:
        async with connect(host, 443, configuration=config) as client:
            await asyncio.wait_for(client.ping(), 5)
        return True
    except Exception:  # a refusal is part of the corpus
        return False


async def _clients(args: argparse.Namespace) -> None:
    gate = asyncio.Semaphore(args.parallel)
    results: list[bool] = []

    async def run(n: int) -> None:
        async with gate:
            alpn = "hq-interop" if args.alpn_every and n % args.alpn_every == 0 else "h3"
            results.append(await _one(args.host, alpn, args.cafile))

    await asyncio.gather(*(run(n) for n in range(args.connections)))
    print(json.dumps({"ok": sum(results), "failed": len(results) - sum(results)}))


# -- making the capture --------------------------------------------------------------------


def make_capture(work: Path, connections: int, parallel: int, alpn_every: int) -> Path:
    from tests.harness import Capture, Lab, TestPKI
    from tests.harness.quic import start_server

    pki = TestPKI(work / "pki")
    cert = pki.server(HOST)
    pcap = work / f"quic-{connections}.pcap"
    with Lab() as lab:
        srv = start_server(lab.server, work / "srv", ["--cert", str(cert.chain), "--key",
                                                      str(cert.key), "--idle", "2"])
        try:
            with Capture(lab.client, pcap, bpf="udp port 443"):
                done = lab.client.run(
                    [sys.executable, str(Path(__file__).resolve()), "client", "--host",
                     lab.server_ip, "--cafile", str(pki.root), "--connections",
                     str(connections), "--parallel", str(parallel), "--alpn-every",
                     str(alpn_every)], timeout=60 + connections)
        finally:
            srv.stop()
    print(f"capture: {pcap.name}, {pcap.stat().st_size / 1e6:.1f} MB; clients: "
          f"{done.stdout.strip()}", flush=True)
    return pcap


# -- timing --------------------------------------------------------------------------------


def tlsa_argv(path: Path, *, to_null: bool = True) -> list[str]:
    tlsa = [str(TLSA)] if TLSA.exists() else [sys.executable, "-m", "analyzer"]
    out = ["-o", os.devnull] if to_null else []
    return [*tlsa, "analyze", str(path), "--format", "jsonl", *out, "--workers", "1"]


def tshark_argv(path: Path) -> list[str]:
    argv = ["tshark", "-n", "-r", str(path), "-Y",
            "quic && (tls.handshake.type == 1 || tls.handshake.type == 2)", "-T", "fields"]
    for name in TSHARK_FIELDS:
        argv += ["-e", name]
    return argv


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - start


def check_records(path: Path, connections: int, alpn_every: int) -> dict[str, int]:
    out = subprocess.run(tlsa_argv(path, to_null=False), capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    records = [json.loads(line) for line in out.stdout.splitlines()]
    quic = [r for r in records if r["transport"] == "quic"]
    counts: dict[str, int] = {}
    for r in quic:
        key = r["failure"] or r["outcome"]
        counts[key] = counts.get(key, 0) + 1
    refused = len(range(0, connections, alpn_every)) if alpn_every else 0
    assert len(quic) == connections, (len(quic), connections)
    assert counts.get("alpn_mismatch", 0) == refused, counts
    assert counts.get("established", 0) == connections - refused, counts
    return counts


def measure(big: Path, one: Path, rounds: int) -> dict[str, list[float]]:
    runs: dict[str, list[float]] = {"tlsa": [], "tshark": [], "tlsa one": [], "tshark one": []}
    for _ in range(rounds):
        runs["tlsa"].append(timed(tlsa_argv(big)))
        runs["tshark"].append(timed(tshark_argv(big)))
        runs["tlsa one"].append(timed(tlsa_argv(one)))
        runs["tshark one"].append(timed(tshark_argv(one)))
    return runs


def report(runs: dict[str, list[float]], connections: int, counts: dict[str, int],
           size_mb: float, packets: int) -> str:
    med = {k: statistics.median(v) for k, v in runs.items()}
    per = {tool: (med[tool] - med[f"{tool} one"]) / connections * 1e6 for tool in ("tlsa",
                                                                                 "tshark")}
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        SECTION, "",
        f"Made by `python bench/quic_cost.py` on {when} ({platform.node() or 'this machine'}, "
        f"`nproc` {os.cpu_count()}): aioquic 1.x client and server in two namespaces, "
        f"{connections} QUIC v1 connections ({counts}), {packets} packets, {size_mb:.1f} MB; "
        f"median of {len(runs['tlsa'])} interleaved runs of whole processes.", "",
        "| command | capture s | one-connection capture s | µs per connection |",
        "|---|---:|---:|---:|",
    ]
    for tool in ("tlsa", "tshark"):
        lines.append(f"| {tool} | {med[tool]:.2f} | {med[f'{tool} one']:.2f} | "
                     f"{per[tool]:.0f} |")
    lines += ["", f"tlsa costs {per['tlsa'] / per['tshark']:.2f} × tshark per QUIC connection "
              "(tshark only lists the hellos; tlsa also builds and judges each record).", ""]
    return "\n".join(lines)


def write_section(text: str) -> None:
    old = RESULTS.read_text() if RESULTS.exists() else ""
    if SECTION in old:
        head, _, rest = old.partition(SECTION)
        tail = rest.split("\n## ", 1)
        old = head + ("## " + tail[1] if len(tail) > 1 else "")
    RESULTS.write_text(old.rstrip("\n") + "\n\n" + text)


def packets_in(path: Path) -> int:
    out = subprocess.run(["capinfos", "-c", "-M", str(path)], capture_output=True, text=True,
                         check=False).stdout
    digits = [w for w in out.split() if w.isdigit()]
    return int(digits[-1]) if digits else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", nargs="?", default="bench", choices=("bench", "client"))
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--alpn-every", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--host")
    parser.add_argument("--cafile")
    parser.add_argument("--no-results", action="store_true", help="print only")
    args = parser.parse_args()
    as_installed()
    if args.role == "client":
        ssl.create_default_context()  # fail early if ssl is broken
        asyncio.run(_clients(args))
        return
    with tempfile.TemporaryDirectory(prefix="tlsa-quic-bench-") as tmp:
        work = Path(tmp)
        big = make_capture(work, args.connections, args.parallel, args.alpn_every)
        one = make_capture(work, 1, 1, 0)
        counts = check_records(big, args.connections, args.alpn_every)
        runs = measure(big, one, args.rounds)
        text = report(runs, args.connections, counts, big.stat().st_size / 1e6,
                      packets_in(big))
    print(text)
    if not args.no_results:
        write_section(text)


if __name__ == "__main__":
    main()


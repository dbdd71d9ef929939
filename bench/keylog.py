"""What analysing with a key log costs: ``tlsa analyze --keylog`` against the same capture
without one, and against tshark decrypting it.

Not a test: run it as root (``python bench/keylog.py``); it appends a section to
``bench/RESULTS.md``. The corpus is made with real stacks in a private network
namespace: nginx serves TLS 1.3 (AES-128-GCM) and TLS 1.2 (ECDHE-RSA-AES128-GCM and
ECDHE-RSA-AES128-SHA256 CBC) on loopback, and Python's ``ssl`` (OpenSSL) opens
``--connections`` connections spread over the three, each a GET of a small page, writing
its key log with ``keylog_filename``; tcpdump captures it. Then, interleaved, median of 3:

- ``tlsa analyze CAPTURE -f jsonl --workers 1`` (no key log), and with ``--keylog KEYS``;
- ``tshark -r CAPTURE -Y tls.handshake -T fields -e tcp.stream -e tls.handshake.type``,
  without and with ``-o tls.keylog_file:KEYS``.

Both tools must agree that they decrypted: every tlsa record decrypted on both sides, and
tshark showing the TLS 1.3 Certificate messages (type 11) that only decryption reveals.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from installed import as_installed  # noqa: E402

from tests.harness import Netns, TestPKI  # noqa: E402
from tests.harness.capture import Capture, port_filter  # noqa: E402
from tests.harness.servers import nginx  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
PORTS = {4443: ("TLSv1.3", "HIGH"), 4444: ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"),
         4445: ("TLSv1.2", "ECDHE-RSA-AES128-SHA256")}
HOST = "www.example.com"

CLIENT = """
import socket, ssl, sys
ca, keys, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ports = [int(p) for p in sys.argv[4:]]
ctx = ssl.create_default_context(cafile=ca)
ctx.keylog_filename = keys
for i in range(n):
    port = ports[i % len(ports)]
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="www.example.com") as tls:
            tls.sendall(b"GET / HTTP/1.0\\r\\nHost: www.example.com\\r\\n\\r\\n")
            while tls.recv(4096):
                pass
"""


def make_corpus(work: Path, connections: int) -> tuple[Path, Path]:
    pki = TestPKI(work / "pki")
    cert = pki.server(HOST)
    sites = "".join(f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {HOST};
        ssl_certificate {cert.chain};
        ssl_certificate_key {cert.key};
        ssl_protocols {version};
        ssl_ciphers {ciphers};
        location / {{ return 200 "hello\\n"; }}
    }}""" for port, (version, ciphers) in PORTS.items())
    capture, keys = work / "keyed.pcap", work / "keyed.keys"
    with Netns() as ns:
        server = nginx(ns, work / "nginx", sites, ports=list(PORTS))
        try:
            with Capture(ns, capture, interfaces=("lo",), bpf=port_filter(PORTS)):
                run = ns.run([sys.executable, "-c", CLIENT, str(pki.root), str(keys),
                              str(connections), *map(str, PORTS)], timeout=900)
                if run.returncode:
                    raise SystemExit(f"client failed: {run.output[-2000:]}")
        finally:
            server.stop()
    return capture, keys


def tlsa(capture: Path, keys: Path | None, out: Path) -> list[str]:
    argv = [sys.executable, "-m", "analyzer", "analyze", str(capture), "-f", "jsonl",
            "-o", str(out), "--workers", "1"]
    return argv + (["--keylog", str(keys)] if keys else [])


def tshark(capture: Path, keys: Path | None) -> list[str]:
    argv = ["tshark", "-n", "-r", str(capture)]
    for port in PORTS:
        argv += ["-d", f"tcp.port=={port},tls"]
    if keys:
        argv += ["-o", f"tls.keylog_file:{keys}"]
    return [*argv, "-Y", "tls.handshake", "-T", "fields", "-e", "tcp.stream", "-e",
            "tls.handshake.type"]


def timed(argv: list[str], stdout: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    with stdout.open("w") as f:
        subprocess.run(argv, stdout=f, stderr=subprocess.DEVNULL, check=True, cwd=ROOT, env=env)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args()
    as_installed()
    with tempfile.TemporaryDirectory(prefix="tlsa-keylog-bench-") as tmp:
        work = Path(tmp)
        capture, keys = make_corpus(work, args.connections)
        runs = {
            "tlsa": (tlsa(capture, None, work / "plain.jsonl"), work / "o1"),
            "tlsa --keylog": (tlsa(capture, keys, work / "keyed.jsonl"), work / "o2"),
            "tshark": (tshark(capture, None), work / "t1.txt"),
            "tshark -o tls.keylog_file": (tshark(capture, keys), work / "t2.txt"),
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        load = [os.getloadavg()]
        for _ in range(args.rounds):
            for name, (argv, out) in runs.items():
                times[name].append(timed(argv, out))
            load.append(os.getloadavg())
        keyed = [json.loads(line) for line in (work / "keyed.jsonl").read_text().splitlines()]
        plain = [json.loads(line) for line in (work / "plain.jsonl").read_text().splitlines()]
        both = sum(1 for r in keyed if r["decrypted"] == ["client", "server"])
        certs_plain = sum(" 11" in f" {line.split(chr(9))[-1].replace(',', ' ')}"
                          for line in (work / "t1.txt").read_text().splitlines())
        certs_keyed = sum(" 11" in f" {line.split(chr(9))[-1].replace(',', ' ')}"
                          for line in (work / "t2.txt").read_text().splitlines())
        size = capture.stat().st_size
        frames = int(subprocess.run(["capinfos", "-Mc", str(capture)], capture_output=True,
                                    text=True, check=False).stdout.split()[-1] or 0)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    tls13 = args.connections // len(PORTS) + (args.connections % len(PORTS) > 0)
    lines = [
        "",
        "## Key logs",
        "",
        f"Made by `python bench/keylog.py` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; "
        f"{os.cpu_count()} cores; corpus: nginx 1.22 and Python ssl (OpenSSL 3.0, "
        "`keylog_filename`) on loopback, "
        f"{len(keyed)} connections ({tls13} TLS 1.3 AES-128-GCM, the rest TLS 1.2 "
        "ECDHE-RSA-AES128-GCM-SHA256 and ECDHE-RSA-AES128-SHA256 CBC), each a GET of a small "
        f"page; {size / 1e6:.1f} MB, {frames:,} frames. Whole processes, interleaved, median "
        f"of {args.rounds}; load averages before and after each round: "
        + " → ".join(" ".join(f"{x:.2f}" for x in la) for la in load) + ".",
        "",
        "| command | median s | min–max s | connections/s | vs `tlsa` |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, ts in times.items():
        lines.append(f"| `{name}` | {med[name]:.2f} | {min(ts):.2f}–{max(ts):.2f} | "
                     f"{len(keyed) / med[name]:,.0f} | {med[name] / med['tlsa']:.2f} |")
    lines += [
        "",
        f"- The key log costs tlsa {med['tlsa --keylog'] / med['tlsa']:.2f}× its time without "
        f"one ({(med['tlsa --keylog'] - med['tlsa']) / len(keyed) * 1e6:,.0f} µs per "
        "connection: key schedule, and opening the handshake records and the few small "
        "records after them; bulk application data is never opened).",
        f"- tshark decrypting the same capture takes "
        f"{med['tshark -o tls.keylog_file'] / med['tlsa --keylog']:.2f}× tlsa's time with the "
        f"key log (tshark's own cost of decryption: "
        f"{med['tshark -o tls.keylog_file'] / med['tshark']:.2f}×; it decrypts every record, "
        "application data included).",
        f"- Both decrypted: tlsa records decrypted on both sides {both} of {len(keyed)} "
        f"(without the key log: {sum(1 for r in plain if r['decrypted'])}); connections "
        f"in which tshark shows a Certificate: {certs_keyed} with the key log, {certs_plain} "
        "without (the TLS 1.3 ones need it).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        with RESULTS.open("a") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

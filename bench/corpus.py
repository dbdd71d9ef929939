#!/usr/bin/env python3
"""Benchmark corpora: realistic captures from real TLS stacks, with per-connection truth.

What it does: in a ``tests.harness.Lab`` (client and server namespaces joined by a veth
link, MTU 1500, offloads off, so bulk data is ~1448-byte segments and ACKs) it starts a
multi-site Python ``ssl`` HTTPS server, two ``openssl s_server -WWW`` hosts, a silent host
and a closed host, then runs thousands of client connections in parallel (Python ``ssl``
and ``openssl s_client``) while tcpdump captures the client's interface. Most connections
succeed over TLS 1.2/1.3 and move 100 B to several MB each way; a few percent fail for the
causes of SPEC §1 (version, cipher, expired/untrusted certificate, SNI, refused port, reset
after the ClientHello, silent server). Every client binds a known address and port, so the
manifest (``manifest.jsonl``, one line per connection) names the 4-tuple; its truth comes
from the set-up and from what each client reported, never from the analyzer. A connection
whose client reported something other than the set-up intended is kept with
``checked: false`` and left out of accuracy figures.

Sizes: ``quick`` (a few dozen connections, for smoke tests), ``small`` (~50 MB, ~2k
connections) and ``large`` (~1 GB, ~20k connections, ~1M packets). Each is written once to
``bench/corpus/<size>-g<GENERATOR_VERSION>/`` as ``capture.pcap``, ``capture.pcapng``
(editcap -F pcapng) and ``capture.pcap.gz`` and reused while the generator version and the
parameters stay the same. A capture whose tcpdump reports packets dropped by the kernel is
refused (the truth would not match the file).

What it does not do: decode TLS (the cross-check only confirms each manifest 4-tuple opened
with a SYN in the capture, with a ``struct`` walk), or run anything outside the namespaces.
Needs root. Usage: ``python bench/corpus.py small [--force]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from floors import syn_tuples  # noqa: E402

from tests.harness import Lab, TestPKI, missing_requirements  # noqa: E402
from tests.harness.capture import Capture, CaptureError  # noqa: E402
from tests.harness.pki import LeafKind  # noqa: E402
from tests.harness.servers import Server  # noqa: E402

GENERATOR_VERSION = 2
CORPUS_DIR = HERE / "corpus"
TRAFFIC = HERE / "traffic.py"
TOOLS = ("ip", "iptables", "ethtool", "tcpdump", "editcap", "openssl", "gzip", "nice")
NICE = ["nice", "-n", "10"]  # servers and clients yield the CPU to tcpdump (2-core machines)

# Hosts of the lab (addresses exist only inside its namespaces).
WEB_IP = "10.99.0.1"  # multi-site Python ssl server (the Lab's server address)
FILES_IP = "10.99.0.3"  # openssl s_server -WWW, TLS 1.2 and 1.3
STATIC_IP = "10.99.0.4"  # openssl s_server -WWW -tls1_2
CLOSED_IP = "10.99.0.5"  # a host with nothing listening on 443: SYN answered by RST
SILENT_IP = "10.99.0.6"  # accepts TCP and never answers
CLIENT_IPS = ("10.99.0.2", "10.99.0.21", "10.99.0.22", "10.99.0.23")
PORT = 443
FIRST_CLIENT_PORT = 10000  # client ports are assigned, never reused, below the ephemeral range

GOOD_SITES = ("www.example.com", "api.example.com", "cdn.example.com", "shop.example.com")
BLOCKED = "blocked.example.com"  # a middlebox resets connections whose ClientHello names it
CERT_SITES = {  # name -> leaf kind served for it
    "expired.example.com": LeafKind.EXPIRED,
    "future.example.com": LeafKind.NOT_YET_VALID,
    "selfsigned.example.com": LeafKind.SELF_SIGNED,
    "chain.example.com": LeafKind.MISSING_INTERMEDIATE,
    "intranet.example.com": LeafKind.INSPECTION,
}
WRONG_HOST = "legacy.example.com"  # served www.example.com's certificate
UNKNOWN_HOST = "old.example.org"  # not hosted: unrecognized_name
FILES_HOST, STATIC_HOST = "files.example.com", "static.example.com"
SERVER_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"  # TLS 1.2 suites of the Python server
SERVER = f"Python {sys.version_info.major}.{sys.version_info.minor} ssl server"

MIN_BYTES, MAX_BYTES = 100, 8 * 1024 * 1024
OPENSSL_SIZES = tuple(int(100 * 1.6**i) for i in range(22))  # 100 B .. ~2.0 MB files
HANDSHAKE_OVERHEAD = 6000  # file bytes per connection besides its data (hellos, certs, ACKs)
FRAME_OVERHEAD = 1.085  # file bytes per data byte (record + frame headers, ACK frames)
MAX_UNCHECKED = 0.02  # refuse a corpus when more clients than this misbehaved
OK_TIMEOUT, FAIL_TIMEOUT, SILENT_TIMEOUT = 120.0, 20.0, 1.5


@dataclass(frozen=True, slots=True, kw_only=True)
class Size:
    """Parameters of one corpus size (part of the cache key)."""

    name: str
    connections: int
    target_bytes: int  # capture file size aimed at
    workers: int  # parallel client connections
    pacing: int  # bytes/s per sending socket (kernel pacing), so tcpdump keeps up
    seed: int = 8


SIZES = {
    "quick": Size(name="quick", connections=40, target_bytes=2_000_000, workers=16,
                  pacing=20_000_000),
    "small": Size(name="small", connections=2000, target_bytes=50_000_000, workers=48,
                  pacing=20_000_000),
    "large": Size(name="large", connections=20000, target_bytes=1_000_000_000, workers=64,
                  pacing=20_000_000),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Kind:
    """One kind of connection: what is set up, what is true, what the client must report."""

    name: str
    weight: float
    outcome: str
    failure: str | None
    side: str | None
    stacks: tuple[str, ...]
    says: tuple[str, ...] = ()  # one of these (any case) in the client's error
    setup: str = ""


KINDS = (
    Kind(name="ok_get", weight=0.70, outcome="established", failure=None, side=None,
         stacks=("python",), setup=f"{SERVER}, good certificate; Python client GET"),
    Kind(name="ok_upload", weight=0.06, outcome="established", failure=None, side=None,
         stacks=("python",), setup=f"{SERVER}, good certificate; Python client POST"),
    Kind(name="ok_openssl", weight=0.08, outcome="established", failure=None, side=None,
         stacks=("openssl",), setup="openssl s_server -WWW; openssl s_client GET"),
    Kind(name="version", weight=0.02, outcome="failed", failure="version_mismatch",
         side="server", stacks=("python", "openssl"),
         says=("protocol_version", "protocol version"),
         setup=f"{SERVER} with minimum TLSv1.2; client offering only TLSv1.0-TLSv1.1"),
    Kind(name="cipher", weight=0.02, outcome="failed", failure="cipher_mismatch",
         side="server", stacks=("python",), says=("handshake_failure", "handshake failure"),
         setup=f"{SERVER} with ciphers {SERVER_CIPHERS}; TLS 1.2 client offering only "
               "RSA key exchange suites"),
    Kind(name="expired", weight=0.02, outcome="failed", failure="certificate_expired",
         side="client", stacks=("python", "openssl"),
         says=("certificate has expired", "certificate is not yet valid"),
         setup=f"{SERVER} serving an expired or not-yet-valid certificate; verifying client"),
    Kind(name="untrusted", weight=0.02, outcome="failed", failure="certificate_untrusted",
         side="client", stacks=("python", "openssl"),
         says=("self-signed certificate", "self signed certificate",
               "unable to get local issuer certificate"),
         setup=f"{SERVER} serving a self-signed, chain-less or interception-CA certificate; "
               "verifying client"),
    Kind(name="wrong_host", weight=0.01, outcome="failed", failure="sni_mismatch",
         side="client", stacks=("python", "openssl"), says=("hostname mismatch",),
         setup=f"{SERVER} serving www.example.com's certificate for {WRONG_HOST}; "
               "client checking the host name"),
    Kind(name="unrecognized_name", weight=0.01, outcome="failed", failure="sni_mismatch",
         side="server", stacks=("python",), says=("unrecognized_name", "unrecognized name"),
         setup=f"{SERVER} not hosting {UNKNOWN_HOST} (sni_callback answers "
               "unrecognized_name)"),
    Kind(name="refused", weight=0.015, outcome="failed", failure="tcp_refused", side="server",
         stacks=("python",), says=("refused",),
         setup=f"nothing listening on {CLOSED_IP}:443; the kernel answers the SYN with RST"),
    Kind(name="reset", weight=0.015, outcome="failed", failure="reset_during_handshake",
         side="network", stacks=("python",), says=("reset",),
         setup=f"iptables on the server host resets (REJECT tcp-reset) the ClientHello "
               f"naming {BLOCKED}"),
    Kind(name="silent", weight=0.01, outcome="failed", failure="no_server_response",
         side="server", stacks=("python",), says=("timed out",),
         setup=f"a server on {SILENT_IP}:443 that accepts TCP and never answers; client "
               f"gives up after {SILENT_TIMEOUT} s and closes"),
)
KIND_BY_NAME = {k.name: k for k in KINDS}


class CorpusError(RuntimeError):
    """The corpus could not be made faithfully (drops, misbehaving clients, tool errors)."""


@dataclass(slots=True, kw_only=True)
class Corpus:
    """A generated corpus on disk."""

    size: str
    directory: Path
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def pcap(self) -> Path:
        return self.directory / "capture.pcap"

    @property
    def pcapng(self) -> Path:
        return self.directory / "capture.pcapng"

    @property
    def gz(self) -> Path:
        return self.directory / "capture.pcap.gz"

    @property
    def root_ca(self) -> Path:
        return self.directory / "root-ca.pem"

    @property
    def manifest(self) -> Path:
        return self.directory / "manifest.jsonl"

    def truth(self) -> list[dict[str, Any]]:
        with self.manifest.open() as f:
            return [json.loads(line) for line in f]


# -- the plan: which connections, with which truth ---------------------------------------------


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _draw_size(rng: random.Random) -> float:
    """Bytes of one request or response body: mostly small, a few large (production-like)."""
    r = rng.random()
    if r < 0.80:
        return _log_uniform(rng, 100, 16_000)
    if r < 0.985:
        return _log_uniform(rng, 16_000, 512_000)
    return _log_uniform(rng, 512_000, 4_000_000)


def plan(size: Size, cafile: str) -> list[dict[str, Any]]:
    """Every connection job of the corpus, in start order, with its intended kind."""
    rng = random.Random(size.seed)
    weights = [k.weight for k in KINDS]
    kinds = rng.choices(KINDS, weights=weights, k=size.connections)
    # every kind at least once, so even the quick corpus covers each failure cause
    for i, kind in enumerate(KINDS):
        kinds[(i * 7919) % size.connections] = kind
    raw = [_draw_size(rng) for _ in kinds]
    moved = sum(r for k, r in zip(kinds, raw, strict=True) if k.outcome == "established")
    payload = (size.target_bytes - size.connections * HANDSHAKE_OVERHEAD) / FRAME_OVERHEAD
    scale = max(payload, 0) / moved if moved else 1.0
    jobs = []
    for i, (kind, r) in enumerate(zip(kinds, raw, strict=True)):
        n = int(min(max(r * scale, MIN_BYTES), MAX_BYTES))
        job = _job(rng, kind, n, cafile)
        job.update(id=i, client_ip=CLIENT_IPS[i % len(CLIENT_IPS)],
                   client_port=FIRST_CLIENT_PORT + i, server_port=PORT, cafile=cafile,
                   pacing=size.pacing)
        jobs.append(job)
    return jobs


def _job(rng: random.Random, kind: Kind, n: int, cafile: str) -> dict[str, Any]:
    stack = rng.choice(kind.stacks)
    tls12 = rng.random() < 0.35
    job: dict[str, Any] = {
        "kind": kind.name, "stack": stack, "server_ip": WEB_IP, "sni": rng.choice(GOOD_SITES),
        "path": "/bytes/2", "upload": 0, "response": 2, "timeout": FAIL_TIMEOUT,
        "tls_max": "TLSv1_2" if tls12 else None, "version": "TLSv1.2" if tls12 else "TLSv1.3",
    }
    if kind.name == "ok_get":
        job.update(path=f"/bytes/{n}", response=n, timeout=OK_TIMEOUT)
    elif kind.name == "ok_upload":
        job.update(upload=n, response=len(b'{"stored": true}\n'), timeout=OK_TIMEOUT)
    elif kind.name == "ok_openssl":
        size = min(OPENSSL_SIZES, key=lambda s: abs(math.log(s / n)))
        host = rng.choice((FILES_IP, STATIC_IP))
        static = host == STATIC_IP
        job.update(server_ip=host, sni=STATIC_HOST if static else FILES_HOST,
                   path=f"/{size}.bin", response=size, timeout=OK_TIMEOUT,
                   version="TLSv1.2" if static or tls12 else "TLSv1.3",
                   openssl_args=["-tls1_2"] if tls12 and not static else [])
    elif kind.name == "version":
        job.update(tls_max="TLSv1_1", tls_min="TLSv1", ciphers="DEFAULT@SECLEVEL=0",
                   version=None, openssl_args=["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"])
    elif kind.name == "cipher":
        job.update(tls_max="TLSv1_2", ciphers="AES128-SHA256:AES256-GCM-SHA384", version=None)
    elif kind.name == "expired":
        job["sni"] = rng.choice(("expired.example.com", "future.example.com"))
    elif kind.name == "untrusted":
        job["sni"] = rng.choice(("selfsigned.example.com", "chain.example.com",
                                 "intranet.example.com"))
    elif kind.name == "wrong_host":
        job["sni"] = WRONG_HOST
    elif kind.name == "unrecognized_name":
        job.update(sni=UNKNOWN_HOST, version=None)
    elif kind.name == "refused":
        job.update(server_ip=CLOSED_IP, version=None)
    elif kind.name == "reset":
        job.update(sni=BLOCKED, version=None)
    elif kind.name == "silent":
        job.update(server_ip=SILENT_IP, timeout=SILENT_TIMEOUT, version=None)
    if stack == "openssl" and kind.name != "ok_openssl":
        args = list(job.get("openssl_args", [])) or (["-tls1_2"] if tls12 else [])
        job["openssl_args"] = args
    return job


# -- truth: the set-up, confirmed by what each client reported ----------------------------------


def truth_line(size: str, job: dict[str, Any], result: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest line of one connection (SPEC §3 field names where they exist)."""
    kind = KIND_BY_NAME[job["kind"]]
    report = "no report" if result is None else (
        f"ok, {result['version']}, body {result['body']} B" if result["ok"]
        else str(result["error"]))
    checked, why = _confirmed(kind, job, result)
    version = job["version"]
    if kind.outcome == "established" and result is not None and result["ok"]:
        version = result["version"]
    return {
        "corpus": size, "id": job["id"], "kind": kind.name, "stack": job["stack"],
        "client_ip": job["client_ip"], "client_port": job["client_port"],
        "server_ip": job["server_ip"], "server_port": job["server_port"], "sni": job["sni"],
        "outcome": kind.outcome, "failure": kind.failure, "failure_side": kind.side,
        "version": version, "request_bytes": job["upload"],
        "response_bytes": job["response"] if kind.outcome == "established" else 0,
        "setup": kind.setup + (f" ({job['stack']} {' '.join(job.get('openssl_args', []))})"
                               if job["stack"] == "openssl" else ""),
        "client_report": report[:300], "checked": checked, "unchecked_why": why,
    }


def _confirmed(kind: Kind, job: dict[str, Any],
               result: dict[str, Any] | None) -> tuple[bool, str | None]:
    if result is None:
        return False, "the client wrote no result"
    if kind.outcome == "established":
        if not result["ok"]:
            return False, "the client failed"
        if result["version"] != job["version"]:
            return False, f"negotiated {result['version']}, set up for {job['version']}"
        if result["body"] != job["response"]:
            return False, f"received {result['body']} of {job['response']} bytes"
        return True, None
    if result["ok"]:
        return False, "the client succeeded"
    error = str(result["error"]).lower()
    if not any(s in error for s in kind.says):
        return False, f"the client reported something else (expected one of {kind.says})"
    return True, None


# -- running it ----------------------------------------------------------------------------------


def _wait_listening(server: Server, ip: str, port: int, timeout: float = 10.0) -> None:
    """Wait until ``ip:port`` is in LISTEN state (several servers share port 443)."""
    want = "".join(f"{int(b):02X}" for b in reversed(ip.split("."))) + f":{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise CorpusError(f"{server.name} exited: {server.text()[-500:]}")
        table = Path(f"/proc/{server.proc.pid}/net/tcp").read_text().splitlines()[1:]
        if any(f.split()[1] == want and f.split()[3] == "0A" for f in table):
            return
        time.sleep(0.02)
    raise CorpusError(f"{server.name} not listening on {ip}:{port}: {server.text()[-500:]}")


def _start_servers(lab: Lab, pki: TestPKI, work: Path, size: Size) -> list[Server]:
    good = {name: pki.server(name) for name in (*GOOD_SITES, BLOCKED)}
    sites = {name: {"chain": str(c.chain), "key": str(c.key)} for name, c in good.items()}
    for name, leaf in CERT_SITES.items():
        c = pki.server(name, kind=leaf)
        sites[name] = {"chain": str(c.chain), "key": str(c.key)}
    www = good["www.example.com"]
    sites[WRONG_HOST] = {"chain": str(www.chain), "key": str(www.key)}
    config = {"ip": WEB_IP, "port": PORT, "sites": sites, "default": "www.example.com",
              "min_version": "TLSv1_2", "ciphers": SERVER_CIPHERS, "pacing": size.pacing}
    (work / "https.json").write_text(json.dumps(config))
    started: list[Server] = []
    try:
        web = Server(lab.server, "https", [*NICE, sys.executable, str(TRAFFIC), "serve",
                                            str(work / "https.json")],
                     workdir=work, ports=[PORT])
        started.append(web)
        files = work / "files"
        files.mkdir(exist_ok=True)
        for n in OPENSSL_SIZES:
            (files / f"{n}.bin").write_bytes(random.Random(n).randbytes(n))
        for ip, host, extra in ((FILES_IP, FILES_HOST, []), (STATIC_IP, STATIC_HOST, ["-tls1_2"])):
            cert = pki.server(host)
            srv = Server(lab.server, host.split(".")[0],
                         ["env", "-C", str(files), *NICE, "openssl", "s_server", "-accept",
                          f"{ip}:{PORT}", "-cert", str(cert.cert), "-cert_chain",
                          str(pki.intermediate), "-key", str(cert.key), "-WWW", "-quiet",
                          *extra], workdir=work, stdin=True)
            started.append(srv)
            _wait_listening(srv, ip, PORT)
        silent = Server(lab.server, "silent", [*NICE, sys.executable, str(TRAFFIC), "silent",
                                               SILENT_IP, str(PORT)], workdir=work)
        started.append(silent)
        _wait_listening(silent, SILENT_IP, PORT)
    except Exception:
        for srv in started:
            srv.stop()
        raise
    return started


def _prioritise_capture(netns: str) -> None:
    """Give the namespace's tcpdump a real-time priority so bursts never overflow its ring.

    On a 2-core machine the TLS stacks keep both cores busy; tcpdump's kernel ring (2 MiB,
    ~1000 frames) overflows if it waits more than a few milliseconds for a CPU.
    """
    pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True,
                          check=False).stdout.split()
    for pid in pids:
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            if comm == "tcpdump":
                os.sched_setscheduler(int(pid), os.SCHED_FIFO, os.sched_param(10))
        except (OSError, ValueError):
            continue


def _run_once(size: Size, work: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """Set up the lab, run every job under tcpdump; (jobs, results, tcpdump statistics)."""
    raw = work / "capture.pcap"
    with Lab() as lab:
        for ip in (FILES_IP, STATIC_IP, CLOSED_IP, SILENT_IP):
            lab.add_server_ip(ip)
        for ip in CLIENT_IPS[1:]:
            lab.add_client_ip(ip)
        lab.server.sh(["iptables", "-A", "INPUT", "-p", "tcp", "-d", WEB_IP, "--dport",
                       str(PORT), "-m", "string", "--string", BLOCKED, "--algo", "bm", "-j",
                       "REJECT", "--reject-with", "tcp-reset"])
        pki = TestPKI(work / "pki")
        jobs = plan(size, str(pki.root))
        jobs_path, results_path = work / "jobs.jsonl", work / "results.jsonl"
        jobs_path.write_text("".join(json.dumps(j) + "\n" for j in jobs))
        started = _start_servers(lab, pki, work, size)
        try:
            cap = Capture(lab.client, raw, bpf="tcp")
            with cap:
                _prioritise_capture(lab.client.name)
                run = lab.client.run([*NICE, sys.executable, str(TRAFFIC), "clients",
                                      str(jobs_path), str(results_path), "--workers",
                                      str(size.workers)], timeout=3600)
                time.sleep(0.5)  # last FIN/ACKs
            stats = cap.stats
        finally:
            for srv in started:
                srv.stop()
    if run.returncode != 0:
        raise CorpusError(f"client driver failed: {run.summary()}\n{run.output[-2000:]}")
    results = [json.loads(line) for line in results_path.read_text().splitlines()]
    return jobs, results, stats


def generate(size: Size, dest: Path, *, attempts: int = 2) -> Corpus:
    """Make the corpus in ``dest`` (replacing it); raise ``CorpusError`` if it cannot."""
    why = missing_requirements(TOOLS)
    if why:
        raise CorpusError(f"cannot generate the {size.name} corpus: {why}")
    t0 = time.monotonic()
    work = dest.with_name(dest.name + ".work")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for attempt in range(1, attempts + 1):
        try:
            jobs, results, stats = _run_once(size, work)
            break
        except CaptureError as exc:  # kernel drops: the truth would not match the file
            if attempt == attempts:
                raise CorpusError(f"refusing the {size.name} corpus: {exc}") from exc
            print(f"corpus {size.name}: {exc}; trying again", file=sys.stderr)
    captured = time.monotonic() - t0
    by_id = {r["id"]: r for r in results}
    lines = [truth_line(size.name, j, by_id.get(j["id"])) for j in jobs]
    unchecked = [ln for ln in lines if not ln["checked"]]
    if len(unchecked) > MAX_UNCHECKED * len(lines):
        sample = "\n".join(f"  {u['kind']} {u['client_port']}: {u['unchecked_why']}: "
                           f"{u['client_report']}" for u in unchecked[:10])
        raise CorpusError(f"refusing the {size.name} corpus: {len(unchecked)} of {len(lines)} "
                          f"clients did not report what the set-up intended:\n{sample}")
    raw = work / "capture.pcap"
    variants = _start_variants(raw, work)  # editcap and gzip run while we cross-check
    try:
        opened = syn_tuples(raw)
    finally:
        _finish_variants(variants)
    missing = [ln for ln in lines
               if opened.get((ln["client_ip"], ln["client_port"], ln["server_ip"],
                              ln["server_port"]), 0) != 1]
    if missing:
        m = missing[0]
        raise CorpusError(f"refusing the {size.name} corpus: {len(missing)} manifest "
                          f"connections without exactly one SYN in the capture, e.g. {m}")
    with (work / "manifest.jsonl").open("w") as f:
        for ln in lines:
            f.write(json.dumps(ln) + "\n")
    meta = {
        "generator_version": GENERATOR_VERSION, "params": asdict(size),
        "connections": len(lines), "unchecked": len(unchecked),
        "kinds": dict(Counter(ln["kind"] for ln in lines)),
        "outcomes": dict(Counter(ln["outcome"] for ln in lines)),
        "bytes": {p.name: p.stat().st_size for p in sorted(work.glob("capture.*"))},
        "packets": _captured(stats), "capture_seconds": round(captured, 1),
        "generation_seconds": round(time.monotonic() - t0, 1),
        "tcpdump": " ".join(stats.split()[-12:]),
    }
    _tidy(work)
    shutil.rmtree(dest, ignore_errors=True)
    work.rename(dest)
    (dest / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")  # written last
    return Corpus(size=size.name, directory=dest, meta=meta)


def _start_variants(raw: Path, work: Path) -> list[tuple[str, subprocess.Popen[bytes]]]:
    """Start making the pcapng (editcap -F pcapng) and gzip variants of the same packets."""
    editcap = subprocess.Popen(["editcap", "-F", "pcapng", str(raw), str(work / "capture.pcapng")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with (work / "capture.pcap.gz").open("wb") as out:
        gz = subprocess.Popen(["gzip", "-1", "-c", str(raw)], stdout=out, stderr=subprocess.PIPE)
    return [("editcap", editcap), ("gzip", gz)]


def _finish_variants(procs: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    problems = []
    for name, proc in procs:
        _out, err = proc.communicate()
        if proc.returncode != 0:
            problems.append(f"{name} failed: {err.decode(errors='replace').strip()}")
    if problems:
        raise CorpusError("; ".join(problems))


def _captured(stats: str) -> int:
    found = re.search(r"(\d+) packets? captured", stats)
    return int(found.group(1)) if found else -1


def _tidy(work: Path) -> None:
    """Keep the captures, the manifest and the trust anchor (for ``tlsa --ca-bundle``)."""
    keep = {"capture.pcap", "capture.pcapng", "capture.pcap.gz", "manifest.jsonl"}
    for path in work.iterdir():
        if path.name in keep:
            continue
        if path.name == "pki":
            shutil.copy(path / "root-ca.pem", work / "root-ca.pem")
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def directory(size: str) -> Path:
    return CORPUS_DIR / f"{size}-g{GENERATOR_VERSION}"


def cached(size: str) -> Corpus | None:
    """The corpus of ``size`` if it was made by this generator version and parameters."""
    dest = directory(size)
    try:
        meta = json.loads((dest / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("generator_version") != GENERATOR_VERSION or meta.get("params") != asdict(
            SIZES[size]):
        return None
    corpus = Corpus(size=size, directory=dest, meta=meta)
    if not all(p.exists() for p in (corpus.pcap, corpus.pcapng, corpus.gz, corpus.manifest)):
        return None
    return corpus


def ensure(size: str, *, force: bool = False, log: Any = print) -> Corpus:
    """The cached corpus of ``size``, generated first when missing, stale or forced."""
    found = None if force else cached(size)
    if found is not None:
        return found
    for old in CORPUS_DIR.glob(f"{size}-g*"):  # earlier generator versions
        if old != directory(size):
            shutil.rmtree(old, ignore_errors=True)
    log(f"generating the {size} corpus ({SIZES[size].connections} connections, "
        f"~{SIZES[size].target_bytes / 1e6:.0f} MB)...")
    corpus = generate(SIZES[size], directory(size))
    m = corpus.meta
    log(f"  {m['connections']} connections, {m['packets']} packets, "
        f"{m['bytes']['capture.pcap'] / 1e6:.1f} MB, made in {m['generation_seconds']} s "
        f"({m['unchecked']} unchecked)")
    return corpus


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate a benchmark corpus (needs root).")
    ap.add_argument("sizes", nargs="+", choices=sorted(SIZES))
    ap.add_argument("--force", action="store_true", help="regenerate even if cached")
    args = ap.parse_args(argv)
    try:
        for size in args.sizes:
            corpus = ensure(size, force=args.force)
            print(corpus.directory)
    except CorpusError as exc:
        print(f"corpus: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A realistic small incident: four HTTPS sites, mixed clients, one bad deploy midway.

nginx serves www, api, auth and static.example.com on four addresses; eight client hosts
run curl (TLS 1.3 and ``--tls-max 1.2``), Python ``ssl`` and, now and then, a legacy
TLS 1.1-only probe. Half-way through, a "deploy" reloads nginx with an expired certificate
for api.example.com, and from then on every client rejects it. Each connection's truth
comes from its own client's exit status and error text, matched by source port.

Connections run a few at a time in real time (seconds); afterwards each connection's
packets are shifted as a block so the connections start over a few minutes of packet
time, in the same order, with every connection's own packet timing untouched. That keeps
generation fast and the file small while the capture reads like minutes of traffic.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import os
import random
import signal
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import dpkt

from tests.harness.capture import ip_layer, open_capture, tcp_connections
from tests.harness.netns import Run
from tests.harness.pki import LeafKind
from tests.harness.servers import Server

from .base import Ctx, Expect, ScenarioError, check, check_http, established, failed, scenario
from .python_ssl import CLIENT

SITES = {"www.example.com": "10.99.1.10", "api.example.com": "10.99.1.11",
         "auth.example.com": "10.99.1.12", "static.example.com": "10.99.1.13"}
CLIENT_IPS = [f"10.99.0.{n}" for n in range(2, 10)]
BROKEN = "api.example.com"
CONNECTIONS = 240  # a TLS 1.3 handshake is ~3 KB of incompressible bytes; 1 MB limit
SPREAD = 240.0  # seconds of packet time the connection starts are spread over
SEED = 20240611
FIRST_PORT = 41000


@dataclass(frozen=True, slots=True)
class Job:
    n: int
    host: str
    client_ip: str
    port: int
    kind: str  # curl13, curl12, python, legacy
    after_deploy: bool


def _jobs() -> list[Job]:
    rng = random.Random(SEED)
    jobs = []
    for n in range(CONNECTIONS):
        host = rng.choices(list(SITES), weights=[40, 35, 15, 10])[0]
        kind = rng.choices(["curl13", "curl12", "python", "legacy"], weights=[55, 20, 20, 5])[0]
        if kind == "legacy":
            host = "www.example.com"  # an old monitoring probe that only checks www
        jobs.append(Job(n, host, rng.choice(CLIENT_IPS), FIRST_PORT + n, kind,
                        n >= CONNECTIONS // 2))
    return jobs


def _site(ctx: Ctx, host: str, expired: bool) -> str:
    cert = ctx.pki.server(host, kind=LeafKind.EXPIRED if expired else LeafKind.GOOD)
    ip = SITES[host]
    return ctx.site(host, cert, body=f"{host} ok").replace(
        "listen 443 ssl;", f"listen {ip}:443 ssl;").replace("listen [::]:443 ssl;", "")


def _config(ctx: Ctx, deployed: bool) -> str:
    return "".join(_site(ctx, h, deployed and h == BROKEN) for h in SITES)


def _run_job(ctx: Ctx, job: Job) -> Run:
    ip = SITES[job.host]
    if job.kind == "legacy":
        return ctx.client(["openssl", "s_client", "-connect", f"{ip}:443", "-servername",
                           job.host, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", "-bind",
                           f"{job.client_ip}:{job.port}"], input="Q\n")
    if job.kind == "python":
        return ctx.client([sys.executable, str(CLIENT), ip, "443", job.host, str(ctx.pki.root),
                           "--bind", f"{job.client_ip}:{job.port}"])
    extra = ["--tls-max", "1.2"] if job.kind == "curl12" else []
    return ctx.curl(f"https://{job.host}/", *extra, "--interface", job.client_ip,
                    "--local-port", str(job.port), ip=ip)


def _truth(job: Job, run: Run) -> Expect:
    broken = job.after_deploy and job.host == BROKEN
    phase = "after" if job.after_deploy else "before"
    where = (f"connection {job.n + 1}/{CONNECTIONS}, {phase} the deploy that gave {BROKEN} an "
             f"expired certificate")
    version = "TLSv1.2" if job.kind == "curl12" else "TLSv1.3"
    if job.kind == "legacy":
        said = check(run, exit=1, says="alert protocol version")
        return failed("version_mismatch", "server",
                      f"{where}; legacy probe openssl s_client -tls1_1 to {job.host} {said}",
                      sni=job.host, client_port=job.port)
    if job.kind == "python":
        if broken:
            if "certificate has expired" not in run.stdout:
                raise ScenarioError(f"python to {job.host} should fail: {run.output}")
            return failed("certificate_expired", "client",
                          f"{where}; Python ssl client raised 'certificate verify failed: "
                          "certificate has expired'", sni=job.host, version=version,
                          client_port=job.port)
        if '"ok": true' not in run.stdout or '"status": 200' not in run.stdout:
            raise ScenarioError(f"python to {job.host} should succeed: {run.output}")
        return established(f"{where}; Python ssl client to {job.host}: HTTP 200",
                           sni=job.host, version=version, client_port=job.port)
    name = "curl --tls-max 1.2" if job.kind == "curl12" else "curl"
    if broken:
        said = check(run, exit=60, says="certificate has expired")
        return failed("certificate_expired", "client", f"{where}; {name} to {job.host} {said}",
                      sni=job.host, version=version, client_port=job.port)
    said = check_http(run, 200)
    return established(f"{where}; {name} to {job.host} {said}", sni=job.host,
                       version=version, client_port=job.port)


def _spread(src: Path, dst: Path, jobs: list[Job]) -> None:
    """Shift each connection's packets as a block so connection n starts at slot n."""
    rng = random.Random(SEED + 1)
    slots = sorted(rng.uniform(0, SPREAD) for _ in jobs)
    conns = tcp_connections(src, (443,))
    if len(conns) != len(jobs):
        raise ScenarioError(f"{len(conns)} connections captured for {len(jobs)} clients")
    start = {c.client_port: c.first_ts for c in conns}
    # connection n (source port FIRST_PORT + n) starts at slot n; the last keeps its real time
    base = start[jobs[-1].port] - slots[-1]
    shift = {job.port: base + slots[job.n] - start[job.port] for job in jobs}
    out: list[tuple[float, bytes]] = []
    with src.open("rb") as f:
        reader = open_capture(f)
        linktype = reader.datalink()
        for ts, buf in reader:
            tcp = ip_layer(linktype, buf).data
            if not isinstance(tcp, dpkt.tcp.TCP):
                raise ScenarioError("unexpected non-TCP packet in the incident capture")
            port = tcp.sport if tcp.sport in shift else tcp.dport
            out.append((ts + shift[port], buf))
    out.sort(key=lambda p: p[0])
    with gzip.open(dst, "wb") as g:
        writer = dpkt.pcap.Writer(g, snaplen=262144, linktype=linktype)
        for ts, buf in out:
            writer.writepkt(buf, ts=ts)


@scenario(stack="nginx + curl + Python ssl + s_client", ext="pcap.gz", name="incident_deploy",
          shows=f"{CONNECTIONS} connections over ~4 minutes to four sites; half-way a deploy "
                f"gives {BROKEN} an expired certificate; a legacy TLS 1.1 probe fails "
                "throughout")
def incident_deploy(ctx: Ctx) -> list[Expect]:
    for ip in SITES.values():
        ctx.lab.add_server_ip(ip)
    for ip in CLIENT_IPS[1:]:
        ctx.lab.add_client_ip(ip)
    srv = ctx.nginx(_config(ctx, deployed=False))
    jobs = _jobs()
    runs: dict[int, Run] = {}
    with ctx.capture([443]), concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for phase in (False, True):
            if phase:
                _deploy(ctx, srv)
            batch = [j for j in jobs if j.after_deploy == phase]
            for job, run in zip(batch, pool.map(lambda j: _run_job(ctx, j), batch), strict=True):
                runs[job.n] = run
    expects = [_truth(job, runs[job.n]) for job in jobs]
    _spread(ctx.raw, ctx.out, jobs)
    counts: dict[str, int] = defaultdict(int)
    for e in expects:
        counts[e.failure or e.outcome] += 1
    if counts["certificate_expired"] < 20 or counts["established"] < CONNECTIONS * 2 // 3:
        raise ScenarioError(f"unexpected mix of outcomes: {dict(counts)}")
    return expects


def _deploy(ctx: Ctx, srv: Server) -> None:
    """Swap BROKEN's certificate for an expired one and reload nginx gracefully (SIGHUP)."""
    conf = ctx.work / "nginx" / "nginx.conf"
    good = str(ctx.pki.server(BROKEN).chain)
    bad = str(ctx.pki.server(BROKEN, kind=LeafKind.EXPIRED).chain)
    conf.write_text(conf.read_text().replace(good, bad))
    os.kill(srv.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reconfiguring" not in srv.text() or srv.text().count("start worker process") < 2:
        if time.monotonic() > deadline:
            raise ScenarioError(f"nginx did not reload: {srv.text()[-2000:]}")
        time.sleep(0.05)
    time.sleep(0.5)  # the old worker finishes its connections and stops accepting

#!/usr/bin/env python3
"""Regenerate the bundled sample captures and their ground-truth manifest.

Runs every scenario of ``sample_pcaps/scenarios`` (real nginx, squid, openssl, gnutls,
Python, stunnel, haproxy, chromium... inside private network namespaces), writes one
capture per scenario, ``MANIFEST.jsonl`` (one line per TCP connection, SPEC §3/§4 values)
and ``README.md``. The truth of every line comes from the set-up and from what the client
and server reported; SNI and version are also cross-checked against tshark's dissection of
the capture, and the generator refuses to write a line that disagrees.

Usage (as root): ``python sample_pcaps/generate.py --all`` or ``--only NAME... [--out DIR]``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from scenarios import REGISTRY, Ctx, Expect, Scenario, ScenarioError  # noqa: E402

from tests.harness import (  # noqa: E402
    BASE_TOOLS,
    Lab,
    TestPKI,
    missing_requirements,
    tcp_connections,
)
from tests.harness.capture import CaptureError, Connection  # noqa: E402
from tests.harness.servers import ServerError  # noqa: E402

MANIFEST = "MANIFEST.jsonl"
KEYS = "keys"
"""Folder of the key logs of the scenarios whose clients write one (``NAME.keys``)."""
FIELDS = ("file", "scenario", "client_ip", "client_port", "server_ip", "server_port",
          "outcome", "failure", "failure_side", "sni", "version", "setup")
MAX_FILE = 200 * 1024
MAX_INCIDENT = 1024 * 1024
MAX_FOLDER = 5 * 1024 * 1024
CAPTURE_EXTS = (".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz")
RETRIES = 1  # timing-sensitive scenarios get one more try before the run fails
VERSION_NAMES = {0x0300: "SSLv3", 0x0301: "TLSv1.0", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2",
                 0x0304: "TLSv1.3"}


@dataclass(frozen=True, slots=True)
class Outcome:
    scenario: Scenario
    rows: list[dict[str, Any]]
    seconds: float
    error: str | None
    skipped: str | None = None


# -- wire cross-check with tshark -----------------------------------------------------------


Facts = dict[tuple[str, int, str, int], dict[str, Any]]


def wire_facts(path: Path, tls_ports: tuple[int, ...]) -> Facts:
    """First ClientHello SNI and first ServerHello version per connection, from tshark.

    Keys are (src ip, src port, dst ip, dst port) of the packet carrying the hello.
    """
    argv = ["tshark", "-n", "-r", str(path), "-Y", "tls.handshake.type == 1 || "
            "tls.handshake.type == 2", "-T", "fields", "-E", "occurrence=a", "-E",
            "aggregator=,", "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport", "-e",
            "ip.dst", "-e", "ipv6.dst", "-e", "tcp.dstport", "-e", "tls.handshake.type",
            "-e", "tls.handshake.extensions_server_name", "-e", "tls.handshake.version", "-e",
            "tls.handshake.extensions.supported_version"]
    for port in tls_ports:
        argv += ["-d", f"tcp.port=={port},tls"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ScenarioError(f"tshark failed on {path}: {done.stderr}")
    facts: Facts = {}
    for line in done.stdout.splitlines():
        f = line.split("\t")
        if len(f) < 10:
            continue
        src = (f[0] or f[1]).split(",")[-1]
        dst = (f[3] or f[4]).split(",")[-1]
        sport, dport = int(f[2].split(",")[-1]), int(f[5].split(",")[-1])
        types = f[6].split(",")
        if "1" in types:
            fact = facts.setdefault((src, sport, dst, dport), {})
            fact.setdefault("sni", f[7].split(",")[0] or None)
        if "2" in types:
            fact = facts.setdefault((dst, dport, src, sport), {})
            supported = [v for v in f[9].split(",") if v]
            legacy = [v for v in f[8].split(",") if v]
            raw = supported[-1] if supported else (legacy[-1] if legacy else "")
            if raw and "version" not in fact:
                code = int(raw, 16)
                fact["version"] = VERSION_NAMES.get(code, f"0x{code:04x}")
    return facts


def cross_check(scn: Scenario, conn: Connection, exp: Expect, facts: Facts) -> None:
    fact = facts.get(conn.key, {})
    sni = fact.get("sni")
    version = fact.get("version")
    if sni != exp.sni:
        raise ScenarioError(f"{scn.name}: truth says sni={exp.sni!r} but the capture's "
                            f"ClientHello says {sni!r} for {conn.key}")
    if version != exp.version:
        raise ScenarioError(f"{scn.name}: truth says version={exp.version!r} but the capture's "
                            f"ServerHello says {version!r} for {conn.key}")


# -- the trust anchor the clients were given -------------------------------------------------

TEST_CA = "test-ca.pem"


def save_trust_anchor(pki: TestPKI, dest: Path, *, replace: bool) -> None:
    """Write the test root CA (certificate only) beside the captures, so the analyzer can be
    given the trust the clients had (``--ca-bundle sample_pcaps/test-ca.pem``). A partial
    run adds its new root to the bundle, which keeps the older captures verifiable."""
    pem = pki.root.read_text()
    path = dest / TEST_CA
    if replace or not path.exists():
        path.write_text(pem)
    elif pem not in path.read_text():
        with path.open("a") as f:
            f.write(pem)


# -- running one scenario ---------------------------------------------------------------------


def run_scenario(scn: Scenario, pki: TestPKI, dest: Path, keep: bool) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix=f"tlsa-{scn.name}-"))
    try:
        out = work / "out" / scn.file
        out.parent.mkdir()
        with Lab() as lab:
            ctx = Ctx(scn.name, lab, pki, work, out)
            with ctx.stack:
                expects = scn.run(ctx)
        if not out.exists():
            if not ctx.raw.exists():
                raise ScenarioError(f"{scn.name}: no capture written")
            shutil.copyfile(ctx.raw, out)
        conns = tcp_connections(out, scn.server_ports)
        rows = match(scn, out, conns, expects)
        shutil.copyfile(out, dest / scn.file)
        if ctx.keys.exists():  # the client's key log, for --keylog
            (dest / KEYS).mkdir(exist_ok=True)
            shutil.copyfile(ctx.keys, dest / KEYS / f"{scn.name}.keys")
        return rows
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"  kept work dir {work}", file=sys.stderr)


def match(scn: Scenario, out: Path, conns: list[Connection],
          expects: list[Expect]) -> list[dict[str, Any]]:
    """Pair connections with truths (by client port when given, else by order); cross-check."""
    by_port = {e.client_port: e for e in expects if e.client_port is not None}
    ordered = [e for e in expects if e.client_port is None]
    pairs: list[tuple[Connection, Expect]] = []
    rest = []
    for c in conns:
        if c.client_port in by_port:
            pairs.append((c, by_port.pop(c.client_port)))
        else:
            rest.append(c)
    if by_port or len(rest) != len(ordered):
        listing = "\n".join(f"  {c.key} syn={c.syn} packets={c.packets}" for c in conns)
        raise ScenarioError(f"{scn.name}: {len(conns)} TCP connections in the capture but "
                            f"{len(expects)} truths (unmatched ports {sorted(by_port)}):\n"
                            f"{listing}")
    pairs += list(zip(rest, ordered, strict=True))
    pairs.sort(key=lambda p: p[0].first_ts)
    facts = wire_facts(out, scn.tls_ports)
    rows = []
    for conn, exp in pairs:
        cross_check(scn, conn, exp, facts)
        rows.append({
            "file": scn.file, "scenario": scn.name, "client_ip": conn.client_ip,
            "client_port": conn.client_port, "server_ip": conn.server_ip,
            "server_port": conn.server_port, "outcome": exp.outcome, "failure": exp.failure,
            "failure_side": exp.failure_side, "sni": exp.sni, "version": exp.version,
            "setup": exp.setup,
        })
    return rows


def attempt(scn: Scenario, pki: TestPKI, dest: Path, keep: bool) -> Outcome:
    start = time.monotonic()
    absent = [t for t in scn.tools if shutil.which(t) is None]
    if absent:
        return Outcome(scn, [], 0.0, None, skipped=f"not installed: {', '.join(absent)}")
    error = None
    for n in range(RETRIES + 1):
        try:
            rows = run_scenario(scn, pki, dest, keep)
            return Outcome(scn, rows, time.monotonic() - start, None)
        except (ScenarioError, CaptureError, ServerError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            if n < RETRIES:
                print(f"  {scn.name}: retrying after {error.splitlines()[0]}", file=sys.stderr)
        except Exception:
            error = traceback.format_exc()
            break
    return Outcome(scn, [], time.monotonic() - start, error)


# -- outputs --------------------------------------------------------------------------------------


def read_manifest(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_manifest(path: Path, rows: list[dict[str, Any]]) -> None:
    order = {name: i for i, name in enumerate(REGISTRY)}
    rows = sorted(rows, key=lambda r: order.get(r["scenario"], len(order)))
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps({k: row[k] for k in FIELDS}) + "\n")


def check_sizes(dest: Path) -> list[str]:
    problems = []
    total = 0
    for p in sorted(dest.iterdir()):
        if not p.name.endswith(CAPTURE_EXTS):
            continue
        size = p.stat().st_size
        total += size
        limit = MAX_INCIDENT if p.name.startswith("incident") else MAX_FILE
        if size > limit:
            problems.append(f"{p.name} is {size} bytes (limit {limit})")
    if total > MAX_FOLDER:
        problems.append(f"captures total {total} bytes (limit {MAX_FOLDER})")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    sel = ap.add_mutually_exclusive_group(required=True)
    sel.add_argument("--all", action="store_true", help="every scenario")
    sel.add_argument("--only", nargs="+", metavar="NAME", help="these scenarios")
    sel.add_argument("--list", action="store_true", help="list scenario names and exit")
    sel.add_argument("--test-set", action="store_true", help="the scenarios the tests rerun")
    sel.add_argument("--list-test-set", action="store_true", help="list --test-set names")
    sel.add_argument("--readme", action="store_true", help="only rewrite README.md")
    ap.add_argument("--out", type=Path, default=HERE, help="output folder (default: here)")
    ap.add_argument("--jobs", type=int, default=4, help="scenarios run in parallel")
    ap.add_argument("--keep-work", action="store_true", help="keep per-scenario work dirs")
    args = ap.parse_args(argv)
    if args.list:
        for scn in REGISTRY.values():
            print(f"{scn.name:40} {scn.stack:28} {scn.shows}")
        return 0
    if args.list_test_set:
        print("\n".join(s.name for s in REGISTRY.values() if s.in_test))
        return 0
    if args.readme:
        from readme import write_readme

        write_readme(HERE, list(REGISTRY.values()), read_manifest(HERE / MANIFEST))
        return 0
    if args.all:
        chosen = list(REGISTRY.values())
    elif args.test_set:
        chosen = [s for s in REGISTRY.values() if s.in_test]
    else:
        unknown = [n for n in args.only if n not in REGISTRY]
        if unknown:
            ap.error(f"unknown scenarios: {', '.join(unknown)} (see --list)")
        chosen = [REGISTRY[n] for n in args.only]
    why = missing_requirements((*BASE_TOOLS, "nginx"))
    if why:
        print(f"cannot generate: {why}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    dest: Path = args.out.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    pki_dir = Path(tempfile.mkdtemp(prefix="tlsa-pki-"))
    os.chmod(pki_dir, 0o755)
    try:
        pki = TestPKI(pki_dir)
        save_trust_anchor(pki, dest, replace=args.all)
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(lambda s: attempt(s, pki, dest, args.keep_work), chosen))
    finally:
        shutil.rmtree(pki_dir, ignore_errors=True)
    failures = [r for r in results if r.error]
    done = {r.scenario.file for r in results if not r.error and not r.skipped}
    for r in results:
        status = "FAILED" if r.error else f"{len(r.rows)} connection(s)"
        status = f"skipped ({r.skipped})" if r.skipped else status
        print(f"{r.scenario.name:40} {r.seconds:6.1f}s  {status}", file=sys.stderr)
    manifest = dest / MANIFEST
    skipped = [r for r in results if r.skipped]
    keep_rows = [] if args.all and dest == HERE and not failures and not skipped else [
        row for row in read_manifest(manifest) if row["file"] not in done
        and (row["scenario"] in REGISTRY or dest != HERE)]
    rows = keep_rows + [row for r in results for row in r.rows]
    write_manifest(manifest, rows)
    if args.all and not failures and not skipped:
        known = {s.file for s in REGISTRY.values()}
        for p in dest.iterdir():
            if p.name.endswith(CAPTURE_EXTS) and p.name not in known:
                p.unlink()
    if dest == HERE:
        from readme import write_readme

        write_readme(dest, list(REGISTRY.values()), read_manifest(manifest))
    problems = check_sizes(dest)
    elapsed = time.monotonic() - started
    print(f"{len(rows)} manifest lines, {len(done)} captures written in {elapsed:.0f}s",
          file=sys.stderr)
    for problem in problems:
        print(f"size: {problem}", file=sys.stderr)
    for r in failures:
        print(f"\n== {r.scenario.name} failed ==\n{r.error}", file=sys.stderr)
    return 1 if failures or problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Live replay: ``tlsa live -i lo`` while tcpreplay replays the small corpus at 1×, 2×, 3×.

Not a test: run it as root (``python bench/live_replay.py``); it appends a section to
``bench/RESULTS.md``. The small corpus (``bench/corpus.py small``: ~2,000 TLS connections,
~68k packets, a few seconds of real traffic, made first if missing) is analysed once
offline (``tlsa analyze capture.pcap --format jsonl``). Then, in a private network namespace
(loopback only), for each multiplier and round (rounds interleaved):

- ``tlsa live -i lo --format jsonl -o FILE`` (default capture filter) is started and, once
  it says it is capturing, ``tcpreplay -i lo --multiplier=N capture.pcap`` replays the
  corpus onto the loopback (the frames keep their Ethernet headers; the namespace's IP stack
  drops them as addressed to other hosts, so nothing answers them). When the replay is over
  and tlsa is idle (no CPU, no new record for a second), it gets SIGINT and prints its
  summary line: packets read from dumpcap and packets dropped by the kernel or dumpcap;
- the control: ``dumpcap -i lo -f FILTER -w -`` into ``/dev/null`` on the same replay,
  with its own received/dropped counts.

Live records are matched to the offline ones by their 4-tuple (the corpus never reuses a
client port) and compared on every field except those that legitimately differ: times
(replayed packets get new timestamps, and at N× the gaps shrink N times), what a live
record cannot know yet when it comes out as its handshake settles (how the connection
closed, its final packet and byte counts), and the prose (``reason`` and ``remedy`` quote
times and capture-wide evidence). See ``IGNORED``. A live record is also compared with the
live record of the same connection at 1× of the same round, on the same fields.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from corpus import ensure  # noqa: E402
from live_rate import collect_lines, cpu_seconds  # noqa: E402

from analyzer.live import DEFAULT_BPF  # noqa: E402
from tests.harness import Netns  # noqa: E402

RESULTS = HERE / "RESULTS.md"
PYTHON = sys.executable
START_TIMEOUT = 30.0
QUIET = 1.0  # seconds with no CPU and no new record: tlsa has drained the replay
DRAIN_LIMIT = 60.0

TIME_FIELDS = frozenset({
    "uid", "capture", "ts", "ts_end", "ts_client_hello", "ts_server_hello", "ts_close",
    "ts_client_fin", "capture_end", "timeline", "tcp_rtt", "handshake_time",
})
"""Absolute times (new at every replay), durations (divided by the multiplier), and the
uid and capture name (the uid hashes the capture name and the first packet time)."""
SETTLE_FIELDS = frozenset({
    "close", "close_by", "packets", "client_bytes", "server_bytes", "retransmits",
    "client_retransmits", "server_retransmits", "gap_bytes",
})
"""Live mode reports a connection when its handshake settles (``close: open``), so the
packets and bytes after that point, and how it closed, are not in the live record."""
PROSE_FIELDS = frozenset({"reason", "remedy"})
"""Sentences quoting delays in ms and evidence from other connections of the capture."""
IGNORED = TIME_FIELDS | SETTLE_FIELDS | PROSE_FIELDS

Key = tuple[str, int, str, int, str]
Records = dict[Key, dict[str, Any]]


@dataclass
class Replay:
    packets: int
    seconds: float
    pps: float
    failed: int


@dataclass
class Trial:
    tool: str  # "tlsa" or "dumpcap"
    multiplier: float
    round: int
    replay: Replay
    captured: int | None  # tlsa: packets read from dumpcap; dumpcap: packets received
    dropped: int | None
    cpu: float  # seconds of CPU of the tool (python + dumpcap, or dumpcap), traffic to exit
    records: int = 0
    equal_offline: int = 0
    equal_first: int | None = None  # equal to the live record at 1x in the same round
    differing: Counter[str] = field(default_factory=Counter)
    live: Records = field(default_factory=dict, repr=False)


# -- records ----------------------------------------------------------------------------------


def load(path: Path) -> Records:
    rows: Records = {}
    with path.open() as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                key = (r["client_ip"], r["client_port"], r["server_ip"], r["server_port"],
                       r["transport"])
                rows[key] = r
    return rows


def same(a: dict[str, Any], b: dict[str, Any], differing: Counter[str] | None = None) -> bool:
    names = (a.keys() | b.keys()) - IGNORED
    diff = [n for n in names if a.get(n) != b.get(n)]
    if differing is not None:
        differing.update(diff)
    return not diff


def equal_count(live: Records, other: Records, differing: Counter[str] | None = None) -> int:
    return sum(1 for k, r in live.items() if k in other and same(r, other[k], differing))


def span(pcap: Path) -> float:
    """Seconds from the first to the last packet of a classic pcap file."""
    with pcap.open("rb") as f:
        head = f.read(24)
        order = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
                 b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}[head[:4]]
        scale = 1e-9 if head[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6
        first = last = None
        while len(rec := f.read(16)) == 16:
            sec, frac, caplen, _ = struct.unpack(order + "IIII", rec)
            last = sec + frac * scale
            if first is None:
                first = last
            f.seek(caplen, 1)
    return (last or 0.0) - (first or 0.0)


# -- processes --------------------------------------------------------------------------------


def _reap(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> float:
    """Wait for ``proc``; its CPU seconds with its waited-for children (wait4)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(0.05)


def _start(ns: Netns, argv: list[str], marker: str, **kwargs: Any) -> tuple[
        subprocess.Popen[bytes], list[str], threading.Thread]:
    proc: subprocess.Popen[bytes] = ns.popen(argv, stderr=subprocess.PIPE, **kwargs)
    assert proc.stderr is not None
    err: list[str] = []
    ready = threading.Event()
    reader = threading.Thread(target=collect_lines, args=(proc.stderr, err, ready, marker),
                              daemon=True)
    reader.start()
    if not ready.wait(START_TIMEOUT) or marker not in "".join(err):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        _reap(proc)
        raise RuntimeError(f"{argv[0]}: {marker!r} not seen: {''.join(err)}")
    return proc, err, reader


def replay(ns: Netns, pcap: Path, multiplier: float) -> Replay:
    done = ns.run(["tcpreplay", "-i", "lo", f"--multiplier={multiplier:g}", str(pcap)],
                  timeout=600)
    text = done.stdout + done.stderr
    actual = re.search(r"Actual: (\d+) packets \(\d+ bytes\) sent in ([\d.]+) seconds", text)
    rated = re.search(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps", text)
    failed = re.search(r"Failed packets:\s+(\d+)", text)
    if done.returncode != 0 or actual is None:
        raise RuntimeError(f"tcpreplay failed ({done.returncode}): {text.strip()}")
    return Replay(packets=int(actual.group(1)), seconds=float(actual.group(2)),
                  pps=float(rated.group(1)) if rated else 0.0,
                  failed=int(failed.group(1)) if failed else 0)


def _lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def run_tlsa(ns: Netns, pcap: Path, multiplier: float, rnd: int, out: Path) -> Trial:
    argv = [PYTHON, "-m", "analyzer", "live", "-i", "lo", "--format", "jsonl", "-o", str(out)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc, err, reader = _start(ns, argv, "capturing on", cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL)
    cpu_before = cpu_seconds(proc.pid)
    rep = replay(ns, pcap, multiplier)
    # Drained: no CPU spent and no new record for QUIET seconds.
    deadline = time.monotonic() + DRAIN_LIMIT
    cpu, lines, still = cpu_seconds(proc.pid), _lines(out), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now_cpu, now_lines = cpu_seconds(proc.pid), _lines(out)
        if now_cpu - cpu > 0.02 or now_lines != lines:
            cpu, lines, still = now_cpu, now_lines, time.monotonic()
        elif time.monotonic() - still >= QUIET:
            break
    proc.send_signal(signal.SIGINT)
    total = _reap(proc)
    reader.join(10)
    summary = "".join(err)
    found = re.search(r"; (\d+) packets(?:, (\d+) dropped)?", summary)
    if found is None or proc.returncode != 0:
        raise RuntimeError(f"tlsa live ended with {proc.returncode}: {summary}")
    return Trial(tool="tlsa", multiplier=multiplier, round=rnd, replay=rep,
                 captured=int(found.group(1)),
                 dropped=int(found.group(2)) if found.group(2) else None,
                 cpu=total - cpu_before)


def run_dumpcap(ns: Netns, pcap: Path, multiplier: float, rnd: int) -> Trial:
    argv = ["dumpcap", "-i", "lo", "-f", DEFAULT_BPF, "-w", "-"]
    proc, err, reader = _start(ns, argv, "Capturing on", stdout=subprocess.DEVNULL)
    cpu_before = cpu_seconds(proc.pid)
    rep = replay(ns, pcap, multiplier)
    time.sleep(QUIET)
    proc.send_signal(signal.SIGINT)
    total = _reap(proc)
    reader.join(10)
    found = re.search(r"received/dropped on interface '[^']*': (\d+)/(\d+)", "".join(err))
    return Trial(tool="dumpcap", multiplier=multiplier, round=rnd, replay=rep,
                 captured=int(found.group(1)) if found else None,
                 dropped=int(found.group(2)) if found else None, cpu=total - cpu_before)


def analyze_offline(pcap: Path, out: Path) -> float:
    """``tlsa analyze`` of the corpus into ``out``; its CPU seconds."""
    proc = subprocess.Popen([PYTHON, "-m", "analyzer", "analyze", str(pcap), "--format",
                             "jsonl", "-o", str(out)], cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    cpu = _reap(proc, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"tlsa analyze failed ({proc.returncode})")
    return cpu


# -- the whole run ----------------------------------------------------------------------------


def show(t: Trial, real: float) -> str:
    text = (f"round {t.round} {t.multiplier:g}x {t.tool:7} replayed {t.replay.packets} in "
            f"{t.replay.seconds:.2f} s ({t.replay.pps:.0f}/s, "
            f"{real / t.replay.seconds:.2f}x real time)  captured {t.captured}  "
            f"dropped {t.dropped}  cpu {t.cpu:.2f} s")
    if t.tool == "tlsa":
        text += (f"  records {t.records}  = offline {t.equal_offline}  = 1x {t.equal_first}"
                 f"  differing {dict(t.differing.most_common())}")
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--multipliers", default="1,2,3,4", help="tcpreplay multipliers, in order")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (medians are reported)")
    ap.add_argument("--no-control", action="store_true", help="skip dumpcap alone")
    ap.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    ap.add_argument("--title", default="", help="words added to the section title")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("live_replay: needs root (network namespace, packet capture)")
    # A SIGINT ignored here (started in the background) would be ignored by tlsa too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    multipliers = [float(m) for m in args.multipliers.split(",")]
    pcap = ensure("small").directory / "capture.pcap"
    real = span(pcap)
    load_before = os.getloadavg()
    trials: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="live_replay") as tmp, Netns() as ns:
        offline_path = Path(tmp) / "offline.jsonl"
        offline_cpu = analyze_offline(pcap, offline_path)
        offline = load(offline_path)
        print(f"offline: {len(offline)} records, {offline_cpu:.2f} s CPU; the capture spans "
              f"{real:.2f} s", flush=True)
        for rnd in range(1, args.rounds + 1):
            first: Records | None = None
            for m in multipliers:
                out = Path(tmp) / f"live-{rnd}-{m:g}.jsonl"
                t = run_tlsa(ns, pcap, m, rnd, out)
                t.live = load(out)
                t.records = len(t.live)
                t.equal_offline = equal_count(t.live, offline, t.differing)
                if first is None:
                    first = t.live
                t.equal_first = equal_count(t.live, first)
                trials.append(t)
                print(show(t, real), flush=True)
                if not args.no_control:
                    c = run_dumpcap(ns, pcap, m, rnd)
                    trials.append(c)
                    print(show(c, real), flush=True)
    load_after = os.getloadavg()
    report = render(trials, len(offline), offline_cpu, pcap, real, load_before, load_after,
                    args.title)
    print(report)
    if not args.no_write:
        existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
        RESULTS.write_text(existing.rstrip("\n") + "\n\n" + report)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _each(values: list[int | None]) -> str:
    return "/".join("?" if v is None else str(v) for v in values)


def render(trials: list[Trial], offline: int, offline_cpu: float, pcap: Path, real: float,
           load_before: tuple[float, float, float], load_after: tuple[float, float, float],
           title: str) -> str:
    meta = json.loads((pcap.parent / "meta.json").read_text())
    dumpcap = subprocess.run(["dumpcap", "-v"], capture_output=True, text=True).stdout
    rounds = max((t.round for t in trials), default=0)
    head = f"## Live replay ({dt.date.today().isoformat()}, bench/live_replay.py{title})"
    lines = [
        head,
        "",
        f"Machine: {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, {dumpcap.splitlines()[0].rstrip('.')}. "
        f"Corpus: {pcap.parent.name} ({meta.get('connections')} connections, "
        f"{meta.get('packets')} packets over {real:.2f} s), replayed with "
        f"`tcpreplay -i lo --multiplier=N` in a "
        f"private namespace while `tlsa live -i lo --format jsonl` (default filter) captured, "
        f"then the same replay with `dumpcap -i lo -f FILTER -w -` alone (output to "
        f"/dev/null). Medians of {rounds} interleaved rounds; 'per round' lists every round. "
        f"Load average (1 min) {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the "
        f"end (other work shared the machine). Offline, `tlsa analyze` of the same file: "
        f"{offline} records, {offline_cpu:.2f} s CPU.",
        "",
        "Records compared on every field except times, what a live record cannot know when "
        "its handshake settles, and prose: "
        f"{', '.join(sorted(IGNORED))}. '= offline': live records equal to the offline "
        "record of the same 4-tuple; '= 1×': equal to the live record of the same round at 1×. "
        "'captured': packets tlsa read from dumpcap, or dumpcap's received count; 'missing': "
        "replayed − captured; '× asked': tcpreplay's --multiplier; '× real time': the "
        "capture's span / the replay's seconds (tcpreplay falls short of the rate asked on a "
        "busy machine); 'dropped': the count dumpcap reports (kernel and dumpcap drops; "
        "on `lo` the kernel sees every packet twice, as sent and as received, and a full ring "
        "drops and counts both copies, so it comes out about twice 'missing'). CPU: the tool's "
        "processes from the start of the replay to their exit.",
        "",
        "| tool | × asked | replay s | × real time | packets replayed | replayed /s | captured "
        "| missing | dropped "
        "| dropped per round | records live | records offline | = offline | = 1× "
        "| CPU s | captured /s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    groups: dict[tuple[str, float], list[Trial]] = {}
    for t in trials:
        groups.setdefault((t.tool, t.multiplier), []).append(t)
    for (tool, m), ts in sorted(groups.items(), key=lambda kv: (kv[0][0] != "tlsa", kv[0][1])):
        secs = _median([t.replay.seconds for t in ts])
        captured = _median([t.captured for t in ts if t.captured is not None])
        cells = [
            tool, f"{m:g}", f"{secs:.2f}", f"{real / secs if secs else 0:.2f}",
            f"{_median([t.replay.packets for t in ts]):.0f}",
            f"{_median([t.replay.pps for t in ts]):.0f}", f"{captured:.0f}",
            f"{_median([t.replay.packets - t.captured for t in ts if t.captured is not None]):.0f}",
            f"{_median([t.dropped for t in ts if t.dropped is not None]):.0f}",
            _each([t.dropped for t in ts]),
        ]
        if tool == "tlsa":
            cells += [
                f"{_median([t.records for t in ts]):.0f}", str(offline),
                f"{_median([t.equal_offline for t in ts]):.0f}",
                f"{_median([t.equal_first for t in ts if t.equal_first is not None]):.0f}",
            ]
        else:
            cells += ["", "", "", ""]
        cells += [f"{_median([t.cpu for t in ts]):.2f}", f"{captured / secs if secs else 0:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    differing: Counter[str] = Counter()
    for t in trials:
        differing.update(t.differing)
    if differing:
        live_trials = sum(1 for t in trials if t.tool == "tlsa")
        lines += ["", "Fields that differed from offline (records, summed over "
                  f"{live_trials} live runs): "
                  + ", ".join(f"{k} {v}" for k, v in differing.most_common()) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The benchmark: tlsa against tshark, ssldump and two floors, on the same files.

What it does: makes sure the corpora exist (``bench/corpus.py``, cached), then times whole
processes, interleaved (run 1 of every command, then run 2, ...), and keeps the median
wall time and the peak RSS of each (``os.wait4`` per child). Commands per corpus:

- ``tlsa analyze FILE --format jsonl -o /dev/null`` (``--workers 1`` when the CLI has it),
  on the pcap, the pcapng and the ``.gz`` variant;
- ``tshark -n -r FILE -Y "tls.handshake.type == 1 || tls.handshake.type == 2 ||
  tls.alert_message" -T fields`` with the handshake fields tlsa reports;
- ``ssldump -r FILE -n``;
- floors: a dpkt reader loop that does nothing, and a ``struct``-only header walk that
  counts packets per flow (``bench/floors.py``).

It prints and writes (``bench/RESULTS.md``) the ratios to tshark and to the floors,
packets/s, MB/s, peak RSS, ``tlsa --help`` and tiny-file start-up times, pcapng/pcap and
gz/pcap time ratios, the share of manifest connections whose ``outcome`` and ``failure``
tlsa got right (matched by 4-tuple) with the wrong ones listed, machine details and a
cProfile summary of one tlsa run on the small corpus. Text of RESULTS.md outside the
``bench:begin``/``bench:end`` markers (e.g. a live-capture section) is kept.

What it does not do: judge the analyzer's output beyond outcome/failure, or run the
analyzer in-process for timing. ``--quick``: the tiny corpus, one run, no RESULTS.md
unless ``--results`` is given (smoke test, under a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import corpus as corpora  # noqa: E402
from installed import as_installed  # noqa: E402

PY = sys.executable
TLSA = str(Path(PY).with_name("tlsa"))
RESULTS = HERE / "RESULTS.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
TSHARK_FILTER = "tls.handshake.type == 1 || tls.handshake.type == 2 || tls.alert_message"
TSHARK_FIELDS = (
    "frame.time_epoch", "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport",
    "tls.handshake.type", "tls.handshake.version", "tls.handshake.extensions.supported_version",
    "tls.handshake.extensions_server_name", "tls.handshake.ciphersuite",
    "tls.handshake.extensions_alpn_str", "tls.handshake.ja3", "tls.alert_message.level",
    "tls.alert_message.desc",
)
STARTUP_RUNS = 5
PROFILE_LINES = 25
MAX_WRONG_LISTED = 40
MiB = 1024 * 1024
BUDGET = 14 * 60  # seconds for all of `make bench`, corpora included (goal: under 15 min)
RESERVE = 75  # seconds kept for the accuracy runs, start-up times and the profile
RSS_EXACT = Path("/usr/bin/time").exists()  # GNU time (Debian package "time")

# Goals of the performance issue.
GOAL_LARGE, GOAL_SMALL, GOAL_STRETCH = 0.33, 0.5, 0.15
GOAL_RSS_MIB, GOAL_RSS_RATIO = 100, 1.5
GOAL_PCAPNG, GOAL_STARTUP, GOAL_ACCURACY = 1.3, 0.3, 0.95


@dataclass(slots=True)
class Sample:
    seconds: float
    rss_kib: int
    code: int
    err: str = ""


@dataclass(slots=True)
class Command:
    """One timed command on one corpus file."""

    key: str  # row label: tlsa, tlsa pcapng, tshark, ...
    argv: list[str]
    file: Path
    samples: list[Sample] = field(default_factory=list)
    tmpdir: Path | None = None
    tmp_files: int = 0  # files the command left in its TMPDIR

    @property
    def median(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def peak_mib(self) -> float:
        return max(s.rss_kib for s in self.samples) / 1024

    @property
    def failed(self) -> Sample | None:
        return next((s for s in self.samples if s.code != 0), None)


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


GNU_TIME = "/usr/bin/time"


def measure(argv: Sequence[str], env: dict[str, str] | None = None) -> Sample:
    """Wall time, peak RSS (KiB) and exit status of one whole process.

    The peak RSS comes from GNU time (a small C parent): ``wait4`` in this runner would also
    count the memory the child had before ``exec``, i.e. this runner's own. Without GNU time
    the ``wait4`` figure is used and ``rss_exact`` is False.
    """
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as rss:
        wrapped = [GNU_TIME, "-q", "-f", "%M", "-o", rss.name, *argv] if RSS_EXACT else list(argv)
        start = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdout=subprocess.DEVNULL, stderr=err,
                                stdin=subprocess.DEVNULL, env=env)
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        kib = usage.ru_maxrss
        if RSS_EXACT:
            found = rss.read().split()
            kib = int(found[-1]) if found and found[-1].isdigit() else -1
        text = ""
        if proc.returncode != 0:
            err.seek(0)
            text = err.read()[-2000:].decode(errors="replace")
    return Sample(seconds=seconds, rss_kib=kib, code=proc.returncode, err=text)


def has_workers_option() -> bool:
    done = subprocess.run([TLSA, "analyze", "--help"], capture_output=True, text=True,
                          check=False)
    return "--workers" in done.stdout


def tlsa_argv(path: Path, workers: bool, output: str = "/dev/null") -> list[str]:
    return [TLSA, "analyze", str(path), "--format", "jsonl", "-o", output,
            *(["--workers", "1"] if workers else [])]


def commands(c: corpora.Corpus, workers: bool) -> list[Command]:
    tshark = ["tshark", "-n", "-r", str(c.pcap), "-Y", TSHARK_FILTER, "-T", "fields"]
    for name in TSHARK_FIELDS:
        tshark += ["-e", name]
    floors = str(HERE / "floors.py")
    return [
        Command("tlsa", tlsa_argv(c.pcap, workers), c.pcap),
        Command("tlsa pcapng", tlsa_argv(c.pcapng, workers), c.pcapng),
        Command("tlsa pcap.gz", tlsa_argv(c.gz, workers), c.gz),
        Command("tshark", tshark, c.pcap),
        Command("ssldump", ["ssldump", "-r", str(c.pcap), "-n"], c.pcap),
        Command("dpkt loop (floor)", [PY, floors, "dpkt", str(c.pcap)], c.pcap),
        Command("struct walk (floor)", [PY, floors, "struct", str(c.pcap)], c.pcap),
    ]


def warm(paths: Sequence[Path]) -> None:
    """Read every file once so each tool finds it in the page cache, not just the later ones."""
    for path in paths:
        with path.open("rb") as f:
            while f.read(16 * MiB):
                pass


def run_interleaved(cmds: list[Command], runs: int, label: str, deadline: float) -> int:
    """Run every command ``runs`` times, round by round; fewer rounds (at least one) when
    another round would end after ``deadline`` (monotonic seconds). Returns the rounds run."""
    warm(sorted({c.file for c in cmds}))
    for i in range(runs):
        started = time.monotonic()
        for cmd in cmds:
            env = None
            if cmd.key.endswith(".gz"):  # .gz must stream: nothing may land in TMPDIR
                cmd.tmpdir = Path(tempfile.mkdtemp(prefix="tlsa-gz-"))
                env = {**os.environ, "TMPDIR": str(cmd.tmpdir)}
            s = measure(cmd.argv, env=env)
            if cmd.tmpdir is not None:
                cmd.tmp_files += len(list(cmd.tmpdir.iterdir()))
                shutil.rmtree(cmd.tmpdir, ignore_errors=True)
            cmd.samples.append(s)
            log(f"  {label} run {i + 1}/{runs}: {cmd.key:<20} {s.seconds:7.2f} s "
                f"{s.rss_kib / 1024:7.1f} MiB" + (f"  exit {s.code}" if s.code else ""))
        if i + 1 < runs and time.monotonic() + (time.monotonic() - started) > deadline:
            log(f"  {label}: stopping after {i + 1} rounds (time budget)")
            return i + 1
    return runs


# -- accuracy ------------------------------------------------------------------------------------


def tuple_of(d: dict[str, Any]) -> tuple[str, int, str, int]:
    return (d["client_ip"], int(d["client_port"]), d["server_ip"], int(d["server_port"]))


@dataclass(slots=True)
class Accuracy:
    checked: int = 0
    right: int = 0
    unchecked: int = 0
    wrong: list[dict[str, Any]] = field(default_factory=list)
    by_kind: Counter[str] = field(default_factory=Counter)
    right_by_kind: Counter[str] = field(default_factory=Counter)

    @property
    def share(self) -> float:
        return self.right / self.checked if self.checked else 0.0


def accuracy(truth: list[dict[str, Any]], output: Path) -> Accuracy:
    records: dict[tuple[str, int, str, int], list[dict[str, Any]]] = {}
    with output.open() as f:
        for line in f:
            r = json.loads(line)
            records.setdefault(tuple_of(r), []).append(r)
    acc = Accuracy()
    for t in truth:
        if not t["checked"]:
            acc.unchecked += 1
            continue
        acc.checked += 1
        acc.by_kind[t["kind"]] += 1
        found = records.get(tuple_of(t), [])
        got = found[0] if found else None
        if got is not None and (got["outcome"], got["failure"]) == (t["outcome"], t["failure"]):
            acc.right += 1
            acc.right_by_kind[t["kind"]] += 1
            continue
        acc.wrong.append({
            "tuple": "{}:{} → {}:{}".format(*tuple_of(t)), "kind": t["kind"],
            "stack": t["stack"], "version": t["version"], "sni": t["sni"],
            "expected": f"{t['outcome']}/{t['failure']}",
            "got": (f"{got['outcome']}/{got['failure']}" if got else "no record")
            + (f" ({len(found)} records)" if len(found) > 1 else ""),
            "records": len(found),
            "reason": (got or {}).get("reason") or "",
        })
    return acc


# -- start-up and profile ------------------------------------------------------------------------


def startup(tiny: Path, workers: bool) -> dict[str, float]:
    helps = [measure([TLSA, "--help"]).seconds for _ in range(STARTUP_RUNS)]
    tinies = [measure(tlsa_argv(tiny, workers)).seconds for _ in range(STARTUP_RUNS)]
    return {"tlsa --help": statistics.median(helps),
            f"tlsa analyze {tiny.name}": statistics.median(tinies)}


def make_tiny(c: corpora.Corpus) -> Path:
    tiny = c.directory / "tiny.pcap"
    if not tiny.exists():
        subprocess.run(["editcap", "-r", str(c.pcap), str(tiny), "1-40"], check=True,
                       capture_output=True)
    return tiny


def profile(c: corpora.Corpus, workers: bool) -> tuple[str, str, float]:
    """cProfile of one tlsa run: (top by cumtime, top by tottime, seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        prof = Path(tmp) / "tlsa.prof"
        argv = [PY, "-m", "cProfile", "-o", str(prof), "-m", "analyzer",
                *tlsa_argv(c.pcap, workers)[1:]]
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, cwd=ROOT)
        seconds = time.perf_counter() - start
        texts = []
        for order in ("cumulative", "tottime"):
            out = Path(tmp) / f"{order}.txt"
            with out.open("w") as f:
                stats = pstats.Stats(str(prof), stream=f)
                stats.strip_dirs().sort_stats(order).print_stats(PROFILE_LINES)
            texts.append(_profile_table(out.read_text()))
    return texts[0], texts[1], seconds


def _profile_table(text: str) -> str:
    lines = text.splitlines()
    head = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    total = next((ln.strip() for ln in lines if "function calls" in ln), "")
    return "\n".join([total, "", *[ln.rstrip() for ln in lines[head:head + PROFILE_LINES + 1]]])


# -- machine -------------------------------------------------------------------------------------


def _out(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    except OSError as exc:
        return f"({exc})"
    return (done.stdout or done.stderr).strip()


def machine(load_before: str) -> list[str]:
    commit = _out(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _out(["git", "-C", str(ROOT), "status", "--porcelain", "--", "analyzer"])
    return [
        f"- `nproc`: {_out(['nproc'])}; memory: {_memory()}; kernel {platform.release()}",
        f"- Python {platform.python_version()}; {_out(['tshark', '--version']).splitlines()[0]}; "
        f"{_out(['ssldump', '-v']).splitlines()[0]}; {_out(['openssl', 'version'])}; "
        f"dpkt {_out([PY, '-c', 'import dpkt; print(dpkt.__version__)'])}",
        f"- analyzer at commit {commit}" + (" with local changes under analyzer/" if dirty
                                             else ""),
        f"- load average (1, 5, 15 min) at the start: {load_before}; at the end: {_load()} "
        "(other work on the machine makes the times noisy; the interleaving keeps ratios fair)",
        "", "```", *_out(["lscpu"]).splitlines()[:10], "```",
    ]


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _memory() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / MiB:.1f} GiB"
    return "?"


# -- report --------------------------------------------------------------------------------------


@dataclass(slots=True)
class CorpusResult:
    corpus: corpora.Corpus
    cmds: list[Command]
    acc: Accuracy | None = None
    acc_ca: Accuracy | None = None
    acc_seconds: float = 0.0
    rounds: int = 0

    def cmd(self, key: str) -> Command:
        return next(c for c in self.cmds if c.key == key)

    def ratio(self, a: str, b: str) -> float:
        """Median over rounds of a/b: both ran in the same round, so load drift cancels."""
        pairs = zip(self.cmd(a).samples, self.cmd(b).samples, strict=True)
        return statistics.median(x.seconds / y.seconds for x, y in pairs)


def corpus_line(r: CorpusResult) -> str:
    m = r.corpus.meta
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(m["kinds"].items(), key=lambda kv: -kv[1]))
    mb = {k: f"{v / 1e6:.1f} MB" for k, v in m["bytes"].items()}
    return (f"- **{r.corpus.size}**: {m['connections']} connections, {m['packets']} packets, "
            f"pcap {mb['capture.pcap']}, pcapng {mb['capture.pcapng']}, gz "
            f"{mb['capture.pcap.gz']}; generated in {m['generation_seconds']} s (capture "
            f"{m['capture_seconds']} s), tcpdump: {m['tcpdump']}; {m['unchecked']} "
            f"connections unchecked. Kinds: {kinds}. Timed rounds: {r.rounds}.")


def table(results: list[CorpusResult]) -> list[str]:
    rows = ["| corpus | command | median s | min–max s | × tshark | × dpkt loop | "
            "× struct walk | packets/s | MB/s | peak RSS MiB |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        for c in r.cmds:
            secs = [s.seconds for s in c.samples]
            fail = c.failed
            note = f" (exit {fail.code})" if fail else ""
            size = c.file.stat().st_size
            rows.append(
                f"| {r.corpus.size} | {c.key}{note} | {c.median:.2f} | "
                f"{min(secs):.2f}–{max(secs):.2f} | {r.ratio(c.key, 'tshark'):.2f} | "
                f"{r.ratio(c.key, 'dpkt loop (floor)'):.2f} | "
                f"{r.ratio(c.key, 'struct walk (floor)'):.2f} | "
                f"{r.corpus.meta['packets'] / c.median:,.0f} | "
                f"{size / 1e6 / c.median:.1f} | {c.peak_mib:.1f} |")
    return rows


def goals(results: list[CorpusResult], start: dict[str, float]) -> list[str]:
    by = {r.corpus.size: r for r in results}
    out = ["| goal | measured | met |", "|---|---|---|"]

    def row(goal: str, measured: str, ok: bool) -> None:
        out.append(f"| {goal} | {measured} | {'yes' if ok else '**no**'} |")

    for size, goal in (("large", GOAL_LARGE), ("small", GOAL_SMALL), ("quick", GOAL_SMALL)):
        if size in by:
            x = by[size].ratio("tlsa", "tshark")
            row(f"tlsa ≤ {goal} × tshark on {size}", f"{x:.2f} ×", x <= goal)
            row(f"stretch: ≤ {GOAL_STRETCH} × tshark on {size}", f"{x:.2f} ×",
                x <= GOAL_STRETCH)
    for r in results:
        peak = r.cmd("tlsa").peak_mib
        row(f"peak RSS ≤ {GOAL_RSS_MIB} MiB on {r.corpus.size}", f"{peak:.1f} MiB",
            peak <= GOAL_RSS_MIB)
    if "large" in by and "small" in by:
        x = by["large"].cmd("tlsa").peak_mib / by["small"].cmd("tlsa").peak_mib
        row(f"large/small peak RSS ≤ {GOAL_RSS_RATIO}", f"{x:.2f}", x <= GOAL_RSS_RATIO)
    for r in results:
        x = r.ratio("tlsa pcapng", "tlsa")
        row(f"pcapng ≤ {GOAL_PCAPNG} × pcap time on {r.corpus.size}", f"{x:.2f} ×",
            x <= GOAL_PCAPNG)
        gz, plain = r.cmd("tlsa pcap.gz"), r.cmd("tlsa")
        streams = gz.tmp_files == 0 and gz.peak_mib <= plain.peak_mib * 1.1 + 5
        row(f".gz streams without a temporary file on {r.corpus.size}",
            f"{gz.tmp_files} files in TMPDIR, peak RSS {gz.peak_mib:.0f} vs "
            f"{plain.peak_mib:.0f} MiB (pcap), time {r.ratio('tlsa pcap.gz', 'tlsa'):.2f} × pcap",
            streams)
    for name, secs in start.items():
        row(f"`{name}` < {GOAL_STARTUP} s", f"{secs:.3f} s", secs < GOAL_STARTUP)
    for r in results:
        if r.acc is not None:
            row(f"accuracy ≥ {GOAL_ACCURACY:.0%} on {r.corpus.size}",
                f"{r.acc.share:.2%} ({r.acc.right}/{r.acc.checked})",
                r.acc.share >= GOAL_ACCURACY)
    return out


def accuracy_section(results: list[CorpusResult]) -> list[str]:
    out: list[str] = []
    for r in results:
        a = r.acc
        if a is None:
            continue
        out.append(f"**{r.corpus.size}**: {a.right} of {a.checked} checked connections right "
                   f"({a.share:.2%}); {a.unchecked} unchecked manifest lines left out.")
        if r.acc_ca is not None:
            out.append(f"With `--ca-bundle` set to the corpus's root CA (as a user of a "
                       f"private PKI would): {r.acc_ca.right} of {r.acc_ca.checked} "
                       f"({r.acc_ca.share:.2%}).")
        out += ["", "| kind | connections | right |", "|---|---:|---:|"]
        for kind, n in sorted(a.by_kind.items(), key=lambda kv: -kv[1]):
            out.append(f"| {kind} | {n} | {a.right_by_kind[kind] / n:.1%} |")
        if a.wrong:
            groups = Counter((w["kind"], w["stack"], w["version"], w["expected"], w["got"])
                             for w in a.wrong)
            out += ["", "Wrong, grouped (kind, client stack, version, expected → got):", "",
                    "| count | kind | stack | version | expected | got |",
                    "|---:|---|---|---|---|---|"]
            for (kind, stack, version, exp, got), n in groups.most_common():
                out.append(f"| {n} | {kind} | {stack} | {version} | {exp} | {got} |")
            out += ["", f"First {min(len(a.wrong), MAX_WRONG_LISTED)} wrong connections:", "",
                    "| 4-tuple | kind | sni | expected | got | tlsa's reason |",
                    "|---|---|---|---|---|---|"]
            for w in a.wrong[:MAX_WRONG_LISTED]:
                reason = w["reason"].replace("|", "\\|")[:220]
                out.append(f"| {w['tuple']} | {w['kind']} | {w['sni']} | {w['expected']} | "
                           f"{w['got']} | {reason} |")
        out.append("")
    return out


def report(results: list[CorpusResult], start: dict[str, float], prof: tuple[str, str, float],
           prof_corpus: str, runs: int, workers: bool, elapsed: float, load: str) -> str:
    cum, tot, prof_secs = prof
    flag = " --workers 1" if workers else ""
    lines = [
        BEGIN,
        "# Benchmark results",
        "",
        f"Made by `make bench` (`python bench/run.py`) on {time.strftime('%Y-%m-%d %H:%M %Z')}"
        f" in {elapsed / 60:.1f} min. Whole processes, interleaved, median of {runs} runs "
        "(fewer when the time budget ran short: see each corpus); ratios are medians of the "
        "per-round ratios; tlsa runs from compiled bytecode, as installed (`bench/installed.py`); "
        + ("peak RSS from GNU time (`%M`). " if RSS_EXACT else "peak RSS from `wait4` "
           "(GNU time missing: the figures include the runner's memory before `exec`). ")
        + "tlsa command: "
        f"`tlsa analyze FILE --format jsonl -o /dev/null{flag}`"
        + ("" if workers else " (`--workers` does not exist yet: single process anyway)")
        + ". tshark: `tshark -n -r FILE -Y \"" + TSHARK_FILTER + "\" -T fields` with "
        + ", ".join(f"`{f}`" for f in TSHARK_FIELDS) + ".",
        "",
        "## Machine",
        "",
        *machine(load),
        "",
        "## Corpora",
        "",
        "Real TLS stacks (Python ssl and openssl s_server/s_client) in private namespaces, "
        "veth link at MTU 1500, offloads off; see `bench/corpus.py`.",
        "",
        *[corpus_line(r) for r in results],
        "",
        "## Times",
        "",
        *table(results),
        "",
        "Start-up (median of 5): " + "; ".join(f"`{k}` {v:.3f} s" for k, v in start.items())
        + ".",
        "",
        "## Goals",
        "",
        *goals(results, start),
        "",
        "## Accuracy against the manifests (outcome and failure, matched by 4-tuple)",
        "",
        *accuracy_section(results),
        "## Profile",
        "",
        f"`python -m cProfile` of one tlsa run on the {prof_corpus} corpus"
        f"  ({prof_secs:.1f} s under the profiler), top {PROFILE_LINES} by cumulative "
        "time:",
        "",
        "```", cum, "```",
        "",
        f"Top {PROFILE_LINES} by own time:",
        "",
        "```", tot, "```",
        END,
    ]
    return "\n".join(lines) + "\n"


def write_results(path: Path, text: str) -> None:
    """Replace our block in ``path``; keep everything else (other sections)."""
    old = path.read_text() if path.exists() else ""
    if BEGIN in old and END in old:
        before, rest = old.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        new = before + text.rstrip("\n") + after
    elif old.strip():
        new = text + "\n" + old
    else:
        new = text
    path.write_text(new if new.endswith("\n") else new + "\n")


# -- main ----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Time tlsa against tshark, ssldump and floors.")
    ap.add_argument("--quick", action="store_true",
                    help="tiny corpus, one run, for smoke testing")
    ap.add_argument("--runs", type=int, help="runs per command (default 3, quick 1)")
    ap.add_argument("--sizes", nargs="+", choices=sorted(corpora.SIZES),
                    help="corpora to use (default small large; quick: quick)")
    ap.add_argument("--workers-flag", choices=("auto", "on", "off"), default="auto",
                    help="pass --workers 1 to tlsa (auto: when its CLI has the option)")
    ap.add_argument("--results", type=Path,
                    help=f"where to write the report (default {RESULTS}; quick: nowhere)")
    ap.add_argument("--corpus-dir", type=Path, help="where corpora are cached")
    ap.add_argument("--force-corpus", action="store_true", help="regenerate the corpora")
    args = ap.parse_args(argv)
    as_installed()
    t0 = time.monotonic()
    load_before = _load()
    sizes = args.sizes or (["quick"] if args.quick else ["small", "large"])
    runs = args.runs or (1 if args.quick else 3)
    results_path = args.results or (None if args.quick else RESULTS)
    if args.corpus_dir is not None:
        corpora.CORPUS_DIR = args.corpus_dir
    workers = {"on": True, "off": False}.get(args.workers_flag)
    if workers is None:
        workers = has_workers_option()
    missing = [t for t in ("tshark", "ssldump", "editcap") if shutil.which(t) is None]
    if missing or not Path(TLSA).exists():
        log(f"bench: missing {', '.join(missing) or TLSA}")
        return 2
    try:
        made = [corpora.ensure(s, force=args.force_corpus, log=log) for s in sizes]
    except corpora.CorpusError as exc:
        log(f"bench: {exc}")
        return 1
    results = []
    deadline = t0 + BUDGET - RESERVE
    for c in made:
        cmds = commands(c, workers)
        rounds = run_interleaved(cmds, runs, c.size, deadline)
        results.append(CorpusResult(corpus=c, cmds=cmds, rounds=rounds))
    for r in results:
        log(f"  {r.corpus.size}: accuracy run")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "records.jsonl"
            s = measure(tlsa_argv(r.corpus.pcap, workers, str(out)))
            r.acc_seconds = s.seconds
            truth = r.corpus.truth()
            if out.exists():
                r.acc = accuracy(truth, out)
            if r.corpus.size != "large" and r.corpus.root_ca.exists():
                argv = [*tlsa_argv(r.corpus.pcap, workers, str(out)), "--ca-bundle",
                        str(r.corpus.root_ca)]
                measure(argv)
                r.acc_ca = accuracy(truth, out)
    small = next((c for c in made if c.size == "small"), made[0])
    start = startup(make_tiny(small), workers)
    log("  profile")
    prof = profile(small, workers)
    text = report(results, start, prof, small.size, runs, workers, time.monotonic() - t0,
                  load_before)
    print(text)
    if results_path is not None:
        write_results(results_path, text)
        log(f"bench: wrote {results_path}")
    log(f"bench: done in {(time.monotonic() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())

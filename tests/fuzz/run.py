"""Fuzz every target for a time budget and report inputs tried, crashes and coverage.

Usage: ``python tests/fuzz/run.py --minutes 15`` (``make fuzz``), or ``--seconds N`` for a
short run (the test suite uses about a minute). The budget is shared equally between the
targets of ``tests/fuzz/targets.py``; each runs under atheris (``tests/fuzz/fuzz.py``)
starting from seeds cut out of ``sample_pcaps/`` (``tests/fuzz/seeds.py``) and from the
corpus earlier runs left in the work directory (default ``$TMPDIR/tlsa-fuzz``), so runs
build on each other.

A crash, hang (``-timeout``) or memory blow-up (``-rss_limit_mb``) is saved under
``WORKDIR/artifacts/<target>/`` and the target is restarted with the time left; the
same failure found three times ends that target's run. At the end the corpus is replayed
under coverage.py to measure line coverage of the parser packages. The report goes to
stdout and, as JSON, to ``WORKDIR/summary.json``. Exit status 1 if anything failed:
copy the artifact into ``tests/fuzz/regressions/<target>/`` once it is fixed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fuzz import seeds as seed_corpus  # noqa: E402
from tests.fuzz.replay import PARSER_PACKAGES  # noqa: E402
from tests.fuzz.targets import TARGETS  # noqa: E402

MAX_LEN = {
    "capture": 64 * 1024,
    "tls_stream": 20 * 1024,
    "hello": 8 * 1024,
    "frame": 2048,
    "keys": 4096,
    "dtls": 8 * 1024,
    "quic": 16 * 1024,
}
"""libFuzzer -max_len per target: the capture seeds are up to 32 KB, the others smaller (a
QUIC handshake with its key log is about 10 KB of datagrams)."""
INPUT_TIMEOUT = 10
"""Seconds one input may take before it counts as a hang."""
RSS_LIMIT_MB = 1024
"""Memory beyond which the fuzzing process counts as blown up."""
SAME_FAILURE_LIMIT = 3

_EXECUTED = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
_ARTIFACT = re.compile(r"Test unit written to (\S+)")


@dataclass
class Failure:
    kind: str
    """crash, timeout or oom (libFuzzer's artifact prefix)."""
    artifact: str
    summary: str


@dataclass
class TargetRun:
    target: str
    seconds: float = 0.0
    inputs: int = 0
    corpus: int = 0
    failures: list[Failure] = field(default_factory=list)


def python_exception(log: str) -> str:
    """The exception line and innermost frame atheris printed, or libFuzzer's summary."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if "=== Uncaught Python exception: ===" in line:
            block = []
            for item in lines[i + 1 :]:
                if not item.strip():
                    break
                block.append(item.strip())
            frames = [x for x in block if x.startswith("File ")]
            return f"{block[0]} at {frames[-1]}" if frames else (block[0] if block else "")
    for line in lines:
        if line.startswith("SUMMARY:") or "ERROR: libFuzzer" in line:
            return line.strip()
    return "unknown failure"


def fuzz_target(target: str, seconds: float, work: Path, seed_dir: Path) -> TargetRun:
    corpus = work / "corpus" / target
    artifacts = work / "artifacts" / target
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    result = TargetRun(target)
    seen: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) >= 2:
        cmd = [
            sys.executable,
            str(HERE / "fuzz.py"),
            target,
            f"-max_total_time={int(left)}",
            f"-timeout={INPUT_TIMEOUT}",
            f"-rss_limit_mb={RSS_LIMIT_MB}",
            f"-max_len={MAX_LEN[target]}",
            "-print_final_stats=1",
            f"-artifact_prefix={artifacts}/",
            str(corpus),
            str(seed_dir),
        ]
        started = time.monotonic()
        proc = subprocess.run(
            cmd,
            cwd=ROOT,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=left + 120,
            check=False,
        )
        result.seconds += time.monotonic() - started
        log = proc.stdout + proc.stderr
        result.inputs += sum(int(n) for n in _EXECUTED.findall(log))
        (work / f"{target}.log").write_text(log[-200_000:])
        artifact = _ARTIFACT.search(log)
        if proc.returncode == 0 or artifact is None:
            if proc.returncode != 0:
                result.failures.append(Failure("error", "", python_exception(log)))
            break
        path = artifact.group(1)
        kind = Path(path).name.split("-")[0]
        summary = python_exception(log)
        result.failures.append(Failure(kind, path, summary))
        seen[summary] = seen.get(summary, 0) + 1
        if seen[summary] >= SAME_FAILURE_LIMIT:
            break
    result.corpus = len(list(corpus.iterdir()))
    return result


def measure_coverage(work: Path, seed_dirs: dict[str, Path]) -> dict[str, list[int]] | None:
    try:
        import coverage  # noqa: F401
    except ImportError:
        return None
    out = work / "coverage.json"
    jobs = []
    for target in TARGETS:
        jobs += [f"{target}:{seed_dirs[target]}", f"{target}:{work / 'corpus' / target}"]
    subprocess.run(
        [sys.executable, str(HERE / "replay.py"), "--coverage", str(out), *jobs],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if not out.exists():
        return None
    report: dict[str, list[int]] = json.loads(out.read_text())
    return report


def print_report(runs: list[TargetRun], cov: dict[str, list[int]] | None, why: str) -> None:
    print(f"{'target':<12}{'seconds':>9}{'inputs':>12}{'corpus':>8}{'failures':>10}")
    for r in runs:
        print(f"{r.target:<12}{r.seconds:>9.0f}{r.inputs:>12}{r.corpus:>8}{len(r.failures):>10}")
    total = sum(r.inputs for r in runs)
    print(f"{'all':<12}{sum(r.seconds for r in runs):>9.0f}{total:>12}")
    for r in runs:
        for f in r.failures:
            print(f"FAILURE {r.target} {f.kind}: {f.summary}\n    input: {f.artifact}")
    if cov is None:
        print(f"coverage: not measured ({why})")
        return
    print("line coverage of the parser modules (corpus replayed):")
    for package in PARSER_PACKAGES:
        files = {k: v for k, v in cov.items() if k.startswith(package + "/")}
        hit = sum(v[0] for v in files.values())
        lines = sum(v[1] for v in files.values())
        print(f"  {package:<20}{100 * hit / max(lines, 1):5.1f}%  ({hit}/{lines} lines)")
        for name, (h, n) in sorted(files.items()):
            if n:
                print(f"      {name:<36}{100 * h / n:5.1f}%")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="total time for all targets")
    budget.add_argument("--seconds", type=float, help="total time for all targets")
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "tlsa-fuzz")
    parser.add_argument("--fresh", action="store_true", help="start from the seeds only")
    parser.add_argument("--no-coverage", action="store_true")
    args = parser.parse_args()
    seconds = args.seconds if args.seconds is not None else 60 * (args.minutes or 15)
    targets = [t for t in args.targets.split(",") if t]
    if unknown := set(targets) - set(TARGETS):
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    work = args.workdir
    if args.fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work / "seeds", ignore_errors=True)
    seed_dirs = seed_corpus.write(work / "seeds")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    # The pure-Python build: atheris and coverage.py see Python lines, not compiled code.
    os.environ["TLSA_PURE"] = "1"
    runs = [fuzz_target(t, seconds / len(targets), work, seed_dirs[t]) for t in targets]
    cov = None if args.no_coverage else measure_coverage(work, seed_dirs)
    print_report(runs, cov, "--no-coverage" if args.no_coverage else "pip install coverage")
    summary = {"runs": [asdict(r) for r in runs], "coverage": cov}
    (work / "summary.json").write_text(json.dumps(summary, indent=1))
    return 1 if any(r.failures for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Replay inputs through a fuzz target, optionally measuring line coverage of the parsers.

Usage: ``python tests/fuzz/replay.py [--coverage OUT.json] TARGET:PATH [TARGET:PATH ...]``
where PATH is a file or a directory of inputs (a corpus). Every input runs through the
target in this process; failures are listed (target, input, exception) and make the exit
status 1. With ``--coverage`` (coverage.py), the line coverage of each module in
``PARSER_PACKAGES`` is written to OUT.json as ``{module: [covered, statements]}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PARSER_PACKAGES = (
    "analyzer/sources",
    "analyzer/decode",
    "analyzer/flows",
    "analyzer/tls",
    "analyzer/engine",
)
"""Where the bytes of a capture are parsed; the coverage report covers these."""
NOT_PARSERS = ("analyzer/sources/live.py",)
"""Modules inside those packages that fuzzing cannot reach (live capture: a subprocess)."""


def inputs(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file())
    return [path]


def replay(jobs: list[tuple[str, Path]]) -> list[tuple[str, Path, str]]:
    """Run every input; return (target, input, one-line exception) per failure."""
    from tests.fuzz.targets import TARGETS

    failures = []
    for target, path in jobs:
        for item in inputs(path):
            try:
                TARGETS[target](item.read_bytes())
            except Exception as exc:
                where = traceback.extract_tb(exc.__traceback__)[-1]
                summary = f"{type(exc).__name__}: {exc} ({where.filename}:{where.lineno})"
                failures.append((target, item, summary))
    return failures


def measured(jobs: list[tuple[str, Path]], out: Path) -> list[tuple[str, Path, str]]:
    import coverage

    include = [str(ROOT / package / "*") for package in PARSER_PACKAGES]
    cov = coverage.Coverage(
        data_file=None, include=include, omit=[str(ROOT / "analyzer/sources/live.py")]
    )
    cov.start()
    try:
        failures = replay(jobs)
    finally:
        cov.stop()
    report: dict[str, list[int]] = {}
    for package in PARSER_PACKAGES:
        for source in sorted((ROOT / package).glob("*.py")):
            rel = str(source.relative_to(ROOT))
            if rel in NOT_PARSERS:
                continue
            _, statements, _, missing, _ = cov.analysis2(str(source))
            report[rel] = [len(statements) - len(missing), len(statements)]
    out.write_text(json.dumps(report, indent=1))
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coverage", type=Path, help="write per-module line coverage here")
    parser.add_argument("jobs", nargs="+", help="TARGET:PATH")
    args = parser.parse_args()
    jobs = []
    for job in args.jobs:
        target, _, path = job.partition(":")
        jobs.append((target, Path(path)))
    failures = measured(jobs, args.coverage) if args.coverage else replay(jobs)
    for target, item, summary in failures:
        print(f"{target}: {item}: {summary}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

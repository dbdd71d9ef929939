#!/usr/bin/env python3
"""Instructions, not seconds: ``tlsa analyze`` under cachegrind, for one or more trees.

Wall and CPU times on a shared machine move by 10-30 % from one minute to the next, more
than most single changes to the hot path. The number of instructions a whole process
executes (valgrind's cachegrind, no cache simulation) moves by well under 1 % between
runs, so it tells whether a change made the work smaller. It is not a time: memory
traffic (the garbage collector's walks, copies) costs more per instruction than
arithmetic. ``bench/run.py`` stays the judge of speed against tshark.

Usage: ``python bench/instructions.py FILE [TREE ...]``: for each source tree (default:
this checkout), ``python -m analyzer analyze FILE -f jsonl -o /dev/null --workers 1``
with that tree first on ``PYTHONPATH`` (its compiled modules if it has a current build),
from compiled bytecode (:mod:`installed`); prints the instructions and each tree's ratio
to the first. Needs valgrind; takes about 25 s per 50 MB of capture per tree.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from installed import ROOT, as_installed

_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def instructions(tree: Path, capture: Path) -> int:
    """Instructions of one ``tlsa analyze`` process run from ``tree``."""
    argv = [
        "valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
        sys.executable, "-m", "analyzer", "analyze", str(capture),
        "-f", "jsonl", "-o", os.devnull, "--workers", "1",
    ]
    env = dict(os.environ, PYTHONPATH=str(tree))
    done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True, check=False)
    found = _REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{tree}: tlsa under valgrind failed: {done.stderr.strip()[-300:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    ap = argparse.ArgumentParser(description="Instructions of tlsa analyze, per source tree.")
    ap.add_argument("capture", type=Path)
    ap.add_argument("trees", type=Path, nargs="*", help="source trees (default: this one)")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed")
    trees = [t.resolve() for t in args.trees] or [ROOT]
    as_installed(*(t / "analyzer" for t in trees))
    first = 0
    for tree in trees:
        n = instructions(tree, args.capture.resolve())
        first = first or n
        print(f"{tree}: {n:,} instructions ({n / first:.3f} x the first)", flush=True)


if __name__ == "__main__":
    main()

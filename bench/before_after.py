#!/usr/bin/env python3
"""Before and after: the same commands run with an older commit's ``analyzer`` and with
this tree's, interleaved, whole processes, median of ``--rounds``.

The older code is ``git archive COMMIT analyzer`` unpacked in a temporary directory and put
first on ``PYTHONPATH``; everything else (interpreter, packages, inputs) is shared. Timed:

- ``tlsa analyze sample_pcaps/ -f jsonl -o /dev/null`` and ``tlsa report sample_pcaps/``
  (the report's goal is at most 3× the analysis), before and after;
- ``tlsa analyze CAPTURE -f jsonl -o /dev/null --workers 1`` on the small benchmark corpus
  (``bench/corpus.py small``), before and after, with tshark's pass over the same file
  (the fields ``bench/run.py`` asks for) side by side;
- with ``--flood N``: ``tlsa analyze`` of a SYN flood of N connections (the stress test's
  shape), peak RSS and time.

Peak RSS comes from GNU time (``%M``). The outputs of before and after are compared
(``bench/same_records.py``). Prints a Markdown section for ``bench/RESULTS.md``.
Usage: ``python bench/before_after.py --before COMMIT [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from installed import as_installed

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TLSA = Path(sys.executable).with_name("tlsa")
TSHARK_FIELDS = [
    "frame.time_epoch", "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport",
    "tls.handshake.type", "tls.handshake.version",
    "tls.handshake.extensions.supported_version", "tls.handshake.extensions_server_name",
    "tls.handshake.ciphersuite", "tls.handshake.extensions_alpn_str", "tls.handshake.ja3",
    "tls.alert_message.level", "tls.alert_message.desc",
]  # fmt: skip
TSHARK_FILTER = "tls.handshake.type == 1 || tls.handshake.type == 2 || tls.alert_message"


def timed(command: list[str], pythonpath: Path | None = None) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MiB) and CPU seconds (user + system) of one whole process
    (CPU time is the steadier measure on a machine shared with other work)."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    with tempfile.NamedTemporaryFile("r") as rss:
        start = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M %U %S", "-o", rss.name, *command],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - start
        if done.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(command)}: exit {done.returncode}\n{done.stderr}")
        peak, user, system = rss.read().split()[-3:]
        return wall, int(peak) / 1024, float(user) + float(system)


def tshark(capture: Path) -> list[str]:
    fields = [x for f in TSHARK_FIELDS for x in ("-e", f)]
    return ["tshark", "-n", "-r", str(capture), "-Y", TSHARK_FILTER, "-T", "fields", *fields]


def median_row(
    times: list[tuple[float, float, float]],
) -> tuple[float, float, float, float, float]:
    walls = [t for t, _, _ in times]
    cpu = statistics.median(c for _, _, c in times)
    return statistics.median(walls), min(walls), max(walls), max(r for _, r, _ in times), cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, help="the commit to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--flood", type=int, default=0, help="connections of a SYN flood run")
    args = ap.parse_args()
    old = Path(tempfile.mkdtemp(prefix="tlsa-before-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", args.before, "analyzer"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    trees = {"before": old, "after": ROOT}
    as_installed(old / "analyzer", ROOT / "analyzer")
    samples = ROOT / "sample_pcaps"
    small = sorted((HERE / "corpus").glob("small-g*/capture.pcap"))
    commands: dict[str, tuple[list[str], bool]] = {
        "analyze sample_pcaps/": (
            [str(TLSA), "analyze", str(samples), "-f", "jsonl", "-o", os.devnull],
            True,
        ),
        "report sample_pcaps/": (
            [str(TLSA), "report", str(samples), "-o", str(old / "report")],
            True,
        ),
    }
    if small:
        commands["analyze small corpus --workers 1"] = (
            [str(TLSA), "analyze", str(small[-1]), "-f", "jsonl", "-o", os.devnull,
             "--workers", "1"],
            True,
        )  # fmt: skip
        commands["tshark small corpus"] = (tshark(small[-1]), False)
    if args.flood:
        sys.path.insert(0, str(ROOT))
        from tests.test_stress import write_flood

        flood = old / "flood.pcap"
        write_flood(flood, args.flood, hello=False)
        commands[f"analyze SYN flood ({args.flood:,}) --workers 1"] = (
            [str(TLSA), "analyze", str(flood), "-f", "jsonl", "-o", os.devnull,
             "--workers", "1"],
            True,
        )  # fmt: skip
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for r in range(args.rounds):
        for name, (command, per_tree) in commands.items():
            for tree, path in trees.items() if per_tree else [("", None)]:
                t = timed(command, path)
                results.setdefault((name, tree), []).append(t)
                print(f"round {r + 1}: {name} {tree}: {t[0]:.2f} s, {t[2]:.2f} s CPU, "
                      f"{t[1]:.0f} MiB",
                      file=sys.stderr, flush=True)  # fmt: skip
    print(f"Load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| command | code | median s | min–max s | median CPU s | peak RSS MiB |")
    print("|---|---|---:|---:|---:|---:|")
    for (name, tree), times in results.items():
        med, lo, hi, rss, cpu = median_row(times)
        print(f"| {name} | {tree or '–'} | {med:.2f} | {lo:.2f}–{hi:.2f} | {cpu:.2f} "
              f"| {rss:.0f} |")  # fmt: skip
    for tree in trees:
        report = results.get(("report sample_pcaps/", tree))
        analyze = results.get(("analyze sample_pcaps/", tree))
        if report and analyze:
            walls = [a[0] / b[0] for a, b in zip(report, analyze, strict=True)]
            cpus = [a[2] / b[2] for a, b in zip(report, analyze, strict=True)]
            print(f"\n- report ÷ analyze on sample_pcaps/, {tree}: median of the per-round "
                  f"ratios {statistics.median(walls):.2f}× (wall), "
                  f"{statistics.median(cpus):.2f}× (CPU)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

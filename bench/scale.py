#!/usr/bin/env python3
"""Scale-out benchmark: ``--workers 2`` against ``--workers 1``, and the Dask path.

What it measures, on the large benchmark capture (``bench/corpus/large-g*/capture.pcap``,
made by ``bench/corpus.py large``; without it, a capture made here by replicating the
sample captures with new addresses until it is at least ``--min-mb`` MB):

- whole ``tlsa analyze FILE --format jsonl -o /dev/null`` processes with ``--workers 1`` and
  ``--workers 2``, interleaved, median of ``--rounds``; the two outputs must be identical;
- where the time goes: CPU seconds of the whole file and of each shard, each in a worker
  doing the same work (each shard's worker re-reads the file and leaves the other shard's
  frames in its reader; every worker renders and sorts its records' lines), and the
  serial part that stays in the parent (merging, cross-connection evidence, writing);
- the alternative split (one reader handing frames to the workers): what serializing the
  frames would cost per frame, against what re-reading costs each worker;
- the Dask path: a ``dask scheduler`` and two single-thread ``dask worker`` processes on
  127.0.0.1, ``tlsa analyze FILE --dask ADDRESS --format jsonl``: time, packets/s, and the
  output compared with ``--workers 1``.

It appends (or replaces) the "Scale-out" section of ``bench/RESULTS.md`` and keeps every
other section. Usage: ``python bench/scale.py [--rounds 3] [--no-results]``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
SECTION = "## Scale-out"
TLSA = Path(sys.executable).with_name("tlsa")

sys.path.insert(0, str(ROOT))
from installed import as_installed  # noqa: E402


def find_corpus() -> Path | None:
    found = sorted((HERE / "corpus").glob("large-g*/capture.pcap"))
    return found[-1] if found else None


def replicate_samples(out: Path, min_mb: int) -> Path:
    """A large capture from sample_pcaps/: copies of every Ethernet sample with new
    addresses per copy, played one after another (a stand-in when the corpus is absent)."""
    import dpkt

    from analyzer.sources import CaptureReader

    samples = [p for p in sorted((ROOT / "sample_pcaps").iterdir())
               if p.suffix in (".pcap", ".pcapng", ".gz")]
    frames = []
    for p in samples:
        got = list(CaptureReader(p))
        if got and got[0].linktype == 1:
            frames.append(got)
    t0 = 1_795_600_000.0
    written = copy = 0
    with out.open("wb") as f:
        w = dpkt.pcap.Writer(f, snaplen=262144, linktype=1)
        while written < min_mb << 20:
            copy += 1
            for capture in frames:
                first = capture[0].ts
                for fr in capture:
                    buf = bytearray(fr.data)
                    if buf[12:14] == b"\x08\x00" and len(buf) >= 34:
                        buf[26] = buf[30] = 10
                        buf[27] = buf[31] = copy % 250
                    w.writepkt(bytes(buf), ts=t0 + (fr.ts - first))
                    written += len(buf) + 16
                t0 += 2.0
    return out


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def run_tlsa(args: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its children) of one tlsa run."""
    before = os.times()
    t = time.perf_counter()
    subprocess.run([str(TLSA), *args], check=False, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system)
    return wall, cpu


def breakdown(capture: Path) -> dict[str, float]:
    """CPU seconds of the whole file in one process and of each of two shards, and the
    parent's serial part after the workers as ``tlsa analyze --workers 2 -f jsonl`` runs
    it: merging the workers' evidence and their sorted JSONL lines, sharpening the records
    the evidence may change, writing the lines."""
    import io
    import tempfile

    from analyzer.diagnosis.cross import Evidence
    from analyzer.scale.lines import final_lines, merge_lines
    from analyzer.scale.local import run_parts
    from analyzer.scale.work import Part

    spill = tempfile.mkdtemp(prefix="tlsa-bench-runs-")
    try:
        # The whole file in a worker of its own, doing a shard's work (its records' lines
        # rendered and sorted into runs), so that the CPU times compare like with like.
        alone = os.path.join(spill, "whole")
        os.mkdir(alone)
        whole = run_parts([Part(path=str(capture), index=0)], 1, spill_dir=alone, lines=True)[0]
        t = time.perf_counter()
        results = run_parts([Part(path=str(capture), index=0, shard=s, shards=2)
                             for s in (0, 1)], 2, spill_dir=spill, lines=True)
        pool_wall = time.perf_counter() - t
        t = time.process_time()
        evidence = Evidence()
        for res in results:
            assert res.evidence is not None and res.runs is not None
            evidence.merge(res.evidence)
        out = io.StringIO()
        records = 0
        for line, _ in final_lines(merge_lines([res.runs for res in results if res.runs]),
                                   evidence):
            out.write(line)
            records += 1
        tail = time.process_time() - t
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    shard_cpu = {res.part.shard: res.cpu_seconds for res in results}
    return {
        "whole_cpu": whole.cpu_seconds,
        "shard0_cpu": shard_cpu[0],
        "shard1_cpu": shard_cpu[1],
        "pool_wall": pool_wall,
        "tail": tail,
        "records": float(records),
        "frames": float(whole.stats.frames),
    }


def relay_cost(capture: Path, limit: int = 200_000) -> dict[str, float]:
    """Per-frame costs of the two ways to split one file: re-reading and skipping (what
    every worker pays for the frames of the other shards) against serializing frames for
    one reader to hand them out (pickle there and back)."""
    from analyzer.scale.shard import frame_key
    from analyzer.sources import CaptureReader

    frames = []
    t = time.process_time()
    for n, f in enumerate(CaptureReader(capture)):
        frames.append(f)
        if n + 1 >= limit:
            break
    read = (time.process_time() - t) / len(frames)
    t = time.process_time()
    for f in frames:
        frame_key(f)
    key = (time.process_time() - t) / len(frames)
    plain = [tuple(f) for f in frames]
    t = time.process_time()
    blob = pickle.dumps(plain, protocol=pickle.HIGHEST_PROTOCOL)
    pickle.loads(blob)
    ser = (time.process_time() - t) / len(frames)
    return {"read_us": read * 1e6, "key_us": key * 1e6, "pickle_us": ser * 1e6}


def _relay_worker(conn: object, out: object, name: str) -> None:
    """A shard worker of the one-reader prototype: frames of its shard as tuples, the
    other shards' frames as their timestamps only."""
    from analyzer.diagnosis import diagnose
    from analyzer.scale.shard import ShardEngine
    from analyzer.sources.base import Frame

    engine = ShardEngine(name, 0, 1)  # fed and skipped directly, not through a reader
    feed, skip = engine.feed, engine.skip
    found = []
    started = time.process_time()
    while True:
        batch = conn.recv()  # type: ignore[attr-defined]
        if batch is None:
            break
        for item in batch:
            got = skip(item) if type(item) is float else feed(Frame._make(item))
            if got:
                found.extend(got)
    found.extend(engine.finish())
    records = [diagnose(r) for r in found]
    out.send((len(records), time.process_time() - started))  # type: ignore[attr-defined]


def relay_prototype(capture: Path, shards: int = 2, batch: int = 4096) -> dict[str, float]:
    """The other split, measured: this process reads the file once, keys every frame and
    pipes it (pickled) to the worker of its shard, and its timestamp to the others."""
    import multiprocessing as mp

    from analyzer.scale.shard import frame_key
    from analyzer.sources import CaptureReader

    ctx = mp.get_context("forkserver")
    pipes, outs, procs = [], [], []
    for _ in range(shards):
        recv, send = ctx.Pipe(duplex=False)
        out_recv, out_send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_relay_worker, args=(recv, out_send, capture.name))
        proc.start()
        pipes.append(send)
        outs.append(out_recv)
        procs.append(proc)
    wall, cpu = time.perf_counter(), time.process_time()
    batches: list[list[object]] = [[] for _ in range(shards)]
    for frame in CaptureReader(capture):
        k = frame_key(frame) % shards
        for s in range(shards):
            batches[s].append(tuple(frame) if s == k else frame.ts)
        if len(batches[0]) >= batch:
            for s in range(shards):
                pipes[s].send(batches[s])
                batches[s] = []
    for s in range(shards):
        pipes[s].send(batches[s])
        pipes[s].send(None)
    reader_cpu = time.process_time() - cpu
    results = [o.recv() for o in outs]
    for proc in procs:
        proc.join()
    return {
        "wall": time.perf_counter() - wall,
        "reader_cpu": reader_cpu,
        "worker0_cpu": results[0][1],
        "worker1_cpu": results[1][1],
        "records": float(sum(n for n, _ in results)),
    }


class Cluster:
    """A dask scheduler and two single-thread workers on 127.0.0.1 (random ports)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        dask = str(Path(sys.executable).with_name("dask"))
        state = tmp / "scheduler.json"
        self.procs.append(subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(state)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp))
        deadline = time.monotonic() + 60
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.address = json.loads(state.read_text())["address"]
        for n in (1, 2):
            self.procs.append(subprocess.Popen(
                [dask, "worker", self.address, "--nthreads", "1", "--host", "127.0.0.1",
                 "--no-dashboard", "--name", f"w{n}", "--local-directory", str(tmp)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp))
        from distributed import Client

        with Client(self.address, timeout=30) as c:
            c.wait_for_workers(2, timeout=60)

    def close(self) -> None:
        from distributed import Client

        try:
            with Client(self.address, timeout=10) as c:
                c.shutdown()
        except Exception:
            pass
        for p in reversed(self.procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-mb", type=int, default=256,
                    help="size of the replicated capture when the corpus is absent")
    ap.add_argument("--no-results", action="store_true", help="do not touch RESULTS.md")
    args = ap.parse_args()
    as_installed()

    tmp = Path(tempfile.mkdtemp(prefix="tlsa-scale-"))
    try:
        capture = find_corpus()
        origin = "bench/corpus (bench/corpus.py large)"
        if capture is None:
            capture = replicate_samples(tmp / "replicated.pcap", args.min_mb)
            origin = f"sample_pcaps/ replicated to {args.min_mb} MB (the corpus was absent)"
        size_mb = capture.stat().st_size / 1e6
        print(f"capture: {capture} ({size_mb:.0f} MB), load {load()}", flush=True)
        loads = [load()]

        outs = {w: tmp / f"w{w}.jsonl" for w in (1, 2)}
        times: dict[str, list[float]] = {"1": [], "2": [], "dask": []}
        cpus: dict[str, list[float]] = {"1": [], "2": []}
        for r in range(args.rounds):
            for w in (1, 2):
                wall, cpu = run_tlsa(["analyze", str(capture), "--format", "jsonl",
                                      "-o", str(outs[w]), "--workers", str(w)])
                times[str(w)].append(wall)
                cpus[str(w)].append(cpu)
                print(f"round {r + 1}: --workers {w}: {wall:.2f} s wall, {cpu:.2f} s CPU",
                      flush=True)
        gz = capture.with_name(capture.name + ".gz")
        gz_times: dict[int, float] = {}
        if gz.exists():  # gzip: every shard decompresses the whole file
            for w in (1, 2):
                gz_times[w], _ = run_tlsa(["analyze", str(gz), "--format", "jsonl",
                                           "-o", os.devnull, "--workers", str(w)])
                print(f"gzip: --workers {w}: {gz_times[w]:.2f} s", flush=True)
        identical = outs[1].read_bytes() == outs[2].read_bytes()
        n_records = sum(1 for _ in outs[1].open())
        loads.append(load())

        split = breakdown(capture)
        relay = relay_cost(capture)
        proto = relay_prototype(capture)
        print(json.dumps(split), json.dumps(relay), json.dumps(proto), flush=True)

        cluster = Cluster(tmp)
        try:
            dask_out = tmp / "dask.jsonl"
            for r in range(args.rounds):
                wall, _ = run_tlsa(["analyze", str(capture), "--format", "jsonl",
                                    "-o", str(dask_out), "--dask", cluster.address])
                times["dask"].append(wall)
                print(f"round {r + 1}: --dask: {wall:.2f} s", flush=True)
        finally:
            cluster.close()
        dask_identical = dask_out.read_bytes() == outs[1].read_bytes()
        loads.append(load())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    speedup = med["1"] / med["2"]
    per_round = [a / b for a, b in zip(times["1"], times["2"], strict=True)]
    critical = max(split["shard0_cpu"], split["shard1_cpu"])
    frames = split["frames"]
    serial = split["tail"]
    gz_line = ""
    if gz_times:
        gz_line = (f"- The same capture gzip-compressed (one round; each shard decompresses the "
                   f"whole file): `--workers 1` {gz_times[1]:.2f} s, `--workers 2` "
                   f"{gz_times[2]:.2f} s ({gz_times[1] / gz_times[2]:.2f}×).\n")
    section = f"""{SECTION}

Made by `python bench/scale.py` on {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}; \
{os.cpu_count()} cores; capture: {origin}, {size_mb:.0f} MB, {int(frames):,} frames, \
{n_records:,} records. Whole `tlsa analyze FILE --format jsonl -o OUT` processes, \
interleaved, median of {args.rounds}; load averages (1/5/15 min) before, between and \
after: {" → ".join(loads)} (other work shared the machine, so single runs vary).

| command | median s | min–max s | frames/s | MB/s | speed-up |
|---|---:|---:|---:|---:|---:|
| `--workers 1` | {med["1"]:.2f} | {min(times["1"]):.2f}–{max(times["1"]):.2f} | \
{frames / med["1"]:,.0f} | {size_mb / med["1"]:.1f} | 1.00 |
| `--workers 2` | {med["2"]:.2f} | {min(times["2"]):.2f}–{max(times["2"]):.2f} | \
{frames / med["2"]:,.0f} | {size_mb / med["2"]:.1f} | {speedup:.2f} |
| `--dask` (scheduler + 2 single-thread workers, 127.0.0.1) | {med["dask"]:.2f} | \
{min(times["dask"]):.2f}–{max(times["dask"]):.2f} | {frames / med["dask"]:,.0f} | \
{size_mb / med["dask"]:.1f} | {med["1"] / med["dask"]:.2f} |

{gz_line}- Speed-up of `--workers 2` per round: {", ".join(f"{x:.2f}" for x in per_round)} \
(goal ≥ 1.6×: **{"met" if speedup >= 1.6 else "not met"}**). Outputs of `--workers 1`, \
`--workers 2` and `--dask` byte-identical: {identical and dask_identical}.
- Where the time goes (CPU seconds, in-process, each part in a worker that renders and \
sorts its records' lines): the whole file {split["whole_cpu"]:.2f}; each of two shards, \
run at the same time, {split["shard0_cpu"]:.2f} and {split["shard1_cpu"]:.2f} (critical \
path {critical / split["whole_cpu"]:.0%} of the whole: half the analysis plus reading and \
keying the other half's frames); after the \
workers, serial in the parent (the workers rendered the JSONL lines): merging their \
evidence and lines, sharpening the records the evidence may change, writing \
{serial:.2f} s, which caps the end-to-end speed-up at about \
{(split["whole_cpu"] + serial) / (critical + serial):.2f}× on two cores.
- The split: every worker re-reads the file; its reader keys each frame and leaves the \
other shard's frames behind: {relay["read_us"]:.2f} µs a frame to read and \
{relay["key_us"]:.2f} µs for the shard key, \
{split["shard0_cpu"] + split["shard1_cpu"]:.2f} CPU seconds for both shards. The other \
split, one reader piping each frame (pickled, {relay["pickle_us"]:.2f} µs \
a frame there and back) to its shard's worker and its timestamp to the other, measured \
with a prototype (`relay_prototype`): reader {proto["reader_cpu"]:.2f} s, workers \
{proto["worker0_cpu"]:.2f} and {proto["worker1_cpu"]:.2f} s, \
{proto["reader_cpu"] + proto["worker0_cpu"] + proto["worker1_cpu"]:.2f} CPU seconds in all \
in three processes ({proto["wall"]:.2f} s wall). On two cores the total is what counts, so \
re-reading is kept; with more cores than shards the reader would no longer be the cost.
"""
    print(section)
    if not args.no_results:
        text = RESULTS.read_text() if RESULTS.exists() else ""
        start = text.find(SECTION)
        if start >= 0:
            end = text.find("\n## ", start + len(SECTION))
            text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
        else:
            text = text.rstrip("\n") + "\n\n" + section
        RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Local scale-out (``tlsa analyze --workers N``): every core of one machine.

Plan: each input file is one task; a file of at least ``limits.SHARD_MIN_BYTES`` is split
into ``N`` shard tasks instead (each worker reads the whole file and analyzes only the
connections of its shard, see :mod:`analyzer.scale.shard`). This process runs one task
itself and a pool of ``N - 1`` worker processes the others, largest first (how the
workers start: :func:`_context`). Each worker sorts its
records into a file of runs (:mod:`analyzer.sorted_records`) and builds the
cross-connection evidence of its records; the parent merges the evidence (SPEC §5) and
the files, in ``(ts, uid)`` order: the same records, ``uid``s included, as one process
makes, with a bounded number of records in memory in every process whatever the number
of connections. For a JSONL output the workers render the lines too, and the parent writes
most of them as they come (:func:`collect_jsonl_parallel`, :mod:`analyzer.scale.lines`).

Why every worker re-reads the file: its reader keys every frame and leaves the other
shards' frames behind (:meth:`analyzer.scale.shard.ShardEngine.wants`), so a shard costs
its half of the analysis plus reading the file. Counted in instructions on the 47 MB
benchmark capture, each of two shards is 57–58 % of the whole file's work. One reader
piping frames to two workers instead (a prototype in bench/scale.py; figures in
bench/RESULTS.md) costs more CPU in all, so on two cores it is the slower split.

A file that cannot be read, or whose worker dies, becomes one line in ``run.errors``
naming it; every other file's records still come out.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from analyzer import limits
from analyzer.diagnosis import DiagnosisOptions
from analyzer.diagnosis.cross import Evidence
from analyzer.pipeline import PathArg, Progress, Run, analyze_files, analyze_sorted, as_list
from analyzer.record import HandshakeRecord
from analyzer.scale import transport
from analyzer.scale.lines import (
    Rendered,
    SortedLines,
    final_lines,
    line_entry,
    merge_lines,
)
from analyzer.scale.work import (
    Merged,
    Part,
    PartResult,
    analyze_part,
    failed_part,
    merge_parts,
    plan_parts,
)
from analyzer.sorted_records import Runs, SortedItems, SortedRecords, merge
from analyzer.sources import expand_paths
from analyzer.tls.keylog import KeyLog

T = TypeVar("T")


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def free_cores() -> int:
    """Cores not busy with other work: this process's cores less the work of others, at
    least one. The work of others is the load average of the last minute (processes
    running or waiting to run), or the other processes runnable right now if fewer: a
    script that runs ``tlsa`` again and again raises the load average by itself, and its
    next run must still find the machine free.

    A second worker only pays when it gets a core of its own: on two cores with one busy
    elsewhere, two workers take turns on the free one and lose to one worker (they also
    re-read the file and their records go through the parent)."""
    try:
        busy = os.getloadavg()[0]
    except OSError:  # not available: assume the machine is ours
        busy = 0.0
    now = _runnable_others()
    if now is not None:
        busy = min(busy, now)
    return max(1, min(cores(), math.floor(cores() - busy + 0.5)))


def _runnable_others() -> int | None:
    """Other threads runnable right now (``/proc/loadavg``), or None where unknown."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None
    return max(0, running - 1)  # this process is one of them


def default_workers(files: Sequence[Path]) -> int:
    """The free cores (:func:`free_cores`) when there is a large input, or several that
    are not all tiny; else 1."""
    sizes = [_size(f) for f in files]
    if any(size >= limits.SHARD_MIN_BYTES for size in sizes) or (
        len(files) > 1 and sum(sizes) >= limits.PARALLEL_MIN_BYTES
    ):
        return free_cores()
    return 1


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def analyze_part_packed(part: Part, runs_path: str | None = None, lines: bool = False) -> bytes:
    """:func:`analyze_part` in a worker: its result pickled the fast way
    (:mod:`analyzer.scale.transport`). With ``runs_path``, the records are sorted into
    that file (:class:`~analyzer.sorted_records.SortedRecords`; with ``lines``, their
    JSONL lines, :class:`~analyzer.scale.lines.SortedLines`) and the result carries
    where they are and their cross-connection evidence instead: the worker and the
    parent each hold a bounded number of records whatever the capture."""
    if runs_path is None:
        return transport.dumps(analyze_part(part))
    if lines:
        result = _analyze_sorted(part, SortedLines(path=runs_path), line_entry)
    else:
        result = _analyze_sorted(part, SortedRecords(path=runs_path), _same)
    return transport.dumps(result)


def _same(record: HandshakeRecord) -> HandshakeRecord:
    return record


def _analyze_sorted(
    part: Part, store: SortedItems[T], entry: Callable[[HandshakeRecord], T]
) -> PartResult:
    """:func:`analyze_part` with each record's ``entry`` sorted into ``store``
    (handed over) and the records' cross-connection evidence."""
    evidence = Evidence()

    def sink(record: HandshakeRecord) -> None:
        evidence.add(record)
        store.add(entry(record))

    result = analyze_part(part, sink)
    result.runs = store.hand_over()
    evidence.hand_over(result.runs.path + ".evidence")
    result.evidence = evidence
    return result


def _context() -> multiprocessing.context.BaseContext:
    """How the pool starts its workers: plain ``fork`` on Linux when this process runs no
    other thread; else ``forkserver`` where there is one, else ``spawn`` (never ``fork``
    of a process that may hold threads: a lock another thread holds stays held in the
    child).

    A forked worker starts at once. A forkserver first imports the analyzer in a new
    interpreter, and this process waits for it in ``submit`` before it starts its own
    part: 0.35 s of a two-worker run of 8 s on the benchmark capture, with one core
    idle. Standard output and error are flushed before a fork, so that no buffered text
    is written twice."""
    methods = multiprocessing.get_all_start_methods()
    if sys.platform.startswith("linux") and "fork" in methods and threading.active_count() == 1:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # None under pythonw
                stream.flush()
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["analyzer.scale.work"])
        return ctx
    return multiprocessing.get_context("spawn")


@contextmanager
def _main_not_imported() -> Iterator[None]:
    """Start worker processes without the caller's main module.

    ``spawn`` and ``forkserver`` import the parent's ``__main__`` in every child, which
    re-runs a script that lacks an ``if __name__ == "__main__":`` guard (and
    ``python -m analyzer`` would run the command again in each worker). The workers need
    only :mod:`analyzer.scale.work`, so the main module's file and spec are hidden from
    :mod:`multiprocessing` while the processes start.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved: dict[str, object] = {
        k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__
    }
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def run_parts(
    parts: Sequence[Part],
    workers: int,
    progress: Progress | None = None,
    spill_dir: str | None = None,
    here: Callable[[Part], PartResult] | None = None,
    lines: bool = False,
) -> list[PartResult]:
    """Run the parts on ``workers`` processes; a part whose worker fails gets an error
    result. With ``spill_dir``, each part's records are left sorted in a file there
    (``PartResult.runs``, with their ``evidence``; with ``lines``, their JSONL lines)
    instead of coming back. With ``here``, this process is one of the workers: it runs
    the last part with ``here`` while a pool of ``workers - 1`` runs the others (one
    process fewer to start, and that part's records never leave this process)."""
    results: list[PartResult] = []
    done: dict[int, int] = {}
    report: Callable[[PartResult], None] = lambda r: None  # noqa: E731
    if progress is not None:
        for p in parts:
            if p.shard == 0:
                progress(Path(p.label or p.path).name, 0, p.size)

        def report(r: PartResult) -> None:
            p = r.part
            done[p.index] = done.get(p.index, 0) + (p.size or 0) // p.shards
            finished = sum(1 for q in results if q.part.index == p.index) == p.shards
            progress(r.capture, (p.size or 0) if finished else done[p.index], p.size)

    order = sorted(parts, key=lambda p: -(p.size or 0) // p.shards)
    mine = order.pop() if here is not None and len(order) > 1 and workers > 1 else None
    size = max(1, min(workers - (mine is not None), len(order)))
    with ProcessPoolExecutor(max_workers=size, mp_context=_context()) as pool:
        with _main_not_imported():  # the pool starts its processes on submit
            futures: dict[Future[bytes], Part] = {
                pool.submit(analyze_part_packed, p, _runs_path(spill_dir, p), lines): p
                for p in order
            }
        if mine is not None and here is not None:
            try:
                result = here(mine)
            except Exception as exc:  # a bug in the analysis: report it, keep the rest
                result = failed_part(mine, f"{type(exc).__name__}: {exc}")
            results.append(result)
            report(result)
        for future in as_completed(futures):
            part = futures[future]
            try:
                result = transport.loads(future.result())
            except BrokenProcessPool:
                result = failed_part(part, "its worker process died")
            except Exception as exc:  # a bug in the analysis: report it, keep the rest
                result = failed_part(part, f"{type(exc).__name__}: {exc}")
            results.append(result)
            report(result)
    return results


def _runs_path(spill_dir: str | None, part: Part) -> str | None:
    if spill_dir is None:
        return None
    return os.path.join(spill_dir, f"part-{part.index}-{part.shard}.runs")


def collect_parallel(
    paths: PathArg,
    run: Run,
    *,
    workers: int | None = None,
    tls_ports: Iterable[int] = (),
    options: DiagnosisOptions | None = None,
    progress: Progress | None = None,
    shard_bytes: int | None = None,
    keylog: KeyLog | None = None,
) -> Iterator[HandshakeRecord]:
    """:func:`analyzer.api.collect_sorted` on ``workers`` processes (None:
    :func:`default_workers`); with one worker and nothing to split, the work stays in
    this process. ``shard_bytes``: split files at least this large (default
    ``limits.SHARD_MIN_BYTES``). Records come sorted by ``(ts, uid)``, with
    cross-connection evidence from every record of the run; the parent keeps them as
    :func:`analyzer.api.collect_sorted` does (bounded memory, the rest on disk)."""
    opts = options or DiagnosisOptions()
    files, n, parts = _plan(paths, run, workers, tls_ports, opts, shard_bytes, keylog)
    if n == 1 or len(parts) < 2:
        yield from analyze_sorted(
            files, run, tls_ports=tls_ports, options=opts, progress=progress, keylog=keylog
        )
        return
    with _run_sorted(parts, n, run, progress, SortedRecords(), _same, False) as (
        evidence,
        sources,
    ):
        for record in merge(sources):
            yield evidence.sharpen(record)


def collect_jsonl_parallel(
    paths: PathArg,
    run: Run,
    *,
    workers: int | None = None,
    tls_ports: Iterable[int] = (),
    options: DiagnosisOptions | None = None,
    progress: Progress | None = None,
    shard_bytes: int | None = None,
    keylog: KeyLog | None = None,
) -> Iterator[Rendered]:
    """The JSONL lines of :func:`collect_parallel`'s records, each with whether its
    record failed: the same lines, but rendered by the workers
    (:mod:`analyzer.scale.lines`), so that the parent's serial part stays small; with one
    worker, sorted as lines in this process."""
    opts = options or DiagnosisOptions()
    files, n, parts = _plan(paths, run, workers, tls_ports, opts, shard_bytes, keylog)
    if n == 1 or len(parts) < 2:
        # One process sorts lines too: most records are rendered once and never pickled
        # (sorting records pickles every one past the in-memory limit).
        evidence = Evidence()
        kept = SortedLines()
        try:
            found = analyze_files(
                files, run, tls_ports=tls_ports, options=opts, progress=progress, keylog=keylog
            )
            for record in found:
                evidence.add(record)
                kept.add(line_entry(record))
            yield from final_lines(iter(kept), evidence)
        finally:
            kept.close()
        return
    with _run_sorted(parts, n, run, progress, SortedLines(), line_entry, True) as (
        evidence,
        sources,
    ):
        yield from final_lines(merge_lines(sources), evidence)


def _plan(
    paths: PathArg,
    run: Run,
    workers: int | None,
    tls_ports: Iterable[int],
    options: DiagnosisOptions,
    shard_bytes: int | None,
    keylog: KeyLog | None,
) -> tuple[list[Path], int, list[Part]]:
    """The input files (errors go to ``run``), the number of workers and the parts."""
    files, errors = expand_paths(as_list(paths))
    run.errors.extend(errors)
    n = default_workers(files) if workers is None else max(1, workers)
    parts = plan_parts(
        [str(f) for f in files],
        n,
        tls_ports=tls_ports,
        options=options,
        keylog=keylog,
        shard_bytes=shard_bytes,
    )
    return files, n, parts


@contextmanager
def _run_sorted(
    parts: Sequence[Part],
    n: int,
    run: Run,
    progress: Progress | None,
    kept: SortedItems[T],
    entry: Callable[[HandshakeRecord], T],
    lines: bool,
) -> Iterator[tuple[Evidence, list[Runs | SortedItems[T]]]]:
    """Run the parts on ``n`` processes, this one included, each sorting its records'
    ``entry`` (the workers' in files, this process's in ``kept``); gives the evidence of
    the whole run and the sorted sources to merge, in input order. ``lines``: the
    workers make :class:`~analyzer.scale.lines.SortedLines` (``entry`` must be
    :func:`~analyzer.scale.lines.line_entry`), else records (``entry`` returns them)."""
    spill_dir = tempfile.mkdtemp(prefix="tlsa-runs-")
    kept_evidence = Evidence()
    mine: list[Part] = []

    def here(part: Part) -> PartResult:
        def sink(record: HandshakeRecord) -> None:
            kept_evidence.add(record)
            kept.add(entry(record))

        result = analyze_part(part, sink)
        result.evidence = kept_evidence
        mine.append(part)  # only once it finished: a part that raised gives no records
        return result

    try:
        results = run_parts(parts, n, progress, spill_dir, here, lines)
        merged: Merged = merge_parts(results)
        run.errors.extend(merged.errors)
        run.warnings.extend(merged.warnings)
        run.stats.update(merged.stats)
        evidence = Evidence()
        for result in results:
            if result.evidence is not None:
                evidence.merge(result.evidence)
                result.evidence = None
        # In input order: records with equal (ts, uid) (one connection in two inputs of
        # the same name) come out in the order one process gives them.
        done = sorted(results, key=lambda r: (r.part.index, r.part.shard))
        sources: list[Runs | SortedItems[T]] = [
            r.runs if r.runs is not None else kept
            for r in done
            if r.runs is not None or r.part in mine
        ]
        yield evidence, sources
    finally:
        kept.close()
        shutil.rmtree(spill_dir, ignore_errors=True)

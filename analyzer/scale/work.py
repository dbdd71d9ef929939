"""One unit of work for a worker: a whole capture file, or one shard of a large one.

:func:`analyze_part` is what a worker process (or a Dask task) runs: it reads one file,
runs the engine over all of it or over one shard (:mod:`analyzer.scale.shard`), diagnoses
each record on its own, and returns a picklable :class:`PartResult` with the records and
what the file-level reader and the engine found. :func:`merge_parts` puts the results of
one run back together the way :func:`analyzer.api.analyze_files` would have produced them:
errors, warnings and statistics in file order, shard statistics added up.

Cross-connection evidence is not added here: it needs every record of the run
(:func:`analyzer.diagnosis.cross_connection`, SPEC §5), so it runs after the merge.

Paths with a URL scheme (``s3://``, ``gcs://``, ``file://``, ...) are read with fsspec,
so Dask workers can read from object storage; plain paths are opened as they are.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, BinaryIO

from analyzer import limits
from analyzer.diagnosis import DiagnosisOptions, diagnose
from analyzer.diagnosis.cross import Evidence
from analyzer.engine.engine import CaptureStats, Engine
from analyzer.record import HandshakeRecord
from analyzer.scale.shard import ShardEngine
from analyzer.sorted_records import Runs
from analyzer.sources import CaptureReader
from analyzer.tls.keylog import KeyLog


@dataclass(frozen=True, slots=True, kw_only=True)
class Part:
    """What one task analyzes: ``shard`` of ``shards`` of the file at ``path``."""

    path: str
    """A local path or an fsspec URL."""
    label: str | None = None
    """The input as the user named it, for messages (default: ``path``); Dask workers get
    absolute paths, as their working directory is not the client's."""
    index: int
    """Position of the file among the run's inputs (results are merged in this order)."""
    shard: int = 0
    shards: int = 1
    size: int | None = None
    """File size in bytes, when known (for scheduling and progress)."""
    tls_ports: tuple[int, ...] = ()
    options: DiagnosisOptions = field(default_factory=DiagnosisOptions)
    keylog: KeyLog | None = None
    """Secrets for decryption, pickled to the worker with the task (in memory)."""


@dataclass(slots=True, kw_only=True)
class PartResult:
    """The records of one part and what the reader and engine found (picklable)."""

    part: Part
    capture: str
    records: list[HandshakeRecord]
    stats: CaptureStats
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0
    """CPU time the part took in its worker (for benchmarks)."""
    runs: Runs | None = None
    """Where a local worker left the part's records, sorted (instead of ``records``)."""
    evidence: Evidence | None = None
    """The cross-connection evidence of those records, to merge with the other parts'."""


def has_scheme(path: str) -> bool:
    """``s3://bucket/x.pcap`` is a URL; ``/data/x.pcap`` and ``C:\\x.pcap`` are not."""
    scheme, sep, _ = path.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.replace("+", "").replace("-", "").isalnum()


def capture_name(path: str) -> str:
    """The ``capture`` field of a path or URL: its base name."""
    if has_scheme(path):
        return path.rstrip("/").rsplit("/", 1)[-1]
    return Path(path).name


class UrlCaptureReader(CaptureReader):
    """A :class:`CaptureReader` over an fsspec URL (object storage, HTTP, ...)."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(url)
        try:
            import fsspec  # type: ignore[import-untyped]

            fs, inner = fsspec.core.url_to_fs(url)
            size = fs.size(inner)
            self.size = int(size) if size is not None else None
        except Exception:  # the probe above already said why the file cannot be read
            self.size = None

    def _open_raw(self) -> BinaryIO:
        try:
            import fsspec

            opened: Any = fsspec.open(self.url, "rb").open()
        except OSError:
            raise
        except Exception as exc:  # storage clients raise their own types
            raise OSError(f"{type(exc).__name__}: {exc}") from exc
        raw: BinaryIO = opened
        return raw


def open_capture(path: str, secrets: KeyLog | None = None) -> CaptureReader:
    if has_scheme(path):
        reader: CaptureReader = UrlCaptureReader(path)
        reader.secrets = secrets
        return reader
    return CaptureReader(path, secrets=secrets)


def analyze_part(
    part: Part, sink: Callable[[HandshakeRecord], None] | None = None
) -> PartResult:
    """Analyze one part; never raises for bad input (the result carries the error).
    With ``sink``, each diagnosed record goes to it as it is made and the result carries
    none (memory stays bounded whatever the number of connections)."""
    started = time.process_time()
    keylog = part.keylog if part.keylog is not None else KeyLog()
    reader = open_capture(part.path, keylog)
    name = capture_name(part.path)
    if part.shards == 1:
        engine = Engine(name, tls_ports=part.tls_ports, keylog=keylog)
        found: Iterable[HandshakeRecord] = engine.run(reader)
    else:
        sharded = ShardEngine(
            name, part.shard, part.shards, tls_ports=part.tls_ports, keylog=keylog
        )
        reader.keep = sharded.wants  # other shards' frames stay in the reader
        found = sharded.run_shard(reader)
        engine = sharded
    opts = part.options
    records: list[HandshakeRecord] = []
    keep = records.append if sink is None else sink
    for r in found:
        keep(diagnose(r, opts))
    label = part.label or part.path
    warnings: list[str] = []
    if part.shard == 0:  # every shard reads the whole file: one of them reports on it
        warnings = [f"{label}: {detail or anomaly}" for anomaly, detail in reader.anomalies]
        warnings += [detail for _, detail in keylog.warnings]
    error = reader.error
    if error is not None and label != part.path and error.startswith(part.path):
        error = label + error[len(part.path) :]
    return PartResult(
        part=part,
        capture=name,
        records=records,
        stats=engine.stats,
        error=error,
        warnings=warnings,
        cpu_seconds=time.process_time() - started,
    )


def failed_part(part: Part, why: str) -> PartResult:
    """The result of a part whose worker failed (crashed, killed, lost)."""
    return PartResult(
        part=part,
        capture=capture_name(part.path) if isinstance(part.path, str) else str(part.label),
        records=[],
        stats=CaptureStats(),
        error=f"{part.label or part.path}: analysis failed ({why})",
    )


def merge_stats(a: CaptureStats, b: CaptureStats) -> CaptureStats:
    """The statistics of two shards of one capture as one (counts added up)."""
    out = CaptureStats()
    for f in fields(CaptureStats):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, Counter):
            value: Any = x + y
        elif f.name.startswith("first"):
            value = y if x is None else x if y is None else min(x, y)
        elif f.name.startswith("last"):
            value = y if x is None else x if y is None else max(x, y)
        elif isinstance(x, int) and isinstance(y, int):
            value = x + y
        else:
            value = x if x is not None else y
        setattr(out, f.name, value)
    return out


@dataclass(slots=True, kw_only=True)
class Merged:
    records: list[HandshakeRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stats: dict[str, CaptureStats] = field(default_factory=dict)


def merge_parts(results: Sequence[PartResult]) -> Merged:
    """Results of a run's parts in input order, shards of a file joined into one."""
    out = Merged()
    by_file: dict[int, list[PartResult]] = {}
    for r in sorted(results, key=lambda r: (r.part.index, r.part.shard)):
        by_file.setdefault(r.part.index, []).append(r)
    for parts in by_file.values():
        stats = parts[0].stats
        for p in parts[1:]:
            stats = merge_stats(stats, p.stats)
        out.stats[parts[0].capture] = stats
        for p in parts:
            out.records.extend(p.records)
        for err in dict.fromkeys(p.error for p in parts if p.error):
            if err:
                out.errors.append(err)
        for p in parts:
            out.warnings.extend(p.warnings)
    return out


def plan_parts(
    files: Sequence[str],
    shards: int,
    *,
    tls_ports: Iterable[int] = (),
    options: DiagnosisOptions | None = None,
    keylog: KeyLog | None = None,
    shard_bytes: int | None = None,
    size: Callable[[str], int | None] | None = None,
    locate: Callable[[str], str] = str,
) -> list[Part]:
    """The tasks of a run: one per file, ``shards`` per file of at least ``shard_bytes``
    (default ``limits.SHARD_MIN_BYTES``). ``size`` tells a file's size (default: the local
    file's), ``locate`` turns an input as named into the path the worker opens."""
    threshold = limits.SHARD_MIN_BYTES if shard_bytes is None else shard_bytes
    size_of = size or file_size
    opts = options or DiagnosisOptions()
    ports = tuple(tls_ports)
    parts: list[Part] = []
    for index, path in enumerate(files):
        n_bytes = size_of(path)
        n = shards if shards > 1 and n_bytes is not None and n_bytes >= threshold else 1
        parts.extend(
            Part(
                path=locate(path),
                label=path,
                index=index,
                shard=s,
                shards=n,
                size=n_bytes,
                tls_ports=ports,
                options=opts,
                keylog=keylog,
            )
            for s in range(n)
        )
    return parts


def file_size(path: str) -> int | None:
    if has_scheme(path):
        return None
    try:
        return os.stat(path).st_size
    except OSError:
        return None

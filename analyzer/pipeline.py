"""One process's pipeline: capture files in, diagnosed records out, as connections end.

:func:`analyze_files` wires the stages together (file source → engine → diagnosis) for
the inputs of a run, and reports what it found out about the inputs themselves (files
that cannot be read, file-level problems, per-capture statistics) in a :class:`Run`;
:func:`analyze_sorted` gives the same records sorted, with cross-connection evidence. The
public API (:mod:`analyzer.api`) and the scale-out (:mod:`analyzer.scale`) are built on
it; it imports neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.diagnosis import DiagnosisOptions, diagnose
from analyzer.diagnosis.cross import Evidence
from analyzer.engine.engine import CaptureStats, Engine
from analyzer.record import HandshakeRecord
from analyzer.sorted_records import SortedRecords
from analyzer.sources import CaptureReader, expand_paths
from analyzer.sources.base import Frame
from analyzer.tls.keylog import KeyLog

PathArg = str | Path | Sequence[str | Path]
Progress = Callable[[str, int, int | None], None]
"""Called with (capture name, bytes read, file size) while a file is read."""
_PROGRESS_EVERY = 8192


class CaptureError(Exception):
    """One or more inputs could not be read; the message has one line per input."""


@dataclass(slots=True, kw_only=True)
class Run:
    """Everything besides the records that a run found out about its inputs."""

    errors: list[str] = field(default_factory=list)
    """One line per input that could not be read at all."""
    warnings: list[str] = field(default_factory=list)
    """One line per file-level problem in an input that was read (e.g. truncated)."""
    stats: dict[str, CaptureStats] = field(default_factory=dict)
    """Per capture name."""


def as_list(paths: PathArg) -> list[str | Path]:
    if isinstance(paths, str | Path):
        return [paths]
    return list(paths)


def analyze_files(
    paths: PathArg,
    run: Run,
    *,
    tls_ports: Iterable[int] = (),
    options: DiagnosisOptions | None = None,
    progress: Progress | None = None,
    keylog: KeyLog | None = None,
) -> Iterator[HandshakeRecord]:
    """Yield per-connection diagnosed records of every readable input, in file order and,
    within a file, as connections end. Problems go to ``run``; nothing raises for bad
    input. ``keylog``: secrets to decrypt handshakes with; the secrets blocks of pcapng
    inputs are added to it (or to a key log of the run's own) as the files are read."""
    opts = options or DiagnosisOptions()
    files, errors = expand_paths(as_list(paths))
    run.errors.extend(errors)
    ports = tuple(tls_ports)
    keys = keylog if keylog is not None else KeyLog()
    for path in files:
        warned = len(keys.warnings)
        reader = CaptureReader(path, secrets=keys)
        engine = Engine(path.name, tls_ports=ports, keylog=keys)
        run.stats[path.name] = engine.stats
        frames = reader if progress is None else _with_progress(reader, path.name, progress)
        for record in engine.run(frames):
            yield diagnose(record, opts)
        if reader.error:
            run.errors.append(reader.error)
        for anomaly, detail in reader.anomalies:
            run.warnings.append(f"{path}: {detail or anomaly}")
        run.warnings.extend(detail for _, detail in keys.warnings[warned:])


def analyze_sorted(
    paths: PathArg,
    run: Run,
    *,
    tls_ports: Iterable[int] = (),
    options: DiagnosisOptions | None = None,
    progress: Progress | None = None,
    keylog: KeyLog | None = None,
) -> Iterator[HandshakeRecord]:
    """The records of :func:`analyze_files` sorted by ``(ts, uid)``, each with the
    cross-connection evidence of all of them (SPEC §5); memory bounded by the live
    connections whatever the number of records (:mod:`analyzer.sorted_records`)."""
    evidence = Evidence()
    records = SortedRecords()
    found = analyze_files(
        paths, run, tls_ports=tls_ports, options=options, progress=progress, keylog=keylog
    )
    for record in found:
        evidence.add(record)
        records.add(record)
    for record in records:
        yield evidence.sharpen(record)


def _with_progress(reader: CaptureReader, name: str, progress: Progress) -> Iterator[Frame]:
    for n, frame in enumerate(reader, 1):
        yield frame
        if n % _PROGRESS_EVERY == 0:
            progress(name, reader.position(), reader.size)
    progress(name, reader.position(), reader.size)

"""The Python API: capture files in, diagnosed handshake records out.

:func:`analyze` wires the stages together (file source → engine → diagnosis) and yields
records as connections end; :func:`analyze_files` is the same for callers that want the
file-level errors, warnings and statistics too (the CLI). :func:`read_pcap` lives in
:mod:`analyzer.frame` (it needs pandas).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from analyzer.diagnosis import DiagnosisOptions, diagnose
from analyzer.diagnosis.cross import Evidence
from analyzer.engine.engine import CaptureStats, Engine
from analyzer.export.wireshark import record_filter, with_display_filters
from analyzer.record import HandshakeRecord
from analyzer.sorted_records import SortedRecords
from analyzer.sources import CaptureReader, expand_paths
from analyzer.sources.base import Frame

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


def _paths(paths: PathArg) -> list[str | Path]:
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
) -> Iterator[HandshakeRecord]:
    """Yield per-connection diagnosed records of every readable input, in file order and,
    within a file, as connections end. Problems go to ``run``; nothing raises for bad
    input."""
    opts = options or DiagnosisOptions()
    files, errors = expand_paths(_paths(paths))
    run.errors.extend(errors)
    ports = tuple(tls_ports)
    for path in files:
        reader = CaptureReader(path)
        engine = Engine(path.name, tls_ports=ports)
        run.stats[path.name] = engine.stats
        frames = reader if progress is None else _with_progress(reader, path.name, progress)
        for record in engine.run(frames):
            yield diagnose(record, opts)
        if reader.error:
            run.errors.append(reader.error)
        for anomaly, detail in reader.anomalies:
            run.warnings.append(f"{path}: {detail or anomaly}")


def _with_progress(reader: CaptureReader, name: str, progress: Progress) -> Iterator[Frame]:
    for n, frame in enumerate(reader, 1):
        yield frame
        if n % _PROGRESS_EVERY == 0:
            progress(name, reader.position(), reader.size)
    progress(name, reader.position(), reader.size)


def collect(
    paths: PathArg,
    run: Run,
    *,
    tls_ports: Iterable[int] = (),
    options: DiagnosisOptions | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> list[HandshakeRecord]:
    """All records, with cross-connection evidence, sorted by ``(ts, uid)`` (SPEC §5).

    ``workers``: processes to use (None: every core when there are several inputs or a
    large one, see :mod:`analyzer.scale.local`); the result does not depend on it.
    """
    return list(
        collect_sorted(
            paths, run, tls_ports=tls_ports, options=options, progress=progress, workers=workers
        )
    )


def collect_sorted(
    paths: PathArg,
    run: Run,
    *,
    tls_ports: Iterable[int] = (),
    options: DiagnosisOptions | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> Iterator[HandshakeRecord]:
    """:func:`collect` as an iterator. In one process its memory is bounded by the live
    connections, whatever the number of records (:mod:`analyzer.sorted_records`)."""
    opts = options or DiagnosisOptions()
    if workers != 1:
        from analyzer.scale.local import collect_parallel

        yield from collect_parallel(
            paths, run, workers=workers, tls_ports=tls_ports, options=opts, progress=progress
        )
        return
    evidence = Evidence()
    records = SortedRecords()
    for record in analyze_files(paths, run, tls_ports=tls_ports, options=opts, progress=progress):
        evidence.add(record)
        records.add(record)
    for record in records:
        yield evidence.sharpen(record)


def analyze(
    paths: PathArg,
    *,
    tls_ports: Iterable[int] = (),
    ca_bundle: str | Path | None = None,
    verify: bool = True,
    cross: bool = False,
) -> Iterator[HandshakeRecord]:
    """Yield one diagnosed :class:`HandshakeRecord` per TLS-relevant TCP connection.

    ``paths``: a file, directory or glob, or a list of them (pcap, pcapng, gzip).
    Records come as connections end; with ``cross=True`` they come at the end, sorted by
    ``(ts, uid)`` and with cross-connection evidence (same server seen elsewhere).
    Inputs that cannot be read raise :class:`CaptureError` after every good record.
    Each record carries its ``wireshark_filter`` (with ``cross=True`` a time bound where
    its 4-tuple repeats in the capture).
    """
    run = Run()
    opts = DiagnosisOptions(ca_bundle=str(ca_bundle) if ca_bundle else None, verify=verify)
    if cross:
        yield from with_display_filters(collect(paths, run, tls_ports=tls_ports, options=opts))
    else:
        for r in analyze_files(paths, run, tls_ports=tls_ports, options=opts):
            yield replace(r, wireshark_filter=record_filter(r))
    if run.errors:
        raise CaptureError("\n".join(run.errors))

"""The Python API: capture files in, diagnosed handshake records out.

:func:`analyze` yields records as connections end (or, with ``cross=True``, sorted and
with evidence from other connections); :func:`collect` and :func:`collect_sorted` give
every record of a run sorted by ``(ts, uid)``, on one process or several
(:mod:`analyzer.scale`); :func:`analyze_files` (:mod:`analyzer.pipeline`) is the one-process
pipeline for callers that want the file-level errors, warnings and statistics too (the
CLI). :func:`read_pcap` lives in :mod:`analyzer.frame` (it needs pandas).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from analyzer.diagnosis import DiagnosisOptions
from analyzer.pipeline import CaptureError, PathArg, Progress, Run, analyze_files, analyze_sorted
from analyzer.record import HandshakeRecord
from analyzer.tls.keylog import KeyLog

KeyLogArg = KeyLog | str | Path | Sequence[str | Path] | None
"""A key log, or the NSS key log file(s) to read one from."""


def load_keylog(keylog: KeyLogArg) -> KeyLog | None:
    """A :class:`KeyLog` from what the caller gave (files are read now)."""
    if keylog is None or isinstance(keylog, KeyLog):
        return keylog
    return KeyLog.from_files([keylog] if isinstance(keylog, str | Path) else list(keylog))

__all__ = [
    "CaptureError",
    "PathArg",
    "Progress",
    "Run",
    "analyze",
    "analyze_files",
    "collect",
    "collect_sorted",
    "load_keylog",
]

def collect(
    paths: PathArg,
    run: Run,
    *,
    tls_ports: Iterable[int] = (),
    options: DiagnosisOptions | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    keylog: KeyLog | None = None,
) -> list[HandshakeRecord]:
    """All records, with cross-connection evidence, sorted by ``(ts, uid)`` (SPEC §5).

    ``workers``: processes to use (None: every core when there are several inputs or a
    large one, see :mod:`analyzer.scale.local`); the result does not depend on it.
    """
    return list(
        collect_sorted(
            paths,
            run,
            tls_ports=tls_ports,
            options=options,
            progress=progress,
            workers=workers,
            keylog=keylog,
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
    keylog: KeyLog | None = None,
) -> Iterator[HandshakeRecord]:
    """:func:`collect` as an iterator. In one process its memory is bounded by the live
    connections, whatever the number of records (:mod:`analyzer.sorted_records`)."""
    opts = options or DiagnosisOptions()
    if workers != 1:
        from analyzer.scale.local import collect_parallel

        yield from collect_parallel(
            paths,
            run,
            workers=workers,
            tls_ports=tls_ports,
            options=opts,
            progress=progress,
            keylog=keylog,
        )
        return
    yield from analyze_sorted(
        paths, run, tls_ports=tls_ports, options=opts, progress=progress, keylog=keylog
    )


def analyze(
    paths: PathArg,
    *,
    tls_ports: Iterable[int] = (),
    ca_bundle: str | Path | None = None,
    verify: bool = True,
    cross: bool = False,
    keylog: KeyLogArg = None,
) -> Iterator[HandshakeRecord]:
    """Yield one diagnosed :class:`HandshakeRecord` per TLS-relevant connection.

    ``paths``: a file, directory or glob, or a list of them (pcap, pcapng, gzip).
    Records come as connections end; with ``cross=True`` they come at the end, sorted by
    ``(ts, uid)`` and with cross-connection evidence (same server seen elsewhere).
    ``keylog``: NSS key log file(s) (``SSLKEYLOGFILE``) or a :class:`KeyLog`, to decrypt
    handshakes (pcapng secrets blocks are used in any case).
    Inputs that cannot be read raise :class:`CaptureError` after every good record.
    Each record carries its ``wireshark_filter`` (with ``cross=True``, a time bound where
    its 4-tuple repeats in the capture).
    """
    run = Run()
    opts = DiagnosisOptions(ca_bundle=str(ca_bundle) if ca_bundle else None, verify=verify)
    keys = load_keylog(keylog)
    if cross:
        yield from collect(paths, run, tls_ports=tls_ports, options=opts, keylog=keys)
    else:
        yield from analyze_files(paths, run, tls_ports=tls_ports, options=opts, keylog=keys)
    if run.errors:
        raise CaptureError("\n".join(run.errors))

"""Dask distributed: the analysis as tasks on an existing cluster (``tlsa analyze --dask``).

The units of work are those of the local workers (:mod:`analyzer.scale.work`): one task
per capture file, or per shard of a file of at least ``limits.SHARD_MIN_BYTES`` (as many
shards as the cluster has worker threads). The workers open the files themselves: local
paths must be the same on every worker (a shared filesystem); URLs with a scheme are read
with fsspec (``s3://``, ``gcs://``, ``abfs://``, ``http://``, ...).

Records stay on the workers. Cross-connection evidence (SPEC §5) needs the whole run, but
:func:`analyzer.diagnosis.cross_connection` only relates records of the same server (IP
and port) and only changes failed ones, so the client first gathers which servers had a
failure (a few tuples per task), one task then runs ``cross_connection`` over the records
of just those servers, and every partition takes the changed records from it. The result
is what one process makes.

:func:`read_pcaps` returns a ``dask.dataframe.DataFrame`` with one partition per task,
each sorted by ``(ts, uid)``, with the dtypes of :func:`analyzer.read_pcap`. The
aggregation helpers of :mod:`analyzer.aggregate` take pandas frames: reduce the Dask frame
first (select columns, filter) and call ``.compute()`` at that boundary.
:func:`write_dataset` writes a Parquet dataset partitioned by capture and date (by the
workers, straight to the target filesystem) and :func:`collect_records` brings every
record to the client (JSONL output).

Not here: starting a cluster (``dask scheduler`` / ``dask worker``, see README).
"""

from __future__ import annotations

import glob as globmod
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analyzer import limits
from analyzer.diagnosis import DiagnosisOptions, cross_connection
from analyzer.diagnosis.tuples import TupleStarts
from analyzer.display_filter import record_filter, with_filter
from analyzer.pipeline import PathArg, Run, as_list
from analyzer.record import HandshakeRecord
from analyzer.scale.work import (
    Merged,
    PartResult,
    analyze_part,
    failed_part,
    file_size,
    has_scheme,
    merge_parts,
    plan_parts,
)
from analyzer.sources import CAPTURE_SUFFIXES, expand_paths
from analyzer.tls.keylog import KeyLog

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd
    from distributed import Client

ServerKey = tuple[str, int]


class CaptureWarning(UserWarning):
    """An input of :func:`read_pcaps` could not be read (the others were)."""


# ---------------------------------------------------------------------- inputs


def _expand_url(url: str) -> tuple[list[str], list[str]]:
    """Files named by one fsspec URL (a file, a directory, or a glob pattern)."""
    import fsspec  # type: ignore[import-untyped]

    try:
        fs, inner = fsspec.core.url_to_fs(url)
        if globmod.has_magic(inner):
            found = sorted(p for p in fs.glob(inner) if not fs.isdir(p))
        elif fs.isdir(inner):
            found = sorted(
                p for p in fs.find(inner) if p.lower().endswith(CAPTURE_SUFFIXES)
            )
        elif fs.exists(inner):
            found = [inner]
        else:
            return [], [f"{url}: no such file or directory"]
    except Exception as exc:  # storage clients raise their own types
        return [], [f"{url}: cannot list it ({type(exc).__name__}: {exc})"]
    if not found:
        return [], [f"{url}: no capture files"]
    return [str(fs.unstrip_protocol(p)) for p in found], []


def expand_inputs(paths: Sequence[str | Path]) -> tuple[list[str], list[str]]:
    """Files for local paths (as :func:`analyzer.sources.expand_paths`) and fsspec URLs,
    in input order, and one-line errors for inputs that name nothing."""
    files: list[str] = []
    errors: list[str] = []
    for raw in paths:
        text = str(raw)
        if has_scheme(text):
            found, errs = _expand_url(text)
        else:
            local, errs = expand_paths([text])
            found = [str(p) for p in local]
        errors.extend(errs)
        files.extend(f for f in found if f not in files)
    return files, errors


def _size(path: str) -> int | None:
    return _url_size(path) if has_scheme(path) else file_size(path)


def _locate(path: str) -> str:
    """Workers get absolute paths: their working directory is not the client's."""
    return path if has_scheme(path) else os.path.abspath(path)


def _url_size(url: str) -> int | None:
    try:
        import fsspec

        fs, inner = fsspec.core.url_to_fs(url)
        size = fs.size(inner)
        return int(size) if size is not None else None
    except Exception:
        return None


# ---------------------------------------------------------------------- tasks


@dataclass(slots=True, kw_only=True)
class Summary:
    """What the client gathers from a finished part: everything but its records."""

    info: PartResult
    failing: set[ServerKey] = field(default_factory=set)
    """Servers with a failed handshake in this part."""
    leaves: set[tuple[ServerKey, str]] = field(default_factory=set)
    """(server, leaf certificate SHA-256) pairs seen in this part: the established
    connections of another server with a failing server's certificate are evidence too
    (clients that trusted the chain)."""


def summarize(result: PartResult) -> Summary:
    info = PartResult(
        part=result.part,
        capture=result.capture,
        records=[],
        stats=result.stats,
        error=result.error,
        warnings=result.warnings,
        cpu_seconds=result.cpu_seconds,
    )
    failing = {(r.server_ip, r.server_port) for r in result.records if r.outcome == "failed"}
    leaves = {
        ((r.server_ip, r.server_port), r.cert_chain_sha256[0])
        for r in result.records
        if r.cert_chain_sha256
    }
    return Summary(info=info, failing=failing, leaves=leaves)


def of_servers(
    result: PartResult, servers: set[ServerKey], leaves: frozenset[str] = frozenset()
) -> list[HandshakeRecord]:
    """The part's records of these servers, and its established connections that
    completed with one of these leaf certificates."""
    return [
        r
        for r in result.records
        if (r.server_ip, r.server_port) in servers
        or (r.outcome == "established" and r.cert_chain_sha256
            and r.cert_chain_sha256[0] in leaves)
    ]


def failing_leaves(
    failing: set[ServerKey], pairs: set[tuple[ServerKey, str]]
) -> frozenset[str]:
    """The certificates the failing servers presented."""
    return frozenset(leaf for server, leaf in pairs if server in failing)


def sharpen(
    groups: Sequence[Sequence[HandshakeRecord]], options: DiagnosisOptions
) -> dict[str, HandshakeRecord]:
    """Cross-connection evidence over the records of the failing servers: the records it
    changed, by uid."""
    records = [r for group in groups for r in group]
    return {
        new.uid: new
        for old, new in zip(records, cross_connection(records, options), strict=True)
        if new is not old
    }


def final_records(result: PartResult, changed: dict[str, HandshakeRecord]) -> list[HandshakeRecord]:
    """The part's records with cross-connection evidence, sorted by ``(ts, uid)``. A
    4-tuple's connections are all in one part (shards split by 4-tuple), so the part
    knows where a repeated one's ``wireshark_filter`` needs a time bound."""
    tuples = TupleStarts()
    for r in result.records:
        tuples.add(r)
    out = [changed.get(r.uid, r) for r in result.records]
    out = [with_filter(r, record_filter(r, tuples)) if tuples.bound(r) else r for r in out]
    out.sort(key=lambda r: (r.ts, r.uid))
    return out


_DTYPES = {
    "int": "int64",
    "float": "float64",
    "float | None": "float64",
    "int | None": "float64",
    "bool": "bool",
    "str": "str",
    "str | None": "str",
}
"""Partition dtypes by field annotation, for the columns :func:`analyzer.frame.to_dataframe`
leaves to pandas' inference (which depends on the values: a text column of only nulls is
``object``, an ``int | None`` column without nulls is ``int64``). Every partition and the
meta get the same dtypes; what pandas infers for a whole run is the usual case here."""


def frame_dtypes() -> dict[str, Any]:
    """The dtypes of every column of :func:`read_pcaps`' frame."""
    from dataclasses import fields

    from analyzer.frame import CATEGORIES, TIME_COLUMNS, to_dataframe

    fixed = to_dataframe([]).dtypes
    out: dict[str, Any] = {}
    for f in fields(HandshakeRecord):
        if f.name not in fixed.index:
            continue
        if f.name in CATEGORIES or str(fixed[f.name]) == "string":
            out[f.name] = fixed[f.name]
        elif f.name in TIME_COLUMNS:
            out[f.name] = "datetime64[ns, UTC]"
        else:
            out[f.name] = _DTYPES.get(str(f.type), "object")
    return out


def conform(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with the dtypes of :func:`frame_dtypes`."""
    return df.astype(frame_dtypes())


def final_records_packed(result: PartResult, changed: dict[str, HandshakeRecord]) -> bytes:
    """:func:`final_records` pickled the fast way (:mod:`analyzer.scale.transport`)."""
    from analyzer.scale import transport

    return transport.dumps(final_records(result, changed))


def to_frame(result: PartResult, changed: dict[str, HandshakeRecord]) -> pd.DataFrame:
    from analyzer.frame import to_dataframe

    return conform(to_dataframe(final_records(result, changed)))


def write_part(
    result: PartResult, changed: dict[str, HandshakeRecord], root: str, name: str
) -> tuple[int, int]:
    """Write the part's records under ``root``, partitioned by capture and date (UTC);
    (rows written, failed handshakes among them)."""
    import time

    import pyarrow as pa
    import pyarrow.parquet as pq

    from analyzer.frame import to_arrow

    records = final_records(result, changed)
    if not records:
        return 0, 0
    table = to_arrow(records)
    dates = [time.strftime("%Y-%m-%d", time.gmtime(r.ts)) for r in records]
    table = table.append_column("date", pa.array(dates, pa.string()))
    kwargs: dict[str, Any] = {}
    if has_scheme(root):
        import fsspec

        fs, inner = fsspec.core.url_to_fs(root)
        kwargs["filesystem"] = fs
        root = inner
    pq.write_to_dataset(
        table,
        root_path=root,
        partition_cols=["capture", "date"],
        basename_template=name + "-{i}.parquet",
        existing_data_behavior="overwrite_or_ignore",
        **kwargs,
    )
    return len(records), sum(1 for r in records if r.outcome == "failed")


# ---------------------------------------------------------------------- the run


@dataclass(slots=True, kw_only=True)
class DaskRun:
    """A run whose records live on the cluster (or, without one, in this process)."""

    client: Any
    """The ``distributed.Client``, or None for the local scheduler."""
    results: list[Any]
    """Per good part: a future of its :class:`PartResult` (or the result itself)."""
    changed: Any
    """The records changed by cross-connection evidence (a future, or the dict)."""
    merged: Merged


def _default_client() -> Any:
    try:
        import distributed
    except ImportError:
        return None
    module: Any = distributed
    try:
        return module.default_client()
    except ValueError:
        return None


def _threads(client: Any) -> int:
    if client is None:
        from analyzer.scale.local import cores

        return cores()
    threads: dict[str, int] = client.nthreads()
    return max(1, sum(threads.values()))


def start(
    paths: PathArg,
    client: Client | None = None,
    *,
    tls_ports: Iterable[int] = (),
    options: DiagnosisOptions | None = None,
    shard_bytes: int | None = None,
    keylog: KeyLog | None = None,
) -> DaskRun:
    """Analyze the inputs on the cluster and wait for it; records stay on the workers."""

    opts = options or DiagnosisOptions()
    cluster: Any = client if client is not None else _default_client()
    files, errors = expand_inputs(as_list(paths))
    parts = plan_parts(
        files,
        _threads(cluster),
        tls_ports=tls_ports,
        options=opts,
        keylog=keylog,
        shard_bytes=shard_bytes,
        size=_size,
        locate=_locate,
    )
    infos: list[PartResult] = []
    good: list[Any] = []
    failing: set[ServerKey] = set()
    pairs: set[tuple[ServerKey, str]] = set()
    if cluster is None:
        import dask.base
        from dask.delayed import delayed

        base: Any = dask.base
        # The local threaded scheduler by name: a closed client can leave Dask's global
        # setting at "dask.distributed", which would fail here with no client running.
        tasks = [delayed(analyze_part)(p) for p in parts]
        local: list[PartResult] = list(base.compute(*tasks, scheduler="threads"))
        for result in local:
            summary = summarize(result)
            infos.append(summary.info)
            failing |= summary.failing
            pairs |= summary.leaves
            if result.error is None or result.records:
                good.append(result)
        leaves = failing_leaves(failing, pairs)
        changed: Any = sharpen([of_servers(r, failing, leaves) for r in local], opts)
    else:
        futures = cluster.map(analyze_part, parts, pure=False)
        summaries = cluster.map(summarize, futures, pure=False)
        for part, future, summary_future in zip(parts, futures, summaries, strict=True):
            try:
                summary = summary_future.result()
            except Exception as exc:  # a worker died, or a bug: report it, keep the rest
                infos.append(failed_part(part, f"{type(exc).__name__}: {exc}"))
                continue
            infos.append(summary.info)
            failing |= summary.failing
            pairs |= summary.leaves
            if summary.info.error is None or summary.info.stats.records:
                good.append(future)  # an unreadable file makes no partition
        leaves = failing_leaves(failing, pairs)
        groups = [cluster.submit(of_servers, f, failing, leaves, pure=False) for f in good]
        changed = cluster.submit(sharpen, groups, opts, pure=False)
    merged = merge_parts(infos)
    merged.errors[:0] = errors
    return DaskRun(client=cluster, results=good, changed=changed, merged=merged)


def _report(dask_run: DaskRun, run: Run | None) -> None:
    merged = dask_run.merged
    if run is not None:
        run.errors.extend(merged.errors)
        run.warnings.extend(merged.warnings)
        run.stats.update(merged.stats)
    elif merged.errors:
        for line in merged.errors:
            warnings.warn(line, CaptureWarning, stacklevel=3)


def read_pcaps(
    paths: PathArg,
    client: Client | None = None,
    *,
    run: Run | None = None,
    tls_ports: Iterable[int] = (),
    ca_bundle: str | None = None,
    verify: bool = True,
    shard_bytes: int | None = None,
    keylog: KeyLog | None = None,
) -> dd.DataFrame:
    """Analyze captures on a Dask cluster; one DataFrame partition per file or shard.

    ``client``: a ``distributed.Client`` (default: the current default client; without
    one, the local Dask scheduler). The analysis runs when this is called; the records
    stay on the workers until the frame is computed. Inputs that cannot be read go to
    ``run.errors`` when a :class:`analyzer.api.Run` is given, else each is a
    :class:`CaptureWarning`; the other inputs' records are all there.
    """
    import dask
    import dask.dataframe
    from dask.delayed import delayed

    from analyzer.frame import to_dataframe

    ddf: Any = dask.dataframe

    opts = DiagnosisOptions(ca_bundle=ca_bundle, verify=verify)
    dask_run = start(
        paths, client, tls_ports=tls_ports, options=opts, shard_bytes=shard_bytes, keylog=keylog
    )
    _report(dask_run, run)
    meta = conform(to_dataframe([]))
    # Dask would turn text columns into Arrow strings: keep read_pcap's dtypes.
    with dask.config.set({"dataframe.convert-string": False}):
        if not dask_run.results:
            empty: dd.DataFrame = ddf.from_pandas(meta, npartitions=1)
            return empty
        parts = [delayed(to_frame)(r, dask_run.changed) for r in dask_run.results]
        frame: dd.DataFrame = ddf.from_delayed(parts, meta=meta, verify_meta=False)
        return frame


def collect_records(dask_run: DaskRun) -> list[HandshakeRecord]:
    """Every record of the run in this process, sorted by ``(ts, uid)``."""
    if dask_run.client is None:
        groups = [final_records(r, dask_run.changed) for r in dask_run.results]
    else:
        from analyzer.scale import transport

        futures = [
            dask_run.client.submit(final_records_packed, r, dask_run.changed, pure=False)
            for r in dask_run.results
        ]
        groups = [transport.loads(blob) for blob in dask_run.client.gather(futures)]
    records = [r for group in groups for r in group]
    records.sort(key=lambda r: (r.ts, r.uid))
    return records


def write_dataset(dask_run: DaskRun, root: str) -> tuple[int, int]:
    """Write every record as a Parquet dataset under ``root`` (a directory or URL),
    partitioned by ``capture`` and ``date``; the workers write. Returns the number of rows
    and of failed handshakes among them."""
    if not has_scheme(root):
        Path(root).mkdir(parents=True, exist_ok=True)
        root = str(Path(root).resolve())
    names = [f"part-{i:05d}" for i in range(len(dask_run.results))]
    if dask_run.client is None:
        counts = [
            write_part(r, dask_run.changed, root, n)
            for r, n in zip(dask_run.results, names, strict=True)
        ]
    else:
        futures = [
            dask_run.client.submit(write_part, r, dask_run.changed, root, n, pure=False)
            for r, n in zip(dask_run.results, names, strict=True)
        ]
        counts = list(dask_run.client.gather(futures))
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def analyze_on_cluster(
    paths: PathArg,
    address: str,
    run: Run,
    *,
    fmt: str,
    output: str | None,
    tls_ports: Iterable[int] = (),
    options: DiagnosisOptions | None = None,
    keylog: KeyLog | None = None,
) -> tuple[int, int]:
    """``tlsa analyze --dask ADDRESS``: Parquet dataset (``-o DIR``) or JSONL (``-o FILE``
    or stdout). Returns (records written, failed handshakes); problems go to ``run``."""
    import sys

    import distributed

    from analyzer.output import write_jsonl

    module: Any = distributed
    with module.Client(address, timeout=limits.DASK_CONNECT_TIMEOUT) as client:
        dask_run = start(paths, client, tls_ports=tls_ports, options=options, keylog=keylog)
        _report(dask_run, run)
        if fmt == "parquet":
            assert output is not None
            written, failed = write_dataset(dask_run, output)
            return written, failed
        records = collect_records(dask_run)
    failed = sum(1 for r in records if r.outcome == "failed")
    if output is None:
        n = write_jsonl(records, sys.stdout)
        sys.stdout.flush()
        return n, failed
    with open(output, "w", encoding="utf-8") as stream:
        return write_jsonl(records, stream), failed

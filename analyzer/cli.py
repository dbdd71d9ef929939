"""The ``tlsa`` command line (typer + rich).

Exit status (SPEC §5): 0 when every input was read (failed handshakes found are not an
error; ``--fail-on-failure`` makes them exit 1); 2 on bad usage or any unreadable input,
with one line per problem on stderr and every good record still written. No traceback
reaches the user (set ``TLSA_DEBUG=1`` to see one).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from analyzer.api import Progress, Run, collect_sorted
from analyzer.diagnosis import DiagnosisOptions
from analyzer.diagnosis.certs import load_ca_bundle
from analyzer.diagnosis.tuples import TupleStarts
from analyzer.live import DEFAULT_BPF, LiveCaptureError, LiveSession
from analyzer.record import HandshakeRecord
from analyzer.text import printable
from analyzer.tls.keylog import KeyLog

if TYPE_CHECKING:
    import pandas as pd

    from analyzer.metrics import LiveMetrics
    from analyzer.scale.lines import Rendered

app = typer.Typer(
    name="tlsa",
    help="Tell why TLS handshakes fail, from packet captures or a live interface.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False)


class Format(StrEnum):
    table = "table"
    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"
    zeek = "zeek"
    ecs = "ecs"


class SummaryFormat(StrEnum):
    table = "table"
    json = "json"


class Transport(StrEnum):
    tcp = "tcp"
    quic = "quic"
    dtls = "dtls"


PathsArg = Annotated[
    list[str], typer.Argument(help="Capture files (pcap, pcapng, .gz), directories or globs.")
]
TlsPortOpt = Annotated[
    list[int] | None,
    typer.Option("--tls-port", help="Treat this TCP port as TLS too (repeatable)."),
]
CaBundleOpt = Annotated[
    Path | None,
    typer.Option("--ca-bundle", help="PEM file of extra trusted CAs (e.g. a private CA)."),
]
NoVerifyOpt = Annotated[
    bool, typer.Option("--no-verify", help="Do not check certificate chains against a trust store.")
]
TransportOpt = Annotated[
    list[Transport] | None,
    typer.Option("--transport", help="Only this transport: tcp, quic or dtls (repeatable)."),
]
UidOpt = Annotated[
    list[str] | None,
    typer.Option("--uid", help="Only this connection (uid or a prefix of 4+ characters; "
                 "repeatable)."),
]
ExtractOpt = Annotated[
    Path | None,
    typer.Option(
        "--extract",
        metavar="FILE.pcapng",
        help="Also write the packets of the connections shown to FILE.pcapng, for Wireshark.",
    ),
]


KeylogOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--keylog",
        metavar="FILE",
        help="NSS key log (SSLKEYLOGFILE) to decrypt the handshakes with (repeatable); "
        "secrets blocks of pcapng inputs are used in any case.",
    ),
]
EmbedOpt = Annotated[
    bool,
    typer.Option(
        "--embed-secrets",
        help="Put the secrets of the connections written into the written capture "
        "(a pcapng Decryption Secrets Block): anyone with the file can decrypt them.",
    ),
]


class Stop(Exception):
    """A one-line error for the user; exit status 2."""


def safe(value: object) -> str:
    """Text for a terminal cell: control characters escaped (no ANSI injection)."""
    if value is None:
        return "-"
    return printable(str(value).encode("utf-8", "surrogateescape"))


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Progress | None]:
    """A rich progress bar on stderr while files are read (only on a terminal)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    with Bar(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        tasks: dict[str, int] = {}

        def update(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                tasks[name] = int(bar.add_task(name, total=total))
            bar.update(tasks[name], completed=done)  # type: ignore[arg-type]

        yield update


def options_for(ca_bundle: Path | None, no_verify: bool) -> DiagnosisOptions:
    if ca_bundle is not None:
        try:
            load_ca_bundle(str(ca_bundle))
        except (OSError, ValueError) as e:
            raise Stop(f"--ca-bundle {ca_bundle}: cannot read it as PEM certificates ({e})") from e
    return DiagnosisOptions(ca_bundle=str(ca_bundle) if ca_bundle else None, verify=not no_verify)


def load_keylogs(files: Sequence[Path] | None, *, follow: bool = False) -> KeyLog | None:
    """``--keylog FILE...``: the key log, its problems one line each on stderr. A file
    that cannot be read stops the command, unless followed (``tlsa live``: the browser
    may not have created it yet)."""
    if not files:
        return None
    keylog = KeyLog()
    for path in files:
        if follow:
            keylog.follow(path)
        else:
            keylog.add_file(path)
    from analyzer.anomalies import Anomaly

    unreadable = [d for a, d in keylog.warnings if a is Anomaly.KEYLOG_UNREADABLE]
    if unreadable and not follow:
        raise Stop(f"--keylog {safe(unreadable[0])}")
    for detail in unreadable:  # followed: read as soon as it appears
        err.print(Text(f"tlsa: key log: {safe(detail)} yet; it is read once it appears"),
                  soft_wrap=True)
    report_keylog(keylog, 0, skip=Anomaly.KEYLOG_UNREADABLE)
    return keylog


def report_keylog(keylog: KeyLog, since: int, skip: object = None) -> int:
    """Print the key log's warnings from number ``since`` on (but those of kind ``skip``);
    returns how many it has."""
    for kind, detail in keylog.warnings[since:]:
        if kind is skip:
            continue
        err.print(Text(f"tlsa: warning: key log: {safe(detail)}"), soft_wrap=True)
    return len(keylog.warnings)


class KeylogTally:
    """What the key logs did for a run's connections: one note line on stderr."""

    def __init__(self) -> None:
        self.hellos = self.decrypted = self.failed = 0

    def add(self, r: HandshakeRecord) -> None:
        if r.version is None or r.transport != "tcp":
            return
        self.hellos += 1
        if r.decrypted:
            self.decrypted += 1
        if "decrypt_failed" in r.anomalies:
            self.failed += 1

    def report(self) -> None:
        n = self.hellos
        if not n:
            return
        text = (f"tlsa: key log: decrypted {self.decrypted} of {n} TLS connection"
                f"{'s' if n != 1 else ''} with a ServerHello")
        if self.failed:
            text += (f"; {self.failed} whose records did not authenticate with the logged "
                     "secrets (anomaly decrypt_failed)")
        if self.decrypted < n:
            text += "; tlsa show UID says why one was not (its timeline)"
        err.print(Text(text), soft_wrap=True)


def stream_inputs(
    paths: Sequence[str],
    run: Run,
    *,
    tls_ports: Sequence[int] | None,
    ca_bundle: Path | None,
    no_verify: bool,
    progress: bool = True,
    workers: int | None = None,
    keylog: KeyLog | None = None,
) -> Iterator[HandshakeRecord]:
    """Every record of the inputs, sorted, as a stream (memory bounded by live
    connections in one process), with a progress bar while the inputs are read.
    ``keylog``: what ``--keylog`` loaded (a one-line note on stderr at the end says
    what it decrypted)."""
    options = options_for(ca_bundle, no_verify)
    tally = KeylogTally() if keylog is not None else None
    with progress_bar(progress) as bar:
        for r in collect_sorted(
            paths, run, tls_ports=tls_ports or (), options=options, progress=bar,
            workers=workers, keylog=keylog,
        ):
            if tally is not None:
                tally.add(r)
            yield r
    if tally is not None:
        tally.report()


def stream_jsonl(
    paths: Sequence[str],
    run: Run,
    *,
    tls_ports: Sequence[int] | None,
    ca_bundle: Path | None,
    no_verify: bool,
    workers: int | None = None,
) -> Iterator[Rendered]:
    """The JSONL lines of :func:`stream_inputs`'s records (each with whether its record
    failed); with several workers, the workers render them
    (:func:`analyzer.scale.local.collect_jsonl_parallel`)."""
    from analyzer.scale.local import collect_jsonl_parallel

    options = options_for(ca_bundle, no_verify)
    with progress_bar(True) as bar:
        yield from collect_jsonl_parallel(
            paths, run, tls_ports=tls_ports or (), options=options, progress=bar,
            workers=workers,
        )


def run_inputs(
    paths: Sequence[str],
    *,
    tls_ports: Sequence[int] | None,
    ca_bundle: Path | None,
    no_verify: bool,
    progress: bool = True,
    workers: int | None = None,
    keylog: KeyLog | None = None,
) -> tuple[list[HandshakeRecord], Run]:
    run = Run()
    records = list(
        stream_inputs(
            paths,
            run,
            tls_ports=tls_ports,
            ca_bundle=ca_bundle,
            no_verify=no_verify,
            progress=progress,
            workers=workers,
            keylog=keylog,
        )
    )
    return records, run


def report_problems(run: Run) -> None:
    for w in run.warnings:
        err.print(Text(f"tlsa: warning: {safe(w)}"), soft_wrap=True)
    for e in run.errors:
        err.print(Text(f"tlsa: error: {safe(e)}"), soft_wrap=True)


def is_failed(r: HandshakeRecord) -> bool:
    """A failure with a category (what ``--only-failed`` keeps)."""
    return r.outcome in ("failed", "not_tls") and bool(r.failure)


def wanted(
    r: HandshakeRecord,
    only_failed: bool,
    sni: str | None,
    server: str | None,
    uids: Sequence[str] = (),
    transports: Sequence[str] = (),
) -> bool:
    """Whether a record passes ``--only-failed``, ``--sni``, ``--server``, ``--uid`` (a
    uid or a prefix of at least 4 characters) and ``--transport``."""
    if only_failed and not is_failed(r):
        return False
    if transports and r.transport not in transports:
        return False
    if uids and not any(r.uid == u or (len(u) >= 4 and r.uid.startswith(u)) for u in uids):
        return False
    if sni and not (r.sni and (r.sni == sni or r.sni.endswith("." + sni.lstrip("*.")))):
        return False
    if server:
        host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
        if not (r.server_ip == host or r.sni == host) or (port and str(r.server_port) != port):
            return False
    return True


def records_table(records: Sequence[HandshakeRecord]) -> Table:
    table = Table(show_lines=False, header_style="bold")
    for col in ("time (UTC)", "client → server", "SNI", "version", "stage", "outcome", "why"):
        table.add_column(col, overflow="fold")
    styles = {"established": "green", "failed": "red", "not_tls": "yellow", "incomplete": "dim"}
    import time

    for r in records:
        when = time.strftime("%H:%M:%S", time.gmtime(r.ts)) + f".{int(r.ts % 1 * 1000):03d}"
        outcome = r.outcome + (f": {r.failure}" if r.failure else "")
        table.add_row(
            when,
            Text(f"{r.client_ip}:{r.client_port} → {r.server_ip}:{r.server_port}"),
            Text(safe(r.sni)),
            Text(safe(r.version)),
            r.stage,
            Text(outcome, style=styles.get(r.outcome, "")),
            Text(safe(r.reason) if r.outcome != "established" else ""),
        )
    return table


def print_failed_lines(console: Console, failed: Sequence[HandshakeRecord]) -> None:
    """One line per failed connection: uid, server, SNI, failure and the reason cut to the
    terminal's width (``tlsa show UID`` has all of it)."""
    rows = [
        (r.uid, f"{r.server_ip}:{r.server_port}", safe(r.sni)[:32], r.failure or "",
         safe(r.reason))
        for r in failed
    ]
    head = ("uid", "server", "SNI", "failure", "why")
    widths = [max(len(head[i]), *(len(row[i]) for row in rows)) for i in range(4)]
    console.print(Text(f"Failed connections ({len(failed)})", style="bold"))
    for n, row in enumerate([head, *rows]):
        line = Text(style="bold" if n == 0 else "")
        for i, width in enumerate(widths):
            line.append(row[i].ljust(width + 2), style="red" if i == 3 and n else "")
        line.append(row[4])
        console.print(line, no_wrap=True, overflow="ellipsis")


def answer_first(console: Console, rows: Sequence[HandshakeRecord]) -> None:
    """The terminal view of ``tlsa analyze``: totals, failures per cause, then the failed
    connections; the healthy ones are counted, not listed."""
    from collections import Counter

    outcomes = Counter(r.outcome for r in rows)
    captures = len({r.capture for r in rows})
    line = Text(f"{len(rows)} TLS connection{'s' if len(rows) != 1 else ''}", style="bold")
    line.append(f" in {captures} capture{'s' if captures != 1 else ''}: ")
    styles = {"established": "green", "failed": "red", "not_tls": "yellow", "incomplete": "dim"}
    line.append_text(
        Text(", ").join(
            Text(f"{n} {k}", style=styles.get(k, "")) for k, n in outcomes.most_common()
        )
    )
    console.print(line)
    failed = [r for r in rows if is_failed(r)]
    if not failed:
        console.print(Text("No failed handshakes.", style="green"))
        return
    causes: dict[str, list[HandshakeRecord]] = {}
    for r in failed:
        causes.setdefault(r.failure or "", []).append(r)
    table = Table(title="Failures by cause", title_justify="left", header_style="bold")
    for col, justify in (("cause", "left"), ("connections", "right"), ("servers", "left"),
                         ("example uid", "left")):
        table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for cause, rs in sorted(causes.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        servers = sorted({f"{r.sni or r.server_ip}:{r.server_port}" for r in rs})
        shown = ", ".join(servers[:3]) + (f" +{len(servers) - 3}" if len(servers) > 3 else "")
        table.add_row(Text(cause, style="red"), str(len(rs)), Text(safe(shown)), rs[0].uid)
    console.print(table)
    print_failed_lines(console, failed)
    rest = len(rows) - len(failed)
    if rest:
        console.print(
            Text(
                f"{rest} other connection{'s' if rest != 1 else ''} not listed: --all lists "
                "every one; tlsa show UID tells everything about one.",
                style="dim",
            )
        )


def write_records(
    records: Iterable[HandshakeRecord],
    fmt: Format,
    output: Path | None,
    *,
    show_all: bool = False,
) -> None:
    """Write records in ``fmt``; JSONL, CSV, Zeek and ECS are streamed, the others need them
    all. A table on a terminal leads with the answer (:func:`answer_first`) unless
    ``show_all``; a table written to a file or a pipe has every record."""
    from analyzer import output as out

    if fmt is Format.parquet:
        if output is None:
            raise Stop("--format parquet needs -o FILE")
        out.write_parquet(list(records), str(output))
        return
    stream: TextIO
    with _output(output) as stream:
        if fmt is Format.jsonl:
            out.write_jsonl(records, stream)
        elif fmt is Format.csv:
            out.write_csv(records, stream)
        elif fmt is Format.zeek:
            from analyzer.export.zeek import write_zeek

            write_zeek(records, stream)
        elif fmt is Format.ecs:
            from analyzer.export.ecs import write_ecs

            write_ecs(records, stream)
        elif not (rows := list(records)):
            err.print(Text("tlsa: no TLS connections in the input"), soft_wrap=True)
        elif stream.isatty() and not show_all:
            answer_first(Console(file=stream, highlight=False), rows)
        else:
            # A terminal sets its own width; a file or pipe gets room for the reasons.
            width = None if stream.isatty() else 200
            Console(file=stream, highlight=False, width=width).print(records_table(rows))


def _output(output: Path | None) -> contextlib.AbstractContextManager[TextIO]:
    """The file ``output`` (UTF-8, newlines as written) or standard output."""
    return open(output, "w", encoding="utf-8", newline="") if output else _stdout()


@contextmanager
def _stdout() -> Iterator[TextIO]:
    yield sys.stdout
    sys.stdout.flush()


def finish(run: Run, records: Iterable[HandshakeRecord], fail_on_failure: bool) -> None:
    report_problems(run)
    if run.errors:
        raise typer.Exit(2)
    if fail_on_failure and any(r.outcome == "failed" for r in records):
        raise typer.Exit(1)


@app.command()
def analyze(
    paths: PathsArg,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to FILE.")] = None,
    tls_port: TlsPortOpt = None,
    only_failed: Annotated[
        bool, typer.Option("--only-failed", help="Failed handshakes only.")
    ] = False,
    sni: Annotated[
        str | None, typer.Option("--sni", help="Only this server name (and its subdomains).")
    ] = None,
    server: Annotated[
        str | None, typer.Option("--server", help="Only this server: IP, IP:PORT or name.")
    ] = None,
    ca_bundle: CaBundleOpt = None,
    no_verify: NoVerifyOpt = False,
    fail_on_failure: Annotated[
        bool, typer.Option("--fail-on-failure", help="Exit 1 if any handshake failed.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Worker processes (default: every core for several or large inputs).",
        ),
    ] = None,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            metavar="ADDRESS",
            help="Run on a Dask scheduler (tcp://HOST:8786); writes jsonl or parquet (-o DIR).",
        ),
    ] = None,
    uid: UidOpt = None,
    show_all: Annotated[
        bool,
        typer.Option("--all", help="On a terminal, list every connection, not only the failed."),
    ] = False,
    extract: ExtractOpt = None,
    keylog: KeylogOpt = None,
    embed_secrets: EmbedOpt = False,
    transport: TransportOpt = None,
) -> None:
    """One record per TLS connection: how far the handshake got, and why it failed.

    On a terminal the table leads with the totals and the failed connections (--all for
    every row); written to a file or a pipe it has every record."""
    if embed_secrets and extract is None:
        raise Stop("--embed-secrets puts the secrets into the --extract capture: give --extract")
    keys = load_keylogs(keylog)
    if dask is not None:
        if only_failed or sni or server or uid or extract or transport:
            raise Stop("--dask writes every record: filter the output instead")
        analyze_dask(paths, dask, fmt, output, tls_port, ca_bundle, no_verify, fail_on_failure,
                     keys)
        return
    if embed_secrets and keys is None:
        keys = KeyLog()  # for the secrets blocks of the inputs
    run = Run()
    if fmt is Format.jsonl and not (
        only_failed or sni or server or uid or extract or transport or keys is not None
    ):
        # Every record, as lines: with several workers, the workers render them.
        any_failed = False
        with _output(output) as stream:
            for line, line_failed in stream_jsonl(
                paths, run, tls_ports=tls_port, ca_bundle=ca_bundle, no_verify=no_verify,
                workers=workers,
            ):
                stream.write(line)
                any_failed = any_failed or line_failed
        finish(run, [], False)
        if fail_on_failure and any_failed:
            raise typer.Exit(1)
        return
    failed: list[HandshakeRecord] = []  # at most one: enough for --fail-on-failure
    selected: list[HandshakeRecord] = []  # for --extract
    tuples = TupleStarts()  # for --extract: where each connection's packets end

    def shown() -> Iterator[HandshakeRecord]:
        for r in stream_inputs(
            paths,
            run,
            tls_ports=tls_port,
            ca_bundle=ca_bundle,
            no_verify=no_verify,
            workers=workers,
            keylog=keys,
        ):
            if r.outcome == "failed" and not failed:
                failed.append(r)
            if extract is not None:
                tuples.add(r)
            if wanted(r, only_failed, sni, server, uid or (), transport or ()):
                if extract is not None:
                    selected.append(r)
                yield r

    write_records(shown(), fmt, output, show_all=show_all)
    if extract is not None:
        extract_to(extract, selected, paths, tuples, keys if embed_secrets else None)
    finish(run, failed, fail_on_failure)


def extract_to(
    path: Path,
    records: Sequence[HandshakeRecord],
    inputs: Sequence[str],
    tuples: TupleStarts,
    secrets: KeyLog | None = None,
) -> None:
    """``--extract FILE``: the packets of ``records`` (read again from ``inputs``) as
    pcapng, with a line on stderr saying what was written. ``tuples``: every record of
    the run, added. ``secrets``: ``--embed-secrets``, the run's key log (the secrets of
    the connections written go into the file)."""
    from analyzer.export.wireshark import write_extract
    from analyzer.sources import expand_paths

    files, _ = expand_paths(list(inputs))
    captures: dict[str, Path] = {}
    for f in files:
        captures.setdefault(f.name, f)
    try:
        with open(path, "wb") as out:
            done = write_extract(records, captures, out, tuples=tuples, embed_secrets=secrets)
    except OSError as e:
        raise Stop(f"--extract {path}: {e.strerror or e}") from e
    n = len(records)
    err.print(
        Text(f"tlsa: wrote {done.total} packets of {n} connection{'s' if n != 1 else ''} "
             f"to {path}" + (f", with the secrets of {done.secrets}" if secrets else "")),
        soft_wrap=True,
    )
    for problem in done.errors:
        err.print(Text(f"tlsa: warning: --extract: {safe(problem)}"), soft_wrap=True)


def analyze_dask(
    paths: Sequence[str],
    address: str,
    fmt: Format,
    output: Path | None,
    tls_ports: Sequence[int] | None,
    ca_bundle: Path | None,
    no_verify: bool,
    fail_on_failure: bool,
    keylog: KeyLog | None = None,
) -> None:
    """``tlsa analyze --dask ADDRESS`` (see :mod:`analyzer.scale.dask`); the key log
    travels to the workers inside their tasks, in memory."""
    if fmt not in (Format.jsonl, Format.parquet):
        raise Stop("--dask writes --format jsonl or --format parquet (-o DIR)")
    if fmt is Format.parquet and output is None:
        raise Stop("--dask --format parquet needs -o DIR (a directory or URL all workers reach)")
    try:
        from analyzer.scale.dask import analyze_on_cluster
    except ImportError as e:
        raise Stop(f"--dask needs the dask extra (pip install '.[dask]'): {e}") from e
    run = Run()
    verify = not no_verify
    options = DiagnosisOptions(ca_bundle=str(ca_bundle) if ca_bundle else None, verify=verify)
    try:
        _, failed = analyze_on_cluster(
            paths,
            address,
            run,
            fmt=fmt.value,
            output=str(output) if output else None,
            tls_ports=tls_ports or (),
            options=options,
            keylog=keylog,
        )
    except OSError as e:
        raise Stop(f"--dask {address}: {e}") from e
    finish(run, [], False)
    if fail_on_failure and failed:
        raise typer.Exit(1)


def summarize(records: Sequence[HandshakeRecord], run: Run) -> dict[str, object]:
    """The data of ``tlsa summary`` (see :func:`analyzer.aggregate.summary`)."""
    from analyzer.aggregate import summary as aggregate_summary
    from analyzer.frame import to_dataframe

    quic = sum(s.udp_quic for s in run.stats.values())
    return aggregate_summary(to_dataframe(records), quic=quic, captures=sorted(run.stats))


@app.command()
def summary(
    paths: PathsArg,
    fmt: Annotated[SummaryFormat, typer.Option("--format", "-f")] = SummaryFormat.table,
    tls_port: TlsPortOpt = None,
    ca_bundle: CaBundleOpt = None,
    no_verify: NoVerifyOpt = False,
    keylog: KeylogOpt = None,
    transport: TransportOpt = None,
) -> None:
    """Totals, outcomes, top failure causes with an example, worst servers."""
    records, run = run_inputs(paths, tls_ports=tls_port, ca_bundle=ca_bundle, no_verify=no_verify,
                              keylog=load_keylogs(keylog))
    if transport:
        records = [r for r in records if r.transport in transport]
    data = summarize(records, run)
    if fmt is SummaryFormat.json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        print_summary(data)
    finish(run, records, False)


@app.command()
def report(
    paths: PathsArg,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Directory to write index.html into.")
    ],
    title: Annotated[str, typer.Option("--title", help="Page title.")] = "TLS handshake report",
    tls_port: TlsPortOpt = None,
    ca_bundle: CaBundleOpt = None,
    no_verify: NoVerifyOpt = False,
    keylog: KeylogOpt = None,
) -> None:
    """A self-contained HTML report: summary, figures, failed handshakes and their details."""
    from analyzer.report import write as write_report

    records, run = run_inputs(paths, tls_ports=tls_port, ca_bundle=ca_bundle, no_verify=no_verify,
                              keylog=load_keylogs(keylog))
    try:
        path = write_report(records, output, run=run, title=title)
    except OSError as e:
        raise Stop(f"-o {output}: cannot write the report ({e.strerror or e})") from e
    sys.stdout.write(f"{path}\n")
    finish(run, records, False)


class CertsFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


@app.command()
def certs(
    paths: PathsArg,
    fmt: Annotated[CertsFormat, typer.Option("--format", "-f")] = CertsFormat.table,
    tls_port: TlsPortOpt = None,
    ca_bundle: CaBundleOpt = None,
    no_verify: NoVerifyOpt = False,
) -> None:
    """The certificate inventory: each server certificate seen, who presented it, how many
    clients completed handshakes with it or rejected it; what breaks next comes first."""
    from analyzer.inventory import COLUMNS, inventory

    records, run = run_inputs(paths, tls_ports=tls_port, ca_bundle=ca_bundle, no_verify=no_verify)
    rows = inventory(records)
    if fmt is CertsFormat.json:
        data = [asdict(c) for c in rows]
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    elif fmt is CertsFormat.csv:
        import csv

        from analyzer.output import csv_cell

        writer = csv.writer(sys.stdout)
        writer.writerow(COLUMNS)
        for c in rows:
            writer.writerow([csv_cell(getattr(c, name)) for name in COLUMNS])
    else:
        from analyzer.report.terminal import certificates_table

        Console(highlight=False).print(certificates_table(rows))
    finish(run, records, False)


def print_summary(data: dict[str, object]) -> None:
    from analyzer.report.terminal import print_summary as print_tables

    print_tables(Console(highlight=False), data)


@app.command()
def show(
    uid: Annotated[str, typer.Argument(help="The record's uid (from analyze).")],
    paths: PathsArg,
    tls_port: TlsPortOpt = None,
    ca_bundle: CaBundleOpt = None,
    no_verify: NoVerifyOpt = False,
    extract: ExtractOpt = None,
    keylog: KeylogOpt = None,
    embed_secrets: EmbedOpt = False,
) -> None:
    """Everything about one connection: timeline, alerts, certificate, diagnosis, and the
    Wireshark display filter that selects its packets."""
    if embed_secrets and extract is None:
        raise Stop("--embed-secrets puts the secrets into the --extract capture: give --extract")
    keys = load_keylogs(keylog)
    if embed_secrets and keys is None:
        keys = KeyLog()  # for the secrets blocks of the inputs
    records, run = run_inputs(paths, tls_ports=tls_port, ca_bundle=ca_bundle, no_verify=no_verify,
                              keylog=keys)
    match = [r for r in records if r.uid == uid]
    if not match and len(uid) >= 4:
        match = [r for r in records if r.uid.startswith(uid)][:2]
    if len(match) != 1:
        report_problems(run)
        what = "several connections with uids starting" if match else "no connection with uid"
        raise Stop(f"{what} {safe(uid)} in {' '.join(paths)}")
    from analyzer.report.terminal import print_record

    print_record(Console(highlight=False), match[0])
    if extract is not None:
        tuples = TupleStarts()
        for r in records:
            tuples.add(r)
        extract_to(extract, match, paths, tuples, keys if embed_secrets else None)
    finish(run, records, False)


class DiffFormat(StrEnum):
    table = "table"
    json = "json"


def _side_frame(
    path: str, tls_ports: Sequence[int] | None, options: DiagnosisOptions, run: Run
) -> pd.DataFrame:
    from analyzer.api import CaptureError
    from analyzer.records_io import RecordsError, load_frame

    try:
        return load_frame([path], tls_ports=tls_ports or (), options=options, run=run)
    except RecordsError as e:
        raise Stop(str(e)) from e
    except CaptureError:
        report_problems(run)
        raise typer.Exit(2) from None


def _rate(n: int, rate: float | None) -> str:
    return "-" if rate is None else f"{n} ({rate:.0%})"


@app.command()
def diff(
    before: Annotated[str, typer.Argument(help="Capture, directory, or saved JSONL/Parquet.")],
    after: Annotated[str, typer.Argument(help="The same, after the change.")],
    fmt: Annotated[DiffFormat, typer.Option("--format", "-f")] = DiffFormat.table,
    unchanged: Annotated[
        bool, typer.Option("--unchanged", help="Also list what did not change.")
    ] = False,
    tls_port: TlsPortOpt = None,
    ca_bundle: CaBundleOpt = None,
    no_verify: NoVerifyOpt = False,
) -> None:
    """What changed between two runs, per server and SNI: failures that appeared,
    disappeared or changed share, with counts, rates and an example uid each."""
    from analyzer.diff import diff_frames

    options = options_for(ca_bundle, no_verify)
    run_before, run_after = Run(), Run()
    result = diff_frames(
        _side_frame(before, tls_port, options, run_before),
        _side_frame(after, tls_port, options, run_after),
    )
    if fmt is DiffFormat.json:
        sys.stdout.write(json.dumps(result.as_dict(unchanged=unchanged), indent=2) + "\n")
    else:
        console = Console(highlight=False)
        head = Text(f"before: {result.before_total} connections ", style="bold")
        head.append(", ".join(f"{k} {v}" for k, v in result.before_outcomes.items()))
        head.append(f"\nafter:  {result.after_total} connections ", style="bold")
        head.append(", ".join(f"{k} {v}" for k, v in result.after_outcomes.items()))
        console.print(head)
        rows = result.shown(unchanged=unchanged)
        if not rows:
            console.print(Text("No change per server, SNI and category.", style="green"))
        else:
            table = Table(header_style="bold")
            for col in ("change", "server", "SNI", "category", "before", "after", "example uid"):
                table.add_column(col, overflow="fold")
            styles = {"appeared": "red", "disappeared": "green", "changed": "yellow"}
            for c in rows:
                style = styles.get(c.verdict, "dim") if c.failure else "dim"
                table.add_row(
                    Text(c.verdict, style=style), c.server, Text(safe(c.sni)), c.category,
                    _rate(c.before, c.before_rate), _rate(c.after, c.after_rate),
                    c.example or "-",
                )  # fmt: skip
            console.print(table)
    report_problems(run_before)
    report_problems(run_after)


class LiveFormat(StrEnum):
    table = "table"
    jsonl = "jsonl"
    csv = "csv"


def live_line(r: HandshakeRecord) -> Text:
    """One compact line per record, for ``tlsa live --format table``."""
    import time

    when = time.strftime("%H:%M:%S", time.gmtime(r.ts)) + f".{int(r.ts % 1 * 1000):03d}"
    styles = {"established": "green", "failed": "red", "not_tls": "yellow", "incomplete": "dim"}
    line = Text(f"{when}  {r.client_ip}:{r.client_port} → {r.server_ip}:{r.server_port}")
    for value in (r.sni, r.version):
        if value:
            line.append(f"  {safe(value)}")
    outcome = r.outcome + (f": {r.failure}" if r.failure else "")
    line.append(f"  {outcome}", style=styles.get(r.outcome, ""))
    if r.outcome != "established" and r.reason:
        line.append(f"  {safe(r.reason)}")
    return line


def live_writer(fmt: LiveFormat, stream: TextIO) -> Callable[[HandshakeRecord], None]:
    """A function that writes one record to ``stream`` in ``fmt`` and flushes."""
    import csv

    from analyzer.output import csv_cell, jsonl_line
    from analyzer.record import RECORD_FIELDS

    if fmt is LiveFormat.jsonl:

        def write_jsonl(r: HandshakeRecord) -> None:
            stream.write(jsonl_line(r) + "\n")
            stream.flush()

        return write_jsonl
    if fmt is LiveFormat.csv:
        writer = csv.writer(stream)
        writer.writerow(RECORD_FIELDS)
        stream.flush()

        def write_csv(r: HandshakeRecord) -> None:
            d = r.to_dict()
            writer.writerow([csv_cell(d[f]) for f in RECORD_FIELDS])
            stream.flush()

        return write_csv
    console = Console(file=stream, highlight=False, soft_wrap=True)

    def write_line(r: HandshakeRecord) -> None:
        console.print(live_line(r))
        stream.flush()

    return write_line


def stop_on_signals(session: LiveSession) -> Callable[[], None]:
    """Ctrl-C (SIGINT) or SIGTERM stops the capture in order: dumpcap is asked to stop,
    what it captured is analyzed, then the connections still open are reported. A second
    one stops at once (KeyboardInterrupt). Nothing is raised at an arbitrary point of the
    first: an exception thrown into the wait for the reader thread's queue could leave the
    queue's lock held. Returns the function that puts the previous handlers back."""
    import signal

    def handler(signum: int, frame: object) -> None:
        if session.stopping:
            raise KeyboardInterrupt
        session.stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


@app.command()
def live(
    interface: Annotated[
        str | None,
        typer.Option("-i", "--interface", help="Interface to capture on (tshark -D). Required."),
    ] = None,
    bpf: Annotated[str, typer.Option("--bpf", help="Capture filter (BPF syntax).")] = DEFAULT_BPF,
    duration: Annotated[
        float | None, typer.Option("--duration", min=0, help="Stop after S seconds.")
    ] = None,
    count: Annotated[
        int | None, typer.Option("--count", min=1, help="Stop after N records.")
    ] = None,
    fmt: Annotated[LiveFormat, typer.Option("--format", "-f", help="Output format.")] = (
        LiveFormat.table
    ),
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to FILE.")] = None,
    write: Annotated[
        Path | None, typer.Option("--write", help="Also keep the raw capture (pcapng).")
    ] = None,
    tls_port: TlsPortOpt = None,
    ca_bundle: CaBundleOpt = None,
    no_verify: NoVerifyOpt = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            help="Serve Prometheus metrics on this port (/metrics; 9464 is customary).",
        ),
    ] = None,
    metrics_addr: Annotated[
        str, typer.Option("--metrics-addr", help="Address the metrics are served on.")
    ] = "127.0.0.1",
    keylog: Annotated[
        list[Path] | None,
        typer.Option(
            "--keylog",
            metavar="FILE",
            help="NSS key log (SSLKEYLOGFILE) to decrypt the handshakes with, followed as "
            "the browser or curl appends to it (repeatable).",
        ),
    ] = None,
    embed_secrets: Annotated[
        bool,
        typer.Option(
            "--embed-secrets",
            help="Put the secrets of the connections reported into the --write capture "
            "(a pcapng Decryption Secrets Block): anyone with the file can decrypt them.",
        ),
    ] = False,
) -> None:
    """Capture on an interface; print each handshake as soon as it settles (Ctrl-C stops)."""
    import time

    if not interface:
        raise Stop("tlsa live needs -i INTERFACE (list the interfaces with: tshark -D)")
    if embed_secrets and write is None:
        raise Stop("--embed-secrets puts the secrets into the --write capture: give --write")
    keys = load_keylogs(keylog, follow=True)
    if ca_bundle is not None:
        try:
            load_ca_bundle(str(ca_bundle))
        except (OSError, ValueError) as e:
            raise Stop(f"--ca-bundle {ca_bundle}: cannot read it as PEM certificates ({e})") from e
    options = DiagnosisOptions(
        ca_bundle=str(ca_bundle) if ca_bundle else None, verify=not no_verify
    )
    try:
        stream: TextIO = (
            open(output, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed below
            if output
            else sys.stdout
        )
    except OSError as e:
        raise Stop(f"-o {output}: {e.strerror or e}") from e
    session = LiveSession(
        interface, bpf=bpf, write=write, tls_ports=tls_port or (), options=options,
        keylog=keys, embed_secrets=embed_secrets,
    )
    warned = len(keys.warnings) if keys is not None else 0
    metrics = start_metrics(session, metrics_port, metrics_addr)
    restore = None
    began = time.monotonic()
    try:
        try:
            session.start()
        except LiveCaptureError as e:
            raise Stop(str(e)) from None
        restore = stop_on_signals(session)
        err.print(
            Text(f"tlsa: capturing on {interface} (filter: {bpf}); Ctrl-C to stop"),
            soft_wrap=True,
        )
        began = time.monotonic()
        emit = live_writer(fmt, stream)
        if metrics is not None:
            write_line = emit

            def emit(r: HandshakeRecord) -> None:
                metrics.observe(r)
                write_line(r)

        if keys is not None:
            write_record = emit

            def emit(r: HandshakeRecord) -> None:
                nonlocal warned
                write_record(r)
                warned = report_keylog(keys, warned)

        try:
            for r in session.records(duration=duration, count=count):
                emit(r)
        except KeyboardInterrupt:
            pass
        for r in session.flush():
            emit(r)
    except BrokenPipeError:
        pass
    finally:
        session.close()
        if metrics is not None:
            metrics.close()
        if restore is not None:
            restore()
        if output:
            stream.close()
    err.print(Text(live_summary(session, time.monotonic() - began)), soft_wrap=True)
    if keys is not None:
        report_keylog(keys, warned)
    if session.secrets_problem:
        err.print(Text(f"tlsa: warning: --embed-secrets: {safe(session.secrets_problem)}"),
                  soft_wrap=True)
    elif session.secrets_embedded is not None:
        err.print(Text(f"tlsa: wrote the secrets of {session.secrets_embedded} connection"
                       f"{'s' if session.secrets_embedded != 1 else ''} into {write}"),
                  soft_wrap=True)
    if session.error:
        raise Stop(f"the capture stopped: {session.error}")


def start_metrics(session: LiveSession, port: int | None, addr: str) -> LiveMetrics | None:
    """``--metrics-port``: serve the session's metrics, or a one-line error."""
    if port is None:
        return None
    try:
        from analyzer.metrics import LiveMetrics
    except ImportError as e:  # pragma: no cover - the live extra brings it
        raise Stop(f"--metrics-port needs prometheus-client (pip install '.[live]'): {e}") from e
    try:
        metrics = LiveMetrics()
        metrics.source = session.source
        bound = metrics.serve(port, addr)
    except ImportError as e:
        raise Stop(f"--metrics-port needs prometheus-client (pip install '.[live]'): {e}") from e
    except OSError as e:
        raise Stop(f"--metrics-port {port}: cannot listen on {addr} ({e.strerror or e})") from e
    host = f"[{addr}]" if ":" in addr else addr
    err.print(Text(f"tlsa: metrics on http://{host}:{bound}/metrics"), soft_wrap=True)
    return metrics


def live_summary(session: LiveSession, seconds: float) -> str:
    """The line ``tlsa live`` prints on exit: records per outcome, packets, drops."""
    n = session.records_given
    parts = [f"{k} {v}" for k, v in session.outcomes.most_common()]
    text = f"tlsa: {n} TLS connection{'s' if n != 1 else ''} in {seconds:.1f} s"
    if parts:
        text += ": " + ", ".join(parts)
    if session.failures:
        text += " (" + ", ".join(f"{k} {v}" for k, v in session.failures.most_common()) + ")"
    source = session.source
    text += f"; {source.frames} packets"
    if source.dropped is not None:
        text += f", {source.dropped} dropped by the kernel or dumpcap"
    return text


GC_GEN0_THRESHOLD = 7000
"""The cyclic collector's youngest-generation threshold (Python's default: 700). Packets
make and drop many small objects, nearly none in cycles: with the default, the collector
took about 7 % of a run on the small bench corpus and 13 % on a SYN + ClientHello flood,
for the same peak memory (``bench/RESULTS.md``)."""


def main() -> None:
    """Console entry point: no traceback for the user."""
    # What the imports made lives until exit: the collector need not scan it again.
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:  # click returns typer.Exit's status here
            sys.exit(code)
    except Stop as e:
        err.print(Text(f"tlsa: error: {e}"), soft_wrap=True)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print(Text("tlsa: interrupted"))
        sys.exit(130)
    except Exception as e:
        # typer may bring its own copy of click: recognise click's exceptions by name.
        kinds = {c.__name__ for c in type(e).__mro__}
        if "Abort" in kinds:
            sys.exit(130)
        if "ClickException" in kinds:
            message = e.format_message() if hasattr(e, "format_message") else str(e)
            err.print(Text(f"tlsa: error: {message} (see tlsa --help)"), soft_wrap=True)
            sys.exit(int(getattr(e, "exit_code", 2)) or 2)
        if os.environ.get("TLSA_DEBUG"):
            raise
        err.print(Text(f"tlsa: internal error: {type(e).__name__}: {e}"), soft_wrap=True)
        sys.exit(2)

"""Live capture end to end: an interface in, diagnosed records out as handshakes settle.

:class:`LiveSession` wires the live source (:mod:`analyzer.sources.live`: dumpcap →
pipe → our pcapng reader, plus ticks on a quiet interface) to the same engine the files
go through, in live mode (``report_at_settle``: a record comes out as soon as its
handshake is settled, established or failed, with ``close: open``), and each record
through :func:`analyzer.diagnosis.diagnose`, then through the cross-connection evidence of
the records given before it (:class:`~analyzer.diagnosis.cross.Evidence` in live mode: what
the same server negotiated or showed to other clients, bounded to the servers seen last).
Connections still open when the capture ends are reported then (``close: capture_end``),
like at the end of a file. A file's analysis also uses the records that come later, so a
live record can say less than the same connection's record from the written capture.

:func:`live` is the generator for scripts and notebooks; :func:`live_dataframe` collects
for a given time into a DataFrame. Both run the capture on threads of their own (no event
loop), so they are safe inside Jupyter; interrupting the kernel (or Ctrl-C) ends the
capture like ``duration`` would: the records of connections still open are still given.

With a key log (``keylog``, usually :meth:`KeyLog.follow` of the file a browser or curl
is still appending to), handshakes are decrypted as in a file: the key log is polled at
every tick (a quarter second), and again whenever a connection finds no secrets (the
client may have written them a moment after the packets were captured). With
``embed_secrets`` and ``write``, the written capture gets, when the session closes, a
Decryption Secrets Block before its packets holding the secrets of the connections it
reported (:mod:`analyzer.export.secrets`), and of no other connection in the key log.

``analyzer.live`` is the function (the package re-exports it over this module's name):
reach the rest with ``from analyzer.live import LiveSession``.

Not here: the command line (``tlsa live`` in :mod:`analyzer.cli`), capture details.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analyzer.diagnosis import DiagnosisOptions, diagnose
from analyzer.diagnosis.cross import Evidence
from analyzer.engine.engine import Engine
from analyzer.engine.udp import DTLS_PORTS, QUIC_PORTS
from analyzer.limits import MAX_KEYLOG_ENTRIES
from analyzer.record import HandshakeRecord
from analyzer.sources.base import Frame
from analyzer.sources.live import LiveCaptureError, LiveSource
from analyzer.tls.keylog import KeyLog, Secrets

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_BPF", "LiveCaptureError", "LiveSession", "default_bpf", "live", "live_dataframe",
]


def default_bpf(tls_ports: Iterable[int] = ()) -> str:
    """The capture filter when none is given: TCP; UDP to or from the QUIC port (443), the
    DTLS ports (4433, 5061, 5684) and ``tls_ports``; and the ICMP/ICMPv6
    destination-unreachable errors that may answer either (type 3 / type 1, an ICMPv6
    header right after the IPv6 header: libpcap's ``icmp6`` does not follow extension
    headers either), with ICMPv6 Packet Too Big (type 2: path MTU evidence). The same
    inside one 802.1Q tag."""
    ports = sorted(QUIC_PORTS | DTLS_PORTS | frozenset(tls_ports))
    udp = " or ".join(f"udp port {p}" for p in ports)
    wanted = (
        f"tcp or {udp} or icmp[icmptype] == icmp-unreach"
        " or (icmp6 and (ip6[40] == 1 or ip6[40] == 2))"
    )
    return f"{wanted} or (vlan and ({wanted}))"


DEFAULT_BPF = default_bpf()
"""The capture filter of :func:`default_bpf` without extra ports (``--tls-port`` ports are
added to it for UDP when the filter is left at this default)."""


class LiveSession:
    """One live capture: start it, take records as they settle, flush the rest, close.

    ``records()`` ends by itself after ``duration`` seconds (flushing open connections)
    or after ``count`` records (without flushing). When it is interrupted (Ctrl-C),
    ``flush()`` stops the capture and returns the records of everything captured so far.
    """

    def __init__(
        self,
        interface: str,
        *,
        bpf: str | None = DEFAULT_BPF,
        write: str | Path | None = None,
        tls_ports: Iterable[int] = (),
        options: DiagnosisOptions | None = None,
        tshark_path: str | None = None,
        keylog: KeyLog | None = None,
        embed_secrets: bool = False,
    ) -> None:
        self.interface = interface
        if bpf == DEFAULT_BPF and tls_ports:
            bpf = default_bpf(tls_ports)
        self.source = LiveSource(interface, bpf=bpf, write=write, tshark_path=tshark_path)
        self.keylog = keylog
        self.engine = Engine(
            interface, tls_ports=tuple(tls_ports), report_at_settle=True, keylog=keylog
        )
        self.embed_secrets = embed_secrets and write is not None and keylog is not None
        self._secrets: dict[bytes, Secrets] = {}
        """``embed_secrets``: the secrets of the connections reported, as found then (the
        key log may drop old entries before the session ends)."""
        self.secrets_embedded: int | None = None
        """Connections whose secrets went into ``write`` (known after :meth:`close`)."""
        self.secrets_problem: str | None = None
        """Why the secrets could not be embedded, if so."""
        self.options = options or DiagnosisOptions()
        self._evidence = Evidence(live=True)
        self.outcomes: Counter[str] = Counter()
        """Records given so far, per outcome."""
        self.failures: Counter[str] = Counter()
        """Failed records given so far, per failure category."""
        self.started_at: float | None = None
        self._started = False
        self._done = False

    def __enter__(self) -> LiveSession:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def records_given(self) -> int:
        return sum(self.outcomes.values())

    def start(self) -> None:
        """Start capturing; raises :class:`LiveCaptureError` (one line) when it cannot."""
        if not self._started:
            self.source.start()
            self._started = True
            self.started_at = time.monotonic()

    def _diagnosed(self, records: list[HandshakeRecord]) -> Iterator[HandshakeRecord]:
        for record in records:
            if self.embed_secrets:
                self._keep_secrets(record)
            r = diagnose(record, self.options)
            self._evidence.add(r)
            r = self._evidence.sharpen(r)
            self.outcomes[r.outcome] += 1
            if r.failure:
                self.failures[r.failure] += 1
            yield r

    def records(
        self, *, duration: float | None = None, count: int | None = None
    ) -> Iterator[HandshakeRecord]:
        """Diagnosed records as handshakes settle, until ``duration`` wall seconds have
        passed or ``count`` records were given (or the capture ended by itself)."""
        self.start()
        assert self.started_at is not None
        deadline = None if duration is None else self.started_at + duration
        feed, tick = self.engine.feed, self.engine.tick
        poll = self.keylog.poll if self.keylog is not None else None
        for event in self.source.events():
            if type(event) is Frame:
                out = feed(event)
            else:
                if poll is not None:
                    poll()
                out = tick(event.ts)
            if out:
                for r in self._diagnosed(out):
                    yield r
                    if count is not None and self.records_given >= count:
                        self._done = True
                        self.source.stop()
                        return
            if deadline is not None and time.monotonic() >= deadline:
                deadline = None
                self.source.stop()  # events() drains what was captured, then ends
        yield from self._finish()

    def _finish(self) -> Iterator[HandshakeRecord]:
        if self._done:
            return
        self._done = True
        self.engine.tick(self.source.packet_time())
        yield from self._diagnosed(self.engine.finish())

    @property
    def stopping(self) -> bool:
        """:meth:`stop` was called (or ``duration``/``count`` ended the capture)."""
        return self.source.stopping

    def stop(self) -> None:
        """Ask the capture to stop, without waiting (safe in a signal handler):
        :meth:`records` then gives the records of what was captured, then those of the
        connections still open, and ends."""
        self.source.stop()

    def flush(self) -> list[HandshakeRecord]:
        """Stop capturing and return the records not given yet: those of frames still
        queued, then of every connection still open (``close: capture_end``)."""
        if self._done or not self._started:
            return []
        self.source.stop()
        out: list[HandshakeRecord] = []
        feed, tick = self.engine.feed, self.engine.tick
        for event in self.source.events():
            records = feed(event) if type(event) is Frame else tick(event.ts)
            out.extend(self._diagnosed(records))
        out.extend(self._finish())
        return out

    def close(self) -> None:
        """Stop dumpcap and wait for it, then embed the secrets (``embed_secrets``);
        idempotent."""
        self.source.close()
        if self.embed_secrets and self._started and self.secrets_embedded is None:
            self._embed()

    def _keep_secrets(self, record: HandshakeRecord) -> None:
        if record.client_random is None or self.keylog is None:
            return
        client_random = bytes.fromhex(record.client_random)
        secrets = self.keylog.lookup(client_random)
        if secrets is None and self.keylog.poll():
            secrets = self.keylog.lookup(client_random)
        if secrets is not None:
            if len(self._secrets) >= MAX_KEYLOG_ENTRIES:
                del self._secrets[next(iter(self._secrets))]
            self._secrets[client_random] = secrets

    def _embed(self) -> None:
        """The secrets of the connections of the written capture, in front of its packets;
        connections never reported (``count`` reached) are looked up now."""
        from analyzer.export.secrets import embed_in_file, secrets_lines

        if not self._done:
            self._done = True
            for record in self.engine.finish():
                self._keep_secrets(record)
        assert self.source.write is not None
        lines = b"".join(secrets_lines(cr, s) for cr, s in self._secrets.items())
        self.secrets_embedded = len(self._secrets)
        self.secrets_problem = embed_in_file(self.source.write, lines)
        self._secrets.clear()

    @property
    def error(self) -> str | None:
        """Why the capture stopped by itself, if it did."""
        return self.source.error


def live(
    interface: str,
    *,
    bpf: str | None = DEFAULT_BPF,
    duration: float | None = None,
    count: int | None = None,
    write: str | Path | None = None,
    tls_ports: Iterable[int] = (),
    ca_bundle: str | Path | None = None,
    verify: bool = True,
    tshark_path: str | None = None,
    keylog: KeyLog | str | Path | None = None,
    embed_secrets: bool = False,
) -> Iterator[HandshakeRecord]:
    """Capture on ``interface`` and yield a diagnosed :class:`HandshakeRecord` as soon as
    each TLS handshake settles.

    ``bpf``: capture filter (default: :func:`default_bpf` of ``tls_ports``: TCP, UDP on the
    QUIC and DTLS ports, ICMP destination-unreachable errors).
    ``duration``: stop after this many seconds, then yield the connections still open.
    ``count``: stop after this many records. ``write``: also keep the raw capture
    (pcapng) for later analysis. Ctrl-C (or a Jupyter interrupt) while waiting ends the
    capture like ``duration``. Raises :class:`LiveCaptureError` with a one-line reason
    when the capture cannot start (no such interface, no permission, bad filter,
    tshark/dumpcap missing). ``keylog``: a :class:`KeyLog`, or a key log file to follow
    (``SSLKEYLOGFILE`` of a browser or curl still running: read as it grows).
    ``embed_secrets``: put the secrets of the connections reported into ``write``.
    """
    options = DiagnosisOptions(ca_bundle=str(ca_bundle) if ca_bundle else None, verify=verify)
    if isinstance(keylog, str | Path):
        followed = KeyLog()
        followed.follow(keylog)
        keylog = followed
    session = LiveSession(
        interface, bpf=bpf, write=write, tls_ports=tls_ports, options=options,
        tshark_path=tshark_path, keylog=keylog, embed_secrets=embed_secrets,
    )
    try:
        session.start()
        try:
            yield from session.records(duration=duration, count=count)
        except KeyboardInterrupt:
            yield from session.flush()
    finally:
        session.close()


def live_dataframe(interface: str, duration: float, **options: Any) -> pd.DataFrame:
    """Capture for ``duration`` seconds; every record as a DataFrame (SPEC §3 columns).
    ``options`` are those of :func:`live`."""
    from analyzer.frame import to_dataframe

    return to_dataframe(list(live(interface, duration=duration, **options)))

"""Live capture: dumpcap writes pcapng to a pipe, our own pcapng reader turns it into frames.

The mode, and why. pyshark's packet modes (``LiveCapture(use_json=True,
include_raw=True)`` and friends) hand packets over through tshark's dissector output:
every packet is fully dissected by tshark, printed as JSON/XML, parsed again by pyshark,
and with tshark 4.0 a packet comes out only when the next one arrives, so on a quiet
interface the alert or FIN that explains a failure can wait forever. Their link type is
Wireshark's ``frame.encap_type``, not a pcap link type. So pyshark is used here for what it
knows about capturing (where tshark and dumpcap are, including its ``config.ini`` and
``tshark_path``; how to turn an interface list, a BPF filter and monitor mode into a
dumpcap command line writing pcapng to stdout: ``LiveCapture._get_dumpcap_parameters``),
and the packets take the short way: dumpcap → pipe → :mod:`analyzer.sources.pcapng`, the
same reader the files go through. dumpcap writes each packet to the pipe as soon as
libpcap hands it over: at most 250 ms after capture (dumpcap's ``CAP_READ_TIMEOUT``, the
kernel ring buffer's block timeout; dumpcap 4.0 has no immediate mode), whatever comes
after it. The link type of each frame comes from the capture's Interface Description
Block; no tshark process runs during the capture, so there is no Wireshark encapsulation
number to map and no dissection cost.

Threads, not an event loop: the pipe is read on a daemon thread with blocking ``os.read``
(it returns whatever the pipe holds, so no packet waits for a buffer to fill); dumpcap's
stderr on another. pyshark's ``LiveCapture`` is given a private, never-run event loop, so
nothing touches the caller's loop: it is safe inside Jupyter's running loop. The consumer
(:meth:`LiveSource.events`) takes batches of frames from a bounded queue and, when the
interface is quiet, yields :class:`Tick` values (packet time advanced by the wall time
elapsed since the last packet) so the clock-free engine can expire idle connections.

Stopping: :meth:`LiveSource.stop` sends dumpcap SIGINT (it flushes and prints its
statistics); the reader then sees the end of the pipe and the consumer drains what is
left. :meth:`LiveSource.close` also waits for dumpcap (SIGKILL after a grace period) and
joins the threads: no dumpcap process is left behind, running or zombie. dumpcap runs in
its own session, so a Ctrl-C in the terminal reaches only us and we stop it in order.

Memory is bounded by ``LIVE_QUEUE_BATCHES`` batches of at most one pipe read each; when
the consumer falls behind, the reader blocks, dumpcap blocks on the pipe, and the kernel
drops packets, which dumpcap counts (:attr:`LiveSource.dropped`). Between the kernel and
dumpcap, the capture buffer is ``LIVE_KERNEL_BUFFER_MIB`` (dumpcap's ``-B``), not
dumpcap's default 2 MiB: the reader thread shares the interpreter with the engine, so in
a burst the pipe may go unread for some milliseconds while dumpcap waits on it.

Not here: decoding, the engine, diagnosis, output (see :mod:`analyzer.live`). This is the
only module that imports pyshark, and only when a capture starts.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, BinaryIO, cast

from analyzer.anomalies import Anomaly
from analyzer.limits import (
    LIVE_PIPE_READ,
    LIVE_QUEUE_BATCHES,
    LIVE_START_TIMEOUT,
    LIVE_STOP_TIMEOUT,
    LIVE_TICK_INTERVAL,
    MAX_FILE_ANOMALIES,
)
from analyzer.sources.base import Frame, Tick
from analyzer.sources.pcap import PCAP_MAGICS, open_pcap
from analyzer.sources.pcapng import SHB_MAGIC, open_pcapng
from analyzer.sources.stream import ByteWindow

TSHARK_PACKAGE = "tshark"
"""The Debian package that brings tshark and dumpcap."""

LIVE_KERNEL_BUFFER_MIB = 16
"""Kernel capture buffer of dumpcap (``-B``), in MiB. dumpcap's default, 2 MiB, holds about
1,300 full-size frames (half as many on ``lo``, where each packet is seen twice): a few
milliseconds of a burst, less than the reader thread may wait for its turn while the
engine runs. With the default, ``bench/live_replay.py`` lost packets replaying the small
corpus even at its real rate; with 8 MiB it lost none up to 6× in a trial run, and 16 MiB
leaves room for a busier machine. It is kernel memory, held while the capture runs."""

_EOF = object()
"""Queue item after the last batch: the pipe ended."""


class LiveCaptureError(Exception):
    """The capture could not start (or died); the message is one line for the user."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def explain_dumpcap_error(
    lines: Sequence[str],
    interface: str,
    bpf: str | None,
    *,
    otherwise: str = "dumpcap exited before capturing anything",
) -> str:
    """One line for the user from what dumpcap printed on stderr before it exited."""
    text = "\n".join(lines)
    if "There is no device named" in text or "No such device" in text:
        return f"interface {interface!r} does not exist (list the interfaces with: tshark -D)"
    if "permission to capture" in text or "Operation not permitted" in text:
        return (
            f"no permission to capture on {interface!r}: run as root, or allow your user "
            "to capture (sudo dpkg-reconfigure wireshark-common; "
            "sudo usermod -a -G wireshark $USER)"
        )
    if "Invalid capture filter" in text:
        why = re.search(r"isn't a valid capture filter \(([^)]*)\)", text)
        detail = why.group(1) if why else "not a valid capture filter"
        return f"bad BPF filter {bpf!r}: {detail}"
    for line in lines:
        if line.startswith("dumpcap:") and "cap_set_proc" not in line:
            return _one_line(line)
    quiet = ("Capturing on", "File:", "Packets captured", "Packets received/dropped")
    meaningful = [ln for ln in lines if ln.strip() and not ln.strip().startswith(quiet)]
    if meaningful:
        return "dumpcap: " + _one_line(meaningful[0])
    return otherwise


def dumpcap_command(
    interface: str, bpf: str | None, *, tshark_path: str | None = None
) -> list[str]:
    """The dumpcap command line that writes pcapng to stdout, as pyshark builds it, with
    a kernel buffer of ``LIVE_KERNEL_BUFFER_MIB``.

    Raises :class:`LiveCaptureError` when pyshark, tshark or dumpcap is missing.
    """
    import asyncio

    try:
        from pyshark import LiveCapture
        from pyshark.tshark.tshark import TSharkNotFoundException, get_process_path
    except ImportError as e:
        raise LiveCaptureError(
            "pyshark is not installed: pip install 'tls-handshake-analyzer[live]'"
        ) from e
    # A private loop that is never run: pyshark would otherwise fetch (or install) the
    # caller's event loop and child watcher.
    loop = asyncio.new_event_loop()
    try:
        capture = LiveCapture(interface=interface, bpf_filter=bpf or None,
                              tshark_path=tshark_path, eventloop=loop)
        dumpcap = get_process_path(tshark_path=tshark_path, process_name="dumpcap")
        params: list[str] = capture._get_dumpcap_parameters()
    except TSharkNotFoundException as e:
        raise LiveCaptureError(
            f"tshark/dumpcap not found: install the Debian package {TSHARK_PACKAGE} "
            f"(sudo apt-get install {TSHARK_PACKAGE})"
        ) from e
    except (OSError, subprocess.CalledProcessError, ValueError) as e:
        raise LiveCaptureError(f"tshark does not work here: {_one_line(str(e))}") from e
    finally:
        loop.close()
    # -B before any -i: the buffer of every interface.
    return [dumpcap, "-B", str(LIVE_KERNEL_BUFFER_MIB), *params]


class _Notes:
    """What the pcapng reader reports about the stream (the ``Sink`` protocol)."""

    def __init__(self) -> None:
        self.packets = 0
        self.anomalies: list[tuple[Anomaly, str]] = []

    def note(self, anomaly: Anomaly, detail: str) -> None:
        if len(self.anomalies) < MAX_FILE_ANOMALIES:
            self.anomalies.append((anomaly, detail))

    def time_backwards(self, ts: float, previous: float) -> None:
        """Live timestamps may step back slightly across CPUs; the engine copes."""


class _Pipe:
    """``read(n)`` over a pipe: whatever it holds now, blocking only when it is empty.

    Before each read it calls ``before_read`` (the reader hands over the frames parsed so
    far: a batch ends exactly where the parser has used up the available bytes). Every
    chunk is also written to ``tee`` (``--write``) as it arrives.
    """

    def __init__(
        self,
        fd: int,
        tee: IO[bytes] | None,
        before_read: Callable[[], None],
        ready: threading.Event,
    ) -> None:
        self._fd = fd
        self._tee = tee
        self._before_read = before_read
        self._ready = ready
        self._count = 0

    def read(self, size: int) -> bytes:
        self._before_read()
        chunk = os.read(self._fd, min(size, LIVE_PIPE_READ))
        if chunk:
            self._count += len(chunk)
            self._ready.set()
            if self._tee is not None:
                self._tee.write(chunk)
                self._tee.flush()
        return chunk

    def tell(self) -> int:
        return self._count


class LiveSource:
    """One dumpcap capture on ``interface`` with an optional BPF filter.

    ``start()`` returns once dumpcap is capturing (or raises :class:`LiveCaptureError`
    with one line); ``events()`` yields frames as they arrive and ticks when quiet, and
    ends after ``stop()`` once every captured frame has been yielded; ``close()`` stops
    everything and waits for it. Use as a context manager.
    """

    def __init__(
        self,
        interface: str,
        *,
        bpf: str | None = None,
        write: str | Path | None = None,
        tshark_path: str | None = None,
        tick_interval: float = LIVE_TICK_INTERVAL,
    ) -> None:
        self.interface = interface
        self.bpf = bpf
        self.write = Path(write) if write is not None else None
        self.tshark_path = tshark_path
        self.tick_interval = tick_interval
        self.notes = _Notes()
        self.stderr_lines: list[str] = []
        self.received: int | None = None
        """Packets dumpcap says it received (known after it stopped)."""
        self.dropped: int | None = None
        """Packets the kernel or dumpcap dropped (known after it stopped)."""
        self.error: str | None = None
        """Set when dumpcap stopped on its own with an error during the capture."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._tee: BinaryIO | None = None
        self._queue: queue.Queue[object] = queue.Queue(maxsize=LIVE_QUEUE_BATCHES)
        self._batch: list[Frame] = []
        self._rest: Iterator[Frame] | None = None
        """What is left of the batch a consumer was given when it stopped."""
        self._ready = threading.Event()
        self._closing = threading.Event()
        self._stopping = False
        self._stop_mono: float | None = None
        self._eof = False
        self._threads: list[threading.Thread] = []
        self._anchor_ts = 0.0
        self._anchor_mono = 0.0

    def __enter__(self) -> LiveSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        argv = dumpcap_command(self.interface, self.bpf, tshark_path=self.tshark_path)
        if self.write is not None:
            try:
                self._tee = open(self.write, "wb")  # noqa: SIM115 - closed by close()
            except OSError as e:
                raise LiveCaptureError(f"cannot write {self.write}: {e.strerror or e}") from e
        try:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, bufsize=0, start_new_session=True,
            )
        except OSError as e:
            self._close_tee()
            raise LiveCaptureError(f"cannot run {argv[0]}: {e.strerror or e}") from e
        try:
            self._wait_until_capturing(self._proc)
        except BaseException:  # an error, or Ctrl-C while waiting: leave nothing running
            self.close()
            raise
        self._anchor_ts, self._anchor_mono = time.time(), time.monotonic()

    def _wait_until_capturing(self, proc: subprocess.Popen[bytes]) -> None:
        self._anchor_ts, self._anchor_mono = time.time(), time.monotonic()
        for target, name in ((self._read_stderr, "stderr"), (self._read_frames, "frames")):
            thread = threading.Thread(target=target, name=f"tlsa-live-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        deadline = time.monotonic() + LIVE_START_TIMEOUT
        while not self._ready.wait(0.02):
            if proc.poll() is not None or time.monotonic() > deadline:
                break
        if self._ready.is_set():
            return
        timed_out = proc.poll() is None
        self.close()
        if timed_out:
            raise LiveCaptureError(
                f"dumpcap did not start capturing on {self.interface!r} "
                f"within {LIVE_START_TIMEOUT:.0f} s"
            )
        raise LiveCaptureError(explain_dumpcap_error(self.stderr_lines, self.interface, self.bpf))

    def _read_stderr(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if len(self.stderr_lines) < MAX_FILE_ANOMALIES:
                self.stderr_lines.append(line)
            found = re.search(r"received/dropped on interface '[^']*': (\d+)/(\d+)", line)
            if found:
                self.received = (self.received or 0) + int(found.group(1))
                self.dropped = (self.dropped or 0) + int(found.group(2))

    def _hand_over(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            self._put(batch)

    def _put(self, item: object) -> None:
        while not self._closing.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _read_frames(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        pipe = _Pipe(proc.stdout.fileno(), self._tee, self._hand_over, self._ready)
        window = ByteWindow(cast(BinaryIO, pipe), self.notes.note, compressed=False)
        try:
            if not window.refill(0, 4):
                return
            head = window.buf[:4]
            frames: Iterator[Frame] | str
            if head == SHB_MAGIC:
                frames = open_pcapng(window, self.notes)
            elif head in PCAP_MAGICS:
                frames = open_pcap(window, self.notes)
            else:
                frames = f"dumpcap wrote something that is not pcapng (0x{head.hex()})"
            if isinstance(frames, str):
                self.notes.note(Anomaly.FILE_BAD_MAGIC, frames)
                return
            for frame in frames:
                self._batch.append(frame)  # handed over by the pipe before it blocks
            self._hand_over()
        finally:
            self._put(_EOF)

    # ------------------------------------------------------------------ consume

    def events(self) -> Iterator[Frame | Tick]:
        """Frames as they arrive; a :class:`Tick` at least every ``tick_interval`` of wall
        time. Ends once the capture stopped and every frame was yielded."""
        get = self._queue.get
        interval = self.tick_interval
        last_tick = time.monotonic()
        if self._rest is not None:
            # The previous consumer stopped in the middle of a batch (Ctrl-C): go on.
            yield from self._rest
            self._rest = None
        while not self._eof:
            try:
                item = get(timeout=interval)
            except queue.Empty:
                item = None
                self._kill_if_stuck()
            if item is _EOF:
                self._eof = True
                self._note_unexpected_end()
                break
            now = time.monotonic()
            if item is not None:
                batch = cast(list[Frame], item)
                self._rest = rest = iter(batch)
                yield from rest
                self._rest = None
                self._anchor_ts, self._anchor_mono = batch[-1].ts, now
            if now - last_tick >= interval:
                last_tick = now
                yield Tick(self._anchor_ts + (now - self._anchor_mono))

    def packet_time(self) -> float:
        """Packet time now: the last packet's timestamp plus the wall time since."""
        return self._anchor_ts + (time.monotonic() - self._anchor_mono)

    def _note_unexpected_end(self) -> None:
        if self._stopping or self._proc is None:
            return
        # dumpcap ended without being asked: say why (interface gone, disk, a crash).
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(LIVE_STOP_TIMEOUT)
        self._threads[0].join(LIVE_STOP_TIMEOUT)
        status = self._proc.poll()
        self.error = explain_dumpcap_error(
            self.stderr_lines, self.interface, self.bpf,
            otherwise=f"dumpcap exited unexpectedly (status {status})",
        )

    # ------------------------------------------------------------------ stop

    def _kill_if_stuck(self) -> None:
        proc = self._proc
        if (
            self._stop_mono is not None
            and time.monotonic() - self._stop_mono > LIVE_STOP_TIMEOUT
            and proc is not None
            and proc.poll() is None
        ):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    @property
    def stopping(self) -> bool:
        """:meth:`stop` was called."""
        return self._stopping

    def stop(self) -> None:
        """Ask dumpcap to stop (SIGINT: it flushes and reports); do not wait."""
        self._stopping = True
        if self._stop_mono is None:
            self._stop_mono = time.monotonic()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)

    def close(self) -> None:
        """Stop dumpcap and wait for it (SIGKILL after a grace period); join the threads.
        Frames not consumed yet are dropped. Idempotent."""
        self.stop()
        proc = self._proc
        if proc is not None:
            try:
                proc.wait(LIVE_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._closing.set()
        for thread in self._threads:
            thread.join(LIVE_STOP_TIMEOUT)
        if proc is not None:
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        self._close_tee()

    def _close_tee(self) -> None:
        if self._tee is not None:
            with contextlib.suppress(OSError):
                self._tee.close()
            self._tee = None

    @property
    def frames(self) -> int:
        """Frames read from dumpcap so far."""
        return self.notes.packets

"""Capture files: which paths to read, and a streaming reader for each.

:func:`expand_paths` turns command-line inputs (files, directories, glob patterns) into
a sorted list of files plus one-line errors for inputs that name nothing.

:class:`CaptureReader` opens one file, recognises its format by its magic number (pcap,
pcapng, or either compressed with gzip, RFC 1952), and yields :class:`Frame` values
while reading the file in large chunks, so memory stays constant whatever the file
size. It never raises for bad content or operating system errors: a file that cannot be
read at all gets a one-line ``error``; problems inside a readable file are listed in
``anomalies`` and every good packet before and after them is still yielded.

Not here: the record formats themselves (:mod:`analyzer.sources.pcap`,
:mod:`analyzer.sources.pcapng`), live capture, decoding of the frames.
"""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from analyzer.anomalies import Anomaly
from analyzer.limits import MAX_FILE_ANOMALIES
from analyzer.sources.base import Frame, FrameFilter
from analyzer.sources.pcap import PCAP_MAGICS, open_pcap
from analyzer.sources.pcapng import SHB_MAGIC, SecretsSink, open_pcapng
from analyzer.sources.stream import GZIP_MAGIC, ByteWindow
from analyzer.text import os_error

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".gz")
"""Files picked from directories (``.gz`` covers ``.pcap.gz`` and ``.pcapng.gz``)."""

_GLOB_CHARS = frozenset("*?[")

_OTHER_FORMATS = {
    b"\x28\xb5\x2f\xfd": "zstd-compressed; only gzip compression is read",
    b"\xfd\x37\x7a\x58": "xz-compressed; only gzip compression is read",
    b"\x04\x22\x4d\x18": "lz4-compressed; only gzip compression is read",
    b"\x50\x4b\x03\x04": "a zip archive",
}
"""Magic numbers worth naming in the error for a file we cannot read."""


def _is_capture_name(path: Path) -> bool:
    return path.name.lower().endswith(CAPTURE_SUFFIXES)


def _walk(directory: Path, errors: list[str]) -> list[Path]:
    found: list[Path] = []

    def on_error(exc: OSError) -> None:
        errors.append(f"{exc.filename or directory}: {exc.strerror or exc}")

    for root, dirs, files in os.walk(directory, onerror=on_error):
        dirs.sort()
        found.extend(Path(root, name) for name in sorted(files) if _is_capture_name(Path(name)))
    return found


def expand_paths(paths: Sequence[str | Path]) -> tuple[list[Path], list[str]]:
    """Files to read for the given inputs, and one-line errors for inputs naming nothing.

    A file is taken whatever its name. A directory is searched recursively, in sorted
    order, for files named like captures (``CAPTURE_SUFFIXES``); other files (READMEs,
    manifests) are left out. A pattern with ``*``, ``?`` or ``[`` is expanded like the
    shell would (``**`` crosses directories); matching directories are searched as above.
    The result keeps the order of the inputs, without duplicates.
    """
    result: list[Path] = []
    errors: list[str] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = Path(os.path.abspath(path))
        if key not in seen:
            seen.add(key)
            result.append(path)

    for raw in paths:
        text = os.fspath(raw)
        path = Path(text)
        if path.is_dir():
            found = _walk(path, errors)
            if not found:
                errors.append(f"{text}: no capture files (*.pcap, *.pcapng, *.cap, *.gz)")
            for item in found:
                add(item)
        elif path.exists():
            add(path)
        elif _GLOB_CHARS & set(text):
            matches = sorted(glob.glob(text, recursive=True))
            files: list[Path] = []
            for match in matches:
                if os.path.isdir(match):
                    files.extend(_walk(Path(match), errors))
                else:
                    files.append(Path(match))
            if not files:
                errors.append(f"{text}: no files match")
            for item in files:
                add(item)
        else:
            errors.append(f"{text}: no such file or directory")
    return result, errors


class CaptureReader:
    """Streams the frames of one pcap/pcapng file, plain or gzip-compressed.

    ``error`` is known right after construction (the file is probed and closed again)
    and set again if iteration finds the file unreadable; iterating an unreadable file
    yields nothing. Each iteration reads the file from the start and resets ``packets``
    and ``anomalies``. With ``secrets`` (e.g. a :class:`analyzer.tls.keylog.KeyLog`), the
    TLS key logs of a pcapng's Decryption Secrets Blocks go there as the reading reaches
    them, before the packets that follow.
    """

    def __init__(self, path: str | Path, *, secrets: SecretsSink | None = None) -> None:
        self.path = Path(path)
        self.name = os.fspath(path)
        self.secrets = secrets
        self.keep: FrameFilter | None = None
        """When set, iteration yields only the frames it accepts (every frame is still read,
        counted and checked for time order)."""
        self.error: str | None = None
        """One line, naming the file, when it cannot be read at all."""
        self.anomalies: list[tuple[Anomaly, str]] = []
        """File-level problems found while reading, each with a one-line detail."""
        self.packets = 0
        """Frames yielded so far."""
        self.format: str | None = None
        """``"pcap"`` or ``"pcapng"`` once recognised."""
        self.compressed = False
        """The file is gzip-compressed."""
        self.size: int | None = None
        """Size of the file in bytes (compressed size for gzip), if it is a regular file."""
        self._raw: BinaryIO | None = None
        self._position = 0
        self._backwards = 0
        self._backwards_index = -1
        self._first_backwards = (0.0, 0.0, 0)
        try:
            st = os.stat(path)
        except OSError:
            pass
        else:
            if os.path.isfile(path):
                self.size = st.st_size
        self._probe()

    def __repr__(self) -> str:
        return f"CaptureReader({self.name!r}, format={self.format!r}, packets={self.packets})"

    # -- reporting, as seen by the format readers ------------------------------------

    def note(self, anomaly: Anomaly, detail: str) -> None:
        """Record a file-level anomaly (at most ``MAX_FILE_ANOMALIES`` are kept)."""
        if len(self.anomalies) < MAX_FILE_ANOMALIES:
            self.anomalies.append((anomaly, detail))

    def time_backwards(self, ts: float, previous: float) -> None:
        """Count packets earlier than their predecessor; the first one is reported with
        detail, the total is filled in when the file ends."""
        self._backwards += 1
        if self._backwards == 1 and len(self.anomalies) < MAX_FILE_ANOMALIES:
            self._backwards_index = len(self.anomalies)
            self._first_backwards = (ts, previous, self.packets + 1)
            self.note(Anomaly.TIME_BACKWARDS, self._backwards_detail(ts, previous))

    def _backwards_detail(self, ts: float, previous: float, number: int | None = None) -> str:
        packet = self.packets + 1 if number is None else number
        detail = f"packet {packet} is {previous - ts:.6f} s earlier than the one before it"
        if self._backwards > 1:
            detail += f" ({self._backwards} packets in all)"
        return detail

    def position(self) -> int:
        """Bytes of the file read so far (compressed bytes for gzip), for progress bars."""
        if self._raw is not None:
            with contextlib.suppress(OSError, ValueError):
                self._position = self._raw.tell()
        return self._position

    # -- reading -----------------------------------------------------------------------

    def _open(self) -> tuple[BinaryIO, Iterator[Frame]] | str:
        """Open the file and read its header: (file, frames) or a one-line error."""
        try:
            raw = self._open_raw()
        except OSError as exc:
            return f"{self.name}: {os_error(exc)}"
        try:
            head = raw.read(4)
            raw.seek(0)
        except OSError as exc:
            raw.close()
            return f"{self.name}: {os_error(exc)}"
        compressed = head[:2] == GZIP_MAGIC
        window = ByteWindow(raw, self.note, compressed=compressed)
        if compressed:
            window.refill(0, 4)
            head = window.buf[:4]
            if len(head) < 4:
                raw.close()
                if self.anomalies:  # the decompressor failed: say why
                    return f"{self.name}: {self.anomalies[-1][1]}"
                return f"{self.name}: gzip content too short for a capture file"
        frames: Iterator[Frame] | str
        if head in PCAP_MAGICS:
            self.format = "pcap"
            frames = open_pcap(window, self, self.keep)
        elif head == SHB_MAGIC:
            self.format = "pcapng"
            frames = open_pcapng(window, self, self.secrets, self.name, self.keep)
        else:
            raw.close()
            if not head:
                return f"{self.name}: empty file"
            inside = "gzip content is" if compressed else "file is"
            what = _OTHER_FORMATS.get(head, "not a pcap/pcapng file")
            return f"{self.name}: {inside} {what} (magic 0x{head.hex()})"
        self.compressed = compressed
        if isinstance(frames, str):
            raw.close()
            return f"{self.name}: {frames}"
        return raw, frames

    def _open_raw(self) -> BinaryIO:
        """The file's bytes, from the start (a subclass may read them from elsewhere,
        e.g. object storage in :mod:`analyzer.scale.work`)."""
        return open(self.path, "rb")  # closed by the caller

    def _probe(self) -> None:
        opened = self._open()
        self.anomalies.clear()  # the error says it all; anything else comes again when read
        if isinstance(opened, str):
            self.error = opened
            return
        raw, _frames = opened
        raw.close()

    def __iter__(self) -> Iterator[Frame]:
        return self._frames()

    def _frames(self) -> Iterator[Frame]:
        self.packets = 0
        self.anomalies = []
        self._backwards = 0
        self._backwards_index = -1
        self._position = 0
        opened = self._open()
        if isinstance(opened, str):
            self.error = opened
            self.anomalies.clear()  # the error says it all
            return
        self.error = None
        raw, frames = opened
        self._raw = raw
        try:
            yield from frames
        finally:
            self.position()
            self._raw = None
            raw.close()
            if self._backwards > 1 and self._backwards_index >= 0:
                ts, previous, number = self._first_backwards
                self.anomalies[self._backwards_index] = (
                    Anomaly.TIME_BACKWARDS,
                    self._backwards_detail(ts, previous, number),
                )

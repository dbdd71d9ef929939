"""A sliding window of bytes over a capture file, plain or gzip-compressed.

The readers in :mod:`analyzer.sources.pcap` and :mod:`analyzer.sources.pcapng` walk
``window.buf`` with ``struct.unpack_from`` and ask for a refill only when a record runs
past its end, so the file is read in large chunks (``READ_CHUNK``) and never as a whole:
memory stays bounded whatever the file size.

gzip (RFC 1952) is decompressed here with :mod:`zlib`, member after member, with the
output of every call bounded (a small compressed file cannot blow up memory) and no
temporary files. Read and decompression failures do not raise: they are reported once
through the ``note`` callback and the window then behaves as if the file had ended.

This module knows nothing about capture formats.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import BinaryIO, Protocol

from analyzer.anomalies import Anomaly
from analyzer.limits import GZIP_INPUT_CHUNK, READ_CHUNK

Note = Callable[[Anomaly, str], None]
"""Receives a file-level anomaly and a one-line detail."""


class Sink(Protocol):
    """What a format reader reports to while it walks a file."""

    packets: int
    """Frames yielded so far; readers increment it per frame."""

    def note(self, anomaly: Anomaly, detail: str) -> None:
        """Record a file-level anomaly with a one-line detail."""

    def time_backwards(self, ts: float, previous: float) -> None:
        """Called when a frame's timestamp is earlier than its predecessor's."""


GZIP_MAGIC = b"\x1f\x8b"


def _salvage(decompressor: zlib._Decompress, data: bytes, limit: int) -> bytes:
    """Decompress ``data`` in small steps up to the point where it fails: what a single
    failing call would have thrown away."""
    parts: list[bytes] = []
    step = 512
    for at in range(0, len(data), step):
        if limit <= 0:
            break
        try:
            out = decompressor.decompress(data[at : at + step], limit)
        except zlib.error:
            break
        parts.append(out)
        limit -= len(out)
        if decompressor.unconsumed_tail:
            break
    return b"".join(parts)


class _GzipSource:
    """Decompresses a gzip file (possibly several concatenated members) chunk by chunk."""

    def __init__(self, raw: BinaryIO, note: Note) -> None:
        self._raw = raw
        self._note = note
        self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""
        """Compressed bytes read from the file but not yet given to the decompressor."""
        self._raw_eof = False
        self._finished = False
        self.failed = False

    def _more_input(self) -> bytes:
        if self._raw_eof:
            return b""
        chunk = self._raw.read(GZIP_INPUT_CHUNK)
        if not chunk:
            self._raw_eof = True
        return chunk

    def _next_member(self) -> bool:
        """After a member's end: start the next one, or decide the file is over."""
        rest = self._pending
        while True:
            rest = rest.lstrip(b"\x00")  # zero padding after the last member is common
            if len(rest) >= len(GZIP_MAGIC) or self._raw_eof:
                break
            rest += self._more_input()
        if not rest:
            return False
        if not rest.startswith(GZIP_MAGIC):
            self._note(
                Anomaly.FILE_CORRUPT_BLOCK,
                "data after the end of the gzip stream is not gzip; ignored",
            )
            return False
        self._pending = rest
        self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return True

    def read(self, size: int) -> bytes:
        """Up to ``size`` decompressed bytes; ``b""`` at the end (or after a failure)."""
        parts: list[bytes] = []
        got = 0
        while got < size and not self.failed and not self._finished:
            if self._zlib.eof and not self._next_member():
                self._finished = True
                break
            if not self._pending:
                self._pending = self._more_input()
                if not self._pending:
                    self._note(
                        Anomaly.FILE_TRUNCATED,
                        "the gzip stream ends before its end-of-stream marker",
                    )
                    self.failed = True
                    break
            backup = self._zlib.copy()
            try:
                out = self._zlib.decompress(self._pending, size - got)
            except zlib.error as exc:
                parts.append(_salvage(backup, self._pending, size - got))
                self._note(Anomaly.FILE_READ_ERROR, f"corrupt gzip data ({exc})")
                self.failed = True
                break
            self._pending = self._zlib.unused_data if self._zlib.eof else self._zlib.unconsumed_tail
            if out:
                parts.append(out)
                got += len(out)
        return b"".join(parts)


class ByteWindow:
    """``buf`` holds the file's bytes from offset ``base``; refill slides it forward.

    ``failed`` is set when reading stopped because of an error already reported
    (operating system error, corrupt or truncated gzip), so readers do not report the
    same end of data a second time as a truncated record.
    """

    __slots__ = ("_gzip", "_note", "_raw", "base", "buf", "eof", "failed")

    def __init__(self, raw: BinaryIO, note: Note, *, compressed: bool) -> None:
        self._raw = raw
        self._note = note
        self._gzip = _GzipSource(raw, note) if compressed else None
        self.buf = b""
        self.base = 0
        self.eof = False
        self.failed = False

    def _read(self, size: int) -> bytes:
        if self.eof:
            return b""
        try:
            chunk = self._gzip.read(size) if self._gzip is not None else self._raw.read(size)
        except OSError as exc:
            self._note(Anomaly.FILE_READ_ERROR, f"read failed: {exc.strerror or exc}")
            self.failed = True
            chunk = b""
        if self._gzip is not None and self._gzip.failed:
            self.failed = True
        if not chunk:
            self.eof = True
        return chunk

    def refill(self, pos: int, need: int) -> bool:
        """Drop ``buf[:pos]`` and read until ``need`` bytes are buffered; False at the end.

        After the call the caller's position is 0.
        """
        buf = self.buf[pos:]
        self.base += pos
        if len(buf) < need:
            parts = [buf]
            have = len(buf)
            while have < need:
                chunk = self._read(max(READ_CHUNK, need - have))
                if not chunk:
                    break
                parts.append(chunk)
                have += len(chunk)
            buf = b"".join(parts)
        self.buf = buf
        return len(buf) >= need

    def lookahead(self, pos: int, ahead: int) -> int:
        """Make ``ahead`` bytes from ``pos`` available (as far as the file has them) and
        return the caller's new position. The buffer is compacted only when it runs short,
        and then filled to twice ``ahead``, so that repeated calls while scanning forward
        copy each byte a bounded number of times."""
        if len(self.buf) - pos >= ahead or self.eof:
            return pos
        self.refill(pos, 2 * ahead)
        return 0

    def skip(self, pos: int, count: int) -> bool:
        """Drop ``count`` bytes from ``pos`` on without keeping them; False if the file
        ended first. After the call the caller's position is 0."""
        target = self.base + pos + count
        end = self.base + len(self.buf)
        while end < target:
            self.base = end
            self.buf = b""
            chunk = self._read(min(READ_CHUNK, target - end))
            if not chunk:
                return False
            self.buf = chunk
            end += len(chunk)
        self.buf = self.buf[target - self.base :]
        self.base = target
        return True

    def position(self) -> int:
        """Bytes of the underlying file read so far (compressed bytes for gzip)."""
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return 0

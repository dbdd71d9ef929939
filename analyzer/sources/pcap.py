"""Classic pcap (libpcap savefile) records, walked straight out of a byte window.

Format: a 24-byte file header (magic, version, reserved, snaplen, link type) and records
of a 16-byte header (seconds, fraction, captured length, original length) followed by
the captured bytes; draft-ietf-opsawg-pcap and pcap-savefile(5). Both byte orders, the
microsecond and nanosecond magics, and the old "modified" format of patched libpcaps
(magic 0xa1b2cd34, 24-byte record headers) are read. Only the low 16 bits of the link
type field are the link type (the rest carries FCS information we do not need).

Per frame the work is one ``unpack_from``, a slice and a tuple: no per-packet read call,
no dpkt object. A record claiming more than ``MAX_CAPLEN`` bytes is corrupt; the reader
then looks for the next plausible record (same timestamp epoch, two consecutive headers
that make sense) within ``MAX_RESYNC_SCAN`` bytes, and gives up on the rest otherwise.
A file cut in the middle of a record yields every complete record before the cut.

Not here: opening files, gzip, pcapng (see :mod:`analyzer.sources.files`,
:mod:`analyzer.sources.pcapng`).
"""

from __future__ import annotations

import struct
import types
from collections.abc import Iterator
from typing import Final, NamedTuple

from analyzer.anomalies import Anomaly
from analyzer.limits import MAX_CAPLEN, MAX_RESYNC_SCAN
from analyzer.sources.base import Frame, FrameFilter
from analyzer.sources.stream import ByteWindow, Sink

FILE_HEADER_LEN: Final = 24


class PcapVariant(NamedTuple):
    """What a pcap magic number says about the rest of the file."""

    order: str
    """``struct`` byte-order character."""
    ticks: float
    """Fraction units per second: 1e6 (microseconds) or 1e9 (nanoseconds)."""
    record_header: int
    """Bytes of each record header (16, or 24 in the modified format)."""


PCAP_MAGICS: Final[dict[bytes, PcapVariant]] = {
    b"\xd4\xc3\xb2\xa1": PcapVariant("<", 1e6, 16),
    b"\xa1\xb2\xc3\xd4": PcapVariant(">", 1e6, 16),
    b"\x4d\x3c\xb2\xa1": PcapVariant("<", 1e9, 16),
    b"\xa1\xb2\x3c\x4d": PcapVariant(">", 1e9, 16),
    b"\x34\xcd\xb2\xa1": PcapVariant("<", 1e6, 24),
    b"\xa1\xb2\xcd\x34": PcapVariant(">", 1e6, 24),
}
"""File magic (as the first four bytes of the file) -> variant."""


def open_pcap(
    window: ByteWindow, sink: Sink, keep: FrameFilter | None = None
) -> Iterator[Frame] | str:
    """Read the file header; return the frame iterator (only the frames ``keep`` accepts,
    when given), or a one-line reason the file cannot be read at all."""
    if not window.refill(0, FILE_HEADER_LEN):
        return f"truncated pcap file header ({len(window.buf)} of {FILE_HEADER_LEN} bytes)"
    variant = PCAP_MAGICS.get(window.buf[:4])
    if variant is None:
        return f"not a pcap file (magic 0x{window.buf[:4].hex()})"
    _snaplen, network = struct.unpack_from(variant.order + "II", window.buf, 16)
    return _records(window, sink, variant, network & 0xFFFF, keep)


def _records(
    window: ByteWindow, sink: Sink, variant: PcapVariant, linktype: int, keep: FrameFilter | None
) -> Iterator[Frame]:
    unpack = struct.Struct(variant.order + "IIII").unpack_from
    new = tuple.__new__
    frame_type = Frame
    ticks: float = variant.ticks
    head: int = variant.record_header
    max_caplen: int = MAX_CAPLEN
    last_ts = float("-inf")
    buf: bytes = window.buf
    end = len(buf)
    pos: int = FILE_HEADER_LEN
    little = variant.order == "<" and _COMPILED
    # Typed: native numbers in the compiled build instead of objects compared generically.
    sec: int
    frac: int
    caplen: int
    wirelen: int
    # Frames are counted here and the count given to the sink where anyone may look at
    # it: before a frame is handed over, before a time-order note, when the fast path ends.
    packets: int = sink.packets
    while True:
        # Fast path: whole records inside the buffer.
        while pos + head <= end:
            if little:  # read byte by byte: native in the compiled build, struct is a call
                sec, frac = _u32le(buf, pos), _u32le(buf, pos + 4)
                caplen, wirelen = _u32le(buf, pos + 8), _u32le(buf, pos + 12)
            else:
                sec, frac, caplen, wirelen = unpack(buf, pos)
            start = pos + head
            nxt = start + caplen
            if nxt > end or caplen > max_caplen:
                break
            ts = sec + frac / ticks
            if ts < last_ts:
                sink.packets = packets
                sink.time_backwards(ts, last_ts)
            last_ts = ts
            packets += 1
            frame = new(frame_type, (ts, linktype, buf[start:nxt], wirelen))
            if keep is None or keep(frame):
                sink.packets = packets
                yield frame
            pos = nxt
        sink.packets = packets
        # Slow path: a corrupt header, or a record running past the buffer.
        need = head
        if pos + head <= end:
            caplen = unpack(buf, pos)[2]
            if caplen > max_caplen:
                resumed = _resync(window, sink, pos, variant, caplen, last_ts)
                if resumed is None:
                    return
                pos, buf, end = resumed, window.buf, len(window.buf)
                continue
            need = head + caplen
        if not window.refill(pos, need):
            left = len(window.buf)
            if left and not window.failed:
                what = "record header" if left < head else "packet record"
                sink.note(
                    Anomaly.FILE_TRUNCATED,
                    f"file ends inside a {what} at offset {window.base} "
                    f"({left} of {need} bytes present)",
                )
            return
        pos, buf, end = 0, window.buf, len(window.buf)


def _u32le(buf: bytes, at: int) -> int:
    """The little-endian unsigned 32-bit number at ``buf[at:at + 4]``."""
    value: int = buf[at] | buf[at + 1] << 8 | buf[at + 2] << 16 | buf[at + 3] << 24
    return value


_COMPILED: Final = not isinstance(_u32le, types.FunctionType)
"""This module runs compiled: reading header bytes one at a time is then native and
cheaper than ``struct``'s call; in pure Python it is the other way round (six times
dearer), so the pure build keeps ``struct``."""


def _resync(
    window: ByteWindow, sink: Sink, pos: int, variant: PcapVariant, caplen: int, last_ts: float
) -> int | None:
    """After a corrupt record header at ``pos``: the position of the next plausible record
    in ``window.buf`` (refilled), or None when the rest of the file is given up."""
    where = window.base + pos
    claim = f"record at offset {where} claims {caplen} captured bytes (limit {MAX_CAPLEN})"
    if last_ts == float("-inf"):
        sink.note(Anomaly.FILE_CORRUPT_BLOCK, f"{claim}; rest of the file skipped")
        return None
    head = variant.record_header
    pos = window.lookahead(pos, MAX_RESYNC_SCAN + 2 * (head + MAX_CAPLEN))
    buf = window.buf
    unpack = struct.Struct(variant.order + "IIII").unpack_from
    # Records close in time share the top 16 bits of their seconds: search for those.
    sec_bytes = struct.pack(variant.order + "I", int(last_ts) & 0xFFFFFFFF)
    key, key_at = (sec_bytes[2:], 2) if variant.order == "<" else (sec_bytes[:2], 0)

    def plausible(at: int) -> bool:
        if at == len(buf) and window.eof:
            return True
        if at + head > len(buf):
            return False
        _sec, frac, cap, wire = unpack(buf, at)
        return bool(frac < variant.ticks and cap <= wire and cap <= MAX_CAPLEN)

    limit = min(len(buf), pos + MAX_RESYNC_SCAN)
    found = buf.find(key, pos + 1 + key_at)
    while 0 <= found < limit:
        at = found - key_at
        if plausible(at) and at + head <= len(buf):
            nxt = at + head + unpack(buf, at)[2]
            if plausible(nxt):
                sink.note(
                    Anomaly.FILE_CORRUPT_BLOCK,
                    f"{claim}; skipped {at - pos} bytes to the next plausible record",
                )
                return at
        found = buf.find(key, found + 1)
    sink.note(
        Anomaly.FILE_CORRUPT_BLOCK,
        f"{claim}; no plausible record follows, rest of the file skipped",
    )
    return None

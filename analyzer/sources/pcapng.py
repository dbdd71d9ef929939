"""pcapng blocks, walked straight out of a byte window.

Format: draft-ietf-opsawg-pcapng. A file is one or more sections; each starts with a
Section Header Block (SHB) whose byte-order magic sets the byte order of the section,
then Interface Description Blocks (IDB, one per interface: link type, snaplen, options
``if_tsresol`` (§4.2, decimal or binary resolution) and ``if_tsoffset``) and packet
blocks: Enhanced (EPB, §4.3), Simple (SPB, §4.4, no timestamp: it takes the previous
packet's) and the obsolete Packet Block (Appendix A). Every other block (name
resolution, statistics, custom, unknown) is skipped without being buffered.

Decryption Secrets Blocks (DSB, §4.7) of type TLS key log (``TLSK``) are handed, as
text and in file order, to the :class:`SecretsSink` the caller gives (a
:class:`analyzer.tls.keylog.KeyLog`), so a block in the middle of a file unlocks the
packets after it. Without a sink, and for other secrets types (WireGuard, SSH, ...),
they are skipped like any other block; one longer than ``MAX_SECRETS_BLOCK`` is skipped
and reported.

Per EPB the work is one ``unpack_from``, the trailing-length check, a slice and a tuple.
A block with impossible lengths (too small, not a multiple of 4, too large, leading and
trailing lengths that differ, a packet longer than its block) is corrupt: the reader
searches the next plausible block (a known type whose two lengths agree) within
``MAX_RESYNC_SCAN`` bytes and gives up on the rest otherwise. A packet on an interface
the section never described is skipped and reported once per interface.

Not here: options other than the two timestamp ones, per-packet flags and comments.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator
from typing import Final, NamedTuple, Protocol

from analyzer.anomalies import Anomaly
from analyzer.limits import (
    MAX_CAPLEN,
    MAX_PCAPNG_BLOCK,
    MAX_PCAPNG_INTERFACES,
    MAX_PCAPNG_PARSED_BLOCK,
    MAX_RESYNC_SCAN,
    MAX_SECRETS_BLOCK,
)
from analyzer.sources.base import Frame, FrameFilter
from analyzer.sources.stream import ByteWindow, Sink

SHB_MAGIC: Final = b"\x0a\x0d\x0d\x0a"
SHB: Final = 0x0A0D0D0A
IDB: Final = 0x00000001
PB: Final = 0x00000002
SPB: Final = 0x00000003
EPB: Final = 0x00000006
DSB: Final = 0x0000000A
BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D

OPT_ENDOFOPT: Final = 0
IF_TSRESOL: Final = 9
IF_TSOFFSET: Final = 14

MIN_BLOCK_LEN: Final = {SHB: 28, IDB: 20, PB: 32, SPB: 16, EPB: 32}
"""Smallest legal total length per parsed block type (other blocks: 12)."""

DSB_HEADER: Final = 16
"""Block type, total length, secrets type, secrets length."""
SECRETS_TLS_KEY_LOG: Final = 0x544C534B
"""DSB secrets type ``TLSK``: NSS key log text (§4.7)."""

_RESYNC_TYPES: Final = {
    "<": re.compile(rb"[\x01-\x06]\x00\x00\x00|\x0a\x0d\x0d\x0a"),
    ">": re.compile(rb"\x00\x00\x00[\x01-\x06]|\x0a\x0d\x0d\x0a"),
}
"""Where a block of a standard type may start, per byte order (candidates for resync)."""


class Interface(NamedTuple):
    """What an IDB says about its packets."""

    linktype: int
    ticks: float
    """Timestamp units per second (from ``if_tsresol``; 10**6 by default)."""
    offset: int
    """Seconds added to every timestamp (``if_tsoffset``)."""
    snaplen: int


class SecretsSink(Protocol):
    """Receives the text of each TLS key log Decryption Secrets Block."""

    def add_text(self, text: str, *, source: str) -> object:
        """Take the block's key log lines; ``source`` names the file and block."""


def section_byte_order(magic: bytes) -> str | None:
    """``struct`` byte-order character for an SHB byte-order magic, or None."""
    if magic == b"\x4d\x3c\x2b\x1a":
        return "<"
    if magic == b"\x1a\x2b\x3c\x4d":
        return ">"
    return None


def open_pcapng(
    window: ByteWindow,
    sink: Sink,
    secrets: SecretsSink | None = None,
    source: str = "pcapng",
    keep: FrameFilter | None = None,
) -> Iterator[Frame] | str:
    """Check the first section header; return the frame iterator (only the frames ``keep``
    accepts, when given), or a one-line reason the file cannot be read at all. TLS key log
    secrets blocks go to ``secrets`` as the walk reaches them; ``source`` names the file in
    what they report."""
    if not window.refill(0, 12):
        return f"truncated pcapng section header block ({len(window.buf)} bytes)"
    buf = window.buf
    order = section_byte_order(buf[8:12])
    if order is None:
        return f"pcapng section header has an unknown byte-order magic 0x{buf[8:12].hex()}"
    (length,) = struct.unpack_from(order + "I", buf, 4)
    if length < MIN_BLOCK_LEN[SHB] or length % 4 or length > MAX_PCAPNG_PARSED_BLOCK:
        return f"corrupt pcapng section header block (length {length})"
    if not window.refill(0, length):
        return f"truncated pcapng section header block ({len(window.buf)} of {length} bytes)"
    buf = window.buf
    if struct.unpack_from(order + "I", buf, length - 4)[0] != length:
        return "corrupt pcapng section header block (leading and trailing lengths differ)"
    major, minor = struct.unpack_from(order + "HH", buf, 12)
    if major != 1:
        return f"unsupported pcapng version {major}.{minor}"
    return _Walker(window, sink, secrets, source, keep).frames()


def parse_interface(buf: bytes, pos: int, length: int, order: str) -> Interface | None:
    """The IDB at ``pos`` (whole block in ``buf``); None when its options do not fit."""
    linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", buf, pos + 8)
    ticks = 1e6
    offset = 0
    at = pos + 16
    stop = pos + length - 4
    while at + 4 <= stop:
        code, size = struct.unpack_from(order + "HH", buf, at)
        if code == OPT_ENDOFOPT:
            break
        value = at + 4
        if value + size > stop:
            return None
        if code == IF_TSRESOL and size >= 1:
            resol = buf[value]
            ticks = 2.0 ** (resol & 0x7F) if resol & 0x80 else 10.0**resol
        elif code == IF_TSOFFSET and size >= 8:
            (offset,) = struct.unpack_from(order + "q", buf, value)
        at = value + size + (-size % 4)
    return Interface(linktype, ticks, offset, snaplen)


class _Walker:
    """State of one walk over a pcapng file: byte order and interfaces of the section."""

    def __init__(
        self,
        window: ByteWindow,
        sink: Sink,
        secrets: SecretsSink | None,
        source: str,
        keep: FrameFilter | None,
    ) -> None:
        self.window = window
        self.keep = keep
        self.sink = sink
        self.secrets = secrets
        self.source = source
        self.order = "<"
        self.epb: Callable[[bytes, int], tuple[int, ...]] = struct.Struct("<7I").unpack_from
        self.u32: Callable[[bytes, int], tuple[int, ...]] = struct.Struct("<I").unpack_from
        self.interfaces: list[Interface] = []
        self.section = 0
        self.too_many = False
        self.last_ts = float("-inf")
        self.reported: set[tuple[int, int]] = set()
        """(section, interface) pairs already reported as unknown."""

    def frames(self) -> Iterator[Frame]:
        window = self.window
        sink = self.sink
        new = tuple.__new__
        frame_type = Frame
        max_caplen = MAX_CAPLEN
        keep = self.keep
        pos = 0
        buf = window.buf
        end = len(buf)
        while True:
            # Fast path: EPBs on a known interface, whole inside the buffer.
            epb = self.epb
            u32 = self.u32
            interfaces = self.interfaces
            count = len(interfaces)
            last_ts = self.last_ts
            while pos + 28 <= end:
                btype, length, iface, high, low, caplen, wirelen = epb(buf, pos)
                nxt = pos + length
                if (
                    btype != EPB
                    or nxt > end
                    or caplen + 32 > length
                    or caplen > max_caplen
                    or iface >= count
                    or length & 3
                    or u32(buf, nxt - 4)[0] != length
                ):
                    break
                linktype, ticks, offset, _snaplen = interfaces[iface]
                ts = ((high << 32) | low) / ticks + offset
                if ts < last_ts:
                    sink.time_backwards(ts, last_ts)
                last_ts = ts
                sink.packets += 1
                read = new(frame_type, (ts, linktype, buf[pos + 28 : pos + 28 + caplen], wirelen))
                if keep is None or keep(read):
                    yield read
                pos = nxt
            self.last_ts = last_ts
            # Slow path: any other block, a refill, corruption or the end.
            step = self._block(pos)
            if step is None:
                return
            pos, frame = step
            buf = window.buf
            end = len(buf)
            if frame is not None:
                if frame.ts < self.last_ts:
                    sink.time_backwards(frame.ts, self.last_ts)
                self.last_ts = frame.ts
                sink.packets += 1
                if keep is None or keep(frame):
                    yield frame

    def _set_order(self, order: str) -> None:
        self.order = order
        self.epb = struct.Struct(order + "7I").unpack_from
        self.u32 = struct.Struct(order + "I").unpack_from

    def _end(self, need: int) -> None:
        """The file ended before ``need`` bytes of the block at the window's start."""
        left = len(self.window.buf)
        if left and not self.window.failed:
            self.sink.note(
                Anomaly.FILE_TRUNCATED,
                f"file ends inside a block at offset {self.window.base} "
                f"({left} of {need} bytes present)",
            )

    def _block(self, pos: int) -> tuple[int, Frame | None] | None:
        """Handle the block at ``pos``: (next position, frame or None), or None to stop."""
        window = self.window
        if len(window.buf) - pos < 12:
            if not window.refill(pos, 12):
                self._end(12)
                return None
            pos = 0
        buf = window.buf
        order = self.order
        btype, length = struct.unpack_from(order + "II", buf, pos)
        where = window.base + pos
        if btype == SHB:
            new_order = section_byte_order(buf[pos + 8 : pos + 12])
            if new_order is None:
                return self._corrupt(pos, f"section header at offset {where}: bad byte order")
            order = new_order
            (length,) = struct.unpack_from(order + "I", buf, pos + 4)
        parsed = btype in MIN_BLOCK_LEN
        if (
            length < MIN_BLOCK_LEN.get(btype, 12)
            or length % 4
            or length > (MAX_PCAPNG_PARSED_BLOCK if parsed else MAX_PCAPNG_BLOCK)
        ):
            return self._corrupt(pos, f"block 0x{btype:x} at offset {where} has length {length}")
        secrets = self.secrets if btype == DSB else None
        if secrets is not None and length > MAX_SECRETS_BLOCK:
            secrets = None
            self.sink.note(
                Anomaly.SECRETS_BLOCK_SKIPPED,
                f"decryption secrets block at offset {where} has {length} bytes, "
                f"more than {MAX_SECRETS_BLOCK}; skipped",
            )
        if not parsed and secrets is None and pos + length > len(buf):
            return self._skip_large(pos, btype, length)
        if pos + length > len(buf):
            if not window.refill(pos, length):
                self._end(length)
                return None
            pos = 0
            buf = window.buf
        if struct.unpack_from(order + "I", buf, pos + length - 4)[0] != length:
            return self._corrupt(
                pos, f"block 0x{btype:x} at offset {where}: leading and trailing lengths differ"
            )
        nxt = pos + length
        if btype == SHB:
            major, minor = struct.unpack_from(order + "HH", buf, pos + 12)
            if major != 1:
                return self._corrupt(pos, f"section at offset {where} has version {major}.{minor}")
            self._set_order(order)
            self.interfaces = []
            self.too_many = False
            self.section += 1
        elif btype == IDB:
            self._add_interface(buf, pos, length, where)
        elif btype in (EPB, PB, SPB):
            return self._packet(buf, pos, btype, length, where)
        elif secrets is not None:
            self._secrets_block(secrets, buf, pos, length, where)
        return nxt, None

    def _add_interface(self, buf: bytes, pos: int, length: int, where: int) -> None:
        interface = parse_interface(buf, pos, length, self.order)
        if interface is None:
            self.sink.note(
                Anomaly.FILE_CORRUPT_BLOCK,
                f"interface block at offset {where} has malformed options; defaults used",
            )
            linktype, _reserved, snaplen = struct.unpack_from(self.order + "HHI", buf, pos + 8)
            interface = Interface(linktype, 1e6, 0, snaplen)
        if len(self.interfaces) < MAX_PCAPNG_INTERFACES:
            self.interfaces.append(interface)
        elif not self.too_many:
            self.too_many = True
            self.sink.note(
                Anomaly.FILE_CORRUPT_BLOCK,
                f"more than {MAX_PCAPNG_INTERFACES} interfaces in one section; "
                "the rest are ignored",
            )

    def _secrets_block(
        self, secrets: SecretsSink, buf: bytes, pos: int, length: int, where: int
    ) -> None:
        """Hand a TLS key log DSB's text to the secrets sink; other types are skipped."""
        if length < DSB_HEADER + 4:
            self.sink.note(Anomaly.SECRETS_BLOCK_SKIPPED,
                           f"decryption secrets block at offset {where} is too short")
            return
        kind, size = struct.unpack_from(self.order + "II", buf, pos + 8)
        if kind != SECRETS_TLS_KEY_LOG:
            return
        if DSB_HEADER + size + 4 > length:
            self.sink.note(
                Anomaly.SECRETS_BLOCK_SKIPPED,
                f"decryption secrets block at offset {where} claims {size} bytes of secrets "
                f"in a block of {length}",
            )
            return
        data = buf[pos + DSB_HEADER : pos + DSB_HEADER + size]
        secrets.add_text(data.decode("utf-8", "replace"),
                              source=f"{self.source}, secrets block at offset {where}")

    def _packet(
        self, buf: bytes, pos: int, btype: int, length: int, where: int
    ) -> tuple[int, Frame | None] | None:
        order = self.order
        nxt = pos + length
        if btype == SPB:
            iface = 0
            (wirelen,) = struct.unpack_from(order + "I", buf, pos + 8)
            start = pos + 12
            caplen = min(wirelen, length - 16)
        elif btype == EPB:
            iface, high, low, caplen, wirelen = struct.unpack_from(order + "5I", buf, pos + 8)
            start = pos + 28
        else:
            iface, _drops, high, low, caplen, wirelen = struct.unpack_from(
                order + "HH4I", buf, pos + 8
            )
            start = pos + 28
        if caplen > MAX_CAPLEN or start + caplen > nxt - 4:
            return self._corrupt(
                pos, f"packet block at offset {where} claims {caplen} captured bytes"
            )
        if iface >= len(self.interfaces):
            key = (self.section, iface)
            if key not in self.reported:
                self.reported.add(key)
                self.sink.note(
                    Anomaly.FILE_UNKNOWN_INTERFACE,
                    f"packet block at offset {where} refers to interface {iface}, "
                    f"but section {self.section} describes {len(self.interfaces)}",
                )
            return nxt, None
        interface = self.interfaces[iface]
        if btype == SPB:
            if interface.snaplen:
                caplen = min(caplen, interface.snaplen)
            ts = self.last_ts if self.last_ts != float("-inf") else 0.0
        else:
            ts = ((high << 32) | low) / interface.ticks + interface.offset
        return nxt, Frame(ts, interface.linktype, buf[start : start + caplen], wirelen)

    def _skip_large(self, pos: int, btype: int, length: int) -> tuple[int, None] | None:
        """Skip a non-packet block larger than the buffer without keeping it."""
        window = self.window
        where = window.base + pos
        if not window.skip(pos, length - 4) or not window.refill(0, 4):
            if not window.failed:
                self.sink.note(
                    Anomaly.FILE_TRUNCATED,
                    f"file ends inside block 0x{btype:x} at offset {where} ({length} bytes)",
                )
            return None
        if self.u32(window.buf, 0)[0] != length:
            return self._corrupt(
                0, f"block 0x{btype:x} at offset {where}: leading and trailing lengths differ"
            )
        return 4, None

    def _corrupt(self, pos: int, detail: str) -> tuple[int, None] | None:
        """Report a corrupt block at ``pos`` and find the next plausible one."""
        window = self.window
        pos = window.lookahead(pos, MAX_RESYNC_SCAN + MAX_PCAPNG_PARSED_BLOCK)
        buf = window.buf
        limit = min(len(buf), pos + MAX_RESYNC_SCAN)
        for match in _RESYNC_TYPES[self.order].finditer(buf, pos + 1, limit):
            at = match.start()
            if self._plausible(buf, at):
                self.sink.note(
                    Anomaly.FILE_CORRUPT_BLOCK,
                    f"{detail}; skipped {at - pos} bytes to the next plausible block",
                )
                return at, None
        self.sink.note(
            Anomaly.FILE_CORRUPT_BLOCK,
            f"{detail}; no plausible block follows, rest of the file skipped",
        )
        return None

    def _plausible(self, buf: bytes, at: int) -> bool:
        """Does a block that could be parsed start at ``at``, whole inside ``buf``?"""
        if at + 12 > len(buf):
            return False
        order = self.order
        if buf[at : at + 4] == SHB_MAGIC:
            shb_order = section_byte_order(buf[at + 8 : at + 12])
            if shb_order is None:
                return False
            order = shb_order
        btype, length = struct.unpack_from(order + "II", buf, at)
        if (
            length < MIN_BLOCK_LEN.get(btype, 12)
            or length % 4
            or length > MAX_PCAPNG_PARSED_BLOCK
            or at + length > len(buf)
        ):
            return False
        if struct.unpack_from(order + "I", buf, at + length - 4)[0] != length:
            return False
        if btype in (EPB, PB):
            caplen: int = struct.unpack_from(order + "I", buf, at + 20)[0]
            return bool(caplen + 32 <= length)
        return True

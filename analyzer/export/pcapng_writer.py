"""pcapng blocks written with ``struct``: Section Header, Interface Description, Enhanced
Packet (with an ``opt_comment``) and Decryption Secrets blocks.

Format: draft-ietf-opsawg-pcapng §4.1 (SHB), §4.2 (IDB), §4.3 (EPB), §4.7 (DSB), §3.5
(options: code, length, value padded to 32 bits, ``opt_endofopt``). Everything is written
little-endian in one section of unknown length. Timestamps are microseconds (the IDB's
default ``if_tsresol``): a frame's float timestamp holds a microsecond exactly, not a
nanosecond.

Not here: which packets to write (:mod:`analyzer.export.wireshark`), reading pcapng
(:mod:`analyzer.sources.pcapng`).
"""

from __future__ import annotations

import struct
from typing import BinaryIO

SHB = 0x0A0D0D0A
IDB = 0x00000001
EPB = 0x00000006
DSB = 0x0000000A
BYTE_ORDER_MAGIC = 0x1A2B3C4D

OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_USERAPPL = 4
SECRETS_TLS_KEY_LOG = 0x544C534B
"""DSB secrets type ``TLSK``: NSS key log lines (§4.7)."""

_USEC = 1_000_000


def _pad(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def _options(options: list[tuple[int, bytes]]) -> bytes:
    if not options:
        return b""
    out = b"".join(struct.pack("<HH", code, len(value)) + _pad(value) for code, value in options)
    return out + struct.pack("<HH", OPT_ENDOFOPT, 0)


def _block(btype: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", btype, length) + body + struct.pack("<I", length)


def usec(ts: float) -> int:
    """A frame timestamp as whole microseconds (rounded: the float is the nearest double
    to a microsecond count, never exactly it)."""
    return round(ts * _USEC)


class PcapngWriter:
    """Writes one section to ``out``: an IDB the first time a link type is used, then an
    EPB per packet."""

    def __init__(self, out: BinaryIO, *, application: str = "tlsa") -> None:
        self.out = out
        self.interfaces: dict[int, int] = {}
        """Link type -> interface id in the section."""
        self.packets = 0
        body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1)
        body += _options([(SHB_USERAPPL, application.encode())])
        out.write(_block(SHB, body))

    def interface(self, linktype: int) -> int:
        """The interface id for ``linktype``, describing it first if needed."""
        known = self.interfaces.get(linktype)
        if known is not None:
            return known
        self.out.write(_block(IDB, struct.pack("<HHI", linktype, 0, 0)))
        self.interfaces[linktype] = len(self.interfaces)
        return self.interfaces[linktype]

    def packet(
        self, ts: float, linktype: int, data: bytes, wirelen: int, comment: str | None = None
    ) -> None:
        iface = self.interface(linktype)
        t = usec(ts)
        head = struct.pack(
            "<5I", iface, (t >> 32) & 0xFFFFFFFF, t & 0xFFFFFFFF, len(data), max(wirelen, len(data))
        )
        options = [(OPT_COMMENT, comment.encode())] if comment else []
        self.out.write(_block(EPB, head + _pad(data) + _options(options)))
        self.packets += 1

    def secrets(self, key_log: bytes) -> None:
        """A Decryption Secrets Block of NSS key log lines (applies to the packets after
        it)."""
        head = struct.pack("<II", SECRETS_TLS_KEY_LOG, len(key_log))
        self.out.write(_block(DSB, head + _pad(key_log)))

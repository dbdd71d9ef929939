"""The raw frame every source yields: file readers and the live capture alike.

A frame is ``(ts, linktype, data)``: a float timestamp in seconds since the epoch, a pcap
``LINKTYPE_*`` number (https://www.tcpdump.org/linktypes.html) and the captured bytes.
``wirelen`` is the original length on the wire (larger than ``len(data)`` when the
snaplen cut the packet). Frames are NamedTuples rather than dataclasses because one is
made per packet and tuple construction is the cheapest immutable value in CPython.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import NamedTuple


class LinkType(IntEnum):
    """pcap link-layer header types we decode (others are reported as anomalies)."""

    NULL = 0  # BSD loopback, host byte order AF_ value
    ETHERNET = 1
    RAW_OLD = 12  # DLT_RAW on OpenBSD, raw IP
    RAW_BSD = 14  # DLT_RAW on some BSDs, raw IP
    RAW = 101  # raw IPv4/IPv6
    LOOP = 108  # OpenBSD loopback, network byte order AF_ value
    LINUX_SLL = 113
    IPV4 = 228
    IPV6 = 229
    LINUX_SLL2 = 276


class Frame(NamedTuple):
    """One captured packet, as read from a file or a live interface."""

    ts: float
    linktype: int
    data: bytes
    wirelen: int


class Tick(NamedTuple):
    """Packet time advanced without a packet (live capture on a quiet interface)."""

    ts: float


FrameFilter = Callable[[Frame], bool]
"""Which frames a file reader hands over (``CaptureReader.keep``): the others are read,
counted and timed like any frame, and left there, so a shard worker does not pay for a
generator hand-off per frame of another shard (:meth:`analyzer.scale.shard.ShardEngine.wants`)."""

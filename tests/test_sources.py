"""Capture file sources (analyzer.sources): path expansion, pcap, pcapng, gzip.

Fixtures are built byte by byte (commented hex for the smallest ones, small struct
builders for the rest) so that every field is visible and corrupt variants are easy.
Files written by dpkt check compatibility with another writer; every real-world capture
is counted against tshark. Files are cut at every byte offset, corrupted, and fed random
bytes after valid headers: the reader yields every good packet and never raises.
"""

from __future__ import annotations

import gzip
import io
import os
import random
import shutil
import struct
import subprocess
import tracemalloc
from pathlib import Path

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.anomalies import Anomaly
from analyzer.limits import MAX_CAPLEN, READ_CHUNK
from analyzer.sources import CaptureReader, Frame, expand_paths
from analyzer.sources.stream import ByteWindow

T0 = 1_700_000_000


def h(text: str) -> bytes:
    """Hex with spaces, newlines and ``#`` comments."""
    lines = (line.split("#", 1)[0] for line in text.splitlines())
    return bytes.fromhex("".join(lines))


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read(path: Path) -> tuple[CaptureReader, list[Frame]]:
    reader = CaptureReader(path)
    frames = list(reader)
    assert reader.packets == len(frames)
    return reader, frames


def kinds(reader: CaptureReader) -> list[Anomaly]:
    return [anomaly for anomaly, _detail in reader.anomalies]


# -- classic pcap ------------------------------------------------------------------------

TINY_PCAP = h("""
    d4c3b2a1 0200 0400      # magic (little-endian, microseconds), version 2.4
    00000000 00000000       # reserved (thiszone, sigfigs)
    ffff0000 01000000       # snaplen 65535, link type 1 (Ethernet)
    00f15365 40e20100       # record 1: 1700000000 s, 123456 us
    04000000 3c000000       #   captured 4 bytes, 60 on the wire (snaplen cut)
    aabbccdd                #   data
    01f15365 00000000       # record 2: 1700000001 s, 0 us
    02000000 02000000       #   captured 2, on the wire 2
    eeff                    #   data
""")
TINY_FRAMES = [
    Frame(T0 + 0.123456, 1, h("aabbccdd"), 60),
    Frame(T0 + 1.0, 1, h("eeff"), 2),
]
TINY_BOUNDARIES = {24, 24 + 16 + 4, len(TINY_PCAP)}
"""Offsets where a cut leaves only whole records."""


def pcap_file(
    packets: list[tuple[int, int, bytes, int]],
    *,
    order: str = "<",
    nano: bool = False,
    linktype: int = 1,
    snaplen: int = 262144,
) -> bytes:
    """A classic pcap of (seconds, fraction, data, wirelen) records."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for sec, frac, data, wirelen in packets:
        out.append(struct.pack(order + "IIII", sec, frac, len(data), wirelen) + data)
    return b"".join(out)


def test_tiny_pcap(tmp_path: Path) -> None:
    reader, frames = read(write(tmp_path, "tiny.pcap", TINY_PCAP))
    assert frames == TINY_FRAMES
    assert reader.error is None
    assert reader.anomalies == []
    assert reader.format == "pcap"
    assert not reader.compressed
    assert reader.size == len(TINY_PCAP)
    assert reader.position() == len(TINY_PCAP)
    assert frames[0].wirelen > len(frames[0].data)  # snaplen-truncated packets come out


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path: Path, order: str, nano: bool) -> None:
    frac = 123_456_789 if nano else 123_456
    data = pcap_file(
        [(T0, frac, b"abc", 3), (T0 + 2, 5, b"", 0)], order=order, nano=nano, linktype=113
    )
    _reader, frames = read(write(tmp_path, "x.pcap", data))
    scale = 1e9 if nano else 1e6
    assert frames == [
        Frame(T0 + frac / scale, 113, b"abc", 3),
        Frame(T0 + 2 + 5 / scale, 113, b"", 0),
    ]


def test_pcap_link_type_upper_bits_are_fcs_information(tmp_path: Path) -> None:
    data = pcap_file([(T0, 0, b"x", 1)], linktype=0x1C000000 | 1)  # FCS length known, 2 words
    _reader, frames = read(write(tmp_path, "fcs.pcap", data))
    assert frames[0].linktype == 1


def test_pcap_modified_format_has_longer_record_headers(tmp_path: Path) -> None:
    data = h("""
        34cdb2a1 0200 0400 00000000 00000000 ffff0000 01000000   # modified-format magic
        00f15365 0a000000 02000000 02000000   # 1700000000 s, 10 us, 2 bytes, 2 on the wire
        02000000 0008 00 00                    # ifindex 2, protocol 0x0800, type, padding
        abcd
    """)
    _reader, frames = read(write(tmp_path, "kuznetzov.pcap", data))
    assert frames == [Frame(T0 + 0.00001, 1, h("abcd"), 2)]


def test_dpkt_written_pcaps(tmp_path: Path) -> None:
    for nano in (False, True):
        path = tmp_path / f"dpkt-{nano}.pcap"
        with path.open("wb") as f:
            writer = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_RAW, nano=nano)
            writer.writepkt(b"\x45" + bytes(19), ts=T0 + 0.5)
            writer.writepkt(b"\x60" + bytes(39), ts=T0 + 1.25)
        _reader, frames = read(path)
        assert [(f.ts, f.linktype, len(f.data)) for f in frames] == [
            (T0 + 0.5, dpkt.pcap.DLT_RAW, 20),
            (T0 + 1.25, dpkt.pcap.DLT_RAW, 40),
        ]


def test_records_across_chunk_boundaries(tmp_path: Path) -> None:
    """Enough packets of odd sizes that records straddle every buffer refill."""
    packets = [(T0 + i, i, bytes([i % 251]) * (997 + i % 13), 2000) for i in range(3000)]
    data = pcap_file(packets)
    assert len(data) > 2 * READ_CHUNK
    _reader, frames = read(write(tmp_path, "many.pcap", data))
    assert len(frames) == 3000
    for frame, (sec, usec, payload, wirelen) in zip(frames, packets, strict=True):
        assert frame == Frame(sec + usec / 1e6, 1, payload, wirelen)


def test_memory_stays_bounded(tmp_path: Path) -> None:
    packets = [(T0, i % 1000, bytes(1400), 1400) for i in range(15_000)]  # ~21 MB
    path = write(tmp_path, "big.pcap", pcap_file(packets))
    tracemalloc.start()
    try:
        count = sum(1 for _ in CaptureReader(path))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 15_000
    assert peak < 4 * READ_CHUNK, peak


def test_position_grows_to_the_file_size(tmp_path: Path) -> None:
    packets = [(T0, 0, bytes(1000), 1000)] * 3000
    path = write(tmp_path, "p.pcap", pcap_file(packets))
    reader = CaptureReader(path)
    assert reader.size == path.stat().st_size
    seen = [reader.position() for i, _ in enumerate(reader) if i % 500 == 0]
    assert seen == sorted(seen)
    assert 0 < seen[1] < reader.size  # type: ignore[operator]
    assert reader.position() == reader.size


def test_time_backwards_is_reported_once_with_a_count(tmp_path: Path) -> None:
    packets = [
        (T0 + 5, 0, b"a", 1),
        (T0 + 3, 0, b"b", 1),
        (T0 + 4, 0, b"c", 1),
        (T0 + 1, 0, b"d", 1),
    ]
    reader, frames = read(write(tmp_path, "back.pcap", pcap_file(packets)))
    assert len(frames) == 4
    assert kinds(reader) == [Anomaly.TIME_BACKWARDS]
    detail = reader.anomalies[0][1]
    assert "packet 2" in detail
    assert "2 packets in all" in detail


def test_iterating_twice_reads_again(tmp_path: Path) -> None:
    reader = CaptureReader(write(tmp_path, "t.pcap", TINY_PCAP))
    assert list(reader) == TINY_FRAMES
    assert list(reader) == TINY_FRAMES
    assert reader.packets == 2



def test_a_filter_leaves_frames_in_the_reader(tmp_path: Path) -> None:
    """``keep`` (a shard worker's filter) sees every frame in order; only the frames it
    accepts come out, and every frame is still counted and checked for time order."""
    packets = [(T0 + 5, 0, b"a", 1), (T0 + 3, 0, b"b", 1), (T0 + 4, 0, b"c", 1),
               (T0 + 1, 0, b"d", 1)]
    seen: list[bytes] = []

    def keep(frame: Frame) -> bool:
        seen.append(frame.data)
        return frame.data in (b"a", b"d")

    reader = CaptureReader(write(tmp_path, "back.pcap", pcap_file(packets)))
    reader.keep = keep
    assert [f.data for f in reader] == [b"a", b"d"]
    assert seen == [b"a", b"b", b"c", b"d"] and reader.packets == 4
    assert kinds(reader) == [Anomaly.TIME_BACKWARDS]
    assert "packet 2" in reader.anomalies[0][1] and "2 packets in all" in reader.anomalies[0][1]
    # pcapng: the fast path (EPBs) and the other packet blocks (SPB, obsolete PB).
    data, expected = two_sections()
    ng = CaptureReader(write(tmp_path, "two.pcapng", data))
    ng.keep = lambda frame: frame.linktype == 113
    assert list(ng) == [f for f in expected if f.linktype == 113]
    assert ng.packets == len(expected) and ng.position() == len(data)

# -- damaged pcap ------------------------------------------------------------------------


def test_pcap_cut_at_every_offset(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    for cut in range(len(TINY_PCAP) + 1):
        path.write_bytes(TINY_PCAP[:cut])
        reader, frames = read(path)
        if cut < 24:
            assert reader.error is not None, cut
            assert reader.error.startswith(str(path)), reader.error
            assert frames == []
            continue
        complete = [
            f for end, f in zip((44, len(TINY_PCAP)), TINY_FRAMES, strict=True) if end <= cut
        ]
        assert frames == complete, cut
        assert reader.error is None
        if cut in TINY_BOUNDARIES:
            assert reader.anomalies == [], cut
        else:
            assert kinds(reader) == [Anomaly.FILE_TRUNCATED], cut
            assert "offset" in reader.anomalies[0][1]


def test_pcap_absurd_caplen_resyncs_to_the_next_record(tmp_path: Path) -> None:
    good = [(T0 + i, i, bytes([i]) * 50, 50) for i in range(6)]
    data = bytearray(pcap_file(good))
    third = 24 + 2 * (16 + 50)
    struct.pack_into("<I", data, third + 8, MAX_CAPLEN + 1)  # record 3 claims too much
    reader, frames = read(write(tmp_path, "corrupt.pcap", bytes(data)))
    assert [f.data[0] for f in frames] == [0, 1, 3, 4, 5]
    assert kinds(reader) == [Anomaly.FILE_CORRUPT_BLOCK]
    assert f"offset {third}" in reader.anomalies[0][1]
    assert "skipped 66 bytes" in reader.anomalies[0][1]


def test_pcap_corrupt_first_record_gives_up(tmp_path: Path) -> None:
    data = bytearray(pcap_file([(T0, 0, b"abc", 3), (T0, 1, b"def", 3)]))
    struct.pack_into("<I", data, 24 + 8, 0xFFFFFFFF)
    reader, frames = read(write(tmp_path, "c.pcap", bytes(data)))
    assert frames == []
    assert kinds(reader) == [Anomaly.FILE_CORRUPT_BLOCK]
    assert "rest of the file skipped" in reader.anomalies[0][1]


def test_pcap_caplen_at_the_limit_is_accepted(tmp_path: Path) -> None:
    data = pcap_file([(T0, 0, bytes(MAX_CAPLEN), MAX_CAPLEN)])
    reader, frames = read(write(tmp_path, "max.pcap", data))
    assert len(frames) == 1
    assert reader.anomalies == []


# -- pcapng ------------------------------------------------------------------------------

TINY_PCAPNG = h("""
    0a0d0d0a 1c000000     # Section Header Block, 28 bytes
    4d3c2b1a 0100 0000    # byte-order magic (little-endian), version 1.0
    ffffffffffffffff      # section length unknown
    1c000000              # total length again
    01000000 14000000     # Interface Description Block, 20 bytes
    6500 0000 00000400    # link type 101 (raw IP), reserved, snaplen 262144
    14000000
    06000000 24000000     # Enhanced Packet Block, 36 bytes
    00000000              # interface 0
    06e10500 6e69bf9c     # timestamp 0x0005e106_9cbf696e us = 1700000000.123502 s
    03000000 05000000     # captured 3, on the wire 5
    616263 00             # "abc" + padding
    24000000
""")
TINY_PCAPNG_FRAME = Frame(0x0005E1069CBF696E / 1e6, 101, b"abc", 5)


def pad4(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def block(order: str, btype: int, body: bytes) -> bytes:
    length = 12 + len(pad4(body))
    return struct.pack(order + "II", btype, length) + pad4(body) + struct.pack(order + "I", length)


def option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + pad4(value)


def shb(order: str) -> bytes:
    return block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(
    order: str, linktype: int, *, snaplen: int = 0, tsresol: int | None = None, tsoffset: int = 0
) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += option(order, 9, bytes([tsresol]))
    if tsoffset:
        opts += option(order, 14, struct.pack(order + "q", tsoffset))
    if opts:
        opts += option(order, 0, b"")
    return block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + opts)


def epb(
    order: str, iface: int, units: int, data: bytes, wirelen: int | None = None, opts: bytes = b""
) -> bytes:
    wire = len(data) if wirelen is None else wirelen
    head = struct.pack(order + "IIIII", iface, units >> 32, units & 0xFFFFFFFF, len(data), wire)
    return block(order, 6, head + pad4(data) + opts)


def spb(order: str, data: bytes, wirelen: int | None = None) -> bytes:
    return block(
        order, 3, struct.pack(order + "I", len(data) if wirelen is None else wirelen) + data
    )


def obsolete_pb(order: str, iface: int, units: int, data: bytes) -> bytes:
    head = struct.pack(
        order + "HHIIII", iface, 0, units >> 32, units & 0xFFFFFFFF, len(data), len(data)
    )
    return block(order, 2, head + data)


def two_section_blocks() -> tuple[list[bytes], list[Frame]]:
    """Section 1 (little-endian): Ethernet in microseconds and raw IP in nanoseconds, with
    name resolution, statistics, secrets, custom and unknown blocks between packets.
    Section 2 (big-endian): Linux SLL in 2^-10 s units with a 100 s offset and a 4-byte
    snaplen, with an EPB, an SPB and an obsolete PB."""
    us, ns = 10**6, 10**9
    blocks = [
        shb("<"),
        idb("<", 1, tsresol=6),
        idb("<", 101, tsresol=9),
        epb("<", 0, T0 * us + 1, b"ether"),
        block("<", 4, b"\x01\x00\x04\x00\x7f\x00\x00\x01localhost\x00"),  # name resolution
        epb("<", 1, T0 * ns + 2001, b"rawip", 1500),
        block("<", 0x00000BAD, b"\x00\x00\x7f\x00custom"),  # custom block
        block("<", 5, bytes(12)),  # interface statistics
        block("<", 0x0000000A, b"TLSK" + struct.pack("<I", 4) + b"keys"),  # decryption secrets
        block("<", 0x12345678, b"unknown block type"),
        epb("<", 0, T0 * us + 3, b"ether2", opts=option("<", 1, b"comment") + option("<", 0, b"")),
        shb(">"),
        idb(">", 113, snaplen=4, tsresol=0x80 | 10, tsoffset=100),
        epb(">", 0, T0 * 1024 + 512, b"cooked"),
        spb(">", b"simple", 9),
        obsolete_pb(">", 0, T0 * 1024 + 768, b"old"),
    ]
    frames = [
        Frame(T0 + 1e-6, 1, b"ether", 5),
        Frame((T0 * ns + 2001) / 1e9, 101, b"rawip", 1500),
        Frame(T0 + 3e-6, 1, b"ether2", 6),
        Frame(T0 + 0.5 + 100, 113, b"cooked", 6),
        Frame(T0 + 0.5 + 100, 113, b"simp", 9),  # SPB: cut to the snaplen, previous time
        Frame(T0 + 0.75 + 100, 113, b"old", 3),
    ]
    return blocks, frames


def two_sections() -> tuple[bytes, list[Frame]]:
    blocks, frames = two_section_blocks()
    return b"".join(blocks), frames


def test_tiny_pcapng(tmp_path: Path) -> None:
    reader, frames = read(write(tmp_path, "tiny.pcapng", TINY_PCAPNG))
    assert frames == [TINY_PCAPNG_FRAME]
    assert reader.anomalies == []
    assert reader.format == "pcapng"


def test_pcapng_sections_interfaces_and_resolutions(tmp_path: Path) -> None:
    data, expected = two_sections()
    reader, frames = read(write(tmp_path, "two.pcapng", data))
    assert frames == expected
    assert reader.anomalies == []
    assert reader.position() == len(data)


def test_pcapng_written_by_dpkt(tmp_path: Path) -> None:
    path = tmp_path / "dpkt.pcapng"
    with path.open("wb") as f:
        writer = dpkt.pcapng.Writer(f, snaplen=1500, linktype=dpkt.pcap.DLT_EN10MB)
        writer.writepkt(b"\x00" * 60, ts=T0 + 0.25)
        writer.writepkt(b"\x01" * 61, ts=T0 + 0.5)
    _reader, frames = read(path)
    assert [(f.ts, f.linktype, f.data) for f in frames] == [
        (T0 + 0.25, 1, b"\x00" * 60),
        (T0 + 0.5, 1, b"\x01" * 61),
    ]


def test_pcapng_unknown_interface(tmp_path: Path) -> None:
    data = (
        shb("<")
        + idb("<", 1)
        + epb("<", 3, 1, b"lost")
        + epb("<", 3, 2, b"lost")
        + epb("<", 0, 3, b"ok")
    )
    reader, frames = read(write(tmp_path, "u.pcapng", data))
    assert [f.data for f in frames] == [b"ok"]
    assert kinds(reader) == [Anomaly.FILE_UNKNOWN_INTERFACE]  # once per interface
    assert "interface 3" in reader.anomalies[0][1]


def test_pcapng_interfaces_belong_to_their_section(tmp_path: Path) -> None:
    data = shb("<") + idb("<", 1) + shb("<") + epb("<", 0, 1, b"orphan")
    reader, frames = read(write(tmp_path, "s.pcapng", data))
    assert frames == []
    assert kinds(reader) == [Anomaly.FILE_UNKNOWN_INTERFACE]


def test_pcapng_block_larger_than_the_buffer_is_skipped(tmp_path: Path) -> None:
    big = block("<", 0x00000BAD, bytes(3 * READ_CHUNK))
    data = shb("<") + idb("<", 1) + epb("<", 0, 1, b"a") + big + epb("<", 0, 2, b"b")
    reader, frames = read(write(tmp_path, "big.pcapng", data))
    assert [f.data for f in frames] == [b"a", b"b"]
    assert reader.anomalies == []


def corrupt_variants() -> list[tuple[str, bytes]]:
    head = shb("<") + idb("<", 1)
    first = epb("<", 0, 1, b"first")
    second = epb("<", 0, 2, b"second")
    third = epb("<", 0, 3, b"third")
    odd = bytearray(second)
    struct.pack_into("<I", odd, 4, len(second) + 2)  # not a multiple of 4
    mismatch = bytearray(second)
    struct.pack_into("<I", mismatch, 4, len(second) + 4)  # trailing length disagrees
    huge = bytearray(second)
    struct.pack_into("<I", huge, 4, 0xFFFFFFF0)  # absurd
    tiny = bytearray(second)
    struct.pack_into("<I", tiny, 4, 8)  # below the minimum
    caplen = bytearray(second)
    struct.pack_into("<I", caplen, 20, 1000)  # packet longer than its block
    return [
        (name, head + first + bytes(variant) + third)
        for name, variant in [
            ("odd length", odd),
            ("length mismatch", mismatch),
            ("huge length", huge),
            ("tiny length", tiny),
            ("caplen beyond block", caplen),
        ]
    ]


@pytest.mark.parametrize(
    ("name", "data"), corrupt_variants(), ids=[n for n, _ in corrupt_variants()]
)
def test_pcapng_corrupt_block_resyncs(tmp_path: Path, name: str, data: bytes) -> None:
    reader, frames = read(write(tmp_path, "c.pcapng", data))
    assert [f.data for f in frames] == [b"first", b"third"], name
    assert kinds(reader) == [Anomaly.FILE_CORRUPT_BLOCK], name
    assert "next plausible block" in reader.anomalies[0][1]


def test_pcapng_corrupt_with_nothing_after_gives_up(tmp_path: Path) -> None:
    data = shb("<") + idb("<", 1) + epb("<", 0, 1, b"ok") + struct.pack("<II", 6, 7) + bytes(40)
    reader, frames = read(write(tmp_path, "g.pcapng", data))
    assert [f.data for f in frames] == [b"ok"]
    assert kinds(reader) == [Anomaly.FILE_CORRUPT_BLOCK]
    assert "rest of the file skipped" in reader.anomalies[0][1]


def test_pcapng_cut_at_every_offset(tmp_path: Path) -> None:
    blocks, expected = two_section_blocks()
    data = b"".join(blocks)
    boundaries = {0}
    ends = []  # where each packet's block ends
    at = 0
    for item in blocks:
        at += len(item)
        boundaries.add(at)
        if item[:4] in (h("06000000"), h("00000006"), h("00000003"), h("00000002")):
            ends.append(at)
    assert len(ends) == len(expected)
    first_block = len(blocks[0])
    path = tmp_path / "cut.pcapng"
    for cut in range(len(data) + 1):
        path.write_bytes(data[:cut])
        reader, frames = read(path)
        if cut < first_block:
            assert reader.error is not None, cut
            assert frames == []
            continue
        assert reader.error is None, (cut, reader.error)
        assert frames == [f for end, f in zip(ends, expected, strict=True) if end <= cut], cut
        if cut in boundaries:
            assert reader.anomalies == [], (cut, reader.anomalies)
        else:
            assert kinds(reader) == [Anomaly.FILE_TRUNCATED], (cut, reader.anomalies)
            assert "offset" in reader.anomalies[0][1]


def test_pcapng_bad_first_section(tmp_path: Path) -> None:
    bad_bom = bytearray(TINY_PCAPNG)
    bad_bom[8:12] = b"abcd"
    reader, _ = read(write(tmp_path, "bom.pcapng", bytes(bad_bom)))
    assert reader.error is not None
    assert "byte-order magic" in reader.error
    version = bytearray(TINY_PCAPNG)
    version[12] = 2
    reader, _ = read(write(tmp_path, "ver.pcapng", bytes(version)))
    assert reader.error is not None
    assert "version 2.0" in reader.error


# -- gzip --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_gzip(tmp_path: Path, kind: str) -> None:
    data, expected = (TINY_PCAP, TINY_FRAMES) if kind == "pcap" else two_sections()
    path = write(tmp_path, f"x.{kind}.gz", gzip.compress(data))
    reader, frames = read(path)
    assert frames == expected
    assert reader.compressed
    assert reader.format == kind
    assert reader.anomalies == []
    assert reader.position() == path.stat().st_size


def test_gzip_several_members_and_padding(tmp_path: Path) -> None:
    packets = [(T0 + i, 0, bytes([i]) * 100, 100) for i in range(50)]
    data = pcap_file(packets)
    half = len(data) // 2
    blob = gzip.compress(data[:half]) + gzip.compress(data[half:]) + bytes(64)
    reader, frames = read(write(tmp_path, "multi.pcap.gz", blob))
    assert len(frames) == 50
    assert reader.anomalies == []


def test_gzip_large_file_streams(tmp_path: Path) -> None:
    packets = [(T0 + i // 1000, i % 1000, bytes([i % 256]) * 1000, 1000) for i in range(5000)]
    path = write(tmp_path, "big.pcap.gz", gzip.compress(pcap_file(packets), compresslevel=1))
    reader, frames = read(path)
    assert len(frames) == 5000
    assert frames[4999].data == bytes([4999 % 256]) * 1000
    assert reader.anomalies == []


def test_gzip_cut_at_every_offset(tmp_path: Path) -> None:
    packets = [(T0 + i, 0, bytes([i]) * 30, 30) for i in range(20)]
    data = pcap_file(packets)
    blob = gzip.compress(data)
    path = tmp_path / "cut.pcap.gz"
    counts = []
    for cut in range(len(blob) + 1):
        path.write_bytes(blob[:cut])
        reader, frames = read(path)
        if reader.error is not None:
            assert frames == []
            continue
        assert frames == [Frame(T0 + i, 1, bytes([i]) * 30, 30) for i in range(len(frames))]
        counts.append(len(frames))
        if cut < len(blob):
            assert Anomaly.FILE_TRUNCATED in kinds(reader) or Anomaly.FILE_READ_ERROR in kinds(
                reader
            ), cut
        else:
            assert reader.anomalies == []
    assert counts == sorted(counts)
    assert counts[-1] == 20


@pytest.mark.parametrize("where", ["middle", "checksum"])
def test_gzip_corrupt_data(tmp_path: Path, where: str) -> None:
    rng = random.Random(7)  # incompressible, so the middle of the file is mid-capture
    packets = [(T0 + i, 0, rng.randbytes(10_000), 10_000) for i in range(8)]
    blob = bytearray(gzip.compress(pcap_file(packets)))
    at = len(blob) // 2 if where == "middle" else len(blob) - 8  # CRC32 of the trailer
    blob[at] ^= 0xFF
    reader, frames = read(write(tmp_path, "bad.pcap.gz", bytes(blob)))
    assert reader.error is None
    assert Anomaly.FILE_READ_ERROR in kinds(reader)
    assert frames  # what came before the damage is kept
    assert frames[0].data == packets[0][2]
    if where == "checksum":  # everything but the last step before the trailer is kept
        assert len(frames) >= 7


def test_gzip_trailing_garbage(tmp_path: Path) -> None:
    blob = gzip.compress(TINY_PCAP) + b"garbage"
    reader, frames = read(write(tmp_path, "trail.pcap.gz", blob))
    assert frames == TINY_FRAMES
    assert kinds(reader) == [Anomaly.FILE_CORRUPT_BLOCK]


def test_gzip_of_something_else(tmp_path: Path) -> None:
    reader, _ = read(write(tmp_path, "notes.txt.gz", gzip.compress(b"<html>hello</html>")))
    assert (
        reader.error
        == f"{tmp_path / 'notes.txt.gz'}: gzip content is not a pcap/pcapng file (magic 0x3c68746d)"
    )


class FailingFile(io.BytesIO):
    """A file whose reads fail with EIO after ``good`` bytes, like a dying disk."""

    def __init__(self, data: bytes, good: int) -> None:
        super().__init__(data)
        self.good = good

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= self.good:
            raise OSError(5, "Input/output error")
        limit = self.good - self.tell()
        return super().read(limit if size is None or size < 0 else min(size, limit))


def test_read_error_becomes_an_anomaly() -> None:
    notes: list[tuple[Anomaly, str]] = []
    window = ByteWindow(
        FailingFile(bytes(100), 40), lambda a, d: notes.append((a, d)), compressed=False
    )
    assert not window.refill(0, 50)
    assert len(window.buf) == 40
    assert window.failed
    assert notes == [(Anomaly.FILE_READ_ERROR, "read failed: Input/output error")]


# -- files that cannot be read -----------------------------------------------------------


def test_wrong_magic(tmp_path: Path) -> None:
    path = write(tmp_path, "capture.pcap", b"<html><body>not a capture</body></html>")
    reader, frames = read(path)
    assert reader.error == f"{path}: file is not a pcap/pcapng file (magic 0x3c68746d)"
    assert frames == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"\xd4\xc3", "not a pcap/pcapng file (magic 0xd4c3)"),
        (b"\x28\xb5\x2f\xfd" + bytes(20), "zstd-compressed"),
        (TINY_PCAP[:10], "truncated pcap file header (10 of 24 bytes)"),
        (b"\x1f\x8b\x09" + bytes(40), "corrupt gzip data"),  # 9 is no compression method
        (gzip.compress(TINY_PCAP)[:12], "gzip stream ends before its end-of-stream marker"),
        (TINY_PCAPNG[:20], "truncated pcapng section header block (20 of 28 bytes)"),
    ],
)
def test_unreadable_content(tmp_path: Path, content: bytes, message: str) -> None:
    reader, frames = read(write(tmp_path, "f.pcap", content))
    assert reader.error is not None
    assert message in reader.error
    assert "\n" not in reader.error
    assert frames == []


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = CaptureReader(tmp_path / "nope.pcap")
    assert missing.error == f"{tmp_path / 'nope.pcap'}: no such file"
    assert list(missing) == []
    assert missing.size is None
    directory = CaptureReader(tmp_path)
    assert directory.error == f"{tmp_path}: is a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied(tmp_path: Path) -> None:
    path = write(tmp_path, "secret.pcap", TINY_PCAP)
    path.chmod(0)
    assert CaptureReader(path).error == f"{path}: permission denied"


def test_unreadable_device() -> None:
    reader = CaptureReader("/proc/self/mem")  # reads fail with EIO at offset 0
    assert reader.error is not None
    assert reader.error.startswith("/proc/self/mem: cannot read")


# -- path expansion ----------------------------------------------------------------------


def test_expand_paths(tmp_path: Path) -> None:
    tree = {
        "caps/a.pcap": TINY_PCAP,
        "caps/b.PCAPNG": TINY_PCAPNG,
        "caps/README": b"docs",
        "caps/MANIFEST.txt": b"list",
        "caps/sub/c.pcap.gz": b"",
        "caps/sub/d.cap": b"",
        "caps/sub/e.pcapng.gz": b"",
        "caps/sub/notes.md": b"",
        "empty/readme.txt": b"",
        "single.dat": b"",
    }
    for name, data in tree.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    t = tmp_path
    files, errors = expand_paths(
        [
            t / "caps",
            str(t / "single.dat"),  # an explicit file is taken whatever its name
            str(t / "caps" / "*.pcap"),  # already listed: not repeated
            str(t / "caps" / "**" / "*.gz"),
            t / "missing.pcap",
            str(t / "nothing-*.pcap"),
            t / "empty",
        ]
    )
    assert [p.relative_to(t).as_posix() for p in files] == [
        "caps/a.pcap",
        "caps/b.PCAPNG",
        "caps/sub/c.pcap.gz",
        "caps/sub/d.cap",
        "caps/sub/e.pcapng.gz",
        "single.dat",
    ]
    assert errors == [
        f"{t / 'missing.pcap'}: no such file or directory",
        f"{t / 'nothing-*.pcap'}: no files match",
        f"{t / 'empty'}: no capture files (*.pcap, *.pcapng, *.cap, *.gz)",
    ]


def test_expand_glob_matching_a_directory(tmp_path: Path) -> None:
    (tmp_path / "day1").mkdir()
    (tmp_path / "day1" / "x.pcap").write_bytes(TINY_PCAP)
    (tmp_path / "day1" / "info.txt").write_bytes(b"")
    files, errors = expand_paths([str(tmp_path / "day*")])
    assert files == [tmp_path / "day1" / "x.pcap"]
    assert errors == []


# -- never raises ------------------------------------------------------------------------

PCAP_HEADER = TINY_PCAP[:24]
PCAPNG_HEADER = shb("<") + idb("<", 1) + idb("<", 101, tsresol=9)


def check_reader(path: Path) -> None:
    reader = CaptureReader(path)
    frames = list(reader)
    assert reader.packets == len(frames)
    for frame in frames:
        assert type(frame) is Frame
        assert isinstance(frame.ts, float)
        assert isinstance(frame.data, bytes)
        assert len(frame.data) <= MAX_CAPLEN
    for anomaly, detail in reader.anomalies:
        assert isinstance(anomaly, Anomaly)
        assert detail
        assert "\n" not in detail
    assert reader.error is None or "\n" not in reader.error


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=st.sampled_from([PCAP_HEADER, PCAPNG_HEADER, TINY_PCAP, TINY_PCAPNG]),
    suffix=st.binary(max_size=400),
    compress=st.booleans(),
)
def test_random_bytes_after_a_valid_header(
    tmp_path: Path, header: bytes, suffix: bytes, compress: bool
) -> None:
    data = header + suffix
    path = write(tmp_path, "fuzz.pcap", gzip.compress(data) if compress else data)
    check_reader(path)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6)
)
def test_corrupted_bytes_in_a_valid_file(tmp_path: Path, flips: list[tuple[int, int]]) -> None:
    data, _ = two_sections()
    blob = bytearray(data)
    for at, value in flips:
        blob[at % len(blob)] = value
    check_reader(write(tmp_path, "flip.pcapng", bytes(blob)))
    pcap = bytearray(TINY_PCAP)
    for at, value in flips:
        pcap[at % len(pcap)] = value
    check_reader(write(tmp_path, "flip.pcap", bytes(pcap)))


# -- real-world captures -----------------------------------------------------------------

PCAPS = Path(__file__).parents[1].parent / "shared" / "pcaps"


def _pcap_files() -> list[Path]:
    if not PCAPS.is_dir():
        return []
    return sorted(
        p
        for p in PCAPS.rglob("*")
        if p.is_file() and p.name.endswith((".pcap", ".pcapng", ".cap", ".gz"))
    )


@pytest.mark.skipif(not PCAPS.is_dir(), reason=f"real-world captures not found at {PCAPS}")
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("path", _pcap_files(), ids=lambda p: str(p.relative_to(PCAPS)))
def test_packet_count_matches_tshark(path: Path) -> None:
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "frame.number"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    tshark_count = len(out.stdout.split())
    if out.returncode != 0 and tshark_count == 0:
        pytest.skip(f"tshark cannot read it: {out.stderr.strip().splitlines()[-1]}")
    reader, frames = read(path)
    assert reader.error is None
    problems = {a for a in kinds(reader) if a is not Anomaly.TIME_BACKWARDS}
    if out.returncode == 0:
        assert len(frames) == tshark_count
        assert not problems, reader.anomalies
    else:  # damaged: tshark stops at the damage; we report it and may read past it
        assert len(frames) >= tshark_count
        assert problems, "tshark found damage we did not report"

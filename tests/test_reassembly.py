"""Per-direction TCP reassembly (analyzer.flows.reassembly).

Table tests for each rule, every order of a small segmentation, Hypothesis properties
(any order/duplication reassembles; a model of holes and gaps; garbage never raises), and a
real TLS connection captured on loopback in a private network namespace with random drops.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.anomalies import Anomaly
from analyzer.flows import SEQ_MASK, Reassembler, seq_diff
from analyzer.limits import MAX_OOO_BYTES, MAX_OOO_SEGMENTS

ISN = 1000  # the stream starts at ISN + 1 = 1001
WRAP_ISN = 2**32 - 10  # the stream starts at 2^32 - 9 and crosses 2^32 after 9 bytes

Op = tuple[str, int, bytes] | tuple[str, int, int] | tuple[str, int] | tuple[str]


def run(ops: list[Op], r: Reassembler | None = None) -> tuple[Reassembler, bytes]:
    """Apply ``ops`` to a Reassembler; return it and everything it delivered."""
    r = r or Reassembler()
    out = bytearray()
    for op in ops:
        if op[0] == "syn":
            r.syn(op[1])
        elif op[0] == "data":
            payload = op[2]
            assert isinstance(payload, bytes)
            out += r.data(op[1], payload)
        elif op[0] == "fin":
            length = op[2]
            assert isinstance(length, int)
            r.fin(op[1], length)
        elif op[0] == "ack":
            out += r.peer_ack(op[1])
        elif op[0] == "flush":
            r.flush()
        else:
            raise AssertionError(op)
    return r, bytes(out)


def _payload_total(ops: list[Op]) -> int:
    return sum(len(op[2]) for op in ops if op[0] == "data" and isinstance(op[2], bytes))


def syn() -> Op:
    return ("syn", ISN)


def d(offset: int, payload: bytes, isn: int = ISN) -> Op:
    """Data at stream offset ``offset`` (0 = first byte after the SYN)."""
    return ("data", (isn + 1 + offset) & SEQ_MASK, payload)


def ack(offset: int, isn: int = ISN) -> Op:
    return ("ack", (isn + 1 + offset) & SEQ_MASK)


def fin(offset: int, length: int = 0, isn: int = ISN) -> Op:
    return ("fin", (isn + 1 + offset) & SEQ_MASK, length)


@dataclass(frozen=True)
class Case:
    name: str
    ops: list[Op]
    stream: bytes
    retransmits: int = 0
    gap_bytes: int = 0
    anomalies: frozenset[Anomaly] = field(default_factory=frozenset)
    midstream: bool = False


MISMATCH = frozenset({Anomaly.OVERLAP_MISMATCH})
AFTER_CLOSE = frozenset({Anomaly.DATA_AFTER_CLOSE})

CASES = [
    Case("in order", [syn(), d(0, b"abc"), d(3, b"def"), fin(6), ack(7), ("flush",)], b"abcdef"),
    Case("reordered", [syn(), d(3, b"def"), d(0, b"abc")], b"abcdef"),
    Case("reordered, three pieces", [syn(), d(6, b"g"), d(3, b"def"), d(0, b"abc")], b"abcdefg"),
    Case(
        "duplicated",
        [syn(), d(0, b"abc"), d(0, b"abc"), d(3, b"def"), d(3, b"def")],
        b"abcdef",
        retransmits=2,
    ),
    Case(
        "duplicate of a buffered segment",
        [syn(), d(3, b"def"), d(3, b"def"), d(0, b"abc")],
        b"abcdef",
        retransmits=1,
    ),
    Case("overlap, same bytes", [syn(), d(0, b"abcd"), d(2, b"cdef")], b"abcdef", retransmits=1),
    Case(
        "overlap, same bytes, buffered",
        [syn(), d(4, b"efgh"), d(6, b"ghij"), d(0, b"abcd")],
        b"abcdefghij",
        retransmits=1,
    ),
    Case(
        # bytes 2-3 were delivered as "cd": the later "XY" loses
        "overlap with delivered bytes, different",
        [syn(), d(0, b"abcd"), d(2, b"XYef")],
        b"abcdef",
        retransmits=1,
        anomalies=MISMATCH,
    ),
    Case(
        "overlap with buffered bytes, different",
        [syn(), d(4, b"efgh"), d(6, b"XYij"), d(0, b"abcd")],
        b"abcdefghij",
        retransmits=1,
        anomalies=MISMATCH,
    ),
    Case(
        # a buffered piece in the middle of a later, larger copy: both edges are kept new
        "larger copy around a buffered piece, different",
        [syn(), d(2, b"cd"), d(0, b"abCDef")],
        b"abcdef",
        retransmits=1,
        anomalies=MISMATCH,
    ),
    Case(
        "partial overlap straddling next_seq",
        [syn(), d(0, b"abc"), d(7, b"hi"), d(1, b"bcdefg")],
        b"abcdefghi",
        retransmits=1,
    ),
    Case(
        "partial overlap straddling next_seq, different",
        [syn(), d(0, b"abc"), d(1, b"BCdef")],
        b"abcdef",
        retransmits=1,
        anomalies=MISMATCH,
    ),
    Case(
        # once acknowledged, delivered bytes are forgotten: a late copy is not compared
        "retransmission of acknowledged bytes",
        [syn(), d(0, b"abcd"), ack(4), d(0, b"XXXX"), d(4, b"e")],
        b"abcde",
        retransmits=1,
    ),
    Case(
        "retransmission of partly acknowledged bytes, different",
        [syn(), d(0, b"ab"), d(2, b"cd"), ack(2), d(0, b"XXcX")],
        b"abcd",
        retransmits=1,
        anomalies=MISMATCH,
    ),
    Case("old ack", [syn(), d(0, b"abc"), ack(1), ack(-5)], b"abc"),
    Case(
        "gap: the peer acknowledged bytes never captured",
        [syn(), d(0, b"abc"), d(9, b"jk"), ack(11), d(3, b"defghi"), ("flush",)],
        b"abc",
        gap_bytes=6,
    ),
    Case("gap: ack beyond, nothing buffered", [syn(), d(0, b"abc"), ack(9)], b"abc", gap_bytes=6),
    Case(
        "gap: ack into a second hole counts both holes",
        [syn(), d(0, b"a"), d(2, b"c"), d(5, b"f"), ack(4)],
        b"a",
        gap_bytes=2,
    ),
    Case("ack of the FIN is not a gap", [syn(), d(0, b"abc"), fin(0, 3), ack(4)], b"abc"),
    Case("ack of a FIN after a hole", [syn(), d(0, b"abc"), fin(9), ack(10)], b"abc", gap_bytes=6),
    Case(
        "gap at flush",
        [syn(), d(0, b"abc"), d(5, b"fg"), d(9, b"j"), ("flush",)],  # holes 3-4, 7-8
        b"abc",
        gap_bytes=4,
    ),
    Case("FIN behind a hole at flush", [syn(), d(0, b"abc"), fin(5), ("flush",)], b"abc", 0, 2),
    Case("flush, nothing pending", [syn(), d(0, b"abc"), ("flush",), ("flush",)], b"abc"),
    Case("flush before any data", [syn(), ("flush",)], b""),
    Case(
        "data after FIN",
        [syn(), d(0, b"abc"), fin(0, 3), d(3, b"xyz")],
        b"abc",
        anomalies=AFTER_CLOSE,
    ),
    Case(
        "segment straddling the FIN is cut there",
        [syn(), fin(4), d(0, b"abcdef")],
        b"abcd",
        anomalies=AFTER_CLOSE,
    ),
    Case(
        "FIN before bytes already delivered",
        [syn(), d(0, b"abcdef"), fin(0, 3)],
        b"abcdef",
        anomalies=AFTER_CLOSE,
    ),
    Case(
        "FIN before buffered bytes drops them",
        [syn(), d(5, b"fgh"), fin(6), d(0, b"abcde"), ("flush",)],
        b"abcdef",
        anomalies=AFTER_CLOSE,
    ),
    Case(
        "two different FINs",
        [syn(), d(0, b"abc"), fin(3), fin(5)],
        b"abc",
        anomalies=AFTER_CLOSE,
    ),
    Case("retransmitted FIN", [syn(), d(0, b"abc"), fin(0, 3), fin(0, 3), ack(4)], b"abc"),
    Case(
        "keepalive probe after ack",
        [syn(), d(0, b"abc"), ack(3), d(2, b"\x00"), d(2, b"\x00"), d(3, b"d")],
        b"abcd",
        retransmits=2,
    ),
    Case(
        "keepalive probe, ack not captured: not compared",
        [syn(), d(0, b"abc"), d(2, b"\x00"), ("flush",)],
        b"abc",
        retransmits=1,
    ),
    Case(
        "midstream",
        [("data", 5000, b"abc"), ("data", 5003, b"def")],
        b"abcdef",
        anomalies=frozenset({Anomaly.MIDSTREAM}),
        midstream=True,
    ),
    Case(
        "midstream, then bytes before the start",
        [("data", 5000, b"abc"), ("data", 4990, b"0123456789abc"), ("data", 5003, b"d")],
        b"abcd",
        retransmits=1,
        anomalies=frozenset({Anomaly.MIDSTREAM}),
        midstream=True,
    ),
    Case(
        "midstream, then out of order",
        [("data", 5000, b"abc"), ("data", 5006, b"ghi"), ("data", 5003, b"def")],
        b"abcdefghi",
        anomalies=frozenset({Anomaly.MIDSTREAM}),
        midstream=True,
    ),
    Case("SYN retransmitted", [syn(), syn(), d(0, b"abc"), syn()], b"abc"),
    Case("SYN captured after its data", [d(0, b"abc"), syn(), d(3, b"d")], b"abcd"),
    Case("new SYN before any data", [("syn", 7), syn(), d(0, b"abc")], b"abc"),
    Case(
        # a new attempt with another ISN, then the old SYN retransmitted: the data decides
        "two SYNs, data at the earlier one",
        [("syn", 7), syn(), ("syn", 7), d(0, b"abc"), ("syn", 7), d(3, b"d")],
        b"abcd",
    ),
    Case(
        "two SYNs, the peer acknowledges the earlier one",
        [syn(), ("syn", 7), ack(0), ("syn", 7), d(0, b"abc")],
        b"abc",
    ),
    Case(
        "data far beyond any window is ignored",
        [syn(), d(0, b"abc"), d(2**30 + 10, b"zz"), d(3, b"d"), ("flush",)],
        b"abcd",
        anomalies=frozenset({Anomaly.SEQ_OUT_OF_WINDOW}),
    ),
    Case(
        "ack far beyond any window is ignored",
        [syn(), d(0, b"abc"), ack(2**30 + 10), d(3, b"d")],
        b"abcd",
        anomalies=frozenset({Anomaly.SEQ_OUT_OF_WINDOW}),
    ),
    Case(
        "FIN far beyond any window is ignored",
        [syn(), d(0, b"abc"), fin(2**30 + 10), d(3, b"d"), ("flush",)],
        b"abcd",
        anomalies=frozenset({Anomaly.SEQ_OUT_OF_WINDOW}),
    ),
    Case("other SYN after data is ignored", [syn(), d(0, b"abc"), ("syn", 7), d(3, b"d")], b"abcd"),
    Case("zero-length segments", [("data", 1, b""), syn(), d(0, b""), d(0, b"a")], b"a"),
    Case(
        "wraparound, in order",
        [
            ("syn", WRAP_ISN),
            *(d(i * 4, bytes(range(i * 4, i * 4 + 4)), WRAP_ISN) for i in range(5)),
        ],
        bytes(range(20)),
    ),
    Case(
        "wraparound, reversed, with ack and FIN after 2^32",
        [
            ("syn", WRAP_ISN),
            *(d(i * 4, bytes(range(i * 4, i * 4 + 4)), WRAP_ISN) for i in reversed(range(5))),
            fin(20, isn=WRAP_ISN),
            ack(21, WRAP_ISN),
            ("flush",),
        ],
        bytes(range(20)),
    ),
    Case(
        "wraparound, gap across 2^32",
        [("syn", WRAP_ISN), d(0, b"abc", WRAP_ISN), d(12, b"m", WRAP_ISN), ack(13, WRAP_ISN)],
        b"abc",
        gap_bytes=9,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_table(case: Case) -> None:
    r, out = run(case.ops)
    assert out == case.stream
    assert r.stream_bytes == len(case.stream)
    assert r.retransmits == case.retransmits
    assert r.gap_bytes == case.gap_bytes
    assert r.gap == (case.gap_bytes > 0)
    assert r.anomalies == case.anomalies
    assert r.midstream == case.midstream
    assert r.payload_bytes == _payload_total(case.ops)


def test_next_seq_follows_the_stream_across_2_32() -> None:
    r, _ = run([("syn", WRAP_ISN), d(0, bytes(9), WRAP_ISN)])
    assert r.next_seq == 0
    r.data(0, b"xy")
    assert r.next_seq == 2
    assert seq_diff(2, WRAP_ISN) == 12
    assert seq_diff(WRAP_ISN, 2) == -12


def test_in_order_returns_the_payload_object() -> None:
    payload = b"x" * 1000
    r, _ = run([syn()])
    assert r.data(ISN + 1, payload) is payload


SEGMENTS = [(0, b"abc"), (3, b"de"), (5, b"fgh"), (8, b"ij")]


@pytest.mark.parametrize("order", list(itertools.permutations(SEGMENTS)), ids=str)
def test_every_order_of_four_segments(order: tuple[tuple[int, bytes], ...]) -> None:
    r, out = run([syn(), *(d(off, p) for off, p in order), ("flush",)])
    assert out == b"abcdefghij"
    assert (r.gap, r.gap_bytes, r.retransmits, r.anomalies) == (False, 0, 0, set())


def test_gap_stops_delivery_but_counts_payload() -> None:
    r, out = run([syn(), d(0, b"abc"), ack(5)])
    assert (out, r.gap, r.gap_bytes) == (b"abc", True, 2)
    assert r.data(ISN + 4, b"de") == b""
    assert r.data(ISN + 6, b"fg") == b""
    assert r.peer_ack(ISN + 100) == b""
    assert (r.gap_bytes, r.stream_bytes, r.payload_bytes) == (2, 3, 7)


def test_ooo_segment_limit_declares_a_gap() -> None:
    r, _ = run([syn(), d(0, b"a")])
    # a hole at offset 1, then one-byte segments behind it
    for k in range(MAX_OOO_SEGMENTS):
        assert r.data(ISN + 3 + k, b"x") == b""
    assert not r.gap
    r.data(ISN + 3 + MAX_OOO_SEGMENTS, b"x")
    assert r.gap and r.gap_bytes == 1
    assert r.anomalies == {Anomaly.OOO_BUFFER_LIMIT}
    assert r.data(ISN + 2, b"b") == b""  # the hole filled too late: nothing more delivered


def test_ooo_byte_limit_declares_a_gap() -> None:
    r, _ = run([syn()])
    size = 10_000
    k = 0
    while not r.gap:
        k += 1
        assert r.data(ISN + 1 + k * size, bytes(size)) == b""
    assert k == MAX_OOO_BYTES // size + 1
    assert r.gap_bytes == size
    assert r.anomalies == {Anomaly.OOO_BUFFER_LIMIT}


def test_a_large_in_order_segment_is_not_a_limit() -> None:
    big = bytes(MAX_OOO_BYTES + 1)
    # in order while a piece is buffered behind it
    r, out = run([syn(), d(len(big) + 1, b"z"), d(0, b"a" + big)])
    assert out == b"a" + big + b"z"
    assert (r.gap, r.anomalies) == (False, set())


def _peak_memory(feed: int, in_order: bool) -> int:
    """Peak traced memory while ``feed`` fresh 1460-byte segments go through one direction."""
    r = Reassembler()
    r.syn(ISN)
    gc.collect()
    tracemalloc.start()
    try:
        for k in range(feed):
            offset = k * 1460 if in_order else (k + 1) * 1460  # out of order: offset 0 is a hole
            r.data((ISN + 1 + offset) & SEQ_MASK, os.urandom(1460))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_bounded_out_of_order() -> None:
    peak = _peak_memory(10_000, in_order=False)  # 14.6 MB behind one hole
    assert peak < 2 * MAX_OOO_BYTES


def test_memory_is_bounded_without_acks() -> None:
    peak = _peak_memory(10_000, in_order=True)  # 14.6 MB in order, never acknowledged
    assert peak < 2 * MAX_OOO_BYTES


# -- Hypothesis ---------------------------------------------------------------------------

ISNS = st.one_of(st.integers(0, SEQ_MASK), st.integers(SEQ_MASK - 2100, SEQ_MASK))


@st.composite
def shuffled_copies(draw: st.DrawFn) -> tuple[bytes, int, list[tuple[int, bytes]], list[bool]]:
    """A stream, an ISN, a segmentation plus retransmitted slices, in a random order."""
    stream = draw(st.binary(min_size=1, max_size=2000))
    isn = draw(ISNS)
    cuts = sorted(set(draw(st.lists(st.integers(1, len(stream)), max_size=40))) | {len(stream)})
    segments = [(a, stream[a:b]) for a, b in itertools.pairwise([0, *cuts])]
    for start, length in draw(st.lists(st.tuples(st.integers(0, len(stream) - 1),
                                                 st.integers(1, 300)), max_size=15)):
        segments.append((start, stream[start : start + length]))
    order = draw(st.permutations(segments))
    acks = draw(st.lists(st.booleans(), min_size=len(order), max_size=len(order)))
    return stream, isn, order, acks


@given(shuffled_copies())
@settings(max_examples=400, deadline=None)
def test_any_order_and_duplication_reassembles(
    case: tuple[bytes, int, list[tuple[int, bytes]], list[bool]],
) -> None:
    stream, isn, order, acks = case
    r = Reassembler()
    r.syn(isn)
    out = bytearray()
    for (offset, payload), send_ack in zip(order, acks, strict=True):
        out += r.data((isn + 1 + offset) & SEQ_MASK, payload)
        if send_ack:  # the receiver acknowledges what it has in order
            assert r.next_seq is not None
            r.peer_ack(r.next_seq)
    r.fin((isn + 1 + len(stream)) & SEQ_MASK, 0)
    r.peer_ack((isn + 2 + len(stream)) & SEQ_MASK)
    r.flush()
    assert bytes(out) == stream
    assert (r.gap, r.gap_bytes, r.anomalies) == (False, 0, set())
    assert r.stream_bytes == len(stream)
    assert r.payload_bytes == sum(len(p) for _, p in order)
    assert r.retransmits <= len(order) - 1
    assert r.next_seq == (isn + 1 + len(stream)) & SEQ_MASK


@given(
    stream=st.binary(min_size=1, max_size=500),
    isn=ISNS,
    slices=st.lists(st.tuples(st.integers(0, 499), st.integers(1, 60)), max_size=30),
)
@settings(max_examples=400, deadline=None)
def test_holes_model(stream: bytes, isn: int, slices: list[tuple[int, int]]) -> None:
    """Some slices of a stream, some missing: the output is the covered prefix; flush calls
    the remaining holes a gap of exactly the uncovered bytes."""
    segs = [(a, stream[a : a + n]) for a, n in slices if a < len(stream)]
    covered = bytearray(len(stream))
    for a, p in segs:
        covered[a : a + len(p)] = b"\x01" * len(p)
    prefix = covered.find(0) if 0 in covered else len(stream)
    max_end = max((a + len(p) for a, p in segs), default=0)
    r = Reassembler()
    r.syn(isn)
    out = bytearray()
    for a, p in segs:
        out += r.data((isn + 1 + a) & SEQ_MASK, p)
    r.flush()
    assert bytes(out) == stream[:prefix]
    assert r.gap == (max_end > prefix)
    assert r.gap_bytes == covered[:max_end].count(0)


SEQS = st.one_of(st.integers(-(2**33), 2**33), st.sampled_from([0, 1, SEQ_MASK, 2**31]))
GARBAGE_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("syn"), SEQS),
        st.tuples(st.just("data"), SEQS, st.binary(max_size=40)),
        st.tuples(st.just("data"), st.integers(0, 200), st.binary(max_size=40)),
        st.tuples(st.just("fin"), SEQS, st.integers(-100, 100)),
        st.tuples(st.just("ack"), SEQS),
        st.tuples(st.just("ack"), st.integers(0, 250)),
        st.tuples(st.just("flush")),
    ),
    max_size=60,
)


@given(GARBAGE_OPS)
@settings(max_examples=600, deadline=None)
def test_garbage_calls_never_raise(ops: list[Op]) -> None:
    r, out = run(ops)
    assert len(out) == r.stream_bytes
    assert r.payload_bytes == _payload_total(ops)
    assert r.gap_bytes >= 0 and r.retransmits >= 0
    assert r.next_seq is None or 0 <= r.next_seq <= SEQ_MASK
    assert r.gap == (r.gap_bytes > 0)


# -- a real TLS connection on loopback, with drops ----------------------------------------

PORT = 4433
CLIENT_SENDS = 200_000
SERVER_SENDS = 220_000


class _Peer:
    """A TLS endpoint over a blocking socket through memory BIOs, so that every byte it
    writes to or reads from TCP is counted."""

    def __init__(self, sock: socket.socket, ctx: ssl.SSLContext, server: bool) -> None:
        self.sock = sock
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server_side=server,
                                server_hostname=None if server else "localhost")
        self.sent = 0
        self.received = 0

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)
            self.sent += len(data)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.received += len(data)
        if data:
            self.incoming.write(data)
        return bool(data)

    def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                if not self._fill():
                    raise ConnectionError("EOF in handshake") from None
            else:
                self._flush()
                return

    def send(self, data: bytes) -> None:
        for i in range(0, len(data), 16384):
            self.tls.write(data[i : i + 16384])
            self._flush()

    def recv_exactly(self, n: int) -> None:
        got = 0
        while got < n:
            try:
                got += len(self.tls.read(n - got))
            except ssl.SSLWantReadError:
                if not self._fill():
                    raise ConnectionError("EOF in data") from None
        self._flush()

    def close(self) -> None:
        """FIN, then read (and count) everything until the peer's FIN."""
        self.sock.shutdown(socket.SHUT_WR)
        while self._fill():
            pass
        self.sock.close()


def _capture_main(pcap: str, cert: str, key: str) -> None:
    """Runs inside ``unshare -n``: loopback with 5 % random drops, tcpdump, TLS both ways.
    Prints what each side wrote to and read from TCP, as JSON."""
    for cmd in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "link", "set", "lo", "mtu", "1500"],
        # Dropped on input, after tcpdump saw the packet: the sender really retransmits.
        # (Dropped on OUTPUT, TCP would see a local send error and quietly send again.)
        ["iptables", "-A", "INPUT", "-p", "tcp", "-m", "statistic", "--mode", "random",
         "--probability", "0.05", "-j", "DROP"],
    ):
        subprocess.run(cmd, check=True, capture_output=True)
    # one packet per MSS, so that drops hit single segments
    subprocess.run(["ethtool", "-K", "lo", "tso", "off", "gso", "off", "gro", "off"],
                   check=False, capture_output=True)
    dump = subprocess.Popen(["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-n", "-s", "0",
                             "-B", "8192", "-w", pcap, "tcp", "port", str(PORT)],
                            stderr=subprocess.PIPE, text=True)
    assert dump.stderr is not None
    while "listening on" not in dump.stderr.readline():  # the capture is ready
        pass

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cert)
    listener = socket.create_server(("127.0.0.1", PORT))
    counts: dict[str, int] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        conn.settimeout(15)
        peer = _Peer(conn, server_ctx, server=True)
        peer.handshake()
        peer.recv_exactly(CLIENT_SENDS)
        peer.send(os.urandom(SERVER_SENDS))
        peer.close()
        counts.update(server_sent=peer.sent, server_received=peer.received)

    thread = threading.Thread(target=serve)
    thread.start()
    sock = socket.create_connection(("127.0.0.1", PORT), timeout=15)
    client = _Peer(sock, client_ctx, server=False)
    client.handshake()
    client.send(os.urandom(CLIENT_SENDS))
    client.recv_exactly(SERVER_SENDS)
    client.close()
    thread.join(20)
    time.sleep(0.5)  # the last ACKs
    dump.send_signal(signal.SIGINT)
    _, stats = dump.communicate(timeout=10)
    dropped = re.search(r"(\d+) packets? dropped by kernel", stats)
    counts.update(client_sent=client.sent, client_received=client.received,
                  kernel_drops=int(dropped.group(1)) if dropped else -1)
    print(json.dumps(counts))


def _feed_pcap(pcap: str) -> tuple[dict[int, Reassembler], dict[int, int], int]:
    """Both directions of the one connection through Reassemblers, keyed by source port.
    Returns them, the reassembled lengths, and how many data segments repeat a byte already
    seen in their direction (the capture's own retransmission count: on a busy machine the
    capture may record segments out of order, which fill holes and repeat nothing)."""
    import dpkt  # test-only: the project's pcap source is tested elsewhere

    rs: dict[int, Reassembler] = {}
    lengths: dict[int, int] = {}
    seen: dict[int, list[tuple[int, int]]] = {}  # byte ranges, from the first data seq
    first: dict[int, int] = {}
    repeats = 0
    with open(pcap, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        assert reader.datalink() == dpkt.pcap.DLT_EN10MB
        for _, buf in reader:
            tcp = dpkt.ethernet.Ethernet(buf).data.data
            assert isinstance(tcp, dpkt.tcp.TCP)
            src, dst = tcp.sport, tcp.dport
            r = rs.setdefault(src, Reassembler())
            peer = rs.setdefault(dst, Reassembler())
            if tcp.flags & dpkt.tcp.TH_SYN:
                r.syn(tcp.seq)
            if tcp.data:
                lengths[src] = lengths.get(src, 0) + len(r.data(tcp.seq, bytes(tcp.data)))
                start = seq_diff(tcp.seq, first.setdefault(src, tcp.seq))
                end = start + len(tcp.data)
                ranges = seen.setdefault(src, [])
                if any(lo < end and start < hi for lo, hi in ranges):
                    repeats += 1
                ranges.append((start, end))
            if tcp.flags & dpkt.tcp.TH_FIN:
                r.fin(tcp.seq, len(tcp.data))
            if tcp.flags & dpkt.tcp.TH_ACK:
                peer.peer_ack(tcp.ack)
    for r in rs.values():
        r.flush()
    return rs, lengths, repeats


@pytest.mark.root
def test_real_tls_connection_with_drops(tmp_path: Path) -> None:
    tools = ("unshare", "ip", "iptables", "tcpdump", "openssl")
    if os.geteuid() != 0 or not all(shutil.which(t) for t in tools):
        pytest.skip("needs root, unshare, ip, iptables, tcpdump and openssl")
    pytest.importorskip("dpkt")
    cert, key, pcap = (str(tmp_path / n) for n in ("cert.pem", "key.pem", "tls.pcap"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    code = ("import sys; from tests.test_reassembly import _capture_main; "
            "_capture_main(*sys.argv[1:])")
    root = Path(__file__).resolve().parent.parent
    started = time.monotonic()
    done = subprocess.run(["unshare", "-n", sys.executable, "-c", code, pcap, cert, key],
                          cwd=root, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode and "unshare" in done.stderr and "Operation not permitted" in done.stderr:
        pytest.skip("network namespaces are not permitted here")
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["kernel_drops"] == 0
    rs, lengths, repeats = _feed_pcap(pcap)
    client_port = next(p for p in rs if p != PORT)
    client, server = rs[client_port], rs[PORT]
    assert lengths[client_port] == client.stream_bytes == counts["client_sent"]
    assert lengths[client_port] == counts["server_received"]
    assert lengths[PORT] == server.stream_bytes == counts["server_sent"]
    assert lengths[PORT] == counts["client_received"]
    assert counts["client_sent"] > CLIENT_SENDS and counts["server_sent"] > SERVER_SENDS
    for r in (client, server):
        assert (r.gap, r.gap_bytes, r.anomalies, r.midstream) == (False, 0, set(), False)
    assert repeats > 0  # the drops made the senders retransmit
    assert client.retransmits + server.retransmits == repeats
    assert time.monotonic() - started < 30

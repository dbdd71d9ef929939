"""Per-direction TCP reassembly: segments in, the in-order byte stream out.

A :class:`Reassembler` follows one direction of one TCP connection. It is fed the
direction's SYN, data segments and FIN, and the acknowledgement numbers the other side
sends; it returns the bytes that became contiguous and keeps a few facts for the record
(retransmissions, bytes missing from the capture, anomalies).

Rules (RFC 9293 §3.4 sequence numbers, §3.10.7.4 segment arrival):

* Sequence numbers are compared by their 32-bit modular difference (:func:`seq_diff`), so a
  stream may cross 2^32. Inside, positions are plain integers counted from the stream start.
* First copy wins: bytes already delivered or already buffered are kept; a later copy that
  differs is :attr:`Anomaly.OVERLAP_MISMATCH`. Delivered bytes stay available for that
  comparison until the peer acknowledges them (at most ``MAX_UNACKED_BYTES``).
* Out-of-order segments wait in a bounded buffer (``MAX_OOO_BYTES``, ``MAX_OOO_SEGMENTS``);
  beyond it the hole is declared a gap (:attr:`Anomaly.OOO_BUFFER_LIMIT`).
* Memory is also bounded across connections: every reassembler of the process draws on
  two shared budgets (:data:`OOO_BUDGET`, :data:`UNACKED_BUDGET`), so that many connections
  each holding a little cannot add up to a lot (a flood of connections with holes). A
  direction whose out-of-order bytes push the shared total over ``MAX_OOO_TOTAL`` declares
  its hole a gap like above; one whose kept bytes push theirs over ``MAX_UNACKED_TOTAL``
  forgets them (later copies of those bytes are then not compared).
* Bytes the peer acknowledged but the capture never had are a gap; so is a hole still
  open, with data or a FIN behind it, at :meth:`Reassembler.flush`. After a gap the
  direction delivers nothing more and only counts payload bytes.

Not done here: choosing which direction a segment belongs to and tracking SYN/RST/handshake
state (the flow table and the engine), counting SYN retransmissions (the engine), urgent
data (delivered inline like any other byte) and parsing the bytes.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Set
from typing import Final

from analyzer.anomalies import Anomaly
from analyzer.limits import (
    MAX_OOO_BYTES,
    MAX_OOO_SEGMENTS,
    MAX_OOO_TOTAL,
    MAX_UNACKED_BYTES,
    MAX_UNACKED_SEGMENTS,
    MAX_UNACKED_TOTAL,
)

SEQ_MASK: Final = 0xFFFFFFFF
"""TCP sequence numbers are 32-bit and wrap around (RFC 9293 §3.4)."""

_HALF: Final = 1 << 31

MAX_WINDOW: Final = 0xFFFF << 14
"""The largest window TCP can advertise (RFC 7323 §2.3): no segment or acknowledgement of
this stream can be further ahead of what was seen in order."""

__all__ = [
    "MAX_WINDOW",
    "OOO_BUDGET",
    "SEQ_MASK",
    "UNACKED_BUDGET",
    "Budget",
    "Reassembler",
    "seq_diff",
]

_NO_ANOMALIES: Final[frozenset[Anomaly]] = frozenset()
"""Shared by every reassembler that has seen nothing odd (most): no empty set per object."""


class Budget:
    """Bytes of one kind of buffer held by all reassemblers of the process together."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0


OOO_BUDGET: Final = Budget(MAX_OOO_TOTAL)
"""Out-of-order bytes buffered by every reassembler."""
UNACKED_BUDGET: Final = Budget(MAX_UNACKED_TOTAL)
"""Delivered, not yet acknowledged bytes kept by every reassembler."""


def seq_diff(a: int, b: int) -> int:
    """``a - b`` in 32-bit sequence space, in ``[-2^31, 2^31)``: negative when a is before b."""
    return ((a - b + _HALF) & SEQ_MASK) - _HALF


def _start(piece: tuple[int, bytes]) -> int:
    return piece[0]


class Reassembler:
    """One direction of a TCP connection: turns segments into the in-order byte stream.

    Public attributes are read-only facts:

    * ``next_seq`` -- the sequence number of the next byte expected in order (None until a
      SYN or the first data segment is seen).
    * ``gap`` -- bytes were lost from the capture; nothing more is delivered.
    * ``gap_bytes`` -- size of the holes declared as gaps.
    * ``retransmits`` -- data segments that repeat at least one byte already delivered or
      buffered (keepalive probes included).
    * ``stream_bytes`` -- unique stream bytes delivered in order (the total length of what
      :meth:`data` returned).
    * ``payload_bytes`` -- all payload passed to :meth:`data`, retransmissions included.
    * ``midstream`` -- the stream started at a data segment, its SYN was not seen.
    * ``anomalies`` -- what was odd (overlap mismatch, buffer limit, data after FIN,
      sequence numbers out of any window, midstream).

    Before any byte is delivered, two SYNs with different sequence numbers (a new attempt
    on the same ports, or a retransmission of an older one) are both remembered; the one
    that data or the peer's acknowledgement then matches is used.
    """

    __slots__ = (
        "_alt_start",
        "_fin_seq",
        "_kept",
        "_kept_bytes",
        "_ooo",
        "_ooo_bytes",
        "_plain",
        "_start_seq",
        "anomalies",
        "gap",
        "gap_bytes",
        "midstream",
        "next_seq",
        "payload_bytes",
        "retransmits",
        "stream_bytes",
    )

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self.gap = False
        self.gap_bytes = 0
        self.retransmits = 0
        self.stream_bytes = 0
        self.payload_bytes = 0
        self.midstream = False
        self.anomalies: Set[Anomaly] = _NO_ANOMALIES
        # Stream positions below are plain ints: stream_bytes is the position of next_seq.
        self._start_seq: int | None = None  # seq of the first stream byte
        self._alt_start: int | None = None  # the start given by another SYN, until data comes
        self._fin_seq: int | None = None  # seq of the FIN (first one seen)
        self._ooo: list[tuple[int, bytes]] = []  # out-of-order pieces, sorted, disjoint
        self._ooo_bytes = 0
        self._kept: list[bytes] = []  # delivered, not yet acknowledged, ending at next_seq
        self._kept_bytes = 0
        self._plain = False  # started, nothing buffered, no FIN, no gap: the fast path

    def __del__(self) -> None:
        # A reassembler dropped while holding bytes gives them back to the shared budgets.
        self._release()

    def _release(self, ooo: Budget = OOO_BUDGET, unacked: Budget = UNACKED_BUDGET) -> None:
        # The budgets are bound as defaults: they outlive the module's globals at
        # interpreter exit.
        if self._ooo_bytes:
            ooo.used -= self._ooo_bytes
        if self._kept_bytes:
            unacked.used -= self._kept_bytes

    # -- inputs ---------------------------------------------------------------------------

    def syn(self, seq: int) -> None:
        """A SYN with sequence number ``seq``: the stream starts at ``seq + 1``.

        A repeated SYN with the same ``seq`` changes nothing. A SYN with another ``seq``
        restarts the stream only while nothing has been delivered or buffered (the previous
        start stays known: data or an acknowledgement at it switches back).
        """
        start = (seq + 1) & SEQ_MASK
        if self._start_seq == start:
            if self.midstream:  # data was captured before its SYN: not midstream after all
                self.midstream = False
                self._forget(Anomaly.MIDSTREAM)
            return
        if not self._untouched():
            return
        self._alt_start = self._start_seq
        self._begin(start)

    def data(self, seq: int, payload: bytes) -> bytes:
        """A data segment; returns the bytes that became contiguous thanks to it (b"" if none)."""
        n = len(payload)
        self.payload_bytes += n
        if seq == self.next_seq and self._plain and n:
            # Fast path: in order, nothing buffered. No copy of the payload.
            self.next_seq = (seq + n) & SEQ_MASK
            self.stream_bytes += n
            self._kept.append(payload)
            self._kept_bytes += n
            UNACKED_BUDGET.used += n
            if (
                self._kept_bytes > MAX_UNACKED_BYTES
                or len(self._kept) > MAX_UNACKED_SEGMENTS
                or UNACKED_BUDGET.used > UNACKED_BUDGET.limit
            ):
                self._trim_kept()
            return payload
        return self._data_slow(seq, payload)

    def fin(self, seq: int, payload_len: int) -> None:
        """A FIN on a segment at ``seq`` carrying ``payload_len`` bytes: the stream ends there."""
        fin_seq = (seq + payload_len) & SEQ_MASK
        if self._fin_seq is None:
            self._fin_seq = fin_seq
        elif fin_seq != self._fin_seq:
            # Two different ends: one of them has data after it.
            self._note(Anomaly.DATA_AFTER_CLOSE)
            return
        self._plain = False
        if self.next_seq is None or self.gap:
            return
        end = self.stream_bytes + seq_diff(fin_seq, self.next_seq)
        if end - self.stream_bytes > MAX_WINDOW:
            self._note(Anomaly.SEQ_OUT_OF_WINDOW)
            self._fin_seq = None
            self._plain = not self._ooo
        elif end < self.stream_bytes:
            self._note(Anomaly.DATA_AFTER_CLOSE)  # already delivered beyond the FIN
        elif self._ooo and self._ooo[-1][0] + len(self._ooo[-1][1]) > end:
            self._note(Anomaly.DATA_AFTER_CLOSE)  # buffered beyond the FIN: drop it
            self._cut_ooo(end)

    def peer_ack(self, ack: int) -> bytes:
        """The other side acknowledged everything before ``ack``.

        Acknowledged bytes that were never captured are declared a gap. Always returns b"":
        an acknowledgement never makes bytes contiguous, and after a gap nothing is delivered.
        """
        next_seq = self.next_seq
        if ack == next_seq:  # the common case: everything delivered is acknowledged
            if self._kept:
                self._forget_kept()
            return b""
        if next_seq is None or self.gap:
            return b""
        if ack == self._alt_start and self._untouched():
            self._switch_start()
            return b""
        ahead = seq_diff(ack, next_seq)
        if ahead > MAX_WINDOW:
            self._note(Anomaly.SEQ_OUT_OF_WINDOW)
            return b""
        if ahead < 0:
            self._drop_kept_before(self.stream_bytes + ahead)
            return b""
        self._drop_kept_before(self.stream_bytes)
        end = self.stream_bytes + ahead
        if self._fin_seq is not None:  # the FIN takes one sequence number of its own
            end = min(end, self.stream_bytes + seq_diff(self._fin_seq, next_seq))
        missing = self._missing(end)
        if missing:
            self._declare_gap(missing)
        return b""

    def flush(self) -> None:
        """End of the connection or capture: a hole with data or a FIN behind it is a gap."""
        self._forget_kept()
        if self.next_seq is None or self.gap:
            return
        end = self.stream_bytes
        if self._ooo:
            end = self._ooo[-1][0] + len(self._ooo[-1][1])
        if self._fin_seq is not None:  # out-of-window FINs were not recorded
            end = max(end, self.stream_bytes + seq_diff(self._fin_seq, self.next_seq))
        missing = self._missing(end)
        if missing:
            self._declare_gap(missing)

    def release(self) -> None:
        """The stream will not be read any further (its connection took the fast path):
        drop every buffer without judging the holes. Facts stay as they are."""
        self._forget_kept()
        self._forget_ooo()
        self._plain = False

    # -- internals ------------------------------------------------------------------------

    def _begin(self, start: int) -> None:
        self._start_seq = start
        self.next_seq = start
        self._plain = self._fin_seq is None
        self.midstream = False
        self._forget(Anomaly.MIDSTREAM)

    def _untouched(self) -> bool:
        """Nothing delivered or buffered yet: the stream's start may still change."""
        return not (self.stream_bytes or self._ooo or self.gap)

    def _switch_start(self) -> None:
        """Data or an acknowledgement matched the other SYN: use its start."""
        alt = self._alt_start
        assert alt is not None
        self._alt_start = self._start_seq
        self._begin(alt)

    def _data_slow(self, seq: int, payload: bytes) -> bytes:
        if self.gap or not payload:
            return b""
        seq &= SEQ_MASK
        if self.next_seq is None:  # no SYN seen: the capture started mid-connection
            self._begin(seq)
            self.midstream = True
            self._note(Anomaly.MIDSTREAM)
        elif seq == self._alt_start and self._untouched():
            self._switch_start()
        next_seq = self.next_seq
        assert next_seq is not None
        base = self.stream_bytes
        start = base + seq_diff(seq, next_seq)
        if start - base > MAX_WINDOW:
            self._note(Anomaly.SEQ_OUT_OF_WINDOW)
            return b""
        end = start + len(payload)
        if end == base and start == base - 1:
            self.retransmits += 1  # keepalive probe: one (often garbage) byte at next_seq - 1
            return b""
        if self._fin_seq is not None:
            fin_end = base + seq_diff(self._fin_seq, next_seq)
            if end > fin_end:
                self._note(Anomaly.DATA_AFTER_CLOSE)
                if fin_end <= start:
                    return b""
                payload = payload[: fin_end - start]
                end = fin_end
        repeated = False
        if start < base:
            repeated = True
            self._compare_kept(start, payload[: base - start])
            if end <= base:
                self.retransmits += 1
                return b""
            payload = payload[base - start :]
            start = base
        if self._buffer(start, payload) or repeated:
            self.retransmits += 1
        out = self._deliver()
        if (
            self._ooo_bytes > MAX_OOO_BYTES
            or len(self._ooo) > MAX_OOO_SEGMENTS
            or (self._ooo and OOO_BUDGET.used > OOO_BUDGET.limit)
        ):
            self._note(Anomaly.OOO_BUFFER_LIMIT)
            self._declare_gap(self._missing(self._ooo[-1][0] + len(self._ooo[-1][1])))
        else:
            self._plain = not self._ooo and self._fin_seq is None
        return out

    def _buffer(self, start: int, payload: bytes) -> bool:
        """Add the bytes of ``payload`` at ``start`` not already buffered; True if any were."""
        ooo = self._ooo
        end = start + len(payload)
        i = bisect_right(ooo, start, key=_start)
        if i and ooo[i - 1][0] + len(ooo[i - 1][1]) > start:
            i -= 1
        j = i
        pos = start
        new: list[tuple[int, bytes]] = []
        while j < len(ooo) and ooo[j][0] < end:
            b_start, b_data = ooo[j]
            b_end = b_start + len(b_data)
            if b_start > pos:
                new.append((pos, payload[pos - start : b_start - start]))
            lo, hi = max(pos, b_start), min(end, b_end)
            if payload[lo - start : hi - start] != b_data[lo - b_start : hi - b_start]:
                self._note(Anomaly.OVERLAP_MISMATCH)
            pos = max(pos, b_end)
            j += 1
        if pos < end:
            new.append((pos, payload if pos == start else payload[pos - start :]))
        added = sum(len(piece[1]) for piece in new)
        self._ooo_bytes += added
        OOO_BUDGET.used += added
        if j > i:
            ooo[i:j] = sorted(ooo[i:j] + new, key=_start)
        else:
            ooo[i:i] = new
        return j > i

    def _deliver(self) -> bytes:
        """Pop the buffered pieces that now start at next_seq; return their bytes."""
        ooo = self._ooo
        base = self.stream_bytes
        k = 0
        while k < len(ooo) and ooo[k][0] == base:
            base += len(ooo[k][1])
            k += 1
        if not k:
            return b""
        parts = [piece[1] for piece in ooo[:k]]
        del ooo[:k]
        size = base - self.stream_bytes
        self._ooo_bytes -= size
        OOO_BUDGET.used -= size
        self.stream_bytes = base
        assert self.next_seq is not None
        self.next_seq = (self.next_seq + size) & SEQ_MASK
        self._kept.extend(parts)
        self._kept_bytes += size
        UNACKED_BUDGET.used += size
        if (
            self._kept_bytes > MAX_UNACKED_BYTES
            or len(self._kept) > MAX_UNACKED_SEGMENTS
            or UNACKED_BUDGET.used > UNACKED_BUDGET.limit
        ):
            self._trim_kept()
        return parts[0] if k == 1 else b"".join(parts)

    def _compare_kept(self, start: int, old: bytes) -> None:
        """Compare a new copy of delivered bytes with the kept (unacknowledged) copy."""
        pos = self.stream_bytes - self._kept_bytes
        end = start + len(old)
        for chunk in self._kept:
            c_end = pos + len(chunk)
            if c_end > start:
                if pos >= end:
                    return
                lo, hi = max(pos, start), min(c_end, end)
                if chunk[lo - pos : hi - pos] != old[lo - start : hi - start]:
                    self._note(Anomaly.OVERLAP_MISMATCH)
                    return
            pos = c_end

    def _drop_kept_before(self, acked: int) -> None:
        """Forget kept chunks that end at or before stream position ``acked``."""
        kept = self._kept
        pos = self.stream_bytes - self._kept_bytes
        k = 0
        while k < len(kept) and pos + len(kept[k]) <= acked:
            pos += len(kept[k])
            k += 1
        if k:
            del kept[:k]
            size = self.stream_bytes - pos
            UNACKED_BUDGET.used -= self._kept_bytes - size
            self._kept_bytes = size

    def _trim_kept(self) -> None:
        if UNACKED_BUDGET.used > UNACKED_BUDGET.limit:
            self._forget_kept()  # the shared budget is spent: this direction keeps nothing
            return
        kept = self._kept
        k = 0
        size = self._kept_bytes
        while k < len(kept) and (size > MAX_UNACKED_BYTES or len(kept) - k > MAX_UNACKED_SEGMENTS):
            size -= len(kept[k])
            k += 1
        del kept[:k]
        UNACKED_BUDGET.used -= self._kept_bytes - size
        self._kept_bytes = size

    def _forget_kept(self) -> None:
        self._kept.clear()
        UNACKED_BUDGET.used -= self._kept_bytes
        self._kept_bytes = 0

    def _forget_ooo(self) -> None:
        self._ooo.clear()
        OOO_BUDGET.used -= self._ooo_bytes
        self._ooo_bytes = 0

    def _note(self, anomaly: Anomaly) -> None:
        if anomaly not in self.anomalies:
            self.anomalies = self.anomalies | {anomaly}

    def _forget(self, anomaly: Anomaly) -> None:
        if anomaly in self.anomalies:
            self.anomalies = self.anomalies - {anomaly}

    def _cut_ooo(self, end: int) -> None:
        """Drop buffered bytes at or beyond stream position ``end``."""
        ooo = self._ooo
        before = self._ooo_bytes
        while ooo and ooo[-1][0] >= end:
            self._ooo_bytes -= len(ooo.pop()[1])
        if ooo and ooo[-1][0] + len(ooo[-1][1]) > end:
            b_start, b_data = ooo[-1]
            self._ooo_bytes -= b_start + len(b_data) - end
            ooo[-1] = (b_start, b_data[: end - b_start])
        OOO_BUDGET.used -= before - self._ooo_bytes

    def _missing(self, end: int) -> int:
        """Bytes between next_seq and stream position ``end`` that are not buffered."""
        missing = 0
        pos = self.stream_bytes
        for b_start, b_data in self._ooo:
            if b_start >= end:
                break
            missing += max(0, b_start - pos)
            pos = max(pos, b_start + len(b_data))
        return missing + max(0, end - pos)

    def _declare_gap(self, missing: int) -> None:
        self.gap = True
        self.gap_bytes += missing
        self._plain = False
        self._forget_ooo()
        self._forget_kept()

"""The connection table: 4-tuple lookup in either direction, idle expiry by packet time.

Each connection is stored under both orientations of its 4-tuple so a packet needs one
dict lookup whatever its direction. Expiry is lazy: two queues (connections still in their
handshake, and settled ones), each a heap by the time a connection was queued, are scanned
from the front only when packet time has moved on; an entry that saw traffic since it was
queued is re-queued at its last packet time instead of expired. Because the heap keeps that
order exactly, a scan expires every idle connection and nothing else, whatever else is in
the table: a worker that holds one shard of a capture's connections expires each of them at
the same packet as a single process holding all of them.
Size is bounded twice: ``MAX_HANDSHAKING_FLOWS`` still in their handshake (what a flood
of half-open connections fills) and ``MAX_FLOWS`` in all; the oldest go first.
The table holds any object with ``last_ts`` and ``settled`` attributes; it knows nothing
about TLS.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

from analyzer import limits

FlowKey = tuple[bytes, int, bytes, int]


class Flow(Protocol):
    last_ts: float
    settled: bool
    key: FlowKey


F = TypeVar("F", bound=Flow)


class FlowTable(Generic[F]):
    """Connections by 4-tuple, with bounded size and idle expiry."""

    def __init__(
        self,
        *,
        max_flows: int = limits.MAX_FLOWS,
        max_handshaking: int = limits.MAX_HANDSHAKING_FLOWS,
        handshake_timeout: float = limits.HANDSHAKE_IDLE_TIMEOUT,
        idle_timeout: float = limits.IDLE_TIMEOUT,
    ) -> None:
        self._by_key: dict[FlowKey, F] = {}
        # Per queue (0: still in their handshake, 1: settled): the live flows by id, in
        # the order they joined the queue, and a heap of (time queued, sequence, flow)
        # whose entries for flows that left the queue are dropped lazily.
        self._members: tuple[dict[int, F], dict[int, F]] = ({}, {})
        self._heaps: tuple[list[tuple[float, int, F]], list[tuple[float, int, F]]] = ([], [])
        self._seq = itertools.count()
        self.max_flows = max_flows
        self.max_handshaking = max_handshaking
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout

    def __len__(self) -> int:
        return len(self._members[0]) + len(self._members[1])

    def get(self, key: FlowKey) -> F | None:
        return self._by_key.get(key)

    def add(self, flow: F) -> None:
        src, sport, dst, dport = flow.key
        self._by_key[flow.key] = flow
        self._by_key[(dst, dport, src, sport)] = flow
        self._members[0][id(flow)] = flow
        heapq.heappush(self._heaps[0], (flow.last_ts, next(self._seq), flow))

    def mark_settled(self, flow: F) -> None:
        """Move a flow to the settled queue (longer idle timeout)."""
        if self._members[0].pop(id(flow), None) is not None:
            self._members[1][id(flow)] = flow
            heapq.heappush(self._heaps[1], (flow.last_ts, next(self._seq), flow))
            self._compact(0)

    def remove(self, flow: F) -> None:
        src, sport, dst, dport = flow.key
        if self._by_key.get(flow.key) is flow:
            del self._by_key[flow.key]
        rev = (dst, dport, src, sport)
        if self._by_key.get(rev) is flow:
            del self._by_key[rev]
        for which, members in enumerate(self._members):
            if members.get(id(flow)) is flow:
                del members[id(flow)]
                self._compact(which)

    def _compact(self, which: int) -> None:
        """Drop the entries of flows that left the queue once they outnumber the others."""
        heap, members = self._heaps[which], self._members[which]
        if len(heap) > 2 * len(members) + 1024:
            heap[:] = [e for e in heap if members.get(id(e[2])) is e[2]]
            heapq.heapify(heap)

    def expired(self, now: float) -> Iterator[F]:
        """Remove and yield the flows idle for longer than their timeout at packet time
        ``now``: every one of them, whatever the other flows in the table (so a table
        holding a subset of the connections expires them at the same packet).

        Each queue is a heap by the time a flow was (re)queued. A front flow that saw
        traffic since it was queued is requeued at its last packet time; the first front
        flow that did not, and is not idle long enough, ends the scan: every other flow was
        queued at that time or later and has seen no fewer packets since.
        """
        for which, timeout in ((0, self.handshake_timeout), (1, self.idle_timeout)):
            heap, members = self._heaps[which], self._members[which]
            while heap:
                queued_at, _, flow = heap[0]
                if members.get(id(flow)) is not flow:
                    heapq.heappop(heap)  # left this queue
                elif flow.last_ts + timeout < now:
                    heapq.heappop(heap)
                    self.remove(flow)
                    yield flow
                elif flow.last_ts > queued_at:
                    heapq.heapreplace(heap, (flow.last_ts, next(self._seq), flow))
                else:
                    break

    def over_limit(self) -> Iterator[F]:
        """Remove and yield the oldest flows while the table is over one of its limits.

        More than ``max_handshaking`` flows in their handshake: the oldest of those go
        (a flood of half-open connections costs a bounded amount of memory and pushes out
        no settled connection). More than ``max_flows`` in all: the oldest settled ones go
        (the flows still in their handshake are the newest and few), so a table full of
        long-lived connections still takes new ones instead of evicting each at once."""
        while True:
            if len(self._members[0]) > self.max_handshaking:
                which = 0
            elif len(self) > self.max_flows:
                which = 1 if self._members[1] else 0
            else:
                return
            heap, members = self._heaps[which], self._members[which]
            queued_at, _, flow = heap[0]
            if members.get(id(flow)) is not flow:
                heapq.heappop(heap)  # left this queue
            elif flow.last_ts > queued_at:
                # Traffic since it was queued: requeue it at its last packet time, so the
                # flow evicted is the one idle longest, not the one that came first.
                heapq.heapreplace(heap, (flow.last_ts, next(self._seq), flow))
            else:
                heapq.heappop(heap)
                self.remove(flow)
                yield flow

    def drain(self) -> Iterator[F]:
        """Remove and yield every flow (end of capture), oldest first."""
        flows = [*self._members[0].values(), *self._members[1].values()]
        flows.sort(key=lambda f: f.last_ts)
        flows.reverse()
        self._by_key.clear()
        for members, heap in zip(self._members, self._heaps, strict=True):
            members.clear()
            heap.clear()
        while flows:
            yield flows.pop()  # not kept here once yielded: the caller frees each in turn

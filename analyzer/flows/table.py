"""The connection table: 4-tuple lookup in either direction, idle expiry by packet time.

Each connection is stored under both orientations of its 4-tuple so a packet needs one
dict lookup whatever its direction. Expiry is lazy: two FIFO queues (connections still in
their handshake, and settled ones) are scanned from the front only when packet time has
moved on; an entry that saw traffic since it was queued is re-queued instead of expired.
The table holds any object with ``last_ts`` and ``settled`` attributes; it knows nothing
about TLS.
"""

from __future__ import annotations

from collections import OrderedDict
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
        handshake_timeout: float = limits.HANDSHAKE_IDLE_TIMEOUT,
        idle_timeout: float = limits.IDLE_TIMEOUT,
    ) -> None:
        self._by_key: dict[FlowKey, F] = {}
        # id(flow) -> (time queued, flow)
        self._handshaking: OrderedDict[int, tuple[float, F]] = OrderedDict()
        self._settled: OrderedDict[int, tuple[float, F]] = OrderedDict()
        self.max_flows = max_flows
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout

    def __len__(self) -> int:
        return len(self._handshaking) + len(self._settled)

    def get(self, key: FlowKey) -> F | None:
        return self._by_key.get(key)

    def add(self, flow: F) -> None:
        src, sport, dst, dport = flow.key
        self._by_key[flow.key] = flow
        self._by_key[(dst, dport, src, sport)] = flow
        self._handshaking[id(flow)] = (flow.last_ts, flow)

    def mark_settled(self, flow: F) -> None:
        """Move a flow to the settled queue (longer idle timeout)."""
        if self._handshaking.pop(id(flow), None) is not None:
            self._settled[id(flow)] = (flow.last_ts, flow)

    def remove(self, flow: F) -> None:
        src, sport, dst, dport = flow.key
        if self._by_key.get(flow.key) is flow:
            del self._by_key[flow.key]
        rev = (dst, dport, src, sport)
        if self._by_key.get(rev) is flow:
            del self._by_key[rev]
        self._handshaking.pop(id(flow), None)
        self._settled.pop(id(flow), None)

    def expired(self, now: float) -> Iterator[F]:
        """Remove and yield the flows idle for longer than their timeout at packet time
        ``now``.

        Each queue is ordered by the time a flow was (re)queued. A front flow that saw
        traffic since it was queued is requeued at its last packet time; the first front
        flow that did not, and is not idle long enough, ends the scan: everything behind it
        was queued later.
        """
        for queue, timeout in (
            (self._handshaking, self.handshake_timeout),
            (self._settled, self.idle_timeout),
        ):
            while queue:
                fid, (queued_at, flow) = next(iter(queue.items()))
                if flow.last_ts + timeout < now:
                    self.remove(flow)
                    yield flow
                elif flow.last_ts > queued_at:
                    queue.move_to_end(fid)
                    queue[fid] = (flow.last_ts, flow)
                else:
                    break

    def over_limit(self) -> Iterator[F]:
        """Remove and yield the oldest flows while the table is over its size limit,
        flows still in their handshake first (half-open floods land there)."""
        while len(self) > self.max_flows:
            queue = self._handshaking or self._settled
            _, flow = next(iter(queue.values()))
            self.remove(flow)
            yield flow

    def drain(self) -> Iterator[F]:
        """Remove and yield every flow (end of capture), oldest first."""
        flows = [f for _, f in (*self._handshaking.values(), *self._settled.values())]
        flows.sort(key=lambda f: f.last_ts)
        for flow in flows:
            self.remove(flow)
            yield flow

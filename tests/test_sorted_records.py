"""Sorted file output with bounded memory: records past the limit wait on disk."""

from __future__ import annotations

import random

from analyzer.record import AlertInfo, HandshakeRecord, TimelineEntry
from analyzer.sorted_records import SortedRecords


def record(i: int, ts: float) -> HandshakeRecord:
    return HandshakeRecord(
        uid=f"C{i:05d}",
        capture="t.pcap",
        ts=ts,
        ts_end=ts + 1,
        client_ip="10.0.0.2",
        client_port=1024 + i,
        server_ip="10.0.0.1",
        server_port=443,
        alerts=[
            AlertInfo(
                sender="server",
                level="fatal",
                description="handshake_failure",
                code=40,
                encrypted=False,
                ts=ts,
            )
        ],
        timeline=[TimelineEntry(t=0.0, sender="client", what="SYN")],
    )


def test_order_and_content_survive_the_spill() -> None:
    rng = random.Random(7)
    recs = [record(i, float(rng.randrange(50))) for i in range(300)]
    store = SortedRecords(limit=40)
    for r in recs:
        store.add(r)
    assert len(store) == 300
    out = list(store)
    assert out == sorted(recs, key=lambda r: (r.ts, r.uid))  # equal values, in order
    assert len(store) == 0  # the temporary file is gone after one pass


def test_everything_in_memory_below_the_limit() -> None:
    store = SortedRecords(limit=10)
    for i in range(5):
        store.add(record(i, 5.0 - i))
    assert store._file is None
    assert [r.uid for r in store] == ["C00004", "C00003", "C00002", "C00001", "C00000"]

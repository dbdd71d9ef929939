"""Sorted file output with bounded memory: records past the limit wait on disk."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from analyzer import sorted_records
from analyzer.record import AlertInfo, HandshakeRecord, TimelineEntry
from analyzer.sorted_records import SortedRecords, merge, sort_key


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


def test_runs_merge_in_levels_and_memory_holds_a_few() -> None:
    """Many runs: fan_in runs of one size become one, so few are read at once."""
    rng = random.Random(11)
    recs = [record(i, float(rng.randrange(1000))) for i in range(2000)]
    store = SortedRecords(limit=10, fan_in=4)
    for r in recs:
        store.add(r)
        assert len(store._memory) < 10
        assert len(store._runs) <= 4 * 3  # at most fan_in - 1 of each level, a few levels
    levels = [level for level, _, _ in store._runs]
    assert max(levels) >= 3 and levels == sorted(levels, reverse=True)
    assert list(store) == sorted(recs, key=lambda r: (r.ts, r.uid))


def test_runs_handed_to_another_reader(tmp_path: Path) -> None:
    rng = random.Random(5)
    parts = [[record(i, float(rng.randrange(500))) for i in range(k, 600, 3)] for k in range(3)]
    handed = []
    for n, part in enumerate(parts[:2]):
        store = SortedRecords(limit=25, path=str(tmp_path / f"w{n}.runs"))
        for r in part:
            store.add(r)
        handed.append(store.hand_over())
    here = sorted(parts[2], key=sort_key)
    out = list(merge([handed[0], here, handed[1]]))
    assert out == sorted([r for p in parts for r in p], key=sort_key)
    assert list(tmp_path.iterdir()) == []  # each file removed once read


def test_a_record_larger_than_the_read_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sorted_records, "_READ_SIZE", 64)
    recs = [record(i, float(i % 7)) for i in range(50)]
    store = SortedRecords(limit=8)
    for r in recs:
        store.add(r)
    assert list(store) == sorted(recs, key=sort_key)

"""How many workers ``tlsa analyze`` starts when ``--workers`` is not given: one per core
that other work leaves free, so the default does not lose to one worker on a busy
machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from analyzer.scale import local


def test_default_workers_count_only_free_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large input gets a worker per free core: none busy elsewhere, every core; the
    other work taking all but one, one worker (two would share it and lose to one)."""
    monkeypatch.setattr(local, "cores", lambda: 2)
    monkeypatch.setattr(local, "_size", lambda path: 1 << 30)
    monkeypatch.setattr(local, "_runnable_others", lambda: None)
    big = [Path("big.pcap")]
    for load, expected in ((0.0, 2), (0.4, 2), (0.6, 1), (1.2, 1), (5.0, 1)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        assert local.default_workers(big) == expected, load
    monkeypatch.setattr(local, "cores", lambda: 8)
    monkeypatch.setattr(os, "getloadavg", lambda: (2.7, 1.0, 1.0))
    assert local.default_workers(big) == 5


def test_load_left_by_earlier_runs_does_not_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """A load average of 1 from runs that ended (a script calling tlsa in a loop) while
    nothing else runs now: both cores are free; another job running now: one."""
    monkeypatch.setattr(local, "cores", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.0, 1.0, 1.0))
    monkeypatch.setattr(local, "_runnable_others", lambda: 0)
    assert local.free_cores() == 2
    monkeypatch.setattr(local, "_runnable_others", lambda: 1)
    assert local.free_cores() == 1


def test_runnable_others_reads_the_kernel() -> None:
    others = local._runnable_others()
    assert others is None or others >= 0


def test_small_inputs_stay_in_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr(local, "_size", lambda path: 1 << 20)
    assert local.default_workers([Path("a.pcap"), Path("b.pcap")]) == 1

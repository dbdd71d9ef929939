"""Fuzzing in the normal test run: every regression fixture replayed, and a bounded
coverage-guided run of each target (``tests/fuzz/run.py``, well under two minutes).

Each file under ``tests/fuzz/regressions/<target>/`` is an input that once crashed the
target or broke one of its invariants; it must now pass. The longer run is ``make fuzz``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.api import Run, collect
from tests.fuzz.pcap import Conversation, file_header, tls_record, write_pcap
from tests.fuzz.targets import TARGETS

REGRESSIONS = Path(__file__).parent / "fuzz" / "regressions"
FIXTURES = sorted(p for p in REGRESSIONS.glob("*/*") if p.is_file())


def test_every_target_has_a_regression_directory() -> None:
    assert {p.name for p in REGRESSIONS.iterdir() if p.is_dir()} >= {"capture", "tls_stream"}
    assert set(TARGETS) == {"tls_stream", "hello", "capture"}


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_regression_fixture_passes(path: Path) -> None:
    TARGETS[path.parent.name](path.read_bytes())


def test_server_speaks_first_then_client_alert(tmp_path: Path) -> None:
    # Found by the capture target: the server's bytes come before the client's first TLS
    # record, which is a fatal alert. The alert settles the connection while TLS starts;
    # the server's buffered bytes were then fed to a parser that no longer existed
    # (AssertionError: every record of the file lost, exit 2).
    c = Conversation((bytes([10, 0, 0, 2]), 40000), (bytes([10, 0, 0, 1]), 443))
    c.handshake()
    c.data(False, tls_record(22, bytes.fromhex("0e000000")))  # a stray ServerHelloDone
    c.data(True, tls_record(21, bytes.fromhex("0228")))  # fatal handshake_failure
    path = tmp_path / "server_first.pcap"
    path.write_bytes(write_pcap(file_header(), c.packets))
    run = Run()
    [record] = collect([path], run)
    assert run.errors == []
    assert [(a.sender, a.level, a.description) for a in record.alerts] == [
        ("client", "fatal", "handshake_failure")
    ]
    assert record.history == "L"
    assert record.outcome == "failed"

"""Fuzzing in the normal test run: every regression fixture replayed, and a bounded
coverage-guided run of each target (``tests/fuzz/run.py``, well under two minutes).

Each file under ``tests/fuzz/regressions/<target>/`` is an input that once crashed the
target or broke one of its invariants; it must now pass. The longer run is ``make fuzz``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.api import Run, collect
from analyzer.decode import decode_frame, tcp_count_view
from analyzer.decode.types import Skipped
from tests.fuzz.pcap import Conversation, file_header, ipv4_tcp, tls_record, write_pcap
from tests.fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[1]
SMOKE_SECONDS = 60
"""The bounded run in the normal tests: a quarter of this per target, plus the coverage
replay (about two minutes at most on a slow machine)."""

REGRESSIONS = Path(__file__).parent / "fuzz" / "regressions"
FIXTURES = sorted(p for p in REGRESSIONS.glob("*/*") if p.is_file())


def test_every_target_has_a_regression_directory() -> None:
    assert {p.name for p in REGRESSIONS.iterdir() if p.is_dir()} >= {"capture", "tls_stream"}
    assert set(TARGETS) == {"tls_stream", "hello", "frame", "capture", "keys", "dtls", "quic"}


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


@pytest.mark.parametrize("offset", [0, 1, 4])
def test_fast_path_rejects_a_tcp_header_the_decoder_rejects(offset: int) -> None:
    # Found by the frame target: a TCP data offset under five words made the counting
    # fast path see a segment (with payload and flags) where the decoder sees a bad header,
    # so a settled connection counted packets a full decode would have skipped.
    frame = bytearray(
        ipv4_tcp(bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1]), 40000, 443, 1, 1, 0x10, b"x" * 24)
    )
    frame[14 + 20 + 12] = offset << 4
    assert decode_frame(0.0, 1, bytes(frame), len(frame)) == Skipped(0.0, "bad_tcp_header")
    assert tcp_count_view(1, bytes(frame)) is None
    frame[14 + 20 + 12] = 5 << 4
    key, flags, length = tcp_count_view(1, bytes(frame)) or ((), 0, 0)
    assert (key[1], key[3], flags, length) == (40000, 443, 0x10, 24)


def test_bounded_fuzzing_run(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "fuzz" / "run.py"),
            "--seconds",
            str(SMOKE_SECONDS),
            "--workdir",
            str(tmp_path / "fuzz"),
            "--fresh",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SMOKE_SECONDS + 120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    summary = json.loads((tmp_path / "fuzz" / "summary.json").read_text())
    runs = {r["target"]: r for r in summary["runs"]}
    assert set(runs) == set(TARGETS)
    for target, r in runs.items():
        assert r["failures"] == [], target
        assert r["inputs"] > 200, (target, r["inputs"])
    coverage = summary["coverage"]
    if coverage is not None:  # coverage.py installed (the dev extra)
        tls = [v for k, v in coverage.items() if k.startswith("analyzer/tls/")]
        assert sum(h for h, _ in tls) / sum(n for _, n in tls) > 0.8
    assert "line coverage of the parser modules" in done.stdout or coverage is None

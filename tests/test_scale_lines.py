"""The parallel JSONL path: workers render the lines, the parent keeps a worker's line only
where the run's cross-connection evidence cannot change its record.

Checked on the records of sample_pcaps/ (failures whose server other clients reached) plus
constructed ones (a 4-tuple used twice, a failed QUIC attempt and its TCP fallback, a TCP
connection offering h2 that follows no attempt): :meth:`Evidence.unchanged` is true only
of records that :meth:`Evidence.sharpen` returns as they are, and the lines that come out
of the workers' sorted runs are those of the sharpened records, byte for byte (a record
that did not fail, its 4-tuple repeated, gets the time bound spliced into its line). End
to end, the same capture given twice (one ``capture`` name, so every 4-tuple repeats
across parts) gives the same JSONL with ``--workers 2`` as with one.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer import cli, limits
from analyzer.diagnosis.cross import Evidence, sharpen_marks
from analyzer.diagnosis.tuples import tuple_hash
from analyzer.pipeline import Run, analyze_files
from analyzer.record import HandshakeRecord
from analyzer.scale.lines import (
    SortedLines,
    final_lines,
    line_entry,
    merge_lines,
    rendered,
)
from analyzer.sorted_records import sort_key
from tests.test_quic_diagnosis import _attempt, judged, tcp

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_pcaps"

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason="sample_pcaps/ is not there")


@pytest.fixture(scope="module")
def records() -> list[HandshakeRecord]:
    """Diagnosed records, not yet sharpened: what the workers sort."""
    found = list(analyze_files(SAMPLES, Run()))
    first = first_ok(found)  # neither failed nor offering h2 or http/1.1
    repeat = replace(first, uid="Crepeat", ts=first.ts + 100, ts_end=first.ts + 101)
    quic = [_attempt(), judged(tcp()), judged(tcp(uid="Clone", client_ip="10.0.0.9"))]
    return [*found, repeat, *quic]


def first_ok(records: list[HandshakeRecord]) -> HandshakeRecord:
    return next(r for r in records if not sharpen_marks(r))


def _evidence(records: list[HandshakeRecord]) -> Evidence:
    evidence = Evidence()
    for r in records:
        evidence.add(r)
    return evidence


def test_unchanged_only_where_sharpen_changes_nothing(records: list[HandshakeRecord]) -> None:
    evidence = _evidence(records)
    changed: dict[str, HandshakeRecord] = {}
    kept = 0
    for r in records:
        sharp = evidence.sharpen(r)
        if evidence.unchanged(tuple_hash(r), sharpen_marks(r)):
            assert sharp is r, r.uid
            kept += 1
        elif sharp is not r:
            changed[r.uid] = sharp
    assert kept > 50  # most of the samples failed, and the QUIC attempt marks every h2 offer
    # Every kind of change the evidence makes is among them.
    assert "frame.time_epoch" in str(changed["Crepeat"].wireshark_filter)
    assert "frame.time_epoch" in str(changed[first_ok(records).uid].wireshark_filter)
    assert "quic_fallback" in changed["Cquic"].warnings
    assert "quic_fallback" in changed["Ctcp"].warnings
    assert "Clone" not in changed  # a candidate fallback with no attempt: looked at, kept
    assert any("other clients" in str(r.reason) for r in changed.values())


def test_lines_from_the_runs_are_the_sharpened_records(
    records: list[HandshakeRecord], tmp_path: Path
) -> None:
    """Two 'workers' sort the entries into files of several runs, one is kept in memory;
    the merged lines are those of the sharpened records in (ts, uid) order."""
    evidence = _evidence(records)
    stores = [SortedLines(limit=7, path=str(tmp_path / f"w{n}.runs")) for n in range(2)]
    here = SortedLines(limit=7)
    for n, r in enumerate(records):
        [*stores, here][n % 3].add(line_entry(r))
    # A record with no marks travels as its line, its endpoints and its filter's place.
    assert all(line_entry(r)[7] for r in records if not sharpen_marks(r))
    sources = [s.hand_over() for s in stores]
    got = list(final_lines(merge_lines([*sources, here]), evidence))
    want = [rendered(evidence.sharpen(r)) for r in sorted(records, key=sort_key)]
    assert got == want
    assert sum(failed for _, failed in got) == sum(r.outcome == "failed" for r in records)
    assert not list(tmp_path.iterdir())  # the runs are removed once read


def test_one_capture_name_twice_workers_2_equals_workers_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two files named alike are one capture: each 4-tuple repeats in the other part, so
    every line needs the time bound that only the whole run's evidence gives."""
    monkeypatch.setattr(limits, "SHARD_MIN_BYTES", 0)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(SAMPLES / "incident_deploy.pcap.gz", tmp_path / folder / "x.pcap.gz")
    runner = CliRunner()
    out = {}
    for n in ("1", "2", "3"):
        res = runner.invoke(
            cli.app, ["analyze", str(tmp_path / "a"), str(tmp_path / "b"), "-f", "jsonl",
                      "--workers", n],
        )
        assert res.exit_code == 0, res.output
        out[n] = res.stdout
    assert out["2"] == out["1"] and out["3"] == out["1"]
    lines = out["1"].splitlines()
    assert len(lines) > 20 and all("frame.time_epoch" in line for line in lines)

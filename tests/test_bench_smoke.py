"""The benchmark end to end in quick mode, and its report helpers.

``test_quick_bench`` generates the quick corpus (a few dozen connections from real TLS stacks
in fresh namespaces) into a temporary directory, runs one timing pass of every command and
checks the report: a table row per command, the goals, the accuracy against the manifest,
the profile, and a capture whose packets the floors count the same way tcpdump did. It needs
root and the tools (skips otherwise). The other tests check the report helpers on
hand-made data.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import missing_requirements

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import corpus  # noqa: E402
import floors  # noqa: E402
import run  # noqa: E402

COMMANDS = ("tlsa", "tlsa pcapng", "tlsa pcap.gz", "tshark", "ssldump", "dpkt loop (floor)",
            "struct walk (floor)")


def test_write_results_keeps_other_sections(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text("## Live capture\n\nkept: 1234 handshakes/s\n")
    run.write_results(path, f"{run.BEGIN}\n# Benchmark results\nfirst\n{run.END}\n")
    run.write_results(path, f"{run.BEGIN}\n# Benchmark results\nsecond\n{run.END}\n")
    text = path.read_text()
    assert "kept: 1234 handshakes/s" in text
    assert "second" in text and "first" not in text
    assert text.count(run.BEGIN) == 1


def _line(port: int, outcome: str, failure: str | None, kind: str = "k") -> dict[str, object]:
    return {"client_ip": "10.99.0.2", "client_port": port, "server_ip": "10.99.0.1",
            "server_port": 443, "outcome": outcome, "failure": failure, "kind": kind,
            "stack": "python", "version": "TLSv1.3", "sni": "www.example.com",
            "checked": True}


def test_accuracy_matches_by_four_tuple(tmp_path: Path) -> None:
    truth = [_line(1, "established", None), _line(2, "failed", "tcp_refused"),
             _line(3, "failed", "sni_mismatch"), _line(4, "established", None),
             {**_line(5, "established", None), "checked": False}]
    out = tmp_path / "records.jsonl"
    records = [_line(2, "failed", "tcp_refused"), _line(1, "established", None),
               _line(3, "failed", "certificate_expired")]
    out.write_text("".join(json.dumps({**r, "reason": "why"}) + "\n" for r in records))
    acc = run.accuracy(truth, out)
    assert (acc.checked, acc.right, acc.unchecked) == (4, 2, 1)
    assert [(w["tuple"], w["got"]) for w in acc.wrong] == [
        ("10.99.0.2:3 → 10.99.0.1:443", "failed/certificate_expired"),
        ("10.99.0.2:4 → 10.99.0.1:443", "no record"),
    ]


def test_plan_covers_every_kind_with_unique_tuples() -> None:
    jobs = corpus.plan(corpus.SIZES["quick"], "/ca.pem")
    assert {j["kind"] for j in jobs} == {k.name for k in corpus.KINDS}
    tuples = {(j["client_ip"], j["client_port"]) for j in jobs}
    assert len(tuples) == len(jobs)
    moved = sum(j["response"] + j["upload"] for j in jobs
                if corpus.KIND_BY_NAME[j["kind"]].outcome == "established")
    assert 0.5e6 < moved < 2e6  # scaled toward the quick corpus's 2 MB


@pytest.mark.root
def test_quick_bench(tmp_path: Path) -> None:
    why = missing_requirements((*corpus.TOOLS, "tshark", "ssldump"))
    if why:
        pytest.skip(why)
    results = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--corpus-dir", str(tmp_path),
         "--results", str(results)],
        capture_output=True, text=True, timeout=180, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    text = results.read_text()
    for key in COMMANDS:
        assert f"| quick | {key} |" in text, key
    assert "| tlsa ≤ 0.5 × tshark on quick |" in text
    assert "| peak RSS ≤ 100 MiB on quick |" in text
    assert "`tlsa --help`" in text and "`tlsa analyze tiny.pcap`" in text
    assert "**quick**:" in text and "checked connections right" in text
    assert "function calls" in text  # the profile
    made = corpus.Corpus(size="quick", directory=tmp_path / f"quick-g{corpus.GENERATOR_VERSION}")
    meta = json.loads((made.directory / "meta.json").read_text())
    assert "0 packets dropped by kernel" in meta["tcpdump"]
    truth = made.truth()
    assert len(truth) == corpus.SIZES["quick"].connections
    assert {t["kind"] for t in truth} == {k.name for k in corpus.KINDS}
    assert all(t["checked"] for t in truth)
    for path in (made.pcap, made.pcapng, made.gz):
        assert floors.struct_walk(path)[0] == meta["packets"], path
    opened = floors.syn_tuples(made.pcap)
    assert all(opened[run.tuple_of(t)] == 1 for t in truth)

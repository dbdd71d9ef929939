"""``tlsa diff`` and ``analyzer.read_records``: before and after, from captures and from
saved files.

Ground truth is the sample captures' MANIFEST (how each scenario was set up): "before"
holds a TLS 1.1 client refused by nginx (version_mismatch), an expired certificate and a
good TLS 1.2 handshake; "after" the fix: the good TLS 1.2 handshake, a TLS 1.3 one, the
expired certificate still there (with TLS 1.3) and a new ALPN mismatch. Saved JSONL and
Parquet must read back with the dtypes of a fresh analysis and give the same diff.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import analyzer
from analyzer import cli
from analyzer.api import Run, collect
from analyzer.diff import diff_frames
from analyzer.frame import to_dataframe
from analyzer.records_io import RecordsError, load_frame

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_pcaps"
BEFORE = ["nginx_version_mismatch.pcap", "nginx_expired_tls12.pcap", "nginx_tls12_ok.pcap"]
AFTER = ["nginx_tls12_ok.pcap", "nginx_tls13_ok.pcap", "nginx_expired_tls13.pcap",
         "nginx_alpn_mismatch.pcap"]

pytestmark = pytest.mark.skipif(not SAMPLES.exists(), reason="sample_pcaps/ is not there")
runner = CliRunner()


def manifest(files: list[str]) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (SAMPLES / "MANIFEST.jsonl").read_text().splitlines()
            if line.strip()]
    return [m for m in rows if m["file"] in files]


def expected(before: list[str], after: list[str]) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(server, SNI, category) -> (before, after) counts, from the MANIFEST."""
    out: dict[tuple[str, str, str], list[int]] = {}
    for side, files in ((0, before), (1, after)):
        for m in manifest(files):
            key = (f"{m['server_ip']}:{m['server_port']}", m["sni"],
                   m["failure"] or m["outcome"])
            out.setdefault(key, [0, 0])[side] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("diff")
    for name, files in (("before", BEFORE), ("after", AFTER)):
        (root / name).mkdir()
        for f in files:
            shutil.copy(SAMPLES / f, root / name / f)
    return root / "before", root / "after"


def test_diff_of_captures_matches_the_setup(sides: tuple[Path, Path]) -> None:
    before, after = sides
    result = diff_frames(load_frame([before]), load_frame([after]))
    got = {(c.server, c.sni, c.category): (c.before, c.after) for c in result.changes}
    assert got == expected(BEFORE, AFTER)
    verdicts = {(c.sni, c.category): c.verdict for c in result.changes}
    assert verdicts[("www.example.com", "version_mismatch")] == "disappeared"
    assert verdicts[("www.example.com", "alpn_mismatch")] == "appeared"
    assert verdicts[("www.example.com", "established")] == "changed"  # 1 of 2 -> 2 of 3
    assert verdicts[("expired.example.com", "certificate_expired")] == "unchanged"
    shown = result.shown()
    assert [c.category for c in shown[:2]] == ["alpn_mismatch", "version_mismatch"]
    for c in result.changes:
        assert c.example is not None
    gone = next(c for c in result.changes if c.category == "version_mismatch")
    assert gone.before_rate == 0.5 and gone.after_rate == 0.0 and gone.after_example is None


def test_saved_files_read_back_with_their_dtypes(sides: tuple[Path, Path],
                                                 tmp_path: Path) -> None:
    before, _ = sides
    run = Run()
    fresh = to_dataframe(collect([before], run))
    jsonl = tmp_path / "before.jsonl"
    parquet = tmp_path / "before.parquet"
    for fmt, out in (("jsonl", jsonl), ("parquet", parquet)):
        result = runner.invoke(cli.app, ["analyze", str(before), "-f", fmt, "-o", str(out)])
        assert result.exit_code == 0, result.output
    for path in (jsonl, parquet):
        df = analyzer.read_records(path)
        assert list(df.columns) == list(fresh.columns)
        assert dict(df.dtypes) == dict(fresh.dtypes), path
        assert list(df["uid"]) == list(fresh["uid"])
        assert list(df["ts"]) == list(fresh["ts"])
        assert list(df["failure"].astype(object)) == list(fresh["failure"].astype(object))
        assert [list(v) for v in df["offered_ciphers"]] == list(fresh["offered_ciphers"])
        assert df["alerts"].iloc[0] == fresh["alerts"].iloc[0]


def test_cli_diff_table_json_and_saved(sides: tuple[Path, Path], tmp_path: Path) -> None:
    before, after = sides
    saved = tmp_path / "before.jsonl"
    runner.invoke(cli.app, ["analyze", str(before), "-f", "jsonl", "-o", str(saved)])
    from_captures = runner.invoke(cli.app, ["diff", str(before), str(after), "-f", "json"])
    from_saved = runner.invoke(cli.app, ["diff", str(saved), str(after), "-f", "json"])
    assert from_captures.exit_code == 0, from_captures.output
    assert json.loads(from_captures.stdout) == json.loads(from_saved.stdout)
    data = json.loads(from_captures.stdout)
    assert data["before"]["connections"] == 3 and data["after"]["connections"] == 4
    assert {c["verdict"] for c in data["changes"]} == {"appeared", "disappeared", "changed"}
    table = runner.invoke(cli.app, ["diff", str(before), str(after)],
                          env={"COLUMNS": "200"})
    assert table.exit_code == 0
    assert "disappeared" in table.stdout and "version_mismatch" in table.stdout
    assert "1 (50%)" in table.stdout


def test_diff_of_identical_runs_is_empty(sides: tuple[Path, Path]) -> None:
    before, _ = sides
    frame = load_frame([before])
    result = diff_frames(frame, frame)
    assert result.shown() == [] and len(result.changes) == 3


def test_bad_saved_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"a": 1}\n')
    with pytest.raises(RecordsError, match="not a file of tlsa records"):
        analyzer.read_records(bad)
    bad.write_text("not json\n")
    result = runner.invoke(cli.app, ["diff", str(bad), str(SAMPLES / "nginx_tls12_ok.pcap")])
    assert result.exit_code != 0
    assert "line 1 is not JSON" in str(result.exception) or "line 1" in result.output

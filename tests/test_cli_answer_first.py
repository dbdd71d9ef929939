"""``tlsa analyze`` leads with the answer on a terminal: totals, failures per cause, one
line per failed connection; written to a file or a pipe it keeps every record.

Ground truth: the sample captures' MANIFEST (how each scenario was set up).
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from analyzer import cli
from analyzer.api import Run, collect

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_pcaps"
TRUST = ["--ca-bundle", str(SAMPLES / "test-ca.pem")]

pytestmark = pytest.mark.skipif(not SAMPLES.exists(), reason="sample_pcaps/ is not there")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def plain(text: str) -> str:
    """Without the terminal's colour codes."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def manifest() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (SAMPLES / "MANIFEST.jsonl").read_text().splitlines()
            if line.strip()]


@pytest.fixture(scope="module")
def records() -> list[Any]:
    run = Run()
    options = cli.options_for(SAMPLES / "test-ca.pem", False)
    return collect([SAMPLES], run, options=options, workers=1)


def test_terminal_leads_with_totals_and_failures(records: list[Any],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    screen = Terminal()
    monkeypatch.setattr(cli.sys, "stdout", screen)
    monkeypatch.setenv("COLUMNS", "150")
    cli.write_records(iter(records), cli.Format.table, None)
    text = plain(screen.getvalue())
    lines = text.splitlines()
    truth = manifest()
    captures = len({m["file"] for m in truth})
    assert lines[0].startswith(f"{len(truth)} TLS connections in {captures} captures: ")
    for outcome, n in Counter(r.outcome for r in records).items():
        assert f"{n} {outcome}" in lines[0]
    # Every cause the scenarios were set up to produce is named in the first screen (50
    # lines), the most frequent first.
    first_screen = "\n".join(lines[:50])
    failures = Counter(m["failure"] for m in truth if m["failure"])
    for failure in failures:
        assert failure in first_screen, failure
    (top, _), = failures.most_common(1)
    causes = [line.split()[1] for line in lines[5:25] if line.startswith("│ ")
              and line.split()[1] != "│"]
    assert causes[0] == top
    # Every failed connection has one line with its uid; healthy ones are only counted.
    failed = [r for r in records if cli.is_failed(r)]
    for r in failed:
        assert sum(1 for line in lines if line.startswith(r.uid)) == 1
    established = [r for r in records if r.outcome == "established"]
    assert not any(r.uid in text for r in established)
    assert f"{len(records) - len(failed)} other connections not listed" in text
    assert len(lines) < len(failed) + 60


def test_all_on_a_terminal_and_a_pipe_list_every_record(records: list[Any],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    for show_all, stream in ((True, Terminal()), (False, io.StringIO())):
        monkeypatch.setattr(cli.sys, "stdout", stream)
        cli.write_records(iter(records), cli.Format.table, None, show_all=show_all)
        text = plain(stream.getvalue())
        assert "not listed" not in text
        assert text.count("established") >= sum(r.outcome == "established" for r in records)


def test_uid_filter_is_repeatable_and_takes_prefixes(records: list[Any]) -> None:
    a, b = records[0], records[-1]
    result = CliRunner().invoke(cli.app, ["analyze", str(SAMPLES), *TRUST, "-f", "jsonl",
                                          "--uid", a.uid, "--uid", b.uid[:6]])
    assert result.exit_code == 0, result.output
    got = [json.loads(line)["uid"] for line in result.stdout.splitlines()]
    assert got == [a.uid, b.uid]

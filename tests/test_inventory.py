"""The certificate inventory (``tlsa certs``, ``analyzer.certificates``), checked against the
sample captures' manifest: how many connections completed their handshake with each
certificate or rejected it is what the set-up says, for the connections whose certificate
the wire shows (TLS 1.2; TLS 1.3 hides it)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

import analyzer
from analyzer import cli
from analyzer.api import Run, collect
from analyzer.inventory import COLUMNS, inventory

SAMPLES = Path(__file__).resolve().parents[1] / "sample_pcaps"
INCIDENT = SAMPLES / "incident_deploy.pcap.gz"
MANIFEST = [json.loads(line) for line in (SAMPLES / "MANIFEST.jsonl").read_text().splitlines()]

pytestmark = pytest.mark.skipif(not INCIDENT.exists(), reason="sample_pcaps/ is not there")


def visible(m: dict[str, object]) -> bool:
    return m["file"] == INCIDENT.name and m["version"] == "TLSv1.2"


def test_counts_follow_the_manifest() -> None:
    run = Run()
    certs = inventory(collect(INCIDENT, run, workers=1))
    assert run.errors == []
    completed: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    for m in MANIFEST:
        if not visible(m):
            continue
        if m["outcome"] == "established":
            completed[str(m["sni"])] += 1
        elif m["failure"] == "certificate_expired":
            rejected[str(m["sni"])] += 1
    got_completed: Counter[str] = Counter()
    got_rejected: Counter[str] = Counter()
    for c in certs:
        for name in c.names:
            got_completed[name] += c.completed
            got_rejected[name] += c.rejected
    assert +got_completed == completed
    assert +got_rejected == rejected
    expired = next(c for c in certs if c.rejected)
    assert certs[0] is expired  # what breaks first comes first
    assert expired.cert_status == "expired" and expired.days_left is not None
    assert expired.days_left < 0
    assert set(expired.rejected_alerts) == {"certificate_expired"}
    assert all(c.days_left is None or c.days_left > 0 for c in certs if not c.rejected)


def test_the_dataframe_and_the_command_agree() -> None:
    df = analyzer.certificates(INCIDENT)
    assert list(df.columns) == list(COLUMNS)
    dtype = str(df["not_after"].dtype)
    assert dtype.startswith("datetime64") and "UTC" in dtype
    runner = CliRunner()
    done = runner.invoke(cli.app, ["certs", str(INCIDENT), "--format", "json"])
    assert done.exit_code == 0, done.output
    rows = json.loads(done.stdout)
    assert [r["sha256"] for r in rows] == list(df["sha256"])
    table = runner.invoke(cli.app, ["certs", str(INCIDENT)], env={"COLUMNS": "250"})
    assert table.exit_code == 0 and "api.example.com" in table.stdout
    csv_out = runner.invoke(cli.app, ["certs", str(INCIDENT), "--format", "csv"])
    assert csv_out.stdout.splitlines()[0] == ",".join(COLUMNS)

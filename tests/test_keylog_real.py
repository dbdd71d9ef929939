"""Key logs end to end: real stacks write their own key logs, the engine decrypts.

One capture (a network namespace of its own, tcpdump on its loopback) holds every
scenario; each scenario has a server port of its own and a key log written by its client
(``openssl s_client -keylogfile``, curl and gnutls-cli with ``SSLKEYLOGFILE``, Python's
``ssl`` with ``keylog_filename``, headless Chromium with ``--ssl-key-log-file``):

- TLS 1.3 failures that are inferred without keys: GnuTLS and Chromium rejecting an
  untrusted, expired or wrong-host certificate of nginx and haproxy; curl's host-name
  rejection after the handshake; OpenSSL s_server and haproxy rejecting a missing client
  certificate; Python rejecting an untrusted haproxy certificate;
- handshakes that succeed: TLS 1.3 with every AEAD, TLS 1.2 AES-GCM, ChaCha20-Poly1305,
  AES-CCM and CBC with and without encrypt_then_mac, a HelloRetryRequest, TLS 1.3 and 1.2
  resumption, a TLS 1.3 client-certificate request answered with an empty Certificate,
  Chromium, curl and Python fetching a page.

Truth: how each scenario was set up, and what its client reported (checked when it ran).
With the key log every connection gets the category and side of its set-up, ``inferred``
false and both directions decrypted; the decrypted handshake messages and alerts are those
tshark shows with ``-o tls.keylog_file`` on the same capture; without a key log the
records are those of an empty key log. ``editcap --inject-secrets`` gives the same
records without ``--keylog``. Wrong, truncated and foreign key logs give the no-key
result with notes. No secret of the key logs reaches any output of the command line.

Needs root, ip, tcpdump, tshark, editcap, openssl, nginx (haproxy, gnutls-cli, curl,
chromium and certutil for their scenarios); skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from analyzer.api import Run, collect
from analyzer.diagnosis import DiagnosisOptions
from analyzer.record import HandshakeRecord
from analyzer.tls.enums import HandshakeType as H
from analyzer.tls.keylog import KeyLog
from tests.harness import missing_requirements
from tests.harness import keyclients as kc
from tests.harness.capture import Capture, port_filter
from tests.harness.netns import Netns, Run as ProcRun
from tests.harness.pki import LeafKind, TestPKI
from tests.harness.servers import Server, haproxy, nginx, s_server
from tests.harness.tlsdecrypt import tshark_transcripts

_MISSING = missing_requirements(("ip", "ethtool", "tcpdump", "openssl", "tshark", "editcap",
                                 "nginx"))

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(_MISSING is not None, reason=_MISSING or ""),
]

ROOT = Path(__file__).resolve().parents[1]
IP = "127.0.0.1"
WWW, UNTRUSTED, EXPIRED, OTHER = ("www.example.com", "intranet.example.com",
                                  "expired.example.com", "other.example.com")

# nginx
P_UNTRUSTED, P_EXPIRED, P_WRONG_HOST, P_OK = 4501, 4502, 4503, 4505
# haproxy
P_HA_EXPIRED, P_HA_CLIENT_CERT, P_HA_UNTRUSTED = 4510, 4511, 4512
# openssl s_server
P_CLIENT_CERT, P_CERT_REQUEST, P_HRR, P_RESUME13, P_RESUME12 = 4520, 4521, 4522, 4523, 4524
P_SUITES = 4600


@dataclass(frozen=True)
class Truth:
    outcome: str
    failure: str | None = None
    side: str | None = None


OK = Truth("established")


def failed(failure: str, side: str) -> Truth:
    return Truth("failed", failure, side)


@dataclass
class Env:
    """What a client command needs to be built."""

    ca: Path
    keys: Path
    home: Path
    work: Path


@dataclass(frozen=True)
class Case:
    """One client run (one or more connections to ``port``) and its truth."""

    id: str
    port: int
    client: Callable[[Env, Path], list[kc.KeyedClient]]
    truth: Truth
    says: tuple[str, ...] = ()
    """Texts the client must report (its own account of what happened)."""
    version: str = "TLSv1.3"
    tool: str = "openssl"
    cipher: str | None = None
    cert_requested: bool = False
    resumed: tuple[bool, ...] = ()
    """Per connection in time order, when the case makes several."""
    hrr: bool = False


def _one(fn: Callable[[Env, Path], kc.KeyedClient]) -> Callable[[Env, Path], list[kc.KeyedClient]]:
    return lambda env, keys: [fn(env, keys)]


def _gnutls(host: str, port: int) -> Callable[[Env, Path], list[kc.KeyedClient]]:
    return _one(lambda env, keys: kc.gnutls(host, IP, port, keys, ca=env.ca))


def _chromium(host: str, port: int) -> Callable[[Env, Path], list[kc.KeyedClient]]:
    return _one(lambda env, keys: kc.chromium(host, IP, port, keys, home=env.home))


def _openssl(port: int, *args: str, host: str = WWW) -> Callable[[Env, Path],
                                                                  list[kc.KeyedClient]]:
    return _one(lambda env, keys: kc.openssl(host, IP, port, keys, *args, ca=env.ca))


def _resume(port: int, *args: str) -> Callable[[Env, Path], list[kc.KeyedClient]]:
    def clients(env: Env, keys: Path) -> list[kc.KeyedClient]:
        session = env.work / f"session-{port}.pem"
        return [kc.openssl(WWW, IP, port, keys, *args, "-sess_out", str(session), ca=env.ca),
                kc.openssl(WWW, IP, port, keys, *args, "-sess_in", str(session), ca=env.ca)]
    return clients


TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_CCM_SHA256",
                "TLS_AES_128_CCM_8_SHA256")
TLS12_SUITES = (  # (openssl name, IANA name, encrypt_then_mac)
    ("ECDHE-RSA-AES128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", False),
    ("ECDHE-RSA-AES256-GCM-SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", False),
    ("ECDHE-RSA-CHACHA20-POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", False),
    ("AES128-CCM", "TLS_RSA_WITH_AES_128_CCM", False),
    ("ECDHE-RSA-AES128-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", True),
    ("ECDHE-RSA-AES128-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", False),
    ("ECDHE-RSA-AES256-SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", True),
    ("ECDHE-RSA-AES256-SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", False),
)
SUITE_SERVERS: list[tuple[int, tuple[str, ...]]] = []
SUITE_CASES: list[Case] = []
for _i, _suite in enumerate(TLS13_SUITES):
    _args = ("-tls1_3", "-ciphersuites", _suite)
    SUITE_SERVERS.append((P_SUITES + _i, _args))
    SUITE_CASES.append(Case(f"tls13-{_suite}", P_SUITES + _i, _openssl(P_SUITES + _i, *_args),
                            OK, cipher=_suite))
for _i, (_name, _iana, _etm) in enumerate(TLS12_SUITES, len(TLS13_SUITES)):
    _args = ("-tls1_2", "-cipher", _name)
    SUITE_SERVERS.append((P_SUITES + _i, _args))
    _client = _args if _etm else (*_args, "-no_etm")
    SUITE_CASES.append(Case(f"tls12-{_name}{'-etm' if _etm else ''}", P_SUITES + _i,
                            _openssl(P_SUITES + _i, *_client), OK, version="TLSv1.2",
                            cipher=_iana))

CASES: list[Case] = [
    # TLS 1.3 failures that are inferred without the key log
    Case("gnutls-untrusted", P_UNTRUSTED, _gnutls(UNTRUSTED, P_UNTRUSTED),
         failed("certificate_untrusted", "client"), ("The certificate issuer is unknown",),
         tool="gnutls-cli"),
    Case("gnutls-expired", P_EXPIRED, _gnutls(EXPIRED, P_EXPIRED),
         failed("certificate_expired", "client"), ("The certificate chain uses expired",),
         tool="gnutls-cli"),
    Case("gnutls-wrong-host", P_WRONG_HOST, _gnutls(OTHER, P_WRONG_HOST),
         failed("sni_mismatch", "client"), ("does not match the expected",), tool="gnutls-cli"),
    Case("gnutls-haproxy-expired", P_HA_EXPIRED, _gnutls(EXPIRED, P_HA_EXPIRED),
         failed("certificate_expired", "client"), ("The certificate chain uses expired",),
         tool="haproxy"),
    Case("chromium-untrusted", P_UNTRUSTED, _chromium(UNTRUSTED, P_UNTRUSTED),
         failed("certificate_untrusted", "client"), ("ERR_CERT_AUTHORITY_INVALID",),
         tool="chromium"),
    Case("chromium-expired", P_EXPIRED, _chromium(EXPIRED, P_EXPIRED),
         failed("certificate_expired", "client"), ("ERR_CERT_DATE_INVALID",), tool="chromium"),
    Case("chromium-wrong-host", P_WRONG_HOST, _chromium(OTHER, P_WRONG_HOST),
         failed("sni_mismatch", "client"), ("ERR_CERT_COMMON_NAME_INVALID",), tool="chromium"),
    Case("chromium-haproxy-untrusted", P_HA_UNTRUSTED, _chromium(UNTRUSTED, P_HA_UNTRUSTED),
         failed("certificate_untrusted", "client"), ("ERR_CERT_AUTHORITY_INVALID",),
         tool="chromium"),
    Case("curl-wrong-host", P_WRONG_HOST,
         _one(lambda env, keys: kc.curl(OTHER, IP, P_WRONG_HOST, keys, "--tlsv1.3", ca=env.ca)),
         failed("sni_mismatch", "client"), ("SSL: no alternative certificate subject name",),
         tool="curl"),
    Case("openssl-client-cert-missing", P_CLIENT_CERT, _openssl(P_CLIENT_CERT),
         failed("client_certificate_required", "server"), ("certificate required",)),
    Case("python-haproxy-client-cert-missing", P_HA_CLIENT_CERT,
         _one(lambda env, keys: kc.python(WWW, IP, P_HA_CLIENT_CERT, keys, ca=env.ca)),
         failed("client_certificate_required", "server"), ("CERTIFICATE_REQUIRED",),
         tool="haproxy"),
    Case("python-haproxy-untrusted", P_HA_UNTRUSTED,
         _one(lambda env, keys: kc.python(UNTRUSTED, IP, P_HA_UNTRUSTED, keys, ca=env.ca)),
         failed("certificate_untrusted", "client"), ("CERTIFICATE_VERIFY_FAILED",),
         tool="haproxy"),
    # handshakes that succeed
    *SUITE_CASES,
    Case("hello-retry-request", P_HRR, _openssl(P_HRR, "-groups", "X25519:P-256"), OK,
         hrr=True),
    Case("resumption-tls13", P_RESUME13, _resume(P_RESUME13, "-tls1_3"), OK,
         resumed=(False, True)),
    Case("resumption-tls12", P_RESUME12, _resume(P_RESUME12, "-tls1_2", "-no_ticket"), OK,
         version="TLSv1.2", resumed=(False, True)),
    Case("client-cert-request", P_CERT_REQUEST, _openssl(P_CERT_REQUEST), OK,
         cert_requested=True),
    Case("chromium-ok", P_OK, _chromium(WWW, P_OK), OK, ("hello from nginx",), tool="chromium"),
    Case("curl-ok-tls12", P_OK,
         _one(lambda env, keys: kc.curl(WWW, IP, P_OK, keys, "--tls-max", "1.2", ca=env.ca)),
         OK, ("200",), version="TLSv1.2", tool="curl"),
    Case("python-ok", P_OK,
         _one(lambda env, keys: kc.python(WWW, IP, P_OK, keys, ca=env.ca, version="TLSv1_3")),
         OK, ("reply",)),
]
"""Every scenario, in the order they run."""

TOOLS = {"gnutls-cli": ("gnutls-cli",), "chromium": ("chromium", "certutil"),
         "haproxy": ("haproxy", "gnutls-cli"), "curl": ("curl",), "openssl": ()}


@dataclass
class Lab:
    capture: Path
    keys: Path
    all_keys: Path
    ca: Path
    ran: list[Case] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    reports: dict[str, ProcRun] = field(default_factory=dict)

    def keyfile(self, case: Case) -> Path:
        return self.keys / f"{case.id}.keys"


def _nginx_sites(pki: TestPKI) -> str:
    def site(port: int, name: str, kind: LeafKind, protocols: str = "TLSv1.3") -> str:
        cert = pki.server(name, kind=kind)
        return f"""
    server {{
        listen {IP}:{port} ssl;
        server_name {name};
        ssl_certificate {cert.chain};
        ssl_certificate_key {cert.key};
        ssl_protocols {protocols};
        location / {{ return 200 "hello from nginx\\n"; }}
    }}"""
    return "".join((site(P_UNTRUSTED, UNTRUSTED, LeafKind.INSPECTION),
                    site(P_EXPIRED, EXPIRED, LeafKind.EXPIRED),
                    site(P_WRONG_HOST, WWW, LeafKind.GOOD),
                    site(P_OK, WWW, LeafKind.GOOD, "TLSv1.2 TLSv1.3")))


def _haproxy_config(pki: TestPKI, work: Path) -> str:
    def pem(name: str, kind: LeafKind) -> Path:
        cert = pki.server(name, kind=kind)
        path = work / f"haproxy-{kind.value}.pem"
        path.write_text(cert.chain.read_text() + cert.key.read_text())
        return path

    def frontend(port: int, bind: str) -> str:
        return f"""
frontend f{port}
    mode http
    bind {IP}:{port} {bind} ssl-min-ver TLSv1.3
    http-request return status 200 content-type text/plain string ok
"""
    return "".join((
        frontend(P_HA_EXPIRED, f"ssl crt {pem(EXPIRED, LeafKind.EXPIRED)}"),
        frontend(P_HA_CLIENT_CERT,
                 f"ssl crt {pem(WWW, LeafKind.GOOD)} ca-file {pki.root} verify required"),
        frontend(P_HA_UNTRUSTED, f"ssl crt {pem(UNTRUSTED, LeafKind.INSPECTION)}"),
    ))


def _run_case(ns: Netns, lab: Lab, env: Env, case: Case) -> None:
    keys = lab.keyfile(case)
    outputs = []
    for client in case.client(env, keys):
        run = ns.run(client.argv, env=client.env, input=client.input, timeout=60)
        outputs.append(run)
    lab.reports[case.id] = outputs[-1]
    text = "\n".join(r.output for r in outputs)
    for said in case.says:
        assert said.lower() in text.lower(), f"{case.id}: {said!r} not in\n{text[-3000:]}"
    if case.tool == "chromium":  # it exits 0 either way; its log says what happened
        return
    if case.truth.outcome == "established":
        assert all(r.returncode == 0 for r in outputs), f"{case.id}:\n{text[-3000:]}"
    else:
        assert outputs[-1].returncode != 0, f"{case.id}:\n{text[-3000:]}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("keylog")
    pki = TestPKI(tmp / "pki")
    keys = tmp / "keys"
    keys.mkdir()
    result = Lab(capture=tmp / "keylog.pcap", keys=keys, all_keys=tmp / "all.keys", ca=pki.root)
    env = Env(ca=pki.root, keys=keys, home=tmp / "home", work=tmp)
    cert = pki.server(WWW)
    identity = ("-cert", str(cert.cert), "-cert_chain", str(cert.chain), "-key", str(cert.key))
    servers: list[Server] = []
    wanted = []
    for case in CASES:
        absent = [t for t in TOOLS[case.tool] if shutil.which(t) is None]
        if absent:
            result.skipped[case.id] = f"not installed: {', '.join(absent)}"
        else:
            wanted.append(case)
    ports = sorted({c.port for c in wanted})
    with Netns() as ns:
        try:
            servers.append(nginx(ns, tmp / "nginx", _nginx_sites(pki),
                                 ports=[P_UNTRUSTED, P_EXPIRED, P_WRONG_HOST, P_OK]))
            if shutil.which("haproxy"):
                servers.append(haproxy(ns, tmp / "haproxy", _haproxy_config(pki, tmp),
                                       ports=[P_HA_EXPIRED, P_HA_CLIENT_CERT, P_HA_UNTRUSTED]))
            s_servers = [
                (P_CLIENT_CERT, ("-tls1_3", "-Verify", "1", "-CAfile", str(pki.root))),
                (P_CERT_REQUEST, ("-tls1_3", "-verify", "1", "-CAfile", str(pki.root))),
                (P_HRR, ("-tls1_3", "-groups", "P-256")),
                (P_RESUME13, ("-tls1_3",)),
                (P_RESUME12, ("-tls1_2",)),
                *SUITE_SERVERS,
            ]
            for port, args in s_servers:
                servers.append(s_server(ns, tmp / f"s{port}", [*identity, "-www", *args],
                                        port=port, name=f"s{port}"))
            if shutil.which("certutil"):
                kc.chromium_profile(env.home, pki.root)
            with Capture(ns, result.capture, interfaces=("lo",), bpf=port_filter(ports)):
                for case in wanted:
                    _run_case(ns, result, env, case)
                    result.ran.append(case)
        finally:
            for server in servers:
                server.stop()
    result.all_keys.write_text("".join(result.keyfile(c).read_text() for c in result.ran
                                       if result.keyfile(c).exists()))
    yield result


# -- analysis -------------------------------------------------------------------------------


def analyse(path: Path, keylog: KeyLog | None, ca: Path | None = None) -> list[HandshakeRecord]:
    run = Run()
    opts = DiagnosisOptions(ca_bundle=str(ca) if ca else None)
    records = collect(path, run, options=opts, keylog=keylog, workers=1)
    assert run.errors == []
    return records


@pytest.fixture(scope="module")
def keyed(lab: Lab) -> list[HandshakeRecord]:
    return analyse(lab.capture, KeyLog.from_files([lab.all_keys]), lab.ca)


@pytest.fixture(scope="module")
def plain(lab: Lab) -> list[HandshakeRecord]:
    return analyse(lab.capture, None, lab.ca)


def of(records: list[HandshakeRecord], case: Case) -> list[HandshakeRecord]:
    """The records of a case's connections, in time order."""
    return sorted((r for r in records if r.server_port == case.port and _belongs(r, case)),
                  key=lambda r: r.ts)


_BY_PORT: dict[int, list[Case]] = {}
for _case in CASES:
    _BY_PORT.setdefault(_case.port, []).append(_case)


def _belongs(r: HandshakeRecord, case: Case) -> bool:
    """Several cases share a server port; they ran one after another, so a connection
    belongs to the case whose key log has its client random (or, without one, by SNI)."""
    return _owner.get(r.client_random or "") == case.id


_owner: dict[str, str] = {}


def _fill_owner(lab: Lab) -> None:
    for case in lab.ran:
        path = lab.keyfile(case)
        if path.exists():
            for line in path.read_text().splitlines():
                fields = line.split()
                if len(fields) == 3:
                    _owner[fields[1].lower()] = case.id


def _case_ids() -> list[str]:
    return [c.id for c in CASES]


def _case(lab: Lab, case_id: str) -> Case:
    if not _owner:
        _fill_owner(lab)
    if case_id in lab.skipped:
        pytest.skip(lab.skipped[case_id])
    return next(c for c in CASES if c.id == case_id)


@pytest.mark.parametrize("case_id", _case_ids())
def test_debug(lab: Lab, keyed: list[HandshakeRecord], plain: list[HandshakeRecord],
               case_id: str) -> None:
    case = _case(lab, case_id)
    mine = of(keyed, case)
    print()
    for r in mine:
        print(case.id, r.outcome, r.failure, r.failure_side, r.inferred, r.decrypted,
              r.last_alert, r.cert_status, r.resumed, r.client_cert_requested, r.anomalies,
              (r.reason or "")[:200])
    assert mine


@pytest.mark.parametrize("case_id", ["curl-wrong-host", "openssl-client-cert-missing", "gnutls-untrusted"])
def test_debug2(lab: Lab, keyed: list[HandshakeRecord], case_id: str) -> None:
    case = _case(lab, case_id)
    for r in of(keyed, case):
        print(r.alerts)
        for e in r.timeline:
            print("   ", e)

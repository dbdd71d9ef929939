"""Key logs end to end: real stacks write their own key logs, the engine decrypts.

One capture (a network namespace of its own, tcpdump on its loopback) holds every
scenario; each scenario has a server port of its own and a key log written by its client
(``openssl s_client -keylogfile``, curl and gnutls-cli with ``SSLKEYLOGFILE``, Python's
``ssl`` with ``keylog_filename``, headless Chromium with ``--ssl-key-log-file``):

- TLS 1.3 failures that are inferred without keys: GnuTLS and Chromium rejecting an
  untrusted, expired or wrong-host certificate of nginx and haproxy; curl's host-name
  rejection after the handshake; OpenSSL s_server (against s_client and gnutls-cli) and
  haproxy (against Python) rejecting a missing client certificate; and the OpenSSL-based
  clients whose alert is plaintext anyway (s_client, curl and Python rejecting untrusted,
  expired and wrong-host certificates of nginx and haproxy);
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
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from analyzer.api import Run, collect
from analyzer.diagnosis import DiagnosisOptions
from analyzer.record import HandshakeRecord
from analyzer.tls.enums import HandshakeType as H
from analyzer.tls.keylog import KeyLog
from tests.harness import keyclients as kc
from tests.harness import missing_requirements
from tests.harness.capture import Capture, port_filter
from tests.harness.netns import Netns
from tests.harness.netns import Run as ProcRun
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
    decrypted: tuple[str, ...] = ("client", "server")
    """Directions with encrypted records to open (an OpenSSL client's alert is plaintext)."""
    inferred: bool = False
    """Still inferred with the key log: curl closes with a close_notify after checking
    the host name, and no record says why (its TLS 1.2 twin is inferred the same way)."""


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
         tool="curl", inferred=True),
    Case("openssl-client-cert-missing", P_CLIENT_CERT, _openssl(P_CLIENT_CERT),
         failed("client_certificate_required", "server"), ("certificate required",),
         cert_requested=True),
    Case("python-haproxy-client-cert-missing", P_HA_CLIENT_CERT,
         _one(lambda env, keys: kc.python(WWW, IP, P_HA_CLIENT_CERT, keys, ca=env.ca)),
         failed("client_certificate_required", "server"), ("CERTIFICATE_REQUIRED",),
         tool="haproxy", cert_requested=True),
    Case("python-haproxy-untrusted", P_HA_UNTRUSTED,
         _one(lambda env, keys: kc.python(UNTRUSTED, IP, P_HA_UNTRUSTED, keys, ca=env.ca)),
         failed("certificate_untrusted", "client"), ("CERTIFICATE_VERIFY_FAILED",),
         tool="haproxy", decrypted=("server",)),
    Case("openssl-untrusted", P_UNTRUSTED, _openssl(P_UNTRUSTED, host=UNTRUSTED),
         failed("certificate_untrusted", "client"),
         ("self-signed certificate in certificate chain",), decrypted=("server",)),
    Case("curl-haproxy-expired", P_HA_EXPIRED,
         _one(lambda env, keys: kc.curl(EXPIRED, IP, P_HA_EXPIRED, keys, ca=env.ca)),
         failed("certificate_expired", "client"), ("certificate has expired",), tool="haproxy",
         decrypted=("server",)),
    Case("gnutls-s_server-client-cert-missing", P_CLIENT_CERT, _gnutls(WWW, P_CLIENT_CERT),
         failed("client_certificate_required", "server"), (), tool="gnutls-cli",
         cert_requested=True),
    Case("python-nginx-wrong-host", P_WRONG_HOST,
         _one(lambda env, keys: kc.python(OTHER, IP, P_WRONG_HOST, keys, ca=env.ca)),
         failed("sni_mismatch", "client"), ("Hostname mismatch",), decrypted=("server",)),
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
         "haproxy": ("haproxy", "gnutls-cli", "curl"), "curl": ("curl",), "openssl": ()}


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


def _ids() -> list[str]:
    return [c.id for c in CASES]


def sans(r: HandshakeRecord, *fields: str) -> dict[str, Any]:
    d = r.to_dict()
    for name in fields:
        d.pop(name)
    return d


@pytest.mark.parametrize("case_id", _ids())
def test_the_key_log_gives_the_set_up_verdict(lab: Lab, keyed: list[HandshakeRecord],
                                              case_id: str) -> None:
    """Category and side as set up, ``inferred`` false, the directions decrypted, and
    what the scenario negotiated."""
    case = _case(lab, case_id)
    records = of(keyed, case)
    assert records, f"no connection of {case.id} in the capture"
    truth = case.truth
    for n, r in enumerate(records):
        got = (r.outcome, r.failure, r.failure_side, r.inferred, tuple(r.decrypted), r.version)
        assert got == (truth.outcome, truth.failure, truth.side, case.inferred, case.decrypted,
                       case.version), r.reason
        assert "decrypt_failed" not in r.anomalies
        assert r.cert_chain_sha256 or r.resumed, "the certificate is read (none on resumption)"
        if case.cipher:
            assert r.cipher == case.cipher
        assert r.hrr == case.hrr
        assert r.client_cert_requested == case.cert_requested
        if case.resumed:
            assert r.resumed == case.resumed[n]
        if truth.outcome == "failed" and not case.inferred:
            assert r.reason and "decrypted with the key log" in r.reason


def test_without_a_key_log_records_are_those_of_an_empty_one(
        lab: Lab, plain: list[HandshakeRecord]) -> None:
    empty = analyse(lab.capture, KeyLog(), lab.ca)
    assert [r.to_dict() for r in empty] == [r.to_dict() for r in plain]
    assert all(r.decrypted == [] and r.client_random for r in plain)


def test_without_the_key_log_tls13_rejections_stay_inferred(
        lab: Lab, plain: list[HandshakeRecord]) -> None:
    """What the key log changes: the GnuTLS and Chromium rejections and the servers'
    client-certificate refusals are inferred (or unseen) without it."""
    for case in CASES:
        if case.id in lab.skipped or (case.tool not in ("gnutls-cli", "chromium") and \
                "client-cert-missing" not in case.id) or case.truth.outcome != "failed":
            continue
        for r in of(plain, case):
            assert r.inferred or r.failure != case.truth.failure, (case.id, r.reason)


_NAMES = {name: int(t) for t, name in
          __import__("analyzer.handshake.core", fromlist=["_MESSAGE_NAMES"])
          ._MESSAGE_NAMES.items()}
_NAMES["HelloRetryRequest"] = int(H.server_hello)  # tshark counts it as a ServerHello


def ours(r: HandshakeRecord, sender: str) -> tuple[list[int], list[int]]:
    """One direction's handshake message types (plaintext and decrypted) and alert codes,
    in wire order, from the record's timeline and alerts."""
    types = []
    for entry in r.timeline:
        if entry.sender != sender or entry.what.endswith("(encrypted)"):
            continue
        name = entry.what.removesuffix(" (decrypted)")
        if name in _NAMES:
            types.append(_NAMES[name])
    alerts = [a.code for a in r.alerts if a.sender == sender and a.code is not None]
    return types, alerts  # type: ignore[return-value]


@pytest.fixture(scope="module")
def tshark_view(lab: Lab) -> dict[tuple[int, int], Any]:
    return tshark_transcripts(lab.capture, lab.all_keys, sorted({c.port for c in CASES}))


@pytest.mark.parametrize("case_id", _ids())
def test_decrypted_messages_and_alerts_agree_with_tshark(
        lab: Lab, keyed: list[HandshakeRecord], tshark_view: dict[tuple[int, int], Any],
        case_id: str) -> None:
    """Per direction, the handshake messages and alerts we read (plaintext and decrypted)
    are those tshark shows with the key log: all of them for a handshake that failed, the
    beginning of them for one that was established (the analysis stops reading once it is
    settled: later tickets and close_notify are not needed)."""
    case = _case(lab, case_id)
    for r in of(keyed, case):
        theirs = tshark_view[(r.client_port, r.server_port)]
        for sender, side in zip(("client", "server"), theirs, strict=True):
            types, alerts = ours(r, sender)
            if r.outcome == "failed" and not r.established:
                assert (types, alerts) == (side.handshake, side.alerts), sender
            else:
                assert types == side.handshake[: len(types)], sender
                assert alerts == side.alerts[: len(alerts)], sender
                assert int(H.finished) in types, sender


def test_editcap_injected_secrets_give_the_same_records(
        lab: Lab, keyed: list[HandshakeRecord], tmp_path: Path) -> None:
    """``editcap --inject-secrets tls,FILE``: the pcapng's Decryption Secrets Block does
    what ``--keylog FILE`` does (apart from the capture's name and so the uid)."""
    injected = tmp_path / "injected.pcapng"
    subprocess.run(["editcap", "--inject-secrets", f"tls,{lab.all_keys}", str(lab.capture),
                    str(injected)], check=True, capture_output=True)
    again = analyse(injected, None, lab.ca)
    assert [sans(r, "capture", "uid") for r in again] == \
        [sans(r, "capture", "uid") for r in keyed]


def _secrets(path: Path) -> list[str]:
    return [line.split()[2] for line in path.read_text().splitlines() if len(line.split()) == 3]


def _rewrite(lab: Lab, path: Path, change: Callable[[list[str]], str]) -> KeyLog:
    lines = [change(line.split()) for line in lab.all_keys.read_text().splitlines()
             if len(line.split()) == 3]
    path.write_text("".join(line + "\n" for line in lines))
    return KeyLog.from_files([path])


def test_wrong_secrets_give_the_no_key_result_and_an_anomaly(
        lab: Lab, plain: list[HandshakeRecord], tmp_path: Path) -> None:
    """Every secret damaged (its last byte changed): no record opens, each connection
    that had secrets says ``decrypt_failed``, and otherwise the records are the no-key
    ones: never a wrong plaintext, never a traceback."""
    def damage(f: list[str]) -> str:
        last = int(f[2][-2:], 16) ^ 0x01
        return f"{f[0]} {f[1]} {f[2][:-2]}{last:02x}"
    keylog = _rewrite(lab, tmp_path / "wrong.keys", damage)
    assert keylog.warnings == []
    wrong = analyse(lab.capture, keylog, lab.ca)
    assert [sans(r, "timeline", "anomalies") for r in wrong] == \
        [sans(r, "timeline", "anomalies") for r in plain]
    for r, p in zip(wrong, plain, strict=True):
        assert set(r.anomalies) - set(p.anomalies) <= {"decrypt_failed"}
        assert r.decrypted == []
    assert sum("decrypt_failed" in r.anomalies for r in wrong) >= len(lab.ran)


def test_truncated_lines_give_warnings_and_the_no_key_result(
        lab: Lab, plain: list[HandshakeRecord], tmp_path: Path) -> None:
    """Every line cut in the middle of its secret: each is a one-line warning naming the
    file and line and never quoting it; nothing is kept, so the records are the no-key
    ones exactly."""
    keylog = _rewrite(lab, tmp_path / "cut.keys", lambda f: f"{f[0]} {f[1]} {f[2][:31]}")
    assert len(keylog) == 0 and keylog.warnings
    secrets = _secrets(lab.all_keys)
    for _, detail in keylog.warnings:
        assert "cut.keys line" in detail and "\n" not in detail
        assert not any(s[:31] in detail or f[:16] in detail for s in secrets
                       for f in [s[:31]])
    cut = analyse(lab.capture, keylog, lab.ca)
    assert [r.to_dict() for r in cut] == [r.to_dict() for r in plain]


def test_other_clients_secrets_give_the_no_key_result_with_a_note(
        lab: Lab, plain: list[HandshakeRecord], tmp_path: Path) -> None:
    """A key log of other connections (here: of the successful handshakes only): the
    failed connections get the no-key records, and their timeline says why."""
    others = tmp_path / "others.keys"
    others.write_text("".join(lab.keyfile(c).read_text() for c in lab.ran
                              if c.truth.outcome == "established"))
    foreign = analyse(lab.capture, KeyLog.from_files([others]), lab.ca)
    by_uid = {r.uid: r for r in plain}
    failures = [r for r in foreign if r.client_random in _owner and any(
        c.id == _owner[r.client_random] and c.truth.outcome == "failed" for c in lab.ran)]
    assert failures
    for r in failures:
        assert sans(r, "timeline") == sans(by_uid[r.uid], "timeline")
        notes = [e.what for e in r.timeline if e.what.startswith("not decrypted")]
        assert notes == ["not decrypted: the key log has no secrets for this connection"]


def test_workers_get_the_key_log_in_memory(lab: Lab, keyed: list[HandshakeRecord]) -> None:
    run = Run()
    opts = DiagnosisOptions(ca_bundle=str(lab.ca))
    two = collect(lab.capture, run, options=opts, keylog=KeyLog.from_files([lab.all_keys]),
                  workers=2)
    assert [r.to_dict() for r in two] == [r.to_dict() for r in keyed]


# -- the command line: no secret in any output -------------------------------------------------


def tlsa(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="250")
    return subprocess.run([sys.executable, "-m", "analyzer", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300, check=False)


def test_no_secret_reaches_any_output(lab: Lab, keyed: list[HandshakeRecord],
                                      tmp_path: Path) -> None:
    """JSONL, CSV, table, Zeek, ECS, summary, ``show``, the HTML report, an extract
    without ``--embed-secrets`` and stderr (with good, wrong and truncated key logs) hold
    no secret of the key log, in hex of either case or as bytes."""
    secrets = _secrets(lab.all_keys)
    wrong = tmp_path / "wrong.keys"
    wrong.write_text("".join(f"{f[0]} {f[1]} {f[2][::-1]}\n" for f in
                             (line.split() for line in lab.all_keys.read_text().splitlines())))
    cut = tmp_path / "cut.keys"
    cut.write_text("".join(line[: len(line) - 20] + "\n"
                           for line in lab.all_keys.read_text().splitlines()))
    failed_uid = next(r.uid for r in keyed if r.outcome == "failed")
    texts: list[str] = []
    blobs: list[bytes] = []
    base = (lab.capture, "--ca-bundle", lab.ca, "--keylog", lab.all_keys)
    for fmt in ("jsonl", "csv", "table", "zeek", "ecs"):
        out = tmp_path / f"out.{fmt}"
        done = tlsa("analyze", *base, "-f", fmt, "-o", out)
        assert done.returncode == 0, done.stderr
        texts += [out.read_text(), done.stdout, done.stderr]
    for args in (("summary", *base, "-f", "json"), ("show", failed_uid, *base),
                 ("report", *base, "-o", tmp_path / "report"),
                 ("analyze", lab.capture, "--keylog", wrong, "--keylog", cut, "-f", "jsonl"),
                 ("analyze", *base, "--uid", failed_uid, "--extract", tmp_path / "x.pcapng")):
        done = tlsa(*args)
        assert done.returncode == 0, done.stderr
        texts += [done.stdout, done.stderr]
    texts.append((tmp_path / "report" / "index.html").read_text())
    blobs.append((tmp_path / "x.pcapng").read_bytes())
    assert "decrypted" in texts[0] and "key log" in texts[2]  # it did decrypt, and said so
    everything = "\n".join(texts).lower()
    leaked = [s for s in secrets if s.lower() in everything or s[::-1].lower() in everything
              or any(bytes.fromhex(s) in b for b in blobs)]
    assert leaked == []


def test_embed_secrets_writes_only_the_extracted_connections(
        lab: Lab, keyed: list[HandshakeRecord], tmp_path: Path) -> None:
    """``--extract --embed-secrets``: a Decryption Secrets Block with exactly the lines of
    the connection written; tshark decrypts the file with nothing else (the Certificate
    of a TLS 1.3 handshake is visible)."""
    r = next(r for r in keyed if r.failure == "certificate_expired")
    out = tmp_path / "one.pcapng"
    done = tlsa("analyze", lab.capture, "--keylog", lab.all_keys, "--uid", r.uid,
                "--extract", out, "--embed-secrets", "-f", "jsonl")
    assert done.returncode == 0, done.stderr
    assert "with the secrets of 1" in done.stderr
    data = out.read_bytes()
    mine = [line for line in lab.all_keys.read_text().splitlines()
            if r.client_random and r.client_random in line.lower()]
    assert mine
    for line in lab.all_keys.read_text().splitlines():
        secret = line.split()[2].lower().encode()
        assert (secret in data) == (line in mine)
    shown = subprocess.run(["tshark", "-n", "-r", str(out), "-d", f"tcp.port=={r.server_port},tls",
                            "-Y", "tls.handshake.type == 11"], capture_output=True, text=True,
                           check=True).stdout
    assert shown.strip(), "tshark could not decrypt the Certificate with the embedded secrets"
    again = analyse(out, None, lab.ca)
    assert [(x.failure, x.failure_side, x.inferred, x.decrypted) for x in again] == \
        [(r.failure, r.failure_side, r.inferred, r.decrypted)]


# -- tlsa live following a key log that the clients are still writing -------------------------


def test_live_follows_a_key_log_being_written(tmp_path: Path) -> None:
    """``tlsa live --keylog F --write W --embed-secrets``: F does not exist when the capture
    starts; gnutls-cli (``SSLKEYLOGFILE``) and s_client (``-keylogfile``) append to it
    while tlsa runs. Their TLS 1.3 rejections come out decrypted with ``inferred`` false,
    and W carries the secrets of those connections, so a later analysis without any key
    log gives the same verdicts."""
    if shutil.which("gnutls-cli") is None or shutil.which("dumpcap") is None:
        pytest.skip("needs gnutls-cli and dumpcap")
    pki = TestPKI(tmp_path / "pki")
    untrusted = pki.server(UNTRUSTED, kind=LeafKind.INSPECTION)
    good = pki.server(WWW)
    keys, written, out = tmp_path / "live.keys", tmp_path / "live.pcapng", tmp_path / "out.jsonl"
    ports = (4701, 4702)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with Netns() as ns:
        servers = [
            s_server(ns, tmp_path / "s1", ["-cert", str(untrusted.chain), "-key",
                                           str(untrusted.key), "-www", "-tls1_3"],
                     port=ports[0], name="untrusted"),
            s_server(ns, tmp_path / "s2", ["-cert", str(good.cert), "-cert_chain",
                                           str(good.chain), "-key", str(good.key), "-www",
                                           "-tls1_3", "-Verify", "1", "-CAfile", str(pki.root)],
                     port=ports[1], name="client-cert"),
        ]
        proc = ns.popen([sys.executable, "-m", "analyzer", "live", "-i", "lo", "--bpf",
                         port_filter(ports), "--keylog", str(keys), "--write", str(written),
                         "--embed-secrets", "-f", "jsonl", "-o", str(out)],
                        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 20
            while not written.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)
            gnutls = kc.gnutls(UNTRUSTED, IP, ports[0], keys, ca=pki.root)
            said = ns.run(gnutls.argv, env=gnutls.env, input="", timeout=30)
            assert "The certificate issuer is unknown" in said.output
            s_client = kc.openssl(WWW, IP, ports[1], keys, ca=pki.root)
            said = ns.run(s_client.argv, input=s_client.input, timeout=30)
            assert "certificate required" in said.output
            time.sleep(2.0)
        finally:
            proc.send_signal(2)
            _, err = proc.communicate(timeout=30)
            for server in servers:
                server.stop()
    assert proc.returncode == 0, err
    stderr = err.decode()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    got = sorted((r["server_port"], r["failure"], r["failure_side"], r["inferred"],
                  tuple(r["decrypted"])) for r in records)
    assert got == [(ports[0], "certificate_untrusted", "client", False, ("client", "server")),
                   (ports[1], "client_certificate_required", "server", False,
                    ("client", "server"))], stderr
    assert "wrote the secrets of 2 connections" in stderr
    for secret in _secrets(keys):
        assert secret not in stderr and secret not in out.read_text()
    again = analyse(written, None, pki.root)
    assert sorted((r.server_port, r.failure, r.inferred) for r in again) == [
        (ports[0], "certificate_untrusted", False), (ports[1], "client_certificate_required",
                                                     False)]


"""Key-log decryption of real handshakes, checked against the stacks and against tshark.

One capture (a network namespace of its own, tcpdump on its loopback) holds a connection
per scenario: ``openssl s_server`` and ``openssl s_client -keylogfile`` (each side writes
its own key log) for TLS 1.3 with each of the five AEADs and after a HelloRetryRequest;
TLS 1.2 ECDHE/RSA with AES-GCM, ChaCha20-Poly1305, AES-CCM and CCM_8, AES-CBC with
HMAC-SHA256, SHA-1 and SHA-384, with and without encrypt_then_mac; TLS 1.1 and 1.0 CBC
(``@SECLEVEL=0``) with and without encrypt_then_mac; a client KeyUpdate; curl writing
``SSLKEYLOGFILE`` while the key log is followed; and ``gnutls-cli`` (``SSLKEYLOGFILE``)
rejecting the untrusted certificate of a TLS 1.3 server with an encrypted alert.

Each connection is decrypted with :mod:`analyzer.tls.decrypt` as the engine is meant to
drive it (``tests.harness.tlsdecrypt``). Truth: the message flow of the RFCs for what
each scenario set up (OpenSSL sends two session tickets, both sides close with
close_notify), the version and cipher s_client reported, the error gnutls-cli reported;
tshark (``-o tls.keylog_file``) must show exactly the same handshake types and alert
descriptions per direction. A key log with a damaged secret gives ``Failed``, never
plaintext. ``editcap --inject-secrets`` embeds the key log in a pcapng whose Decryption
Secrets Block the capture reader hands to a :class:`KeyLog`.

Needs root, ip, tcpdump, openssl and tshark (gnutls-cli, curl and editcap for their
tests); skips with the reason otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from analyzer.sources import CaptureReader
from analyzer.tls.decrypt import FailReason, SessionKeys
from analyzer.tls.enums import AlertDescription, ContentType, ExtensionType
from analyzer.tls.enums import HandshakeType as H
from analyzer.tls.keylog import KeyLog
from analyzer.tls.names import cipher_name
from tests.harness import missing_requirements
from tests.harness.capture import Capture, port_filter
from tests.harness.netns import Netns
from tests.harness.pki import TestPKI
from tests.harness.servers import Server, s_server
from tests.harness.tlsdecrypt import (
    Side,
    TcpStream,
    Transcript,
    records,
    tcp_streams,
    transcript,
    tshark_transcripts,
)

_MISSING = missing_requirements(("ip", "ethtool", "tcpdump", "openssl", "tshark"))

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(_MISSING is not None, reason=_MISSING or ""),
]

WWW = "www.example.com"
REQUEST = "GET / HTTP/1.0\r\n\r\n"
CLOSE = [AlertDescription.close_notify]

TLS13_CLIENT = [H.client_hello, H.finished]
TLS13_SERVER = [H.server_hello, H.encrypted_extensions, H.certificate,
                H.certificate_verify, H.finished, H.new_session_ticket, H.new_session_ticket]
ECDHE_CLIENT = [H.client_hello, H.client_key_exchange, H.finished]
ECDHE_SERVER = [H.server_hello, H.certificate, H.server_key_exchange, H.server_hello_done,
                H.new_session_ticket, H.finished]
RSA_SERVER = [H.server_hello, H.certificate, H.server_hello_done, H.new_session_ticket,
              H.finished]


@dataclass(frozen=True)
class Case:
    """One openssl s_server/s_client connection and the flow it must show."""

    id: str
    server: tuple[str, ...]
    client: tuple[str, ...]
    protocol: str
    """What s_client reports as ``Protocol``."""
    etm: bool = False
    client_types: list[int] = field(default_factory=lambda: ECDHE_CLIENT)
    server_types: list[int] = field(default_factory=lambda: ECDHE_SERVER)


def _tls13(id_: str, suite: str) -> Case:
    args = ("-tls1_3", "-ciphersuites", suite)
    return Case(id_, args, args, "TLSv1.3", client_types=TLS13_CLIENT,
                server_types=TLS13_SERVER)


def _tls12(id_: str, cipher: str, version: str = "-tls1_2", *, etm: bool = False,
           protocol: str = "TLSv1.2", server_types: list[int] = ECDHE_SERVER) -> Case:
    """openssl offers encrypt_then_mac unless told ``-no_etm``."""
    args = (version, "-cipher", cipher)
    client = args if etm else (*args, "-no_etm")
    return Case(id_, args, client, protocol, etm=etm, server_types=server_types)


CASES = [
    _tls13("tls13-aes128gcm", "TLS_AES_128_GCM_SHA256"),
    _tls13("tls13-aes256gcm", "TLS_AES_256_GCM_SHA384"),
    _tls13("tls13-chacha20", "TLS_CHACHA20_POLY1305_SHA256"),
    _tls13("tls13-aes128ccm", "TLS_AES_128_CCM_SHA256"),
    _tls13("tls13-aes128ccm8", "TLS_AES_128_CCM_8_SHA256"),
    Case("tls13-hrr", ("-tls1_3", "-groups", "P-256"), ("-tls1_3", "-groups", "X25519:P-256"),
         "TLSv1.3", client_types=[H.client_hello, *TLS13_CLIENT],
         server_types=[H.server_hello, *TLS13_SERVER]),
    _tls12("tls12-aes128gcm", "ECDHE-RSA-AES128-GCM-SHA256"),
    _tls12("tls12-aes256gcm-sha384", "ECDHE-RSA-AES256-GCM-SHA384"),
    _tls12("tls12-chacha20", "ECDHE-RSA-CHACHA20-POLY1305"),
    _tls12("tls12-rsa-aes128ccm", "AES128-CCM", server_types=RSA_SERVER),
    _tls12("tls12-rsa-aes128ccm8", "AES128-CCM8", server_types=RSA_SERVER),
    _tls12("tls12-cbc-sha256-etm", "ECDHE-RSA-AES128-SHA256", etm=True),
    _tls12("tls12-cbc-sha256", "ECDHE-RSA-AES128-SHA256"),
    _tls12("tls12-cbc-sha-etm", "ECDHE-RSA-AES256-SHA", etm=True),
    _tls12("tls12-cbc-sha", "ECDHE-RSA-AES256-SHA"),
    _tls12("tls12-cbc-sha384", "ECDHE-RSA-AES256-SHA384"),
    _tls12("tls11-cbc-etm", "ECDHE-RSA-AES128-SHA@SECLEVEL=0", "-tls1_1", etm=True,
           protocol="TLSv1.1"),
    _tls12("tls11-cbc", "ECDHE-RSA-AES128-SHA@SECLEVEL=0", "-tls1_1", protocol="TLSv1.1"),
    _tls12("tls10-cbc-etm", "ECDHE-RSA-AES128-SHA@SECLEVEL=0", "-tls1", etm=True,
           protocol="TLSv1"),
    _tls12("tls10-cbc", "ECDHE-RSA-AES128-SHA@SECLEVEL=0", "-tls1", protocol="TLSv1"),
]
BASE_PORT = 4400
KEYUPDATE_PORT = BASE_PORT + len(CASES)
CURL_PORT = KEYUPDATE_PORT + 1
GNUTLS_PORT = KEYUPDATE_PORT + 2


@dataclass
class Lab:
    """The capture, the key logs and what each client said."""

    capture: Path
    keys: Path
    """Directory of the key log files."""
    reports: dict[str, str] = field(default_factory=dict)
    """s_client/gnutls-cli output per scenario id."""
    streams: dict[int, list[TcpStream]] = field(default_factory=dict)
    """Connections by server port."""
    tshark: dict[tuple[int, int], tuple[Side, Side]] = field(default_factory=dict)
    """tshark's view per client port."""
    followed: list[int] = field(default_factory=list)
    """Entries a followed key log held after each curl run."""
    all_keys: Path = Path()

    def keylog(self, *names: str) -> KeyLog:
        return KeyLog.from_files([self.keys / f"{name}.keys" for name in names])

    def one(self, port: int) -> TcpStream:
        (stream,) = self.streams[port]
        return stream


def _s_client(ns: Netns, port: int, keys: Path, args: tuple[str, ...]) -> str:
    run = ns.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", WWW,
                  "-ign_eof", "-keylogfile", str(keys), *args], input=REQUEST, timeout=30)
    return run.output


def _keyupdate_client(ns: Netns, keys: Path) -> str:
    """s_client sends a KeyUpdate (its ``K`` command, which must arrive in a read of its
    own), then data, then closes."""
    proc = ns.popen(["openssl", "s_client", "-connect", f"127.0.0.1:{KEYUPDATE_PORT}",
                     "-servername", WWW, "-keylogfile", str(keys)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdin is not None and proc.stdout is not None
    for line in (b"K\n", b"hello\n"):
        time.sleep(0.7)
        proc.stdin.write(line)
        proc.stdin.flush()
    time.sleep(0.5)
    proc.stdin.close()
    out = proc.stdout.read().decode(errors="replace")
    proc.wait(10)
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("decrypt")
    cert = TestPKI(tmp / "pki").server(WWW)
    identity = ("-cert", str(cert.chain), "-key", str(cert.key))
    keys = tmp / "keys"
    keys.mkdir()
    result = Lab(capture=tmp / "decrypt.pcap", keys=keys)
    ports = [BASE_PORT + i for i in range(len(CASES))] + [KEYUPDATE_PORT, CURL_PORT, GNUTLS_PORT]
    servers: list[Server] = []
    with Netns() as ns:
        try:
            for i, case in enumerate(CASES):
                args = [*identity, "-www", *case.server,
                        "-keylogfile", str(keys / f"{case.id}.server.keys")]
                servers.append(s_server(ns, tmp / case.id, args, port=BASE_PORT + i, name=case.id))
            servers.append(s_server(ns, tmp / "keyupdate", [*identity, "-tls1_3"],
                                    port=KEYUPDATE_PORT, name="keyupdate"))
            for port in (CURL_PORT, GNUTLS_PORT):
                servers.append(s_server(ns, tmp / f"s{port}", [*identity, "-www", "-tls1_3"],
                                        port=port, name=f"s{port}"))
            with Capture(ns, result.capture, interfaces=("lo",), bpf=port_filter(ports)):
                for i, case in enumerate(CASES):
                    result.reports[case.id] = _s_client(ns, BASE_PORT + i,
                                                         keys / f"{case.id}.keys", case.client)
                result.reports["keyupdate"] = _keyupdate_client(ns, keys / "keyupdate.keys")
                if shutil.which("curl"):
                    followed = KeyLog()
                    followed.follow(keys / "curl.keys")
                    env = dict(os.environ, SSLKEYLOGFILE=str(keys / "curl.keys"))
                    for _ in range(2):
                        ns.run(["curl", "-sk", "--tlsv1.3", "--resolve",
                                f"{WWW}:{CURL_PORT}:127.0.0.1", f"https://{WWW}:{CURL_PORT}/"],
                               env=env, timeout=30)
                        followed.poll()
                        result.followed.append(len(followed))
                if shutil.which("gnutls-cli"):
                    env = dict(os.environ, SSLKEYLOGFILE=str(keys / "gnutls.keys"))
                    run = ns.run(["gnutls-cli", "--port", str(GNUTLS_PORT), "--sni-hostname", WWW,
                                  "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.3", "127.0.0.1"],
                                 input="", env=env, timeout=30)
                    result.reports["gnutls"] = run.output
        finally:
            for server in servers:
                server.stop()
    for stream in tcp_streams(result.capture):
        result.streams.setdefault(stream.server_port, []).append(stream)
    result.all_keys = tmp / "all.keys"
    result.all_keys.write_text("".join(
        path.read_text() for path in sorted(keys.glob("*.keys")) if ".server." not in path.name))
    result.tshark = tshark_transcripts(result.capture, result.all_keys, ports)
    yield result


def _check_against_tshark(lab: Lab, stream: TcpStream, mine: Transcript) -> None:
    theirs = lab.tshark[(stream.client_port, stream.server_port)]
    for side, their_side in zip((mine.client, mine.server), theirs, strict=True):
        assert side.handshake == their_side.handshake
        assert side.alerts == their_side.alerts


def _reported(output: str, field_name: str) -> str:
    match = re.search(rf"^\s*{field_name}\s*:\s*(\S+)", output, re.MULTILINE)
    assert match is not None, output[-400:]
    return match[1]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_openssl_connection_decrypts_like_tshark(lab: Lab, case: Case) -> None:
    stream = lab.one(BASE_PORT + CASES.index(case))
    mine = transcript(stream, lab.keylog(case.id))
    report = lab.reports[case.id]
    assert isinstance(mine.keys, SessionKeys), mine.keys
    assert mine.hello is not None
    # What the client itself negotiated.
    assert _reported(report, "Protocol") == case.protocol
    assert re.search(rf"Cipher is {re.escape(_reported(report, 'Cipher'))}", report)
    assert cipher_name(mine.hello.cipher_suite) == mine.keys.suite.name
    etm = any(e.type == ExtensionType.encrypt_then_mac for e in mine.hello.extensions)
    assert etm is case.etm
    # The flow the scenario must show, plaintext and decrypted, and nothing failed.
    assert mine.client.failures == [] and mine.server.failures == []
    assert mine.client.handshake == case.client_types
    assert mine.server.handshake == case.server_types
    assert mine.client.alerts == CLOSE and mine.server.alerts == CLOSE
    assert mine.client.decrypted >= 2 and mine.server.decrypted >= 2
    _check_against_tshark(lab, stream, mine)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_server_and_client_log_the_same_secrets(lab: Lab, case: Case) -> None:
    client, server = (
        {line for line in (lab.keys / name).read_text().splitlines()
         if line[:1] not in ("", "#") and not line.startswith("RSA ")}
        for name in (f"{case.id}.keys", f"{case.id}.server.keys")
    )
    # The client adds an RSA line (encrypted pre-master secret) for RSA key exchange:
    # accepted and ignored.
    assert lab.keylog(case.id).warnings == []
    assert client == server
    # TLS 1.3: four traffic secrets and EXPORTER_SECRET; TLS <= 1.2: CLIENT_RANDOM.
    assert len(client) == (5 if case.protocol == "TLSv1.3" else 1)


def _damaged(lab: Lab, name: str) -> KeyLog:
    """The key log with the last hex digit of every secret changed."""
    lines = []
    for line in (lab.keys / f"{name}.keys").read_text().splitlines():
        if line.startswith("#"):
            continue
        label, random, secret = line.split()
        lines.append(f"{label} {random} {secret[:-1]}{'0' if secret[-1] != '0' else '1'}")
    keylog = KeyLog()
    keylog.add_text("\n".join(lines), source="damaged")
    return keylog


@pytest.mark.parametrize(("case_id", "reasons"), [
    ("tls13-aes128gcm", {FailReason.BAD_TAG}),
    ("tls13-aes128ccm8", {FailReason.BAD_TAG}),
    ("tls12-aes128gcm", {FailReason.BAD_TAG}),
    ("tls12-chacha20", {FailReason.BAD_TAG}),
    ("tls12-cbc-sha", {FailReason.BAD_MAC, FailReason.BAD_PADDING}),
    ("tls12-cbc-sha-etm", {FailReason.BAD_MAC}),
    ("tls10-cbc", {FailReason.BAD_MAC, FailReason.BAD_PADDING}),
])
def test_a_wrong_secret_fails_and_yields_nothing(lab: Lab, case_id: str,
                                                 reasons: set[FailReason]) -> None:
    case = next(c for c in CASES if c.id == case_id)
    mine = transcript(lab.one(BASE_PORT + CASES.index(case)), _damaged(lab, case_id))
    for side, failures in ((mine.client, mine.client.failures),
                           (mine.server, mine.server.failures)):
        assert len(failures) == 1 and failures[0] in reasons
        assert side.decrypted == 0
        assert H.finished not in side.handshake and side.alerts == []


def test_keyupdate_moves_the_client_to_its_next_secret(lab: Lab) -> None:
    assert "KEYUPDATE" in lab.reports["keyupdate"]
    stream = lab.one(KEYUPDATE_PORT)
    mine = transcript(stream, lab.keylog("keyupdate"))
    assert mine.client.failures == [] and mine.server.failures == []
    assert mine.client.handshake == [*TLS13_CLIENT, H.key_update]
    # The data and close_notify after the KeyUpdate open only with the next secret.
    assert mine.client.alerts == CLOSE
    assert mine.client.decrypted == 4  # Finished, KeyUpdate, "hello", close_notify
    _check_against_tshark(lab, stream, mine)


def test_a_followed_key_log_picks_up_what_curl_appends(lab: Lab) -> None:
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    assert lab.followed == [1, 2]
    keylog = lab.keylog("curl")
    streams = lab.streams[CURL_PORT]
    assert len(streams) == 2
    for stream in streams:
        mine = transcript(stream, keylog)
        assert isinstance(mine.keys, SessionKeys)
        assert mine.server.handshake[:5] == TLS13_SERVER[:5]
        assert H.finished in mine.client.handshake
        _check_against_tshark(lab, stream, mine)


def test_gnutls_rejects_an_untrusted_certificate_with_an_encrypted_alert(lab: Lab) -> None:
    if "gnutls" not in lab.reports:
        pytest.skip("gnutls-cli is not installed")
    assert "Error in the certificate" in lab.reports["gnutls"]  # gnutls-cli's own account
    stream = lab.one(GNUTLS_PORT)
    client_records = list(records(stream.client, is_client=True))
    assert all(r.content_type != ContentType.alert for r in client_records)  # never in clear
    keylog = lab.keylog("gnutls")
    mine = transcript(stream, keylog)
    assert mine.hello is not None
    # gnutls-cli never derived application secrets: it stopped at the certificate.
    secrets = keylog.lookup(next(iter(_randoms(stream))))
    assert secrets is not None
    assert secrets.labels == ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET")
    assert mine.server.handshake == TLS13_SERVER[:5]
    assert mine.client.handshake == [H.client_hello]
    assert mine.client.alerts == [AlertDescription.bad_certificate]
    _check_against_tshark(lab, stream, mine)


def _randoms(stream: TcpStream) -> Iterator[bytes]:
    """The client random of the stream's ClientHello."""
    first = next(records(stream.client, is_client=True))
    yield first.fragment[6:38]


def test_editcap_secrets_block_feeds_the_key_log(lab: Lab, tmp_path: Path) -> None:
    if not shutil.which("editcap"):
        pytest.skip("editcap is not installed")
    out = tmp_path / "with-secrets.pcapng"
    subprocess.run(["editcap", "--inject-secrets", f"tls,{lab.all_keys}", str(lab.capture),
                    str(out)], check=True, capture_output=True)
    embedded = KeyLog()
    reader = CaptureReader(out, secrets=embedded)
    frames = sum(1 for _ in reader)
    assert reader.error is None and reader.anomalies == [] and frames > 0
    assert embedded.warnings == []
    from_files = KeyLog.from_files([lab.all_keys])
    assert len(embedded) == len(from_files) > len(CASES)
    for streams in lab.streams.values():
        for stream in streams:
            random = next(_randoms(stream))
            assert embedded.lookup(random) == from_files.lookup(random)
            assert embedded.lookup(random) is not None
    stream = lab.one(BASE_PORT)
    assert transcript(stream, embedded).client.handshake == TLS13_CLIENT

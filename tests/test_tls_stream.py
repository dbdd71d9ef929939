"""TLSStream (analyzer.tls.stream): events of one direction, split invariance, real bytes.

Real bytes come from two places: handshakes made in memory with Python's ``ssl``
(MemoryBIO pairs, no sockets) whose negotiated values ``ssl`` reports, and captures in
../shared/pcaps whose TCP payloads tshark extracts and decodes for comparison.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import ssl
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.anomalies import Anomaly
from analyzer.limits import MAX_HANDSHAKE_MESSAGE, MAX_TLS_RECORD
from analyzer.tls.enums import HandshakeType, is_tls13_draft
from analyzer.tls.events import (
    Alert,
    ApplicationData,
    ChangeCipherSpec,
    EncryptedHandshake,
    HandshakeMsg,
    Heartbeat,
    NotTLS,
    ParseAnomaly,
    TLSEvent,
)
from analyzer.tls.messages import CertificateChain, ClientHello, ServerHello, ServerKeyExchange
from analyzer.tls.stream import TLSStream, parse_alert
from tests.tls_fixtures import (
    CERT_A,
    CERT_B,
    CLIENT_KEY_EXCHANGE,
    ECDHE_SERVER_KEY_EXCHANGE,
    FATAL_HANDSHAKE_FAILURE,
    HELLO_RETRY_REQUEST,
    RFC8448_CLIENT_HELLO,
    RFC8448_SERVER_HELLO,
    SERVER_HELLO_DONE,
    SSLV2_CLIENT_HELLO,
    TLS12_CERTIFICATE,
    TLS12_CLIENT_HELLO,
    h,
    record,
)

CCS = h("14 03 03 00 01 01")
FINISHED = h("16 03 03 00 28") + bytes(range(40))  # encrypted, 40 bytes
TLS12_SERVER_HELLO = (
    h("""
02 00 00 2d                                     # server_hello, 45 bytes
03 03                                           # server_version TLS 1.2
""")
    + bytes(range(32))
    + h("""
00                                              # session_id: empty
c0 2f                                           # TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
00                                              # compression: null
00 05 ff 01 00 01 00                            # extensions: renegotiation_info
""")
)


def drive(stream: TLSStream, chunks: Iterable[bytes], *, tls12: bool = True) -> list[TLSEvent]:
    """Feed ``chunks`` as the engine does: after a TLS <= 1.2 ChangeCipherSpec the
    direction is encrypted, set while the events of the same call are being read."""
    events: list[TLSEvent] = []
    for chunk in chunks:
        for event in stream.feed(chunk):
            events.append(event)
            if tls12 and isinstance(event, ChangeCipherSpec):
                stream.encrypted = True
    return events


def events_of(data: bytes, *, is_client: bool, tls12: bool = True) -> list[TLSEvent]:
    return drive(TLSStream(is_client=is_client), [data], tls12=tls12)


def assert_split_invariant(data: bytes, *, is_client: bool, tls12: bool = True) -> list[TLSEvent]:
    """Every two-way split and byte-at-a-time feeding give the events of one feed."""
    whole = events_of(data, is_client=is_client, tls12=tls12)
    for cut in range(len(data) + 1):
        split = drive(TLSStream(is_client=is_client), [data[:cut], data[cut:]], tls12=tls12)
        assert split == whole, f"split at {cut}"
    one_by_one = [data[i : i + 1] for i in range(len(data))]
    assert drive(TLSStream(is_client=is_client), one_by_one, tls12=tls12) == whole
    return whole


def types(events: list[TLSEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


# --- the TLS 1.2 exchange, fixture bytes ---------------------------------------------

SERVER_FLIGHT = (
    record(
        22,
        TLS12_SERVER_HELLO + TLS12_CERTIFICATE + ECDHE_SERVER_KEY_EXCHANGE + SERVER_HELLO_DONE,
    )
    + CCS
    + FINISHED
    + h("17 03 03 00 20")
    + bytes(32)
)
CLIENT_FLIGHT = (
    record(22, TLS12_CLIENT_HELLO, version=0x0301)
    + record(22, CLIENT_KEY_EXCHANGE)
    + CCS
    + FINISHED
    + h("17 03 03 00 20")
    + bytes(32)
)


def test_tls12_server_flight_several_messages_per_record() -> None:
    events = assert_split_invariant(SERVER_FLIGHT, is_client=False)
    assert types(events) == [
        "HandshakeMsg", "HandshakeMsg", "HandshakeMsg", "HandshakeMsg",
        "ChangeCipherSpec", "EncryptedHandshake", "ApplicationData",
    ]  # fmt: skip
    sh, cert, ske, done = events[:4]
    assert isinstance(sh, HandshakeMsg) and isinstance(sh.parsed, ServerHello)
    assert sh.parsed.cipher_suite == 0xC02F and sh.records == 1
    assert isinstance(cert, HandshakeMsg) and cert.parsed == CertificateChain(
        certificates=(CERT_A, CERT_B)
    )
    assert isinstance(ske, HandshakeMsg) and ske.parsed == ServerKeyExchange(named_curve=0x1D)
    assert done == HandshakeMsg(msg_type=HandshakeType.server_hello_done, length=0)
    assert events[5] == EncryptedHandshake(length=40)
    assert events[6] == ApplicationData(length=32)


def test_tls12_client_flight() -> None:
    events = assert_split_invariant(CLIENT_FLIGHT, is_client=True)
    ch, cke = events[:2]
    assert isinstance(ch, HandshakeMsg) and isinstance(ch.parsed, ClientHello)
    assert ch.parsed.sni == "example.com" and ch.length == len(TLS12_CLIENT_HELLO) - 4
    assert cke == HandshakeMsg(msg_type=16, length=33)
    assert events[2:] == [
        ChangeCipherSpec(),
        EncryptedHandshake(length=40),
        ApplicationData(length=32),
    ]


def test_without_the_encrypted_flag_a_finished_record_is_parsed_as_handshake() -> None:
    # what the flag is for: the encrypted Finished would be read as a plaintext header
    events = events_of(CLIENT_FLIGHT, is_client=True, tls12=False)
    assert EncryptedHandshake(length=40) not in events


def test_tls13_compatibility_ccs_and_second_client_hello_after_hrr() -> None:
    # a TLS 1.3 client after a HelloRetryRequest: CCS, then a plaintext ClientHello
    data = record(22, RFC8448_CLIENT_HELLO, 0x0301) + CCS + record(22, RFC8448_CLIENT_HELLO)
    events = assert_split_invariant(data, is_client=True, tls12=False)
    assert types(events) == ["HandshakeMsg", "ChangeCipherSpec", "HandshakeMsg"]
    server = record(22, HELLO_RETRY_REQUEST) + CCS + record(22, RFC8448_SERVER_HELLO)
    server += h("17 03 03 00 10") + bytes(16)
    events = assert_split_invariant(server, is_client=False, tls12=False)
    hrr, _ccs, sh, app = events
    assert isinstance(hrr, HandshakeMsg) and isinstance(hrr.parsed, ServerHello)
    assert hrr.parsed.is_hrr and hrr.parsed.key_share_group == 0x17
    assert isinstance(sh, HandshakeMsg) and isinstance(sh.parsed, ServerHello)
    assert not sh.parsed.is_hrr and sh.parsed.version == 0x0304
    assert app == ApplicationData(length=16)


def test_one_message_over_several_records() -> None:
    cert = TLS12_CERTIFICATE
    data = (
        record(22, cert[:3])
        + record(22, cert[3:10])
        + record(22, cert[10:] + SERVER_HELLO_DONE[:2])
    )
    data += record(22, SERVER_HELLO_DONE[2:])
    events = assert_split_invariant(data, is_client=False)
    assert events == [
        HandshakeMsg(
            msg_type=11,
            length=len(cert) - 4,
            parsed=CertificateChain(certificates=(CERT_A, CERT_B)),
            records=3,
        ),
        HandshakeMsg(msg_type=14, length=0, records=2),
    ]


def test_sslv2_client_hello_then_tls() -> None:
    data = SSLV2_CLIENT_HELLO + record(22, CLIENT_KEY_EXCHANGE, 0x0301)
    events = assert_split_invariant(data, is_client=True)
    hello, cke = events
    assert isinstance(hello, HandshakeMsg) and hello.msg_type == 1
    assert isinstance(hello.parsed, ClientHello) and hello.parsed.sslv2
    assert hello.parsed.cipher_suites == (0x35, 0xFF)
    assert isinstance(cke, HandshakeMsg) and cke.msg_type == 16


def test_alerts() -> None:
    assert parse_alert(FATAL_HANDSHAKE_FAILURE) == Alert(
        level=2, description=40, encrypted=False, length=2
    )
    assert parse_alert(bytes(26)) == Alert(level=None, description=None, encrypted=True, length=26)
    assert parse_alert(b"") == ParseAnomaly(anomaly=Anomaly.BAD_ALERT, detail="empty alert record")
    bad_level = parse_alert(h("07 28"))
    assert isinstance(bad_level, ParseAnomaly) and bad_level.anomaly == Anomaly.BAD_ALERT
    data = record(21, FATAL_HANDSHAKE_FAILURE) + record(21, bytes(26))
    assert assert_split_invariant(data, is_client=False) == [
        Alert(level=2, description=40, encrypted=False, length=2),
        Alert(level=None, description=None, encrypted=True, length=26),
    ]


def test_heartbeat_and_empty_application_data() -> None:
    data = record(24, h("01 00 10") + bytes(16)) + record(23, b"")
    assert assert_split_invariant(data, is_client=True) == [
        Heartbeat(length=19),
        ApplicationData(length=0),
    ]


def test_record_interleaved_with_a_partial_handshake_message() -> None:
    cert = TLS12_CERTIFICATE
    data = record(22, cert[:10]) + record(21, h("01 00")) + record(22, cert[10:])
    events = assert_split_invariant(data, is_client=False)
    assert types(events) == ["ParseAnomaly", "Alert", "HandshakeMsg"]
    assert isinstance(events[0], ParseAnomaly)
    assert events[0].anomaly == Anomaly.INTERLEAVED_RECORD
    assert isinstance(events[2], HandshakeMsg) and events[2].records == 2


def test_partial_message_cut_by_change_cipher_spec_is_dropped() -> None:
    data = record(22, TLS12_CERTIFICATE[:10]) + CCS + FINISHED
    events = assert_split_invariant(data, is_client=False)
    assert types(events) == ["ParseAnomaly", "ChangeCipherSpec", "EncryptedHandshake"]


def test_malformed_hello_is_reported_and_still_counted() -> None:
    broken = h("01 00 00 05 03 03 00 00 00")  # ClientHello cut inside random
    events = assert_split_invariant(record(22, broken), is_client=True)
    assert types(events) == ["ParseAnomaly", "HandshakeMsg"]
    assert isinstance(events[0], ParseAnomaly)
    assert events[0].anomaly == Anomaly.MALFORMED_HANDSHAKE
    assert events[1] == HandshakeMsg(msg_type=1, length=5)


def test_malformed_extension_anomaly_comes_with_the_hello() -> None:
    broken = TLS12_CLIENT_HELLO.replace(h("00 10 00 0e 00 0c"), h("00 10 00 0e 00 0d"))
    events = events_of(record(22, broken), is_client=True)
    assert events[0] == ParseAnomaly(anomaly=Anomaly.MALFORMED_EXTENSION, detail="client_hello")
    assert isinstance(events[1], HandshakeMsg) and isinstance(events[1].parsed, ClientHello)
    assert events[1].parsed.sni == "example.com"


def test_handshake_message_over_the_limit_stops_the_stream() -> None:
    header = bytes([11]) + (MAX_HANDSHAKE_MESSAGE + 1).to_bytes(3, "big")
    stream = TLSStream(is_client=False)
    events = drive(stream, [record(22, header + bytes(100)) + record(21, h("02 28"))])
    assert [e.anomaly for e in events if isinstance(e, ParseAnomaly)] == [
        Anomaly.HANDSHAKE_TOO_LONG
    ]
    assert len(events) == 1 and stream.dead and stream.buffered == 0
    assert list(stream.feed(record(21, h("02 28")))) == []


def test_message_at_the_limit_is_reassembled() -> None:
    payload = bytes([4]) + MAX_HANDSHAKE_MESSAGE.to_bytes(3, "big") + bytes(MAX_HANDSHAKE_MESSAGE)
    chunks = [payload[i : i + MAX_TLS_RECORD] for i in range(0, len(payload), MAX_TLS_RECORD)]
    data = b"".join(record(22, c) for c in chunks)
    stream = TLSStream(is_client=False)
    events = drive(stream, [data])
    assert events == [HandshakeMsg(msg_type=4, length=MAX_HANDSHAKE_MESSAGE, records=len(chunks))]


@pytest.mark.parametrize(
    ("data", "is_client"),
    [
        (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", True),
        (b"\x00" * 10, True),
    ],
)
def test_not_tls(data: bytes, is_client: bool) -> None:
    stream = TLSStream(is_client=is_client)
    assert list(stream.feed(data)) == [NotTLS(prefix=data[:64])]
    assert stream.dead and list(stream.feed(record(22, TLS12_CLIENT_HELLO))) == []
    # fed in pieces, the verdict is the same; its evidence is what had arrived
    for cut in range(1, len(data)):
        events = drive(TLSStream(is_client=is_client), [data[:cut], data[cut:]])
        assert len(events) == 1 and isinstance(events[0], NotTLS)
        assert data.startswith(events[0].prefix) and len(events[0].prefix) >= 1


def test_desync_after_the_start_is_an_anomaly_not_not_tls() -> None:
    stream = TLSStream(is_client=False)
    events = drive(stream, [SERVER_FLIGHT + b"HTTP/1.1 200 OK\r\n"])
    assert events[-1] == ParseAnomaly(
        anomaly=Anomaly.UNKNOWN_CONTENT_TYPE, detail="content type 72"
    )
    assert stream.dead


def test_record_too_long_stops_the_stream() -> None:
    stream = TLSStream(is_client=True)
    events = drive(stream, [record(22, TLS12_CLIENT_HELLO) + h("17 03 03 48 01")])
    assert events[-1] == ParseAnomaly(anomaly=Anomaly.RECORD_TOO_LONG, detail="record length 18433")
    assert stream.dead


@settings(max_examples=200)
@given(
    which=st.sampled_from(["client", "server"]),
    cut=st.integers(min_value=0, max_value=len(SERVER_FLIGHT)),
    suffix=st.binary(max_size=300),
    chunks=st.lists(st.integers(min_value=1, max_value=80), min_size=1, max_size=20),
)
def test_valid_prefix_and_random_suffix_never_raises(
    which: str, cut: int, suffix: bytes, chunks: list[int]
) -> None:
    is_client = which == "client"
    data = (CLIENT_FLIGHT if is_client else SERVER_FLIGHT)[:cut] + suffix
    stream = TLSStream(is_client=is_client)
    events: list[TLSEvent] = []
    pos = 0
    for size in [*chunks, len(data)]:
        events += drive(stream, [data[pos : pos + size]])
        pos += size
        assert stream.buffered <= 5 + MAX_TLS_RECORD + 4 + MAX_HANDSHAKE_MESSAGE
    whole = events_of(data, is_client=is_client)
    if not (whole and isinstance(whole[0], NotTLS)):
        assert events == whole
    assert all(isinstance(e, TLSEvent) for e in events)


# --- real handshakes made in memory with Python's ssl ---------------------------------


@dataclass
class Handshake:
    client_bytes: bytes
    server_bytes: bytes
    client: ssl.SSLObject
    server: ssl.SSLObject


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("cert")
    key, cert = str(d / "key.pem"), str(d / "cert.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=api.example.test"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def memory_handshake(
    cert_files: tuple[str, str],
    *,
    version: ssl.TLSVersion,
    sni: str | None = "api.example.test",
    alpn: list[str] | None = None,
    server_curve: str | None = None,
) -> Handshake:
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*cert_files)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    client_ctx.maximum_version = version
    if alpn:
        server_ctx.set_alpn_protocols(alpn[-1:])
        client_ctx.set_alpn_protocols(alpn)
    if server_curve:
        server_ctx.set_ecdh_curve(server_curve)
    to_server, from_server = ssl.MemoryBIO(), ssl.MemoryBIO()
    to_client, from_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(to_client, from_client, server_hostname=sni)
    server = server_ctx.wrap_bio(to_server, from_server, server_side=True)
    sent_by_client, sent_by_server = b"", b""
    for _ in range(8):
        for side in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        data = from_client.read()
        sent_by_client += data
        to_server.write(data)
        data = from_server.read()
        sent_by_server += data
        to_client.write(data)
    client.write(b"GET / HTTP/1.1\r\n\r\n")
    sent_by_client += from_client.read()
    return Handshake(sent_by_client, sent_by_server, client, server)


def cipher_code(name: str) -> int:
    """IANA code of an OpenSSL cipher name, from ssl's own table."""
    for cipher in ssl.create_default_context().get_ciphers():
        if cipher["name"] == name:
            return int(cipher["id"]) & 0xFFFF
    raise LookupError(name)


def hellos(events: list[TLSEvent]) -> list[ClientHello | ServerHello]:
    return [
        e.parsed
        for e in events
        if isinstance(e, HandshakeMsg) and isinstance(e.parsed, ClientHello | ServerHello)
    ]


@pytest.mark.parametrize(
    ("version", "code"), [(ssl.TLSVersion.TLSv1_2, 0x0303), (ssl.TLSVersion.TLSv1_3, 0x0304)]
)
def test_real_handshake(cert_files: tuple[str, str], version: ssl.TLSVersion, code: int) -> None:
    hs = memory_handshake(cert_files, version=version, alpn=["h2", "http/1.1"])
    tls12 = code == 0x0303
    client_events = assert_split_invariant(hs.client_bytes, is_client=True, tls12=tls12)
    server_events = assert_split_invariant(hs.server_bytes, is_client=False, tls12=tls12)
    [ch] = hellos(client_events)
    [sh] = hellos(server_events)
    assert isinstance(ch, ClientHello) and isinstance(sh, ServerHello)
    assert ch.sni == "api.example.test"
    assert ch.alpn == (b"h2", b"http/1.1")
    assert hs.client.selected_alpn_protocol() == "http/1.1"
    assert sh.alpn == (b"http/1.1" if tls12 else None)  # TLS 1.3: in EncryptedExtensions
    assert hs.client.version() == {0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}[code]
    assert sh.version == code
    cipher = hs.client.cipher()
    assert cipher is not None and sh.cipher_suite == cipher_code(cipher[0])
    assert sh.cipher_suite in ch.cipher_suites
    assert not any(isinstance(e, ParseAnomaly | NotTLS) for e in client_events + server_events)
    if tls12:
        assert 0x0304 not in ch.supported_versions
        [chain] = [
            e.parsed for e in server_events
            if isinstance(e, HandshakeMsg) and isinstance(e.parsed, CertificateChain)
        ]  # fmt: skip
        assert chain.certificates == (hs.client.getpeercert(binary_form=True),)
        assert [e.length for e in client_events if isinstance(e, EncryptedHandshake)] == [40]
        assert EncryptedHandshake(length=40) in server_events
    else:
        assert ch.supported_versions[0] == 0x0304 and sh.key_share_group in ch.key_share_groups
        assert not any(isinstance(e, EncryptedHandshake) for e in server_events)
    # the request sent after the handshake is the last application_data record
    assert isinstance(client_events[-1], ApplicationData)


def test_real_hello_retry_request(cert_files: tuple[str, str]) -> None:
    hs = memory_handshake(cert_files, version=ssl.TLSVersion.TLSv1_3, server_curve="secp384r1")
    assert hs.client.version() == "TLSv1.3"
    client_hellos = hellos(events_of(hs.client_bytes, is_client=True, tls12=False))
    server_hellos = hellos(events_of(hs.server_bytes, is_client=False, tls12=False))
    first, second = client_hellos
    hrr, sh = server_hellos
    assert isinstance(hrr, ServerHello) and hrr.is_hrr and hrr.key_share_group == 0x18
    assert isinstance(sh, ServerHello) and not sh.is_hrr and sh.key_share_group == 0x18
    assert isinstance(first, ClientHello) and 0x18 not in first.key_share_groups
    assert isinstance(second, ClientHello) and second.key_share_groups == (0x18,)


def test_real_handshake_without_sni(cert_files: tuple[str, str]) -> None:
    hs = memory_handshake(cert_files, version=ssl.TLSVersion.TLSv1_3, sni=None)
    [ch] = hellos(events_of(hs.client_bytes, is_client=True, tls12=False))
    assert isinstance(ch, ClientHello) and ch.sni is None
    assert 0 not in [e.type for e in ch.extensions]


# --- captures decoded by tshark ----------------------------------------------------------

PCAPS = Path(__file__).resolve().parents[2] / "shared" / "pcaps" / "suricata-verify"
CAPTURES = [
    "bug-4702-02/tsecr.pcap",
    "bug-5758/input.pcap",
    "community-id-ipv6/input.pcap",
    "ja4-tls/input.pcap",
    "sslv2-tls-upgrade-01/ssl-v2-s1.pcap",
    "tls-alpn-log-detect-02/input.pcap",
    "tls-duplicate-hello/input.pcap",
    "tls/tls-certs-alert/input.pcap",
    "tls/tls-client-hello-frag-01/dump_mtu300.pcap",
    "tls/tls-store-02/tls-client-auth.pcap",
    "tls/tls-pre-1970/input.pcap",
    "tls/tls13-draft18/tls13_draft18.pcap",
    "tls/tls13-draft19/tls13_draft19.pcap",
    "tls/tls13-draft22/tls13_draft22.pcap",
    "tls/tls13-draft23/tls13_draft23.pcap",
    "tls/tls13-draft28/tls13_draft28.pcap",
    "tls/tls-cert-issuer/tls.pcap",
    "tls/tls-fin-close-data-01/debug-s13.pcap",
]


def tshark(*args: str) -> str:
    done = subprocess.run(["tshark", *args], capture_output=True, text=True, timeout=120)
    return done.stdout


def tcp_streams(path: Path, streams: list[int]) -> dict[int, tuple[bytes, bytes]]:
    """Reassembled payload of each TCP stream: (first speaker's bytes, the other's)."""
    follow = [f"-zfollow,tcp,raw,{n}" for n in streams]
    out = tshark("-r", str(path), "-q", *follow)
    result: dict[int, tuple[bytes, bytes]] = {}
    for block in re.split(r"^=+$", out, flags=re.M):
        found = re.search(r"Filter: tcp\.stream eq (\d+)", block)
        if not found:
            continue
        sides = [bytearray(), bytearray()]
        for line in block.splitlines():
            data = line.strip()
            if re.fullmatch(r"[0-9a-f]+", data):
                sides[line.startswith("\t")] += bytes.fromhex(data)
        result[int(found.group(1))] = (bytes(sides[0]), bytes(sides[1]))
    return result


@dataclass
class Truth:
    """What tshark decoded in one TCP stream."""

    snis: list[str]
    offered: list[list[int]]
    chosen: list[int]
    client_types: list[int]
    server_types: list[int]


def tshark_truth(path: Path) -> dict[int, Truth]:
    fields = ["tcp.stream", "ip.src", "ipv6.src", "tcp.srcport", "tls.handshake.type",
              "tls.handshake.extensions_server_name", "tls.handshake.ciphersuite",
              "tls.handshake.cipherspec"]  # fmt: skip
    out = tshark(
        "-r", str(path), "-Y", "tls.handshake.type", "-T", "fields", "-E", "separator=|",
        *[a for f in fields for a in ("-e", f)],
    )  # fmt: skip
    truths: dict[int, Truth] = {}
    clients: dict[int, str] = {}
    for line in out.splitlines():
        stream_id, ip4, ip6, port, hs_types, sni, suites, specs = line.split("|")
        if specs:  # SSLv2 hello: 3-byte specs, those starting with 0 are TLS suites
            suites = ",".join(hex(int(s, 16)) for s in specs.split(",") if int(s, 16) >> 16 == 0)
        stream, sender = int(stream_id), f"{ip4 or ip6}:{port}"
        truth = truths.setdefault(stream, Truth([], [], [], [], []))
        codes = [int(t) for t in hs_types.split(",")]
        if 1 in codes:
            clients.setdefault(stream, sender)
            truth.snis.append(sni)
            truth.offered.append([int(s, 16) for s in suites.split(",")])
        if clients.get(stream) == sender:
            truth.client_types += codes
        else:
            truth.chosen += [int(s, 16) for s in suites.split(",") if s]
            truth.server_types += codes
    return truths


def server_hellos(events: list[TLSEvent]) -> list[ServerHello]:
    return [sh for sh in hellos(events) if isinstance(sh, ServerHello)]


def our_view(client: bytes, server: bytes) -> Truth:
    """Parse both directions as the engine would: the first ServerHello's version says
    whether a ChangeCipherSpec makes the direction encrypted."""
    first = server_hellos(events_of(server, is_client=False))
    tls13 = bool(first) and (first[0].version == 0x0304 or is_tls13_draft(first[0].version))
    server_events = events_of(server, is_client=False, tls12=not tls13)
    client_events = events_of(client, is_client=True, tls12=not tls13)
    client_hellos = [h for h in hellos(client_events) if isinstance(h, ClientHello)]
    return Truth(
        snis=[ch.sni or "" for ch in client_hellos],
        offered=[list(ch.cipher_suites) for ch in client_hellos],
        chosen=[sh.cipher_suite for sh in server_hellos(server_events)],
        client_types=[e.msg_type for e in client_events if isinstance(e, HandshakeMsg)],
        server_types=[e.msg_type for e in server_events if isinstance(e, HandshakeMsg)],
    )


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("capture", CAPTURES)
def test_capture_agrees_with_tshark(capture: str) -> None:
    path = PCAPS / capture
    if not path.exists():
        pytest.skip(f"{path} is not available")
    truths = tshark_truth(path)
    assert truths, "tshark found no handshake"
    streams = tcp_streams(path, sorted(truths))
    for number, truth in truths.items():
        first, second = streams[number]
        client, server = (first, second) if truth.client_types else (second, first)
        ours = our_view(client, server)
        assert ours == truth, f"tcp.stream {number}"


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_capture_of_tls13_draft14_server_hello() -> None:
    """Draft 14 ServerHello: version 0x0304, random, cipher_suite, extensions (no session
    id, no compression). tshark reads it with the RFC 8446 layout and reports suite
    0xacad; the bytes say 0xc02b (ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, in the offer)."""
    path = PCAPS / "tls/tls13-draft14/tls13_draft14.pcap"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    [(client, server)] = tcp_streams(path, [0]).values()
    [sh] = server_hellos(events_of(server, is_client=False, tls12=False))
    [ch] = [c for c in hellos(events_of(client, is_client=True, tls12=False))]
    assert sh.version == 0x0304 and sh.session_id == b"" and sh.cipher_suite == 0xC02B
    assert isinstance(ch, ClientHello) and ch.sni == "tls13.crypto.mozilla.org"
    assert sh.cipher_suite in ch.cipher_suites and sh.anomalies == ()

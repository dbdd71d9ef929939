"""SOCKS4, SOCKS4a and SOCKS5 before TLS: the parser on commented-hex fixtures (RFC 1928,
RFC 1929, the SOCKS4 and SOCKS4A papers), every prefix and byte at a time, Hypothesis on
hostile suffixes, recognition against TLS and plaintext, and whole connections through
the engine (records, diagnosis, timeline, no password anywhere)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.api import Run, collect
from analyzer.flows import preamble, socks
from analyzer.flows.socks import (
    AddressType,
    AuthRequest,
    AuthStatus,
    Greeting,
    MethodSelection,
    Reply,
    Request,
    SocksSession,
    parse_client,
    parse_server,
)
from analyzer.record import HandshakeRecord
from tests.fuzz.pcap import ACK, FIN, Conversation, file_header, tls_record, write_pcap
from tests.tls_fixtures import client_hello, extension, h

PASSWORD = b"Tr0ub4dor&3-secret"

# -- fixtures ---------------------------------------------------------------------------------

SOCKS4_CONNECT = h("""
04          # VN 4
01          # CD 1: CONNECT
01 bb       # DSTPORT 443
0a 63 00 01 # DSTIP 10.99.0.1
61 6c 69 63 65 00  # USERID "alice", NUL
""")

SOCKS4A_CONNECT = h("""
04 01 01 bb
00 00 00 01 # DSTIP 0.0.0.1: SOCKS4A, a host name follows
00          # USERID empty, NUL
77 77 77 2e 65 78 61 6d 70 6c 65 2e 63 6f 6d 00  # "www.example.com", NUL
""")

SOCKS4_GRANTED = h("""
00          # VN 0
5a          # CD 90: request granted
00 00 00 00 00 00  # DSTPORT, DSTIP (ignored)
""")

SOCKS5_GREETING = h("""
05          # VER 5
02          # NMETHODS 2
00 02       # no authentication required, username/password
""")

SOCKS5_AUTH = h("""
01          # RFC 1929 VER 1
05 61 6c 69 63 65  # ULEN 5, UNAME "alice"
""") + bytes([len(PASSWORD)]) + PASSWORD  # PLEN, PASSWD

SOCKS5_CONNECT_DOMAIN = h("""
05 01 00    # VER 5, CMD CONNECT, RSV
03 0f 77 77 77 2e 65 78 61 6d 70 6c 65 2e 63 6f 6d  # ATYP domain, 15, "www.example.com"
01 bb       # DST.PORT 443
""")

SOCKS5_CONNECT_IPV4 = h("05 01 00 01 0a 63 00 01 20 fb")  # 10.99.0.1:8443

SOCKS5_CONNECT_IPV6 = h("""
05 01 00 04                                       # ATYP IPv6
fd 00 00 99 00 00 00 00 00 00 00 00 00 00 00 01   # fd00:99::1
01 bb
""")

SOCKS5_CHOOSE_NONE = h("05 00")
SOCKS5_CHOOSE_USERPASS = h("05 02")
SOCKS5_NO_ACCEPTABLE = h("05 ff")
SOCKS5_AUTH_OK = h("01 00")
SOCKS5_AUTH_FAILED = h("01 01")


def socks5_reply(code: int) -> bytes:
    return h("05") + bytes([code]) + h("00 01 0a 63 00 01 a2 10")  # bound 10.99.0.1:41488


# -- the parser -------------------------------------------------------------------------------


def test_socks4_request() -> None:
    got = parse_client(SOCKS4_CONNECT + b"\x16\x03\x01")
    assert got.state == "done" and got.end == len(SOCKS4_CONNECT)
    (req,) = got.messages
    assert req == Request(version=4, command=1, address_type=AddressType.IPV4,
                          host="10.99.0.1", port=443, user_id="alice")
    assert req.target == "10.99.0.1:443"


def test_socks4a_request() -> None:
    got = parse_client(SOCKS4A_CONNECT)
    (req,) = got.messages
    assert isinstance(req, Request) and req.socks4a and req.target == "www.example.com:443"
    assert got.state == "done" and got.end == len(SOCKS4A_CONNECT)


def test_socks5_greeting_auth_and_request_never_keep_the_password() -> None:
    data = SOCKS5_GREETING + SOCKS5_AUTH + SOCKS5_CONNECT_DOMAIN
    got = parse_client(data)
    assert got.state == "done" and got.end == len(data)
    assert got.messages == (
        Greeting(methods=(0, 2)),
        AuthRequest(username="alice"),
        Request(version=5, command=1, address_type=AddressType.DOMAINNAME,
                host="www.example.com", port=443),
    )
    assert got.auth_at == len(SOCKS5_GREETING)
    assert PASSWORD.decode() not in repr(got) and PASSWORD.decode() not in str(asdict(got))
    assert socks.redacted(data, got) == SOCKS5_GREETING


@pytest.mark.parametrize(("data", "target"), [
    (SOCKS5_CONNECT_IPV4, "10.99.0.1:8443"),
    (SOCKS5_CONNECT_IPV6, "[fd00:99::1]:443"),
])
def test_socks5_addresses(data: bytes, target: str) -> None:
    got = parse_client(h("05 01 00") + data)
    assert got.state == "done"
    req = got.messages[-1]
    assert isinstance(req, Request) and req.target == target


def test_server_answers() -> None:
    ok = parse_server(SOCKS5_CHOOSE_USERPASS + SOCKS5_AUTH_OK + socks5_reply(0), 5)
    assert ok.state == "done" and ok.messages == (
        MethodSelection(method=2), AuthStatus(status=0),
        Reply(version=5, code=0, host="10.99.0.1", port=41488),
    )
    refused = parse_server(SOCKS5_CHOOSE_USERPASS + SOCKS5_AUTH_FAILED, 5)
    assert refused.state == "done" and refused.messages[-1] == AuthStatus(status=1)
    none = parse_server(SOCKS5_NO_ACCEPTABLE, 5)
    assert none.state == "done" and none.messages == (MethodSelection(method=0xFF),)
    granted4 = parse_server(SOCKS4_GRANTED, 4)
    assert granted4.messages == (Reply(version=4, code=90, host="0.0.0.0", port=0),)
    gssapi = parse_server(h("05 01"), 5)
    assert gssapi.state == "malformed" and gssapi.anomaly == "socks_unsupported"


@pytest.mark.parametrize("data", [
    h("05 00"),                      # no methods
    h("05 01 00 06 01 00 01"),       # request with version 6
    h("05 01 00 05 01 01 01 0a 63 00 01 01 bb"),  # RSV not zero
    h("05 01 00 05 01 00 02 00 00"),  # ATYP 2 does not exist
    h("05 01 00 05 01 00 03 00 01 bb"),  # empty domain name
    h("04 03 01 bb 0a 63 00 01 00"),  # SOCKS4 command 3
    h("05 01 00 01 05 61 6c 69 63 65 01 78"),  # username/password not offered
    h("04 01 01 bb 0a 63 00 01") + b"u" * 300,  # user id without its NUL
])
def test_malformed_client_bytes(data: bytes) -> None:
    got = parse_client(data)
    assert got.state == "malformed" and got.anomaly == "socks_malformed"


CLIENT_STREAMS = [
    SOCKS4_CONNECT, SOCKS4A_CONNECT, SOCKS5_GREETING + SOCKS5_CONNECT_DOMAIN,
    SOCKS5_GREETING + SOCKS5_AUTH + SOCKS5_CONNECT_DOMAIN, h("05 01 00") + SOCKS5_CONNECT_IPV6,
]
SERVER_STREAMS = [
    (SOCKS4_GRANTED, 4), (SOCKS5_CHOOSE_NONE + socks5_reply(5), 5),
    (SOCKS5_CHOOSE_USERPASS + SOCKS5_AUTH_OK + socks5_reply(0), 5), (SOCKS5_NO_ACCEPTABLE, 5),
]


@pytest.mark.parametrize("data", CLIENT_STREAMS)
def test_client_every_prefix_and_byte_at_a_time(data: bytes) -> None:
    full = parse_client(data)
    session = SocksSession(data[0])
    seen: list[object] = []
    for n in range(len(data) + 1):
        part = parse_client(data[:n])
        assert full.messages[: len(part.messages)] == part.messages
        assert part.state == ("done" if n == len(data) else "need_more")
        seen += session.feed_client(data[:n])
    assert tuple(seen) == full.messages


@pytest.mark.parametrize(("data", "version"), SERVER_STREAMS)
def test_server_every_prefix_and_byte_at_a_time(data: bytes, version: int) -> None:
    full = parse_server(data, version)
    session = SocksSession(version)
    seen: list[object] = []
    for n in range(len(data) + 1):
        part = parse_server(data[:n], version)
        assert full.messages[: len(part.messages)] == part.messages
        assert part.state == ("done" if n == len(data) else "need_more")
        seen += session.feed_server(data[:n])
    assert tuple(seen) == full.messages


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CLIENT_STREAMS), st.integers(0, 80), st.binary(max_size=80))
def test_client_valid_prefix_and_random_suffix_never_raise(
    data: bytes, cut: int, suffix: bytes
) -> None:
    got = parse_client(data[:cut] + suffix)
    assert got.state in ("need_more", "done", "malformed")
    assert 0 <= got.end <= len(data[:cut] + suffix)
    socks.looks_like_socks(data[:cut] + suffix, socks_port=False)
    preamble.classify_client_start(data[:cut] + suffix, socks_port=True)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SERVER_STREAMS), st.integers(0, 40), st.binary(max_size=60))
def test_server_valid_prefix_and_random_suffix_never_raise(
    stream: tuple[bytes, int], cut: int, suffix: bytes
) -> None:
    data, version = stream
    got = parse_server(data[:cut] + suffix, version)
    assert got.state in ("need_more", "done", "malformed")
    session = SocksSession(version)
    session.feed_server(data[:cut] + suffix)
    assert session.status_line is None or isinstance(session.status_line, str)


def hello(sni: str = "www.example.com") -> bytes:
    name = sni.encode()
    server_name = (len(name) + 3).to_bytes(2, "big") + b"\x00" + len(name).to_bytes(2, "big")
    return client_hello(extension(0, server_name + name))


# -- recognition ------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "socks_port", "kind"), [
    (SOCKS5_GREETING, False, "socks"),
    (SOCKS4_CONNECT, False, "socks"),
    (h("05 01"), False, "need_more"),
    (h("05 03 00 00 02"), False, "plaintext"),  # a method twice: not a real client
    (h("05 01 04"), False, "plaintext"),        # an unassigned method
    (h("05 01 04"), True, "socks"),             # ...on the SOCKS port, taken as it is
    (h("04 01 00 00 0a 63 00 01 00"), False, "plaintext"),  # port 0
    (tls_record(22, hello()), False, "tls"),
    (b"GET / HTTP/1.1\r\n", True, "plaintext"),
    (b"CONNECT www.example.com:443 HTTP/1.1\r\n", True, "connect"),
])
def test_recognition(data: bytes, socks_port: bool, kind: str) -> None:
    assert preamble.classify_client_start(data, socks_port=socks_port) == kind


# -- whole connections through the engine -------------------------------------------------------


def analyse(tmp_path: Path, *talks: list[tuple[bool, bytes]], port: int = 1080,
            close_by_server: bool = True) -> list[HandshakeRecord]:
    packets = []
    for n, talk in enumerate(talks):
        c = Conversation((bytes([10, 0, 0, 2]), 40000 + n), (bytes([10, 0, 0, 3]), port),
                         t0=1_750_000_000.0 + n)
        c.handshake()
        for from_client, payload in talk:
            c.data(from_client, payload)
        closer = not close_by_server
        c.send(closer, FIN | ACK)
        c.send(not closer, FIN | ACK)
        c.send(closer, ACK)
        packets += c.packets
    path = tmp_path / "socks.pcap"
    path.write_bytes(write_pcap(file_header(), packets))
    run = Run()
    recs = collect(path, run, workers=1)
    assert run.errors == []
    return sorted(recs, key=lambda r: r.client_port)


def test_granted_socks5_tunnel_carries_the_client_hello(tmp_path: Path) -> None:
    tls = tls_record(22, hello())
    (rec,) = analyse(tmp_path, [
        (True, SOCKS5_GREETING), (False, SOCKS5_CHOOSE_NONE),
        (True, SOCKS5_CONNECT_DOMAIN), (False, socks5_reply(0)), (True, tls),
    ], close_by_server=False)
    assert (rec.proxy_kind, rec.proxy_target, rec.proxy_status) == (
        "socks5", "www.example.com:443", 0)
    assert rec.sni == "www.example.com" and rec.ja3 and rec.ja4
    steps = [e.what for e in rec.timeline]
    assert "SOCKS5 greeting, methods: no authentication required, username/password" in steps
    assert "SOCKS5 method chosen: no authentication required" in steps
    assert "SOCKS5 CONNECT www.example.com:443" in steps
    assert any(s.startswith("SOCKS5 reply 0 (succeeded)") for s in steps)
    assert steps.index("ClientHello") > steps.index("SOCKS5 CONNECT www.example.com:443")


def test_client_that_does_not_wait_for_the_reply(tmp_path: Path) -> None:
    """Greeting, request and ClientHello in one segment; the reply and the server's first
    TLS bytes in another: both streams still line up."""
    tls = tls_record(22, hello())
    server_tls = tls_record(21, bytes([2, 40]))  # fatal handshake_failure
    (rec,) = analyse(tmp_path, [
        (True, h("05 01 00") + SOCKS5_CONNECT_IPV4 + tls),
        (False, SOCKS5_CHOOSE_NONE + socks5_reply(0) + server_tls),
    ], port=3000)
    assert rec.proxy_kind == "socks5" and rec.proxy_target == "10.99.0.1:8443"
    assert rec.sni == "www.example.com"
    assert rec.last_alert == "handshake_failure" and rec.failure_side == "server"


@pytest.mark.parametrize(("version", "code"), [(5, c) for c in range(1, 9)]
                         + [(4, c) for c in (91, 92, 93)])
def test_every_refusal_code_is_a_proxy_error_in_words(
    tmp_path: Path, version: int, code: int
) -> None:
    if version == 5:
        talk = [(True, SOCKS5_GREETING), (False, SOCKS5_CHOOSE_NONE),
                (True, SOCKS5_CONNECT_DOMAIN), (False, socks5_reply(code))]
        meaning = socks.SOCKS5_REPLY_TEXT[code]
    else:
        talk = [(True, SOCKS4_CONNECT), (False, h("00") + bytes([code]) + bytes(6))]
        meaning = socks.SOCKS4_REPLY_TEXT[code]
    (rec,) = analyse(tmp_path, talk)
    assert (rec.outcome, rec.failure, rec.failure_side) == ("failed", "proxy_error", "proxy")
    assert rec.proxy_status == code and rec.proxy_kind == f"socks{version}"
    assert rec.reason and meaning in rec.reason and str(rec.proxy_target) in rec.reason
    flag = "--socks5-hostname" if version == 5 else "--socks4"
    assert rec.remedy and f"curl -v {flag} 10.0.0.3:1080 https://" in rec.remedy


def test_no_acceptable_method(tmp_path: Path) -> None:
    (rec,) = analyse(tmp_path, [(True, h("05 01 00")), (False, SOCKS5_NO_ACCEPTABLE)])
    assert (rec.outcome, rec.failure, rec.failure_side) == ("failed", "proxy_error", "proxy")
    assert rec.proxy_kind == "socks5" and rec.proxy_status is None and rec.proxy_target is None
    assert rec.reason and "no acceptable authentication method" in rec.reason
    assert "no authentication required" in rec.reason
    assert rec.remedy and "--proxy-user USER:PASS" in rec.remedy


def test_wrong_password_is_refused_and_never_shown(tmp_path: Path) -> None:
    (rec,) = analyse(tmp_path, [
        (True, SOCKS5_GREETING), (False, SOCKS5_CHOOSE_USERPASS),
        (True, SOCKS5_AUTH), (False, SOCKS5_AUTH_FAILED),
    ])
    assert (rec.outcome, rec.failure, rec.failure_side) == ("failed", "proxy_error", "proxy")
    assert rec.proxy_status is None
    assert rec.reason and "authentication refused" in rec.reason and "'alice'" in rec.reason
    text = json.dumps(asdict(rec), default=str)
    assert PASSWORD.decode() not in text and "alice" in text


def test_plaintext_through_the_tunnel_is_not_tls_and_not_a_failure(tmp_path: Path) -> None:
    (rec,) = analyse(tmp_path, [
        (True, SOCKS4_CONNECT), (False, SOCKS4_GRANTED),
        (True, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), (False, b"HTTP/1.1 200 OK\r\n\r\n"),
    ])
    assert rec.proxy_kind == "socks4" and rec.outcome == "not_tls" and rec.failure is None


def test_granted_then_closed_before_the_server_hello(tmp_path: Path) -> None:
    """OpenSSH's ``-D`` grants at once and closes when the destination refuses."""
    (rec,) = analyse(tmp_path, [
        (True, SOCKS4A_CONNECT), (False, SOCKS4_GRANTED), (True, tls_record(22, hello())),
    ])
    assert (rec.outcome, rec.failure, rec.failure_side) == ("failed", "proxy_error", "proxy")
    assert rec.proxy_kind == "socks4a"
    assert rec.reason and "granted the SOCKS4a request" in rec.reason


def test_binary_that_only_looks_like_socks_on_another_port(tmp_path: Path) -> None:
    """A SOCKS5-shaped greeting to port 3000 answered by something that is not SOCKS:
    not a tunnel, no record (the port is no TLS port)."""
    recs = analyse(tmp_path, [(True, h("05 01 00")), (False, b"hello there\r\n")], port=3000)
    assert recs == []


def test_http_connect_unchanged(tmp_path: Path) -> None:
    (rec,) = analyse(tmp_path, [
        (True, b"CONNECT blocked.example.com:443 HTTP/1.1\r\n\r\n"),
        (False, b"HTTP/1.1 403 Forbidden\r\n\r\n"),
    ], port=3128)
    assert rec.proxy_kind == "http_connect" and rec.proxy_status == 403
    assert rec.reason and rec.reason.startswith(
        "the proxy 10.0.0.3:3128 answered 'HTTP/1.1 403 Forbidden' to CONNECT")

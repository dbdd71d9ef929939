"""The engine on real captures made here, from real TLS stacks, in a private namespace.

Each test sets up a scenario on the loopback of a network namespace of its own (tests.harness),
captures it with tcpdump, runs ``analyzer.analyze`` on the file and checks concrete field
values against what the scenario set up and what the stacks themselves reported (Python
``ssl``'s ``cipher()``/``version()``, ``openssl s_client``'s "New"/"Reused"), with tshark as
a second opinion where it has one. History strings are Zeek's ``ssl_history`` for the
message flow of the RFCs (RFC 5246 §7.3, RFC 5077 §3.1, RFC 8446 §2.1 and appendix D.4).

Also: a capture rewritten with dpkt (segments reordered and duplicated) must give the same
record as the original, a real retransmission (iptables drops one packet after tcpdump
saw it) is counted, and late segments after a connection closed make no extra record. A
SYN rejected by the server host's firewall with an ICMP/ICMPv6 port unreachable (iptables
REJECT, two namespaces) gives a record that names the error and who sent it.

Needs root, ip, ethtool, tcpdump and openssl (and iptables, ip6tables, curl for the ICMP
test); skips with the reason otherwise.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import analyzer
from analyzer.record import HandshakeRecord
from tests import tls_peers
from tests.harness import missing_requirements
from tests.harness.capture import Capture, packets, port_filter
from tests.harness.netns import Lab, Netns
from tests.harness.pki import TestPKI
from tests.harness.servers import s_server

WWW = "www.example.com"
NEEDED = ("ip", "ethtool", "tcpdump", "openssl")
_MISSING = missing_requirements(NEEDED)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(_MISSING is not None, reason=_MISSING or ""),
]


# -- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture()
def ns() -> Iterator[Netns]:
    with Netns() as n:
        yield n


def capture(ns: Netns, path: Path, ports: Sequence[int]) -> Capture:
    return Capture(ns, path, interfaces=("lo",), bpf=port_filter(ports))


def records(path: Path, pki: TestPKI | None = None) -> list[HandshakeRecord]:
    ca = pki.root if pki is not None else None
    return sorted(analyzer.analyze(path, ca_bundle=ca), key=lambda r: (r.ts, r.uid))


def one(path: Path, pki: TestPKI | None = None) -> HandshakeRecord:
    found = records(path, pki)
    assert len(found) == 1, [(r.client_port, r.history) for r in found]
    return found[0]


def server_spec(pki: TestPKI, **kw: Any) -> tls_peers.Server:
    cert = pki.server(WWW)
    return tls_peers.Server(chain=str(cert.chain), key=str(cert.key), **kw)


def client_spec(pki: TestPKI, **kw: Any) -> tls_peers.Client:
    return tls_peers.Client(cafile=str(pki.root), **kw)


def run_python(ns: Netns, path: Path, server: tls_peers.Server | None,
               clients: Sequence[tls_peers.Client], ports: Sequence[int] = (443,)
               ) -> list[tls_peers.Result]:
    with capture(ns, path, ports):
        return ns.call(tls_peers.exchange, server, list(clients))


def der_chain(pki: TestPKI) -> list[bytes]:
    """DER of what the server sends: the leaf, then the intermediate."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    certs = x509.load_pem_x509_certificates(pki.server(WWW).chain.read_bytes())
    return [c.public_bytes(Encoding.DER) for c in certs]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def iana_cipher(openssl_name: str) -> str:
    """The IANA name of an OpenSSL cipher name, as ``openssl ciphers -stdname`` prints it."""
    out = subprocess.run(["openssl", "ciphers", "-stdname", "ALL:@SECLEVEL=0"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        std, _, rest = line.partition(" - ")
        if rest.split() and rest.split()[0] == openssl_name:
            return std.strip()
    raise AssertionError(f"openssl does not know {openssl_name}")


def tshark_hellos(path: Path) -> list[dict[str, str]]:
    """tshark's ClientHello/ServerHello frames, in capture order (empty without tshark)."""
    if shutil.which("tshark") is None:
        return []
    fields = ("tcp.srcport", "tls.handshake.type", "tls.handshake.ja3", "tls.handshake.ja3s",
              "tls.handshake.ciphersuite", "tls.handshake.extensions.supported_version")
    argv = ["tshark", "-n", "-r", str(path), "-Y",
            "tls.handshake.type == 1 || tls.handshake.type == 2", "-T", "fields"]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    return [dict(zip(fields, line.split("\t"), strict=True)) for line in out.splitlines()]


def tshark_ja3(path: Path, client_port: int) -> tuple[str | None, str | None]:
    """(JA3 of the first ClientHello, JA3S of the first ServerHello) for one connection."""
    ja3 = ja3s = None
    for row in tshark_hellos(path):
        types = row["tls.handshake.type"].split(",")
        if "1" in types and row["tcp.srcport"] == str(client_port) and ja3 is None:
            ja3 = row["tls.handshake.ja3"].split(",")[0]
        if "2" in types and row["tcp.srcport"] != str(client_port) and ja3s is None:
            ja3s = row["tls.handshake.ja3s"].split(",")[0]
    return ja3, ja3s


def check_success(rec: HandshakeRecord, res: tls_peers.Result, pki: TestPKI, path: Path,
                  *, alpn: str | None) -> None:
    """Fields every successful Python ssl exchange in this file must show."""
    assert res.error is None and res.server_error is None, (res.error, res.server_error)
    assert res.response.startswith(b"HTTP/1.0 200 OK")
    assert res.cipher is not None and res.peer_der is not None
    assert rec.client_port == res.local_port and rec.server_port == 443
    assert rec.sni == WWW
    assert rec.version == res.version
    assert rec.cipher == iana_cipher(res.cipher[0])
    assert rec.alpn == alpn
    assert rec.established is True
    assert rec.stage == "application_data"
    assert rec.outcome == "established" and rec.failure is None
    assert rec.close == "fin"
    assert rec.resumed is False and rec.hrr is False
    assert rec.alerts == [] and rec.last_alert is None
    if res.version == "TLSv1.3":  # the Certificate message is encrypted (RFC 8446 §2)
        assert rec.cert_chain_sha256 == [] and rec.cert_subject is None
        assert rec.cert_status is None and rec.sni_matches_cert is None
    else:
        assert rec.cert_chain_sha256 == [sha256(d) for d in der_chain(pki)]
        assert rec.cert_chain_sha256[0] == sha256(res.peer_der)
        assert rec.cert_subject is not None and f"CN={WWW}" in rec.cert_subject
        assert rec.cert_sans == [WWW]
        assert rec.sni_matches_cert is True
        assert rec.cert_status == "ok"
    assert rec.ja3 is not None and rec.ja4 is not None and rec.ja3s is not None
    assert rec.ja4.startswith("t13d")  # Python's OpenSSL offers TLS 1.3 and sends SNI
    assert rec.client_hello_segments == 1
    assert rec.gap_bytes == 0
    assert rec.anomalies == []
    assert rec.tcp_rtt is not None and rec.tcp_rtt >= 0
    assert rec.handshake_time is not None and rec.handshake_time > 0
    assert rec.client_bytes > 0 and rec.server_bytes > 0
    theirs = tshark_ja3(path, rec.client_port)
    if theirs != (None, None):
        assert (rec.ja3, rec.ja3s) == theirs


# -- successful handshakes ---------------------------------------------------------------------


def test_tls12_ecdhe_rsa_with_python_ssl(ns: Netns, pki: TestPKI, tmp_path: Path) -> None:
    path = tmp_path / "tls12.pcap"
    server = server_spec(pki, max_version="TLSv1_2", ciphers="ECDHE-RSA-AES128-GCM-SHA256",
                         ecdh_curve="prime256v1", alpn=("http/1.1",))
    (res,) = run_python(ns, path, server, [client_spec(pki, alpn=("h2", "http/1.1"))])
    rec = one(path, pki)
    check_success(rec, res, pki, path, alpn="http/1.1")
    assert res.version == "TLSv1.2"
    assert rec.cipher == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert rec.group == "secp256r1"  # the server's only curve, in its ServerKeyExchange
    assert rec.alpn_offered == ["h2", "http/1.1"]
    assert "TLSv1.3" in rec.offered_versions and "TLSv1.2" in rec.offered_versions
    # ClientHello, ServerHello, Certificate, ServerKeyExchange, ServerHelloDone,
    # ClientKeyExchange, client CCS, server CCS (no ticket: the server has OP_NO_TICKET).
    assert rec.history == "CsxknGIi"
    assert rec.client_ip == "127.0.0.1" and rec.server_ip == "127.0.0.1"


def test_tls12_with_session_ticket(ns: Netns, pki: TestPKI, tmp_path: Path) -> None:
    path = tmp_path / "tls12_ticket.pcap"
    server = server_spec(pki, max_version="TLSv1_2", tickets=True)
    (res,) = run_python(ns, path, server, [client_spec(pki)])
    rec = one(path, pki)
    check_success(rec, res, pki, path, alpn=None)
    # RFC 5077 §3.1: NewSessionTicket right before the server's ChangeCipherSpec.
    assert rec.history == "CsxknGIti"


def test_tls13_with_python_ssl(ns: Netns, pki: TestPKI, tmp_path: Path) -> None:
    path = tmp_path / "tls13.pcap"
    server = server_spec(pki, alpn=("h2",))
    (res,) = run_python(ns, path, server, [client_spec(pki, alpn=("h2", "http/1.1"))])
    rec = one(path, pki)
    # The chosen ALPN travels in the encrypted EncryptedExtensions (RFC 8446 §4.3.1): the
    # client's stack saw h2, the wire shows nothing.
    check_success(rec, res, pki, path, alpn=None)
    assert res.alpn == "h2" and rec.alpn_offered == ["h2", "http/1.1"]
    assert res.version == "TLSv1.3"
    assert res.cipher is not None and rec.cipher == res.cipher[0]  # IANA name already
    assert rec.group == "x25519"  # OpenSSL's first key share, which the server accepts
    assert rec.offered_versions[0] == "TLSv1.3"
    # ClientHello, ServerHello, the server's and the client's middlebox-compatibility
    # ChangeCipherSpec (RFC 8446 D.4); everything else is encrypted.
    assert rec.history == "CsiI"
    assert rec.client_encrypted_after_server_flight[0] > 24


# -- resumption and HelloRetryRequest with openssl s_server / s_client -------------------------


def s_client(ns: Netns, pki: TestPKI, *args: str) -> str:
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:443", "-servername", WWW,
            "-CAfile", str(pki.root), "-verify_return_error", "-ign_eof", *args]
    done = ns.run(argv, input="GET / HTTP/1.0\r\n\r\n", timeout=20)
    assert done.returncode == 0, done.output
    return done.output


def start_s_server(ns: Netns, pki: TestPKI, work: Path, *args: str) -> Any:
    cert = pki.server(WWW)
    return s_server(ns, work, ["-cert", str(cert.cert), "-cert_chain", str(pki.intermediate),
                               "-key", str(cert.key), "-www", *args])


def test_resumption_tls12_and_tls13(ns: Netns, pki: TestPKI, tmp_path: Path) -> None:
    path = tmp_path / "resume.pcap"
    s12, t12, s13 = tmp_path / "s12.pem", tmp_path / "t12.pem", tmp_path / "s13.pem"
    srv = start_s_server(ns, pki, tmp_path / "srv")
    try:
        with capture(ns, path, [443]):
            said = [
                s_client(ns, pki, "-tls1_2", "-no_ticket", "-sess_out", str(s12)),
                s_client(ns, pki, "-tls1_2", "-no_ticket", "-sess_in", str(s12)),
                s_client(ns, pki, "-tls1_2", "-sess_out", str(t12)),
                s_client(ns, pki, "-tls1_2", "-sess_in", str(t12)),
                s_client(ns, pki, "-sess_out", str(s13)),
                s_client(ns, pki, "-sess_in", str(s13)),
            ]
    finally:
        srv.stop()
    stack = ["New, TLSv1.2", "Reused, TLSv1.2"] * 2 + ["New, TLSv1.3", "Reused, TLSv1.3"]
    for text, want in zip(said, stack, strict=True):
        assert want in text
    recs = records(path, pki)
    assert [r.version for r in recs] == ["TLSv1.2"] * 4 + ["TLSv1.3"] * 2
    assert [r.resumed for r in recs] == [False, True] * 3
    assert all(r.established and r.outcome == "established" for r in recs)
    assert all(r.stage == "application_data" for r in recs)
    full12, id12, tfull12, tick12, full13, psk13 = recs
    assert full12.history == "CsxknGIi"
    # Abbreviated handshake (RFC 5246 §7.3): ServerHello, server CCS, then the client's CCS.
    assert id12.history == "CsiI"
    assert id12.cert_chain_sha256 == [] and id12.cert_status is None
    assert tfull12.history == "CsxknGIti"
    # Resumed by ticket: OpenSSL sends no fresh ticket (RFC 5077 §3.1 lets it), so the
    # abbreviated flow again (tshark shows "Server Hello, Change Cipher Spec, ...").
    assert tick12.history == "CsiI"
    assert full13.history == "CsiI" and psk13.history == "CsiI"
    assert psk13.cipher == full13.cipher and psk13.sni == WWW
    assert len({r.uid for r in recs}) == 6


def test_hello_retry_request(ns: Netns, pki: TestPKI, tmp_path: Path) -> None:
    path = tmp_path / "hrr.pcap"
    srv = start_s_server(ns, pki, tmp_path / "srv", "-groups", "P-256")
    try:
        with capture(ns, path, [443]):
            said = s_client(ns, pki, "-groups", "X25519:P-256")
    finally:
        srv.stop()
    assert "New, TLSv1.3" in said
    rec = one(path, pki)
    assert rec.hrr is True
    assert rec.version == "TLSv1.3" and rec.established and rec.outcome == "established"
    assert rec.group == "secp256r1"
    assert rec.key_share_groups == ["x25519"]  # the first ClientHello's only key share
    # ClientHello, HelloRetryRequest, the server's compatibility CCS right after it, the
    # client's CCS before its second ClientHello, then ClientHello and ServerHello.
    assert rec.history == "CjiICs"
    hellos = tshark_hellos(path)
    if hellos:
        firsts = [h for h in hellos if h["tls.handshake.type"] == "2"]
        assert len(firsts) == 2  # the HelloRetryRequest and the ServerHello
        assert rec.ja3s == firsts[0]["tls.handshake.ja3s"]
        client = [h for h in hellos if h["tls.handshake.type"] == "1"]
        assert len(client) == 2 and rec.ja3 == client[0]["tls.handshake.ja3"]


# -- TCP: segmentation, reordering, duplicates, retransmissions, port reuse ----------------------


def client_data_segments(path: Path, client_port: int) -> list[int]:
    """Payload sizes of the client's data segments before the server's first data."""
    sizes: list[int] = []
    for _ts, ip in packets(path):
        tcp = ip.data
        if not tcp.data or client_port not in (tcp.sport, tcp.dport):
            continue
        if tcp.sport != client_port:
            break
        sizes.append(len(tcp.data))
    return sizes


def test_client_hello_in_tiny_segments(ns: Netns, pki: TestPKI, tmp_path: Path) -> None:
    path = tmp_path / "tiny.pcap"
    server = server_spec(pki, max_version="TLSv1_2")
    res = run_python(ns, path, server, [client_spec(pki), client_spec(pki, maxseg=100)])
    normal, tiny = records(path, pki)
    assert tiny.client_port == res[1].local_port
    segments = client_data_segments(path, tiny.client_port)
    assert len(segments) > 3 and max(segments) <= 100
    assert tiny.client_hello_segments == len(segments)
    assert normal.client_hello_segments == 1
    for field in ("sni", "ja3", "ja4", "offered_ciphers", "offered_versions", "version",
                  "cipher", "history", "established", "stage", "outcome"):
        assert getattr(tiny, field) == getattr(normal, field), field
    assert tiny.history == "CsxknGIi" and tiny.established
    assert tiny.cert_chain_sha256 == [sha256(d) for d in der_chain(pki)]


def rewrite(src: Path, dst: Path, *, until: float, swap_every: int, duplicate_every: int
            ) -> tuple[int, int]:
    """Reorder and duplicate data segments of a real capture (as if the network did it).

    Two data segments of one direction next to each other in that direction's order are
    swapped, and the packets between them (the receiver's ACKs) are moved after both, so
    no acknowledgement covers bytes not yet seen; every ``duplicate_every``-th data segment
    is repeated after the next packet. Only segments up to ``until`` (the handshake) are
    touched. Timestamps keep the original sequence. Returns (pairs swapped, segments
    duplicated).
    """
    import dpkt

    with src.open("rb") as f:
        reader = dpkt.pcap.Reader(f)
        linktype = reader.datalink()
        frames = [(ts, bytes(buf)) for ts, buf in reader]
    times = [ts for ts, _ in frames]
    bufs = [buf for _, buf in frames]

    late = {buf for ts, buf in frames if ts > until}

    def data_sport(buf: bytes) -> int | None:
        ip = dpkt.ethernet.Ethernet(buf).data
        tcp = ip.data
        if buf in late or not isinstance(tcp, dpkt.tcp.TCP) or not tcp.data:
            return None
        return int(tcp.sport)

    out: list[bytes] = []
    i, swapped, seen = 0, 0, 0
    while i < len(bufs):
        sport = data_sport(bufs[i])
        if sport is not None:
            seen += 1
            nxt = next((j for j in range(i + 1, len(bufs)) if data_sport(bufs[j]) is not None),
                       None)
            if (nxt is not None and data_sport(bufs[nxt]) == sport and seen % swap_every == 0
                    and all(data_sport(b) is None for b in bufs[i + 1:nxt])):
                out += [bufs[nxt], bufs[i], *bufs[i + 1:nxt]]
                swapped += 1
                i = nxt + 1
                continue
        out.append(bufs[i])
        i += 1
    final: list[bytes] = []
    dups, n = 0, 0
    pending: bytes | None = None
    for buf in out:
        final.append(buf)
        if pending is not None:
            final.append(pending)
            pending = None
        if data_sport(buf) is not None:
            n += 1
            if n % duplicate_every == 0:
                pending, dups = buf, dups + 1
    if pending is not None:
        final.append(pending)
    step = (times[-1] - times[0]) / max(len(final) - 1, 1)
    with dst.open("wb") as out_file:
        writer = dpkt.pcap.Writer(out_file, linktype=linktype, snaplen=262144)
        for k, buf in enumerate(final):
            writer.writepkt(buf, ts=times[0] + k * step)
    return swapped, dups


SAME = ("client_port", "sni", "version", "cipher", "group", "history", "established", "stage",
        "outcome", "failure", "ja3", "ja3s", "ja4", "cert_chain_sha256", "client_bytes",
        "server_bytes")


def test_reordered_and_duplicated_segments(ns: Netns, pki: TestPKI, tmp_path: Path) -> None:
    path, mixed = tmp_path / "orig.pcap", tmp_path / "mixed.pcap"
    server = server_spec(pki, max_version="TLSv1_2")
    run_python(ns, path, server, [client_spec(pki, maxseg=100)])
    orig = one(path, pki)
    assert orig.ts_client_hello is not None and orig.handshake_time is not None
    swapped, dups = rewrite(path, mixed, until=orig.ts_client_hello + orig.handshake_time,
                            swap_every=2, duplicate_every=3)
    assert swapped >= 5 and dups >= 5
    got = one(mixed, pki)
    assert orig.history == "CsxknGIi"
    for field in SAME:
        if field not in ("client_bytes", "server_bytes"):  # duplicates count twice on the wire
            assert getattr(got, field) == getattr(orig, field), field
    assert got.retransmits == orig.retransmits + dups
    assert got.client_bytes + got.server_bytes > orig.client_bytes + orig.server_bytes
    assert got.gap_bytes == 0
    assert "overlap_mismatch" not in got.anomalies


def test_real_retransmission(ns: Netns, pki: TestPKI, tmp_path: Path) -> None:
    if shutil.which("iptables") is None:
        pytest.skip("iptables is not installed")
    path = tmp_path / "retrans.pcap"
    # Drop the first large packet from the server after tcpdump saw it (INPUT runs after the
    # capture tap on loopback): the server's first flight is really retransmitted.
    rule = ["INPUT", "-p", "tcp", "--sport", "443", "-m", "length", "--length", "300:65535",
            "-m", "statistic", "--mode", "nth", "--every", "100000", "--packet", "0",
            "-j", "DROP"]
    ns.sh(["iptables", "-A", *rule])
    server = server_spec(pki, max_version="TLSv1_2")
    (res,) = run_python(ns, path, server, [client_spec(pki)])
    rec = one(path, pki)
    assert res.error is None
    assert rec.server_retransmits >= 1 and rec.retransmits >= 1
    assert rec.history == "CsxknGIi" and rec.established and rec.outcome == "established"
    assert rec.gap_bytes == 0


def test_port_reuse(ns: Netns, pki: TestPKI, tmp_path: Path) -> None:
    path = tmp_path / "reuse.pcap"
    server = server_spec(pki)
    port = 40000 + os.getpid() % 20000
    res = run_python(ns, path, server, [client_spec(pki, bind=("127.0.0.1", port))] * 2)
    assert [r.local_port for r in res] == [port, port] and all(r.error is None for r in res)
    first, second = records(path, pki)
    assert first.client_port == second.client_port == port
    assert first.uid != second.uid
    assert first.ts_end <= second.ts
    for r in (first, second):
        assert r.established and r.history == "CsiI" and r.close == "fin"
        assert r.syn_count == 1 and r.anomalies == []


def test_ipv6(ns: Netns, pki: TestPKI, tmp_path: Path) -> None:
    path = tmp_path / "v6.pcap"
    for addr in ("fd00:99::1/128", "fd00:99::2/128"):
        ns.ip("-6", "addr", "add", addr, "dev", "lo", "nodad")
    server = server_spec(pki, host="fd00:99::1")
    client = client_spec(pki, host="fd00:99::1", bind=("fd00:99::2", 0))
    (res,) = run_python(ns, path, server, [client])
    rec = one(path, pki)
    check_success(rec, res, pki, path, alpn=None)
    assert rec.client_ip == "fd00:99::2" and rec.server_ip == "fd00:99::1"
    assert rec.history == "CsiI"


# -- connections that never carried TLS -------------------------------------------------------


def test_refused_port(ns: Netns, tmp_path: Path) -> None:
    path = tmp_path / "refused.pcap"
    (res,) = run_python(ns, path, None, [tls_peers.Client(port=993)], ports=[993])
    assert res.error is not None and "ConnectionRefused" in res.error
    rec = one(path)
    assert (rec.server_port, rec.outcome, rec.failure) == (993, "failed", "tcp_refused")
    assert rec.failure_side == "server"
    assert rec.stage == "tcp_syn" and rec.close == "rst_server"
    assert rec.history == "" and rec.sni is None and rec.version is None
    assert rec.packets == 2 and rec.syn_count == 1 and rec.synack is False


@pytest.mark.parametrize(
    "family, server, table, reject",
    [("v4", "10.99.0.1", "iptables", "icmp-port-unreachable"),
     ("v6", "fd00:99::1", "ip6tables", "icmp6-port-unreachable")],
    ids=["v4", "v6"],
)
def test_syn_rejected_with_icmp_port_unreachable(
    tmp_path: Path, family: str, server: str, table: str, reject: str
) -> None:
    """The server host's firewall answers the SYN with an ICMP error (iptables REJECT):
    curl says "Couldn't connect to server"; the record names the error and its sender."""
    missing = missing_requirements(("iptables", "ip6tables", "curl"))
    if missing is not None:
        pytest.skip(missing)
    path = tmp_path / f"reject_{family}.pcap"
    with Lab() as lab:
        lab.server.sh([table, "-A", "INPUT", "-p", "tcp", "--dport", "443", "-j", "REJECT",
                       "--reject-with", reject])
        url = f"https://[{server}]/" if ":" in server else f"https://{server}/"
        with Capture(lab.client, path, bpf="tcp port 443 or icmp or icmp6"):
            run = lab.client.run(["curl", "-sS", "--max-time", "5", url])
    assert run.returncode == 7 and "connect" in run.stderr.lower(), run.summary()
    rec = one(path)
    assert (rec.server_ip, rec.server_port) == (server, 443)
    assert (rec.icmp_error, rec.icmp_from) == ("port_unreachable", server)
    assert rec.stage == "tcp_syn" and rec.syn_count == 1 and rec.synack is False
    assert rec.history == "" and rec.sni is None
    icmp = [e for e in rec.timeline if e.what.startswith("ICMP")]
    assert len(icmp) == 1 and icmp[0].what.endswith(f"from {server}, quoting a client packet")
    # curl's "Couldn't connect": refused by the server's host, not a capture cut short.
    assert (rec.outcome, rec.failure, rec.failure_side) == ("failed", "tcp_refused", "server")
    assert "ICMP port unreachable from the server's host" in (rec.reason or "")


def test_plaintext_to_tls_port(ns: Netns, pki: TestPKI, tmp_path: Path) -> None:
    path = tmp_path / "plain.pcap"
    server = server_spec(pki)
    client = replace(client_spec(pki), plaintext=b"GET / HTTP/1.0\r\n\r\n")
    (res,) = run_python(ns, path, server, [client])
    assert res.server_error is not None  # the server's TLS stack refused the bytes
    rec = one(path, pki)
    assert rec.outcome == "not_tls" and rec.failure == "not_tls"
    assert rec.failure_side == "server"  # it expected TLS and closed
    assert rec.sni is None and rec.version is None and rec.history == ""
    assert rec.established is False and rec.stage == "tcp_open"
    assert rec.client_first_bytes is not None and rec.client_first_bytes.startswith("GET / ")
    assert rec.client_bytes == len(b"GET / HTTP/1.0\r\n\r\n")


# -- one record per TCP connection (engine bugs found with these captures) --------------------


def append_late_copy(src: Path, dst: Path, *, sport: int, delay: float) -> None:
    """``src`` plus a copy of the last data segment sent from ``sport``, ``delay`` seconds
    after the last packet: a retransmission that arrives after the connection closed."""
    import dpkt

    with src.open("rb") as f:
        reader = dpkt.pcap.Reader(f)
        linktype = reader.datalink()
        frames = [(ts, bytes(buf)) for ts, buf in reader]
    last = None
    for _ts, buf in frames:
        tcp = dpkt.ethernet.Ethernet(buf).data.data
        if isinstance(tcp, dpkt.tcp.TCP) and tcp.sport == sport and tcp.data:
            last = buf
    assert last is not None
    with dst.open("wb") as out_file:
        writer = dpkt.pcap.Writer(out_file, linktype=linktype, snaplen=262144)
        for ts, buf in frames:
            writer.writepkt(buf, ts=ts)
        writer.writepkt(last, ts=frames[-1][0] + delay)


def test_late_retransmission_after_close_is_not_a_connection(
        ns: Netns, pki: TestPKI, tmp_path: Path) -> None:
    path, late = tmp_path / "orig.pcap", tmp_path / "late.pcap"
    run_python(ns, path, server_spec(pki, max_version="TLSv1_2"), [client_spec(pki)])
    orig = one(path, pki)
    assert orig.close == "fin" and orig.established
    append_late_copy(path, late, sport=443, delay=0.2)
    found = records(late, pki)  # (the uid differs: it hashes the capture's name too)
    assert [(r.client_port, r.ts, r.history) for r in found] == [
        (orig.client_port, orig.ts, orig.history)]


def test_fast_open_syn_retransmission_is_one_connection(
        ns: Netns, pki: TestPKI, tmp_path: Path) -> None:
    if shutil.which("iptables") is None or shutil.which("sysctl") is None:
        pytest.skip("needs iptables and sysctl")
    path = tmp_path / "tfo.pcap"
    ns.sh(["sysctl", "-w", "net.ipv4.tcp_fastopen=3"])  # this namespace only
    # The second connection's SYN-ACK is dropped after tcpdump saw it, so the client, whose
    # SYN carried the ClientHello (it holds a cookie from the first), retransmits the SYN
    # (Linux resends it without the data, same ISN); the server had accepted the data.
    ns.sh(["iptables", "-A", "INPUT", "-p", "tcp", "--sport", "443", "--tcp-flags", "SYN,ACK",
           "SYN,ACK", "-m", "statistic", "--mode", "nth", "--every", "100000", "--packet", "1",
           "-j", "DROP"])
    client = client_spec(pki, fastopen=True)
    res = run_python(ns, path, server_spec(pki, fastopen=True), [client, client])
    assert all(r.error is None and r.version == "TLSv1.3" for r in res), res
    syn_data = [ip.data for _ts, ip in packets(path)
                if ip.data.flags & 0x02 and not ip.data.flags & 0x10 and ip.data.data]
    assert len(syn_data) == 1 and syn_data[0].sport == res[1].local_port  # the setup held
    second = [r for r in records(path, pki) if r.client_port == res[1].local_port]
    assert len(second) == 1, [(r.history, r.anomalies) for r in second]
    rec = second[0]
    assert rec.syn_count == 2 and rec.client_hello_segments == 1
    assert rec.history == "CsiI" and rec.version == "TLSv1.3"
    assert rec.established and rec.outcome == "established" and rec.gap_bytes == 0


def test_challenge_ack_and_rst_before_the_handshake(
        ns: Netns, pki: TestPKI, tmp_path: Path) -> None:
    if shutil.which("iptables") is None:
        pytest.skip("iptables is not installed")
    path = tmp_path / "challenge.pcap"
    port = 40000 + (os.getpid() + 7) % 20000
    client = client_spec(pki, bind=("127.0.0.1", port))
    with capture(ns, path, [443]):
        res = ns.call(tls_peers.half_open_then_connect, server_spec(pki), client)
    assert res.error is None and res.version == "TLSv1.3", res
    # What the setup produced on the wire: a SYN, a bare ACK from the server (the challenge
    # ACK), the client's RST, then the same SYN again.
    new_syn_seq = None
    flags: list[str] = []
    for _ts, ip in packets(path):
        tcp = ip.data
        if tcp.flags & 0x02 and not tcp.flags & 0x10:
            if new_syn_seq is None and flags:  # the first SYN belongs to the old connection
                new_syn_seq = tcp.seq
            flags.append(f"SYN{'=' if tcp.seq == new_syn_seq else ''}")
        elif tcp.flags & 0x04:
            flags.append("RST")
        elif tcp.sport == 443 and not tcp.data and not tcp.flags & 0x01:
            flags.append("ack")
    assert "SYN= ack RST SYN=" in " ".join(flags), flags
    # The old connection (before the capture's challenge) and one connection that went
    # SYN, challenge ACK, RST, SYN again: as tshark sees it, two TCP streams.
    recs = [r for r in records(path, pki) if r.client_port == port]
    assert len(recs) == 2, [(r.outcome, r.failure, r.history) for r in recs]
    rec = recs[1]
    assert rec.syn_count == 2 and rec.established and rec.outcome == "established"
    assert rec.history == "CsiI" and rec.failure is None


def trim_before_first(src: Path, dst: Path, *, sport: int) -> None:
    """``src`` without the packets before the first data segment sent from ``sport`` (as
    ``editcap`` would cut a capture that started late)."""
    import dpkt

    with src.open("rb") as f:
        reader = dpkt.pcap.Reader(f)
        linktype = reader.datalink()
        frames = [(ts, bytes(buf)) for ts, buf in reader]
    start = next(i for i, (_ts, buf) in enumerate(frames)
                 if (tcp := dpkt.ethernet.Ethernet(buf).data.data).sport == sport and tcp.data)
    with dst.open("wb") as out_file:
        writer = dpkt.pcap.Writer(out_file, linktype=linktype, snaplen=262144)
        for ts, buf in frames[start:]:
            writer.writepkt(buf, ts=ts)


def test_capture_starting_at_the_server_hello(ns: Netns, pki: TestPKI, tmp_path: Path) -> None:
    path, late = tmp_path / "orig.pcap", tmp_path / "late_start.pcap"
    (res,) = run_python(ns, path, server_spec(pki, max_version="TLSv1_2"), [client_spec(pki)])
    orig = one(path, pki)
    trim_before_first(path, late, sport=443)
    rec = one(late, pki)
    assert rec.client_port == res.local_port and rec.server_port == 443  # oriented anyway
    assert rec.version == "TLSv1.2" and rec.cipher == orig.cipher
    assert rec.cert_chain_sha256 == orig.cert_chain_sha256
    assert rec.sni is None and rec.ja3 is None  # the ClientHello is not in the capture
    assert rec.outcome == "incomplete"  # SPEC §4: the capture started mid-connection
    assert "midstream" in rec.anomalies
    # Wire order: the server's flight, the client's ClientKeyExchange and CCS, the server's CCS.
    assert rec.history == "sxknGIi"
    assert "handshake_too_long" not in rec.anomalies
    server_hello = next(e for e in rec.timeline if e.what == "ServerHello")
    assert server_hello.t == 0.0  # the first packet of the trimmed capture

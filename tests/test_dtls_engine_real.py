"""DTLS associations through the whole engine (``analyzer.api.collect``), captured from real
stacks in network namespaces: every association's record checked against how the
scenario was set up, what client and server reported, and tshark.

Peers: ``openssl s_server``/``s_client`` (DTLS 1.2 with and without ``-listen``'s cookie
exchange, DTLS 1.0 at ``@SECLEVEL=0``, ``-mtu 500``), ``gnutls-serv``/``gnutls-cli
--udp``, ``ocserv``/``openconnect``. Failures: version and cipher mismatch, expired and
untrusted certificates, a required client certificate, an iptables drop, nothing
listening (ICMP port unreachable), a HelloVerifyRequest that never reaches the client
(its host drops the server's datagrams), and a path whose MTU is smaller than the
server's datagrams (an MTU black hole, captured at both ends).

Facts from tshark (Wireshark 4.0, its ``dtls`` dissector): SNI, negotiated version and
cipher, plaintext alerts (hence ``last_alert``), JA3 (``dtls.handshake.ja3`` and
``ja3_full``); JA4 is worked out here from tshark's fields of the ClientHello by the rules
of FoxIO's JA4.md (``d`` for DTLS, ``d1``/``d2`` versions), tshark 4.0 having no JA4.
``history`` is Zeek's ``ssl_history``: ``CvCsxknGIti`` is what Zeek's own baselines
(``scripts.policy.protocols.ssl.ssl-log-ext``) show for its OpenSSL DTLS 1.0 and 1.2
traces. Category and side come from the set-up, never from our output.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from analyzer.api import Run, collect
from analyzer.diagnosis import DiagnosisOptions
from analyzer.record import HandshakeRecord
from analyzer.tls.names import alert_name, cipher_name, version_name
from tests.harness import Capture, Lab, LeafKind, TestPKI, missing_requirements
from tests.harness.dtls import DTLS_PORT as PORT
from tests.harness.dtls import DTLS_SNI as SNI
from tests.harness.dtls import s_client, s_server, udp_server
from tests.harness.netns import Run as Ran

pytestmark = pytest.mark.root

LOW = "DEFAULT@SECLEVEL=0"  # DTLS 1.0 needs SHA-1 signatures, refused at the default level
OPENSSL_HISTORY = "CvCsxknGIti"
"""Zeek's ssl_history of a full OpenSSL DTLS handshake with its cookie exchange."""

_missing = missing_requirements(("ip", "tcpdump", "tshark", "openssl", "iptables"))
if _missing:
    pytest.skip(_missing, allow_module_level=True)


@dataclass
class Captured:
    """One scenario: what the peers said, the capture(s), and the engine's records."""

    client: Ran
    server_text: str
    pcap: Path
    records: list[HandshakeRecord]
    client_ip: str
    server_pcap: Path | None = None
    server_records: list[HandshakeRecord] | None = None

    @property
    def dtls(self) -> HandshakeRecord:
        """The one DTLS record of the capture."""
        found = [r for r in self.records if r.transport == "dtls"]
        assert len(found) == 1, [(r.transport, r.client_port, r.history) for r in self.records]
        return found[0]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("dtls-engine-pki"))


def analyze(pcap: Path, pki: TestPKI) -> list[HandshakeRecord]:
    return collect(pcap, Run(), workers=1, options=DiagnosisOptions(ca_bundle=str(pki.root)))


def scenario(
    tmp: Path,
    pki: TestPKI,
    server: Sequence[str] | None,
    client: Sequence[str],
    *,
    setup: Callable[[Lab], None] | None = None,
    server_capture: bool = False,
    timeout: float = 15.0,
    port: int = PORT,
) -> Captured:
    """Run ``server`` (None: nothing listens) and ``client`` in a Lab (``setup`` first),
    capture at the client (and at the server with ``server_capture``), and analyze."""
    pcap, spcap = tmp / "client.pcap", tmp / "server.pcap"
    with Lab() as lab:
        if setup is not None:
            setup(lab)
        srv = udp_server(lab.server, tmp / "srv", "server", server, port) if server else None
        try:
            with Capture(lab.client, pcap, bpf="udp or icmp"):
                if server_capture:
                    with Capture(lab.server, spcap, bpf="udp or icmp"):
                        run = lab.client.run(list(client), input="", timeout=timeout)
                else:
                    run = lab.client.run(list(client), input="", timeout=timeout)
        finally:
            if srv is not None:
                srv.stop()
        server_text = srv.text() if srv is not None else ""
        client_ip = lab.client_ip
    return Captured(
        client=run,
        server_text=server_text,
        pcap=pcap,
        records=analyze(pcap, pki),
        client_ip=client_ip,
        server_pcap=spcap if server_capture else None,
        server_records=analyze(spcap, pki) if server_capture else None,
    )


# ---------------------------------------------------------------------- tshark's reading


def tshark_json(pcap: Path) -> list[dict[str, Any]]:
    """tshark's DTLS and ICMP frames as JSON ``_source.layers`` (every field, occurrences
    as lists)."""
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-Y", "dtls or icmp", "-T", "json", "--no-duplicate-keys"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [frame["_source"]["layers"] for frame in json.loads(out or "[]")]


def _walk(node: Any, name: str) -> list[Any]:
    """Every value of field ``name`` anywhere under ``node``, in document order."""
    found: list[Any] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == name:
                found += value if isinstance(value, list) else [value]
            else:
                found += _walk(value, name)
    elif isinstance(node, list):
        for item in node:
            found += _walk(item, name)
    return found


def _handshakes(layers: dict[str, Any]) -> list[dict[str, Any]]:
    """The handshake message trees of one frame's DTLS records."""
    return [h for h in _walk(layers.get("dtls", {}), "dtls.handshake") if isinstance(h, dict)]


@dataclass
class TsharkView:
    """What tshark says about one association (frames between its two ends)."""

    sni: str | None
    version: str | None
    cipher: str | None
    alerts: list[tuple[str, int]]
    ja3_full: str | None
    ja3: str | None
    ja4: str | None


def tshark_view(pcap: Path, client_ip: str, client_port: int) -> TsharkView:
    frames = [
        f for f in tshark_json(pcap)
        if "dtls" in f
        and client_port in (int(_walk(f, "udp.srcport")[0]), int(_walk(f, "udp.dstport")[0]))
    ]  # fmt: skip
    first_ch = None
    sh = None
    alerts: list[tuple[str, int]] = []
    for f in frames:
        sender = "client" if _walk(f, "ip.src")[0] == client_ip else "server"
        for hs in _handshakes(f):
            kind = _walk(hs, "dtls.handshake.type")
            if kind == ["1"] and first_ch is None and _walk(hs, "dtls.handshake.ja3"):
                first_ch = hs
            if kind == ["2"] and sh is None and sender == "server":
                sh = hs
        alerts += [(sender, int(d)) for d in _walk(f.get("dtls", {}), "dtls.alert_message.desc")]
    sni = _walk(first_ch, "dtls.handshake.extensions_server_name") if first_ch else []
    version = None
    cipher = None
    if sh is not None:
        supported = _walk(sh, "dtls.handshake.extensions.supported_version")
        version = version_name(int((supported or _walk(sh, "dtls.handshake.version"))[0], 16))
        cipher = cipher_name(int(_walk(sh, "dtls.handshake.ciphersuite")[0], 16))
    return TsharkView(
        sni=sni[0] if sni else None,
        version=version,
        cipher=cipher,
        alerts=alerts,
        ja3_full=_walk(first_ch, "dtls.handshake.ja3_full")[0] if first_ch else None,
        ja3=_walk(first_ch, "dtls.handshake.ja3")[0] if first_ch else None,
        ja4=ja4_from_tshark(first_ch) if first_ch else None,
    )


_GREASE = {0x0A0A + 0x1010 * i for i in range(16)}
_JA4_VERSIONS = {0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3"}


def ja4_from_tshark(ch: dict[str, Any]) -> str:
    """JA4 (FoxIO JA4.md) of a DTLS ClientHello from tshark's fields: ``d``, version
    (highest supported_versions, else the hello's), ``d``/``i`` for SNI, two-digit counts
    of cipher suites and extensions (GREASE out), the first and last character of the
    first ALPN (``00`` without); then the first 12 hex of SHA-256 of the sorted ciphers,
    and of the sorted extensions (SNI and ALPN out) ``_`` the signature algorithms in
    wire order."""
    ciphers = [int(c, 16) for c in _walk(ch, "dtls.handshake.ciphersuite")]
    ciphers = [c for c in ciphers if c not in _GREASE]
    exts = [int(e) for e in _walk(ch, "dtls.handshake.extension.type")]
    exts = [e for e in exts if e not in _GREASE]
    supported = [int(v, 16) for v in _walk(ch, "dtls.handshake.extensions.supported_version")]
    supported = [v for v in supported if v not in _GREASE]
    legacy = int(_walk(ch, "dtls.handshake.version")[0], 16)
    best = min(supported) if supported else legacy  # DTLS versions count down
    version = _JA4_VERSIONS.get(best, "00")
    alpn = _walk(ch, "dtls.handshake.extensions_alpn_str")
    first = alpn[0] if alpn else ""
    alpn_part = first[0] + first[-1] if first else "00"
    sigalgs = [int(s, 16) for s in _walk(ch, "dtls.handshake.sig_hash_alg")]
    sigalgs = [s for s in sigalgs if s not in _GREASE]
    sni = "d" if 0 in exts else "i"
    head = f"d{version}{sni}{min(len(ciphers), 99):02d}{min(len(exts), 99):02d}{alpn_part}"

    def sha12(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:12] if text else "000000000000"

    part_b = sha12(",".join(f"{c:04x}" for c in sorted(ciphers)))
    ext_text = ",".join(f"{e:04x}" for e in sorted(e for e in exts if e not in (0, 16)))
    if sigalgs:
        ext_text += "_" + ",".join(f"{s:04x}" for s in sigalgs)
    return f"{head}_{part_b}_{sha12(ext_text)}"


def check_facts(rec: HandshakeRecord, pcap: Path, client_ip: str) -> TsharkView:
    """sni, version, cipher, alerts, last_alert, JA3 and JA4 as tshark reads them."""
    view = tshark_view(pcap, client_ip, rec.client_port)
    assert rec.transport == "dtls"
    assert rec.sni == view.sni
    assert rec.version == view.version
    assert rec.cipher == view.cipher
    plain = [(a.sender, a.code) for a in rec.alerts if not a.encrypted]
    assert plain == view.alerts
    assert rec.last_alert == (alert_name(view.alerts[-1][1]) if view.alerts else None)
    assert rec.ja3_string == view.ja3_full
    assert rec.ja3 == view.ja3
    assert rec.ja4 == view.ja4
    return view


def check_diagnosis(
    rec: HandshakeRecord, outcome: str, failure: str | None = None, side: str | None = None
) -> None:
    assert (rec.outcome, rec.failure, rec.failure_side) == (outcome, failure, side), rec.reason
    if failure is not None:
        assert rec.reason and rec.remedy
        assert "-dtls" in rec.remedy or "UDP" in rec.remedy or "udp" in rec.remedy


IANA_OF_OPENSSL = {
    "ECDHE-RSA-AES256-GCM-SHA384": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-RSA-AES256-SHA": "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
}


def openssl_cipher(out: Ran) -> str:
    """The IANA name of the suite s_client printed ("Cipher    : ...")."""
    found = re.search(r"Cipher\s+: (\S+)", out.stdout)
    assert found, out.summary()
    return IANA_OF_OPENSSL[found.group(1)]


# ---------------------------------------------------------------------- successes


def test_dtls12_cookie_exchange_established(tmp_path: Path, pki: TestPKI) -> None:
    out = scenario(tmp_path, pki, s_server(pki, "-dtls1_2", "-listen"), s_client(pki, "-dtls1_2"))
    assert "Protocol  : DTLSv1.2" in out.client.stdout, out.client.summary()
    rec = out.dtls
    check_facts(rec, out.pcap, out.client_ip)
    check_diagnosis(rec, "established")
    assert rec.cipher == openssl_cipher(out.client)
    assert rec.version == "DTLSv1.2" and rec.offered_versions == ["DTLSv1.2"]
    assert rec.history == OPENSSL_HISTORY
    assert rec.established and rec.stage == "established"
    assert rec.tcp_rtt is None and rec.syn_count == 0
    assert rec.dtls_cookie_length == 20 and rec.dtls_cookie_echoed
    assert rec.client_retransmits == rec.server_retransmits == 0
    assert rec.server_max_datagram is not None and rec.server_max_datagram > 1000
    assert rec.ja4 is not None and rec.ja4.startswith("dd2d")
    assert not rec.anomalies


def test_dtls10_at_seclevel_0(tmp_path: Path, pki: TestPKI) -> None:
    out = scenario(
        tmp_path, pki,
        s_server(pki, "-dtls1", "-cipher", LOW), s_client(pki, "-dtls1", "-cipher", LOW),
    )  # fmt: skip
    assert "Protocol  : DTLSv1" in out.client.stdout, out.client.summary()
    rec = out.dtls
    check_facts(rec, out.pcap, out.client_ip)
    check_diagnosis(rec, "established")
    assert rec.version == "DTLSv1.0" and rec.cipher == openssl_cipher(out.client)
    assert rec.history == OPENSSL_HISTORY


def test_mtu_500_fragmented_flights(tmp_path: Path, pki: TestPKI) -> None:
    out = scenario(
        tmp_path, pki,
        s_server(pki, "-dtls1_2", "-mtu", "500"), s_client(pki, "-dtls1_2", "-mtu", "500"),
    )  # fmt: skip
    assert "Protocol  : DTLSv1.2" in out.client.stdout, out.client.summary()
    rec = out.dtls
    check_facts(rec, out.pcap, out.client_ip)
    check_diagnosis(rec, "established")
    assert rec.history == OPENSSL_HISTORY
    assert rec.server_max_datagram is not None and rec.server_max_datagram <= 500
    assert rec.cert_chain_sha256 and not rec.anomalies


# ---------------------------------------------------------------------- failures


def test_version_mismatch(tmp_path: Path, pki: TestPKI) -> None:
    out = scenario(
        tmp_path, pki, s_server(pki, "-dtls1_2"), s_client(pki, "-dtls1", "-cipher", LOW)
    )
    assert "Cipher    : 0000" in out.client.stdout  # the handshake failed
    rec = out.dtls
    check_facts(rec, out.pcap, out.client_ip)
    check_diagnosis(rec, "failed", "version_mismatch", "server")
    assert rec.last_alert == "protocol_version" and rec.offered_versions == ["DTLSv1.0"]
    assert rec.history == "CvCl"
    assert "-dtls1" in str(rec.remedy)


def test_cipher_mismatch(tmp_path: Path, pki: TestPKI) -> None:
    out = scenario(
        tmp_path, pki,
        s_server(pki, "-dtls1_2", "-cipher", "AES128-SHA"),
        s_client(pki, "-dtls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384"),
    )  # fmt: skip
    rec = out.dtls
    check_facts(rec, out.pcap, out.client_ip)
    check_diagnosis(rec, "failed", "cipher_mismatch", "server")
    assert rec.last_alert == "handshake_failure" and rec.version is None


@pytest.mark.parametrize(
    ("kind", "alert", "failure"),
    [
        (LeafKind.EXPIRED, "certificate_expired", "certificate_expired"),
        (LeafKind.INSPECTION, "unknown_ca", "certificate_untrusted"),
    ],
)
def test_certificate_refused_by_the_client(
    tmp_path: Path, pki: TestPKI, kind: LeafKind, alert: str, failure: str
) -> None:
    out = scenario(tmp_path, pki, s_server(pki, "-dtls1_2", kind=kind), s_client(pki, "-dtls1_2"))
    assert "verify error" in out.client.stdout + out.client.stderr
    rec = out.dtls
    check_facts(rec, out.pcap, out.client_ip)
    check_diagnosis(rec, "failed", failure, "client")
    assert rec.last_alert == alert
    # the client refuses the certificate as it arrives: the rest of the server's flight
    # may or may not be on the wire before the alert
    assert rec.history in ("CvCsxL", "CvCsxknL")
    assert rec.cert_status == ("expired" if kind is LeafKind.EXPIRED else "untrusted")


def test_client_certificate_required(tmp_path: Path, pki: TestPKI) -> None:
    out = scenario(
        tmp_path, pki, s_server(pki, "-dtls1_2", "-Verify", "1"), s_client(pki, "-dtls1_2")
    )
    assert "peer did not return a certificate" in out.server_text
    rec = out.dtls
    check_facts(rec, out.pcap, out.client_ip)
    check_diagnosis(rec, "failed", "client_certificate_required", "server")
    assert rec.client_cert_requested and rec.client_certificates == 0
    assert rec.history == "CvCsxkrnXGIl"


def test_iptables_drop(tmp_path: Path, pki: TestPKI) -> None:
    def drop(lab: Lab) -> None:
        lab.server.sh(["iptables", "-A", "INPUT", "-p", "udp", "--dport", str(PORT), "-j", "DROP"])

    out = scenario(
        tmp_path, pki, s_server(pki, "-dtls1_2"), [*s_client(pki, "-dtls1_2"), "-timeout"],
        setup=drop, timeout=6,
    )  # fmt: skip
    rec = out.dtls
    check_facts(rec, out.pcap, out.client_ip)
    check_diagnosis(rec, "failed", "udp_no_answer", "network")
    assert rec.server_bytes == 0 and rec.client_retransmits >= 1
    assert rec.history == "C" * (1 + rec.client_retransmits)  # Zeek: a letter per whole hello
    assert f"UDP {PORT}" in str(rec.reason)


def test_icmp_port_unreachable(tmp_path: Path, pki: TestPKI) -> None:
    out = scenario(tmp_path, pki, None, [*s_client(pki, "-dtls1_2"), "-timeout"], timeout=6)
    rec = out.dtls
    check_facts(rec, out.pcap, out.client_ip)
    check_diagnosis(rec, "failed", "udp_refused", "server")
    assert rec.icmp_error == "port_unreachable" and rec.icmp_from == "10.99.0.1"


# ---------------------------------------------------------------------- DTLS-specific


def test_hello_verify_request_never_reaches_the_client(tmp_path: Path, pki: TestPKI) -> None:
    """The client's host drops what the server sends (after tcpdump saw it): every
    ClientHello gets a HelloVerifyRequest the client never reads, so it resends its
    first ClientHello until it gives up."""

    def drop_answers(lab: Lab) -> None:
        lab.client.sh(["iptables", "-A", "INPUT", "-p", "udp", "--sport", str(PORT), "-j", "DROP"])

    out = scenario(
        tmp_path, pki, s_server(pki, "-dtls1_2", "-listen"),
        [*s_client(pki, "-dtls1_2"), "-timeout"], setup=drop_answers, timeout=8,
    )  # fmt: skip
    rec = out.dtls
    check_facts(rec, out.pcap, out.client_ip)
    check_diagnosis(rec, "failed", "udp_no_answer", "network")
    assert rec.dtls_cookie_length == 20 and rec.dtls_cookie_echoed is False
    assert rec.client_retransmits >= 1 and rec.dtls_server_datagrams == 1 + rec.client_retransmits
    assert rec.history == "Cv" * (1 + rec.client_retransmits)
    assert "HelloVerifyRequest" in str(rec.reason) and "-dtls1_2" in str(rec.remedy)


def narrow_client_link(lab: Lab) -> None:
    """The client's link at MTU 1200; the server's stays at 1500, so the server's
    1500-byte packets are dropped on the way (veth drops what exceeds the peer's MTU)."""
    lab.client.ip("link", "set", "eth0", "mtu", "1200")


def test_mtu_black_hole(tmp_path: Path, pki: TestPKI) -> None:
    """The server sends datagrams of up to 1472 bytes (``-mtu 1500`` also keeps OpenSSL
    from falling back to a smaller MTU after timeouts): the large ones never arrive, the
    server resends its flight, the client its ClientHello, until the client gives up.
    Captured at both ends: the server's end sees the large datagrams resent; the client's
    end sees the server's flight arrive incomplete."""
    out = scenario(
        tmp_path, pki, s_server(pki, "-dtls1_2", "-listen", "-mtu", "1500"),
        [*s_client(pki, "-dtls1_2"), "-timeout"], setup=narrow_client_link,
        server_capture=True, timeout=10,
    )  # fmt: skip
    assert "Cipher is" not in out.client.stdout, out.client.summary()
    assert out.server_records is not None and out.server_pcap is not None
    (at_server,) = [r for r in out.server_records if r.transport == "dtls"]
    for rec, pcap in ((out.dtls, out.pcap), (at_server, out.server_pcap)):
        check_facts(rec, pcap, out.client_ip)
        check_diagnosis(rec, "failed", "no_server_response", "network")
        assert rec.server_retransmits >= 1 and rec.client_retransmits >= 1
        assert rec.dtls_cookie_echoed and "MTU" in str(rec.reason)
        assert "-mtu" in str(rec.remedy) and "ping -M do" in str(rec.remedy)
    assert at_server.server_max_datagram is not None and at_server.server_max_datagram > 1200
    assert at_server.dtls_server_incomplete == 0 and at_server.version == "DTLSv1.2"
    assert out.dtls.server_max_datagram is not None and out.dtls.server_max_datagram <= 1200
    # OpenSSL resends its messages one per datagram: the ServerHello gets through, the
    # Certificate's first, large fragment never does
    assert out.dtls.dtls_server_incomplete == 1 and out.dtls.version == "DTLSv1.2"
    assert "x" not in out.dtls.history  # the Certificate never completed


def test_mtu_fallback_after_resent_flights(tmp_path: Path, pki: TestPKI) -> None:
    """Without ``-mtu``, OpenSSL's server falls back to a smaller MTU after its flight
    timed out twice, and the handshake completes: established, with the resent flights
    and both datagram sizes in the record (seen at the server's end)."""
    out = scenario(
        tmp_path, pki, s_server(pki, "-dtls1_2", "-listen"), [*s_client(pki, "-dtls1_2")],
        setup=narrow_client_link, server_capture=True, timeout=20,
    )  # fmt: skip
    assert "Protocol  : DTLSv1.2" in out.client.stdout, out.client.summary()
    assert out.server_records is not None and out.server_pcap is not None
    (rec,) = [r for r in out.server_records if r.transport == "dtls"]
    check_facts(rec, out.server_pcap, out.client_ip)
    check_diagnosis(rec, "established")
    assert rec.server_retransmits >= 2 and rec.server_max_datagram is not None
    assert rec.server_max_datagram > 1200 and rec.history.startswith("CvCs")


# ---------------------------------------------------------------------- GnuTLS, OpenConnect


def gnutls_serv(pki: TestPKI) -> list[str]:
    cert = pki.server(SNI)
    return [
        "gnutls-serv", "--udp", "--port", str(PORT),
        "--x509certfile", str(cert.chain), "--x509keyfile", str(cert.key),
    ]  # fmt: skip


def gnutls_cli(*trust: str) -> list[str]:
    return [
        "gnutls-cli", "--udp", "--port", str(PORT), *trust,
        "--sni-hostname", SNI, "--verify-hostname", SNI, "10.99.0.1",
    ]  # fmt: skip


def gnutls_cipher(text: str) -> tuple[str, str]:
    """(version, IANA cipher) from gnutls-cli's "Description: (DTLS1.2)-(ECDHE-...)-(...)
    -(AES-256-GCM)" line."""
    found = re.search(
        r"Description: \((DTLS[\d.]+)[^)]*\)-\(ECDHE-[^)]+\)-\((RSA)[^)]*\)-\(([\w-]+)\)", text
    )
    assert found, text[-2000:]
    version = found.group(1).replace("DTLS", "DTLSv")
    bulk = found.group(3).replace("-", "_")  # AES_256_GCM
    hashes = {"AES_256_GCM": "SHA384", "AES_128_GCM": "SHA256", "CHACHA20_POLY1305": "SHA256"}
    return version, f"TLS_ECDHE_{found.group(2)}_WITH_{bulk}_{hashes[bulk]}"


@pytest.mark.skipif(shutil.which("gnutls-serv") is None, reason="gnutls-bin not installed")
def test_gnutls_established(tmp_path: Path, pki: TestPKI) -> None:
    out = scenario(tmp_path, pki, gnutls_serv(pki), gnutls_cli("--x509cafile", str(pki.root)))
    said = out.client.stdout + out.client.stderr
    assert "Handshake was completed" in said, out.client.summary()
    rec = out.dtls
    check_facts(rec, out.pcap, out.client_ip)
    check_diagnosis(rec, "established")
    assert (rec.version, rec.cipher) == gnutls_cipher(said)
    assert rec.dtls_cookie_length is not None and rec.dtls_cookie_echoed  # GnuTLS asks too
    assert rec.history.startswith("CvCsx") and rec.ja4 and rec.ja4.startswith("dd2d")


@pytest.mark.skipif(shutil.which("gnutls-serv") is None, reason="gnutls-bin not installed")
def test_gnutls_untrusted(tmp_path: Path, pki: TestPKI) -> None:
    """gnutls-cli with the system's trust store only: our test CA is unknown to it."""
    out = scenario(tmp_path, pki, gnutls_serv(pki), gnutls_cli())
    said = out.client.stdout + out.client.stderr
    assert "Handshake was completed" not in said and "verification" in said.lower(), said
    # judged with the default trust store, as the client did (not with the test CA)
    (rec,) = [r for r in collect(out.pcap, Run(), workers=1) if r.transport == "dtls"]
    check_facts(rec, out.pcap, out.client_ip)
    check_diagnosis(rec, "failed", "certificate_untrusted", "client")


@pytest.mark.parametrize(
    ("legacy", "args", "version"),
    [
        (False, (), "DTLSv1.2"),  # PSK-NEGOTIATE: a DTLS 1.2 PSK handshake
        (True, (), "DTLSv1.2"),  # AnyConnect's resumption of the TLS channel's session
        (True, ("--dtls-ciphers=AES128-SHA",), "DTLSv0.9"),  # OpenConnect's 0x0100
    ],
)
def test_openconnect_vpn(
    tmp_path: Path, legacy: bool, args: tuple[str, ...], version: str
) -> None:
    if missing_requirements(("ocserv", "ocpasswd", "openconnect")):
        pytest.skip("ocserv or openconnect not installed")
    from tests.test_dtls_ocserv import established_with, vpn

    said, pcap, client_ip = vpn(tmp_path, legacy=legacy, client_args=args)
    assert established_with(said).split("/")[0] == version.replace("v", "")
    (rec,) = [r for r in collect(pcap, Run(), workers=1) if r.transport == "dtls"]
    check_facts(rec, pcap, client_ip)
    check_diagnosis(rec, "established")
    assert rec.version == version and rec.server_port == 443
    assert rec.resumed is legacy  # the legacy channel resumes the TLS session
    assert rec.history == ("CsiI" if legacy else "CsnGIi")  # RFC 5246 §7.3, RFC 4279 §2

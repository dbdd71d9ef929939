"""The HTML report (escaping, the failed table, the details), checked as text and in
headless Chromium; ``tlsa report``, ``summary`` and ``show`` in-process and as real
subprocesses."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import dpkt
import pytest

from analyzer import cli
from analyzer.api import Run, collect
from analyzer.diagnosis import DiagnosisOptions
from analyzer.record import AlertInfo, HandshakeRecord, TimelineEntry
from analyzer.report import html as report_html
from analyzer.report.html import Html, esc, render, tag, write

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_pcaps"
CA = SAMPLES / "test-ca.pem"
CA_ARGS = ["--ca-bundle", str(CA)] if CA.exists() else []
CHROMIUM = shutil.which("chromium")
HOSTILE_SNI = b"<img src=x onerror=alert(1)>"
HOSTILE_ALPN = b"<script>alert(2)</script>"
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed")


# --- a crafted capture: one ClientHello carrying hostile SNI and ALPN, refused by the server


def client_hello(sni: bytes, alpn: bytes) -> bytes:
    """A TLS 1.3 ClientHello record (RFC 8446 §4.1.2) with server_name and ALPN."""

    def ext(code: int, data: bytes) -> bytes:
        return struct.pack("!HH", code, len(data)) + data

    name = b"\x00" + struct.pack("!H", len(sni)) + sni  # name_type host_name, HostName<1..>
    proto = bytes([len(alpn)]) + alpn  # ProtocolName<1..2^8-1>
    extensions = (
        ext(0x0000, struct.pack("!H", len(name)) + name)  # server_name: ServerNameList
        + ext(0x0010, struct.pack("!H", len(proto)) + proto)  # ALPN: ProtocolNameList
        + ext(0x002B, bytes.fromhex("04 0304 0303"))  # supported_versions: 1.3, 1.2
        + ext(0x000A, bytes.fromhex("0002 001d"))  # supported_groups: x25519
    )
    body = (
        bytes.fromhex("0303")  # legacy_version TLS 1.2
        + bytes(range(32))  # random
        + bytes.fromhex("00")  # legacy_session_id: empty
        + bytes.fromhex("0004 1301 c02f")  # cipher_suites: AES_128_GCM, ECDHE_RSA_AES_128_GCM
        + bytes.fromhex("01 00")  # legacy_compression_methods: null
        + struct.pack("!H", len(extensions))
        + extensions
    )
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body  # client_hello, uint24 length
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake  # handshake record


def _frame(
    src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b""
) -> bytes:
    tcp = dpkt.tcp.TCP(
        sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, win=65535, data=payload
    )
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=6, ttl=64, data=tcp)
    ip.len = len(ip)
    eth = dpkt.ethernet.Ethernet(
        src=b"\x02" * 6, dst=b"\x04" * 6, type=dpkt.ethernet.ETH_TYPE_IP, data=ip
    )
    return bytes(eth)


def write_hostile_pcap(path: Path) -> None:
    """SYN, SYN-ACK, ACK, the ClientHello, a fatal handshake_failure alert, FINs."""
    c, s = "10.0.0.1", "10.0.0.2"
    hello = client_hello(HOSTILE_SNI, HOSTILE_ALPN)
    alert = bytes.fromhex("15 0303 0002 02 28")  # alert record: fatal handshake_failure
    syn, ack, psh, fin = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_PUSH, dpkt.tcp.TH_FIN
    end = 1001 + len(hello)
    packets = [
        _frame(c, s, 50000, 443, 1000, 0, syn),
        _frame(s, c, 443, 50000, 5000, 1001, syn | ack),
        _frame(c, s, 50000, 443, 1001, 5001, ack),
        _frame(c, s, 50000, 443, 1001, 5001, psh | ack, hello),
        _frame(s, c, 443, 50000, 5001, end, psh | ack, alert),
        _frame(s, c, 443, 50000, 5008, end, fin | ack),
        _frame(c, s, 50000, 443, end, 5009, fin | ack),
        _frame(s, c, 443, 50000, 5009, end + 1, ack),
    ]
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
        for i, frame in enumerate(packets):
            writer.writepkt(frame, ts=1_700_000_000.0 + i / 1000)


# --- helpers


class Dom(HTMLParser):
    """Elements (tag, attributes) and text of a page, as a browser serialised it."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [
            a for t, a in self.elements if t == tag and all(a.get(k) == v for k, v in attrs.items())
        ]


def chromium(page: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
        page.as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True)


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def failed_records(paths: Any) -> tuple[list[HandshakeRecord], Run]:
    run = Run()
    opts = DiagnosisOptions(ca_bundle=str(CA) if CA.exists() else None)
    return collect(paths, run, options=opts), run


def tlsa(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """Run the CLI in-process through its console entry point."""
    monkeypatch.setattr(sys, "argv", ["tlsa", *args])
    monkeypatch.setenv("COLUMNS", "200")
    code = 0
    try:
        cli.main()
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def samples() -> tuple[list[HandshakeRecord], Run]:
    return failed_records(SAMPLES)


@pytest.fixture(scope="module")
def sample_report(
    tmp_path_factory: pytest.TempPathFactory, samples: tuple[list[HandshakeRecord], Run]
) -> Path:
    records, run = samples
    return write(records, tmp_path_factory.mktemp("report"), run=run)


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("hostile")
    write_hostile_pcap(tmp / "hostile.pcap")
    records, run = failed_records(tmp / "hostile.pcap")
    assert [r.sni for r in records] == [HOSTILE_SNI.decode()]
    assert records[0].failure is not None
    return write(records, tmp / "out", run=run)


# --- markup building


def test_escaping_and_markup_values() -> None:
    assert esc("<a href='x'>&") == "&lt;a href=&#x27;x&#x27;&gt;&amp;"
    assert esc(None) == "–"
    assert tag("td", "<b>", class_="x y", data_uid='"q"') == (
        '<td class="x y" data-uid="&quot;q&quot;">&lt;b&gt;</td>'
    )
    joined = tag("b", "ok") + "<i>"
    assert isinstance(joined, Html) and joined == "<b>ok</b>&lt;i&gt;"
    assert "<i>" + tag("b", "ok") == "&lt;i&gt;<b>ok</b>"
    assert tag("p", tag("b", "kept")) == "<p><b>kept</b></p>"


def hostile_record() -> HandshakeRecord:
    evil = "<img src=x onerror=alert(1)>"
    return HandshakeRecord(
        uid='C"><script>alert(3)</script>',
        capture=evil,
        ts=1_700_000_000.0,
        ts_end=1_700_000_001.0,
        client_ip="192.0.2.1",
        client_port=1,
        server_ip="192.0.2.2",
        server_port=443,
        sni=evil,
        alpn_offered=[evil],
        cert_subject=f"CN={evil}",
        cert_issuer=evil,
        cert_sans=[evil],
        server_first_bytes=evil,
        proxy_target=evil,
        proxy_status_line=evil,
        reason=f"because {evil}",
        remedy=f"openssl -servername '{evil}'",
        outcome="failed",
        failure="not_tls",
        failure_side="server",
        history="C",
        alerts=[
            AlertInfo(
                sender="server",
                level="fatal",
                description=evil,
                code=40,
                encrypted=False,
                ts=1_700_000_000.5,
            )
        ],
        timeline=[TimelineEntry(t=0.0, sender="server", what=evil)],
    )


def test_capture_strings_are_escaped_everywhere() -> None:
    page = render([hostile_record()], figures={})
    assert "<img src=x" not in page
    assert "<script>alert" not in page
    assert page.count("&lt;img src=x onerror=alert(1)&gt;") >= 10
    assert len(re.findall(r"<script>", page)) == 1  # only ours
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert csp is not None
    policy = html.unescape(csp.group(1))
    assert "default-src 'none'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]


def test_sample_report_is_self_contained(
    sample_report: Path, samples: tuple[list[HandshakeRecord], Run]
) -> None:
    records, run = samples
    page = sample_report.read_text(encoding="utf-8")
    failed = [r for r in records if r.failure]
    assert page.count('<tr class="fail"') == len(failed)
    assert page.count('<details class="conn"') == len(failed)
    assert page.count('<img src="data:image/svg+xml;base64,') == 6
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<link" not in page
    # Packet time only: the same input gives the same page.
    assert render(records, run=run) == page


def test_report_lists_at_most_the_limit(
    monkeypatch: pytest.MonkeyPatch, samples: tuple[list[HandshakeRecord], Run]
) -> None:
    monkeypatch.setattr(report_html, "REPORT_MAX_FAILED", 2)
    records, run = samples
    page = render(records, run=run, figures={})
    assert page.count('<tr class="fail"') == 2
    total = sum(1 for r in records if r.failure)
    assert f"Only the first 2 of {total} failed handshakes" in page


# --- in a real browser


@needs_chromium
def test_report_renders_in_chromium(
    sample_report: Path, tmp_path: Path, samples: tuple[list[HandshakeRecord], Run]
) -> None:
    records, _ = samples
    began = time.monotonic()
    done = chromium(sample_report, tmp_path, "--dump-dom")
    elapsed = time.monotonic() - began
    dom = Dom(done.stdout)
    body = dom.find("body")[0]
    assert body.get("data-ready") == "1", "the report's script did not finish"
    assert "data-js-error" not in body
    assert console_messages(done.stderr) == []
    rows = dom.find("tr", **{"class": "fail"})
    assert len(rows) == sum(1 for r in records if r.failure)
    assert not any("hidden" in r for r in rows)
    shown = "".join(dom.text).split(" of ")[0]
    assert shown  # the count was written by the script
    assert len(dom.find("img")) == 6
    assert elapsed < 60
    shot = tmp_path / "shot.png"
    chromium(
        sample_report,
        tmp_path,
        f"--screenshot={shot}",
        "--window-size=1400,3000",
        "--hide-scrollbars",
    )
    from PIL import Image

    with Image.open(shot) as im:
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, tables, figures: not blank


@needs_chromium
def test_hostile_sni_shows_as_text_in_chromium(hostile_report: Path, tmp_path: Path) -> None:
    done = chromium(hostile_report, tmp_path, "--dump-dom")
    dom = Dom(done.stdout)
    assert dom.find("body")[0].get("data-ready") == "1"
    assert console_messages(done.stderr) == []
    assert len(dom.find("tr", **{"class": "fail"})) == 1
    assert not [a for a in dom.find("img") if not (a.get("src") or "").startswith("data:")]
    assert not any(a.get("onerror") for _, a in dom.elements)
    text = "".join(dom.text)
    assert HOSTILE_SNI.decode() in text
    assert HOSTILE_ALPN.decode() in text
    assert len(dom.find("script")) == 1


# --- the command line


def test_cli_report_summary_show_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    nginx = sorted(str(p) for p in SAMPLES.glob("nginx_*.pcap"))
    code, out, _ = tlsa(monkeypatch, capsys, "report", *nginx, "-o", str(tmp_path / "r"), *CA_ARGS)
    assert code == 0
    index = tmp_path / "r" / "index.html"
    assert out.strip() == str(index)
    records, _ = failed_records(nginx)
    assert index.read_text().count('<tr class="fail"') == sum(1 for r in records if r.failure)

    code, out, _ = tlsa(monkeypatch, capsys, "summary", *nginx, "--format", "json", *CA_ARGS)
    assert code == 0
    data = json.loads(out)
    assert data["connections"] == len(records)
    assert data["failed"] == sum(1 for r in records if r.failure)
    assert {f["failure"] for f in data["failures"]} == {r.failure for r in records if r.failure}
    assert all(f["example"] for f in data["failures"])
    assert data["udp_quic_datagrams"] == 0

    code, out, _ = tlsa(monkeypatch, capsys, "summary", *nginx, *CA_ARGS)
    assert code == 0
    for title in (
        "Outcomes",
        "Failure causes",
        "Servers with the most failures",
        "Negotiated versions",
        "Negotiated cipher suites",
        "QUIC: 0",
    ):
        assert title in out
    expired = next(r for r in records if r.failure == "certificate_expired")
    code, out, _ = tlsa(monkeypatch, capsys, "show", expired.uid, *nginx, *CA_ARGS)
    assert code == 0
    for part in ("Diagnosis", "Timeline", "Alerts", "certificate_expired", expired.uid):
        assert part in out


def test_cli_bad_input_still_writes_the_report(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    good = str(SAMPLES / "nginx_tls12_ok.pcap")
    code, _, err = tlsa(
        monkeypatch,
        capsys,
        "report",
        good,
        str(tmp_path / "missing.pcap"),
        "-o",
        str(tmp_path / "r"),
    )
    assert code == 2
    assert "missing.pcap" in err and "Traceback" not in err
    assert (tmp_path / "r" / "index.html").exists()
    code, _, err = tlsa(monkeypatch, capsys, "show", "Cnope", good)
    assert code == 2 and "no connection with uid Cnope" in err


def test_cli_as_subprocesses(tmp_path: Path, hostile_report: Path) -> None:
    env = {**os.environ, "COLUMNS": "160"}
    hostile = hostile_report.parent.parent / "hostile.pcap"
    out_dir = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "analyzer", "report", str(hostile), "-o", str(out_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out_dir / "index.html")
    assert "&lt;img src=x onerror=alert(1)&gt;" in (out_dir / "index.html").read_text()
    done = subprocess.run(
        [sys.executable, "-m", "analyzer", "summary", str(hostile)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "Failure causes" in done.stdout and "1 failed" in done.stdout

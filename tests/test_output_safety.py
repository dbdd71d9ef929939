"""Attacker-controlled strings in outputs (SPEC §6): a crafted capture whose SNI, ALPN,
certificate names and proxy status line carry terminal escapes, HTML and spreadsheet
formulas. Checked: terminal tables and ``tlsa show`` print no raw control character (ESC
included), CSV cells that a spreadsheet would run as a formula are defused, JSONL stays
one valid object per line and gives the strings back exactly. Live capture runs its tools
without a shell. (The HTML report's escaping is tested with the report.)
"""

from __future__ import annotations

import ast
import csv
import datetime as dt
import io
import json
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from analyzer import cli
from analyzer.output import FORMULA_START, csv_cell
from tests.fuzz.pcap import Conversation, file_header, tls_record, write_pcap
from tests.tls_fixtures import client_hello, extension

ROOT = Path(__file__).resolve().parents[1]

HOSTILE_SNIS = [
    "\x1b[31mred.example\x1b[0m",
    "<script>alert(1)</script>.example",
    "=cmd|' /C calc'!A0",
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+9)*cmd|' /C calc'!A0",
    "\x1b]0;title\x07\x1b[2J.example",
    "bell\x07\x08\x7f\x9b.example",
]
"""One connection per server name; what each one tries is in the name."""
HOSTILE_ALPN = b"\x1b[5mh2"
HOSTILE_CN = "\x1b[31m=evil \x9b2J\u202e <b>CN</b>"
"""ESC, an 8-bit CSI and a right-to-left override, in a UTF8String."""
SUBJECT = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTILE_CN)]).rfc4514_string()
HOSTILE_STATUS = "HTTP/1.1 403 \x1b[2J<script>x</script>=1+1\r\n\r\n"


def server_name(name: str) -> bytes:
    host = name.encode("latin-1")
    entry = b"\x00" + len(host).to_bytes(2, "big") + host
    return extension(0, len(entry).to_bytes(2, "big") + entry)


def alpn(*protocols: bytes) -> bytes:
    body = b"".join(len(p).to_bytes(1, "big") + p for p in protocols)
    return extension(16, len(body).to_bytes(2, "big") + body)


def certificate_der() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTILE_CN)])
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("=cmd|' /C calc'!A0")]), False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


def server_flight(der: bytes) -> bytes:
    hello = (
        bytes.fromhex("0303")
        + bytes(32)
        + b"\x00"
        + bytes.fromhex("c02b")
        + b"\x00"
        + (len(alpn(HOSTILE_ALPN)).to_bytes(2, "big"))
        + alpn(HOSTILE_ALPN)
    )
    certs = len(der).to_bytes(3, "big") + der
    certificate = len(certs).to_bytes(3, "big") + certs
    messages = (
        b"\x02"
        + len(hello).to_bytes(3, "big")
        + hello
        + b"\x0b"
        + len(certificate).to_bytes(3, "big")
        + certificate
    )
    return tls_record(22, messages)


@pytest.fixture(scope="module")
def hostile_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    der = certificate_der()
    packets = []
    for i, sni in enumerate(HOSTILE_SNIS):
        c = Conversation(
            (bytes([10, 0, 0, 2]), 41000 + i), (bytes([10, 0, 0, 1]), 443), t0=1_750_000_000.0 + i
        )
        c.handshake()
        hello = client_hello(
            server_name(sni), alpn(HOSTILE_ALPN, b"http/1.1"), suites=(0xC02B, 0xC02F)
        )
        c.data(True, tls_record(22, hello))
        c.data(False, server_flight(der))
        c.data(True, tls_record(21, bytes([2, 42])))  # fatal bad_certificate
        packets += c.packets
    # A CONNECT through a proxy that answers with a hostile status line.
    c = Conversation(
        (bytes([10, 0, 0, 2]), 42000), (bytes([10, 0, 0, 3]), 3128), t0=1_750_000_100.0
    )
    c.handshake()
    c.data(True, b"CONNECT \x1b[31mevil.example:443 HTTP/1.1\r\nHost: x\r\n\r\n")
    c.data(False, HOSTILE_STATUS.encode("latin-1"))
    packets += c.packets
    path = tmp_path_factory.mktemp("hostile") / "hostile.pcap"
    path.write_bytes(write_pcap(file_header(), packets))
    return path


def tlsa(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str | Path
) -> tuple[int, str, str]:
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["tlsa", *map(str, args)])
    monkeypatch.setenv("COLUMNS", "250")
    code: int | str | None = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return (code if isinstance(code, int) else 1), out, err


def records(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], capture: Path
) -> list[dict[str, object]]:
    code, out, err = tlsa(monkeypatch, capsys, "analyze", capture, "-f", "jsonl", "--no-verify")
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def has_control(text: str) -> bool:
    """A character a terminal would act on (C0/C1 controls, DEL) or that reorders what it
    shows (bidi overrides), newlines aside."""
    return any((ord(c) < 32 and c != "\n") or 127 <= ord(c) < 160 or c in BIDI for c in text)


BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def as_sent(name: str) -> str:
    """An SNI as the parser gives it back: ASCII, other bytes as backslash escapes."""
    return name.encode("latin-1").decode("ascii", "backslashreplace")


def test_the_capture_carries_every_hostile_string(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], hostile_capture: Path
) -> None:
    got = records(monkeypatch, capsys, hostile_capture)
    assert sorted(r["sni"] for r in got if r["sni"]) == sorted(map(as_sent, HOSTILE_SNIS))
    tls = [r for r in got if r["sni"]]
    assert all(r["cert_subject"] == SUBJECT for r in tls), tls[0]["cert_subject"]
    assert all(r["cert_sans"] == ["=cmd|' /C calc'!A0"] for r in tls)
    assert all(r["alpn_offered"] and r["alpn"] for r in tls)
    [proxy] = [r for r in got if r["server_port"] == 3128]
    assert proxy["proxy_status"] == 403


def test_jsonl_is_one_valid_object_per_line_and_exact(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], hostile_capture: Path
) -> None:
    code, out, _ = tlsa(
        monkeypatch, capsys, "analyze", hostile_capture, "-f", "jsonl", "--no-verify"
    )
    assert code == 0
    assert not has_control(out)  # controls are \u escapes inside JSON strings
    lines = out.splitlines()
    assert len(lines) == len(HOSTILE_SNIS) + 1
    got = [json.loads(line) for line in lines]
    assert {as_sent(n) for n in HOSTILE_SNIS} <= {r["sni"] for r in got}  # exactly as sent
    assert {r["cert_subject"] for r in got if r["sni"]} == {SUBJECT}
    assert "\\u009b" in out and "\\u202e" in out


@pytest.mark.parametrize("command", ["analyze", "summary"])
def test_terminal_tables_have_no_raw_control_characters(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    hostile_capture: Path,
    command: str,
) -> None:
    code, out, err = tlsa(monkeypatch, capsys, command, hostile_capture, "--no-verify")
    assert code == 0, err
    assert not has_control(out), [c for c in out if ord(c) < 32 and c != "\n"][:5]
    assert not has_control(err)
    if command == "analyze":
        assert "\\x1b[31mred.example" in out  # shown escaped, visibly


def test_show_has_no_raw_control_characters(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], hostile_capture: Path
) -> None:
    for r in records(monkeypatch, capsys, hostile_capture):
        code, out, err = tlsa(
            monkeypatch, capsys, "show", str(r["uid"]), hostile_capture, "--no-verify"
        )
        assert code == 0, err
        assert not has_control(out) and not has_control(err), r["sni"]


def test_uid_argument_is_escaped_in_the_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], hostile_capture: Path
) -> None:
    code, out, err = tlsa(monkeypatch, capsys, "show", "\x1b[2Jnope", hostile_capture)
    assert code == 2
    assert not has_control(out + err)
    assert len(err.splitlines()) == 1


def test_csv_defuses_formulas(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], hostile_capture: Path
) -> None:
    code, out, err = tlsa(
        monkeypatch, capsys, "analyze", hostile_capture, "-f", "csv", "--no-verify"
    )
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == len(HOSTILE_SNIS) + 1
    cells = [cell for row in rows for cell in row.values() if cell]
    for cell in cells:
        if cell.startswith(FORMULA_START):
            float(cell)  # only numbers may start like a formula
    snis = {row["sni"] for row in rows}
    assert "'=cmd|' /C calc'!A0" in snis
    assert "'+1+cmd|' /C calc'!A0" in snis
    assert "'-2+3+cmd|' /C calc'!A0" in snis
    assert "'@SUM(1+9)*cmd|' /C calc'!A0" in snis
    # Lists are JSON inside one cell; a SAN list starting with a formula stays defused.
    assert all(
        json.loads(row["cert_sans"]) == ["=cmd|' /C calc'!A0"]
        for row in rows
        if row["sni"] and row["server_port"] == "443"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd", "'+cmd"),
        ("-cmd", "'-cmd"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-1.5", "-1.5"),  # a negative number is data
        ("+3", "+3"),
        ("a=b", "a=b"),
        (["=x"], '["=x"]'),  # JSON text starts with [
        (-2, -2),
        (None, None),
    ],
)
def test_csv_cell(value: object, expected: object) -> None:
    assert csv_cell(value) == expected


def test_live_capture_runs_its_tools_without_a_shell() -> None:
    for path in (ROOT / "analyzer").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == "shell":
                        assert isinstance(kw.value, ast.Constant) and kw.value.value is False, path
                func = node.func
                if isinstance(func, ast.Attribute) and func.attr in ("system", "popen"):
                    assert not (isinstance(func.value, ast.Name) and func.value.id == "os"), path


@pytest.mark.parametrize("text", ["del\x7f.example", "csi\x9b.example", "rlo\u202e.example"])
def test_a_line_escapes_an_unsafe_character_in_otherwise_plain_text(text: str) -> None:
    from analyzer.output import json_line

    line = json_line({"sni": text, "n": 1})
    assert not has_control(line) and json.loads(line)["sni"] == text

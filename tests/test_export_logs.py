"""Zeek ``ssl.log`` and Elastic Common Schema outputs, checked by their consumers.

Zeek: zat (the Zeek Analysis Tools' ``LogToDataFrame``, which reads logs the way Zeek
tools do: its ``#fields``/``#types`` header, tab separators, ``-`` unset) must read the
file with the right pandas types, and our own reader must give back every value, hostile
capture strings included. The header, the value formats and the column names and types
are Zeek's (``scripts/base/protocols/ssl/main.zeek``, ``files.zeek`` and the btest
``ssl.log`` baselines).

ECS: every field of every document, on the sample captures and on a capture full of
hostile strings, must be either in the pinned extract of the ECS field list
(``tests/data/ecs_fields.csv``, from elastic/ecs ``generated/csv/fields.csv``) with a
value of that field's type, or under the ``tlsa.`` namespace.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from analyzer import cli
from analyzer.api import Run, collect
from analyzer.export.ecs import ecs_document
from analyzer.export.text import escape, unescape
from analyzer.export.zeek import FIELDS, format_value, read_zeek, write_zeek
from analyzer.record import HandshakeRecord
from tests.test_output_safety import hostile_capture  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_pcaps"
ECS_FIELDS = Path(__file__).resolve().parent / "data" / "ecs_fields.csv"

pytestmark = pytest.mark.skipif(not SAMPLES.exists(), reason="sample_pcaps/ is not there")

runner = CliRunner()

ZEEK_SSL_COLUMNS = [
    ("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"),
    ("id.resp_h", "addr"), ("id.resp_p", "port"), ("version", "string"),
    ("cipher", "string"), ("curve", "string"), ("server_name", "string"),
    ("resumed", "bool"), ("last_alert", "string"), ("next_protocol", "string"),
    ("established", "bool"), ("ssl_history", "string"), ("cert_chain_fps", "vector[string]"),
    ("client_cert_chain_fps", "vector[string]"), ("sni_matches_cert", "bool"),
    ("ja3", "string"), ("ja3s", "string"),
]  # fmt: skip
"""Zeek's ssl.log columns and types, in Zeek's order (base scripts, then the JA3 package's
two columns), as its btest baselines write them."""


@pytest.fixture(scope="module")
def sample_records() -> list[HandshakeRecord]:
    run = Run()
    records = collect([SAMPLES], run, workers=1)
    return records


def zeek_text(records: list[HandshakeRecord]) -> str:
    out = io.StringIO()
    write_zeek(records, out, now=lambda: 1_800_000_000.0)
    return out.getvalue()


def test_zeek_header_and_columns(sample_records: list[HandshakeRecord]) -> None:
    lines = zeek_text(sample_records).splitlines()
    assert lines[:6] == [
        "#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-",
        "#path\tssl", "#open\t2027-01-15-08-00-00",
    ]
    assert lines[-1] == "#close\t2027-01-15-08-00-00"
    fields = lines[6].split("\t")
    types = lines[7].split("\t")
    assert fields[0] == "#fields" and types[0] == "#types"
    assert list(zip(fields[1:], types[1:], strict=True))[: len(ZEEK_SSL_COLUMNS)] == (
        ZEEK_SSL_COLUMNS
    )
    assert all(f.startswith("tlsa_") for f in fields[1 + len(ZEEK_SSL_COLUMNS):])
    rows = [line for line in lines if not line.startswith("#")]
    assert len(rows) == len(sample_records)
    assert all(len(row.split("\t")) == len(FIELDS) for row in rows)


def test_zeek_values_as_zeek_writes_them(sample_records: list[HandshakeRecord]) -> None:
    rows = read_zeek(zeek_text(sample_records).splitlines())
    by_uid = {r.uid: r for r in sample_records}
    versions = {row["version"] for row in rows} - {None}
    assert versions <= {"SSLv3", "TLSv10", "TLSv11", "TLSv12", "TLSv13"}
    assert {"TLSv12", "TLSv13"} <= versions
    raw = [line.split("\t") for line in zeek_text(sample_records).splitlines()
           if not line.startswith("#")]
    col = {name: i for i, name in enumerate(FIELDS)}
    assert {row[col["resumed"]] for row in raw} <= {"T", "F"}
    assert all(row[col["ts"]].count(".") == 1 and len(row[col["ts"]].split(".")[1]) == 6
               for row in raw)
    for row in rows:
        r = by_uid[row["uid"]]
        assert row["server_name"] == r.sni
        assert row["cert_chain_fps"] == (r.cert_chain_sha256 or None)
        assert row["tlsa_outcome"] == r.outcome and row["tlsa_failure"] == r.failure
        assert row["ssl_history"] == (r.history or "")
        # Zeek's established: ours, or for TLS 1.3 any encrypted client record after the
        # server's flight (an encrypted alert counts).
        if r.version != "TLSv1.3":
            assert row["established"] == r.established
        elif r.established:
            assert row["established"]
    tls13_alert_only = [row for row in rows if row["version"] == "TLSv13"
                        and row["established"] and not row["tlsa_established"]]
    assert tls13_alert_only, "a TLS 1.3 rejection is established for Zeek, not for us"


def test_zat_reads_the_log_with_types(sample_records: list[HandshakeRecord],
                                      tmp_path: Path) -> None:
    zat = pytest.importorskip("zat.log_to_dataframe")
    import pandas as pd

    path = tmp_path / "ssl.log"
    path.write_text(zeek_text(sample_records), encoding="utf-8")
    df = zat.LogToDataFrame().create_dataframe(str(path))
    assert len(df) == len(sample_records)
    assert isinstance(df.index, pd.DatetimeIndex)
    assert str(df["id.orig_p"].dtype) == "UInt16" and str(df["id.resp_p"].dtype) == "UInt16"
    assert str(df["tlsa_packets"].dtype) == "UInt64"
    assert pd.api.types.is_timedelta64_dtype(df["tlsa_handshake_time"])
    assert pd.api.types.is_datetime64_any_dtype(df["tlsa_ts_end"])
    assert set(df["resumed"].astype(str)) <= {"T", "F"}
    first = min(sample_records, key=lambda r: (r.ts, r.uid))
    assert abs(df.index[0].timestamp() - first.ts) < 1e-5
    assert int(df["id.resp_p"].iloc[0]) == first.server_port
    assert int(df["tlsa_packets"].sum()) == sum(r.packets for r in sample_records)


def test_cli_format_zeek(tmp_path: Path) -> None:
    out = tmp_path / "ssl.log"
    result = runner.invoke(cli.app, ["analyze", str(SAMPLES / "nginx_tls12_ok.pcap"),
                                     "-f", "zeek", "-o", str(out)])
    assert result.exit_code == 0, result.output
    (row,) = read_zeek(out.read_text().splitlines())
    assert row["version"] == "TLSv12" and row["established"] is True


def test_zeek_escaping_round_trips_hostile_strings(hostile_capture: Path,  # noqa: F811
                                                   tmp_path: Path) -> None:
    run = Run()
    records = collect([hostile_capture], run, workers=1)
    text = zeek_text(records)
    for line in text.splitlines():
        assert not any((ord(c) < 0x20 and c != "\t") or ord(c) >= 0x7F for c in line), line
        if not line.startswith("#"):
            assert "#" not in line and '"' not in line
            assert len(line.split("\t")) == len(FIELDS)
    back = {row["uid"]: row for row in read_zeek(text.splitlines())}
    for r in records:
        row = back[r.uid]
        assert row["server_name"] == r.sni
        assert row["tlsa_reason"] == r.reason
        assert row["tlsa_cert_subject"] == r.cert_subject
        assert row["next_protocol"] == r.alpn
    path = tmp_path / "ssl.log"
    path.write_text(text, encoding="utf-8")
    zat = pytest.importorskip("zat.log_to_dataframe")
    df = zat.LogToDataFrame().create_dataframe(str(path))
    assert len(df) == len(records)


@pytest.mark.parametrize(
    ("value", "ztype", "written"),
    [
        ("-", "string", "\\x2d"),
        ("(empty)", "string", "\\x28empty)"),
        ("", "string", "(empty)"),
        ("a\tb,c\\d", "string", "a\\x09b\\x2cc\\\\d"),
        ("é", "string", "\\xc3\\xa9"),
        ([], "vector[string]", "(empty)"),
        (["a,b", "-"], "vector[string]", "a\\x2cb,\\x2d"),
        (None, "bool", "-"),
        (True, "bool", "T"),
        (0.5, "interval", "0.500000"),
    ],
)
def test_zeek_cells(value: Any, ztype: str, written: str) -> None:
    assert format_value(value, ztype) == written
    assert read_zeek([
        "#fields\tx", f"#types\t{ztype}", written,
    ])[0]["x"] == value


def test_escape_inverse() -> None:
    for s in ("plain", "tab\tnew\nline", "\\x41", "\x00\x7f\x9b", "ünï", "#\"", "\udcff"):
        assert unescape(escape(s, "#\"")) == s


# -- ECS ---------------------------------------------------------------------------------


def ecs_reference() -> dict[str, tuple[str, bool]]:
    """Field -> (type, array) from the pinned extract."""
    with ECS_FIELDS.open(encoding="utf-8") as f:
        lines = [line for line in f if not line.startswith("#")]
    return {row["Field"]: (row["Type"], row["Normalization"] == "array")
            for row in csv.DictReader(lines)}


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in doc.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and not name.startswith("tlsa."):
            out.update(flatten(v, name + "."))
        elif isinstance(v, dict):
            out[name] = v
        else:
            out[name] = v
    return out


def check_type(name: str, value: Any, ecs_type: str) -> None:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if ecs_type in ("keyword", "match_only_text", "wildcard"):
            assert isinstance(v, str), name
        elif ecs_type == "long":
            assert isinstance(v, int) and not isinstance(v, bool), name
        elif ecs_type == "boolean":
            assert isinstance(v, bool), name
        elif ecs_type == "ip":
            ipaddress.ip_address(v)
        elif ecs_type == "date":
            assert v.endswith("Z")
            dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        else:
            pytest.fail(f"{name}: type {ecs_type} not expected")


def check_document(doc: dict[str, Any], reference: dict[str, tuple[str, bool]]) -> None:
    for name, value in flatten(doc).items():
        if name == "tlsa" or name.startswith("tlsa."):
            continue
        assert name in reference, f"{name} is not an ECS field"
        ecs_type, array = reference[name]
        if isinstance(value, list):
            assert array or ecs_type == "keyword", name
        check_type(name, value, ecs_type)


def test_ecs_fields_and_types(sample_records: list[HandshakeRecord]) -> None:
    reference = ecs_reference()
    seen: set[str] = set()
    for r in sample_records:
        doc = ecs_document(r)
        check_document(doc, reference)
        seen |= set(flatten(doc))
    # Every pinned field is used by some sample record.
    assert set(reference) <= seen


def test_ecs_values(sample_records: list[HandshakeRecord]) -> None:
    ok = next(r for r in sample_records if r.capture == "nginx_tls12_ok.pcap")
    doc = ecs_document(ok)
    assert doc["tls"]["version"] == "1.2" and doc["tls"]["version_protocol"] == "tls"
    assert doc["event"]["outcome"] == "success" and "error" not in doc
    assert doc["source"]["ip"] == ok.client_ip and doc["destination"]["port"] == ok.server_port
    assert doc["tls"]["server"]["hash"]["sha256"] == ok.cert_chain_sha256[0].upper()
    assert doc["tlsa"]["uid"] == ok.uid
    failed = next(r for r in sample_records if r.failure == "version_mismatch")
    doc = ecs_document(failed)
    assert doc["event"]["outcome"] == "failure"
    assert doc["error"] == {"type": "version_mismatch", "message": failed.reason}
    assert "error" in doc["event"]["type"]


def test_cli_format_ecs_and_hostile_strings(hostile_capture: Path) -> None:  # noqa: F811
    result = runner.invoke(cli.app, ["analyze", str(hostile_capture), "-f", "ecs"])
    assert result.exit_code == 0, result.output
    reference = ecs_reference()
    run = Run()
    records = {r.uid: r for r in collect([hostile_capture], run, workers=1)}
    lines = result.stdout.splitlines()
    assert len(lines) == len(records)
    for line in lines:
        assert "\x1b" not in line and "\x9b" not in line and "\u202e" not in line
        doc = json.loads(line)
        check_document(doc, reference)
        r = records[doc["tlsa"]["uid"]]
        assert doc["tls"].get("client", {}).get("server_name") == r.sni

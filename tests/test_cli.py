"""The ``tlsa`` command line: in-process with typer's CliRunner, through the console entry
point ``analyzer.cli.main`` and once as a real subprocess (``python -m analyzer``).

Inputs are the committed captures of sample_pcaps/ and their MANIFEST.jsonl (ground truth
per connection, from how each scenario was set up), plus broken files made here. Checked:
exit status (SPEC §5), the JSONL/CSV/Parquet contract (SPEC §3 field names and types), the
filters, ``show`` and ``summary``, and that errors are one line each with no traceback
while every good record is still written.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from analyzer import cli

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_pcaps"
MANIFEST = SAMPLES / "MANIFEST.jsonl"

# SPEC §3, in its order: name -> allowed JSON types (None stands for null).
SPEC_FIELDS: dict[str, tuple[type | None, ...]] = {
    "uid": (str,), "capture": (str,), "ts": (float,), "ts_end": (float,),
    "client_ip": (str,), "client_port": (int,), "server_ip": (str,), "server_port": (int,),
    "transport": (str,), "quic_version": (str, None), "proxy_kind": (str, None),
    "proxy_target": (str, None), "proxy_status": (int, None), "starttls": (str, None),
    "sni": (str, None), "offered_versions": (list,), "version": (str, None),
    "offered_ciphers": (list,), "cipher": (str, None), "group": (str, None),
    "alpn_offered": (list,), "alpn": (str, None), "resumed": (bool,), "hrr": (bool,),
    "quic_history": (str, None), "history": (str,), "stage": (str,), "established": (bool,),
    "alerts": (list,),
    "last_alert": (str, None), "cert_subject": (str, None), "cert_issuer": (str, None),
    "cert_sans": (list,), "cert_not_before": (float, None), "cert_not_after": (float, None),
    "cert_chain_sha256": (list,), "cert_status": (str, None), "cert_trust": (str, None),
    "sni_matches_cert": (bool, None), "decrypted": (list,), "wireshark_filter": (str,),
    "ja3": (str, None), "ja3s": (str, None), "ja4": (str, None), "close": (str,),
    "client_bytes": (int,), "server_bytes": (int,), "packets": (int,),
    "tcp_rtt": (float, None), "handshake_time": (float, None), "retransmits": (int,),
    "gap_bytes": (int,), "outcome": (str,), "failure": (str, None),
    "failure_side": (str, None), "reason": (str, None), "remedy": (str, None),
    "inferred": (bool,), "warnings": (list,), "anomalies": (list,),
}
LIST_FIELDS = [f for f, t in SPEC_FIELDS.items() if t == (list,)]
STAGES = {"tcp_syn", "tcp_open", "client_hello", "server_hello", "server_certificate",
          "server_done", "client_finished", "established", "application_data"}
OUTCOMES = {"established", "failed", "incomplete", "not_tls"}
CLOSES = {"fin", "rst_client", "rst_server", "idle_timeout", "capture_end", "open"}

pytestmark = pytest.mark.skipif(not MANIFEST.exists(), reason="sample_pcaps/ is not there")

runner = CliRunner()


def manifest() -> list[dict[str, Any]]:
    return [json.loads(line) for line in MANIFEST.read_text().splitlines() if line.strip()]


def truth(file: str) -> list[dict[str, Any]]:
    return [m for m in manifest() if m["file"] == file]


def invoke(*args: str | Path) -> Any:
    # A wide terminal, so tables do not fold the values the tests look for.
    return runner.invoke(cli.app, [str(a) for a in args], env={"COLUMNS": "250"})


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             *args: str | Path) -> tuple[int, str, str]:
    """The console entry point ``tlsa`` in-process: (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["tlsa", *map(str, args)])
    code: int | str | None = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return (code if isinstance(code, int) else 1 if code else 0), out, err


def subprocess_tlsa(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analyzer", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def all_records() -> list[dict[str, Any]]:
    """``tlsa analyze sample_pcaps --format jsonl``, parsed."""
    result = invoke("analyze", SAMPLES, "--format", "jsonl")
    assert result.exit_code == 0, result.stderr
    return jsonl(result.stdout)


def broken_files(tmp: Path) -> dict[str, Path]:
    good = (SAMPLES / "nginx_tls12_ok.pcap").read_bytes()
    files = {
        "truncated": tmp / "cut.pcap",  # a good pcap cut in the middle of a packet record
        "garbage": tmp / "garbage.pcap",  # no capture magic at all
        "empty": tmp / "empty.pcap",
    }
    files["truncated"].write_bytes(good[: len(good) // 2 + 7])
    files["garbage"].write_bytes(bytes(range(256)) * 4)
    files["empty"].write_bytes(b"")
    return files


# -- analyze: formats ------------------------------------------------------------------------


def test_jsonl_follows_spec_section_3(all_records: list[dict[str, Any]]) -> None:
    assert len(all_records) == len(manifest())
    for rec in all_records:
        assert list(rec)[: len(SPEC_FIELDS)] == list(SPEC_FIELDS)  # names, in SPEC order
        for name, types in SPEC_FIELDS.items():
            value = rec[name]
            assert (None if value is None else type(value)) in types, (rec["capture"], name)
        assert rec["ts"] <= rec["ts_end"]
        assert rec["stage"] in STAGES and rec["outcome"] in OUTCOMES and rec["close"] in CLOSES
        for alert in rec["alerts"]:
            assert set(alert) == {"from", "level", "description", "code", "encrypted"}
            assert alert["from"] in ("client", "server")
        # unknown is null, never an empty string
        for name in ("sni", "version", "cipher", "group", "alpn", "failure", "ja3", "ja4"):
            assert rec[name] != "", name
    # the files' order: sorted by (ts, uid) within the output
    keys = [(r["ts"], r["uid"]) for r in all_records]
    assert keys == sorted(keys)


def test_jsonl_values_match_the_manifest(all_records: list[dict[str, Any]]) -> None:
    by_key = {(r["capture"], r["client_port"]): r for r in all_records}
    for m in manifest():
        rec = by_key[(m["file"], m["client_port"])]
        assert (rec["client_ip"], rec["server_ip"], rec["server_port"]) == (
            m["client_ip"], m["server_ip"], m["server_port"])
        assert rec["sni"] == m["sni"], m["file"]
        if m["outcome"] == "established":
            assert rec["version"] == m["version"] and rec["established"], m["file"]


def test_nulls_for_a_refused_connection(all_records: list[dict[str, Any]]) -> None:
    refused = [r for r in all_records if r["capture"] == "net_tcp_refused.pcap"]
    assert len(refused) == len(truth("net_tcp_refused.pcap")) >= 1
    for r in refused:
        assert r["failure"] == "tcp_refused" and r["history"] == "" and r["stage"] == "tcp_syn"
        for name in ("sni", "version", "cipher", "group", "alpn", "ja3", "ja3s", "ja4",
                     "cert_subject", "cert_status", "sni_matches_cert", "tcp_rtt"):
            assert r[name] is None, name
        for name in LIST_FIELDS:
            assert r[name] == [] or name in ("warnings", "anomalies"), name


def test_csv_has_the_same_fields_and_values(tmp_path: Path) -> None:
    target = SAMPLES / "cap_ipv6.pcap"
    as_json = jsonl(invoke("analyze", target, "--format", "jsonl").stdout)
    out = tmp_path / "out.csv"
    result = invoke("analyze", target, "--format", "csv", "-o", out)
    assert result.exit_code == 0 and result.stdout == ""
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))
    header, body = rows[0], rows[1:]
    assert header[: len(SPEC_FIELDS)] == list(SPEC_FIELDS)
    assert header == list(as_json[0])
    assert len(body) == len(as_json) == len(truth("cap_ipv6.pcap"))
    for row, rec in zip(body, as_json, strict=True):
        cells = dict(zip(header, row, strict=True))
        for name in LIST_FIELDS:
            assert json.loads(cells[name]) == rec[name], name  # lists as JSON strings
        assert float(cells["ts"]) == pytest.approx(rec["ts"], abs=1e-6)
        assert int(cells["client_port"]) == rec["client_port"]
        assert cells["sni"] == (rec["sni"] or "")
        assert ":" in cells["client_ip"]  # IPv6 text


def test_readme_field_reference_is_the_record() -> None:
    """README's "Field reference" table names every output column, in output order."""
    from analyzer.record import RECORD_FIELDS

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("\n## Field reference\n", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE)
    assert names == list(RECORD_FIELDS)


def test_csv_to_stdout(all_records: list[dict[str, Any]]) -> None:
    result = invoke("analyze", SAMPLES, "--format", "csv")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == len(all_records)
    assert [r["uid"] for r in rows] == [r["uid"] for r in all_records]


def test_parquet_file_with_list_columns(tmp_path: Path,
                                        all_records: list[dict[str, Any]]) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    out = tmp_path / "out.parquet"
    result = invoke("analyze", SAMPLES, "--format", "parquet", "-o", out)
    assert result.exit_code == 0, result.stderr
    table = pq.read_table(out)
    assert table.num_rows == len(all_records)
    assert set(SPEC_FIELDS) <= set(table.column_names)
    schema = table.schema
    for name in LIST_FIELDS:
        assert pa.types.is_list(schema.field(name).type), name
    assert pa.types.is_struct(schema.field("alerts").type.value_type)
    assert pa.types.is_timestamp(schema.field("ts").type)
    assert schema.field("ts").type.tz in ("UTC", "+00:00")
    uids = table.column("uid").to_pylist()
    assert sorted(uids) == sorted(r["uid"] for r in all_records)
    row = table.slice(uids.index(all_records[0]["uid"]), 1).to_pylist()[0]
    assert row["offered_ciphers"] == all_records[0]["offered_ciphers"]


def test_default_table(all_records: list[dict[str, Any]]) -> None:
    result = invoke("analyze", SAMPLES / "nginx_tls12_ok.pcap")
    assert result.exit_code == 0
    rec = next(r for r in all_records if r["capture"] == "nginx_tls12_ok.pcap")
    assert rec["sni"] in result.stdout and "established" in result.stdout


# -- analyze: filters and exit status ------------------------------------------------------------


def test_only_failed(all_records: list[dict[str, Any]]) -> None:
    result = invoke("analyze", SAMPLES, "--format", "jsonl", "--only-failed")
    assert result.exit_code == 0
    got = {(r["capture"], r["client_port"]) for r in jsonl(result.stdout)}
    want = {(r["capture"], r["client_port"]) for r in all_records
            if r["outcome"] in ("failed", "not_tls") and r["failure"]}
    assert got == want and got
    # the network scenarios' truth: every one of their failed connections is listed
    for m in manifest():
        if m["file"].startswith("net_") and m["outcome"] == "failed":
            assert (m["file"], m["client_port"]) in got


def test_sni_filter(all_records: list[dict[str, Any]]) -> None:
    result = invoke("analyze", SAMPLES, "--format", "jsonl", "--sni", "www.example.com")
    got = jsonl(result.stdout)
    assert result.exit_code == 0 and got
    assert all(r["sni"] == "www.example.com" or r["sni"].endswith(".www.example.com")
               for r in got)
    assert len(got) == sum(1 for r in all_records if r["sni"] == "www.example.com")


def test_server_filter(all_records: list[dict[str, Any]]) -> None:
    ip = truth("net_tcp_refused.pcap")[0]["server_ip"]
    result = invoke("analyze", SAMPLES, "--format", "jsonl", "--server", f"{ip}:8443")
    got = jsonl(result.stdout)
    assert result.exit_code == 0 and got
    assert {(r["server_ip"], r["server_port"]) for r in got} == {(ip, 8443)}
    assert len(got) == sum(1 for r in all_records
                           if (r["server_ip"], r["server_port"]) == (ip, 8443))
    by_name = jsonl(invoke("analyze", SAMPLES, "-f", "jsonl", "--server", "www.example.com"
                           ).stdout)
    assert by_name and all(r["sni"] == "www.example.com" for r in by_name)


def test_fail_on_failure() -> None:
    failed = invoke("analyze", SAMPLES / "net_tcp_refused.pcap", "--fail-on-failure")
    assert failed.exit_code == 1
    fine = invoke("analyze", SAMPLES / "nginx_tls12_ok.pcap", "--fail-on-failure")
    assert fine.exit_code == 0
    plain = invoke("analyze", SAMPLES / "net_tcp_refused.pcap")
    assert plain.exit_code == 0  # failures found are not an error by themselves


# -- bad input: exit 2, one line per problem, good records still written ------------------------


def _one_line_error(stderr: str, *needles: str) -> None:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert "Traceback" not in stderr
    errors = [ln for ln in lines if "error" in ln]
    assert len(errors) == 1, stderr
    for needle in needles:
        assert needle in errors[0], (needle, stderr)


def test_missing_file() -> None:
    result = invoke("analyze", "no/such/file.pcap", "--format", "jsonl")
    assert result.exit_code == 2 and result.stdout == ""
    _one_line_error(result.stderr, "no/such/file.pcap")


def test_not_a_capture() -> None:
    result = invoke("analyze", ROOT / "README.md", "--format", "jsonl")
    assert result.exit_code == 2 and result.stdout == ""
    _one_line_error(result.stderr, "README.md")


def test_garbage_mixed_with_a_good_file(tmp_path: Path) -> None:
    bad = broken_files(tmp_path)
    good = SAMPLES / "cap_ipv6.pcap"
    result = invoke("analyze", bad["garbage"], good, bad["empty"], "--format", "jsonl")
    assert result.exit_code == 2
    got = jsonl(result.stdout)  # the good file's records are all there
    assert sorted((r["capture"], r["client_port"]) for r in got) == sorted(
        (m["file"], m["client_port"]) for m in truth("cap_ipv6.pcap"))
    # (one line per problem: see test_long_problems_stay_on_one_line)
    text = " ".join(result.stderr.split())
    assert "Traceback" not in text and text.count("tlsa: error:") == 2
    assert "garbage.pcap" in text and "empty.pcap" in text


def test_truncated_file_keeps_its_complete_records(tmp_path: Path) -> None:
    cut = broken_files(tmp_path)["truncated"]
    whole = jsonl(invoke("analyze", SAMPLES / "nginx_tls12_ok.pcap", "-f", "jsonl").stdout)
    result = invoke("analyze", cut, SAMPLES / "cap_ipv6.pcap", "--format", "jsonl")
    # A file cut mid-record is readable up to the cut: a one-line warning, not an error.
    assert result.exit_code == 0
    got = jsonl(result.stdout)
    assert {r["capture"] for r in got} == {"cut.pcap", "cap_ipv6.pcap"}
    cut_recs = [r for r in got if r["capture"] == "cut.pcap"]
    assert [r["client_port"] for r in cut_recs] == [r["client_port"] for r in whole]
    assert cut_recs[0]["sni"] == whole[0]["sni"]
    text = " ".join(result.stderr.split())  # one line each: test_long_problems_stay_on_one_line
    assert text.count("tlsa: warning:") == 1 and "cut.pcap" in text and "Traceback" not in text


def test_bad_option() -> None:
    result = invoke("analyze", SAMPLES / "nginx_tls12_ok.pcap", "--no-such-option")
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "--no-such-option" in result.output
    bad_format = invoke("analyze", SAMPLES / "nginx_tls12_ok.pcap", "--format", "xml")
    assert bad_format.exit_code == 2 and "xml" in bad_format.output


# -- show and summary ------------------------------------------------------------------------


def test_show_uid(all_records: list[dict[str, Any]]) -> None:
    rec = next(r for r in all_records if r["capture"] == "net_tcp_refused.pcap")
    result = invoke("show", rec["uid"], SAMPLES / "net_tcp_refused.pcap")
    assert result.exit_code == 0
    out = result.stdout
    assert rec["uid"] in out
    assert f"{rec['client_ip']}:{rec['client_port']}" in out
    assert "failed" in out and rec["failure"] in out and rec["failure_side"] in out
    assert "SYN" in out and "RST" in out  # the timeline
    assert "net_tcp_refused.pcap" in out
    missing = invoke("show", "Cnosuchuid", SAMPLES / "net_tcp_refused.pcap")
    assert missing.exit_code != 0 and "Traceback" not in missing.output


def test_summary_json(all_records: list[dict[str, Any]]) -> None:
    result = invoke("summary", SAMPLES, "--format", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["connections"] == len(all_records)
    assert data["outcomes"] == dict(Counter(r["outcome"] for r in all_records))
    failures = {f["failure"]: f["count"] for f in data["failures"]}
    assert failures == dict(Counter(r["failure"] for r in all_records if r["failure"]))
    captures = {r["capture"] for r in all_records}
    assert captures <= set(data["captures"])


def test_summary_table() -> None:
    result = invoke("summary", SAMPLES / "net_tcp_refused.pcap")
    assert result.exit_code == 0
    n = len(truth("net_tcp_refused.pcap"))
    assert f"{n} TLS connections" in result.stdout and "tcp_refused" in result.stdout


# -- the console entry point (what a user runs) ---------------------------------------------


def test_main_success(monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(monkeypatch, capsys, "analyze", SAMPLES / "cap_ipv6.pcap",
                              "-f", "jsonl")
    assert code == 0 and len(jsonl(out)) == len(truth("cap_ipv6.pcap"))
    assert "Traceback" not in err


def test_main_bad_usage_is_not_an_internal_error(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run_main(monkeypatch, capsys, "analyze", "--no-such-option",
                               SAMPLES / "nginx_tls12_ok.pcap")
    assert code == 2 and "Traceback" not in err and "--no-such-option" in err
    code, _out, err = run_main(monkeypatch, capsys, "analyze", "-f", "parquet",
                               SAMPLES / "nginx_tls12_ok.pcap")
    assert code == 2 and "needs -o" in err and len(err.strip().splitlines()) == 1


def test_main_usage_error_wording(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    _code, _out, err = run_main(monkeypatch, capsys, "analyze", "--no-such-option",
                                SAMPLES / "nginx_tls12_ok.pcap")
    assert "internal error" not in err


def test_main_exit_status(monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run_main(monkeypatch, capsys, "analyze", "no/such/file.pcap")
    assert "no/such/file.pcap" in err
    assert code == 2
    code, _out, _err = run_main(monkeypatch, capsys, "analyze", SAMPLES / "net_tcp_refused.pcap",
                                "--fail-on-failure")
    assert code == 1


def test_long_problems_stay_on_one_line(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    deep = tmp_path / ("a-rather-long-directory-name-" * 3)
    deep.mkdir()
    bad = broken_files(deep)
    code, out, err = run_main(monkeypatch, capsys, "analyze", bad["garbage"], bad["truncated"],
                              deep / "missing.pcap", "-f", "jsonl")
    assert code == 2 and jsonl(out)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 3, err
    assert all(ln.startswith(("tlsa: error:", "tlsa: warning:")) for ln in lines), err


def test_real_subprocess() -> None:
    done = subprocess_tlsa("analyze", SAMPLES / "cap_ipv6.pcap", SAMPLES / "net_tcp_refused.pcap",
                           "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    got = jsonl(done.stdout)
    want = truth("cap_ipv6.pcap") + truth("net_tcp_refused.pcap")
    assert sorted((r["capture"], r["client_port"]) for r in got) == sorted(
        (m["file"], m["client_port"]) for m in want)
    assert all(list(r)[: len(SPEC_FIELDS)] == list(SPEC_FIELDS) for r in got)
    assert "Traceback" not in done.stderr
    bad = subprocess_tlsa("analyze", "--no-such-option", SAMPLES / "cap_ipv6.pcap")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_real_subprocess_unreadable_input() -> None:
    done = subprocess_tlsa("analyze", ROOT / "README.md", SAMPLES / "cap_ipv6.pcap", "-f", "jsonl")
    assert len(jsonl(done.stdout)) == len(truth("cap_ipv6.pcap"))  # good records still written
    assert "Traceback" not in done.stderr
    assert done.returncode == 2


"""Key log options of the command line and the secrets written into captures, on the
keyed sample captures (their clients' own key logs, ``sample_pcaps/keys/``).

- ``--keylog`` on analyze, summary, report and show decrypts; an unreadable key log is a
  one-line error (exit 2); malformed lines are one-line warnings that never quote a line;
  ``--embed-secrets`` without a capture to write is bad usage.
- :mod:`analyzer.export.secrets`: the lines written are those the key log reads back
  (round trip), only for the client randoms asked; the Decryption Secrets Block goes
  right after the Section Header Block in that section's byte order (tshark and our
  reader read it back, big-endian sections included); a stream that is not pcapng, or
  any bytes at all, gives a one-line problem, never an exception.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from analyzer import cli
from analyzer.export.secrets import (
    embed_in_file,
    insert_secrets,
    key_log_lines,
    secrets_block,
    secrets_lines,
)
from analyzer.sources import CaptureReader
from analyzer.tls.keylog import KeyLog

SAMPLES = Path(__file__).resolve().parents[1] / "sample_pcaps"
GNUTLS = SAMPLES / "keyed_gnutls_tls13_expired.pcap"
GNUTLS_KEYS = SAMPLES / "keys" / "keyed_gnutls_tls13_expired.keys"
CA = SAMPLES / "test-ca.pem"
runner = CliRunner()

pytestmark = pytest.mark.skipif(not GNUTLS_KEYS.exists(), reason="keyed samples missing")


def invoke(*args: str | Path) -> tuple[int, str, str]:
    done = runner.invoke(cli.app, [str(a) for a in args], env={"COLUMNS": "250"})
    return done.exit_code, done.stdout, done.stderr


def tlsa(*args: str | Path) -> tuple[int, str, str]:
    """The real entry point, as a process (one-line errors come from ``cli.main``)."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "analyzer", *map(str, args)], cwd=root,
                          env=dict(os.environ, PYTHONPATH=str(root)), capture_output=True,
                          text=True, check=False, timeout=120)
    return done.returncode, done.stdout, done.stderr


def test_analyze_with_the_key_log_decrypts_and_says_so() -> None:
    code, out, err = invoke("analyze", GNUTLS, "--ca-bundle", CA, "-f", "jsonl",
                            "--keylog", GNUTLS_KEYS)
    assert code == 0, err
    (record,) = [json.loads(line) for line in out.splitlines()]
    assert (record["failure"], record["inferred"], record["decrypted"]) == (
        "certificate_expired", False, ["client", "server"])
    assert "tlsa: key log: decrypted 1 of 1 TLS connection" in err
    code, out, _ = invoke("analyze", GNUTLS, "--ca-bundle", CA, "-f", "jsonl")
    assert json.loads(out)["inferred"] is True


@pytest.mark.parametrize("command", ["summary", "report", "show"])
def test_every_reading_command_takes_the_key_log(command: str, tmp_path: Path) -> None:
    args: list[str | Path] = [command, GNUTLS, "--keylog", GNUTLS_KEYS, "--ca-bundle", CA]
    if command == "report":
        args += ["-o", tmp_path]
    if command == "show":
        uid = json.loads(invoke("analyze", GNUTLS, "-f", "jsonl")[1])["uid"]
        args.insert(1, uid)
    code, out, err = invoke(*args)
    assert code == 0, err
    assert "decrypted 1 of 1" in err
    shown = out + ((tmp_path / "index.html").read_text() if command == "report" else "")
    assert "certificate_expired" in shown


def test_an_unreadable_key_log_is_a_one_line_error(tmp_path: Path) -> None:
    code, _, err = tlsa("analyze", GNUTLS, "--keylog", tmp_path / "absent.keys")
    assert code == 2
    assert err.strip().startswith("tlsa: error: --keylog") and "no such file" in err
    assert len(err.strip().splitlines()) == 1


def test_malformed_lines_are_warnings_that_never_quote_them(tmp_path: Path) -> None:
    good = GNUTLS_KEYS.read_text().splitlines()
    secret = good[0].split()[2]
    bad = tmp_path / "bad.keys"
    bad.write_text(f"{good[0].split()[0]} {good[0].split()[1]} {secret[:-3]}\n"
                   f"garbage {secret}\n" + "\n".join(good[1:]) + "\n")
    code, _, err = invoke("analyze", GNUTLS, "-f", "jsonl", "--keylog", bad)
    assert code == 0
    warnings = [line for line in err.splitlines() if line.startswith("tlsa: warning: key log")]
    assert len(warnings) == 2 and all("bad.keys line" in w for w in warnings)
    assert secret not in err and secret[:-3] not in err


def test_embed_secrets_needs_a_capture_to_write() -> None:
    code, _, err = tlsa("analyze", GNUTLS, "--embed-secrets")
    assert code == 2 and "--extract" in err
    code, _, err = tlsa("live", "-i", "lo", "--embed-secrets")
    assert code == 2 and "--write" in err


def test_key_log_lines_round_trip_for_the_randoms_asked_only() -> None:
    keylog = KeyLog.from_files([GNUTLS_KEYS])
    random_hex = GNUTLS_KEYS.read_text().split()[1].lower()
    other = "ab" * 32
    lines, count = key_log_lines(keylog, [random_hex, None, "zz", other, random_hex])
    assert count == 1
    back = KeyLog()
    back.add_text(lines.decode(), source="round trip")
    assert back.warnings == [] and len(back) == 1
    assert back.lookup(bytes.fromhex(random_hex)) == keylog.lookup(bytes.fromhex(random_hex))
    wanted = {line.lower() for line in GNUTLS_KEYS.read_text().splitlines()
              if line.split()[0] in ("CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                                     "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                                     "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0")}
    assert {line.lower() for line in lines.decode().splitlines()} == wanted
    secrets = keylog.lookup(bytes.fromhex(random_hex))
    assert secrets is not None and secrets_lines(bytes.fromhex(random_hex), secrets) == lines


def _with_secrets(src: bytes, lines: bytes) -> bytes:
    out = io.BytesIO()
    assert insert_secrets(io.BytesIO(src), out, lines) is None
    return out.getvalue()


def test_the_secrets_block_comes_first_and_tshark_decrypts_with_it(tmp_path: Path) -> None:
    """editcap turns the sample into pcapng; our block inserted after its SHB lets tshark
    decrypt the TLS 1.3 Certificate with nothing else given."""
    pcapng = tmp_path / "plain.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(GNUTLS), str(pcapng)], check=True)
    lines = GNUTLS_KEYS.read_bytes()
    keyed = tmp_path / "keyed.pcapng"
    keyed.write_bytes(pcapng.read_bytes())
    assert embed_in_file(keyed, lines) is None
    data = keyed.read_bytes()
    shb = struct.unpack_from("<I", data, 4)[0]
    assert struct.unpack_from("<II", data, shb)[0] == 0x0A
    shown = subprocess.run(["tshark", "-n", "-r", str(keyed), "-Y", "tls.handshake.type == 11"],
                           capture_output=True, text=True, check=True).stdout
    assert shown.strip()
    sink = KeyLog()
    frames = list(CaptureReader(keyed, secrets=sink))
    assert len(frames) == len(list(CaptureReader(pcapng))) and len(sink) == 1


def test_a_big_endian_section_gets_a_big_endian_block() -> None:
    shb_body = struct.pack(">IHHq", 0x1A2B3C4D, 1, 0, -1)
    shb = struct.pack(">II", 0x0A0D0D0A, 12 + len(shb_body)) + shb_body + struct.pack(
        ">I", 12 + len(shb_body))
    data = _with_secrets(shb + b"REST", b"CLIENT_RANDOM x y\n")
    assert data[len(shb):].startswith(struct.pack(">II", 0x0A, 20 + 20))
    assert data.endswith(b"REST")
    assert secrets_block(b"abc", ">")[8:12] == struct.pack(">I", 0x544C534B)


def test_a_capture_that_is_not_pcapng_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    out = io.BytesIO()
    assert "not a pcapng" in (insert_secrets(io.BytesIO(GNUTLS.read_bytes()), out, b"x") or "")
    assert out.getvalue() == b""
    assert embed_in_file(tmp_path / "absent.pcapng", b"x") is not None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_give_a_copy_or_a_problem(data: bytes) -> None:
    out = io.BytesIO()
    problem = insert_secrets(io.BytesIO(data), out, b"CLIENT_RANDOM a b\n")
    assert problem is None or (isinstance(problem, str) and out.getvalue() == b"")

"""pcapng Decryption Secrets Blocks (draft-ietf-opsawg-pcapng §4.7) reach the secrets sink.

Hand-built files in both byte orders: a TLS key log block between packets is handed over
when the reading reaches it (before the packets after it), other secrets types and files
read without a sink skip it, an oversized or inconsistent block is reported and the
packets around it still come. The real-software counterpart (``editcap
--inject-secrets``) is in ``tests/test_decrypt_real.py``.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.anomalies import Anomaly
from analyzer.sources import CaptureReader
from analyzer.tls.keylog import KeyLog, Secrets
from tests.test_sources import block, epb, idb, pad4, shb

RANDOM = bytes(range(32))
MASTER = bytes(range(48))
KEYLOG_TEXT = f"CLIENT_RANDOM {RANDOM.hex()} {MASTER.hex()}\n"
TLSK = 0x544C534B
WIREGUARD = 0x57474B4C


def dsb(order: str, kind: int, secrets: bytes, *, claimed: int | None = None) -> bytes:
    """A Decryption Secrets Block: secrets type, secrets length, data padded to 4 bytes."""
    size = len(secrets) if claimed is None else claimed
    return block(order, 0x0000000A, struct.pack(order + "II", kind, size) + pad4(secrets))


class Recorder:
    """A secrets sink that notes what it got and how many packets had come before."""

    def __init__(self, reader: list[CaptureReader]) -> None:
        self.reader = reader
        self.calls: list[tuple[str, str, int]] = []

    def add_text(self, text: str, *, source: str) -> int:
        self.calls.append((text, source, self.reader[0].packets))
        return 0


def capture(tmp_path: Path, order: str, *middle: bytes) -> Path:
    path = tmp_path / "s.pcapng"
    path.write_bytes(shb(order) + idb(order, 1) + epb(order, 0, 1, b"\x00" * 60)
                     + b"".join(middle) + epb(order, 0, 2, b"\x01" * 60))
    return path


@pytest.mark.parametrize("order", ["<", ">"])
def test_a_tls_key_log_block_reaches_the_sink_before_the_packets_after_it(
    tmp_path: Path, order: str
) -> None:
    text = KEYLOG_TEXT.encode() + b"# three bytes of padding follow"
    path = capture(tmp_path, order, dsb(order, TLSK, text))
    holder: list[CaptureReader] = []
    sink = Recorder(holder)
    reader = CaptureReader(path, secrets=sink)
    holder.append(reader)
    frames = list(reader)
    assert len(frames) == 2 and reader.anomalies == []
    offset = len(shb(order) + idb(order, 1) + epb(order, 0, 1, b"\x00" * 60))
    assert sink.calls == [(text.decode(), f"{path}, secrets block at offset {offset}", 1)]


def test_a_key_log_sink_gets_the_secrets(tmp_path: Path) -> None:
    path = capture(tmp_path, "<", dsb("<", TLSK, KEYLOG_TEXT.encode()))
    keylog = KeyLog()
    assert len(list(CaptureReader(path, secrets=keylog))) == 2
    assert keylog.lookup(RANDOM) == Secrets(master_secret=MASTER)
    assert keylog.warnings == []


def test_other_secrets_types_and_readers_without_a_sink_skip_the_block(tmp_path: Path) -> None:
    path = capture(tmp_path, "<", dsb("<", WIREGUARD, b"LK7p1b2k=" * 4),
                   dsb("<", TLSK, KEYLOG_TEXT.encode()))
    keylog = KeyLog()
    assert len(list(CaptureReader(path, secrets=keylog))) == 2
    assert len(keylog) == 1
    plain = CaptureReader(path)
    assert len(list(plain)) == 2 and plain.anomalies == []


def test_an_oversized_block_is_skipped_and_reported(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("analyzer.sources.pcapng.MAX_SECRETS_BLOCK", 64)
    path = capture(tmp_path, "<", dsb("<", TLSK, KEYLOG_TEXT.encode()))
    keylog = KeyLog()
    reader = CaptureReader(path, secrets=keylog)
    assert len(list(reader)) == 2 and len(keylog) == 0
    assert [a for a, _ in reader.anomalies] == [Anomaly.SECRETS_BLOCK_SKIPPED]
    assert "more than 64; skipped" in reader.anomalies[0][1]


def test_a_secrets_length_beyond_the_block_is_reported(tmp_path: Path) -> None:
    path = capture(tmp_path, "<", dsb("<", TLSK, KEYLOG_TEXT.encode(), claimed=4000),
                   block("<", 0x0000000A, b"\x00\x00"))
    keylog = KeyLog()
    reader = CaptureReader(path, secrets=keylog)
    assert len(list(reader)) == 2 and len(keylog) == 0
    assert [a for a, _ in reader.anomalies] == [Anomaly.SECRETS_BLOCK_SKIPPED] * 2
    assert "claims 4000 bytes of secrets" in reader.anomalies[0][1]
    assert "too short" in reader.anomalies[1][1]


@settings(max_examples=60)
@given(st.integers(0, 10_000), st.binary(max_size=64))
def test_any_cut_or_garbage_never_raises(cut: int, garbage: bytes) -> None:
    import tempfile

    data = (shb("<") + idb("<", 1) + dsb("<", TLSK, KEYLOG_TEXT.encode() + garbage)
            + epb("<", 0, 2, b"\x01" * 60))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.pcapng"
        path.write_bytes(data[: cut % (len(data) + 1)])
        keylog = KeyLog()
        reader = CaptureReader(path, secrets=keylog)
        list(reader)
        assert len(keylog) <= 1

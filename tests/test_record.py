"""``analyzer.record.evolve``: the copy-with-changes every diagnosis makes, checked
against :func:`dataclasses.replace` on real records (the sample captures)."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

from analyzer.api import analyze
from analyzer.record import HandshakeRecord, evolve

SAMPLES = Path(__file__).resolve().parents[1] / "sample_pcaps"
NAMES = tuple(f.name for f in dataclasses.fields(HandshakeRecord))


@pytest.fixture(scope="module")
def records() -> list[HandshakeRecord]:
    return [r for name in ("nginx_tls13_ok.pcap", "nginx_cipher_mismatch.pcap",
                           "squid_connect_denied_403.pcap")
            for r in analyze(SAMPLES / name)]


def test_evolve_is_replace(records: list[HandshakeRecord]) -> None:
    for i, r in enumerate(records):
        changes = {"outcome": "failed", "reason": f"because {i}", "warnings": ["x"],
                   NAMES[i % len(NAMES)]: None, "cert_chain": (b"\x30",)}
        new = evolve(r, **changes)
        assert new == dataclasses.replace(r, **changes)
        assert type(new) is HandshakeRecord
        assert new.reason == f"because {i}" and r.reason != f"because {i}"  # a copy
        assert pickle.loads(pickle.dumps(new)) == new
        assert evolve(r) == r and evolve(r) is not r


def test_evolve_refuses_unknown_fields_and_stays_frozen(records: list[HandshakeRecord]) -> None:
    with pytest.raises(TypeError, match="no field 'outcom'"):
        evolve(records[0], outcom="failed")
    with pytest.raises(dataclasses.FrozenInstanceError):
        evolve(records[0]).outcome = "failed"  # type: ignore[misc]

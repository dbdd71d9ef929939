"""``analyzer.record.evolve``: the copy-with-changes every diagnosis makes, checked
against :func:`dataclasses.replace` on real records (the sample captures); and
``new_record``, the engine's constructor, against ``HandshakeRecord(**fields)``; the uid's
base 32 against ``base64``."""

from __future__ import annotations

import base64
import dataclasses
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.api import analyze
from analyzer.handshake.build import new_record
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


def test_new_record_is_the_constructor(records: list[HandshakeRecord]) -> None:
    required = [f.name for f in dataclasses.fields(HandshakeRecord)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    for i, r in enumerate(records):
        full = {name: getattr(r, name) for name in NAMES}
        assert new_record(full) == HandshakeRecord(**full) == r
        # Only the required fields (and one optional): defaults and factories as there.
        some = {name: full[name] for name in required} | {NAMES[-1 - i]: full[NAMES[-1 - i]]}
        built, expected = new_record(dict(some)), HandshakeRecord(**some)
        assert built == expected
        assert pickle.loads(pickle.dumps(built)) == built
        again = new_record(dict(some))
        for f in dataclasses.fields(HandshakeRecord):  # a new list each time, as there
            if f.default_factory is not dataclasses.MISSING and f.name not in some:
                assert getattr(built, f.name) is not getattr(again, f.name)


def test_new_record_refuses_unknown_and_missing_fields(records: list[HandshakeRecord]) -> None:
    full = {name: getattr(records[0], name) for name in NAMES}
    with pytest.raises(TypeError, match="no field 'outcom'"):
        new_record(full | {"outcom": "failed"})
    del full["uid"]
    with pytest.raises(TypeError, match="needs the field 'uid'"):
        new_record(full)
    with pytest.raises(dataclasses.FrozenInstanceError):
        new_record({name: getattr(records[0], name) for name in NAMES}).outcome = "x"  # type: ignore[misc]


@settings(max_examples=300)
@given(st.binary(min_size=0, max_size=40).map(lambda b: b[: len(b) // 5 * 5]))
def test_uid_base32_is_rfc4648(digest: bytes) -> None:
    from analyzer.handshake.build import _base32

    assert _base32(digest) == base64.b32encode(digest).decode().lower()


def test_uids_as_before() -> None:
    from analyzer.handshake.build import make_uid

    # Pinned: what the first version (base64.b32encode of the BLAKE2b digest) wrote for
    # this capture name, 4-tuple and first packet time; uids must not change.
    key = (bytes([10, 0, 0, 1]), 50000, bytes([10, 0, 0, 2]), 443)
    assert make_uid("x.pcap", key, 1.5) == "C4tkam3g2uledioq7"

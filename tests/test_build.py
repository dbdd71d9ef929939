"""The optional compiled build (analyzer/_build.py): which one is imported, and the pure
switch. The parser, engine and golden-output tests run on both builds (``make test``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pytest import MonkeyPatch

import analyzer
from analyzer import _build

_PROBE = (
    "import json, analyzer, analyzer.engine.engine as e, analyzer.tls.hello as h;"
    "print(json.dumps([analyzer.COMPILED, e.__file__, h.__file__]))"
)


def _probe(**env: str) -> tuple[bool, str, str]:
    environ = {k: v for k, v in os.environ.items() if k != "TLSA_PURE"}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env={**environ, **env}, check=True,
        capture_output=True, text=True,
    ).stdout
    compiled, engine, hello = json.loads(out)
    return compiled, engine, hello


def test_pure_switch_imports_the_sources() -> None:
    compiled, engine, hello = _probe(TLSA_PURE="1")
    assert compiled is False
    assert engine.endswith("engine.py") and hello.endswith("hello.py")


def test_the_build_in_place_is_used_whole_or_not_at_all() -> None:
    compiled, engine, hello = _probe()
    assert compiled is _build.built()
    suffix = ".py" if not compiled else ".so"
    assert engine.endswith(suffix) and hello.endswith(suffix)


def test_this_process_matches_its_flag() -> None:
    import analyzer.flows.tcp as tcp

    assert tcp.__file__ is not None
    assert tcp.__file__.endswith(".so") is analyzer.COMPILED
    if os.environ.get("TLSA_PURE"):
        assert not analyzer.COMPILED


def test_a_changed_source_makes_the_build_stale(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    hashes = _build.source_hashes()
    assert set(hashes) == set(_build.COMPILED_MODULES)
    stamp = tmp_path / "_native.json"
    monkeypatch.setattr(_build, "STAMP", str(stamp))
    assert not _build.built()  # no build
    stamp.write_text(json.dumps(hashes))
    assert _build.built()
    stamp.write_text(json.dumps({**hashes, "analyzer.flows.tcp": "0" * 64}))
    assert not _build.built()  # tcp.py changed since the build

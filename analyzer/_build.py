"""Which modules the optional compiled build covers, and the switch back to pure Python.

The modules of :data:`COMPILED_MODULES` may be compiled by mypyc (``setup.py``) into
extension modules beside their ``.py`` files. Python prefers an extension module to a
source file, so the compiled build is used whenever its files are there, except:

* ``TLSA_PURE=1`` in the environment: the pure-Python sources are imported (CI runs the
  parser, engine and golden-output tests this way);
* a build made from other sources than the ones there now (a source edited or checked out
  since, per the hashes the build wrote in ``_native.json``): all of the compiled modules
  are left aside, never a mix of stale compiled code and new sources.

Either way the package imports the ``.py`` files through :class:`SourceOnly`.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

GROUP = "analyzer._native"
"""The compiled modules' shared library (``analyzer/_native__mypyc.*.so``)."""

COMPILED_MODULES = (
    "analyzer.decode.frames",
    "analyzer.decode.icmp",
    "analyzer.decode.types",
    "analyzer.engine.engine",
    "analyzer.flows.connection",
    "analyzer.flows.reassembly",
    "analyzer.flows.table",
    "analyzer.flows.tcp",
    "analyzer.handshake.build",
    "analyzer.handshake.core",
    "analyzer.handshake.machine",
    "analyzer.scale.shard",
    "analyzer.sources.pcap",
    "analyzer.sources.pcapng",
    "analyzer.tls.cursor",
    "analyzer.tls.events",
    "analyzer.tls.handshake",
    "analyzer.tls.hello",
    "analyzer.tls.messages",
    "analyzer.tls.records",
    "analyzer.tls.stream",
)

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAMP = os.path.join(_ROOT, "analyzer", "_native.json")
"""Written by the build: the SHA-256 of each compiled module's source, as compiled."""


def source_hashes(root: str = _ROOT) -> dict[str, str]:
    """The SHA-256 of each compiled module's source file under ``root``."""
    out: dict[str, str] = {}
    for module in COMPILED_MODULES:
        with open(os.path.join(root, *module.split(".")) + ".py", "rb") as f:
            out[module] = hashlib.sha256(f.read()).hexdigest()
    return out


def built() -> bool:
    """Whether the compiled modules are there and were compiled from the sources as they
    are now (an edited or checked-out source makes the build stale)."""
    try:
        with open(STAMP, encoding="utf-8") as f:
            stamp = json.load(f)
        return bool(stamp == source_hashes())
    except (OSError, ValueError):
        return False


class SourceOnly:
    """A meta path finder that imports ``analyzer.*`` from ``.py`` files only."""

    def __init__(self) -> None:
        self._finders: dict[str, importlib.machinery.FileFinder] = {}

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if not name.startswith("analyzer.") or path is None:
            return None
        for entry in path:
            finder = self._finders.get(entry)
            if finder is None:
                finder = importlib.machinery.FileFinder(
                    entry,
                    (importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES),
                )
                self._finders[entry] = finder
            spec = finder.find_spec(name, target)
            if spec is not None and spec.loader is not None:
                return spec
        return None


def choose() -> bool:
    """Decide, once, before any hot-path module is imported; True when compiled."""
    if any(isinstance(f, SourceOnly) for f in sys.meta_path):
        return False
    if not os.environ.get("TLSA_PURE") and built():
        return True
    # Just before the path finder, which would find the compiled modules: finders that
    # wrap others (atheris' instrumenting one) still come first and see the sources.
    finders = sys.meta_path
    where = next(
        (i for i, f in enumerate(finders) if f is importlib.machinery.PathFinder), len(finders)
    )
    finders.insert(where, SourceOnly())
    return False


COMPILED = choose()

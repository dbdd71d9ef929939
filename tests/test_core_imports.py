"""The core stays free of the edges (STYLE: imports flow one way)."""

from __future__ import annotations

import subprocess
import sys

EDGE_LIBRARIES = ("pyshark", "pandas", "matplotlib", "rich", "typer", "dask")


def test_core_and_file_source_import_no_edge_library() -> None:
    code = (
        "import sys\n"
        "import analyzer.sources, analyzer.decode, analyzer.flows, analyzer.tls,"
        " analyzer.engine.engine, analyzer.diagnosis, analyzer.api\n"
        f"print(','.join(m for m in {EDGE_LIBRARIES!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"core imports pulled in: {out}"


def test_package_import_is_light() -> None:
    code = (
        "import sys, analyzer\n"
        "print(','.join(m for m in ('pandas', 'matplotlib', 'pyshark', 'cryptography')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""

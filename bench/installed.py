"""Measure tlsa as an installed package runs: from compiled bytecode.

What it does: :func:`as_installed` removes ``PYTHONDONTWRITEBYTECODE`` from this process's
environment (every measured command inherits it) and compiles the given source trees'
bytecode once, as ``pip install`` does. Without it, an environment that sets the variable
makes every measured ``tlsa`` process compile some 90 modules from source first (about
0.15 s of CPU a process), which is not what users run.

What it does not do: compile anything with a C compiler, or touch the installed package.
"""

from __future__ import annotations

import compileall
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def as_installed(*trees: Path) -> None:
    """Bytecode for ``trees`` (default: this checkout's ``analyzer/``), and child
    processes that read it."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    for tree in trees or (ROOT / "analyzer",):
        compileall.compile_dir(tree, quiet=1)

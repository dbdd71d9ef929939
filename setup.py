"""Build hook: compiles the packet hot path with mypyc, or leaves the package pure Python.

``TLSA_COMPILE=1`` compiles (and fails loudly if it cannot), ``TLSA_COMPILE=0`` never
compiles, and the default (``auto``) compiles when mypyc is importable and a C compiler
and the Python headers are present. ``make install`` builds the modules in place
(``setup.py build_ext --inplace``): the ``.so`` files sit beside the ``.py`` files of
the editable tree. Without them, or with ``TLSA_PURE=1``, or when a source differs from
the one compiled (hashes in ``analyzer/_native.json``), the package runs as pure Python
(see ``analyzer/_build.py``).
"""

from __future__ import annotations

import ast
import os
import shutil
import sysconfig

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


def _constants() -> dict[str, object]:
    """COMPILED_MODULES and GROUP of analyzer/_build.py, read without importing the
    package (its dependencies need not be installed when this runs)."""
    with open(os.path.join(HERE, "analyzer", "_build.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    found: dict[str, object] = {}
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id in ("COMPILED_MODULES", "GROUP"):
            assert node.value is not None
            found[target.id] = ast.literal_eval(node.value)
    return found


def _can_compile() -> bool:
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    include = sysconfig.get_paths().get("include", "")
    return shutil.which(cc) is not None and os.path.exists(os.path.join(include, "Python.h"))


def ext_modules() -> list[object]:
    mode = os.environ.get("TLSA_COMPILE", "auto")
    if mode == "0":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        if mode == "1":
            raise
        return []
    if mode != "1" and not _can_compile():
        return []
    const = _constants()
    modules = const["COMPILED_MODULES"]
    assert isinstance(modules, tuple)
    paths = [os.path.join("analyzer", *m.split(".")[1:]) + ".py" for m in modules]
    return list(mypycify(paths, opt_level="3", group_name=str(const["GROUP"])))


class BuildExt(build_ext):
    """build_ext that also writes ``analyzer/_native.json``: the hashes of the sources it
    compiled, which the package checks before it uses the compiled modules."""

    def run(self) -> None:
        if not self.extensions:  # a pure build (e.g. pip's own) leaves a compiled one be
            super().run()
            return
        stamp = os.path.join(HERE, "analyzer", "_native.json")
        if self.inplace and os.path.exists(stamp):
            os.remove(stamp)  # a build that fails half-way leaves the package pure
        super().run()
        import hashlib
        import json

        const = _constants()
        modules = const["COMPILED_MODULES"]
        assert isinstance(modules, tuple)
        hashes = {}
        for module in modules:
            with open(os.path.join(HERE, *module.split(".")) + ".py", "rb") as f:
                hashes[module] = hashlib.sha256(f.read()).hexdigest()
        where = os.path.join(HERE if self.inplace else self.build_lib, "analyzer")
        os.makedirs(where, exist_ok=True)
        with open(os.path.join(where, "_native.json"), "w", encoding="utf-8") as f:
            json.dump(hashes, f, indent=1, sort_keys=True)


setup(ext_modules=ext_modules(), cmdclass={"build_ext": BuildExt})

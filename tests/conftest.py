"""Fixtures shared by the test modules that drive real servers and clients."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from scenarios.base import Ctx

SAMPLES = Path(__file__).resolve().parents[1] / "sample_pcaps"


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Ctx]:
    """A lab (client and server namespaces, a fresh PKI) with the sample scenarios'
    helpers for servers, clients and capture; everything started is stopped after."""
    if str(SAMPLES) not in sys.path:
        sys.path.insert(0, str(SAMPLES))
    from scenarios.base import Ctx

    from tests.harness import Lab, TestPKI

    pki = TestPKI(tmp_path / "pki")
    with Lab() as lab:
        c = Ctx("lab", lab, pki, tmp_path, tmp_path / "out.pcap")
        with c.stack:
            yield c

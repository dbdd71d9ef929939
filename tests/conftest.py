"""Fixtures shared by the test modules that drive real servers and clients."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

if TYPE_CHECKING:
    from scenarios.base import Ctx

SAMPLES = Path(__file__).resolve().parents[1] / "sample_pcaps"

# No per-example deadline: the properties check what the code returns, not how fast; on a
# machine busy with other work one example can take 100x its usual time (a followed key
# log's property took 746 ms once, 1 ms when Hypothesis replayed it) and fail as flaky.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


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

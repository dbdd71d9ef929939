"""One small harness for everything that needs real servers and real packets.

Used by ``sample_pcaps/generate.py``, the generator test, live-capture tests and the
benchmark corpus: private network namespaces (``netns``), tcpdump capture and a TCP
connection lister (``capture``), daemon lifecycle with generated configs (``servers``) and
a throw-away PKI (``pki``). Needs root; ``missing_requirements`` says what is absent so
tests can skip with a reason.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable

from tests.harness.capture import Capture, Connection, port_filter, tcp_connections
from tests.harness.netns import Addr, Lab, Netns, Run
from tests.harness.pki import CertFiles, LeafKind, TestPKI
from tests.harness.servers import Server

BASE_TOOLS = ("ip", "iptables", "ethtool", "tcpdump", "tshark", "editcap", "openssl", "curl")


def missing_requirements(tools: Iterable[str] = BASE_TOOLS) -> str | None:
    """Why namespace scenarios cannot run here (not root, a tool missing), or None."""
    if os.geteuid() != 0:
        return "needs root for network namespaces, iptables and tcpdump"
    absent = [t for t in tools if shutil.which(t) is None]
    if absent:
        return "missing tools: " + ", ".join(absent)
    return None


__all__ = [
    "BASE_TOOLS", "Addr", "Capture", "CertFiles", "Connection", "Lab", "LeafKind", "Netns",
    "Run", "Server", "TestPKI", "missing_requirements", "port_filter", "tcp_connections",
]

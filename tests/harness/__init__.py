"""One small harness for everything that needs real servers and real packets.

Used by ``sample_pcaps/generate.py``, the generator test, live-capture tests and the
benchmark corpus: private network namespaces (``netns``), tcpdump capture and a TCP
connection lister (``capture``), daemon lifecycle with generated configs (``servers``) and
a throw-away PKI (``pki``). Needs root; ``missing_requirements`` says what is absent so
tests can skip with a reason.

Typical use::

    pki = TestPKI(tmp / "pki")
    with Lab() as lab:                                   # client 10.99.0.2, server 10.99.0.1
        cert = pki.server("www.example.com")
        srv = servers.nginx(lab.server, tmp / "nginx", f"server {{ listen 443 ssl; "
                            f"ssl_certificate {cert.chain}; ssl_certificate_key {cert.key}; }}",
                            ports=[443])
        with Capture(lab.client, tmp / "x.pcap", bpf=port_filter([443])):
            run = lab.client.run(["curl", "-sk", "https://10.99.0.1/"])
        srv.stop()
    conns = tcp_connections(tmp / "x.pcap")              # in SYN order
"""

from __future__ import annotations

import os
import shutil
import subprocess
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
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True,
                           check=False)
    if probe.returncode != 0:
        return f"cannot create network namespaces here: {probe.stderr.strip()}"
    return None


__all__ = [
    "BASE_TOOLS", "Addr", "Capture", "CertFiles", "Connection", "Lab", "LeafKind", "Netns",
    "Run", "Server", "TestPKI", "missing_requirements", "port_filter", "tcp_connections",
]

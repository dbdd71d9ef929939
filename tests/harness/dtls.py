"""DTLS peers and captures for the DTLS tests: UDP servers in a namespace, the datagrams
of a capture grouped by association, and tshark's reading of the same capture.

- :func:`udp_server` starts a daemon (``openssl s_server -dtls1_2``, ``gnutls-serv --udp``,
  ``ocserv``) and waits until it has bound its UDP port.
- :func:`associations` reads a capture into one list of datagrams per UDP 4-tuple, each
  marked with whether the given client address sent it (the scenario says who the client
  is, never our parser).
- :func:`tshark_dtls` lists tshark's DTLS fields per frame: the second opinion on facts.
- :func:`s_server` and :func:`s_client` are the OpenSSL DTLS peers' command lines
  (``DTLS_PORT``, ``DTLS_SNI``, the test PKI's chain and root).
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dpkt

from tests.harness.capture import packets
from tests.harness.netns import Netns
from tests.harness.pki import LeafKind, TestPKI
from tests.harness.servers import Server, ServerError

START_TIMEOUT = 10.0
DTLS_PORT = 4433
DTLS_SNI = "dtls.example.com"


def s_server(pki: TestPKI, *args: str, kind: LeafKind = LeafKind.GOOD) -> list[str]:
    """``openssl s_server`` for one DTLS association on ``DTLS_PORT``."""
    cert = pki.server(DTLS_SNI, kind=kind)
    return [
        "openssl", "s_server", "-accept", str(DTLS_PORT), "-naccept", "1",
        "-cert", str(cert.cert), "-cert_chain", str(pki.intermediate), "-key", str(cert.key),
        *args,
    ]  # fmt: skip


def s_client(pki: TestPKI, *args: str) -> list[str]:
    """``openssl s_client`` to the server at 10.99.0.1, verifying against the test root."""
    return [
        "openssl", "s_client", "-connect", f"10.99.0.1:{DTLS_PORT}", "-servername", DTLS_SNI,
        "-CAfile", str(pki.root), "-verify_return_error", *args,
    ]  # fmt: skip


def udp_ports(pid: int) -> set[int]:
    """UDP ports bound in the network namespace of process ``pid``."""
    ports: set[int] = set()
    for table in ("udp", "udp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 1:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def udp_server(ns: Netns, workdir: Path, name: str, argv: Sequence[str], port: int) -> Server:
    """Start ``argv`` in ``ns`` and wait until UDP ``port`` is bound there."""
    workdir.mkdir(parents=True, exist_ok=True)
    srv = Server(ns, name, argv, workdir=workdir, stdin=True)
    deadline = time.monotonic() + START_TIMEOUT
    while port not in udp_ports(srv.proc.pid):
        if srv.proc.poll() is not None or time.monotonic() > deadline:
            srv.stop()
            raise ServerError(f"{name} did not bind UDP {port}: {srv.text()[-500:]}")
        time.sleep(0.02)
    return srv


@dataclass(slots=True)
class Association:
    """The UDP datagrams of one 4-tuple, in capture order."""

    client: tuple[str, int]
    server: tuple[str, int]
    datagrams: list[tuple[bool, bytes, float]] = field(default_factory=list)
    """(sent by the client?, UDP payload, timestamp)."""


def associations(path: Path, client_ip: str) -> list[Association]:
    """The capture's UDP 4-tuples (in order of first datagram); ICMP is left out."""
    found: dict[tuple[tuple[str, int], tuple[str, int]], Association] = {}
    for ts, ip in packets(path):
        udp = ip.data
        if not isinstance(udp, dpkt.udp.UDP):
            continue
        family = socket.AF_INET6 if len(ip.src) == 16 else socket.AF_INET
        src = (socket.inet_ntop(family, ip.src), udp.sport)
        dst = (socket.inet_ntop(family, ip.dst), udp.dport)
        from_client = src[0] == client_ip
        key = (src, dst) if from_client else (dst, src)
        assoc = found.setdefault(key, Association(client=key[0], server=key[1]))
        assoc.datagrams.append((from_client, bytes(udp.data), float(ts)))
    return list(found.values())


TSHARK_FIELDS = (
    "ip.src",
    "udp.srcport",
    "dtls.record.version",
    "dtls.record.epoch",
    "dtls.handshake.type",
    "dtls.handshake.message_seq",
    "dtls.handshake.ciphersuite",
    "dtls.handshake.version",
    "dtls.handshake.extensions_server_name",
    "dtls.handshake.cookie_length",
    "dtls.alert_message.desc",
    "dtls.handshake.ja3_full",
    "dtls.handshake.fragment_length",
    "icmp.type",
)


def tshark_dtls(path: Path) -> list[dict[str, list[str]]]:
    """tshark's DTLS fields for every DTLS or ICMP frame: field name -> values (tshark
    lists one value per record or message, comma-separated)."""
    argv = ["tshark", "-r", str(path), "-Y", "dtls or icmp", "-T", "fields", "-E", "occurrence=a"]
    for name in TSHARK_FIELDS:
        argv += ["-e", name]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        values = line.split("\t")
        rows.append(
            {
                name: [v for v in value.split(",") if v]
                if name != "dtls.handshake.ja3_full"
                else [value]
                if value
                else []
                for name, value in zip(TSHARK_FIELDS, values, strict=False)
            }
        )
    return rows


def ocserv(ns: Netns, workdir: Path, cert_chain: Path, key: Path, *, legacy: bool) -> Server:
    """ocserv on TCP and UDP 443 with one user ``alice``/``secret`` (plain auth).

    ``legacy``: DTLS as AnyConnect does it (a session resumed with the X-DTLS-Session-ID
    the CSTP channel gave, DTLS 1.2 or OpenConnect's 0x0100); otherwise the default
    PSK-NEGOTIATE (a DTLS 1.2 PSK handshake keyed from the TLS session).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    passwd = workdir / "passwd"
    passwd.write_text("")
    subprocess.run(
        ["ocpasswd", "-c", str(passwd), "alice"],
        input="secret\nsecret\n",
        text=True,
        check=True,
        capture_output=True,
    )
    conf = workdir / "ocserv.conf"
    conf.write_text(f"""
auth = "plain[passwd={passwd}]"
tcp-port = 443
udp-port = 443
run-as-user = root
run-as-group = root
socket-file = {workdir}/ocserv.sock
pid-file = {workdir}/ocserv.pid
server-cert = {cert_chain}
server-key = {key}
isolate-workers = false
max-clients = 4
keepalive = 300
dpd = 60
try-mtu-discovery = false
device = vpns
ipv4-network = 192.168.99.0
ipv4-netmask = 255.255.255.0
dtls-legacy = {"true" if legacy else "false"}
dtls-psk = {"false" if legacy else "true"}
cisco-client-compat = true
use-occtl = false
log-level = 2
""")
    return udp_server(ns, workdir, "ocserv", ["ocserv", "-f", "-c", str(conf)], 443)

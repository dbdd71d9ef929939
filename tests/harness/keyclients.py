"""Real TLS clients that write their own key log (NSS ``SSLKEYLOGFILE`` format).

What it does: builds the command line (and environment) of each client so that the
client itself logs its secrets to a given file, the way a person would ask it to:

- ``openssl s_client -keylogfile FILE``;
- curl and gnutls-cli with ``SSLKEYLOGFILE=FILE`` in the environment;
- Python's ``ssl`` with ``SSLContext.keylog_filename`` (a small script run with this
  interpreter);
- headless Chromium with ``--ssl-key-log-file=FILE``, trusting the test root through an
  NSS database of its own (``certutil``), so that it judges certificates like a browser
  with the company root installed.

Each returns a :class:`KeyedClient` (argv, env); the caller runs it in a namespace. What
it does not do: start servers, capture, or judge what the client reported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--enable-logging=stderr",
                  "--v=0", "--dns-prefetch-disable")


@dataclass(frozen=True, slots=True)
class KeyedClient:
    argv: list[str]
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    input: str | None = None


def _env(keys: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, SSLKEYLOGFILE=str(keys))
    env.update(extra)
    return env


def openssl(host: str, ip: str, port: int, keys: Path, *args: str,
            ca: Path | None = None, request: str = "GET / HTTP/1.0\r\n\r\n") -> KeyedClient:
    """``openssl s_client`` sending ``request`` and reading the answer (``-ign_eof``)."""
    argv = ["openssl", "s_client", "-connect", f"{ip}:{port}", "-servername", host,
            "-ign_eof", "-keylogfile", str(keys)]
    if ca is not None:
        argv += ["-CAfile", str(ca), "-verify_return_error"]
    return KeyedClient([*argv, *args], input=request)


def curl(host: str, ip: str, port: int, keys: Path, *args: str, ca: Path) -> KeyedClient:
    """curl (OpenSSL) fetching ``https://host:port/``, resolved to ``ip``."""
    argv = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(ca),
            "--resolve", f"{host}:{port}:{ip}", *args, f"https://{host}:{port}/"]
    return KeyedClient(argv, _env(keys))


def gnutls(host: str, ip: str, port: int, keys: Path, *args: str, ca: Path) -> KeyedClient:
    """gnutls-cli checking the certificate against ``ca`` and the name ``host``."""
    argv = ["gnutls-cli", "--x509cafile", str(ca), "--sni-hostname", host,
            "--verify-hostname", host, "-p", str(port), *args, ip]
    return KeyedClient(argv, _env(keys), input="")


PYTHON_CLIENT = """
import socket, ssl, sys
host, ip, port, keys, ca, version = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=ca)
ctx.keylog_filename = keys
if version:
    ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)
try:
    with socket.create_connection((ip, int(port)), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(b"GET / HTTP/1.0\\r\\nHost: " + host.encode() + b"\\r\\n\\r\\n")
            print("reply", tls.recv(100)[:12])
except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
    print(f"error {type(exc).__name__}: {exc}")
    sys.exit(1)
"""


def python(host: str, ip: str, port: int, keys: Path, *, ca: Path,
           version: str = "") -> KeyedClient:
    """Python's ``ssl`` (``keylog_filename``); ``version``: a ``ssl.TLSVersion`` name to
    pin, e.g. ``TLSv1_3``."""
    return KeyedClient([sys.executable, "-c", PYTHON_CLIENT, host, ip, str(port), str(keys),
                        str(ca), version])


def chromium_profile(home: Path, ca: Path) -> dict[str, str]:
    """A home directory whose NSS database trusts ``ca`` for servers (what Chromium on
    Linux reads for locally added roots); returns the environment to run Chromium in."""
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True, exist_ok=True)
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-N", "--empty-password"],
                   check=True, capture_output=True)
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "tlsa test root",
                    "-i", str(ca)], check=True, capture_output=True)
    return dict(os.environ, HOME=str(home))


def chromium(host: str, ip: str, port: int, keys: Path, *, home: Path) -> KeyedClient:
    """Headless Chromium loading ``https://host:port/`` (``host`` mapped to ``ip``);
    ``home`` from :func:`chromium_profile`."""
    argv = ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={home / 'profile'}",
            f"--host-resolver-rules=MAP {host} {ip}", f"--ssl-key-log-file={keys}",
            "--dump-dom", f"https://{host}:{port}/"]
    return KeyedClient(argv, dict(os.environ, HOME=str(home)))

"""What comes before TLS: HTTP CONNECT and SOCKS tunnels, STARTTLS upgrades (SPEC §2).

A connection whose client does not start with a TLS record may still carry TLS later:
inside an HTTP CONNECT tunnel (the proxy answers ``HTTP/1.1 200``), inside a SOCKS4, 4a or
5 tunnel (the proxy grants the request: :mod:`analyzer.flows.socks` parses it), or after a
STARTTLS command in SMTP, IMAP, POP3, FTP, XMPP, IRC, LDAP or PostgreSQL. These helpers
classify the first client bytes and find where the ClientHello starts in a plaintext
prefix. They do no I/O and keep no state.
"""

from __future__ import annotations

import re
from typing import Final, Literal

from analyzer.flows import socks
from analyzer.text import printable

STARTTLS_PORTS: Final[dict[int, str]] = {
    25: "smtp",
    587: "smtp",
    2525: "smtp",
    143: "imap",
    110: "pop3",
    21: "ftp",
    5222: "xmpp",
    5269: "xmpp",
    6667: "irc",
    389: "ldap",
    5432: "postgres",
}
"""Server ports whose protocol has a STARTTLS upgrade, and the protocol's name."""

DEFAULT_TLS_PORTS: Final = frozenset(
    {443, 465, 563, 636, 853, 989, 990, 992, 993, 995, 5061, 5223, 8443}
)
"""SPEC §2 known TLS ports (user-configurable with ``--tls-port``)."""

SOCKS_PORTS: Final = frozenset({1080})
"""Server ports where a client's SOCKS first message is taken as SOCKS by its form alone;
on other ports its fields must also look like a real client's
(:func:`analyzer.flows.socks.looks_like_socks`)."""

# A TLS ClientHello record header: handshake(22), version 3.x, length, then msg type 1.
_CLIENT_HELLO = re.compile(rb"\x16\x03[\x00-\x04][\x00-\xff]{2}\x01", re.DOTALL)

_STARTTLS_COMMANDS = re.compile(
    rb"(?im)^(?:[a-z0-9.]+ )?(?:starttls|stls|auth tls|auth ssl)\r?$|<starttls\b"
)
_LDAP_STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
_POSTGRES_SSLREQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"

Start = Literal["tls", "sslv2", "connect", "socks", "plaintext", "need_more"]


def classify_client_start(data: bytes, *, socks_port: bool = False) -> Start:
    """What the first bytes a client sent look like (``socks_port``: the server port is
    one of :data:`SOCKS_PORTS`)."""
    if data and data[0] in (socks.SocksVersion.SOCKS4, socks.SocksVersion.SOCKS5):
        verdict = socks.looks_like_socks(data, socks_port=socks_port)
        if verdict != "no":
            return "socks" if verdict == "yes" else "need_more"
    if len(data) < 3:
        if data and data[0] not in (0x16, 0x80) and not (data[0] & 0x80) and data[:1] != b"C":
            return "plaintext"
        return "need_more"
    if data[0] == 0x16 and data[1] == 0x03:
        return "tls"
    if data[0] & 0x80 and data[2] == 0x01:
        return "sslv2"
    if data[0] in (0x14, 0x15, 0x17) and data[1] == 0x03:
        return "tls"  # a record without a hello (mid-stream); the TLS parser decides
    if data.startswith(b"CONNECT "[: len(data)]):
        return "connect" if len(data) >= 8 else "need_more"
    return "plaintext"


def find_client_hello(data: bytes) -> int:
    """Offset of the first TLS ClientHello record in a plaintext prefix, or -1."""
    m = _CLIENT_HELLO.search(data)
    return m.start() if m else -1


def starttls_command(data: bytes) -> bool:
    """Whether client plaintext contains a STARTTLS-style upgrade request."""
    return bool(
        _STARTTLS_COMMANDS.search(data)
        or _LDAP_STARTTLS_OID in data
        or data.startswith(_POSTGRES_SSLREQUEST)
    )


def connect_target(data: bytes) -> str | None:
    """``host:port`` of an HTTP CONNECT request line, once the line is complete."""
    end = data.find(b"\r\n")
    if end < 0:
        return None
    parts = data[:end].split()
    return printable(parts[1]) if len(parts) >= 2 else ""


def http_status(data: bytes) -> tuple[int, str] | None:
    """Status code and status line of an HTTP response, once the line is complete."""
    end = data.find(b"\n")
    if end < 0 or not data.startswith(b"HTTP/"):
        return None
    line = data[:end].rstrip(b"\r")
    parts = line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    return int(parts[1]), printable(line)

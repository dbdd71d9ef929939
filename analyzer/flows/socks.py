"""SOCKS 4, 4a and 5 negotiations before a tunnel, parsed from each direction's bytes.

What it does: :func:`parse_client` and :func:`parse_server` read the bytes one direction
sent so far (a pure function of that prefix: more bytes only ever add messages) and
return the SOCKS messages found, where the tunnel's own bytes begin, and whether the
negotiation needs more bytes, is done, or is not SOCKS after all. :class:`SocksSession`
joins both directions of one connection: the SOCKS kind, the target the client asked for,
the proxy's answer as a code and in words, and whether the tunnel was granted.
:func:`looks_like_socks` tells a SOCKS client's first bytes from other protocols.

What it does not do: I/O; sub-negotiations other than username/password (GSSAPI, RFC
1961, and the rest of IANA's SOCKS methods are noted ``socks_unsupported`` and not
followed); BIND's second reply and UDP ASSOCIATE datagrams. It never keeps an RFC 1929
password: only the user name is read, the password is skipped by its length.

Covers RFC 1928 §3 (method negotiation), §4 (requests), §5 (addressing), §6 (replies);
RFC 1929 §2 (username/password sub-negotiation and its status); SOCKS4 (Ying-Da Lee,
"SOCKS: A protocol for TCP proxy across firewalls": CONNECT/BIND request with a user id,
reply codes 90-93) and its SOCKS4A extension (destination 0.0.0.x, x != 0, followed by a
host name).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Literal

from analyzer import limits
from analyzer.anomalies import Anomaly
from analyzer.text import printable


class SocksVersion(IntEnum):
    SOCKS4 = 4
    SOCKS5 = 5


class AuthMethod(IntEnum):
    """IANA "SOCKS Methods" registry (RFC 1928 §3)."""

    NO_AUTHENTICATION_REQUIRED = 0x00
    GSSAPI = 0x01
    USERNAME_PASSWORD = 0x02
    CHALLENGE_HANDSHAKE_AUTHENTICATION_PROTOCOL = 0x03
    CHALLENGE_RESPONSE_AUTHENTICATION_METHOD = 0x05
    SECURE_SOCKETS_LAYER = 0x06
    NDS_AUTHENTICATION = 0x07
    MULTI_AUTHENTICATION_FRAMEWORK = 0x08
    JSON_PARAMETER_BLOCK = 0x09
    NO_ACCEPTABLE_METHODS = 0xFF


class Command(IntEnum):
    """RFC 1928 §4 CMD (SOCKS4 has CONNECT and BIND with the same numbers)."""

    CONNECT = 1
    BIND = 2
    UDP_ASSOCIATE = 3


class AddressType(IntEnum):
    """RFC 1928 §5 ATYP."""

    IPV4 = 1
    DOMAINNAME = 3
    IPV6 = 4


class Socks5Reply(IntEnum):
    """RFC 1928 §6 REP."""

    SUCCEEDED = 0
    GENERAL_SOCKS_SERVER_FAILURE = 1
    CONNECTION_NOT_ALLOWED_BY_RULESET = 2
    NETWORK_UNREACHABLE = 3
    HOST_UNREACHABLE = 4
    CONNECTION_REFUSED = 5
    TTL_EXPIRED = 6
    COMMAND_NOT_SUPPORTED = 7
    ADDRESS_TYPE_NOT_SUPPORTED = 8


class Socks4Reply(IntEnum):
    """SOCKS4 reply CD."""

    REQUEST_GRANTED = 90
    REQUEST_REJECTED_OR_FAILED = 91
    IDENTD_UNREACHABLE = 92
    IDENTD_USER_MISMATCH = 93


SOCKS5_REPLY_TEXT: Final[dict[int, str]] = {
    0: "succeeded",
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}
"""RFC 1928 §6, in its words."""

SOCKS4_REPLY_TEXT: Final[dict[int, str]] = {
    90: "request granted",
    91: "request rejected or failed",
    92: "request rejected because the SOCKS server cannot connect to identd on the client",
    93: "request rejected because the client program and identd report different user-ids",
}
"""The SOCKS4 paper's reply codes, in its words."""

METHOD_TEXT: Final[dict[int, str]] = {
    0x00: "no authentication required",
    0x01: "GSSAPI",
    0x02: "username/password",
    0x03: "CHAP",
    0x05: "challenge-response",
    0x06: "SSL",
    0x07: "NDS",
    0x08: "multi-authentication framework",
    0x09: "JSON parameter block",
    0xFF: "no acceptable methods",
}

GRANTED: Final = frozenset({(4, 90), (5, 0)})
"""(version, reply code) pairs that open the tunnel."""

NO_ACCEPTABLE_METHOD: Final = "no acceptable authentication method"
AUTH_REFUSED: Final = "authentication refused"
"""Words that start the status line of a negotiation that failed before any request
(SPEC §3: ``proxy_status`` is null, the reason says which)."""

_USERPASS_VERSION: Final = 1
"""RFC 1929 §2: the sub-negotiation's version byte."""
_PRIVATE_METHODS: Final = range(0x80, 0xFF)
"""RFC 1928 §3: X'80' to X'FE' reserved for private methods."""


# -- messages -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Greeting:
    """SOCKS5 version identifier/method selection message (client, RFC 1928 §3)."""

    methods: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodSelection:
    """The method the server chose, or 0xFF (server, RFC 1928 §3)."""

    method: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthRequest:
    """Username/password request (client, RFC 1929 §2). The password is never kept."""

    username: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthStatus:
    """Username/password status (server, RFC 1929 §2): 0 is success."""

    status: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """A SOCKS4, SOCKS4a or SOCKS5 request (client)."""

    version: int
    command: int
    address_type: AddressType
    host: str
    """Dotted IPv4, IPv6 text, or the host name (SOCKS5 domain name, SOCKS4a)."""
    port: int
    socks4a: bool = False
    user_id: str | None = None
    """SOCKS4 USERID (printable text)."""

    @property
    def target(self) -> str:
        """``host:port`` (IPv6 in brackets)."""
        host = f"[{self.host}]" if self.address_type is AddressType.IPV6 else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """A SOCKS4 or SOCKS5 reply (server) with the bound address it carries."""

    version: int
    code: int
    host: str
    port: int


SocksMessage = Greeting | MethodSelection | AuthRequest | AuthStatus | Request | Reply

State = Literal["need_more", "done", "malformed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Parsed:
    """What one direction's bytes so far hold."""

    messages: tuple[SocksMessage, ...] = ()
    end: int = 0
    """Bytes taken by the complete messages: the tunnel's bytes start here once done."""
    state: State = "need_more"
    anomaly: Anomaly | None = None
    """Why the state is ``malformed``: ``socks_malformed`` or ``socks_unsupported``."""
    auth_at: int | None = None
    """Where the client's username/password request starts (bytes never to quote)."""


class _Need(Exception):
    """More bytes are needed (internal: never leaves this module)."""


class _Bad(Exception):
    """Not the SOCKS message expected here (internal: never leaves this module)."""


class _Cursor:
    """Bounds-checked reads over one direction's bytes."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def u8(self) -> int:
        if self.pos >= len(self.data):
            raise _Need
        self.pos += 1
        return self.data[self.pos - 1]

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise _Need
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def cstring(self) -> bytes:
        """A NUL-terminated string of at most ``MAX_SOCKS4_STRING`` bytes."""
        window = self.data[self.pos : self.pos + limits.MAX_SOCKS4_STRING + 1]
        nul = window.find(b"\x00")
        if nul < 0:
            if len(window) > limits.MAX_SOCKS4_STRING:
                raise _Bad
            raise _Need
        self.pos += nul + 1
        return window[:nul]


# -- the client's side ----------------------------------------------------------------------


def parse_client(data: bytes) -> Parsed:
    """The client's SOCKS messages: a SOCKS4/4a request, or a SOCKS5 greeting, an optional
    username/password request and the request. ``done`` once the request is complete."""
    messages: list[SocksMessage] = []
    cur = _Cursor(data)
    end = 0
    auth_at: int | None = None
    try:
        version = cur.u8()
        if version == SocksVersion.SOCKS4:
            messages.append(_socks4_request(cur))
            return Parsed(messages=tuple(messages), end=cur.pos, state="done")
        if version != SocksVersion.SOCKS5:
            raise _Bad
        count = cur.u8()
        if count == 0:
            raise _Bad
        methods = tuple(cur.take(count))
        messages.append(Greeting(methods=methods))
        end = cur.pos
        if cur.pos < len(data) and data[cur.pos] == _USERPASS_VERSION:
            if AuthMethod.USERNAME_PASSWORD not in methods:
                raise _Bad
            auth_at = cur.pos
            messages.append(_auth_request(cur))
            end = cur.pos
        messages.append(_socks5_request(cur))
        return Parsed(messages=tuple(messages), end=cur.pos, state="done", auth_at=auth_at)
    except _Need:
        return Parsed(messages=tuple(messages), end=end, auth_at=auth_at)
    except _Bad:
        return Parsed(messages=tuple(messages), end=end, state="malformed",
                      anomaly=Anomaly.SOCKS_MALFORMED, auth_at=auth_at)


def _socks4_request(cur: _Cursor) -> Request:
    command = cur.u8()
    if command not in (Command.CONNECT, Command.BIND):
        raise _Bad
    port = cur.u16()
    ip = cur.take(4)
    user_id = printable(cur.cstring())
    if ip[:3] == b"\x00\x00\x00" and ip[3] != 0:  # SOCKS4A: the host name follows
        name = cur.cstring()
        if not name:
            raise _Bad
        return Request(version=4, command=command, address_type=AddressType.DOMAINNAME,
                       host=printable(name), port=port, socks4a=True, user_id=user_id)
    return Request(version=4, command=command, address_type=AddressType.IPV4,
                   host=str(ipaddress.IPv4Address(ip)), port=port, user_id=user_id)


def _auth_request(cur: _Cursor) -> AuthRequest:
    cur.u8()  # the sub-negotiation version, checked by the caller
    ulen = cur.u8()
    username = cur.take(ulen)
    plen = cur.u8()
    if ulen == 0 or plen == 0:
        raise _Bad
    cur.take(plen)  # the password: skipped, never kept
    return AuthRequest(username=printable(username))


def _address(cur: _Cursor) -> tuple[AddressType, str]:
    atyp = cur.u8()
    if atyp == AddressType.IPV4:
        return AddressType.IPV4, str(ipaddress.IPv4Address(cur.take(4)))
    if atyp == AddressType.IPV6:
        return AddressType.IPV6, str(ipaddress.IPv6Address(cur.take(16)))
    if atyp == AddressType.DOMAINNAME:
        length = cur.u8()
        if length == 0:
            raise _Bad
        return AddressType.DOMAINNAME, printable(cur.take(length))
    raise _Bad


def _socks5_request(cur: _Cursor) -> Request:
    if cur.u8() != SocksVersion.SOCKS5:
        raise _Bad
    command = cur.u8()
    if command not in (Command.CONNECT, Command.BIND, Command.UDP_ASSOCIATE) or cur.u8() != 0:
        raise _Bad
    atyp, host = _address(cur)
    return Request(version=5, command=command, address_type=atyp, host=host, port=cur.u16())


# -- the server's side ----------------------------------------------------------------------


def parse_server(data: bytes, version: int) -> Parsed:
    """The server's answers to a SOCKS ``version`` client: a SOCKS4 reply, or a SOCKS5
    method selection, the username/password status if that method was chosen, and the
    reply. ``done`` at the reply, at 0xFF (no acceptable method) or at a failed status."""
    messages: list[SocksMessage] = []
    cur = _Cursor(data)
    end = 0
    try:
        if version == SocksVersion.SOCKS4:
            if cur.u8() not in (0, SocksVersion.SOCKS4):
                raise _Bad
            code = cur.u8()
            port = cur.u16()
            ip = str(ipaddress.IPv4Address(cur.take(4)))
            messages.append(Reply(version=4, code=code, host=ip, port=port))
            return Parsed(messages=tuple(messages), end=cur.pos, state="done")
        if cur.u8() != SocksVersion.SOCKS5:
            raise _Bad
        method = cur.u8()
        messages.append(MethodSelection(method=method))
        end = cur.pos
        if method == AuthMethod.NO_ACCEPTABLE_METHODS:
            return Parsed(messages=tuple(messages), end=end, state="done")
        if method == AuthMethod.USERNAME_PASSWORD:
            # RFC 1929 says version 1; some servers answer with 5: both are read.
            if cur.u8() not in (_USERPASS_VERSION, SocksVersion.SOCKS5):
                raise _Bad
            status = cur.u8()
            messages.append(AuthStatus(status=status))
            end = cur.pos
            if status != 0:
                return Parsed(messages=tuple(messages), end=end, state="done")
        elif method != AuthMethod.NO_AUTHENTICATION_REQUIRED:
            return Parsed(messages=tuple(messages), end=end, state="malformed",
                          anomaly=Anomaly.SOCKS_UNSUPPORTED)
        if cur.u8() != SocksVersion.SOCKS5:
            raise _Bad
        code = cur.u8()
        if cur.u8() != 0:
            raise _Bad
        _, host = _address(cur)
        messages.append(Reply(version=5, code=code, host=host, port=cur.u16()))
        return Parsed(messages=tuple(messages), end=cur.pos, state="done")
    except _Need:
        return Parsed(messages=tuple(messages), end=end)
    except _Bad:
        return Parsed(messages=tuple(messages), end=end, state="malformed",
                      anomaly=Anomaly.SOCKS_MALFORMED)


# -- recognising a SOCKS client -------------------------------------------------------------


def looks_like_socks(data: bytes, *, socks_port: bool) -> Literal["yes", "no", "need_more"]:
    """Whether a client's first bytes are a SOCKS negotiation. On a SOCKS port (1080) any
    well-formed first message counts; elsewhere its fields must also look like a real
    client's (known methods without repeats, a CONNECT or BIND to a non-zero port, a
    printable SOCKS4 user id), so that other binary protocols are not taken for SOCKS.
    A TLS record (0x16) or plaintext never starts with 0x04 or 0x05."""
    if not data or data[0] not in (SocksVersion.SOCKS4, SocksVersion.SOCKS5):
        return "no"
    parsed = parse_client(data)
    if parsed.state == "malformed":
        return "no"
    if not parsed.messages:
        return "need_more"
    first = parsed.messages[0]
    if socks_port:
        return "yes"
    if isinstance(first, Greeting):
        methods = first.methods
        known = all(m in METHOD_TEXT or m in _PRIVATE_METHODS for m in methods)
        unique = len(set(methods)) == len(methods)
        refused = AuthMethod.NO_ACCEPTABLE_METHODS in methods
        return "yes" if known and unique and not refused else "no"
    if isinstance(first, Request):
        plain = first.user_id is None or all(" " <= ch <= "~" for ch in first.user_id)
        return "yes" if first.port != 0 and plain else "no"
    return "no"


def redacted(data: bytes, parsed: Parsed) -> bytes:
    """The client's bytes with everything from its username/password request on cut off:
    the only part that may be quoted as evidence."""
    return data if parsed.auth_at is None else data[: parsed.auth_at]


# -- both directions --------------------------------------------------------------------------


_EMPTY: Final = Parsed()


class SocksSession:
    """One connection's SOCKS negotiation: fed each direction's bytes so far (the whole
    prefix every time), it returns the messages not seen before."""

    __slots__ = ("client", "server", "version")

    def __init__(self, version: int) -> None:
        self.version = version
        self.client = _EMPTY
        self.server = _EMPTY

    def feed_client(self, data: bytes) -> tuple[SocksMessage, ...]:
        before = len(self.client.messages)
        self.client = parse_client(data)
        return self.client.messages[before:]

    def feed_server(self, data: bytes) -> tuple[SocksMessage, ...]:
        before = len(self.server.messages)
        self.server = parse_server(data, self.version)
        return self.server.messages[before:]

    def _find(self, parsed: Parsed, kind: type[SocksMessage]) -> SocksMessage | None:
        for m in parsed.messages:
            if isinstance(m, kind):
                return m
        return None

    @property
    def request(self) -> Request | None:
        found = self._find(self.client, Request)
        return found if isinstance(found, Request) else None

    @property
    def reply(self) -> Reply | None:
        found = self._find(self.server, Reply)
        return found if isinstance(found, Reply) else None

    @property
    def kind(self) -> str:
        """``socks4``, ``socks4a`` or ``socks5`` (SPEC §3 ``proxy_kind``)."""
        request = self.request
        if self.version == SocksVersion.SOCKS4:
            return "socks4a" if request is not None and request.socks4a else "socks4"
        return "socks5"

    @property
    def target(self) -> str | None:
        request = self.request
        return request.target if request is not None else None

    @property
    def status(self) -> int | None:
        """The reply code (SPEC §3 ``proxy_status``); None before a reply."""
        reply = self.reply
        return reply.code if reply is not None else None

    @property
    def granted(self) -> bool:
        reply = self.reply
        return reply is not None and (reply.version, reply.code) in GRANTED

    @property
    def refused(self) -> bool:
        """The server ended the negotiation without opening the tunnel."""
        return self.server.state == "done" and not self.granted

    @property
    def status_line(self) -> str | None:
        """The server's last answer in words (``proxy_status_line``)."""
        reply = self.reply
        if reply is not None:
            meaning = reply_text(reply.version, reply.code)
            return f"SOCKS{reply.version} reply {reply.code}: {meaning}"
        for m in reversed(self.server.messages):
            if isinstance(m, AuthStatus) and m.status != 0:
                user = self._find(self.client, AuthRequest)
                who = f" for user {user.username!r}" if isinstance(user, AuthRequest) else ""
                return f"{AUTH_REFUSED}: username/password status {m.status}{who}"
            if isinstance(m, MethodSelection) and m.method == AuthMethod.NO_ACCEPTABLE_METHODS:
                greeting = self._find(self.client, Greeting)
                offered = (
                    ", ".join(method_name(x) for x in greeting.methods)
                    if isinstance(greeting, Greeting) else "unknown"
                )
                return f"{NO_ACCEPTABLE_METHOD} (0xFF); the client offered: {offered}"
        return None


# -- words ----------------------------------------------------------------------------------


def method_name(method: int) -> str:
    if method in METHOD_TEXT:
        return METHOD_TEXT[method]
    return f"private method 0x{method:02x}" if method in _PRIVATE_METHODS else f"0x{method:02x}"


def reply_text(version: int, code: int) -> str:
    """A reply code's meaning, in the words of its specification."""
    table = SOCKS4_REPLY_TEXT if version == SocksVersion.SOCKS4 else SOCKS5_REPLY_TEXT
    return table.get(code, "unassigned reply code")


def describe(message: SocksMessage) -> str:
    """One message in words, for the timeline (never a password)."""
    if isinstance(message, Greeting):
        return "SOCKS5 greeting, methods: " + ", ".join(method_name(m) for m in message.methods)
    if isinstance(message, MethodSelection):
        if message.method == AuthMethod.NO_ACCEPTABLE_METHODS:
            return f"SOCKS5 {NO_ACCEPTABLE_METHOD} (0xFF)"
        return f"SOCKS5 method chosen: {method_name(message.method)}"
    if isinstance(message, AuthRequest):
        return f"SOCKS5 username/password for user {message.username!r} (password not shown)"
    if isinstance(message, AuthStatus):
        if message.status == 0:
            return "SOCKS5 authentication succeeded"
        return f"SOCKS5 {AUTH_REFUSED} (status {message.status})"
    if isinstance(message, Request):
        name = "SOCKS4a" if message.socks4a else f"SOCKS{message.version}"
        try:
            command = Command(message.command).name.replace("_", " ")
        except ValueError:
            command = f"command {message.command}"
        user = f" (user id {message.user_id!r})" if message.user_id else ""
        return f"{name} {command} {message.target}{user}"
    bound = f"[{message.host}]" if ":" in message.host else message.host
    return (
        f"SOCKS{message.version} reply {message.code} ({reply_text(message.version, message.code)})"
        f", bound {bound}:{message.port}"
    )

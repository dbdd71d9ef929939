"""A Python ``ssl`` server and clients that talk to each other inside one network namespace.

What it does: :func:`exchange` (run inside a namespace with ``Netns.call``) starts a TLS
server on a listening socket in a thread, runs each :class:`Client` against it one after
another, and returns what the clients' own TLS stacks reported (``SSLSocket.cipher()``,
``version()``, ALPN, the peer's certificate DER, the local port). The server answers one
HTTP/1.0 request per connection and closes first, so client ports can be reused at once.
Clients can shrink their segments (``TCP_MAXSEG``), bind a fixed port, speak plaintext to
the TLS port, connect where nothing listens, or use TCP Fast Open (RFC 7413);
:func:`half_open_then_connect` reconnects from a port the server still holds half-open
(challenge ACK, RFC 5961 §4).

What it does not do: capture packets (tests wrap it in a harness ``Capture``) or decode
anything; it reports only what the stacks themselves said.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

REQUEST = b"GET / HTTP/1.0\r\nHost: www.example.com\r\nUser-Agent: tls-peers\r\n\r\n"
RESPONSE = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"
TIMEOUT = 10.0
TCP_FASTOPEN_CONNECT = 30  # linux/tcp.h; not exported by Python's socket module


@dataclass(frozen=True, slots=True, kw_only=True)
class Server:
    """The server side: identity, versions, suites and what it accepts."""

    chain: str
    key: str
    host: str = "127.0.0.1"
    port: int = 443
    min_version: str = "TLSv1_2"
    max_version: str = "TLSv1_3"
    ciphers: str | None = None
    """OpenSSL cipher string for TLS <= 1.2."""
    ecdh_curve: str | None = None
    alpn: tuple[str, ...] = ()
    tickets: bool = False
    fastopen: bool = False
    """Accept TCP Fast Open (RFC 7413) data on the SYN."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Client:
    """One client connection."""

    cafile: str | None = None
    sni: str | None = "www.example.com"
    host: str = "127.0.0.1"
    port: int = 443
    max_version: str = "TLSv1_3"
    alpn: tuple[str, ...] = ()
    maxseg: int | None = None
    """TCP_MAXSEG before connect: the client's segments (and the MSS it announces)."""
    bind: tuple[str, int] | None = None
    plaintext: bytes | None = None
    """Send these bytes instead of a TLS handshake."""
    fastopen: bool = False
    """TCP_FASTOPEN_CONNECT: with a cookie from an earlier connection, the first write (the
    ClientHello) rides on the SYN (RFC 7413)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """What the client's stack reported."""

    local_port: int = 0
    cipher: tuple[str, str, int] | None = None
    version: str | None = None
    alpn: str | None = None
    peer_der: bytes | None = None
    response: bytes = b""
    error: str | None = None
    server_error: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _version(name: str) -> ssl.TLSVersion:
    return getattr(ssl.TLSVersion, name)  # type: ignore[no-any-return]


def server_context(spec: Server) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(spec.chain, spec.key)
    ctx.minimum_version = _version(spec.min_version)
    ctx.maximum_version = _version(spec.max_version)
    if spec.ciphers:
        ctx.set_ciphers(spec.ciphers)
    if spec.ecdh_curve:
        ctx.set_ecdh_curve(spec.ecdh_curve)
    if spec.alpn:
        ctx.set_alpn_protocols(list(spec.alpn))
    if not spec.tickets:
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


def client_context(spec: Client) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if spec.cafile:
        ctx.load_verify_locations(spec.cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = _version(spec.max_version)
    if spec.alpn:
        ctx.set_alpn_protocols(list(spec.alpn))
    return ctx


def _read_until_eof(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except (ssl.SSLError, OSError):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def _read_response(sock: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(RESPONSE[-3:]) or len(buf) < len(RESPONSE):
        data = sock.recv(4096)
        if not data:
            break
        buf += data
    return buf


def _read_request(sock: socket.socket) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(4096)
        if not data:
            break
        buf += data
    return buf


def _serve(listener: socket.socket, spec: Server, count: int, errors: list[str | None]) -> None:
    ctx = server_context(spec)
    for _ in range(count):
        try:
            conn, _addr = listener.accept()
        except OSError as exc:
            errors.append(f"accept: {exc}")
            return
        conn.settimeout(TIMEOUT)
        try:
            tls = ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            conn.close()
            continue
        try:
            _read_request(tls)
            tls.sendall(RESPONSE)
            errors.append(None)
        except (ssl.SSLError, OSError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            tls.close()  # the server closes first (no close_notify): it keeps the TIME_WAIT


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def run_client(spec: Client) -> Result:
    if spec.fastopen:
        return _fastopen_client(spec)
    raw = socket.socket(_family(spec.host), socket.SOCK_STREAM)
    raw.settimeout(TIMEOUT)
    if spec.maxseg:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, spec.maxseg)
    if spec.bind:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        raw.bind(spec.bind)
    try:
        raw.connect((spec.host, spec.port))
    except OSError as exc:
        raw.close()
        return Result(error=f"{type(exc).__name__}: {exc}")
    port = raw.getsockname()[1]
    if spec.plaintext is not None:
        raw.sendall(spec.plaintext)
        answer = _read_until_eof(raw)
        raw.close()
        return Result(local_port=port, response=answer)
    try:
        tls = client_context(spec).wrap_socket(raw, server_hostname=spec.sni)
    except (ssl.SSLError, OSError) as exc:
        raw.close()
        return Result(local_port=port, error=f"{type(exc).__name__}: {exc}")
    with tls:
        facts = Result(  # read before the server's close ends the TLS session
            local_port=port,
            cipher=tls.cipher(),
            version=tls.version(),
            alpn=tls.selected_alpn_protocol(),
            peer_der=tls.getpeercert(binary_form=True),
        )
        tls.sendall(REQUEST)
        # Read the whole answer but not the end of the stream: OpenSSL 3 answers an EOF
        # without close_notify with an alert, and the closed server with a RST.
        return replace(facts, response=_read_response(tls))


def _fastopen_client(spec: Client) -> Result:
    """A TLS client over a TCP Fast Open socket, through memory BIOs.

    ``SSLContext.wrap_socket`` cannot take a Fast Open socket (it probes the unconnected
    socket with a non-blocking recv), so the TLS bytes are moved by hand; the first send,
    the ClientHello, goes out on the SYN when the client holds a cookie.
    """
    raw = socket.socket(_family(spec.host), socket.SOCK_STREAM)
    raw.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1)
    raw.connect((spec.host, spec.port))  # returns at once: the SYN waits for the first send
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context(spec).wrap_bio(incoming, outgoing, server_hostname=spec.sni)
    first = True

    def pump() -> None:
        nonlocal first
        data = outgoing.read()
        if data:
            raw.sendall(data)  # blocking: on a Fast Open socket this first send connects
            if first:
                first = False
                raw.settimeout(TIMEOUT)
        chunk = raw.recv(65536)
        if not chunk:
            raise ConnectionError("server closed")
        incoming.write(chunk)

    try:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pump()
        tls.write(REQUEST)
        raw.sendall(outgoing.read())
        answer = b""
        while not answer.endswith(RESPONSE[-3:]):
            try:
                answer += tls.read(65536)
            except ssl.SSLWantReadError:
                pump()
        return Result(local_port=raw.getsockname()[1], cipher=tls.cipher(),
                      version=tls.version(), alpn=tls.selected_alpn_protocol(),
                      peer_der=tls.getpeercert(binary_form=True), response=answer)
    except (ssl.SSLError, OSError) as exc:
        return Result(local_port=raw.getsockname()[1], error=f"{type(exc).__name__}: {exc}")
    finally:
        raw.close()


def _listen(server: Server) -> socket.socket:
    listener = socket.socket(_family(server.host), socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if server.fastopen:
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 8)
    listener.bind((server.host, server.port))
    listener.listen(8)
    return listener


def _serve_clients(server: Server, count: int,
                   clients: Callable[[], list[Result]]) -> list[Result]:
    """Serve ``count`` connections while ``clients()`` runs; its results with the server's
    error (or None) for each connection, in order."""
    listener = _listen(server)
    errors: list[str | None] = []
    thread = threading.Thread(target=_serve, args=(listener, server, count, errors),
                              daemon=True)
    thread.start()
    try:
        results = clients()
        thread.join(TIMEOUT)
    finally:
        with contextlib.suppress(OSError):
            listener.close()
    errors = errors[len(errors) - len(results):] if len(errors) > len(results) else errors
    return [replace(r, server_error=errors[i] if i < len(errors) else "server saw no connection")
            for i, r in enumerate(results)]


def exchange(server: Server | None, clients: Sequence[Client]) -> list[Result]:
    """Serve ``clients`` one after another (call inside the namespace); their results.

    With ``server`` None the clients connect to nothing (e.g. a refused port).
    """
    if server is None:
        return [run_client(c) for c in clients]
    return _serve_clients(server, len(clients), lambda: [run_client(c) for c in clients])


def half_open_then_connect(server: Server, client: Client) -> Result:
    """Leave the server a half-open connection from ``client.bind``, then connect again
    from the same port (call inside the namespace, which this changes with iptables).

    The first connection's client side disappears silently (its RST is dropped), so the
    server still holds it ESTABLISHED. The new SYN then gets a challenge ACK (RFC 5961 §4),
    the client answers it with a RST (RFC 9293 §3.10.7.3, SYN-SENT: an unacceptable ACK),
    which also clears the server's stale connection, and the client's SYN retransmission
    (same ISN) opens the connection that carries the TLS handshake.
    """
    bind = client.bind
    assert bind is not None

    def clients() -> list[Result]:
        old = socket.socket(_family(client.host), socket.SOCK_STREAM)
        old.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        old.bind(bind)
        old.connect((client.host, client.port))
        rule = ["OUTPUT", "-p", "tcp", "--sport", str(bind[1]), "-j", "DROP"]
        subprocess.run(["iptables", "-A", *rule], check=True, capture_output=True)
        old.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        old.close()  # a RST the server never gets
        subprocess.run(["iptables", "-D", *rule], check=True, capture_output=True)
        return [run_client(client)]

    return _serve_clients(server, 2, clients)[0]

"""Private network namespaces for scenarios, tests and benchmarks.

What it does: creates named network namespaces (``ip netns add``) with loopback up at MTU
1500 and offloads off (so captured segments are what a real NIC would send, with real
checksums), optionally joined by a veth pair (``Lab``: a client host and a server host on
10.99.0.0/24 and fd00:99::/64, addresses that exist only inside these namespaces), runs
commands or a Python function inside them, and deletes everything on exit — also when a
scenario raises, and at interpreter exit for anything left behind.

What it does not do: touch any interface or address outside the namespaces it made.
Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import itertools
import multiprocessing
import os
import re
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
MTU = 1500
OFFLOADS = ("tso", "gso", "gro", "tx", "rx")

_counter = itertools.count()
_live: set[str] = set()
_live_lock = threading.Lock()


_TELLING = re.compile(r"curl: \(\d+\)|error|alert|fail|refused|reset|timed out|verify",
                      re.IGNORECASE)


class NetnsError(RuntimeError):
    """A namespace could not be made or a command in it failed."""


def _sh(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise NetnsError(f"{' '.join(argv)!r} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def unique_name(prefix: str = "tlsa") -> str:
    """A namespace/interface-safe name unique to this process."""
    return f"{prefix}{os.getpid() % 100000}x{next(_counter)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """A finished command: argv, exit status, captured text."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def summary(self, limit: int = 160) -> str:
        """Exit status and the most telling line of error text, for manifests and errors."""
        lines = [ln.strip() for ln in self.stderr.splitlines() if ln.strip()]
        telling = [ln for ln in lines if _TELLING.search(ln)]
        text = (telling or lines or [""])[0]
        status = "timed out" if self.timed_out else f"exit {self.returncode}"
        return f"{status}" + (f": {text[:limit]}" if text else "")


class Netns:
    """One named network namespace with loopback up. Use as a context manager."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or unique_name()
        self._closed = False
        _sh(["ip", "netns", "add", self.name])
        with _live_lock:
            _live.add(self.name)
        try:
            self.ip("link", "set", "lo", "mtu", str(MTU), "up")
            self.disable_offloads("lo")
        except Exception:
            self.close()
            raise

    def __enter__(self) -> Netns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed so it runs inside this namespace (``ip netns exec``)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def ip(self, *args: str) -> None:
        _sh(["ip", "-n", self.name, *args])

    def sh(self, argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a set-up command (iptables, ethtool, sysctl) in the namespace; raise on error."""
        return _sh(self.argv(argv), check=check)

    def disable_offloads(self, dev: str) -> None:
        args: list[str] = []
        for feature in OFFLOADS:
            args += [feature, "off"]
        # Some features are fixed on some devices: ethtool then exits non-zero, harmlessly.
        self.sh(["ethtool", "-K", dev, *args], check=False)

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 30.0,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Run:
        """Run a client command to completion inside the namespace; never raises on failure."""
        full = self.argv(argv)
        try:
            done = subprocess.run(
                full, capture_output=True, text=True, timeout=timeout, input=input,
                env=env, errors="replace", check=False,
            )
        except subprocess.TimeoutExpired as exc:
            def _txt(b: bytes | str | None) -> str:
                return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")

            return Run(argv=tuple(argv), returncode=-9, stdout=_txt(exc.stdout),
                       stderr=_txt(exc.stderr), timed_out=True)
        return Run(argv=tuple(argv), returncode=done.returncode, stdout=done.stdout,
                   stderr=done.stderr, timed_out=False)

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a long-running process inside the namespace in its own process group."""
        return subprocess.Popen(self.argv(argv), start_new_session=True, **kwargs)

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 60.0) -> T:
        """Run ``fn(*args)`` in a forked child that entered this namespace; return its result.

        The result (or exception) must be picklable. The parent's own namespace is untouched.
        """
        ctx = multiprocessing.get_context("fork")
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_call_in_ns, args=(self.name, child, fn, args))
        proc.start()
        child.close()
        try:
            if not parent.poll(timeout):
                raise NetnsError(f"function {fn.__name__} in {self.name} timed out")
            ok, value = parent.recv()
        finally:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def close(self) -> None:
        """Kill every process left in the namespace and delete it (idempotent)."""
        if self._closed:
            return
        self._closed = True
        _delete(self.name)


def _call_in_ns(name: str, conn: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        with open(f"/run/netns/{name}", "rb") as f:
            if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns({name})")
        conn.send((True, fn(*args)))
    except BaseException as exc:
        conn.send((False, exc))
    finally:
        conn.close()


def _delete(name: str) -> None:
    pids = _sh(["ip", "netns", "pids", name], check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), 9)
    _sh(["ip", "netns", "del", name], check=False)
    with _live_lock:
        _live.discard(name)


@atexit.register
def _cleanup_all() -> None:
    with _live_lock:
        names = list(_live)
    for name in names:
        _delete(name)


@dataclass(frozen=True, slots=True)
class Addr:
    """Addresses of the two hosts of a ``Lab``."""

    client_ip: str = "10.99.0.2"
    server_ip: str = "10.99.0.1"
    client_ip6: str = "fd00:99::2"
    server_ip6: str = "fd00:99::1"
    prefix: int = 24
    prefix6: int = 64


class Lab:
    """Two hosts, ``client`` and ``server``, each a namespace, joined by one veth link.

    The client's end is ``client_if`` (capture there to see what the client saw), the
    server's end ``server_if``. Both at MTU 1500 with offloads off. Extra addresses for
    several servers or clients: ``add_server_ip`` / ``add_client_ip``.
    """

    client_if = "eth0"
    server_if = "eth0"

    def __init__(self, addr: Addr | None = None) -> None:
        self.addr = addr or Addr()
        self.client = Netns(unique_name("tlsc"))
        try:
            self.server = Netns(unique_name("tlss"))
        except Exception:
            self.client.close()
            raise
        try:
            self._link()
        except Exception:
            self.close()
            raise

    def _link(self) -> None:
        a = self.addr
        tmp_c, tmp_s = unique_name("vc"), unique_name("vs")
        _sh(["ip", "link", "add", tmp_c, "netns", self.client.name, "type", "veth",
             "peer", "name", tmp_s, "netns", self.server.name])
        for ns, tmp, ip4, ip6 in (
            (self.client, tmp_c, a.client_ip, a.client_ip6),
            (self.server, tmp_s, a.server_ip, a.server_ip6),
        ):
            ns.ip("link", "set", tmp, "name", "eth0")
            ns.ip("link", "set", "eth0", "mtu", str(MTU))
            ns.disable_offloads("eth0")
            ns.ip("addr", "add", f"{ip4}/{a.prefix}", "dev", "eth0")
            ns.ip("addr", "add", f"{ip6}/{a.prefix6}", "dev", "eth0", "nodad")
            ns.ip("link", "set", "eth0", "up")

    @property
    def client_ip(self) -> str:
        return self.addr.client_ip

    @property
    def server_ip(self) -> str:
        return self.addr.server_ip

    def add_server_ip(self, ip: str) -> None:
        self.server.ip("addr", "add", _with_prefix(ip), "dev", self.server_if, *_nodad(ip))

    def add_client_ip(self, ip: str) -> None:
        self.client.ip("addr", "add", _with_prefix(ip), "dev", self.client_if, *_nodad(ip))

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()
        if hasattr(self, "server"):
            self.server.close()


def _with_prefix(ip: str) -> str:
    return f"{ip}/64" if ":" in ip else f"{ip}/16"


def _nodad(ip: str) -> list[str]:
    return ["nodad"] if ":" in ip else []

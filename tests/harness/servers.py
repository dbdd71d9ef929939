"""Server lifecycle: start a real daemon in a namespace, wait for its port, stop, read logs.

What it does: ``Server`` starts one process (in the foreground, its own process group)
inside a ``Netns``, waits until it listens on the given TCP ports (read from
``/proc/<pid>/net/tcp*``, so no probe connection pollutes the capture), and on ``stop``
terminates the whole group and keeps its stdout/stderr and log files for the checks. The
``nginx``, ``squid``, ``s_server``, ``stunnel``, ``haproxy`` helpers write a config into a
work directory and start the daemon with it.

What it does not do: pick configurations for scenarios (callers pass the server blocks),
or install anything.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.harness.netns import Netns

START_TIMEOUT = 15.0  # seconds for a daemon to listen (squid needs ~1-2 s)
STOP_TIMEOUT = 5.0


class ServerError(RuntimeError):
    """A server did not start or exited early."""


def listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state in the network namespace of process ``pid``."""
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class Server:
    """One daemon process in a namespace; logs kept in ``workdir``."""

    def __init__(
        self,
        ns: Netns,
        name: str,
        argv: Sequence[str],
        *,
        workdir: Path,
        ports: Sequence[int] = (),
        logs: Sequence[Path] = (),
        stdin: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.ns, self.name, self.argv = ns, name, list(argv)
        self.workdir, self.ports, self.logs = workdir, tuple(ports), list(logs)
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        self._out = self.stdout_path.open("wb")
        self._err = self.stderr_path.open("wb")
        self.proc: subprocess.Popen[Any] = ns.popen(
            self.argv, stdout=self._out, stderr=self._err,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, env=env,
        )
        try:
            self._wait_ready()
        except Exception:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.name} exited ({self.proc.returncode}): {self.text()}")
            if set(self.ports) <= listening_ports(self.proc.pid):
                return
            if time.monotonic() > deadline:
                raise ServerError(f"{self.name} not listening on {self.ports}: {self.text()}")
            time.sleep(0.02)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Terminate the process group (SIGTERM, then SIGKILL); idempotent."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        else:  # daemons that forked helpers may leave the group behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        for f in (self._out, self._err):
            if not f.closed:
                f.close()

    def text(self) -> str:
        """Everything the server wrote so far: stdout, stderr and its log files."""
        parts = []
        for path in (self.stdout_path, self.stderr_path, *self.logs):
            with contextlib.suppress(OSError):
                parts.append(path.read_text(errors="replace"))
        return "".join(parts)


# -- daemon helpers --------------------------------------------------------------------------


def nginx(ns: Netns, workdir: Path, servers: str, *, ports: Sequence[int],
          http_extra: str = "", name: str = "nginx") -> Server:
    """nginx in the foreground with ``servers`` (one or more ``server {}`` blocks).

    ``error.log`` at level ``info`` (where nginx reports client-side TLS handshake
    failures) and ``access.log`` with the TLS version and SNI are in ``workdir``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / f"{name}.conf"
    error_log, access_log = workdir / f"{name}-error.log", workdir / f"{name}-access.log"
    conf.write_text(f"""
worker_processes 1;
user root;
pid {workdir}/{name}.pid;
error_log {error_log} info;
events {{ worker_connections 256; }}
http {{
    log_format tls '$remote_addr:$remote_port "$request" $status $ssl_protocol '
                   '$ssl_cipher sni=$ssl_server_name';
    access_log {access_log} tls;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    default_type text/plain;
    keepalive_timeout 5s;
    {http_extra}
    {servers}
}}
""")
    return Server(ns, name, ["nginx", "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"],
                  workdir=workdir, ports=ports, logs=[error_log, access_log])


def _open_up(workdir: Path) -> None:
    """Let daemons that drop privileges (squid, postfix) traverse ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    for d in (workdir, *workdir.parents):
        if d in (Path("/"), Path("/tmp")):
            break
        d.chmod(0o755)


def squid(ns: Netns, workdir: Path, config: str, *, port: int = 3128,
          name: str = "squid") -> Server:
    """squid in the foreground (``-N``) with ``config`` plus logging/pid lines in ``workdir``.

    squid refuses to run as root and switches to user ``proxy``; ``workdir`` is made
    readable for it.
    """
    _open_up(workdir)
    conf = workdir / f"{name}.conf"
    cache_log, access_log = workdir / f"{name}-cache.log", workdir / f"{name}-access.log"
    for p in (cache_log, access_log):
        p.touch()
        shutil.chown(p, "proxy", "proxy")
    conf.write_text(f"""
pid_filename {workdir}/{name}.pid
cache_log {cache_log}
access_log stdio:{access_log}
cache_store_log none
coredump_dir {workdir}
cache deny all
cache_mem 8 MB
cache_effective_user proxy
dns_nameservers 127.0.0.1
dns_timeout 2 seconds
connect_timeout 3 seconds
shutdown_lifetime 0 seconds
logfile_rotate 0
{config}
""")
    return Server(ns, name, ["squid", "-N", "-f", str(conf)], workdir=workdir,
                  ports=[port], logs=[cache_log, access_log])


def s_server(ns: Netns, workdir: Path, args: Sequence[str], *, port: int = 443,
             name: str = "s_server") -> Server:
    """``openssl s_server -accept PORT`` with ``args``, answering HTTP with ``-www``."""
    workdir.mkdir(parents=True, exist_ok=True)
    return Server(ns, name, ["openssl", "s_server", "-accept", str(port), "-naccept", "100",
                             *args], workdir=workdir, ports=[port], stdin=True)


def stunnel(ns: Netns, workdir: Path, services: str, *, ports: Sequence[int],
            name: str = "stunnel") -> Server:
    """stunnel in the foreground with ``services`` (``[name]`` sections)."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / f"{name}.conf"
    conf.write_text(f"foreground = yes\npid =\ndebug = info\nsyslog = no\n{services}\n")
    return Server(ns, name, ["stunnel", str(conf)], workdir=workdir, ports=ports)


def haproxy(ns: Netns, workdir: Path, config: str, *, ports: Sequence[int],
            name: str = "haproxy") -> Server:
    """haproxy in the foreground (``-db``) with ``config`` after a minimal global section."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / f"{name}.cfg"
    conf.write_text(f"""
global
    log stderr format raw local0 info
defaults
    log global
    timeout connect 3s
    timeout client 10s
    timeout server 10s
{config}
""")
    return Server(ns, name, ["haproxy", "-db", "-f", str(conf)], workdir=workdir, ports=ports)


POSTFIX_SERVICES = """
smtp      inet  n       -       n       -       -       smtpd
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
anvil     unix  -       -       n       -       1       anvil
postlog   unix-dgram n  -       n       -       1       postlogd
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
scache    unix  -       -       n       -       1       scache
"""


def postfix(ns: Netns, workdir: Path, main_extra: str, *, hostname: str = "mail.example.com",
            name: str = "postfix") -> Server:
    """A private Postfix instance (its own config, queue and data dirs) on port 25.

    ``master -d`` stays in the foreground; ``maillog_file = /dev/stdout`` puts the mail log
    in the server's stdout. Nothing is chrooted and nothing is delivered (no destinations).
    """
    _open_up(workdir)
    conf, spool, data = workdir / "conf", workdir / "spool", workdir / "data"
    for d in (conf, spool, data):
        d.mkdir(exist_ok=True)
        d.chmod(0o755)
    shutil.chown(data, "postfix")
    (conf / "master.cf").write_text(POSTFIX_SERVICES)
    (conf / "main.cf").write_text(f"""
compatibility_level = 3.6
queue_directory = {spool}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = all
inet_protocols = ipv4
myhostname = {hostname}
mydestination =
maillog_file = /dev/stdout
smtpd_banner = $myhostname ESMTP
{main_extra}
""")
    made = subprocess.run(["postfix", "-c", str(conf), "post-install", "create-missing"],
                          capture_output=True, text=True, check=False)
    if made.returncode != 0:
        raise ServerError(f"postfix post-install: {made.stderr}")
    return Server(ns, name, ["/usr/lib/postfix/sbin/master", "-c", str(conf), "-d"],
                  workdir=workdir, ports=[25])

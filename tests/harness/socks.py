"""SOCKS proxies for scenarios and tests: Dante (``danted``) and OpenSSH's ``ssh -D``.

What it does: ``etc_overlay`` gives the processes started in one namespace their own
``/etc/hosts`` (names the proxy resolves for SOCKS4a and SOCKS5 host-name requests) and
extra users in ``/etc/passwd``/``/etc/shadow`` (Dante's username method checks the
system's password database), through ``ip netns exec``'s per-namespace ``/etc/netns/NAME``
files: nothing of the host's own ``/etc`` changes, and the overlay is removed on exit.
``dante`` writes a config and runs ``danted`` in the foreground; ``ssh_socks`` makes a key
pair and a host key, runs an ``sshd`` on the namespace's loopback and an ``ssh -N -D``
client to it whose SOCKS listener is the proxy (the way people turn an SSH jump host into
a SOCKS proxy).

What it does not do: pick rules for scenarios (callers pass Dante's ``socks`` rules), or
install anything (Debian ``dante-server``, ``openssh-server``, ``openssh-client``).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.harness.netns import Netns
from tests.harness.servers import Server, ServerError

DANTE_TOOLS = ("danted",)
SSH_TOOLS = ("sshd", "ssh", "ssh-keygen")
SSHD_PORT = 2222


@contextlib.contextmanager
def etc_overlay(ns: Netns, *, hosts: dict[str, str] | None = None,
                users: dict[str, str] | None = None) -> Iterator[None]:
    """Per-namespace ``/etc`` files for processes started in ``ns`` from now on:
    ``hosts`` (name -> address) and ``users`` (name -> password, hashed with
    ``openssl passwd -6``) added to copies of the host's files."""
    folder = Path("/etc/netns") / ns.name
    folder.mkdir(parents=True, exist_ok=False)
    try:
        lines = ["127.0.0.1 localhost", "::1 localhost"]
        lines += [f"{ip} {name}" for name, ip in (hosts or {}).items()]
        (folder / "hosts").write_text("\n".join(lines) + "\n")
        if users:
            passwd = Path("/etc/passwd").read_text()
            shadow = Path("/etc/shadow").read_text()
            for n, (user, password) in enumerate(users.items()):
                hashed = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password,
                                        capture_output=True, text=True, check=True).stdout
                passwd += f"{user}:x:{64000 + n}:65534::/nonexistent:/usr/sbin/nologin\n"
                shadow += f"{user}:{hashed.strip()}:19000:0:99999:7:::\n"
            (folder / "passwd").write_text(passwd)
            (folder / "shadow").write_text(shadow)
            (folder / "shadow").chmod(0o640)
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def dante(ns: Netns, workdir: Path, *, ip: str, port: int = 1080, socksmethod: str = "none",
          rules: str = "", name: str = "danted") -> Server:
    """``danted`` listening on ``ip:port`` and connecting out from ``ip``. ``rules`` come
    before a final rule passing everything else (with ``log: connect error``, so the log
    says what it did with every request)."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf, log = workdir / f"{name}.conf", workdir / f"{name}.log"
    conf.write_text(f"""
logoutput: {log}
internal: {ip} port = {port}
external: {ip}
socksmethod: {socksmethod}
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {{ from: 0.0.0.0/0 to: 0.0.0.0/0 log: connect error }}
{rules}
socks pass {{ from: 0.0.0.0/0 to: 0.0.0.0/0 log: connect error }}
""")
    return Server(ns, name, ["danted", "-f", str(conf)], workdir=workdir, ports=[port],
                  logs=[log])


class SshSocks:
    """An ``sshd`` and the ``ssh -D`` client whose SOCKS listener is the proxy."""

    def __init__(self, sshd: Server, client: Server) -> None:
        self.sshd, self.client = sshd, client

    def stop(self) -> None:
        self.client.stop()
        self.sshd.stop()

    def text(self) -> str:
        """What both wrote: ``ssh -v`` reports each SOCKS request and channel failure."""
        return self.client.text() + self.sshd.text()


def ssh_socks(ns: Netns, workdir: Path, *, ip: str, port: int = 1080) -> SshSocks:
    """``ssh -N -D ip:port`` to an ``sshd`` on the namespace's loopback (key made here)."""
    workdir.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    host_key, user_key = workdir / "host_ed25519", workdir / "user_ed25519"
    for key in (host_key, user_key):
        if not key.exists():
            made = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                                   str(key)], capture_output=True, text=True, check=False)
            if made.returncode != 0:
                raise ServerError(f"ssh-keygen: {made.stderr}")
    authorized = workdir / "authorized_keys"
    authorized.write_text(user_key.with_suffix(".pub").read_text())
    conf = workdir / "sshd_config"
    conf.write_text(f"""
ListenAddress 127.0.0.1:{SSHD_PORT}
HostKey {host_key}
PidFile {workdir}/sshd.pid
AuthorizedKeysFile {authorized}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
LogLevel VERBOSE
""")
    sshd = Server(ns, "sshd", [shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f",
                               str(conf)], workdir=workdir, ports=[SSHD_PORT])
    try:
        client = Server(ns, "ssh", [
            "ssh", "-v", "-N", "-F", "/dev/null", "-i", str(user_key), "-p", str(SSHD_PORT),
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "ExitOnForwardFailure=yes",
            "-D", f"{ip}:{port}", "root@127.0.0.1",
        ], workdir=workdir, ports=[port])
    except Exception:
        sshd.stop()
        raise
    return SshSocks(sshd, client)

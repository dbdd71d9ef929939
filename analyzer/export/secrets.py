"""Secrets in a written capture (``--embed-secrets``): the NSS key log lines of chosen
connections, and a pcapng Decryption Secrets Block put in front of a capture's packets.

This is the one place where a secret becomes text, and only to go into a capture file
the user asked to carry them: Wireshark and tshark read a Decryption Secrets Block
(pcapng §4.7, secrets type ``TLSK``) like a file given with ``-o tls.keylog_file``.

- :func:`key_log_lines` gives the lines of the connections whose client randoms are
  given (a record's ``client_random``) and nothing else: a capture of some connections
  never carries the secrets of others that happen to be in the same key log.
- :func:`insert_secrets` copies a pcapng stream, inserting one Decryption Secrets Block
  right after its first Section Header Block, written in that section's byte order, so
  the secrets come before every packet (a single-pass reader needs them there).
- :func:`embed_in_file` does that to a file in place (``tlsa live --write``).

What it does not do: choose the connections (the caller does, from what it wrote), read
key logs (:mod:`analyzer.tls.keylog`), write packets (:mod:`analyzer.export.pcapng_writer`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from analyzer.export.pcapng_writer import DSB, SECRETS_TLS_KEY_LOG, SHB
from analyzer.sources.pcapng import section_byte_order
from analyzer.tls.keylog import KeyLog, Secrets

_LABELS = (
    ("CLIENT_RANDOM", "master_secret"),
    ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "client_handshake_traffic"),
    ("SERVER_HANDSHAKE_TRAFFIC_SECRET", "server_handshake_traffic"),
    ("CLIENT_TRAFFIC_SECRET_0", "client_traffic_0"),
    ("SERVER_TRAFFIC_SECRET_0", "server_traffic_0"),
)
"""NSS key log label of each :class:`Secrets` field (the labels the key log keeps)."""

_SHB_HEAD = 12
"""Block type, block length and byte-order magic: enough to size the first block."""


def secrets_lines(client_random: bytes, secrets: Secrets) -> bytes:
    """The NSS key log lines of one connection, one per secret held."""
    random_hex = client_random.hex()
    out = []
    for label, name in _LABELS:
        value: bytes | None = getattr(secrets, name)
        if value is not None:
            out.append(f"{label} {random_hex} {value.hex()}\n")
    return "".join(out).encode("ascii")


def key_log_lines(keylog: KeyLog, client_randoms: Iterable[str | None]) -> tuple[bytes, int]:
    """The key log lines of the connections with these client randoms (hex, as in a
    record's ``client_random``; None and unknown ones are skipped), each connection once,
    in the order given; and how many connections had secrets."""
    seen: set[str] = set()
    lines: list[bytes] = []
    for random_hex in client_randoms:
        if random_hex is None or random_hex in seen:
            continue
        seen.add(random_hex)
        try:
            client_random = bytes.fromhex(random_hex)
        except ValueError:
            continue
        secrets = keylog.lookup(client_random)
        if secrets is not None:
            lines.append(secrets_lines(client_random, secrets))
    return b"".join(lines), len(lines)


def secrets_block(key_log: bytes, order: str = "<") -> bytes:
    """A Decryption Secrets Block of NSS key log text, in byte order ``order``."""
    padded = key_log + b"\x00" * (-len(key_log) % 4)
    length = 20 + len(padded)
    return (struct.pack(f"{order}IIII", DSB, length, SECRETS_TLS_KEY_LOG, len(key_log))
            + padded + struct.pack(f"{order}I", length))


def insert_secrets(src: BinaryIO, dst: BinaryIO, key_log: bytes) -> str | None:
    """Copy the pcapng stream ``src`` to ``dst`` with a secrets block after its first
    Section Header Block. Returns a one-line problem instead when ``src`` does not start
    with a Section Header Block (nothing is written then)."""
    head = src.read(_SHB_HEAD)
    order = section_byte_order(head[8:12]) if len(head) == _SHB_HEAD else None
    if order is None or struct.unpack(f"{order}I", head[:4])[0] != SHB:
        return "not a pcapng capture: the secrets cannot be embedded"
    (length,) = struct.unpack(f"{order}I", head[4:8])
    rest = src.read(length - _SHB_HEAD)
    if length < 28 or len(rest) != length - _SHB_HEAD:
        return "the capture's section header is damaged: the secrets cannot be embedded"
    dst.write(head + rest)
    if key_log:
        dst.write(secrets_block(key_log, order))
    shutil.copyfileobj(src, dst)
    return None


def embed_in_file(path: Path, key_log: bytes) -> str | None:
    """Insert the secrets into the pcapng file ``path`` (rewritten through a temporary
    file beside it, then renamed over it). Returns a one-line problem, or None."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as e:
        return f"cannot write beside {path}: {e.strerror or e}"
    try:
        with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
            problem = insert_secrets(src, dst, key_log)
        if problem is None:
            os.replace(tmp, path)
        return problem
    except OSError as e:
        return f"cannot embed the secrets in {path}: {e.strerror or e}"
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)

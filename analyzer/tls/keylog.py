"""The NSS key log: TLS secrets by client random, from files, live files and pcapng.

What it does: :class:`KeyLog` reads the key log format that curl, Firefox, Chromium,
Python, openssl (``-keylogfile``) and GnuTLS write when ``SSLKEYLOGFILE`` is set, and
that pcapng Decryption Secrets Blocks carry: one ``LABEL <client random> <secret>`` per
line, in hex. It keeps the labels that decrypt a handshake and turns them into one
:class:`Secrets` value per connection, found by the ClientHello's 32-byte random:

- ``CLIENT_RANDOM``: the 48-byte master secret of TLS ≤ 1.2;
- ``CLIENT_HANDSHAKE_TRAFFIC_SECRET``, ``SERVER_HANDSHAKE_TRAFFIC_SECRET``,
  ``CLIENT_TRAFFIC_SECRET_0``, ``SERVER_TRAFFIC_SECRET_0``: TLS 1.3 traffic secrets.

The other labels Wireshark knows (``CLIENT_EARLY_TRAFFIC_SECRET``, ``EXPORTER_SECRET``,
``EARLY_EXPORTER_SECRET``, ``RSA``, ``PMS_CLIENT_RANDOM``, ``ECH_SECRET``,
``ECH_CONFIG``) and any other upper-case label of the same shape are accepted and
ignored. Comments (``#``), blank lines and CRLF endings are fine. A malformed line is
skipped with a one-line warning naming the source, the line number and what is wrong,
never the line's content (it may hold a secret).

Sources: files (:meth:`KeyLog.from_files`), text (:meth:`KeyLog.add_text`, for pcapng
Decryption Secrets Blocks), and files still being written (:meth:`KeyLog.follow` and
:meth:`KeyLog.poll`: what was appended since the last look; a last line without its
newline waits for it). Memory is bounded by ``MAX_KEYLOG_ENTRIES`` (the oldest
connections go first) and ``MAX_KEYLOG_LINE``. A :class:`KeyLog` pickles to its entries,
so worker processes get the secrets in memory; followed files stay with the original.

What it does not do: derive keys (:mod:`analyzer.tls.keyschedule`) or decrypt
(:mod:`analyzer.tls.decrypt`). Nothing here formats a secret as text: ``repr`` of a
:class:`Secrets` lists which labels it holds, never bytes.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from analyzer.anomalies import Anomaly
from analyzer.limits import MAX_KEYLOG_ENTRIES, MAX_KEYLOG_LINE, MAX_KEYLOG_WARNINGS
from analyzer.text import os_error

CLIENT_RANDOM_LENGTH = 32
MASTER_SECRET_LENGTH = 48
TRAFFIC_SECRET_LENGTHS = frozenset({32, 48, 64})
"""Hash lengths of TLS 1.3 suites: SHA-256, SHA-384 and (AEGIS-256) SHA-512."""

READ_SIZE = 1 << 16
"""Bytes read from a key log file at a time."""

_FIELDS = {
    "CLIENT_RANDOM": "master_secret",
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET": "client_handshake_traffic",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET": "server_handshake_traffic",
    "CLIENT_TRAFFIC_SECRET_0": "client_traffic_0",
    "SERVER_TRAFFIC_SECRET_0": "server_traffic_0",
}
"""Labels kept, and the :class:`Secrets` field each fills."""

_IGNORED = frozenset({
    "CLIENT_EARLY_TRAFFIC_SECRET", "EARLY_EXPORTER_SECRET", "EXPORTER_SECRET", "RSA",
    "PMS_CLIENT_RANDOM", "ECH_SECRET", "ECH_CONFIG",
})
"""Labels of secrets that decrypt nothing this analysis reads (0-RTT data, exporters,
RSA pre-master secrets by encrypted prefix, ECH), whatever their shape."""

_LABEL = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_HEX = re.compile(r"[0-9a-fA-F]*")


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Secrets:
    """What the key logs hold for one connection. Frozen and pickleable; ``repr`` names
    the labels present, never their bytes."""

    master_secret: bytes | None = None
    """``CLIENT_RANDOM``: the TLS ≤ 1.2 master secret (48 bytes)."""
    client_handshake_traffic: bytes | None = None
    server_handshake_traffic: bytes | None = None
    client_traffic_0: bytes | None = None
    """``CLIENT_TRAFFIC_SECRET_0``: the first TLS 1.3 client application traffic secret."""
    server_traffic_0: bytes | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        """The key log labels whose secrets are present, in a fixed order."""
        return tuple(label for label, name in _FIELDS.items() if getattr(self, name) is not None)

    def __repr__(self) -> str:
        return f"Secrets({', '.join(self.labels)})"


def parse_line(line: str) -> tuple[str, bytes, bytes] | str | None:
    """One key log line: ``(label, client random, secret)`` for a label that is kept,
    None for a line to skip silently, or a one-line problem that never quotes the line."""
    fields = line.split()
    if not fields or fields[0].startswith("#"):
        return None
    label = fields[0]
    if label in _IGNORED:
        return None
    if label not in _FIELDS:
        if _LABEL.fullmatch(label) and len(fields) == 3:
            return None  # a label this analysis does not use, in the usual shape
        return "not a key log line (LABEL, client random and secret in hex expected)"
    if len(fields) != 3:
        return f"{label} needs a client random and a secret, found {len(fields) - 1} fields"
    random_hex, secret_hex = fields[1], fields[2]
    if len(random_hex) != 2 * CLIENT_RANDOM_LENGTH or not _HEX.fullmatch(random_hex):
        return f"{label}: the client random is not {2 * CLIENT_RANDOM_LENGTH} hex digits"
    if len(secret_hex) % 2 or not _HEX.fullmatch(secret_hex):
        return f"{label}: the secret is not hex"
    size = len(secret_hex) // 2
    if label == "CLIENT_RANDOM":
        if size != MASTER_SECRET_LENGTH:
            return f"CLIENT_RANDOM: a master secret of {size} bytes, not {MASTER_SECRET_LENGTH}"
    elif size not in TRAFFIC_SECRET_LENGTHS:
        return f"{label}: a secret of {size} bytes, not 32, 48 or 64"
    return label, bytes.fromhex(random_hex), bytes.fromhex(secret_hex)


@dataclass(slots=True, kw_only=True)
class _Followed:
    """A key log file read as it grows."""

    path: Path
    offset: int = 0
    """Bytes of the file already read."""
    partial: bytes = b""
    """The last line read, still waiting for its newline."""
    skipping: bool = False
    """Inside an overlong line, discarding bytes up to its newline."""
    lines: int = 0
    identity: tuple[int, int] | None = None
    """(device, inode) of the file read: another file under the same name starts over."""
    missing_reported: bool = False


class KeyLog:
    """Secrets by client random, from any number of key log sources."""

    __slots__ = ("_entries", "_followed", "dropped", "max_entries", "suppressed", "warnings")

    def __init__(self, *, max_entries: int = MAX_KEYLOG_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: dict[bytes, Secrets] = {}
        """Insertion order is age: the first entry is the oldest."""
        self._followed: list[_Followed] = []
        self.warnings: list[tuple[Anomaly, str]] = []
        """One-line problems (at most ``MAX_KEYLOG_WARNINGS``), each with its code."""
        self.suppressed = 0
        """Warnings beyond the limit, counted only."""
        self.dropped = 0
        """Connections forgotten to stay within ``max_entries``."""

    def __repr__(self) -> str:
        return f"KeyLog(entries={len(self._entries)}, followed={len(self._followed)})"

    def __len__(self) -> int:
        return len(self._entries)

    def __reduce__(self) -> tuple[object, ...]:
        return (_restore, (self.max_entries, list(self._entries.items())))

    # -- sources -------------------------------------------------------------------------

    @classmethod
    def from_files(cls, paths: Iterable[str | Path]) -> KeyLog:
        """A key log from whole files, read once."""
        keylog = cls()
        for path in paths:
            keylog.add_file(path)
        return keylog

    def add_file(self, path: str | Path) -> int:
        """Read a whole file; returns the secrets (lines) taken."""
        followed = _Followed(path=Path(path))
        count = self._read_new(followed)
        if followed.partial:  # a file read once: its last line needs no newline
            count += self._line(followed.partial, str(followed.path), followed.lines + 1)
        return count

    def add_text(self, text: str, *, source: str) -> int:
        """Lines of key log text (e.g. a pcapng Decryption Secrets Block); ``source``
        names it in warnings. Returns the secrets (lines) taken."""
        count = 0
        for number, line in enumerate(text.split("\n"), 1):
            if len(line) > MAX_KEYLOG_LINE:
                self._warn(Anomaly.KEYLOG_MALFORMED,
                           f"{source} line {number}: longer than {MAX_KEYLOG_LINE} characters")
                continue
            count += self._text_line(line, source, number)
        return count

    def follow(self, path: str | Path) -> int:
        """Read ``path`` now and again at each :meth:`poll`: a file a browser or curl is
        still writing. A file that does not exist yet is waited for."""
        followed = _Followed(path=Path(path))
        self._followed.append(followed)
        return self._read_new(followed)

    def poll(self) -> int:
        """Read what was appended to the followed files since the last look; returns the
        secrets (lines) taken. A file replaced or truncated is read from its start."""
        return sum(self._read_new(followed) for followed in self._followed)

    # -- lookup --------------------------------------------------------------------------

    def lookup(self, client_random: bytes) -> Secrets | None:
        """The secrets logged for the connection whose ClientHello carried ``client_random``."""
        return self._entries.get(client_random)

    # -- inside --------------------------------------------------------------------------

    def _read_new(self, followed: _Followed) -> int:
        name = str(followed.path)
        try:
            st = os.stat(followed.path)
        except OSError as exc:
            if not followed.missing_reported:
                followed.missing_reported = True
                self._warn(Anomaly.KEYLOG_UNREADABLE, f"{name}: {os_error(exc)}")
            return 0
        identity = (st.st_dev, st.st_ino)
        regular = stat.S_ISREG(st.st_mode)
        if identity != followed.identity or (regular and st.st_size < followed.offset):
            followed.identity = identity
            followed.offset, followed.partial, followed.skipping, followed.lines = 0, b"", False, 0
        if regular and st.st_size == followed.offset:
            return 0  # nothing appended (a pipe has no size: it is read until it ends)
        count = 0
        try:
            with open(followed.path, "rb") as f:
                if followed.offset:
                    f.seek(followed.offset)
                while chunk := f.read(READ_SIZE):
                    followed.offset += len(chunk)
                    count += self._chunk(followed, chunk)
        except OSError as exc:
            self._warn(Anomaly.KEYLOG_UNREADABLE, f"{name}: {os_error(exc)}")
        followed.missing_reported = False
        return count

    def _chunk(self, followed: _Followed, chunk: bytes) -> int:
        """Split a chunk into lines, keeping the unfinished last one."""
        count = 0
        name = str(followed.path)
        lines = chunk.split(b"\n")
        if followed.skipping:  # inside an overlong line: drop up to its newline
            if len(lines) == 1:
                return 0
            del lines[0]
            followed.lines += 1
            followed.skipping = False
        lines[0] = followed.partial + lines[0]
        followed.partial = lines.pop()
        for line in lines:
            followed.lines += 1
            count += self._line(line, name, followed.lines)
        if len(followed.partial) > MAX_KEYLOG_LINE:
            self._warn(Anomaly.KEYLOG_MALFORMED,
                       f"{name} line {followed.lines + 1}: longer than {MAX_KEYLOG_LINE} bytes")
            followed.partial = b""
            followed.skipping = True
        return count

    def _line(self, raw: bytes, source: str, number: int) -> int:
        if len(raw) > MAX_KEYLOG_LINE:
            self._warn(Anomaly.KEYLOG_MALFORMED,
                       f"{source} line {number}: longer than {MAX_KEYLOG_LINE} bytes")
            return 0
        return self._text_line(raw.decode("ascii", "replace"), source, number)

    def _text_line(self, line: str, source: str, number: int) -> int:
        if number == 1:
            line = line.removeprefix("\ufeff")
        parsed = parse_line(line)
        if parsed is None:
            return 0
        if isinstance(parsed, str):
            self._warn(Anomaly.KEYLOG_MALFORMED, f"{source} line {number}: {parsed}")
            return 0
        label, client_random, secret = parsed
        self._store(client_random, _FIELDS[label], secret)
        return 1

    def _store(self, client_random: bytes, name: str, secret: bytes) -> None:
        entries = self._entries
        old = entries.get(client_random)
        if old is None:
            if len(entries) >= self.max_entries:
                del entries[next(iter(entries))]
                self.dropped += 1
                if self.dropped == 1:
                    self._warn(Anomaly.KEYLOG_LIMIT,
                               f"key logs hold more than {self.max_entries} connections; "
                               "the oldest are dropped")
            old = Secrets()
        entries[client_random] = replace(old, **{name: secret})

    def _warn(self, anomaly: Anomaly, detail: str) -> None:
        if len(self.warnings) < MAX_KEYLOG_WARNINGS:
            self.warnings.append((anomaly, detail))
        else:
            self.suppressed += 1


def _restore(max_entries: int, entries: list[tuple[bytes, Secrets]]) -> KeyLog:
    keylog = KeyLog(max_entries=max_entries)
    keylog._entries.update(entries)
    return keylog

"""Bytes from the wire as safe text: the evidence quoted in records and reasons.

Plaintext seen where TLS was expected (an HTTP status line, an SMTP greeting, a proxy's
answer) is quoted in records and reasons; these helpers turn such bytes into printable
text with everything else escaped, so no terminal, log or report can be driven by it.
:func:`os_error` says in a few words why a file (a capture, a key log) could not be read.
"""

from __future__ import annotations


def printable(data: bytes) -> str:
    """Bytes as text with anything non-printable escaped (safe for logs and terminals)."""
    text = data.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def first_line(data: bytes, limit: int = 120) -> str:
    """The first line of some bytes as printable text (evidence for a reason)."""
    line = data.split(b"\n", 1)[0].rstrip(b"\r")[:limit]
    return printable(line)


def last_line(data: bytes, limit: int = 120) -> str:
    """The last complete non-empty line (the latest reply in a plaintext dialogue); a
    reply with no line end at all (PostgreSQL's one-byte ``N``) as it is."""
    lines = [ln.rstrip(b"\r") for ln in data.split(b"\n")[:-1] if ln.strip()]
    if lines:
        return printable(lines[-1][:limit])
    return "" if b"\n" in data else printable(data.strip()[:limit])


def os_error(exc: OSError) -> str:
    """Why a file could not be read, in a few words (for one-line errors)."""
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    return f"cannot read ({exc.strerror or type(exc).__name__})"

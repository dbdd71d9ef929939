"""Text from a capture made safe for a line-oriented file or a terminal, the way Zeek's
ASCII writer does it: every byte that is not printable ASCII becomes ``\\xNN``, a backslash
becomes ``\\\\``, and so do the characters a format reserves (its separators, a comment or
quote character). Decoding is the exact inverse.

Not here: JSON and CSV escaping (:mod:`analyzer.output`).
"""

from __future__ import annotations

import re

_PRINTABLE = frozenset(range(0x20, 0x7F))


def escape(text: str, reserved: str = "") -> str:
    """``text`` with non-printable bytes (of its UTF-8 form), ``\\`` and ``reserved``
    characters escaped."""
    special = frozenset(reserved.encode())
    data = text.encode("utf-8", "surrogateescape")
    if all(b in _PRINTABLE and b != 0x5C and b not in special for b in data):
        return text
    out: list[str] = []
    for b in data:
        if b == 0x5C:
            out.append("\\\\")
        elif b in _PRINTABLE and b not in special:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


_ESCAPE = re.compile(rb"\\\\|\\x([0-9a-fA-F]{2})")


def unescape(text: str) -> str:
    """The inverse of :func:`escape` (bytes that are not UTF-8 come back as surrogates)."""
    if "\\" not in text:
        return text
    data = _ESCAPE.sub(
        lambda m: b"\\" if m.group(1) is None else bytes([int(m.group(1), 16)]),
        text.encode("utf-8", "surrogateescape"),
    )
    return data.decode("utf-8", "surrogateescape")

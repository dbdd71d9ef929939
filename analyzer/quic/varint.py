"""QUIC variable-length integers (RFC 9000 §16) read from a bounds-checked cursor.

What it does: :func:`varint` reads one 1-, 2-, 4- or 8-byte integer whose length is in
the two high bits of its first byte. What it does not do: encode, or check that the
shortest encoding was used (RFC 9000 allows longer ones except for frame types).
Running past the end raises the cursor's ``Truncated``, which callers turn into anomalies.
"""

from __future__ import annotations

from analyzer.tls.cursor import Cursor


def varint(cur: Cursor) -> int:
    """One variable-length integer (0 .. 2^62-1)."""
    first = cur.u8()
    length = 1 << (first >> 6)
    value = first & 0x3F
    if length > 1:
        value = (value << (8 * (length - 1))) | cur.uint(length - 1)
    return value

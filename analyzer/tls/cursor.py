"""A bounds-checked reader over one complete TLS structure (RFC 8446 §3 presentation language).

What it does: reads big-endian integers (``uint8``..``uint32``), fixed-size byte strings
and length-prefixed vectors from ``bytes``/``memoryview`` without copying the input.
:meth:`Cursor.vector` returns a sub-cursor over exactly the vector's bytes; used as a
context manager it checks on exit that every byte was read, so leftovers inside a
length-prefixed block are caught where they occur.

Integer lists of up to ``MAX_INTERNED_LENGTH`` wire bytes are shared between reads (a
bounded table): equal lists are one tuple, which keeps per-connection memory down.

What it does not do: buffering or "need more" (the input is always a whole structure;
running past its end means the structure is malformed). Errors are the exceptions
:class:`Malformed` and its kinds :class:`Truncated` and :class:`Leftover`: they never
leave :mod:`analyzer.tls`, whose public functions catch them (:func:`total`) and return
:class:`analyzer.tls.events.ParseAnomaly` values instead.
"""

from __future__ import annotations

import builtins
import struct
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from analyzer.anomalies import Anomaly
from analyzer.limits import MAX_INTERNED, MAX_INTERNED_LENGTH
from analyzer.tls.events import ParseAnomaly

T = TypeVar("T")

_UINT_LISTS: dict[tuple[int, builtins.bytes], tuple[int, ...]] = {}
"""Integer lists already read, by (item size, wire bytes): connections from the same client
software share one tuple (and its int objects) instead of holding copies."""


class Malformed(Exception):
    """A structure whose fields do not add up."""


class Truncated(Malformed):
    """A field or vector runs past the end of its enclosing block."""


class Leftover(Malformed):
    """A length-prefixed block with bytes left after its fields."""


class Cursor:
    """Reads forward through ``data``; every read is bounds-checked."""

    __slots__ = ("_data", "_end", "_pos", "_what")

    def __init__(self, data: builtins.bytes | memoryview, what: str = "message") -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._end = len(self._data)
        self._what = what

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    @property
    def at_end(self) -> bool:
        return self._pos == self._end

    def _take(self, n: int) -> memoryview:
        if n > self._end - self._pos:
            raise Truncated(f"{self._what}: {n} bytes wanted, {self._end - self._pos} left")
        view = self._data[self._pos : self._pos + n]
        self._pos += n
        return view

    def uint(self, size: int) -> int:
        """A big-endian unsigned integer of ``size`` bytes."""
        pos = self._pos
        end = pos + size
        if end > self._end:
            raise Truncated(f"{self._what}: {size} bytes wanted, {self._end - pos} left")
        self._pos = end
        data = self._data
        if size == 1:
            return data[pos]
        if size == 2:
            return (data[pos] << 8) | data[pos + 1]
        return int.from_bytes(data[pos:end], "big")

    def u8(self) -> int:
        return self.uint(1)

    def u16(self) -> int:
        return self.uint(2)

    def u24(self) -> int:
        return self.uint(3)

    def u32(self) -> int:
        return self.uint(4)

    def bytes(self, n: int) -> builtins.bytes:
        """Exactly ``n`` bytes."""
        return self._take(n).tobytes()

    def rest(self) -> builtins.bytes:
        """Every byte not read yet."""
        return self._take(self.remaining).tobytes()

    def vector(self, len_bytes: int, what: str | None = None) -> Cursor:
        """A sub-cursor over a vector whose length is in the next ``len_bytes`` bytes.

        Use it as ``with cur.vector(2) as v: ...`` to require that ``v`` is consumed
        exactly (otherwise :class:`Leftover` is raised on leaving the block).
        """
        length = self.uint(len_bytes)
        return Cursor(self._take(length), what or self._what)

    def opaque(self, len_bytes: int) -> builtins.bytes:
        """The contents of a length-prefixed opaque vector."""
        return self._take(self.uint(len_bytes)).tobytes()

    def uint_list(self, len_bytes: int, item_size: int) -> tuple[int, ...]:
        """A length-prefixed vector of fixed-size integers (e.g. ``CipherSuite<2..2^16-2>``)."""
        length = self.uint(len_bytes)
        start = self._pos
        if start + length > self._end:
            raise Truncated(f"{self._what}: {length} bytes wanted, {self._end - start} left")
        if length % item_size:
            raise Malformed(f"{self._what}: {length} bytes, items of {item_size}")
        self._pos = start + length
        small = length <= MAX_INTERNED_LENGTH
        if small:
            key = (item_size, self._data[start : start + length].tobytes())
            known = _UINT_LISTS.get(key)
            if known is not None:
                return known
        value: tuple[int, ...]
        if item_size == 1:
            value = tuple(self._data[start : start + length])
        elif item_size == 2:
            value = struct.unpack_from(f">{length // 2}H", self._data, start)
        else:
            value = tuple(
                int.from_bytes(self._data[i : i + item_size], "big")
                for i in range(start, start + length, item_size)
            )
        if small and len(_UINT_LISTS) < MAX_INTERNED:
            _UINT_LISTS[key] = value
        return value

    def expect_end(self) -> None:
        """Raise :class:`Leftover` unless every byte was read."""
        if self._pos != self._end:
            raise Leftover(f"{self._what}: {self._end - self._pos} bytes left over")

    def __enter__(self) -> Cursor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.expect_end()


def total(
    read: Callable[[Cursor], T],
    data: builtins.bytes,
    what: str,
    malformed: Anomaly = Anomaly.MALFORMED_HANDSHAKE,
) -> T | ParseAnomaly:
    """Run ``read`` over all of ``data``: its value, or the anomaly if ``data`` does not
    parse (``malformed``) or is not consumed exactly (``trailing_bytes``)."""
    cur = Cursor(data, what)
    try:
        with cur:
            return read(cur)
    except Leftover as left:  # (its own name: one name, one type, once compiled)
        return ParseAnomaly(anomaly=Anomaly.TRAILING_BYTES, detail=str(left))
    except Malformed as exc:
        return ParseAnomaly(anomaly=malformed, detail=str(exc))

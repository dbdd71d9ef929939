"""One direction's CRYPTO stream at one encryption level, put back in offset order.

What it does: :class:`CryptoStream` takes CRYPTO frames (RFC 9000 §19.6) as they come,
in any order and repeated any number of times (RFC 9000 §7.5: the data at a given offset
is the same in every copy), and returns the bytes that became contiguous. Out-of-order
data waits in a small buffer; bytes already delivered are dropped. Two waiting copies of
the same offsets that differ give ``quic_crypto_mismatch`` (the first copy is kept).

What it does not do: keep delivered bytes (they go straight to the TLS handshake
reassembler), or parse them. Memory is bounded: data starting more than
``MAX_QUIC_CRYPTO_GAP`` bytes ahead of the delivered offset, or that would make the wait
buffer exceed ``MAX_QUIC_CRYPTO_PENDING`` bytes or ``MAX_QUIC_CRYPTO_SEGMENTS`` pieces, is
dropped with ``quic_crypto_limit`` (a later retransmission can still fill the hole).
"""

from __future__ import annotations

from analyzer.anomalies import Anomaly
from analyzer.limits import MAX_QUIC_CRYPTO_GAP, MAX_QUIC_CRYPTO_PENDING, MAX_QUIC_CRYPTO_SEGMENTS
from analyzer.tls.events import ParseAnomaly


class CryptoStream:
    """Reorders one CRYPTO stream; :meth:`add` returns newly contiguous bytes."""

    __slots__ = ("_delivered", "_pending", "_pending_bytes")

    def __init__(self) -> None:
        self._delivered = 0
        self._pending: dict[int, bytes] = {}
        self._pending_bytes = 0

    @property
    def delivered(self) -> int:
        """Stream offset up to which every byte was returned."""
        return self._delivered

    @property
    def pending(self) -> int:
        """Out-of-order bytes held."""
        return self._pending_bytes

    def add(self, offset: int, data: bytes) -> tuple[bytes, list[ParseAnomaly]]:
        """Add one frame's data; return the bytes now contiguous and any anomalies."""
        end = offset + len(data)
        if end <= self._delivered:
            return b"", []  # a retransmission of delivered bytes
        if offset > self._delivered + MAX_QUIC_CRYPTO_GAP:
            return b"", [_limit(f"CRYPTO at offset {offset}, {self._delivered} delivered")]
        if offset < self._delivered:
            data = data[self._delivered - offset :]
            offset = self._delivered
        if offset > self._delivered:
            return b"", self._hold(offset, data)
        out = bytearray(data)
        self._delivered = end
        for start in sorted(self._pending):
            if start > self._delivered:
                break
            piece = self._pending.pop(start)
            self._pending_bytes -= len(piece)
            piece_end = start + len(piece)
            if piece_end > self._delivered:
                out += piece[self._delivered - start :]
                self._delivered = piece_end
        return bytes(out), []

    def _hold(self, offset: int, data: bytes) -> list[ParseAnomaly]:
        anomalies: list[ParseAnomaly] = []
        end = offset + len(data)
        for start, piece in self._pending.items():
            lo, hi = max(start, offset), min(start + len(piece), end)
            if lo < hi and piece[lo - start : hi - start] != data[lo - offset : hi - offset]:
                detail = f"CRYPTO bytes {lo}-{hi} differ between copies"
                anomalies.append(ParseAnomaly(anomaly=Anomaly.QUIC_CRYPTO_MISMATCH, detail=detail))
                return anomalies
        known = self._pending.get(offset)
        if known is not None and len(known) >= len(data):
            return anomalies  # the same piece again
        grown = len(data) - (len(known) if known is not None else 0)
        if (
            self._pending_bytes + grown > MAX_QUIC_CRYPTO_PENDING
            or (known is None and len(self._pending) >= MAX_QUIC_CRYPTO_SEGMENTS)
        ):
            anomalies.append(_limit(f"{self._pending_bytes} out-of-order CRYPTO bytes held"))
            return anomalies
        self._pending[offset] = data
        self._pending_bytes += grown
        return anomalies


def _limit(detail: str) -> ParseAnomaly:
    return ParseAnomaly(anomaly=Anomaly.QUIC_CRYPTO_LIMIT, detail=detail)

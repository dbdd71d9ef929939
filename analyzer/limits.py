"""Every cap and timeout, named, with the reason for the number.

Hitting a limit never raises: the stage records an anomaly (see :mod:`analyzer.anomalies`)
and carries on. Timeouts are in seconds of packet time, never wall-clock time.
"""

from __future__ import annotations

MAX_TLS_RECORD = (1 << 14) + 2048
"""RFC 8446 §5.2: TLSCiphertext.length must not exceed 2^14 + 256; TLS 1.2 allows 2^14 + 2048."""

MAX_HANDSHAKE_MESSAGE = 256 * 1024
"""A certificate chain is the largest handshake message seen in practice (tens of KB).
Anything bigger is buffered no further: memory stays bounded per connection."""

MAX_OOO_BYTES = 256 * 1024
"""Out-of-order bytes buffered per direction before the hole is declared a gap. A 64 KB
window with window scaling rarely exceeds this before the hole is filled."""

MAX_OOO_SEGMENTS = 256
"""Out-of-order segments buffered per direction (bounds per-segment overhead)."""

MAX_UNACKED_BYTES = 64 * 1024
"""Delivered bytes kept per direction until the peer acknowledges them, only to compare a
retransmitted copy with the first one (``overlap_mismatch``). Acknowledgements keep this to
the bytes in flight; 64 KB covers a handshake flight with a large certificate chain. Older
bytes are forgotten (a later copy of them is then not compared), never an anomaly."""

MAX_UNACKED_SEGMENTS = 256
"""Segments kept for that comparison per direction (bounds the work per retransmission)."""

MAX_FLOWS = 200_000
"""Live connections in the flow table; beyond this the oldest by packet time is evicted.
About 1 KB each when idle: a 200 MB ceiling for the worst case."""

MAX_ALERTS = 32
"""Alerts kept per connection; a peer that sends more is odd, not more informative."""

MAX_HISTORY = 100
"""Letters kept in ``history`` (Zeek truncates similarly)."""

MAX_ANOMALIES = 32
"""Distinct anomaly codes kept per connection."""

MAX_CHAIN_CERTS = 16
"""Certificates kept from one Certificate message."""

IDLE_TIMEOUT = 300.0
"""Seconds of packet time without a packet after which a connection is settled as
``idle_timeout``. Chosen like common firewall idle timers for established TCP."""

HANDSHAKE_IDLE_TIMEOUT = 60.0
"""A connection still in its handshake and silent this long is settled early: no real
client waits longer for a ServerHello."""

SYN_TIMEOUT = 30.0
"""An unanswered SYN settles as ``tcp_no_answer`` after this long (Linux gives up on a
SYN after ~127 s but clients usually time out sooner)."""

INCOMPLETE_GRACE = 3.0
"""SPEC §4: a handshake cut by the end of the capture is ``incomplete`` (not blamed) when
its last packet is less than this many seconds before the end of the capture."""

EXPIRY_WARNING_DAYS = 30
"""``cert_expiring_soon`` when the leaf expires within this many days of the capture."""

MAX_PREAMBLE = 16 * 1024
"""Plaintext bytes kept per direction before TLS starts (HTTP CONNECT request and
response headers, a STARTTLS dialogue). Real preambles are a few hundred bytes."""

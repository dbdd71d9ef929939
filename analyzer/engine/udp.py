"""The UDP seam: which handshake transport a datagram starts, QUIC or DTLS.

A datagram on a 4-tuple the engine does not know yet starts a connection when its first
bytes say so, on any port (SPEC §2): a QUIC long header (RFC 9000 §17.2: the two high bits
set, then a 32-bit version) or a DTLS record (RFC 6347 §4.1: content type 20-25 and a DTLS
version; RFC 9147 §4: the unified header). The transports themselves (connection IDs,
Initial keys, records, fragments) live beside TCP's, in their own packages; this module
only recognises and orients a new connection.

Other UDP traffic (DNS, STUN, RTP before a WebRTC association's first DTLS record, ...)
starts nothing: each of its datagrams is looked at again, cheaply.
"""

from __future__ import annotations

from typing import Final

from analyzer.decode.types import Datagram
from analyzer.dtls import Opening, opening
from analyzer.dtls.connection import DtlsConnection
from analyzer.flows.connection import DatagramConnection

DTLS_PORTS: Final = frozenset({443, 4433, 5061, 5684})
"""UDP ports where DTLS is expected (AnyConnect/OpenConnect, OpenSSL's default, SIP over
DTLS, CoAP over DTLS): records there are reported even when no ClientHello was seen."""


def open_connection(dgram: Datagram, *, ports: frozenset[int]) -> DatagramConnection | None:
    """A new connection for the first datagram of a 4-tuple, oriented client -> server;
    None when the datagram starts no handshake transport. ``ports``: where DTLS is
    expected."""
    start = opening(dgram.payload)
    if start is None:
        return None
    key = (dgram.src, dgram.sport, dgram.dst, dgram.dport)
    if start is Opening.RECORD and (
        dgram.sport in ports or (dgram.dport not in ports and dgram.sport < dgram.dport)
    ):
        # Joined mid-association: the side on a DTLS port, else the lower port, serves.
        key = (dgram.dst, dgram.dport, dgram.src, dgram.sport)
    return DtlsConnection(key, dgram.ts, dtls_port=key[3] in ports)

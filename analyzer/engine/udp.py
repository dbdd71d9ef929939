"""The UDP seam: which handshake transport a datagram starts, QUIC or DTLS, and which QUIC
connection a datagram on an unknown 4-tuple belongs to.

A datagram on a 4-tuple the engine does not know yet starts a connection when its first
bytes say so (SPEC §2), QUIC first:

- a QUIC long header (RFC 9000 §17.2) of a version this analyzer reads, on any port: an
  Initial or 0-RTT packet with its fixed bit set comes from the client (unless it comes
  from a QUIC port to another port: the capture missed the client's first Initial), a
  Handshake or Retry packet from the side on a QUIC port (else the lower port);
- on a QUIC port (UDP 443 and ``--tls-port`` ports), also a long header of an unknown
  version (RFC 8999 §5.1: the client, probing) or a Version Negotiation packet (from the
  server);
- a DTLS record (RFC 6347 §4.1: content type 20-25 and a DTLS version; RFC 9147 §4: the
  unified header). Their first bytes never overlap with QUIC's (RFC 7983 §7).

QUIC connections are also known by their connection IDs (RFC 9000 §5.1, §9): the client's
first Destination Connection ID, the Retry's, and each side's Source Connection ID. A
datagram on an unknown 4-tuple whose DCID is one of them belongs to that connection: the
client moved (migration, RFC 9000 §9) or a NAT gave it a new port (rebinding). Short
headers carry no length for their DCID, so each length in use is tried. Connection IDs
shorter than ``MIN_QUIC_ROUTING_ID`` bytes are not used (too likely to match by chance);
each connection registers at most ``MAX_QUIC_ROUTING_IDS`` of them and they are forgotten
with it, so the index is bounded by the flow table's own limits. Two connections claiming
one ID: the first keeps it.

Other UDP traffic (DNS, STUN, RTP before a WebRTC association's first DTLS record, ...)
starts nothing: each of its datagrams is looked at again, cheaply.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

from analyzer.decode.types import Datagram
from analyzer.dtls import Opening, opening
from analyzer.dtls.connection import DtlsConnection
from analyzer.flows.connection import DatagramConnection
from analyzer.limits import MAX_QUIC_ROUTING_IDS, MIN_QUIC_ROUTING_ID
from analyzer.quic import PacketType, peek_long_header
from analyzer.quic.connection import QuicConnection
from analyzer.tls.keylog import KeyLog

DTLS_PORTS: Final = frozenset({443, 4433, 5061, 5684})
"""UDP ports where DTLS is expected (AnyConnect/OpenConnect, OpenSSL's default, SIP over
DTLS, CoAP over DTLS): records there are reported even when no ClientHello was seen."""

QUIC_PORTS: Final = frozenset({443})
"""UDP ports where QUIC is expected (HTTP/3): unknown versions and Version Negotiation
start a connection there, and a connection is reported even without a ClientHello."""

_LONG_FIXED = 0xC0
"""Header form and fixed bits of a long header (RFC 9000 §17.2)."""
_FIXED = 0x40
_FORM = 0x80


class UdpSeam:
    """Opens QUIC connections and DTLS associations, and finds QUIC connections by ID."""

    __slots__ = ("_by_id", "_lengths", "dtls_ports", "keylog", "quic_ports")

    def __init__(self, *, dtls_ports: frozenset[int], quic_ports: frozenset[int],
                 keylog: KeyLog | None = None) -> None:
        self.dtls_ports = dtls_ports
        self.quic_ports = quic_ports
        self.keylog = keylog
        self._by_id: dict[bytes, tuple[QuicConnection, bool]] = {}
        """Connection ID -> (connection, whether packets carrying it go to the client)."""
        self._lengths: Counter[int] = Counter()
        """Lengths of the IDs in the index (short headers are tried at each)."""

    def __len__(self) -> int:
        return len(self._by_id)

    # ------------------------------------------------------------------ opening

    def open(self, dgram: Datagram) -> DatagramConnection | None:
        """A new connection for the first datagram of a 4-tuple, oriented client ->
        server; None when the datagram starts no handshake transport."""
        payload = dgram.payload
        if payload and payload[0] & _FORM:
            return self._open_quic(dgram)
        start = opening(payload)
        if start is None:
            return None
        key = (dgram.src, dgram.sport, dgram.dst, dgram.dport)
        ports = self.dtls_ports
        if start is Opening.RECORD and (
            dgram.sport in ports or (dgram.dport not in ports and dgram.sport < dgram.dport)
        ):
            # Joined mid-association: the side on a DTLS port, else the lower port, serves.
            key = (dgram.dst, dgram.dport, dgram.src, dgram.sport)
        return DtlsConnection(key, dgram.ts, dtls_port=key[3] in ports)

    def _open_quic(self, dgram: Datagram) -> QuicConnection | None:
        ids = peek_long_header(dgram.payload)
        if ids is None:
            return None
        ports = self.quic_ports
        to_quic_port = dgram.dport in ports and dgram.sport not in ports
        from_quic_port = dgram.sport in ports and dgram.dport not in ports
        if not ids.known:
            from_client = to_quic_port  # a client's probe of a version we cannot read
            if not (to_quic_port or from_quic_port):
                return None
        elif ids.type is PacketType.version_negotiation:
            if not from_quic_port:
                return None
            from_client = False
        elif ids.type in (PacketType.initial, PacketType.zero_rtt):
            if dgram.payload[0] & _LONG_FIXED != _LONG_FIXED:
                return None
            from_client = not from_quic_port
        else:  # Handshake or Retry: the capture joined after the client's Initial
            from_client = to_quic_port or (not from_quic_port and dgram.sport > dgram.dport)
        key = (dgram.src, dgram.sport, dgram.dst, dgram.dport)
        if not from_client:
            key = (dgram.dst, dgram.dport, dgram.src, dgram.sport)
        first = ids.known and ids.type is PacketType.initial and from_client
        return QuicConnection(key, dgram.ts, quic_port=key[3] in ports, from_start=first,
                              keylog=self.keylog)

    # ------------------------------------------------------------------ connection IDs

    def find(self, payload: bytes) -> tuple[QuicConnection, bool] | None:
        """The QUIC connection a datagram on an unknown 4-tuple belongs to, by its
        Destination Connection ID, and whether the datagram comes from the client."""
        by_id = self._by_id
        if not by_id or not payload:
            return None
        if payload[0] & _FORM:
            ids = peek_long_header(payload)
            found = by_id.get(ids.dcid) if ids is not None else None
        elif payload[0] & _FIXED:
            found = None
            for length in self._lengths:
                found = by_id.get(payload[1 : 1 + length])
                if found is not None and len(payload) > length:
                    break
                found = None
        else:
            return None
        if found is None:
            return None
        conn, to_client = found
        return conn, not to_client

    def learn(self, conn: QuicConnection) -> None:
        """Index the connection IDs the connection's packets showed so far."""
        if len(conn.routing_ids) >= MAX_QUIC_ROUTING_IDS:
            return
        for cid, to_client in conn.parser.connection_ids():
            if len(conn.routing_ids) >= MAX_QUIC_ROUTING_IDS:
                return
            if len(cid) < MIN_QUIC_ROUTING_ID or cid in conn.routing_ids:
                continue
            conn.routing_ids.append(cid)
            if cid not in self._by_id:
                self._by_id[cid] = (conn, to_client)
                self._lengths[len(cid)] += 1

    def forget(self, conn: QuicConnection) -> None:
        """The connection was reported: its IDs route nothing any more."""
        for cid in conn.routing_ids:
            found = self._by_id.get(cid)
            if found is not None and found[0] is conn:
                del self._by_id[cid]
                self._lengths[len(cid)] -= 1
                if not self._lengths[len(cid)]:
                    del self._lengths[len(cid)]
        conn.routing_ids.clear()

"""The DTLS transport: one association's datagrams in, its TLS events out to the handshake core.

A :class:`DtlsConnection` is the adapter between the engine's UDP seam and the handshake
core: its :class:`~analyzer.dtls.parser.DTLSAssociation` turns each datagram into TLS events
(records by epoch, handshake fragments reassembled, retransmitted flights folded), which go
to the core exactly as TCP's do; what only DTLS has (flights resent, the largest datagram
each side sent, the cookie round, messages that never arrived whole) becomes the transport
facts of the record. A message resent whole adds its ``history`` letter again, as Zeek's
DTLS analyzer hands it to its handshake parser again. The side that sent the first
ClientHello is the client. Once the core has settled, datagrams are only counted.

Not decrypted: DTLS records are read as the wire shows them (key logs serve TLS and QUIC).
"""

from __future__ import annotations

from analyzer.dtls.demux import Opening, opening
from analyzer.dtls.events import Retransmission
from analyzer.dtls.parser import DTLSAssociation
from analyzer.flows.connection import DatagramConnection
from analyzer.flows.table import FlowKey
from analyzer.handshake import machine
from analyzer.handshake.build import TransportFacts
from analyzer.handshake.core import HandshakeCore


class DtlsConnection(DatagramConnection):
    """The DTLS side of one association."""

    __slots__ = (
        "client_bytes",
        "client_datagrams",
        "dtls_port",
        "parser",
        "server_bytes",
        "server_datagrams",
    )

    def __init__(self, key: FlowKey, ts: float, *, dtls_port: bool) -> None:
        super().__init__(key, ts, HandshakeCore(ts, stage="client_hello"))
        self.core.from_start = True  # a DTLS server cannot speak before the ClientHello
        self.parser = DTLSAssociation()
        self.dtls_port = dtls_port
        self.client_bytes = 0
        self.server_bytes = 0
        self.client_datagrams = 0
        self.server_datagrams = 0

    def datagram(self, from_client: bool, payload: bytes, ts: float) -> None:
        """One datagram of the association (UDP payload)."""
        if from_client:
            self.client_bytes += len(payload)
            self.client_datagrams += 1
        else:
            self.server_bytes += len(payload)
            self.server_datagrams += 1
        if self.settled:
            return
        core = self.core
        for event in self.parser.datagram(from_client, payload, ts):
            if isinstance(event, Retransmission):
                side = "client" if from_client else "server"
                core.note(ts, side, f"flight resent ({event.items} records, {event.length} bytes)")
                for step in event.repeated:  # Zeek counts whole resent messages again
                    core.add_letter(machine.letter(from_client, step))
                continue
            core.event(from_client, event, ts)
            if core.settled:
                self.settle()
                return

    def starts_anew(self, from_client: bool, payload: bytes) -> bool:
        """A ClientHello of epoch 0 after the client went on to epoch 1: a new association
        on the same 4-tuple (the client's port reused)."""
        return (
            from_client
            and self.parser.client_epoch >= 1
            and opening(payload) is Opening.CLIENT_HELLO
        )

    def relevant(self) -> bool:
        """A ClientHello, or DTLS records on a DTLS port (a capture that joined late)."""
        return self.core.ch is not None or self.dtls_port

    def facts(self) -> TransportFacts:
        f = self.parser.facts()
        return TransportFacts(
            key=self.key,
            first_ts=self.core.first_ts,
            last_ts=self.last_ts,
            transport="dtls",
            client_bytes=self.client_bytes,
            server_bytes=self.server_bytes,
            packets=self.packets,
            client_retransmits=f.client.flights_resent,
            server_retransmits=f.server.flights_resent,
            client_max_datagram=f.client.largest_datagram,
            server_max_datagram=f.server.largest_datagram,
            dtls_cookie_length=f.hello_verify_cookie,
            dtls_cookie_echoed=f.cookie_echoed,
            dtls_client_datagrams=self.client_datagrams,
            dtls_server_datagrams=self.server_datagrams,
            dtls_client_incomplete=f.client.incomplete_messages,
            dtls_server_incomplete=f.server.incomplete_messages,
            icmp_error=self.icmp_error,
            icmp_from=self.icmp_from,
            icmp_mtu=self.icmp_mtu,
        )

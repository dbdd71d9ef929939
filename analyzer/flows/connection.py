"""What every transport's connection shares: a 4-tuple, its handshake core, time and counts,
ICMP errors, and how the engine reports it.

:class:`Connection` is the base of the transport adapters: TCP (:mod:`analyzer.flows.tcp`),
DTLS (:mod:`analyzer.dtls.connection`) and QUIC (:mod:`analyzer.quic.connection`). The
engine keeps them in flow tables, reports each once with :meth:`Connection.record`, and
never looks inside the transport.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr

from analyzer.anomalies import Anomaly
from analyzer.decode.icmp import describe_unreachable, error_name
from analyzer.decode.types import IcmpUnreachable
from analyzer.flows.table import FlowKey
from analyzer.handshake.build import TransportFacts, build_record, ip_text
from analyzer.handshake.core import HandshakeCore
from analyzer.record import HandshakeRecord


@mypyc_attr(allow_interpreted_subclasses=True)
class Connection:
    """One connection of any transport, feeding its handshake core."""

    __slots__ = (
        "closed",
        "core",
        "icmp_error",
        "icmp_from",
        "icmp_mtu",
        "key",
        "last_ts",
        "packets",
        "reported",
        "settled",
    )

    def __init__(self, key: FlowKey, ts: float, core: HandshakeCore) -> None:
        self.key = key
        """(client ip, client port, server ip, server port)."""
        self.last_ts = ts
        self.core = core
        self.packets = 0
        self.settled = False
        """The handshake is settled: packets are only counted from now on."""
        self.closed = False
        self.reported = False
        self.icmp_error: str | None = None
        self.icmp_from: str | None = None
        self.icmp_mtu: int | None = None

    @property
    def established(self) -> bool:
        return self.core.established

    def is_settled(self) -> bool:
        """:attr:`settled`, read again after a call that may have changed it."""
        return self.settled

    def note(self, ts: float, sender: str, what: str) -> None:
        self.core.note(ts, sender, what)

    def anomaly(self, code: Anomaly | str) -> None:
        self.core.anomaly(code)

    def settle(self) -> None:
        """Stop parsing: from now on packets are only counted."""
        if not self.settled:
            self.settled = True
            self.core.settle()

    def icmp_unreachable(self, error: IcmpUnreachable) -> None:
        """An ICMP destination-unreachable error quoting a packet of this connection: the
        first one is kept for the record, every one goes to the timeline."""
        sender = ip_text(error.src)
        if self.icmp_error is None:
            self.icmp_error = error_name(error)
            self.icmp_from = sender
            self.icmp_mtu = error.mtu
        src, sport = error.key[0], error.key[1]
        about = "client" if src == self.key[0] and sport == self.key[1] else "server"
        self.note(error.ts, "-", f"{describe_unreachable(error)} from {sender}, "
                  f"quoting a {about} packet")

    def flush(self) -> None:
        """The connection ended: judge what its transport still holds (nothing, here)."""

    def relevant(self) -> bool:
        """Whether the connection gets a record (SPEC §2)."""
        return self.core.ch is not None

    def close_reason(self, *, idle: bool = False) -> str:
        """How the connection ended when no packet of its own closed it."""
        return "idle_timeout" if idle else "capture_end"

    def facts(self) -> TransportFacts:
        """What the transport saw of the connection, for the record."""
        raise NotImplementedError

    def record(self, capture: str, close: str, capture_end: float | None) -> HandshakeRecord:
        return build_record(
            self.core, self.facts(), capture=capture, close=close, capture_end=capture_end
        )


@mypyc_attr(allow_interpreted_subclasses=True)
class DatagramConnection(Connection):
    """A connection over UDP (QUIC, DTLS): the engine hands it whole datagrams."""

    __slots__ = ()

    def datagram(self, from_client: bool, payload: bytes, ts: float) -> None:
        """One datagram of the connection (its UDP payload); once settled, only counted."""
        raise NotImplementedError

    def starts_anew(self, from_client: bool, payload: bytes) -> bool:
        """Whether a datagram on this connection's 4-tuple starts a new connection (the
        client's port reused), so this one ends."""
        return False

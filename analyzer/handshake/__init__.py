"""The handshake core: one TLS handshake's facts, whichever transport carries it.

TCP (:mod:`analyzer.flows.tcp`) feeds it reassembled TLS bytes; QUIC (CRYPTO frames) and
DTLS (records and fragments) feed it the same TLS events from their own framing.
:mod:`.core` applies the transition table (:mod:`.machine`) and the joint rules and keeps
the facts; :mod:`.build` is the one place that turns them, with the transport's own facts,
into a :class:`~analyzer.record.HandshakeRecord`.
"""

from analyzer.handshake.build import TransportFacts, build_record
from analyzer.handshake.core import HandshakeCore

__all__ = ["HandshakeCore", "TransportFacts", "build_record"]

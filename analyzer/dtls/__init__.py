"""DTLS, sans-IO: one association's UDP datagrams in, the TLS layer's events out.

:func:`opening` tells the engine whether a datagram starts a DTLS association (and
whether its sender is the client); :class:`DTLSAssociation` parses one association;
:func:`channel` sorts the protocols sharing a WebRTC 5-tuple (RFC 7983).
"""

from analyzer.dtls.demux import Channel, Opening, channel, opening
from analyzer.dtls.events import DTLSEvent, DTLSFacts, Retransmission, SideFacts
from analyzer.dtls.parser import DTLSAssociation

__all__ = [
    "Channel",
    "DTLSAssociation",
    "DTLSEvent",
    "DTLSFacts",
    "Opening",
    "Retransmission",
    "SideFacts",
    "channel",
    "opening",
]

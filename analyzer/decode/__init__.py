"""Frame decoding: link layer -> IP -> TCP segment / UDP datagram / ICMP unreachable
error about TCP / skip (no I/O)."""

from analyzer.decode.frames import decode_frame, format_ip, tcp_count_view
from analyzer.decode.types import (
    ACK,
    FIN,
    PSH,
    RST,
    SYN,
    URG,
    Datagram,
    Decoded,
    IcmpUnreachable,
    Segment,
    Skipped,
)

__all__ = [
    "ACK",
    "FIN",
    "PSH",
    "RST",
    "SYN",
    "URG",
    "Datagram",
    "Decoded",
    "IcmpUnreachable",
    "Segment",
    "Skipped",
    "decode_frame",
    "format_ip",
    "tcp_count_view",
]

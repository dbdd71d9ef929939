"""What the rules read off a record beyond its fields: version ranks, whether the capture
cut the connection, whether the client sent data after its handshake."""

from __future__ import annotations

from analyzer.anomalies import Anomaly
from analyzer.limits import INCOMPLETE_GRACE
from analyzer.record import HandshakeRecord

ALERT_SIZED = 24
"""SPEC §3: an encrypted record of at most this many payload bytes may be an alert."""
VERSION_RANK = {
    "SSLv2": 0,
    "SSLv3": 1,
    "TLSv1.0": 2,
    "TLSv1.1": 3,
    "TLSv1.2": 4,
    "TLSv1.3": 5,
    # DTLS 1.0 is TLS 1.1 over datagrams, DTLS 1.2 is TLS 1.2 (RFC 6347 §1), DTLS 1.3 is
    # TLS 1.3 (RFC 9147); OpenConnect's pre-standard 0x0100 predates DTLS 1.0.
    "DTLSv0.9": 2,
    "DTLSv1.0": 3,
    "DTLSv1.2": 4,
    "DTLSv1.3": 5,
}
OLD_VERSIONS_MAX = 3
"""Clients whose best offer ranks at most TLSv1.1 meet servers that require TLS 1.2+."""
EVICTED = str(Anomaly.FLOW_TABLE_LIMIT)


def rank(version: str) -> int:
    if version in VERSION_RANK:
        return VERSION_RANK[version]
    return 5 if version.startswith(("0x7f", "0x7e")) else -1


def captured_to_end(r: HandshakeRecord) -> bool:
    """The capture ended while this connection was still going, within the grace time,
    with nobody having given up (SPEC §4 ``incomplete``). A connection the analyzer let go
    of because its table was full counts as cut by the capture at that moment."""
    return (
        (r.close == "capture_end" or EVICTED in r.anomalies)
        and r.capture_end is not None
        and r.capture_end - r.ts_end < INCOMPLETE_GRACE
        and r.client_retransmits == 0
    )


def client_sent_data(r: HandshakeRecord) -> bool:
    """Whether the client sent application data after the handshake (the record's
    ``client_data``: the server's data alone does not say the client accepted it)."""
    return r.client_data

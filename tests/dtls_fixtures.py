"""Byte fixtures for the DTLS tests, as commented hex, and builders for whole flights.

Formats: RFC 6347 §4.1 (DTLSPlaintext: type, version, epoch, 48-bit sequence number,
length), §4.2.2 (handshake header: msg_type, length, message_seq, fragment_offset,
fragment_length), §4.2.1 (ClientHello cookie, HelloVerifyRequest); RFC 9147 §4 (unified
header ``001CSLEE``). Built by hand field by field.
"""

from __future__ import annotations

from tests.tls_fixtures import h

# RFC 6347 §4.1: a handshake record, DTLS 1.0 record version, epoch 0, sequence 0,
# carrying one whole ClientHello (RFC 6347 §4.2.1) with an empty cookie.
CLIENT_HELLO_BODY = h("""
fe fd                                           # client_version DTLS 1.2
00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f # random
10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f
00                                              # session_id: empty
00                                              # cookie: empty
00 06 c0 2b c0 2f 0a 0a                         # cipher_suites: c02b c02f GREASE
01 00                                           # compression: null
00 2f                                           # extensions, 47 bytes
  00 00 00 11 00 0f 00 00 0c                    # server_name: host_name, 12 bytes
    64 74 6c 73 2e 65 78 61 6d 70 6c 65         #   "dtls.example"
  00 0a 00 06 00 04 00 1d 00 17                 # supported_groups: x25519 secp256r1
  00 0b 00 02 01 00                             # ec_point_formats: uncompressed
  00 0d 00 06 00 04 04 03 08 04                 # signature_algorithms, 2 schemes
""")

CLIENT_HELLO_DATAGRAM = (
    h("""
16                                              # content type handshake
fe ff                                           # record version DTLS 1.0
00 00                                           # epoch 0
00 00 00 00 00 00                               # sequence number 0
00 6b                                           # length 107
01                                              # msg_type client_hello
00 00 5f                                        # length 95
00 00                                           # message_seq 0
00 00 00                                        # fragment_offset 0
00 00 5f                                        # fragment_length 95
""")
    + CLIENT_HELLO_BODY
)

# RFC 6347 §4.2.1 HelloVerifyRequest: server_version and a 4-byte cookie.
HELLO_VERIFY_BODY = h("""
fe ff                                           # server_version DTLS 1.0
04 c0 ff ee 00                                  # cookie: 4 bytes
""")

# RFC 9147 §4: 0x2c = 001 C=0 S=1 L=1 EE=00: 16-bit sequence number and a length.
UNIFIED_RECORD = h("""
2c                                              # 001 0 1 1 00
12 34                                           # sequence number (encrypted)
00 05                                           # length 5
de ad be ef 00                                  # encrypted record
""")

# RFC 9147 §4: 0x22 = 001 C=0 S=0 L=0 EE=10: 8-bit sequence, no length (to the end).
UNIFIED_NO_LENGTH = h("""
22                                              # 001 0 0 0 10
07                                              # sequence number (encrypted)
01 02 03 04 05 06                               # the rest of the datagram
""")


def record(
    ctype: int, payload: bytes, *, epoch: int = 0, seq: int = 0, version: int = 0xFEFD
) -> bytes:
    """One DTLSPlaintext record (RFC 6347 §4.1)."""
    return (
        bytes([ctype])
        + version.to_bytes(2, "big")
        + epoch.to_bytes(2, "big")
        + seq.to_bytes(6, "big")
        + len(payload).to_bytes(2, "big")
        + payload
    )


def fragment(
    msg_type: int, seq: int, body: bytes, offset: int = 0, size: int | None = None
) -> bytes:
    """One handshake fragment (RFC 6347 §4.2.2) of ``body`` from ``offset``."""
    part = body[offset : len(body) if size is None else offset + size]
    return (
        bytes([msg_type])
        + len(body).to_bytes(3, "big")
        + seq.to_bytes(2, "big")
        + offset.to_bytes(3, "big")
        + len(part).to_bytes(3, "big")
        + part
    )


def fragments(msg_type: int, seq: int, body: bytes, size: int) -> list[bytes]:
    """``body`` cut into fragments of at most ``size`` bytes, in order."""
    if not body:
        return [fragment(msg_type, seq, body)]
    return [fragment(msg_type, seq, body, off, size) for off in range(0, len(body), size)]


def client_hello_body(cookie: bytes = b"") -> bytes:
    """CLIENT_HELLO_BODY with ``cookie`` in its cookie field."""
    at = 2 + 32 + 1
    return CLIENT_HELLO_BODY[:at] + bytes([len(cookie)]) + cookie + CLIENT_HELLO_BODY[at + 1 :]


SERVER_HELLO_BODY = h("""
fe fd                                           # server_version DTLS 1.2
20 21 22 23 24 25 26 27 28 29 2a 2b 2c 2d 2e 2f # random
30 31 32 33 34 35 36 37 38 39 3a 3b 3c 3d 3e 3f
00                                              # session_id: empty
c0 2f                                           # cipher_suite
00                                              # compression
00 05 ff 01 00 01 00                            # renegotiation_info: empty
""")

SKE_BODY = h("03 00 1d 04 01 02 03 04")  # ECDHE x25519, a 4-byte point (RFC 8422 §5.4)

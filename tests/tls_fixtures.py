"""Byte fixtures for the TLS parser tests, as commented hex.

``h()`` drops ``#`` comments and whitespace. Handshake messages include their 4-byte
header; ``record()`` wraps bytes in TLS records. Sources: RFC 8448 §3 (the "Simple 1-RTT
Handshake" trace), RFC 8446 §4.1.3 (HelloRetryRequest random), RFC 5246 E.2 (SSLv2
hello); the others are built by hand field by field.
"""

from __future__ import annotations


def h(text: str) -> bytes:
    """Hex with ``#`` comments and any whitespace."""
    lines = (line.split("#", 1)[0] for line in text.splitlines())
    return bytes.fromhex("".join("".join(lines).split()))


def record(content_type: int, payload: bytes, version: int = 0x0303) -> bytes:
    """One TLS record around ``payload``."""
    header = bytes([content_type]) + version.to_bytes(2, "big") + len(payload).to_bytes(2, "big")
    return header + payload


def body(message: bytes) -> bytes:
    """A handshake message without its 4-byte header."""
    return message[4:]


# RFC 8448 §3, {client} send handshake record: ClientHello (TLS 1.3, SNI "server").
RFC8448_CLIENT_HELLO = h("""
01 00 00 c0                                     # client_hello, 192 bytes
03 03                                           # legacy_version TLS 1.2
cb 34 ec b1 e7 81 63 ba 1c 38 c6 da cb 19 6a 6d # random
ff a2 1a 8d 99 12 ec 18 a2 ef 62 83 02 4d ec e7
00                                              # legacy_session_id: empty
00 06 13 01 13 03 13 02                         # cipher_suites: 1301 1303 1302
01 00                                           # compression: null
00 91                                           # extensions, 145 bytes
  00 00 00 0b 00 09 00 00 06 73 65 72 76 65 72  # server_name: host_name "server"
  ff 01 00 01 00                                # renegotiation_info: empty
  00 0a 00 14 00 12                             # supported_groups, 9 groups
    00 1d 00 17 00 18 00 19 01 00 01 01 01 02 01 03 01 04
  00 23 00 00                                   # session_ticket: empty
  00 33 00 26 00 24                             # key_share: one entry
    00 1d 00 20                                 # x25519, 32-byte key
    99 38 1d e5 60 e4 bd 43 d2 3d 8e 43 5a 7d ba fe
    b3 c0 6e 51 c1 3c ae 4d 54 13 69 1e 52 9a af 2c
  00 2b 00 03 02 03 04                          # supported_versions: TLS 1.3
  00 0d 00 20 00 1e                             # signature_algorithms, 15 schemes
    04 03 05 03 06 03 02 03 08 04 08 05 08 06 04 01
    05 01 06 01 02 01 04 02 05 02 06 02 02 02
  00 2d 00 02 01 01                             # psk_key_exchange_modes: psk_dhe_ke
  00 1c 00 02 40 01                             # record_size_limit: 16385
""")

# RFC 8448 §3, {server} send handshake record: ServerHello.
RFC8448_SERVER_HELLO = h("""
02 00 00 56                                     # server_hello, 86 bytes
03 03                                           # legacy_version
a6 af 06 a4 12 18 60 dc 5e 6e 60 24 9c d3 4c 95 # random
93 0c 8a c5 cb 14 34 da c1 55 77 2e d3 e2 69 28
00                                              # legacy_session_id_echo: empty
13 01                                           # TLS_AES_128_GCM_SHA256
00                                              # compression: null
00 2e                                           # extensions, 46 bytes
  00 33 00 24 00 1d 00 20                       # key_share: x25519, 32-byte key
    c9 82 88 76 11 20 95 fe 66 76 2b db f7 c6 72 e1
    56 d6 cc 25 3b 83 3d f1 dd 69 b1 b0 4e 75 1f 0f
  00 2b 00 02 03 04                             # supported_versions: TLS 1.3
""")

# A TLS 1.2 ClientHello as a browser sends it: GREASE, SNI, ALPN.
TLS12_CLIENT_HELLO = h("""
01 00 00 82                                     # client_hello, 130 bytes
03 03                                           # client_version TLS 1.2
00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f # random
10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f
00                                              # session_id: empty
00 08                                           # cipher_suites, 4 suites
  0a 0a                                         #   GREASE
  c0 2f                                         #   ECDHE_RSA_WITH_AES_128_GCM_SHA256
  c0 30                                         #   ECDHE_RSA_WITH_AES_256_GCM_SHA384
  00 ff                                         #   EMPTY_RENEGOTIATION_INFO_SCSV
01 00                                           # compression: null
00 51                                           # extensions, 81 bytes
  1a 1a 00 00                                   # GREASE extension, empty
  00 00 00 10 00 0e 00 00 0b                    # server_name: host_name, 11 bytes
    65 78 61 6d 70 6c 65 2e 63 6f 6d            #   "example.com"
  00 0a 00 08 00 06 2a 2a 00 1d 00 17           # supported_groups: GREASE x25519 secp256r1
  00 0b 00 02 01 00                             # ec_point_formats: uncompressed
  00 0d 00 08 00 06 04 03 08 04 04 01           # signature_algorithms: 3 schemes
  00 10 00 0e 00 0c                             # ALPN, 12-byte list
    02 68 32                                    #   "h2"
    08 68 74 74 70 2f 31 2e 31                  #   "http/1.1"
  00 23 00 00                                   # session_ticket: empty (no resumption)
  ff 01 00 01 00                                # renegotiation_info: empty
""")

# HelloRetryRequest (RFC 8446 §4.1.3): a ServerHello with the special random.
HELLO_RETRY_REQUEST = h("""
02 00 00 34                                     # server_hello, 52 bytes
03 03                                           # legacy_version
cf 21 ad 74 e5 9a 61 11 be 1d 8c 02 1e 65 b8 91 # random = SHA-256("HelloRetryRequest")
c2 a2 11 16 7a bb 8c 5e 07 9e 09 e2 c8 a8 33 9c
00                                              # legacy_session_id_echo: empty
13 01                                           # TLS_AES_128_GCM_SHA256
00                                              # compression: null
00 0c                                           # extensions, 12 bytes
  00 2b 00 02 03 04                             # supported_versions: TLS 1.3
  00 33 00 02 00 17                             # key_share: selected_group secp256r1
""")

# HelloRetryRequest as its own message type in TLS 1.3 draft 19-21.
DRAFT_HELLO_RETRY_REQUEST = h("""
06 00 00 0c                                     # hello_retry_request, 12 bytes
7f 13                                           # server_version: draft 19
13 01                                           # cipher_suite
00 06                                           # extensions, 6 bytes
  00 28 00 02 00 1d                             # key_share (draft code 40): x25519
""")

# SSLv2-compatible ClientHello record (RFC 5246 E.2).
SSLV2_CLIENT_HELLO = h("""
80 22                                           # 2-byte header, 34 bytes follow
01                                              # msg_type: client_hello
03 01                                           # version: TLS 1.0
00 09                                           # cipher_spec_length: 3 specs
00 00                                           # session_id_length
00 10                                           # challenge_length: 16
07 00 c0                                        # SSL2_DES_192_EDE3_CBC_WITH_MD5 (SSLv2 only)
00 00 35                                        # TLS_RSA_WITH_AES_256_CBC_SHA
00 00 ff                                        # EMPTY_RENEGOTIATION_INFO_SCSV
f0 f1 f2 f3 f4 f5 f6 f7 f8 f9 fa fb fc fd fe ff # challenge
""")

# Certificate, TLS ≤ 1.2 form, two (tiny, not real X.509) DER blobs.
CERT_A = h("30 03 02 01 01")
CERT_B = h("30 03 02 01 02")
TLS12_CERTIFICATE = h("""
0b 00 00 13                                     # certificate, 19 bytes
00 00 10                                        # certificate_list, 16 bytes
  00 00 05 30 03 02 01 01                       #   cert A
  00 00 05 30 03 02 01 02                       #   cert B
""")

# Certificate, TLS 1.3 form (request context, per-entry extensions).
TLS13_CERTIFICATE = h("""
0b 00 00 18                                     # certificate, 24 bytes
00                                              # certificate_request_context: empty
00 00 14                                        # certificate_list, 20 bytes
  00 00 05 30 03 02 01 01 00 00                 #   cert A, no extensions
  00 00 05 30 03 02 01 02 00 00                 #   cert B, no extensions
""")

# ServerKeyExchange for ECDHE (RFC 8422 §5.4) on x25519.
ECDHE_SERVER_KEY_EXCHANGE = h("""
0c 00 00 2a                                     # server_key_exchange, 42 bytes
03 00 1d                                        # named_curve x25519
20                                              # public point, 32 bytes
  00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff
  00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff
04 03 00 02 ab cd                               # ecdsa_secp256r1_sha256, 2-byte signature
""")

# ServerKeyExchange for DHE (RFC 5246 §7.4.3): starts with dh_p; no curve.
DHE_SERVER_KEY_EXCHANGE = h("""
0c 00 00 0b                                     # server_key_exchange, 11 bytes
00 02 ff fb                                     # dh_p
00 01 02                                        # dh_g
00 02 12 34                                     # dh_Ys (unsigned, anonymous)
""")

SERVER_HELLO_DONE = h("0e 00 00 00")
CLIENT_KEY_EXCHANGE = h("10 00 00 21 20" + " 42" * 32)  # ECDHE public value, 32 bytes
FATAL_HANDSHAKE_FAILURE = h("02 28")  # alert: fatal, handshake_failure
WARNING_CLOSE_NOTIFY = h("01 00")  # alert: warning, close_notify

# Every message fixture, with the ``parse_handshake_body`` type it must give.
MESSAGES = {
    "rfc8448_client_hello": RFC8448_CLIENT_HELLO,
    "rfc8448_server_hello": RFC8448_SERVER_HELLO,
    "tls12_client_hello": TLS12_CLIENT_HELLO,
    "hello_retry_request": HELLO_RETRY_REQUEST,
    "draft_hello_retry_request": DRAFT_HELLO_RETRY_REQUEST,
    "tls12_certificate": TLS12_CERTIFICATE,
    "tls13_certificate": TLS13_CERTIFICATE,
    "ecdhe_server_key_exchange": ECDHE_SERVER_KEY_EXCHANGE,
}


def extension(ext_type: int, data: bytes) -> bytes:
    return ext_type.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data


def client_hello(*extensions: bytes, suites: tuple[int, ...] = (0x1301, 0xC02F)) -> bytes:
    """A ClientHello message (header included) with the given encoded extensions."""
    exts = b"".join(extensions)
    fields = (
        h("03 03")
        + bytes(32)
        + h("00")
        + (2 * len(suites)).to_bytes(2, "big")
        + b"".join(s.to_bytes(2, "big") for s in suites)
        + h("01 00")
        + len(exts).to_bytes(2, "big")
        + exts
    )
    return h("01") + len(fields).to_bytes(3, "big") + fields

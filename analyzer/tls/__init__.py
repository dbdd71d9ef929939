"""TLS wire format, sans-IO: record layer, handshake layer, hellos and their extensions.

Bytes of one direction go into :class:`TLSStream`; typed events come out
(:mod:`analyzer.tls.events`), with typed messages (:mod:`analyzer.tls.messages`).
"""

from analyzer.tls.enums import (
    AlertDescription,
    AlertLevel,
    ContentType,
    ExtensionType,
    HandshakeType,
    ProtocolVersion,
    is_grease,
)
from analyzer.tls.handshake import (
    HandshakeReassembler,
    parse_certificate,
    parse_handshake_body,
    parse_server_key_exchange,
)
from analyzer.tls.hello import (
    HRR_RANDOM,
    parse_alpn,
    parse_client_hello,
    parse_ec_point_formats,
    parse_hello_retry_request,
    parse_key_share_client_hello,
    parse_key_share_hello_retry_request,
    parse_key_share_server_hello,
    parse_selected_version,
    parse_server_hello,
    parse_server_name,
    parse_signature_algorithms,
    parse_sslv2_client_hello,
    parse_supported_groups,
    parse_supported_versions,
)
from analyzer.tls.records import Record, RecordReader, SSLv2Record
from analyzer.tls.stream import TLSStream, parse_alert

__all__ = [
    "HRR_RANDOM",
    "AlertDescription",
    "AlertLevel",
    "ContentType",
    "ExtensionType",
    "HandshakeReassembler",
    "HandshakeType",
    "ProtocolVersion",
    "Record",
    "RecordReader",
    "SSLv2Record",
    "TLSStream",
    "is_grease",
    "parse_alert",
    "parse_alpn",
    "parse_certificate",
    "parse_client_hello",
    "parse_ec_point_formats",
    "parse_handshake_body",
    "parse_hello_retry_request",
    "parse_key_share_client_hello",
    "parse_key_share_hello_retry_request",
    "parse_key_share_server_hello",
    "parse_selected_version",
    "parse_server_hello",
    "parse_server_key_exchange",
    "parse_server_name",
    "parse_signature_algorithms",
    "parse_sslv2_client_hello",
    "parse_supported_groups",
    "parse_supported_versions",
]

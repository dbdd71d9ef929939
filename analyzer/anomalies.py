"""The one catalogue of things the parsers found odd or had to skip.

Every stage (sources, decode, flows, tls, engine) reports problems with input as a code
from :class:`Anomaly`; records list the codes (``HandshakeRecord.anomalies``) and the CLI
reports file-level ones. Codes are stable strings: they appear in JSONL/CSV output.
Nothing here raises.
"""

from __future__ import annotations

from enum import StrEnum


class Anomaly(StrEnum):
    """Named anomalies, grouped by the stage that reports them."""

    # sources: the capture file itself
    FILE_TRUNCATED = "file_truncated"
    """The file ends in the middle of a packet or block."""
    FILE_BAD_MAGIC = "file_bad_magic"
    """Not a pcap, pcapng or gzip file."""
    FILE_CORRUPT_BLOCK = "file_corrupt_block"
    """A pcapng block or pcap record header with impossible lengths; the rest is skipped."""
    FILE_UNKNOWN_INTERFACE = "file_unknown_interface"
    """A pcapng packet refers to an interface that was never described."""
    FILE_READ_ERROR = "file_read_error"
    """The operating system or decompressor failed while reading."""
    TIME_BACKWARDS = "time_backwards"
    """A packet's timestamp is earlier than its predecessor's."""

    # decode: link, network and transport headers
    UNKNOWN_LINKTYPE = "unknown_linktype"
    BAD_LINK_HEADER = "bad_link_header"
    """A link-layer header that is too short or malformed (runt frame, too many VLAN tags
    or MPLS labels)."""
    SNAPLEN_TRUNCATED = "snaplen_truncated"
    """The packet was cut by the capture's snaplen; payload bytes are missing."""
    BAD_IP_HEADER = "bad_ip_header"
    BAD_TCP_HEADER = "bad_tcp_header"
    BAD_UDP_HEADER = "bad_udp_header"
    """A UDP header whose length field does not fit its IP packet."""
    BAD_ICMP = "bad_icmp"
    """An ICMP destination-unreachable error too short for its header, or whose quoted
    packet is not IP or is cut before the first 8 bytes of its TCP header."""
    IP_FRAGMENT = "ip_fragment"
    """An IP fragment; fragments are counted, not reassembled."""

    # flows: TCP reassembly
    OVERLAP_MISMATCH = "overlap_mismatch"
    """Two copies of the same TCP bytes differ; the first copy was kept."""
    OOO_BUFFER_LIMIT = "ooo_buffer_limit"
    """Too many out-of-order bytes buffered for one direction; treated as a gap."""
    FLOW_TABLE_LIMIT = "flow_table_limit"
    """Too many live connections; the oldest (by packet time) was evicted."""
    MIDSTREAM = "midstream"
    """The capture started after the connection's SYN."""
    DATA_AFTER_CLOSE = "data_after_close"
    """Data after the stream's end: bytes beyond its FIN, or a second FIN at another place."""
    SEQ_OUT_OF_WINDOW = "seq_out_of_window"
    """A segment or acknowledgement further from the stream than any TCP window (RFC 7323
    §2.3: 2^30 bytes) could reach; it cannot belong to this stream and was ignored."""
    CAPTURE_GAP = "capture_gap"
    """The receiver acknowledged bytes the capture never had: the capture lost them."""
    HANDSHAKE_LOST = "handshake_lost"
    """A capture gap fell inside the handshake: its evidence is incomplete."""
    NETWORK_LOSS = "network_loss"
    """A hole the receiver never acknowledged, with data behind it: lost in the network."""
    SERVER_FLIGHT_LOST = "server_flight_lost"
    """The server's handshake flight was lost in the network (e.g. an MTU black hole)."""

    # tls: record and handshake layers
    NOT_TLS = "not_tls"
    """Bytes that do not start a TLS record where one was expected."""
    RECORD_TOO_LONG = "record_too_long"
    """A record length beyond 2^14 + 2048 (RFC 8446 §5.2)."""
    BAD_RECORD_VERSION = "bad_record_version"
    HANDSHAKE_TOO_LONG = "handshake_too_long"
    """A handshake message longer than the buffer limit."""
    MALFORMED_HANDSHAKE = "malformed_handshake"
    """A handshake message whose fields do not add up; the message was skipped."""
    TRAILING_BYTES = "trailing_bytes"
    """A length-prefixed block with bytes left over after its fields."""
    DUPLICATE_EXTENSION = "duplicate_extension"
    BAD_ALERT = "bad_alert"
    """An alert record that is not two bytes."""
    MALFORMED_CERTIFICATE = "malformed_certificate"
    """A certificate the X.509 parser rejected."""
    UNEXPECTED_MESSAGE = "unexpected_message"
    """A handshake message that the state machine does not expect at this point."""
    SSLV2_HELLO = "sslv2_hello"
    """An SSLv2-compatible ClientHello (not itself an error, noted for the record)."""
    UNKNOWN_CONTENT_TYPE = "unknown_content_type"
    MALFORMED_EXTENSION = "malformed_extension"
    """An extension whose body does not parse; its typed field stays empty, the rest of
    the hello is kept (the raw extension too)."""
    INTERLEAVED_RECORD = "interleaved_record"
    """A non-handshake record arrived while a handshake message was split across records
    (RFC 8446 §5.1 forbids interleaving)."""
    CHAIN_TOO_LONG = "chain_too_long"
    """A Certificate message with more certificates than ``MAX_CHAIN_CERTS``; the rest
    were dropped."""

    # key logs and decryption (analyzer.tls.keylog, analyzer.tls.decrypt, pcapng secrets)
    KEYLOG_MALFORMED = "keylog_malformed"
    """A key log line that is not in the NSS key log format (or a known label with a
    malformed client random or secret); the line was skipped."""
    KEYLOG_UNREADABLE = "keylog_unreadable"
    """A key log file that could not be read (missing, permission, not a file)."""
    KEYLOG_LIMIT = "keylog_limit"
    """More connections in the key logs than ``MAX_KEYLOG_ENTRIES``; the oldest were
    dropped."""
    SECRETS_BLOCK_SKIPPED = "secrets_block_skipped"
    """A pcapng Decryption Secrets Block that could not be used: larger than
    ``MAX_SECRETS_BLOCK``, or its secrets length does not fit the block."""
    DECRYPT_FAILED = "decrypt_failed"
    """A record did not authenticate with the key log's secrets (AEAD tag, CBC MAC or
    padding): wrong secrets for this connection, or damaged bytes."""
    DECRYPT_UNSUPPORTED = "decrypt_unsupported"
    """The key log has secrets for the connection but its version or cipher suite cannot
    be decrypted here."""

    # dtls: datagrams, records and handshake fragments (RFC 6347, RFC 9147)
    DTLS_BAD_RECORD = "dtls_bad_record"
    """A DTLS record header that does not parse (not a DTLS version, a length running past
    the datagram, bytes that start no record); the rest of that datagram was skipped."""
    DTLS_EPOCH_JUMP = "dtls_epoch_jump"
    """A record whose epoch is more than one past the highest this side used; skipped."""
    DTLS_BAD_FRAGMENT = "dtls_bad_fragment"
    """A handshake fragment header that does not add up (offset + length past the message,
    past the record, or a message_seq reused with another type or length); skipped."""
    DTLS_FRAGMENT_MISMATCH = "dtls_fragment_mismatch"
    """Two copies of the same handshake bytes (overlapping fragments) differ; the first
    copy was kept."""
    DTLS_REASSEMBLY_LIMIT = "dtls_reassembly_limit"
    """Too many partial handshake messages, pieces or bytes held for one side of a DTLS
    association, or too many messages remembered; the fragment was dropped."""

    # quic: packets, frames and CRYPTO streams (analyzer/quic)
    QUIC_BAD_PACKET = "quic_bad_packet"
    """A QUIC header that does not parse (cut short, a Length beyond the datagram, a
    connection ID longer than 20 bytes) or bytes after the last packet that are neither a
    packet nor zero padding; the rest of the datagram was skipped."""
    QUIC_UNDECRYPTABLE = "quic_undecryptable"
    """A packet whose protection could not be removed with the keys it should have (an
    Initial that fails its AEAD tag: damaged, forged, or keyed from a DCID never seen);
    its frames were ignored, so a CONNECTION_CLOSE in it does not count."""
    QUIC_BAD_FRAME = "quic_bad_frame"
    """A frame that does not parse, an unknown frame type, or a frame not allowed in an
    Initial or Handshake packet; the rest of that packet's frames was skipped."""
    QUIC_CRYPTO_LIMIT = "quic_crypto_limit"
    """CRYPTO data too far ahead of the contiguous stream, or more out-of-order CRYPTO
    data than the buffer holds; it was dropped."""
    QUIC_CRYPTO_MISMATCH = "quic_crypto_mismatch"
    """Two copies of the same CRYPTO offsets differ; the first copy was kept."""
    QUIC_UNKNOWN_VERSION = "quic_unknown_version"
    """A long header of a QUIC version whose packets cannot be read (counted only)."""
    QUIC_BAD_RETRY = "quic_bad_retry"
    """A Retry whose integrity tag is wrong, or sent by the client; it was ignored."""

    # flows: SOCKS negotiations before a tunnel (RFC 1928, RFC 1929, SOCKS4/4a)
    SOCKS_MALFORMED = "socks_malformed"
    """Bytes that are not the SOCKS message expected at that point (a wrong version or
    reserved byte, an empty method list, name or credential, an unknown address type, a
    SOCKS4 string without its NUL within ``MAX_SOCKS4_STRING``); the negotiation was not
    followed further."""
    SOCKS_UNSUPPORTED = "socks_unsupported"
    """The SOCKS server chose a method whose sub-negotiation is not parsed (GSSAPI, RFC
    1961, or another IANA method), so its reply cannot be found; the tunnel was not
    followed."""

"""Every cap and timeout, named, with the reason for the number.

Hitting a limit never raises: the stage records an anomaly (see :mod:`analyzer.anomalies`)
and carries on. Timeouts are in seconds of packet time, never wall-clock time.
"""

from __future__ import annotations

MAX_TLS_RECORD = (1 << 14) + 2048
"""RFC 8446 §5.2: TLSCiphertext.length must not exceed 2^14 + 256; TLS 1.2 allows 2^14 + 2048."""

MAX_HANDSHAKE_MESSAGE = 256 * 1024
"""A certificate chain is the largest handshake message seen in practice (tens of KB).
Anything bigger is buffered no further: memory stays bounded per connection."""

MAX_OOO_BYTES = 256 * 1024
"""Out-of-order bytes buffered per direction before the hole is declared a gap. A 64 KB
window with window scaling rarely exceeds this before the hole is filled."""

MAX_OOO_SEGMENTS = 256
"""Out-of-order segments buffered per direction (bounds per-segment overhead)."""

MAX_UNACKED_BYTES = 64 * 1024
"""Delivered bytes kept per direction until the peer acknowledges them, only to compare a
retransmitted copy with the first one (``overlap_mismatch``). Acknowledgements keep this to
the bytes in flight; 64 KB covers a handshake flight with a large certificate chain. Older
bytes are forgotten (a later copy of them is then not compared), never an anomaly."""

MAX_UNACKED_SEGMENTS = 256
"""Segments kept for that comparison per direction (bounds the work per retransmission)."""

MAX_OOO_TOTAL = 32 * 1024 * 1024
"""Out-of-order bytes buffered by all connections of the process together. The limits
above bound one direction; this bounds their sum, which a flood of connections that each
leave a hole would otherwise make ``MAX_FLOWS`` times larger. A real capture has at most a
few hundred holes open at once (128 full ``MAX_OOO_BYTES`` buffers fit); beyond it the
direction whose bytes overflow the total declares its hole a gap (``ooo_buffer_limit``)."""

MAX_UNACKED_TOTAL = 16 * 1024 * 1024
"""Unacknowledged bytes kept (see ``MAX_UNACKED_BYTES``) by all connections together:
bytes in flight at one moment of a capture, tens of MB only on a multi-gigabit link. Beyond
it the direction that overflows forgets its kept bytes (no anomaly: only the comparison of
a later retransmission with them is lost)."""

MAX_FLOWS = 20_000
"""Live connections in the flow table; beyond this the oldest settled one by packet time is
reported early (``flow_table_limit``; see ``MAX_HANDSHAKING_FLOWS`` for the others) and its
4-tuple is remembered like a closed one, so its later packets start no new record for
``CLOSED_TUPLE_TIMEOUT``. One costs about 4 KB with no payload yet and 5-8 KB once its
hellos (and certificate) are parsed (measured by tests/test_stress.py), so the table stays
near 100 MB, and a run that keeps 100,000 connections open, each with a hole in its
stream, under 200 MB. Captures with more connections open at once than this (a busy load
balancer's) get some records before those connections end, with their handshake intact."""

MAX_HANDSHAKING_FLOWS = 16_000
"""Connections still in their handshake (a SYN, a ClientHello, nothing settled yet) kept
at once; beyond this the oldest of them by packet time is evicted (``flow_table_limit``).
This is what a flood of half-open connections fills: at ~6 KB each (a parsed ClientHello)
it stays near 100 MB, and a whole run under 200 MB (tests/test_stress.py: a million SYNs,
a million SYN + ClientHello). Real traffic has far fewer handshakes in flight: 16,000 is
160,000 new connections a second with a 100 ms handshake."""

MAX_ALERTS = 32
"""Alerts kept per connection; a peer that sends more is odd, not more informative."""

MAX_HISTORY = 100
"""Letters kept in ``history`` (Zeek truncates similarly)."""

MAX_ANOMALIES = 32
"""Distinct anomaly codes kept per connection."""

MAX_CHAIN_CERTS = 16
"""Certificates kept from one Certificate message."""

MAX_INTERNED = 4096
"""Distinct small hello values (integer lists such as cipher suites, and raw extensions)
shared between connections instead of copied per connection: the same client software
sends the same lists every time, so a few thousand cover a busy capture and cut the memory
of a connection in its handshake by a third. When the table is full, values are no longer
shared (an attacker can only make it useless, not large)."""

MAX_INTERNED_LENGTH = 512
"""Wire bytes of the largest value shared that way (a table entry costs a few KB at most)."""

IDLE_TIMEOUT = 300.0
"""Seconds of packet time without a packet after which a connection is settled as
``idle_timeout``. Chosen like common firewall idle timers for established TCP."""

HANDSHAKE_IDLE_TIMEOUT = 60.0
"""A connection still in its handshake and silent this long is settled early: no real
client waits longer for a ServerHello."""

SYN_TIMEOUT = 30.0
"""An unanswered SYN settles as ``tcp_no_answer`` after this long (Linux gives up on a
SYN after ~127 s but clients usually time out sooner)."""

INCOMPLETE_GRACE = 3.0
"""SPEC §4: a handshake cut by the end of the capture is ``incomplete`` (not blamed) when
its last packet is less than this many seconds before the end of the capture."""

EXPIRY_WARNING_DAYS = 30
"""``cert_expiring_soon`` when the leaf expires within this many days of the capture."""

MAX_PREAMBLE = 16 * 1024
"""Plaintext bytes kept per direction before TLS starts (HTTP CONNECT request and
response headers, a STARTTLS dialogue). Real preambles are a few hundred bytes."""

# sources: capture files

READ_CHUNK = 1 << 20
"""Bytes read from a capture file at a time. Large enough that the per-read cost vanishes
next to the per-packet cost, small enough to be irrelevant for memory."""

GZIP_INPUT_CHUNK = 256 * 1024
"""Compressed bytes handed to the decompressor at a time (its output is bounded by
``READ_CHUNK`` per call, so a highly compressible file cannot blow up memory)."""

MAX_CAPLEN = 256 * 1024
"""A packet record claiming more captured bytes than this is corrupt. It is Wireshark's
limit for ordinary link types (WTAP_MAX_PACKET_SIZE_STANDARD) and tcpdump's default snaplen."""

MAX_PCAPNG_PARSED_BLOCK = 1 << 20
"""A pcapng block we parse (section header, interface description, packet blocks) longer
than this is corrupt: a packet is at most ``MAX_CAPLEN`` plus a few options."""

MAX_PCAPNG_BLOCK = 128 << 20
"""Any other pcapng block (name resolution, statistics, decryption secrets, custom) is
skipped without being buffered; one longer than this is taken for a corrupt length
(Wireshark's largest block size is of this order)."""

MAX_PCAPNG_INTERFACES = 4096
"""Interface descriptions kept per pcapng section; more is a corrupt or hostile file.
Packets on interfaces beyond the limit are reported as on an unknown interface."""

MAX_RESYNC_SCAN = 16 << 20
"""After a corrupt record or block, bytes searched for the next plausible one before the
rest of the file is given up. While searching, the read buffer grows to about twice this
(34 MiB), then shrinks back to ``READ_CHUNK`` scale."""

MAX_FILE_ANOMALIES = 100
"""File-level anomalies kept per capture: a file corrupt throughout says so in the first
hundred, and memory stays bounded."""

# decode: link, network and transport headers

MAX_VLAN_TAGS = 8
"""802.1Q/802.1ad tags peeled off one frame. QinQ uses two; more than a handful is a
malformed or hostile frame."""

MAX_MPLS_LABELS = 8
"""MPLS labels peeled off one frame (real label stacks are two or three deep)."""

MAX_IPV6_EXT_HEADERS = 8
"""IPv6 extension headers followed before giving up. RFC 8200 §4.1 allows each at most
once (destination options twice), so a legitimate chain is shorter."""

# sources: live capture

LIVE_TICK_INTERVAL = 0.25
"""Wall seconds between two ticks (packet time advanced without a packet) on a quiet
interface. Idle timeouts are tens of seconds, so a quarter second is precise enough and
costs nothing; it is also how long a stop request may wait for the next look."""

LIVE_PIPE_READ = 1 << 16
"""Bytes read from dumpcap's pipe at a time: a Linux pipe holds 64 KB by default, so one
read takes whatever is there."""

LIVE_QUEUE_BATCHES = 1024
"""Batches of frames (each at most one pipe read, ``LIVE_PIPE_READ``) waiting for the
engine: about 64 MB at most. When the engine falls behind for longer, dumpcap blocks on
the pipe and the kernel drops packets, which dumpcap counts and the summary reports."""

LIVE_START_TIMEOUT = 10.0
"""Wall seconds for dumpcap to open the interface and write its pcapng header."""

LIVE_STOP_TIMEOUT = 3.0
"""Wall seconds dumpcap gets to exit after SIGINT before it is killed."""

LIVE_EVIDENCE_SERVERS = 4096
"""Servers (and, separately, leaf certificates) whose summary a live capture's
cross-connection evidence keeps, the least recently seen forgotten first: a few KB each
at most (counts of versions, ciphers and names, and one record with the certificate per
server name), so a capture running for weeks stays within a few tens of MB."""

# report: the HTML page

REPORT_MAX_FAILED = 2000
"""Failed handshakes listed (with their details, ~4 KB each) in the HTML report: about
8 MB, still quick to open and search in a browser. The rest are counted in the summary
and figures, and ``tlsa analyze --only-failed`` lists them all."""

MAX_CLOSED_TUPLES = 100_000
"""4-tuples of recently closed connections remembered so that late segments (a FIN
retransmitted after the close, data in flight after a RST, the rest of a connection
evicted by ``MAX_FLOWS``) do not start phantom records. One entry per connection, about
280 bytes with the 4-tuple it keeps alive: 28 MB at most."""

CLOSED_TUPLE_TIMEOUT = 60.0
"""Seconds of packet time a closed 4-tuple is remembered (Linux TIME_WAIT is 60 s)."""

# scale: worker processes

SHARD_MIN_BYTES = 64 << 20
"""A capture file at least this large is split between the workers (each reads the whole
file and keeps its shard's connections) and makes ``--workers`` default to every core.
Below it one worker per file is quicker: a worker's start-up and its pass over the skipped
frames would cost more than its share of the analysis saves."""

PARALLEL_MIN_BYTES = 8 << 20
"""Several inputs smaller than this in all are analyzed in one process when ``--workers``
is not given: starting workers and moving records between processes costs more than it
saves there (sample_pcaps/, 54 files of 2 MB in all: 0.18 s in one process, 0.30 s with
two workers)."""

DASK_CONNECT_TIMEOUT = 30.0
"""Wall seconds ``--dask ADDRESS`` waits for the scheduler to answer before giving up
with a one-line error (a scheduler on a loaded machine can take a few seconds)."""

MAX_TIMELINE = 40
"""Steps kept in a record's ``timeline`` (for ``tlsa show``): a full TLS 1.2 handshake with
its TCP set-up, alerts and close takes about 20; the rest of a long connection is counted,
not narrated."""

MAX_RECORDS_IN_MEMORY = 5_000
"""Finished records held as objects while a sorted file output is being prepared; beyond
this they wait in a temporary file as sorted runs (about 2.5 KB each on disk, nothing in
memory; see ``MERGE_FAN_IN``)."""

# key logs and decryption

MAX_KEYLOG_ENTRIES = 100_000
"""Connections (client randoms) remembered from key logs and pcapng secrets blocks; the
oldest go first. Each holds at most five secrets, about 600 bytes with its key: 60 MB at
most. A browser's key log of a busy day has a few thousand connections."""

MAX_KEYLOG_LINE = 1024
"""Bytes of one key log line. The longest real line (a 31-character label, 64 hex digits
of client random, 128 of a SHA-512-sized secret) is about 230; a longer line is garbage
and is skipped without being buffered whole."""

MAX_KEYLOG_WARNINGS = 100
"""One-line warnings kept per key log (malformed lines, unreadable files); the rest are
counted. A file that is not a key log at all says so in the first hundred."""

MAX_SECRETS_BLOCK = 32 << 20
"""A pcapng Decryption Secrets Block is buffered whole to be read; one longer than this
(about 30,000 TLS 1.3 connections' secrets) is skipped and reported."""

MAX_OPENED_APPLICATION_RECORD = 8192
"""A TLS 1.3 record of the application epoch longer than this (ciphertext bytes) is not
decrypted: it is application data. The messages wanted there are small: an alert is 2
bytes, a KeyUpdate 5, a NewSessionTicket a few hundred bytes (a few thousand when the
ticket holds a client certificate). Most bulk data travels in 16 KB records, so this
keeps decryption off the bulk of a transfer."""

# dtls: one association (RFC 6347, RFC 9147)

MAX_DTLS_PARTIAL_MESSAGES = 8
"""Handshake messages of one side being reassembled at once. A DTLS 1.2 server flight has
at most six (ServerHello, Certificate, CertificateStatus, ServerKeyExchange,
CertificateRequest, ServerHelloDone), all of which may be cut into fragments."""

MAX_DTLS_PARTIAL_BYTES = 256 * 1024
"""Fragment bytes held for one side's partial messages together: the same budget as one
TLS handshake message (``MAX_HANDSHAKE_MESSAGE``). Only bytes received are held, never the
length a fragment header announces, so a flood of spoofed first fragments costs what it
sends."""

MAX_DTLS_PIECES = 512
"""Disjoint pieces of one partial message. A 16 KB certificate chain over a 500-byte
path MTU arrives in about 40 fragments; 512 covers a 256 KB message in 500-byte
fragments while bounding the work of placing each fragment."""

MAX_DTLS_MESSAGES_KEPT = 64
"""Complete plaintext handshake messages remembered per side (type, length, digest) to
fold retransmitted flights. A handshake has at most a dozen per side in clear
(renegotiations are encrypted); beyond this further messages are dropped."""

DTLS_REPLAY_WINDOW = 64
"""Record sequence numbers remembered below the highest one per epoch to spot duplicated
datagrams (RFC 6347 §4.1.2.6 suggests at least 32; 64 is what implementations use)."""

# quic: one connection's packets and CRYPTO streams

MAX_QUIC_PACKETS_PER_DATAGRAM = 16
"""Coalesced packets read from one datagram. A sender coalesces at most one packet per
encryption level (four) in practice; more is padding abuse or damage."""

MAX_QUIC_CRYPTO_GAP = 64 * 1024
"""How far ahead of the contiguous part of a CRYPTO stream a frame may start (bytes). A
handshake flight with a large certificate chain is tens of KB; a frame further ahead
(up to 2^62 is encodable) cannot belong to a real flight and is dropped."""

MAX_QUIC_CRYPTO_PENDING = 16 * 1024
"""Out-of-order CRYPTO bytes held per stream (one side, one level) waiting for a hole to
fill: about ten packets, more than a post-quantum ClientHello or a reordered certificate
flight needs. With four streams, a connection holds at most 64 KB this way, and only
while its packets are out of order."""

MAX_QUIC_CRYPTO_SEGMENTS = 32
"""Out-of-order CRYPTO pieces held per stream (bounds per-piece overhead)."""

MAX_QUIC_PENDING_PACKETS = 8
"""Handshake packets held per side, when a key log is loaded, until their handshake
secret is installed (the client random is known only after the ClientHello): a server's
first flight with a certificate chain takes a handful of packets."""

MAX_QUIC_VERSIONS = 32
"""Versions kept from a Version Negotiation packet (servers list two or three)."""

MAX_QUIC_REASON = 256
"""Bytes of a CONNECTION_CLOSE reason phrase kept (they are short diagnostic texts)."""

MAX_QUIC_DISCARDED = 100
"""Zeek's ``QUIC::max_discarded_packet_events``: ``X`` letters beyond this many discarded
packets are not added to the QUIC history."""

# edges: Wireshark extract, live metrics

EXTRACT_COMMENT_CHARS = 2_000
"""Characters of the pcapng comment on a connection's first packet in ``--extract`` (uid,
outcome, failure and reason: a reason is one sentence, a few hundred characters at most;
the option's length field allows 65,535 bytes)."""

METRICS_TOP_SERVERS = 20
"""Servers that get their own ``server`` label value in the live Prometheus metrics (the
busiest by handshakes seen so far; every other server counts as ``other``). Each label
value is one time series per outcome or failure category in Prometheus: 20 servers keep a
scrape at a few hundred series whatever the traffic."""

METRICS_TRACKED_SERVERS = 10_000
"""Servers whose handshake counts the live metrics keep to rank them (about 100 bytes
each: 1 MB); servers first seen after that count as ``other`` straight away."""

# flows: SOCKS negotiations (RFC 1928, RFC 1929, SOCKS4/4a)

MAX_SOCKS4_STRING = 255
"""Bytes of a SOCKS4 user id or SOCKS4a host name before its NUL. SOCKS5 caps the same
fields at 255 with one-byte lengths (RFC 1928 §5, RFC 1929 §2); a DNS name is at most 253
bytes and real user ids are short, so a longer string without its NUL is not SOCKS."""

# key logs end to end: --embed-secrets

EXTRACT_SPOOL_BYTES = 16 * 1024 * 1024
"""Bytes of ``--extract --embed-secrets`` output held in memory before it spills to a
temporary file: the packets are spooled because the secrets block must precede them and
which connections were written is known only at the end; the selected connections of a
troubleshooting session fit in a few MB."""

# quic: connections in the engine (analyzer/quic/connection.py, analyzer/engine/udp.py)

QUIC_CLOSE_DRAIN = 3.0
"""Seconds of packet time a QUIC connection stays in the table after its first visible
CONNECTION_CLOSE before it is reported (``close: connection_close``): the peer's own close
and datagrams in flight arrive within three probe timeouts (RFC 9000 §10.2), about a
second on the slowest paths, and still count for the record instead of opening a new
connection."""

MAX_QUIC_ROUTING_IDS = 4
"""Connection IDs by which the UDP seam finds one QUIC connection on another 4-tuple: the
client's first DCID, a Retry's SCID and each side's SCID. With the flow table's limits
(``MAX_FLOWS``) this bounds the index at 80,000 IDs (about 10 MB)."""

MIN_QUIC_ROUTING_ID = 4
"""Shortest connection ID used to route a datagram from an unknown 4-tuple: shorter ones
(servers may use zero to three bytes) would match unrelated datagrams by chance (one in
16 million for four bytes, against ones in 256 for a single byte)."""

QUIC_FALLBACK_WINDOW = 5.0
"""Seconds after a failed or unanswered QUIC attempt ends (its last packet) within which
a TCP connection from the same client to the same server is its fallback: browsers race
TCP a few hundred milliseconds after QUIC or fall back as soon as QUIC gives up (Chromium,
curl ``--http3``), never seconds later."""

# sorted output and cross-connection evidence at scale (floods of millions of connections)

MERGE_FAN_IN = 64
"""Sorted runs of ``MAX_RECORDS_IN_MEMORY`` records (:mod:`analyzer.sorted_records`) merged
at once: when this many runs of one size wait on disk they become one. Reading a run
takes a 64 KB buffer, so merging costs at most 4 MB of buffers, and a million records
(200 runs) take two merge levels."""

TUPLES_IN_MEMORY = 65_536
"""Connections whose 4-tuple hash and start time (16 bytes) the repeated-tuple index
(:mod:`analyzer.diagnosis.tuples`) keeps in memory (1 MB) before it writes them to disk in
``TUPLE_PARTITIONS`` parts by hash; finding the repeats then reads one part at a time."""

TUPLE_PARTITIONS = 64
"""Parts of the on-disk repeated-tuple index: a capture of 64 million connections reads
16 MB at a time."""

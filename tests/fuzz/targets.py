"""Fuzz targets: one function per entry point into the parsers, bytes in, no exception out.

Each target takes one input (``bytes``) and runs it through a part of the pipeline. The
parsers are total (STYLE "Errors and limits"): they return a value, "need more" or an
anomaly. So a target raises only for a bug: an exception escaping a parser, or a broken
invariant checked here with :class:`Broken` (an event stream that depends on how the bytes
were split, a buffer over its limit, a record field outside the SPEC's value lists).

Targets (the first bytes of an input steer the target; the rest is the data):

``tls_stream``
    One direction of a TLS connection: :class:`analyzer.tls.TLSStream`. Byte 0: bit 0 the
    client side, bit 1 "the caller sets ``encrypted`` after ChangeCipherSpec" (as the
    engine does in TLS <= 1.2); byte 1 seeds the split points. The stream is fed whole and
    cut into pieces; both must give the same events, and the parser never holds more than
    one record and one handshake message.
``hello``
    Handshake message bodies: byte 0 picks the parser (ClientHello, ServerHello,
    HelloRetryRequest, Certificate, ServerKeyExchange, SSLv2 ClientHello); the typed value
    then goes through what the engine does with it (names, JA3/JA3S/JA4, X.509 leaf
    facts, host name matching).
``frame``
    One captured frame: :func:`analyzer.decode.decode_frame` under a link type picked by
    byte 0 (byte 1 says whether the snaplen cut it); the fast path that counts packets of
    settled connections (``tcp_count_view``) must agree with the full decode.
``capture``
    The whole-file path: the input is a capture file (pcap, pcapng, gzip) read by
    :class:`analyzer.sources.CaptureReader`, analysed by the engine, diagnosed, sharpened
    by cross-connection evidence and written as JSONL and CSV cells.
``quic``
    QUIC connections: the input is a series of datagrams (:func:`quic_input`: a control
    byte, optionally a key log, then per datagram a direction byte, a 2-byte length and the
    UDP payload). They go to one :class:`analyzer.quic.QuicConnectionParser` (whose facts
    must stay within their limits), to the header look-ups the UDP seam uses, and, as UDP
    frames (some on another 4-tuple, as a client that moved sends them), through the
    engine, diagnosis and cross-connection evidence like a capture; the connection-ID
    index stays bounded and is empty once every connection was reported.
``keys``
    Key logs and record decryption: the input, as text, is a key log
    (:class:`analyzer.tls.keylog.KeyLog`: its warnings never quote a line); as bytes, byte 0
    picks a version and cipher suite, byte 1 a record content type, and the rest is an
    encrypted record for decryptors made from fixed secrets
    (:func:`analyzer.tls.decrypt.session_keys`): it opens or fails, never raises.
``dtls``
    One DTLS association: the input is a script of datagrams, each a header byte (bit 0:
    sent by the client), a 16-bit length and the UDP payload (:func:`dtls_script` writes
    one). :func:`analyzer.dtls.opening` and :class:`analyzer.dtls.DTLSAssociation` read
    every datagram; a second parser fed the same datagrams gives the same events; the
    buffers stay within their limits (``MAX_DTLS_PARTIAL_*``, the replay windows); the
    association's record (:class:`analyzer.dtls.connection.DtlsConnection`) is built,
    diagnosed and checked like the capture target's.

Not here: running the targets (``fuzz.py`` under atheris, ``replay.py`` for corpora).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import tempfile
from collections.abc import Callable, Iterable

from analyzer import limits
from analyzer.decode import decode_frame, tcp_count_view
from analyzer.decode.types import Datagram, IcmpUnreachable, Segment, Skipped
from analyzer.diagnosis import DiagnosisOptions, cross_connection, diagnose
from analyzer.engine.engine import Engine
from analyzer.fingerprints import client_fingerprints, ja3s
from analyzer.output import csv_cell, jsonl_line
from analyzer.record import (
    CERT_STATUSES,
    CLOSES,
    FAILURE_SIDES,
    FAILURES,
    OUTCOMES,
    STAGES,
    HandshakeRecord,
)
from analyzer.sources import CaptureReader
from analyzer.sources.base import Frame
from analyzer.tls import events as ev
from analyzer.tls.certificate import chain_sha256, describe_leaf, name_matches
from analyzer.tls.enums import HandshakeType
from analyzer.tls.handshake import parse_handshake_body
from analyzer.tls.hello import parse_sslv2_client_hello
from analyzer.tls.messages import CertificateChain, ClientHello, ServerHello
from analyzer.tls.names import cipher_name, group_name, sigalg_name, version_name
from analyzer.tls.records import RECORD_HEADER
from analyzer.tls.stream import TLSStream


class Broken(AssertionError):
    """An invariant of the parsers does not hold for this input."""


def check(condition: bool, what: str) -> None:
    if not condition:
        raise Broken(what)


# --- tls_stream -------------------------------------------------------------------------

MAX_STREAM_BUFFER = limits.MAX_TLS_RECORD + RECORD_HEADER + limits.MAX_HANDSHAKE_MESSAGE + 4
"""What one direction's parser may hold between calls: a partial record (header included)
and a partial handshake message (header included)."""


def _events(stream: TLSStream, pieces: Iterable[bytes], follow_ccs: bool) -> list[object]:
    out: list[object] = []
    for piece in pieces:
        for event in stream.feed(piece):
            out.append(event)
            if follow_ccs and isinstance(event, ev.ChangeCipherSpec):
                stream.encrypted = True
        check(stream.buffered <= MAX_STREAM_BUFFER, f"stream holds {stream.buffered} bytes")
    return out


def _same(a: list[object], b: list[object]) -> bool:
    """Equal event lists, but for the evidence a NotTLS keeps: the bytes buffered when the
    stream was judged, which depends on where the first segment ended."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if isinstance(x, ev.NotTLS) and isinstance(y, ev.NotTLS):
            short, long = sorted((x.prefix, y.prefix), key=len)
            if not short or not long.startswith(short):
                return False
        elif x != y:
            return False
    return True


def _pieces(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    cuts = sorted({rng.randrange(len(data) + 1) for _ in range(rng.randrange(8))})
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def tls_stream(data: bytes) -> None:
    if len(data) < 2:
        return
    is_client, follow_ccs = bool(data[0] & 1), bool(data[0] & 2)
    body = data[2:]
    whole = _events(TLSStream(is_client), [body], follow_ccs)
    split = _events(TLSStream(is_client), _pieces(body, data[1]), follow_ccs)
    check(_same(whole, split), "events depend on how the bytes were split")
    for event in whole:
        check(isinstance(event, ev.TLSEvent), f"unexpected event {event!r}")
        if isinstance(event, ev.HandshakeMsg):
            check(0 <= event.length <= limits.MAX_HANDSHAKE_MESSAGE, f"length {event.length}")
        elif isinstance(event, ev.ApplicationData | ev.Heartbeat | ev.EncryptedHandshake):
            check(0 <= event.length <= limits.MAX_TLS_RECORD, f"record of {event.length}")
    # Byte at a time: the hardest split.
    if len(body) <= 512:
        single = _events(
            TLSStream(is_client), [body[i : i + 1] for i in range(len(body))], follow_ccs
        )
        check(_same(single, whole), "events differ when fed one byte at a time")


# --- hello ------------------------------------------------------------------------------

HELLO_PARSERS = (
    HandshakeType.client_hello,
    HandshakeType.server_hello,
    HandshakeType.hello_retry_request,
    HandshakeType.certificate,
    HandshakeType.server_key_exchange,
)
"""Byte 0 modulo 6 picks one of these, or (index 5) the SSLv2-compatible ClientHello."""


def _names(values: Iterable[int], name: Callable[[int], str]) -> None:
    for value in values:
        check(isinstance(name(value), str), f"no name for {value}")


def _client_hello(ch: ClientHello) -> None:
    check(all(0 <= c <= 0xFFFF for c in ch.cipher_suites), "cipher suite out of range")
    _names(ch.cipher_suites, cipher_name)
    _names(ch.supported_groups, group_name)
    _names(ch.key_share_groups, group_name)
    _names(ch.signature_algorithms, sigalg_name)
    _names((*ch.supported_versions, ch.legacy_version), version_name)
    text, ja3, ja4 = client_fingerprints(ch)
    check(len(ja3) == 32 and isinstance(text, str), "ja3")
    check(ja4.count("_") == 2, f"ja4 {ja4!r}")
    if ch.sni is not None:
        name_matches(ch.sni, [ch.sni, "*.example.com"], None)
        json.dumps(ch.sni)


def _server_hello(sh: ServerHello) -> None:
    _names((sh.version,), version_name)
    _names((sh.cipher_suite,), cipher_name)
    text, digest = ja3s(sh)
    check(len(digest) == 32 and isinstance(text, str), "ja3s")


def _certificate(chain: CertificateChain) -> None:
    check(len(chain.certificates) <= limits.MAX_CHAIN_CERTS, "chain over its limit")
    check(all(chain.certificates), "empty certificate kept")
    hashes = chain_sha256(chain.certificates)
    check(len(hashes) == len(chain.certificates), "one hash per certificate")
    leaf = describe_leaf(chain.certificates)
    if leaf is not None and leaf.sans:
        name_matches("www.example.com", list(leaf.sans), leaf.common_name)


def hello(data: bytes) -> None:
    if not data:
        return
    choice, body = data[0] % (len(HELLO_PARSERS) + 1), data[1:]
    if choice == len(HELLO_PARSERS):
        parsed: object = parse_sslv2_client_hello(body)
    else:
        parsed = parse_handshake_body(HELLO_PARSERS[choice], body)
    if isinstance(parsed, ev.ParseAnomaly):
        check(bool(parsed.anomaly), "anomaly without a code")
    elif isinstance(parsed, ClientHello):
        _client_hello(parsed)
    elif isinstance(parsed, ServerHello):
        _server_hello(parsed)
    elif isinstance(parsed, CertificateChain):
        _certificate(parsed)


# --- frame ------------------------------------------------------------------------------

LINKTYPES = (1, 113, 276, 101, 0, 108, 12, 14, 228, 229, 0xBEEF)
"""Byte 0 modulo this many picks the link type (the decoded ones, and an unknown one)."""


def frame(data: bytes) -> None:
    if len(data) < 2:
        return
    linktype = LINKTYPES[data[0] % len(LINKTYPES)]
    body = data[2:]
    wirelen = len(body) + (data[1] if data[1] % 4 == 0 else 0)  # sometimes snaplen-cut
    seg = decode_frame(1.5, linktype, body, wirelen)
    check(type(seg) in (Segment, Datagram, IcmpUnreachable, Skipped),
          f"decoded to {type(seg).__name__}")
    if type(seg) is IcmpUnreachable:
        qsrc, sport, qdst, dport = seg.key
        check(len(qsrc) == len(qdst) and len(qsrc) in (4, 16), "quoted address length")
        check(len(seg.src) in (4, 16), "ICMP sender address length")
        check(0 <= sport <= 0xFFFF and 0 <= dport <= 0xFFFF, "quoted port range")
    if type(seg) is Segment:
        check(len(seg.payload) <= len(body), "payload longer than the frame")
        check(len(seg.src) == len(seg.dst) and len(seg.src) in (4, 16), "address length")
        check(0 <= seg.sport <= 0xFFFF and 0 <= seg.dport <= 0xFFFF, "port range")
        check(not seg.truncated or wirelen > len(body), "truncated without a snaplen cut")
    view = tcp_count_view(linktype, body)
    if view is not None:
        check(type(seg) is Segment, "fast path counts what the decoder does not see as TCP")
        assert type(seg) is Segment
        key, flags, length = view
        check(key == (seg.src, seg.sport, seg.dst, seg.dport), "fast path: other 4-tuple")
        check(flags == seg.flags, "fast path: other flags")
        check(length == len(seg.payload), "fast path: other payload length")


# --- capture ----------------------------------------------------------------------------

_OPTIONS = DiagnosisOptions(verify=False)
"""No trust store: certificate chains are still parsed, the result does not depend on
the machine's CA bundle, and inputs run faster."""

_FILE = os.path.join(tempfile.gettempdir(), f"tlsa-fuzz-{os.getpid()}.pcap")


def _check_record(r: HandshakeRecord) -> None:
    check(r.outcome in OUTCOMES, f"outcome {r.outcome}")
    check(r.failure is None or r.failure in FAILURES, f"failure {r.failure}")
    check(r.failure_side is None or r.failure_side in FAILURE_SIDES, f"side {r.failure_side}")
    check(r.stage in STAGES, f"stage {r.stage}")
    check(r.close in CLOSES, f"close {r.close}")
    check(r.cert_status is None or r.cert_status in CERT_STATUSES, f"status {r.cert_status}")
    check(r.packets >= 1 and r.client_bytes >= 0 and r.server_bytes >= 0, "counters")
    check(len(r.anomalies) <= limits.MAX_ANOMALIES, "anomalies over their limit")
    check(len(r.alerts) <= limits.MAX_ALERTS + 2, "alerts over their limit")
    check(len(r.history) <= limits.MAX_HISTORY, "history over its limit")
    line = jsonl_line(r)
    check("\n" not in line, "a JSONL line with a line break")
    json.loads(line)
    for value in r.to_dict().values():
        cell = csv_cell(value)
        if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@"):
            try:
                float(cell)
            except ValueError:
                raise Broken(f"CSV cell left as a formula: {cell[:40]!r}") from None


def analyse_file(path: str) -> list[HandshakeRecord]:
    """What ``tlsa analyze`` does with one file, minus the terminal: the checked records."""
    reader = CaptureReader(path)
    engine = Engine(os.path.basename(path))
    records = [diagnose(r, _OPTIONS) for r in engine.run(reader)]
    records = cross_connection(records, _OPTIONS)
    for r in records:
        _check_record(r)
    if reader.error is not None:
        check("\n" not in reader.error, "a multi-line error")
    return records


def capture(data: bytes) -> None:
    with open(_FILE, "wb") as f:
        f.write(data)
    try:
        analyse_file(_FILE)
    finally:
        os.unlink(_FILE)  # left behind only by a hard crash (atheris keeps the input then)


KEY_SUITES = (
    (0x0304, 0x1301), (0x0304, 0x1302), (0x0304, 0x1303), (0x0304, 0x1304), (0x0304, 0x1305),
    (0x0303, 0xC02F), (0x0303, 0xCCA8), (0x0303, 0xC0AC), (0x0303, 0xC027), (0x0303, 0x002F),
    (0x0302, 0x002F), (0x0301, 0x0035), (0x0303, 0x000A),
)
"""(version, cipher suite) pairs the ``keys`` target decrypts with: every AEAD and CBC
family of :mod:`analyzer.tls.decrypt`."""
_RANDOM = bytes(range(32))
_SECRET = bytes(range(48))


def keys(data: bytes) -> None:
    from analyzer.tls.decrypt import Failed, NoKeys, Plain, session_keys
    from analyzer.tls.keylog import KeyLog, Secrets

    text = data.decode("utf-8", "replace")
    keylog = KeyLog(max_entries=8)
    keylog.add_text(text, source="fuzz")
    for _, detail in keylog.warnings:
        check(len(detail) < 200 and "\n" not in detail, "a long or multi-line warning")
    if len(data) < 2:
        return
    version, suite = KEY_SUITES[data[0] % len(KEY_SUITES)]
    traffic = _SECRET if suite == 0x1302 else _SECRET[:32]  # SHA-384 or SHA-256 sized
    secrets = Secrets(master_secret=_SECRET, client_handshake_traffic=traffic,
                      server_handshake_traffic=traffic, client_traffic_0=traffic,
                      server_traffic_0=traffic)
    session = session_keys(secrets, version=version, cipher_suite=suite,
                           client_random=_RANDOM, server_random=_RANDOM,
                           encrypt_then_mac=bool(data[1] & 0x80))
    check(not isinstance(session, NoKeys), "no keys for a supported suite")
    assert not isinstance(session, NoKeys)
    content_type = (20, 21, 22, 23)[data[1] & 3]
    for direction in (session.client, session.server):
        for dec in (direction.handshake, direction.application):
            if dec is None:
                continue
            if dec.worth_opening(content_type, len(data) - 2):
                result = dec.decrypt(content_type, version, data[2:])
                check(isinstance(result, Plain | Failed), "decrypt returned something else")
            else:
                dec.skip(data[2:])


def dtls_script(datagrams: Iterable[tuple[bool, bytes]]) -> bytes:
    """The ``dtls`` target's input for these (sent by the client?, payload) datagrams."""
    return b"".join(
        bytes([from_client]) + len(data[:0xFFFF]).to_bytes(2, "big") + data[:0xFFFF]
        for from_client, data in datagrams
    )


def _datagrams(data: bytes) -> list[tuple[bool, bytes]]:
    out = []
    pos = 0
    while pos + 3 <= len(data):
        length = int.from_bytes(data[pos + 1 : pos + 3], "big")
        out.append((bool(data[pos] & 1), data[pos + 3 : pos + 3 + length]))
        pos += 3 + length
    return out


_DTLS_KEY = (bytes([10, 0, 0, 2]), 40000, bytes([10, 0, 0, 1]), 4433)


def dtls(data: bytes) -> None:
    from analyzer.dtls import DTLSAssociation, opening
    from analyzer.dtls.connection import DtlsConnection

    datagrams = _datagrams(data)
    first, second = DTLSAssociation(), DTLSAssociation()
    conn = DtlsConnection(_DTLS_KEY, 1.0, dtls_port=True)
    for n, (from_client, payload) in enumerate(datagrams):
        opening(payload)
        ts = 1.0 + n * 0.25
        events = first.datagram(from_client, payload, ts)
        check(events == second.datagram(from_client, payload, ts), "events differ on replay")
        for side in (first._client, first._server):
            if side is None:
                continue
            check(len(side.windows) <= 2, "more than two replay windows")
            if side.assembler is not None:
                check(side.assembler.buffered <= limits.MAX_DTLS_PARTIAL_BYTES, "partial bytes")
                check(
                    len(side.assembler._partial) <= limits.MAX_DTLS_PARTIAL_MESSAGES,
                    "partial messages",
                )
        conn.packets += 1
        conn.last_ts = ts
        conn.datagram(from_client, payload, ts)
    if datagrams and conn.relevant():  # the engine opens a connection at a datagram
        _check_record(diagnose(conn.record("fuzz.pcap", "capture_end", 1.0 + len(datagrams)),
                               _OPTIONS))


# --- quic -------------------------------------------------------------------------------

QUIC_KEYLOG = 0x01
"""Control bit: a key log (2-byte length, then its text) comes before the datagrams."""
QUIC_MOVE = 0x02
"""Control bit: from the fourth datagram on, the client sends from another port."""
_QUIC_CLIENT = (bytes([10, 99, 0, 2]), 50000)
_QUIC_SERVER = (bytes([10, 99, 0, 1]), 443)


def quic_input(datagrams: Iterable[tuple[bool, bytes]], keylog: str = "",
               move: bool = False) -> bytes:
    """An input of the ``quic`` target (the seeds are made with it)."""
    control = (QUIC_KEYLOG if keylog else 0) | (QUIC_MOVE if move else 0)
    out = bytearray([control])
    if keylog:
        text = keylog.encode()[:0xFFFF]
        out += len(text).to_bytes(2, "big") + text
    for from_client, payload in datagrams:
        out += bytes([from_client]) + len(payload[:0xFFFF]).to_bytes(2, "big") + payload
    return bytes(out)


def _quic_parts(data: bytes) -> tuple[int, str, list[tuple[bool, bytes]]]:
    control, pos, text = data[0], 1, ""
    if control & QUIC_KEYLOG and len(data) >= 3:
        size = int.from_bytes(data[1:3], "big")
        text, pos = data[3 : 3 + size].decode("utf-8", "replace"), 3 + size
    datagrams = []
    while pos + 3 <= len(data):
        size = int.from_bytes(data[pos + 1 : pos + 3], "big")
        datagrams.append((bool(data[pos] & 1), data[pos + 3 : pos + 3 + size]))
        pos += 3 + size
    return control, text, datagrams


def _udp_frame(ts: float, src: tuple[bytes, int], dst: tuple[bytes, int],
               payload: bytes) -> Frame:
    """Ethernet, IPv4 (no checksum needed by the decoder) and UDP around ``payload``."""
    udp = src[1].to_bytes(2, "big") + dst[1].to_bytes(2, "big") \
        + (8 + len(payload)).to_bytes(2, "big") + b"\x00\x00" + payload
    ip = b"\x45\x00" + (20 + len(udp)).to_bytes(2, "big") + b"\x00\x00\x40\x00\x40\x11\x00\x00" \
        + src[0] + dst[0]
    data = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00" + ip + udp
    return Frame(ts, 1, data, len(data))


def quic(data: bytes) -> None:
    from analyzer.quic import QuicConnectionParser, peek_long_header, short_header_dcid
    from analyzer.tls.keylog import KeyLog

    if not data:
        return
    control, text, datagrams = _quic_parts(data)
    keylog = None
    if text:
        keylog = KeyLog(max_entries=8)
        keylog.add_text(text, source="fuzz")
    parser = QuicConnectionParser(await_secrets=keylog is not None)
    for n, (from_client, payload) in enumerate(datagrams):
        parser.datagram(from_client, payload, 1.0 + n)
        ids = peek_long_header(payload)
        check(ids is None or (len(ids.dcid) <= 255 and len(ids.scid) <= 255), "CID length")
        short = short_header_dcid(payload, 8)
        check(short is None or len(short) == 8, "short header DCID length")
    facts = parser.facts()
    check(len(facts.offered_versions) <= limits.MAX_QUIC_VERSIONS, "versions over the limit")
    check(all(len(row) <= limits.MAX_HISTORY for row in facts.history_rows), "history length")
    check(len(facts.closes) <= 2, "more than one close per side")
    moved = (_QUIC_CLIENT[0], _QUIC_CLIENT[1] + 1)
    frames = []
    for n, (from_client, payload) in enumerate(datagrams):
        client = moved if control & QUIC_MOVE and n >= 3 else _QUIC_CLIENT
        src, dst = (client, _QUIC_SERVER) if from_client else (_QUIC_SERVER, client)
        frames.append(_udp_frame(1.0 + n * 0.5, src, dst, payload))
    engine = Engine("fuzz.pcap", keylog=keylog)
    records = []
    for f in frames:
        records += engine.feed(f)
        check(len(engine.udp) <= len(engine.udp_table) * limits.MAX_QUIC_ROUTING_IDS,
              "connection-ID index larger than its connections allow")
    records += engine.finish()
    check(len(engine.udp) == 0, "connection IDs left after every connection was reported")
    records = cross_connection([diagnose(r, _OPTIONS) for r in records], _OPTIONS)
    for r in records:
        _check_record(r)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "tls_stream": tls_stream,
    "hello": hello,
    "frame": frame,
    "capture": capture,
    "keys": keys,
    "dtls": dtls,
    "quic": quic,
}

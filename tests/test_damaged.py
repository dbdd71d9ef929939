"""Damaged captures (SPEC §6): the tool never fails, and damage stays where it is.

Every case starts from real captures of ``sample_pcaps/`` merged into one file (several
connections, in time order) and damages it in-process: the file as a whole (truncation
at every record boundary and inside records, wrong magic, an unknown link type, pcapng
blocks that are unknown or corrupt), or the packets of one connection only (the TLS 1.2
handshake of ``nginx_tls12_ok.pcap``, the "target"). For each case:

- ``tlsa analyze`` (in-process through ``analyzer.cli.main``) exits 0, or 2 with one line
  per unreadable file, and never prints a traceback; its JSONL holds every record;
- every connection whose packets were not touched gets exactly the record it gets from
  the undamaged file, compared field by field (``to_dict()``), except ``capture_end``,
  which depends on where the file ends;
- the damaged connection (or the file, for file-level damage) carries the anomaly.

One real subprocess runs all the damaged files at once. The suite takes a few seconds.
"""

from __future__ import annotations

import functools
import gzip
import json
import random
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from analyzer import cli
from analyzer.api import Run, analyze_files
from analyzer.diagnosis import DiagnosisOptions, cross_connection
from analyzer.record import HandshakeRecord
from tests.fuzz.pcap import (
    ACK,
    RECORD,
    SYN,
    Packet,
    TCPView,
    file_header,
    patch,
    read_pcap,
    record_offsets,
    set_payload,
    tcp_view,
    write_pcap,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_pcaps"
pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason="sample_pcaps/ is not there")

TARGET_PORT = 52886
"""Client port of the TLS 1.2 handshake in nginx_tls12_ok.pcap: the connection damaged."""
SMALL = (
    "nginx_tls12_ok.pcap",
    "nginx_tls13_ok.pcap",
    "nginx_cipher_mismatch.pcap",
    "net_tcp_refused.pcap",
    "squid_connect_ok.pcap",
    "smtp_starttls_ok.pcap",
)
"""Merged for the truncation cases (a capture cut at every record is analysed ~250 times)."""
WHOLE_FILE_FIELDS = frozenset({"capture_end"})
"""Record fields that depend on the whole file rather than on the connection's packets."""
NAME = "merged.pcap"
"""Every variant is written under this base name (uids hash the capture name)."""

Key = tuple[str, int, str, int]


# --- inputs ----------------------------------------------------------------------------


@functools.cache
def merged(names: tuple[str, ...] | None = None) -> tuple[bytes, tuple[Packet, ...]]:
    """The Ethernet samples (or ``names``) as one pcap, packets in time order."""
    if names is None:
        names = tuple(
            p.name
            for p in sorted(SAMPLES.glob("*.pcap"))
            if p.read_bytes()[20:24] == struct.pack("<I", 1)
        )
    packets: list[Packet] = []
    for name in names:
        _, more = read_pcap((SAMPLES / name).read_bytes())
        packets += more
    packets.sort(key=lambda p: p.ts)  # stable: equal timestamps keep their file order
    return file_header(), tuple(packets)


def view(p: Packet) -> TCPView:
    v = tcp_view(p.data)
    assert v is not None
    return v


def key_of(r: HandshakeRecord) -> Key:
    return (r.client_ip, r.client_port, r.server_ip, r.server_port)


def is_target(p: Packet) -> bool:
    v = tcp_view(p.data)
    return v is not None and TARGET_PORT in (v.sport, v.dport)


def target_indexes(packets: tuple[Packet, ...] | list[Packet]) -> list[int]:
    return [i for i, p in enumerate(packets) if is_target(p)]


def target_payload_packets(packets: tuple[Packet, ...], from_client: bool) -> list[int]:
    """Indexes of the target's packets carrying payload in one direction."""
    out = []
    for i in target_indexes(packets):
        v = view(packets[i])
        if len(packets[i].data) > v.payload and (v.sport == TARGET_PORT) == from_client:
            out.append(i)
    return out


# --- running ---------------------------------------------------------------------------


@dataclass
class Outcome:
    records: dict[Key, HandshakeRecord]
    run: Run
    code: int
    stdout: str
    stderr: str
    lines: list[dict[str, Any]] = field(default_factory=list)


def analyse(
    path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *,
    cli_too: bool = True,
) -> Outcome:
    """Per-connection records (engine and diagnosis, before cross-connection evidence,
    which depends on the other connections of the file) and, with ``cli_too``, the CLI's
    JSONL, checked against the API's sorted, cross-connection records."""
    run = Run()
    records = list(analyze_files([path], run))
    by_key = {key_of(r): r for r in records}
    assert len(by_key) == len(records), "one record per 4-tuple in these captures"
    if not cli_too:
        return Outcome(by_key, run, 0, "", "")
    code, out, err = tlsa(monkeypatch, capsys, "analyze", path, "--format", "jsonl")
    no_traceback(err)
    lines = [json.loads(line) for line in out.splitlines()]
    final = sorted(cross_connection(records, DiagnosisOptions()), key=lambda r: (r.ts, r.uid))
    assert lines == [r.to_dict() for r in final]
    return Outcome(by_key, run, code, out, err, lines)


def tlsa(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str | Path
) -> tuple[int, str, str]:
    """``tlsa ARGS`` in-process through the console entry point: (status, stdout, stderr)."""
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["tlsa", *map(str, args)])
    code: int | str | None = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return (code if isinstance(code, int) else 1 if code else 0), out, err


def no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert "internal error" not in stderr
    for line in stderr.splitlines():
        assert line.startswith("tlsa: "), f"stray output on stderr: {line!r}"


def differences(a: HandshakeRecord, b: HandshakeRecord, skip: frozenset[str]) -> dict[str, Any]:
    da, db = a.to_dict(), b.to_dict()
    return {f: (da[f], db[f]) for f in da if f not in skip and da[f] != db[f]}


def assert_untouched_identical(
    base: Outcome, damaged: Outcome, touched: set[Key], skip: frozenset[str] = WHOLE_FILE_FIELDS
) -> None:
    for key, want in base.records.items():
        if key in touched:
            continue
        assert key in damaged.records, f"record of untouched {key} lost"
        diff = differences(want, damaged.records[key], skip)
        assert not diff, f"untouched {key} changed: {diff}"


def target_key(base: Outcome) -> Key:
    [key] = [k for k in base.records if k[1] == TARGET_PORT]
    return key


def write(tmp_path: Path, sub: str, data: bytes, name: str = NAME) -> Path:
    d = tmp_path / sub
    d.mkdir(parents=True, exist_ok=True)
    path = d / name
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    header, packets = merged()
    path = tmp_path_factory.mktemp("base") / NAME
    path.write_bytes(write_pcap(header, list(packets)))
    run = Run()
    records = list(analyze_files([path], run))
    assert run.errors == [] and len(records) > 40
    return Outcome({key_of(r): r for r in records}, run, 0, "", "")


# --- the whole file -----------------------------------------------------------------------


def test_truncated_at_every_record_boundary_and_inside_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    header, packets = merged(SMALL)
    data = write_pcap(header, list(packets))
    full = analyse(write(tmp_path, "full", data), monkeypatch, capsys, cli_too=False)
    offsets = record_offsets(header, list(packets))
    keys_of_packet = [view(p).key for p in packets]
    checked = 0
    for k in range(len(packets) + 1):
        # Cut at the boundary before record k, inside its header, and inside its data.
        cuts = [(offsets[k], False)]
        if k < len(packets):
            cuts += [(offsets[k] + 7, True), (offsets[k] + RECORD.size + 20, True)]
        for cut, mid_record in cuts:
            path = write(tmp_path, f"cut{cut}", data[:cut])
            out = analyse(path, monkeypatch, capsys, cli_too=checked % 25 == 0)
            checked += 1
            assert out.run.errors == [] and out.code == 0
            truncated = [w for w in out.run.warnings if "ends inside" in w]
            assert bool(truncated) == mid_record, (cut, out.run.warnings)
            # Connections with a packet at or after the cut are the damaged ones; so are
            # those whose end (idle expiry, capture end) depends on later packets.
            later = set(keys_of_packet[k:])
            touched = {
                key
                for key, r in full.records.items()
                if canonical(key) in later or r.close not in ("fin", "rst_client", "rst_server")
            }
            assert_untouched_identical(full, out, touched)
            assert set(out.records) <= set(full.records)
    assert checked == 3 * len(packets) + 1


def canonical(key: Key) -> tuple[bytes, int, bytes, int]:
    import ipaddress

    a = (ipaddress.ip_address(key[0]).packed, key[1])
    b = (ipaddress.ip_address(key[2]).packed, key[3])
    lo, hi = sorted((a, b))
    return (lo[0], lo[1], hi[0], hi[1])


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("wrong_magic.pcap", b"\x00\x01\x02\x03" + bytes(200), "not a pcap/pcapng file"),
        ("text.pcap", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "not a pcap/pcapng file"),
        ("empty.pcap", b"", "empty file"),
        ("short_header.pcap", b"\xd4\xc3\xb2\xa1\x02\x00", "truncated pcap file header"),
        ("zstd.pcap", b"\x28\xb5\x2f\xfd" + bytes(40), "zstd-compressed"),
        ("gzip_of_garbage.pcap.gz", gzip.compress(b"garbage" * 10), "not a pcap/pcapng"),
        ("bad_gzip.pcap.gz", b"\x1f\x8b\x08\x00" + bytes(30), "gzip"),
        ("pcapng_bad_bom.pcapng", b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00" + bytes(20), "byte-order"),
    ],
)
def test_unreadable_file_is_one_line_and_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    data: bytes,
    message: str,
) -> None:
    bad = write(tmp_path, "bad", data, name)
    good = SAMPLES / "nginx_tls13_ok.pcap"
    code, out, err = tlsa(monkeypatch, capsys, "analyze", bad, good, "--format", "jsonl")
    no_traceback(err)
    assert code == 2
    [line] = err.splitlines()
    assert line.startswith(f"tlsa: error: {bad}") and message in line, line
    # The good file's record is still written.
    [record] = [json.loads(x) for x in out.splitlines()]
    assert record["client_port"] == 52890 and record["outcome"] == "established"


def test_unknown_link_type_for_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    header, packets = merged(SMALL)
    odd = patch(header, 20, struct.pack("<I", 0xBEEF))
    path = write(tmp_path, "linktype", write_pcap(odd, list(packets)))
    out = analyse(path, monkeypatch, capsys)
    assert out.code == 0 and out.records == {}
    assert out.run.stats[NAME].anomalies["unknown_linktype"] == len(packets)


def _pcapng(
    packets: list[tuple[int, Packet]],
    linktypes: tuple[int, ...] = (1,),
    extra: dict[int, bytes] | None = None,
) -> bytes:
    """A little-endian pcapng: SHB, one IDB per link type, one EPB per (interface, packet);
    ``extra[i]`` is inserted before packet i."""

    def block(btype: int, body: bytes) -> bytes:
        body += bytes(-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))]
    out += [block(1, struct.pack("<HHI", lt, 0, 262144)) for lt in linktypes]
    for i, (iface, p) in enumerate(packets):
        if extra and i in extra:
            out.append(extra[i])
        usec = p.sec * 1_000_000 + p.usec
        body = (
            struct.pack("<IIIII", iface, usec >> 32, usec & 0xFFFFFFFF, len(p.data), p.wirelen)
            + p.data
        )
        out.append(block(6, body))
    return b"".join(out)


def test_pcapng_of_the_same_packets_gives_the_same_records(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    baseline: Outcome,
) -> None:
    _, packets = merged()
    path = write(tmp_path, "ng", _pcapng([(0, p) for p in packets]))
    out = analyse(path, monkeypatch, capsys)
    assert out.code == 0 and out.run.warnings == []
    assert_untouched_identical(baseline, out, set())
    assert set(out.records) == set(baseline.records)


def test_pcapng_unknown_and_corrupt_blocks(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    baseline: Outcome,
) -> None:
    _, packets = merged()
    n = len(packets)
    custom = struct.pack("<II", 0x40000BAD, 20) + b"\xde\xad\xbe\xef" * 2 + struct.pack("<I", 20)
    unknown = struct.pack("<II", 0x00000BAD, 16) + b"junk" + struct.pack("<I", 16)
    # A block whose two lengths disagree, and one claiming 3 GB: both corrupt, skipped.
    disagree = struct.pack("<II", 6, 40) + bytes(28) + struct.pack("<I", 44)
    huge = struct.pack("<II", 6, 0xC0000000) + bytes(24)
    extra = {n // 5: custom, 2 * n // 5: unknown, 3 * n // 5: disagree, 4 * n // 5: huge}
    path = write(tmp_path, "ng", _pcapng([(0, p) for p in packets], extra=extra))
    out = analyse(path, monkeypatch, capsys)
    assert out.code == 0
    corrupt = [w for w in out.run.warnings if "skipped" in w]
    assert len(corrupt) == 2, out.run.warnings
    assert_untouched_identical(baseline, out, set())
    assert set(out.records) == set(baseline.records)


def test_pcapng_unknown_link_type_on_one_interface(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    baseline: Outcome,
) -> None:
    _, packets = merged()
    tagged = [(1 if is_target(p) else 0, p) for p in packets]
    path = write(tmp_path, "ng", _pcapng(tagged, linktypes=(1, 0xBEEF)))
    out = analyse(path, monkeypatch, capsys)
    assert out.code == 0
    target = target_key(baseline)
    assert target not in out.records  # its packets cannot be decoded
    assert out.run.stats[NAME].anomalies["unknown_linktype"] == len(target_indexes(packets))
    assert_untouched_identical(baseline, out, {target})


def test_pcapng_corrupt_block_inside_the_target(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    baseline: Outcome,
) -> None:
    _, packets = merged()
    blob = bytearray(_pcapng([(0, p) for p in packets]))
    # The server's certificate segment: break the trailing length of its block.
    i = target_payload_packets(packets, from_client=False)[0]
    needle = packets[i].data
    at = bytes(blob).index(needle)
    end = at + len(needle) + (-len(needle) % 4)
    blob[end : end + 4] = b"\xff\xff\xff\x7f"
    path = write(tmp_path, "ng", bytes(blob))
    out = analyse(path, monkeypatch, capsys)
    assert out.code == 0
    assert any("corrupt" in w or "skipped" in w for w in out.run.warnings), out.run.warnings
    target = target_key(baseline)
    assert_untouched_identical(baseline, out, {target})
    assert out.records[target].outcome != "established"  # the server's flight is gone
    assert {"capture_gap", "handshake_lost"} <= set(out.records[target].anomalies)


# --- one connection damaged -----------------------------------------------------------


@dataclass(frozen=True)
class Damage:
    """A way to damage the target connection's packets, and what its record must show."""

    name: str
    apply: Callable[[list[Packet]], list[Packet]]
    check: Callable[[HandshakeRecord, HandshakeRecord, Run], None]
    file_warning: str | None = None


def _at(packets: list[Packet], i: int, new: Packet) -> list[Packet]:
    return [*packets[:i], new, *packets[i + 1 :]]


def _first_payload(packets: list[Packet], from_client: bool) -> int:
    return target_payload_packets(tuple(packets), from_client)[0]


def snaplen_cut(packets: list[Packet]) -> list[Packet]:
    i = _first_payload(packets, from_client=False)  # ServerHello + start of Certificate
    p = packets[i]
    return _at(packets, i, replace(p, data=p.data[:300]))


def backwards(packets: list[Packet]) -> list[Packet]:
    # The target's last packets are stamped 10 s earlier than the ones before them.
    idx = target_indexes(packets)[-3:]
    out = list(packets)
    for i in idx:
        out[i] = replace(out[i], sec=out[i].sec - 10)
    return out


def duplicated(packets: list[Packet]) -> list[Packet]:
    out: list[Packet] = []
    for p in packets:
        out.append(p)
        if is_target(p):
            out.append(p)
    return out


def ip_length_lies(packets: list[Packet]) -> list[Packet]:
    # The ClientHello's IPv4 total length claims more bytes than the frame carries (and
    # the record is not snaplen-cut); the server's first data segment's IHL says 16 bytes.
    out = list(packets)
    i = _first_payload(out, from_client=True)
    v = view(out[i])
    out[i] = replace(out[i], data=patch(out[i].data, v.ip + 2, struct.pack("!H", 9000)))
    j = _first_payload(out, from_client=False)
    w = view(out[j])
    out[j] = replace(out[j], data=patch(out[j].data, w.ip, bytes([0x44])))
    return out


def tcp_offset_lies(packets: list[Packet]) -> list[Packet]:
    # The ClientHello's TCP data offset claims 60 bytes of header (it has 32): the payload
    # as decoded loses its first 28 bytes.
    out = list(packets)
    i = _first_payload(out, from_client=True)
    v = view(out[i])
    out[i] = replace(out[i], data=patch(out[i].data, v.tcp + 12, bytes([0xF0])))
    return out


def record_length_absurd(packets: list[Packet]) -> list[Packet]:
    i = _first_payload(packets, from_client=True)
    v = view(packets[i])
    return _at(
        packets, i, replace(packets[i], data=patch(packets[i].data, v.payload + 3, b"\xff\xf0"))
    )


def handshake_length_absurd(packets: list[Packet]) -> list[Packet]:
    i = _first_payload(packets, from_client=True)
    v = view(packets[i])
    return _at(
        packets, i, replace(packets[i], data=patch(packets[i].data, v.payload + 6, b"\xff\xff\xf0"))
    )


def garbage_payload(packets: list[Packet]) -> list[Packet]:
    # The server's second segment (inside its Certificate message) replaced by random bytes.
    i = target_payload_packets(tuple(packets), from_client=False)[1]
    v = view(packets[i])
    size = len(packets[i].data) - v.payload
    noise = random.Random(7).randbytes(size)
    return _at(packets, i, set_payload(packets[i], v, noise))


def garbage_from_the_start(packets: list[Packet]) -> list[Packet]:
    # Every payload of the target replaced by random bytes of the same length.
    out = list(packets)
    rng = random.Random(11)
    for i in target_indexes(out):
        v = view(out[i])
        size = len(out[i].data) - v.payload
        if size:
            out[i] = set_payload(out[i], v, rng.randbytes(size))
    return out


def overlap_differs(packets: list[Packet]) -> list[Packet]:
    # After the server's first segment, a "retransmission" of it with other bytes.
    i = _first_payload(packets, from_client=False)
    v = view(packets[i])
    data = bytearray(packets[i].data)
    for k in range(v.payload + 100, v.payload + 140):
        data[k] ^= 0xFF
    copy = replace(packets[i], data=bytes(data), usec=packets[i].usec + 1)
    return [*packets[: i + 1], copy, *packets[i + 1 :]]


def wraparound(packets: list[Packet]) -> list[Packet]:
    # Both directions' sequence numbers shifted so that each stream crosses 2^32 inside
    # the handshake (acknowledgements shifted alike).
    out = list(packets)
    first = {True: None, False: None}  # initial sequence number per direction
    for i in target_indexes(out):
        v = view(out[i])
        from_client = v.sport == TARGET_PORT
        if v.flags & SYN and first[from_client] is None:
            first[from_client] = v.seq
    shift = {d: (0xFFFFFFFF - 200 - isn) & 0xFFFFFFFF for d, isn in first.items() if isn}
    for i in target_indexes(out):
        v = view(out[i])
        from_client = v.sport == TARGET_PORT
        seq, ack = struct.unpack_from("!II", out[i].data, v.tcp + 4)
        seq = (seq + shift[from_client]) & 0xFFFFFFFF
        if v.flags & ACK:
            ack = (ack + shift[not from_client]) & 0xFFFFFFFF
        out[i] = replace(out[i], data=patch(out[i].data, v.tcp + 4, struct.pack("!II", seq, ack)))
    return out


def _shift(packets: list[Packet], start: int, from_client: bool, delta: int) -> list[Packet]:
    """From packet ``start`` on, the target's sequence numbers in one direction move by
    ``delta`` (and the other direction's acknowledgements with them)."""
    out = list(packets)
    for i in target_indexes(out):
        if i < start:
            continue
        v = view(out[i])
        seq, ack = struct.unpack_from("!II", out[i].data, v.tcp + 4)
        if (v.sport == TARGET_PORT) == from_client:
            seq = (seq + delta) & 0xFFFFFFFF
        elif v.flags & ACK:
            ack = (ack + delta) & 0xFFFFFFFF
        out[i] = replace(out[i], data=patch(out[i].data, v.tcp + 4, struct.pack("!II", seq, ack)))
    return out


def hello_in_tiny_segments(packets: list[Packet]) -> list[Packet]:
    # The ClientHello sent 16 bytes per segment (what some middlebox evasions do).
    i = _first_payload(packets, from_client=True)
    p, v = packets[i], view(packets[i])
    payload = p.data[v.payload :]
    pieces = []
    for k in range(0, len(payload), 16):
        seq = (v.seq + k) & 0xFFFFFFFF
        piece = set_payload(p, v, payload[k : k + 16])
        piece = replace(piece, data=patch(piece.data, v.tcp + 4, struct.pack("!I", seq)))
        pieces.append(piece)
    return [*packets[:i], *pieces, *packets[i + 1 :]]


def hello_across_records(packets: list[Packet]) -> list[Packet]:
    # The ClientHello message split over two TLS records (RFC 8446 §5.1 allows it).
    i = _first_payload(packets, from_client=True)
    p, v = packets[i], view(packets[i])
    payload = p.data[v.payload :]
    header, message = payload[:5], payload[5:]
    first = header[:3] + struct.pack("!H", 50) + message[:50]
    second = header[:3] + struct.pack("!H", len(message) - 50) + message[50:]
    out = _shift(packets, i + 1, from_client=True, delta=5)
    return _at(out, i, set_payload(p, v, first + second))


HANDSHAKE_FACTS = (
    "sni",
    "offered_versions",
    "version",
    "offered_ciphers",
    "cipher",
    "group",
    "alpn",
    "history",
    "stage",
    "established",
    "alerts",
    "cert_subject",
    "cert_chain_sha256",
    "ja3",
    "ja3s",
    "ja4",
    "outcome",
    "failure",
    "close",
)


def same_handshake(want: HandshakeRecord, got: HandshakeRecord) -> None:
    w, g = want.to_dict(), got.to_dict()
    assert {f: g[f] for f in HANDSHAKE_FACTS} == {f: w[f] for f in HANDSHAKE_FACTS}


def lost_handshake(want: HandshakeRecord, got: HandshakeRecord, run: Run) -> None:
    assert not got.established and got.outcome in ("incomplete", "failed")
    assert got.gap_bytes > 0
    assert {"capture_gap", "handshake_lost"} <= set(got.anomalies)


def check_snaplen(want: HandshakeRecord, got: HandshakeRecord, run: Run) -> None:
    lost_handshake(want, got, run)
    assert "snaplen_truncated" in got.anomalies




def check_backwards(want: HandshakeRecord, got: HandshakeRecord, run: Run) -> None:
    same_handshake(want, got)
    assert got.ts_end < want.ts_end


def check_duplicated(want: HandshakeRecord, got: HandshakeRecord, run: Run) -> None:
    same_handshake(want, got)
    assert got.retransmits > 0 and got.anomalies == want.anomalies


def check_ip_lies(want: HandshakeRecord, got: HandshakeRecord, run: Run) -> None:
    assert got.sni is None  # the ClientHello never got through
    assert run.stats[NAME].anomalies["bad_ip_header"] == 2


def check_tcp_offset(want: HandshakeRecord, got: HandshakeRecord, run: Run) -> None:
    assert got.sni is None and not got.established
    assert got.anomalies, "a ClientHello missing its first bytes leaves a trace"


def check_record_length(want: HandshakeRecord, got: HandshakeRecord, run: Run) -> None:
    assert "record_too_long" in got.anomalies
    assert got.sni is None and not got.established


def check_handshake_length(want: HandshakeRecord, got: HandshakeRecord, run: Run) -> None:
    assert "handshake_too_long" in got.anomalies
    assert got.sni is None and not got.established


def check_tiny_segments(want: HandshakeRecord, got: HandshakeRecord, run: Run) -> None:
    same_handshake(want, got)
    assert got.client_hello_segments > 10 and got.anomalies == want.anomalies


def check_across_records(want: HandshakeRecord, got: HandshakeRecord, run: Run) -> None:
    same_handshake(want, got)
    assert got.client_bytes == want.client_bytes + 5 and got.anomalies == want.anomalies


def check_garbage(want: HandshakeRecord, got: HandshakeRecord, run: Run) -> None:
    # What came before the garbage is kept (hellos, the leaf certificate, which fits in
    # the first segment); the server's stream loses its framing there, so the handshake is
    # never seen to complete.
    keep = ("sni", "version", "cipher", "ja3", "ja3s", "cert_subject")
    assert [getattr(got, f) for f in keep] == [getattr(want, f) for f in keep]
    assert not got.established and got.history != want.history
    tls_problems = {
        "malformed_handshake",
        "unknown_content_type",
        "bad_record_version",
        "record_too_long",
        "handshake_too_long",
        "interleaved_record",
    }
    assert tls_problems & set(got.anomalies), got.anomalies


def check_garbage_start(want: HandshakeRecord, got: HandshakeRecord, run: Run) -> None:
    assert got.sni is None and got.outcome == "not_tls"
    assert got.client_first_bytes


def check_overlap(want: HandshakeRecord, got: HandshakeRecord, run: Run) -> None:
    same_handshake(want, got)  # the first copy wins
    assert "overlap_mismatch" in got.anomalies
    assert got.retransmits == want.retransmits + 1


def check_wraparound(want: HandshakeRecord, got: HandshakeRecord, run: Run) -> None:
    diff = differences(want, got, WHOLE_FILE_FIELDS)
    assert diff == {}, diff


ALL_DAMAGES = [
    Damage("snaplen_cut", snaplen_cut, check_snaplen),
    Damage("backwards_in_time", backwards, check_backwards, "earlier than the one before it"),
    Damage("duplicated_packets", duplicated, check_duplicated),
    Damage("ip_header_lengths_lie", ip_length_lies, check_ip_lies),
    Damage("tcp_data_offset_lies", tcp_offset_lies, check_tcp_offset),
    Damage("tls_record_length_absurd", record_length_absurd, check_record_length),
    Damage("handshake_length_absurd", handshake_length_absurd, check_handshake_length),
    Damage("hello_in_tiny_segments", hello_in_tiny_segments, check_tiny_segments),
    Damage("hello_across_records", hello_across_records, check_across_records),
    Damage("garbage_in_server_payload", garbage_payload, check_garbage),
    Damage("garbage_from_the_start", garbage_from_the_start, check_garbage_start),
    Damage("overlap_with_different_bytes", overlap_differs, check_overlap),
    Damage("sequence_wraparound", wraparound, check_wraparound),
]
DAMAGES = [
    pytest.param(d, id=d.name)
    for d in ALL_DAMAGES
]


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_connection(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    baseline: Outcome,
    damage: Damage,
) -> None:
    header, packets = merged()
    damaged = damage.apply(list(packets))
    assert damaged != list(packets)
    path = write(tmp_path, damage.name, write_pcap(header, damaged))
    out = analyse(path, monkeypatch, capsys)
    assert out.code == 0 and out.run.errors == []
    if damage.file_warning:
        assert any(damage.file_warning in w for w in out.run.warnings), out.run.warnings
    else:
        assert out.run.warnings == []
    target = target_key(baseline)
    assert_untouched_identical(baseline, out, {target})
    assert set(out.records) == set(baseline.records)
    damage.check(baseline.records[target], out.records[target], out.run)


def test_every_damage_at_once_in_a_real_subprocess(tmp_path: Path) -> None:
    header, packets = merged()
    paths = []
    for damage in ALL_DAMAGES:
        paths.append(
            write(
                tmp_path,
                damage.name,
                write_pcap(header, damage.apply(list(packets))),
                f"{damage.name}.pcap",
            )
        )
    cut = write_pcap(header, list(packets))
    paths.append(write(tmp_path, "cut", cut[: len(cut) // 2 + 5], "cut.pcap"))
    paths.append(write(tmp_path, "bad", b"\x00" * 64, "bad.pcap"))
    done = subprocess.run(
        [sys.executable, "-m", "analyzer", "analyze", *map(str, paths), "-f", "jsonl"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2
    no_traceback(done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("tlsa: error:")]
    assert errors == [
        f"tlsa: error: {paths[-1]}: file is not a pcap/pcapng file (magic 0x00000000)"
    ]
    records = [json.loads(line) for line in done.stdout.splitlines()]
    per_file = {r["capture"] for r in records}
    assert per_file == {p.name for p in paths[:-1]}
    assert all(isinstance(r["anomalies"], list) for r in records)


# --- DTLS: one association damaged among others ---------------------------------------------

DTLS_ASSOCIATIONS = 24
"""Associations of every kind in the DTLS capture (tests/dtls_capture.py); the first, a
complete handshake with the cookie exchange, is the one damaged."""
DTLS_HEADER = 13
"""RFC 6347 §4.1 record header; a handshake fragment header (12 bytes) follows it."""
Talk = list[tuple[float, bool, bytes]]
"""One association's datagrams: (seconds from its start, sent by the client?, payload)."""


def _server_flight(talk: Talk) -> int:
    """Index of the server's ServerHello flight (the fourth datagram)."""
    assert not talk[3][1] and talk[3][2][DTLS_HEADER] == 2
    return 3


def _rewrite(
    talk: Talk, i: int, data: bytes
) -> Talk:
    return [*talk[:i], (talk[i][0], talk[i][1], data), *talk[i + 1 :]]


def fragment_offset_absurd(talk: Talk) -> Talk:
    i = _server_flight(talk)
    at = DTLS_HEADER + 6  # fragment_offset of the ServerHello's fragment
    return _rewrite(talk, i, patch(talk[i][2], at, b"\xff\xff\xf0"))


def fragment_length_absurd(talk: Talk) -> Talk:
    i = _server_flight(talk)
    return _rewrite(talk, i, patch(talk[i][2], DTLS_HEADER + 9, b"\xff\xff\xff"))


def fragments_overlap_differently(
    talk: Talk,
) -> Talk:
    # The ServerHello as two overlapping fragments whose shared bytes differ (the second
    # copy's random bytes are flipped): the first copy must win.
    from tests.dtls_fixtures import SERVER_HELLO_BODY, fragment, record

    i = _server_flight(talk)
    body = SERVER_HELLO_BODY
    flipped = body[:10] + bytes(b ^ 0xFF for b in body[10:30]) + body[30:]
    first = fragment(2, 1, body, 0, 30)
    second = fragment(2, 1, flipped, 20)
    data = talk[i][2]
    sh_record_length = int.from_bytes(data[11:13], "big")
    rest = data[DTLS_HEADER + sh_record_length :]
    seq = int.from_bytes(data[5:11], "big")  # the record's own number (not a duplicate)
    return _rewrite(talk, i, record(22, first + second, seq=seq) + rest)


def epoch_jump(talk: Talk) -> Talk:
    # The client's encrypted Finished claims epoch 9 after epoch 0.
    i = 4
    data = talk[i][2]
    assert talk[i][1] and data.count(b"\x16\xfe\xfd\x00\x01") == 1
    at = data.index(b"\x16\xfe\xfd\x00\x01") + 3
    return _rewrite(talk, i, patch(data, at, b"\x00\x09"))


def dtls_record_length_absurd(
    talk: Talk,
) -> Talk:
    i = _server_flight(talk)
    return _rewrite(talk, i, patch(talk[i][2], 11, b"\xff\xff"))


def datagram_cut(talk: Talk) -> Talk:
    i = _server_flight(talk)
    return _rewrite(talk, i, talk[i][2][: len(talk[i][2]) // 2])


def datagrams_duplicated(talk: Talk) -> Talk:
    return [d for d in talk for d in (d, d)]


DTLS_FACTS = ("sni", "offered_versions", "ja3", "ja4")
"""What the client's first datagrams give, whatever happens to the server's."""


def _damaged(want: HandshakeRecord, got: HandshakeRecord, anomaly: str) -> None:
    assert anomaly in got.anomalies, got.anomalies
    assert [getattr(got, f) for f in DTLS_FACTS] == [getattr(want, f) for f in DTLS_FACTS]


@pytest.mark.parametrize(
    ("damage", "anomaly"),
    [
        (fragment_offset_absurd, "dtls_bad_fragment"),
        (fragment_length_absurd, "dtls_bad_fragment"),
        (fragments_overlap_differently, "dtls_fragment_mismatch"),
        (epoch_jump, "dtls_epoch_jump"),
        (dtls_record_length_absurd, "dtls_bad_record"),
        (datagram_cut, "dtls_bad_record"),
        (datagrams_duplicated, None),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_damaged_dtls_association(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[Talk], Talk],
    anomaly: str | None,
) -> None:
    from tests.dtls_capture import client_address
    from tests.dtls_capture import write_pcap as write_dtls

    base = analyse(write_dtls(tmp_path / "base.pcap", DTLS_ASSOCIATIONS), monkeypatch, capsys,
                   cli_too=False)
    (tmp_path / "damaged").mkdir()
    path = write_dtls(tmp_path / "damaged" / "base.pcap", DTLS_ASSOCIATIONS, {0: damage})
    out = analyse(path, monkeypatch, capsys)
    assert out.code == 0 and out.run.errors == [] and out.run.warnings == []
    [target] = [k for k in base.records if k[0] == client_address(0)]
    assert_untouched_identical(base, out, {target})
    assert set(out.records) == set(base.records)
    want, got = base.records[target], out.records[target]
    if anomaly is None:  # a duplicated datagram is no retransmission: nothing changes
        assert differences(want, got, frozenset({"packets", "client_bytes", "server_bytes",
                                                 "dtls_client_datagrams",
                                                 "dtls_server_datagrams"})) == {}
        assert got.packets == 2 * want.packets
    elif anomaly == "dtls_fragment_mismatch":
        assert anomaly in got.anomalies and got.established  # the first copy won
        assert (got.version, got.cipher, got.history) == (want.version, want.cipher, want.history)
    elif anomaly == "dtls_epoch_jump":  # the client's Finished is skipped
        _damaged(want, got, anomaly)
        assert got.version == want.version and got.stage == "server_done"
        assert not got.established and got.outcome != "established"
    else:  # the ServerHello's record is dropped; the rest of the handshake is seen
        _damaged(want, got, anomaly)
        assert got.version is None and "s" not in got.history
        assert got.established  # both ChangeCipherSpecs and Finished: a wire fact


def test_dtls_capture_truncated_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.dtls_capture import write_pcap as write_dtls
    from tests.fuzz.targets import _check_record

    data = write_dtls(tmp_path / "whole.pcap", DTLS_ASSOCIATIONS).read_bytes()
    header, packets = read_pcap(data)
    offsets = record_offsets(header, packets)
    for n, at in enumerate(offsets[1::3]):
        for cut in (at, at + 20):
            path = write(tmp_path, f"cut{n}-{cut}", data[:cut])
            out = analyse(path, monkeypatch, capsys, cli_too=False)
            assert out.run.errors == []
            for r in out.records.values():
                _check_record(r)


# --- a QUIC connection among the TCP ones ----------------------------------------------------
#
# The QUIC connection is real: an aioquic client and server run in memory
# (tests/quic_frames.py), put into the merged file half a second after its first packet.
# Damage to its datagrams must stay in its record, and never reach the TCP ones.

QUIC_PORT = 50_443
"""Client port of the QUIC connection (the server is on UDP 443)."""


@functools.cache
def quic_packets() -> tuple[Packet, ...]:
    pytest.importorskip("aioquic")
    import tempfile

    from tests.harness.pki import TestPKI
    from tests.quic_frames import T0, exchange, udp_frame

    _, tcp = merged()
    with tempfile.TemporaryDirectory() as tmp:
        pki = TestPKI(Path(tmp))
        cert = pki.server("www.example.com")
        run = exchange(cert.chain, cert.key, cafile=pki.root, pings=3)
    base = tcp[0].ts + 0.5
    client, server = ("10.99.0.2", QUIC_PORT), ("10.99.0.1", 443)
    out = []
    for ts, from_client, data in run.datagrams:
        at = base + (ts - T0)
        frame = udp_frame(at, client, server, data) if from_client \
            else udp_frame(at, server, client, data)
        sec = int(at)
        out.append(Packet(sec, round((at - sec) * 1e6), frame.data, len(frame.data)))
    return tuple(out)


def with_quic(quic: list[Packet]) -> tuple[bytes, list[Packet]]:
    header, tcp = merged()
    return header, sorted([*tcp, *quic], key=lambda p: p.ts)


UDP_PAYLOAD = 14 + 20 + 8
"""Where the UDP payload starts in these frames (Ethernet, IPv4 without options, UDP)."""


def _quic_key(out: Outcome) -> Key:
    [key] = [k for k in out.records if k[1] == QUIC_PORT]
    return key


def quic_snaplen_cut(packets: list[Packet]) -> list[Packet]:
    # The client's first datagram cut to 100 bytes by the snaplen (its ClientHello is lost).
    first = packets[0]
    return [replace(first, data=first.data[:100]), *packets[1:]]


def quic_length_lies(packets: list[Packet]) -> list[Packet]:
    # The Length of the client's first Initial (a 2-byte varint after the token length)
    # claims 16383 bytes.
    first = packets[0]
    data = bytearray(first.data)
    pos = UDP_PAYLOAD + 5
    pos += 1 + data[pos]  # DCID
    pos += 1 + data[pos]  # SCID
    pos += 1  # token length 0
    data[pos : pos + 2] = b"\x7f\xff"
    return [replace(first, data=bytes(data)), *packets[1:]]


def quic_garbage(packets: list[Packet]) -> list[Packet]:
    # The server's first datagram's protected bytes replaced with garbage.
    i = next(n for n, p in enumerate(packets) if p.data[UDP_PAYLOAD - 8 : UDP_PAYLOAD - 6]
             == struct.pack("!H", 443))
    data = bytearray(packets[i].data)
    noise = random.Random(5).randbytes(len(data) - UDP_PAYLOAD - 40)
    data[UDP_PAYLOAD + 40 :] = noise
    return [*packets[:i], replace(packets[i], data=bytes(data)), *packets[i + 1 :]]


def quic_duplicated(packets: list[Packet]) -> list[Packet]:
    return [q for p in packets for q in (p, p)]


def quic_reordered(packets: list[Packet]) -> list[Packet]:
    # The client's second and third datagrams arrive in the other order (same times kept).
    client = [n for n, p in enumerate(packets) if p.data[UDP_PAYLOAD - 6 : UDP_PAYLOAD - 4]
              == struct.pack("!H", 443)]
    a, b = client[1], client[2]
    out = list(packets)
    out[a], out[b] = replace(packets[b], sec=packets[a].sec, usec=packets[a].usec), \
        replace(packets[a], sec=packets[b].sec, usec=packets[b].usec)
    return out


QUIC_FACTS = ("sni", "version", "quic_version", "alpn_offered", "history", "ja3", "ja4",
              "established", "outcome")


def check_quic_snaplen(want: HandshakeRecord, got: HandshakeRecord) -> None:
    assert "snaplen_truncated" in got.anomalies and got.sni is None
    assert {"quic_bad_packet", "quic_undecryptable"} & set(got.anomalies)


def check_quic_length(want: HandshakeRecord, got: HandshakeRecord) -> None:
    assert "quic_bad_packet" in got.anomalies and got.sni is None


def check_quic_garbage(want: HandshakeRecord, got: HandshakeRecord) -> None:
    assert "quic_undecryptable" in got.anomalies
    assert got.sni == want.sni and got.version is None  # its ServerHello was in there


def check_quic_same(want: HandshakeRecord, got: HandshakeRecord) -> None:
    assert {f: getattr(got, f) for f in QUIC_FACTS} == {f: getattr(want, f) for f in QUIC_FACTS}


QUIC_DAMAGES = [
    ("quic_snaplen_cut", quic_snaplen_cut, check_quic_snaplen),
    ("quic_length_lies", quic_length_lies, check_quic_length),
    ("quic_garbage", quic_garbage, check_quic_garbage),
    ("quic_duplicated", quic_duplicated, check_quic_same),
    ("quic_reordered", quic_reordered, check_quic_same),
]


@pytest.fixture(scope="module")
def quic_baseline(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    header, packets = with_quic(list(quic_packets()))
    path = tmp_path_factory.mktemp("quic-base") / NAME
    path.write_bytes(write_pcap(header, packets))
    run = Run()
    records = list(analyze_files([path], run))
    assert run.errors == []
    return Outcome({key_of(r): r for r in records}, run, 0, "", "")


def test_a_quic_connection_leaves_the_tcp_records_alone(baseline: Outcome,
                                                         quic_baseline: Outcome) -> None:
    quic = quic_baseline.records[_quic_key(quic_baseline)]
    assert (quic.transport, quic.established, quic.history) == ("quic", True, "Cs")
    assert_untouched_identical(baseline, quic_baseline, set())
    assert set(quic_baseline.records) - set(baseline.records) == {_quic_key(quic_baseline)}


@pytest.mark.parametrize(("name", "damage", "check"), QUIC_DAMAGES,
                         ids=[d[0] for d in QUIC_DAMAGES])
def test_damaged_quic_connection(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    quic_baseline: Outcome,
    name: str,
    damage: Callable[[list[Packet]], list[Packet]],
    check: Callable[[HandshakeRecord, HandshakeRecord], None],
) -> None:
    header, packets = with_quic(damage(list(quic_packets())))
    path = write(tmp_path, name, write_pcap(header, packets))
    out = analyse(path, monkeypatch, capsys)
    assert out.code == 0 and out.run.errors == []
    key = _quic_key(quic_baseline)
    assert_untouched_identical(quic_baseline, out, {key})
    assert set(out.records) == set(quic_baseline.records)
    check(quic_baseline.records[key], out.records[key])


def test_truncated_inside_the_quic_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    header, packets = with_quic(list(quic_packets()))
    whole = write_pcap(header, packets)
    offsets = record_offsets(header, packets)
    inside = [n for n, p in enumerate(packets) if struct.pack("!H", QUIC_PORT) in p.data[34:38]]
    for n in inside:
        for cut in (offsets[n] + 10, offsets[n] + RECORD.size + 60):
            path = write(tmp_path, f"cut{cut}", whole[:cut])
            out = analyse(path, monkeypatch, capsys, cli_too=False)
            assert all(isinstance(r.anomalies, list) for r in out.records.values())
            quic = [r for r in out.records.values() if r.transport == "quic"]
            assert len(quic) <= 1
    code, _, err = tlsa(monkeypatch, capsys, "analyze", path, "--format", "jsonl")
    assert code == 0
    no_traceback(err)

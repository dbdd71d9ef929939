"""Seed corpora for the fuzz targets, cut out of the real captures in ``sample_pcaps/``.

- ``capture``: each sample file (decompressed, cut at a packet boundary to at most
  ``MAX_FILE_SEED`` bytes), plus the gzip sample as it is;
- ``tls_stream``: the first ``MAX_STREAM_SEED`` bytes of every TCP direction that starts
  like TLS, with the target's two control bytes in front;
- ``frame``: the first ``FRAMES_PER_FILE`` frames of every sample, with their link type,
  and the real ICMP/ICMPv6 port-unreachable frames of ``tests/test_decode.py``;
- ``hello``: every ClientHello, ServerHello, Certificate and ServerKeyExchange body found
  in those streams, with the selector byte in front, plus one SSLv2-compatible hello.

The streams are put together naively (segments sorted by sequence number, stopping at the
first hole): a seed only has to be a good starting point, not a faithful reassembly.

Usage: ``python tests/fuzz/seeds.py OUT_DIR`` writes ``OUT_DIR/<target>/<name>``.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analyzer.decode import decode_frame  # noqa: E402
from analyzer.decode.types import ACK, SYN, Segment  # noqa: E402
from analyzer.sources import CaptureReader  # noqa: E402
from tests.fuzz.targets import HELLO_PARSERS, LINKTYPES  # noqa: E402

SAMPLES = ROOT / "sample_pcaps"
MAX_FILE_SEED = 32 * 1024
MAX_STREAM_SEED = 16 * 1024
FRAMES_PER_FILE = 12
STREAM_FLAGS_CLIENT = 0b11
STREAM_FLAGS_SERVER = 0b10

SSLV2_HELLO = bytes.fromhex(
    "802e"  # SSLv2 header: 46 bytes follow
    "01"  # msg_type client_hello
    "0301"  # version TLS 1.0
    "0009"  # cipher_spec length: three 3-byte specs
    "0000"  # session id length
    "0010"  # challenge length
    "00002f"
    "000035"
    "010080"  # cipher specs
    "00112233445566778899aabbccddeeff"  # challenge
)
"""RFC 5246 E.2 form, as sent by old clients offering TLS 1.0."""


def sample_files() -> list[Path]:
    return sorted(p for p in SAMPLES.iterdir() if p.name.endswith((".pcap", ".pcapng", ".gz")))


def file_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def cut_pcap(data: bytes, limit: int = MAX_FILE_SEED) -> bytes:
    """A classic little-endian pcap cut after the last whole record within ``limit``;
    other formats whole if they fit, else their first ``limit`` bytes."""
    if data[:4] not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") or len(data) <= limit:
        return data[:limit]
    pos = 24
    while pos + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, pos + 8)[0]
        if pos + 16 + caplen > limit:
            break
        pos += 16 + caplen
    return data[:pos]


def directions(path: Path) -> dict[tuple[bytes, int, bytes, int], tuple[bool, bytes]]:
    """Per TCP direction: (sent by the client?, the in-order bytes up to the first hole)."""
    pieces: dict[tuple[bytes, int, bytes, int], dict[int, bytes]] = defaultdict(dict)
    start: dict[tuple[bytes, int, bytes, int], int] = {}
    client: set[tuple[bytes, int, bytes, int]] = set()
    for frame in CaptureReader(path):
        seg = decode_frame(frame.ts, frame.linktype, frame.data, frame.wirelen)
        if type(seg) is not Segment:
            continue
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        if seg.flags & SYN:
            start[key] = (seg.seq + 1) & 0xFFFFFFFF
            if not seg.flags & ACK:
                client.add(key)
        if seg.payload:
            pieces[key].setdefault(seg.seq, seg.payload)
    out = {}
    for key, segs in pieces.items():
        base = start.get(key, min(segs))
        stream = bytearray()
        for seq in sorted(segs, key=lambda s: (s - base) & 0xFFFFFFFF):
            offset = (seq - base) & 0xFFFFFFFF
            if offset > len(stream) or len(stream) >= MAX_STREAM_SEED:
                break
            stream += segs[seq][len(stream) - offset :]
        is_client = key in client or (key not in start and key[3] < key[1])
        out[key] = (is_client, bytes(stream[:MAX_STREAM_SEED]))
    return out


def handshake_bodies(stream: bytes) -> list[tuple[int, bytes]]:
    """(msg_type, body) of the plaintext handshake messages at the start of a TLS stream."""
    fragments = bytearray()
    pos = 0
    while pos + 5 <= len(stream) and stream[pos] in (20, 21, 22, 23):
        length = int.from_bytes(stream[pos + 3 : pos + 5])
        if stream[pos] == 22:
            fragments += stream[pos + 5 : pos + 5 + length]
        elif stream[pos] == 20:
            break  # what follows is encrypted
        pos += 5 + length
    out = []
    pos = 0
    while pos + 4 <= len(fragments):
        length = int.from_bytes(fragments[pos + 1 : pos + 4])
        if pos + 4 + length > len(fragments):
            break
        out.append((fragments[pos], bytes(fragments[pos + 4 : pos + 4 + length])))
        pos += 4 + length
    return out


def seeds() -> dict[str, dict[str, bytes]]:
    """Target -> seed name -> bytes."""
    out: dict[str, dict[str, bytes]] = {"capture": {}, "tls_stream": {}, "hello": {}, "frame": {}}
    selector = {int(t): i for i, t in enumerate(HELLO_PARSERS)}
    out["hello"]["sslv2"] = bytes([len(HELLO_PARSERS)]) + SSLV2_HELLO
    from tests.test_decode import ICMP4_PORT_UNREACHABLE, ICMP6_PORT_UNREACHABLE

    ethernet = bytes([LINKTYPES.index(1), 1])
    out["frame"]["icmp4-port-unreachable"] = ethernet + ICMP4_PORT_UNREACHABLE
    out["frame"]["icmp6-port-unreachable"] = ethernet + ICMP6_PORT_UNREACHABLE
    for path in sample_files():
        for n, f in enumerate(CaptureReader(path)):
            if n == FRAMES_PER_FILE:
                break
            if f.linktype in LINKTYPES:
                out["frame"][f"{path.stem}-{n}"] = bytes([LINKTYPES.index(f.linktype), 1]) + f.data
        out["capture"][path.name] = cut_pcap(file_bytes(path))
        if path.name.endswith(".gz") and path.stat().st_size <= MAX_FILE_SEED:
            out["capture"][path.name + ".raw"] = path.read_bytes()
        for key, (is_client, stream) in directions(path).items():
            if not stream or (stream[0] not in (22, 21, 20, 23) and not stream[0] & 0x80):
                continue
            flags = STREAM_FLAGS_CLIENT if is_client else STREAM_FLAGS_SERVER
            name = f"{path.stem}-{key[1]}-{key[3]}"
            out["tls_stream"][name] = bytes([flags, len(stream) & 0xFF]) + stream
            for n, (msg_type, body) in enumerate(handshake_bodies(stream)):
                if msg_type in selector:
                    out["hello"][f"{name}-{n}"] = bytes([selector[msg_type]]) + body
    # Identical bytes under several names are one seed.
    for target, named in out.items():
        unique: dict[bytes, str] = {}
        for name, data in sorted(named.items()):
            unique.setdefault(data, name)
        out[target] = {name: data for data, name in unique.items()}
    return out


def write(out_dir: Path) -> dict[str, Path]:
    """Write the seeds under ``out_dir/<target>/``; return the directory per target."""
    dirs = {}
    for target, named in seeds().items():
        d = out_dir / target
        d.mkdir(parents=True, exist_ok=True)
        for name, data in named.items():
            digest = hashlib.sha1(data).hexdigest()[:10]
            (d / f"{name}-{digest}").write_bytes(data)
        dirs[target] = d
    return dirs


if __name__ == "__main__":
    for target, d in write(Path(sys.argv[1])).items():
        print(target, len(list(d.iterdir())), d)

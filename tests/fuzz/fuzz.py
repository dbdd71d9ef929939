"""Coverage-guided fuzzing of one target under atheris (libFuzzer for Python).

Usage: ``python tests/fuzz/fuzz.py TARGET [libFuzzer flags] CORPUS_DIR [SEED_DIR...]``,
e.g. ``python tests/fuzz/fuzz.py hello -max_total_time=60 /tmp/corpus /tmp/seeds/hello``.
``tests/fuzz/run.py`` drives this for every target with a time budget; run it directly to
reproduce one crash: ``python tests/fuzz/fuzz.py capture crash-<sha1>``.

The ``analyzer`` modules are instrumented for coverage feedback. For the ``capture``
target a structure-aware mutator keeps a classic pcap a pcap half of the time: it mutates
one packet's bytes and fixes that record's length fields, so mutations reach the TCP and
TLS layers instead of only breaking the file format (which the other half still does).
"""

from __future__ import annotations

import random
import struct
import sys
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

with atheris.instrument_imports(include=["analyzer"]):
    import analyzer.diagnosis
    import analyzer.engine.engine
    import analyzer.sources
    import analyzer.tls  # noqa: F401

from tests.fuzz.targets import TARGETS  # noqa: E402

_PCAP_LE = (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
_RECORD = struct.Struct("<IIII")


def _records(data: bytes) -> list[tuple[int, int]]:
    """(offset, captured length) of the whole records of a little-endian pcap."""
    out = []
    pos = 24
    while pos + 16 <= len(data):
        caplen = _RECORD.unpack_from(data, pos)[2]
        if pos + 16 + caplen > len(data):
            break
        out.append((pos, caplen))
        pos += 16 + caplen
    return out


def pcap_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """Mutate one packet of a pcap (and fix its lengths), or the file as raw bytes."""
    rng = random.Random(seed)
    records = _records(data) if data[:4] in _PCAP_LE else []
    if not records or rng.random() < 0.5:
        return atheris.Mutate(data, max_size)
    pos, caplen = rng.choice(records)
    packet = data[pos + 16 : pos + 16 + caplen]
    room = max(0, max_size - (len(data) - caplen))
    new = atheris.Mutate(packet, min(room, 65535)) if room else packet
    sec, frac, _, _ = _RECORD.unpack_from(data, pos)
    cut = rng.randrange(2000) if rng.random() < 0.1 else 0  # a snaplen-cut packet
    wire = len(new) + cut
    header = _RECORD.pack(sec, frac, len(new), wire)
    return data[:pos] + header + new + data[pos + 16 + caplen :]


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: fuzz.py {{{'|'.join(TARGETS)}}} [libFuzzer flags] [dirs or files]")
    name = sys.argv[1]
    target = TARGETS[name]
    argv = [sys.argv[0], *sys.argv[2:]]
    if name == "capture":
        atheris.Setup(argv, target, custom_mutator=pcap_mutator)
    else:
        atheris.Setup(argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

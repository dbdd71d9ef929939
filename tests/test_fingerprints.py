"""JA3, JA3S and JA4 against their specifications and against independent tools.

Truth comes from outside this code base: the worked examples of the JA3 README and of
FoxIO's JA4.md, Wireshark's own JA3/JA3S (``tshark -e tls.handshake.ja3``) on every
ClientHello/ServerHello of the suricata-verify captures, and the JA3/JA3S/JA4 values the
suricata-verify ``test.yaml`` files expect. Hellos from the captures are decoded by a
small helper below (independent of the project's hello parser); when the project parser
exists, its output is checked against the same truth too.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.fingerprints import ja3, ja3s, ja4
from analyzer.tls.messages import ClientHello, Extension, ServerHello

PCAPS = Path("/work/shared/pcaps/suricata-verify")
GREASE = [0x0A0A + 0x1010 * i for i in range(16)]


def client_hello(
    *,
    version: int = 0x0303,
    ciphers: tuple[int, ...] = (),
    extensions: tuple[int, ...] = (),
    supported_versions: tuple[int, ...] = (),
    groups: tuple[int, ...] = (),
    point_formats: tuple[int, ...] = (),
    sigalgs: tuple[int, ...] = (),
    alpn: tuple[bytes, ...] = (),
    sslv2: bool = False,
) -> ClientHello:
    return ClientHello(
        legacy_version=version,
        random=bytes(32),
        session_id=b"",
        cipher_suites=ciphers,
        compression_methods=b"\x00",
        extensions=tuple(Extension(type=t, data=b"") for t in extensions),
        sni="example.com" if 0 in extensions else None,
        supported_versions=supported_versions,
        supported_groups=groups,
        ec_point_formats=point_formats,
        signature_algorithms=sigalgs,
        alpn=alpn,
        sslv2=sslv2,
    )


# --- JA4: the worked example of FoxIO's technical_details/JA4.md ------------------------

SPEC_CIPHERS: tuple[int, ...] = (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030)
SPEC_CIPHERS += (0xCCA9, 0xCCA8, 0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035)
SPEC_EXTENSIONS: tuple[int, ...] = (0x001B, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002D)
SPEC_EXTENSIONS += (0x000D, 0x0005, 0x0023, 0x0012, 0x002B, 0xFF01, 0x000B, 0x000A, 0x0015)
SPEC_SIGALGS: tuple[int, ...] = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806)
SPEC_SIGALGS += (0x0601,)


def spec_hello(**overrides: Any) -> ClientHello:
    fields: dict[str, Any] = {
        "ciphers": SPEC_CIPHERS,
        "extensions": SPEC_EXTENSIONS,
        "supported_versions": (0x0304, 0x0303),
        "sigalgs": SPEC_SIGALGS,
        "alpn": (b"h2", b"http/1.1"),
    }
    fields.update(overrides)
    return client_hello(**fields)


def test_ja4_spec_example() -> None:
    assert ja4(spec_hello()) == "t13d1516h2_8daaf6152771_e5627efa2ab1"


def test_ja4_ignores_grease_everywhere() -> None:
    greased = spec_hello(
        ciphers=(GREASE[0], *SPEC_CIPHERS),
        extensions=(GREASE[3], *SPEC_EXTENSIONS, GREASE[9]),
        supported_versions=(GREASE[5], 0x0304, 0x0303),
        sigalgs=(GREASE[7], *SPEC_SIGALGS),
    )
    assert ja4(greased) == "t13d1516h2_8daaf6152771_e5627efa2ab1"


def test_ja4_spec_example_without_signature_algorithms() -> None:
    # JA4.md: "the string ends without an underscore": 0005,...,ff01 = 6d807ffa2a79
    assert ja4(spec_hello(sigalgs=())) == "t13d1516h2_8daaf6152771_6d807ffa2a79"


def test_ja4_hash_parts_are_truncated_sha256_of_the_sorted_lists() -> None:
    ciphers = "002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9"
    exts = "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01"
    sigs = "0403,0804,0401,0503,0805,0501,0806,0601"
    _, part_b, part_c = ja4(spec_hello()).split("_")
    assert part_b == hashlib.sha256(ciphers.encode()).hexdigest()[:12]
    assert part_c == hashlib.sha256(f"{exts}_{sigs}".encode()).hexdigest()[:12]


@pytest.mark.parametrize(
    ("alpn", "expected"),
    [
        ((b"h2", b"http/1.1"), "h2"),
        ((b"http/1.1", b"h2"), "h1"),
        ((b"h3",), "h3"),
        ((b"z",), "zz"),  # one character is both the first and the last
        ((), "00"),
        ((b"",), "00"),  # an empty first value counts as no ALPN
        # JA4.md: a non-alphanumeric first or last byte switches to the value's hex
        ((b"\xab",), "ab"),
        ((b"\xab\xcd",), "ad"),
        ((b"\x30\xab",), "3b"),
        ((b"\x30\x31\xab\xcd",), "3d"),
        ((b"\x30\xab\xcd\x31",), "01"),
        ((b"-h2",), "22"),
        ((b"H2",), "H2"),
    ],
)
def test_ja4_alpn_characters(alpn: tuple[bytes, ...], expected: str) -> None:
    assert ja4(spec_hello(alpn=alpn))[8:10] == expected


@pytest.mark.parametrize(
    ("legacy", "supported", "expected"),
    [
        (0x0303, (0x0304, 0x0303), "13"),
        (0x0303, (GREASE[2], 0x0303, 0x0302), "12"),
        (0x0303, (GREASE[2],), "00"),  # the extension is there but says nothing usable
        (0x0303, (0x7F1C, 0x0304), "00"),  # the highest value is a draft: unknown
        (0x0302, None, "11"),
        (0x0301, None, "10"),
        (0x0300, None, "s3"),
        (0x0002, None, "s2"),
        (0x0305, None, "00"),
        (0x7F1C, None, "00"),
    ],
)
def test_ja4_version(legacy: int, supported: tuple[int, ...] | None, expected: str) -> None:
    extensions = tuple(t for t in SPEC_EXTENSIONS if t != 0x002B)
    if supported is not None:
        extensions += (0x002B,)
    hello = spec_hello(version=legacy, extensions=extensions, supported_versions=supported or ())
    assert ja4(hello)[1:3] == expected


def test_ja4_transport_marker() -> None:
    assert ja4(spec_hello(), "q").startswith("q13d")
    assert ja4(spec_hello(), "d").startswith("d13d")


def test_ja4_counts_are_capped_at_99() -> None:
    hello = client_hello(ciphers=tuple(range(1, 201)), extensions=tuple(range(0x100, 0x1C8)))
    assert ja4(hello)[:10] == "t12i999900"


def test_ja4_counts_include_sni_alpn_and_scsv() -> None:
    hello = client_hello(ciphers=(0x00FF, 0x5600, 0x002F), extensions=(0x0000, 0x0010))
    assert ja4(hello)[:10] == "t12d030200"


def test_ja4_empty_lists_are_twelve_zeros() -> None:
    assert ja4(client_hello()) == "t12i000000_000000000000_000000000000"
    only_named = client_hello(ciphers=(0x002F,), extensions=(0x0000, 0x0010), alpn=(b"h2",))
    assert ja4(only_named).endswith("_000000000000")
    assert ja4(only_named).startswith("t12d0102h2_")


def test_ja4_keeps_extension_duplicates_and_sigalg_order() -> None:
    base = ja4(spec_hello())
    reordered = spec_hello(extensions=tuple(reversed(SPEC_EXTENSIONS)))
    assert ja4(reordered) == base  # extension order does not matter
    other_order = spec_hello(sigalgs=tuple(reversed(SPEC_SIGALGS)))
    assert ja4(other_order).split("_")[2] != base.split("_")[2]  # sigalg order does


def test_ja4_sslv2_hello_uses_its_fields() -> None:
    hello = client_hello(version=0x0301, ciphers=(0x0039, 0x0038, 0x0035), sslv2=True)
    expected_b = hashlib.sha256(b"0035,0038,0039").hexdigest()[:12]
    assert ja4(hello) == f"t10i030000_{expected_b}_000000000000"
    assert ja4(client_hello(version=0x0002, ciphers=(0x0004,), sslv2=True))[:4] == "ts2i"


# A small TLS 1.3 ClientHello body (after the 4-byte handshake header), written by hand.
HAND_HELLO = bytes.fromhex(
    "0303"  # legacy_version TLS 1.2
    + "00" * 32  # random
    + "00"  # session_id: empty
    + "0008 0a0a 1301 c02f 00ff"  # cipher_suites: GREASE, AES128-GCM, ECDHE-RSA, SCSV
    + "0100"  # compression_methods: null
    + "0048"  # extensions: 72 bytes
    + "0a0a 0000"  # GREASE extension, empty
    + "0000 0009 0007 00 0004 612e696f"  # server_name: host_name "a.io"
    + "0010 000e 000c 02 6832 08 687474702f312e31"  # ALPN: h2, http/1.1
    + "002b 0007 06 1a1a 0304 0303"  # supported_versions: GREASE, 1.3, 1.2
    + "000d 0006 0004 0403 0804"  # signature_algorithms
    + "000a 0006 0004 2a2a 001d"  # supported_groups: GREASE, x25519
    + "000b 0002 01 00"  # ec_point_formats: uncompressed
)


def test_hand_written_hello_through_the_parser() -> None:
    hello = pytest.importorskip("analyzer.tls.hello").parse_client_hello(HAND_HELLO)
    assert isinstance(hello, ClientHello)
    sha = hashlib.sha256
    part_b = sha(b"00ff,1301,c02f").hexdigest()[:12]
    part_c = sha(b"000a,000b,000d,002b_0403,0804").hexdigest()[:12]
    assert ja4(hello) == f"t13d0306h2_{part_b}_{part_c}"
    text = "771,4865-49199-255,0-16-43-13-10-11,29,0"
    assert ja3(hello) == (text, hashlib.md5(text.encode()).hexdigest())


# --- JA3 / JA3S ------------------------------------------------------------------------


def test_ja3_readme_example() -> None:
    # salesforce/ja3 README: the string and its MD5.
    hello = client_hello(
        version=769,
        ciphers=(47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4),
        extensions=(0, 10, 11),
        groups=(23, 24, 25),
        point_formats=(0,),
    )
    text, digest = ja3(hello)
    assert text == "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
    assert digest == "ada70206e40642a3e4461f35503241d5"


def test_ja3_removes_grease_and_keeps_wire_order() -> None:
    hello = client_hello(
        ciphers=(GREASE[1], 4865, 49195),
        extensions=(GREASE[4], 43, 0, 10, GREASE[8], 11),
        groups=(GREASE[1], 29, 23),
        point_formats=(0, 1, 2),
    )
    text, digest = ja3(hello)
    assert text == "771,4865-49195,43-0-10-11,29-23,0-1-2"
    assert digest == hashlib.md5(text.encode()).hexdigest()


def test_ja3_without_extensions_keeps_the_commas() -> None:
    assert ja3(client_hello(version=0x0301, ciphers=(47, 53)))[0] == "769,47-53,,,"


def test_ja3_sslv2_hello() -> None:
    hello = client_hello(version=0x0301, ciphers=(0x0039, 0x0004), sslv2=True)
    assert ja3(hello)[0] == "769,57-4,,,"


def server_hello(version: int, cipher: int, extensions: tuple[int, ...]) -> ServerHello:
    return ServerHello(
        legacy_version=version,
        random=bytes(32),
        session_id=b"",
        cipher_suite=cipher,
        compression_method=0,
        extensions=tuple(Extension(type=t, data=b"") for t in extensions),
    )


def test_ja3s_suricata_example() -> None:
    # suricata-verify tls/tls-ja3s/test.yaml
    text, digest = ja3s(server_hello(771, 49199, (65281, 0, 11, 16, 23)))
    assert (text, digest) == ("771,49199,65281-0-11-16-23", "5d79edf64e03689ff559a54e9d9487bc")


def test_ja3s_without_extensions() -> None:
    assert ja3s(server_hello(0x0301, 0x0035, ()))[0] == "769,53,"


JA4_FORMAT = re.compile(  # DTLS versions (d1, d2, d3) may stand in a TLS ClientHello too
    r"^t(13|12|11|10|s3|s2|d1|d2|d3|00)[di]\d{4}[0-9A-Za-z]{2}_[0-9a-f]{12}_[0-9a-f]{12}$"
)


@given(
    version=st.integers(0, 0xFFFF),
    ciphers=st.lists(st.integers(0, 0xFFFF), max_size=150),
    extensions=st.lists(st.integers(0, 0xFFFF), max_size=150),
    versions=st.lists(st.integers(0, 0xFFFF), max_size=5),
    groups=st.lists(st.integers(0, 0xFFFF), max_size=5),
    formats=st.lists(st.integers(0, 0xFF), max_size=3),
    sigalgs=st.lists(st.integers(0, 0xFFFF), max_size=5),
    alpn=st.lists(st.binary(max_size=10), max_size=3),
    sslv2=st.booleans(),
)
def test_fingerprints_are_total(
    version: int,
    ciphers: list[int],
    extensions: list[int],
    versions: list[int],
    groups: list[int],
    formats: list[int],
    sigalgs: list[int],
    alpn: list[bytes],
    sslv2: bool,
) -> None:
    hello = client_hello(
        version=version,
        ciphers=tuple(ciphers),
        extensions=tuple(extensions),
        supported_versions=tuple(versions),
        groups=tuple(groups),
        point_formats=tuple(formats),
        sigalgs=tuple(sigalgs),
        alpn=tuple(alpn),
        sslv2=sslv2,
    )
    assert JA4_FORMAT.match(ja4(hello))
    text, digest = ja3(hello)
    assert text.count(",") == 4 and len(digest) == 32
    assert str(version) == text.split(",")[0]


# --- real captures: Wireshark's JA3/JA3S and Suricata's expected values -----------------
#
# A minimal decoder for the hellos in the captures, written from RFC 5246 §7.4.1.2 and
# RFC 8446 §4.1.2 only for this comparison (it trusts its input: tshark already decoded
# the same bytes as TLS).


def _u16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "big")


def _vector(data: bytes, at: int, length_size: int) -> tuple[bytes, int]:
    length = int.from_bytes(data[at : at + length_size], "big")
    end = at + length_size + length
    return data[at + length_size : end], end


def _u16_list(data: bytes) -> tuple[int, ...]:
    return tuple(_u16(data, i) for i in range(0, len(data) - 1, 2))


def _extensions(body: bytes, at: int) -> tuple[Extension, ...]:
    if at + 2 > len(body):
        return ()
    block, _ = _vector(body, at, 2)
    found, i = [], 0
    while i + 4 <= len(block):
        ext_type = _u16(block, i)
        data, i = _vector(block, i + 2, 2)
        found.append(Extension(type=ext_type, data=data))
    return tuple(found)


def decode_client_hello(body: bytes) -> ClientHello:
    session_id, at = _vector(body, 34, 1)
    suites, at = _vector(body, at, 2)
    compression, at = _vector(body, at, 1)
    extensions = _extensions(body, at)
    fields: dict[str, Any] = {}
    for ext in extensions:
        if ext.type == 0x0000:
            fields["sni"] = "present"
        elif ext.type == 0x000A:
            fields["supported_groups"] = _u16_list(_vector(ext.data, 0, 2)[0])
        elif ext.type == 0x000B:
            fields["ec_point_formats"] = tuple(_vector(ext.data, 0, 1)[0])
        elif ext.type == 0x000D:
            fields["signature_algorithms"] = _u16_list(_vector(ext.data, 0, 2)[0])
        elif ext.type == 0x002B:
            fields["supported_versions"] = _u16_list(_vector(ext.data, 0, 1)[0])
        elif ext.type == 0x0010:
            names, i, block = [], 0, _vector(ext.data, 0, 2)[0]
            while i < len(block):
                name, i = _vector(block, i, 1)
                names.append(name)
            fields["alpn"] = tuple(names)
    return ClientHello(
        legacy_version=_u16(body, 0),
        random=body[2:34],
        session_id=session_id,
        cipher_suites=_u16_list(suites),
        compression_methods=compression,
        extensions=extensions,
        **fields,
    )


def decode_server_hello(body: bytes) -> ServerHello:
    version = _u16(body, 0)
    if version >> 8 == 0x7F or version == 0x0304:  # TLS 1.3 drafts: no session id
        session_id, at = b"", 34
        suite, extensions = _u16(body, at), _extensions(body, at + 2)
    else:
        session_id, at = _vector(body, 34, 1)
        suite, extensions = _u16(body, at), _extensions(body, at + 3)
    return ServerHello(
        legacy_version=version,
        random=body[2:34],
        session_id=session_id,
        cipher_suite=suite,
        compression_method=0,
        extensions=extensions,
    )


def handshake_messages(data: bytes) -> list[tuple[int, bytes]]:
    """(type, body) of the complete handshake messages in a run of TLS records."""
    handshake, i = b"", 0
    while i + 5 <= len(data) and data[i] in (20, 21, 22, 23) and data[i + 1] == 3:
        length = _u16(data, i + 3)
        if data[i] == 22:
            handshake += data[i + 5 : i + 5 + length]
        i += 5 + length
    messages, j = [], 0
    while j + 4 <= len(handshake):
        length = int.from_bytes(handshake[j + 1 : j + 4], "big")
        if j + 4 + length > len(handshake):
            break
        messages.append((handshake[j], handshake[j + 4 : j + 4 + length]))
        j += 4 + length
    return messages


FIELDS = ["tcp.reassembled.data", "tcp.payload", "tls.handshake.ja3_full"]
FIELDS += ["tls.handshake.ja3", "tls.handshake.ja3s_full", "tls.handshake.ja3s"]


def tshark_hellos(pcap: Path) -> list[dict[str, Any]]:
    """One entry per TCP frame carrying a ClientHello/ServerHello: Wireshark's JA3/JA3S
    and the raw handshake messages."""
    command = ["tshark", "-n", "-r", str(pcap), "-T", "fields", "-E", "occurrence=a"]
    command += [
        "-E",
        "aggregator=|",
        "-Y",
        "tcp && (tls.handshake.type == 1 || tls.handshake.type == 2)",
    ]
    for field in FIELDS:
        command += ["-e", field]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    frames = []
    for line in out.stdout.splitlines():
        values = dict(zip(FIELDS, [*line.split("\t"), *[""] * len(FIELDS)], strict=False))
        chunks = values["tcp.reassembled.data"] or values["tcp.payload"]
        data = [bytes.fromhex(chunk) for chunk in chunks.split("|") if chunk]
        frames.append(
            {
                "pcap": pcap,
                "messages": [m for d in data for m in handshake_messages(d)],
                "ja3": _pairs(values["tls.handshake.ja3_full"], values["tls.handshake.ja3"]),
                "ja3s": _pairs(values["tls.handshake.ja3s_full"], values["tls.handshake.ja3s"]),
            }
        )
    return frames


def _pairs(texts: str, digests: str) -> list[tuple[str, str]]:
    return [(t, d) for t, d in zip(texts.split("|"), digests.split("|"), strict=False) if t]


needs_captures = pytest.mark.skipif(
    shutil.which("tshark") is None or not PCAPS.is_dir(),
    reason="needs tshark and the suricata-verify captures",
)


@pytest.fixture(scope="module")
def capture_hellos() -> list[dict[str, Any]]:
    pcaps = sorted(p for p in PCAPS.rglob("*.pcap*") if p.is_file())
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        return [frame for frames in pool.map(tshark_hellos, pcaps) for frame in frames]


KNOWN_DIFFERENCES = {
    ("tls13_draft14.pcap", "ja3s"): "tshark 4.0 reads the draft-14 ServerHello (no "
    "session id) with the TLS 1.2 layout and takes random bytes for the suite",
}


def compare_with_wireshark(
    frames: list[dict[str, Any]],
    decode_ch: Any,
    decode_sh: Any,
) -> tuple[int, int, set[tuple[str, str]]]:
    agree = total = 0
    differ: set[tuple[str, str]] = set()
    for frame in frames:
        ours_ch = [ja3(decode_ch(body)) for kind, body in frame["messages"] if kind == 1]
        ours_sh = [ja3s(decode_sh(body)) for kind, body in frame["messages"] if kind == 2]
        for name, ours in (("ja3", ours_ch), ("ja3s", ours_sh)):
            theirs = frame[name]
            if not theirs:
                continue
            total += 1
            if theirs == ours:
                agree += 1
            else:
                differ.add((frame["pcap"].name, name))
    return agree, total, differ


@needs_captures
def test_ja3_and_ja3s_agree_with_wireshark(capture_hellos: list[dict[str, Any]]) -> None:
    agree, total, differ = compare_with_wireshark(
        capture_hellos, decode_client_hello, decode_server_hello
    )
    assert total >= 200  # 104 ClientHello and 102 ServerHello frames when written
    assert differ == set(KNOWN_DIFFERENCES)
    assert agree == total - 1


def suricata_expectations() -> list[tuple[Path, str, str]]:
    """(pcap, key, value) for every ``tls.ja3*``/``tls.ja4`` value a test.yaml expects."""
    found = []
    for yaml in sorted(PCAPS.rglob("test.yaml")):
        text = yaml.read_text()
        expected = re.findall(
            r'^\s*tls\.(ja3s?\.(?:string|hash)|ja4):\s*"?([^"\n]*?)"?\s*$', text, re.M
        )
        if not expected:
            continue
        named = re.search(r"^pcap:\s*(\S+)", text, re.M)
        if named:
            pcap = (yaml.parent / named.group(1)).resolve()
        else:
            pcap = sorted(yaml.parent.glob("*.pcap*"))[0].resolve()
        found += [(pcap, key, value) for key, value in expected]
    return found


SURICATA_DEVIATIONS = {
    # Suricata (7.x/8.x as in suricata-verify) always joins the extension and signature
    # algorithm lists with "_"; JA4.md and FoxIO's reference (issue #146) leave the
    # underscore out when there are no signature algorithms, as we do.
    "t10i070600_c50f5591e341_ce66f3b797c1": "t10i070600_c50f5591e341_c39ab67fec8e",
}


def check_suricata_expectations(
    frames: list[dict[str, Any]], decode_ch: Any, decode_sh: Any
) -> int:
    """Every value a suricata-verify test.yaml expects is among our fingerprints of the
    same capture; returns how many were checked."""
    computed: dict[Path, dict[str, set[str]]] = {}
    for frame in frames:
        ours = computed.setdefault(frame["pcap"].resolve(), {})
        for kind, body in frame["messages"]:
            if kind == 1:
                hello = decode_ch(body)
                text, digest = ja3(hello)
                ours.setdefault("ja3.string", set()).add(text)
                ours.setdefault("ja3.hash", set()).add(digest)
                ours.setdefault("ja4", set()).add(ja4(hello))
            elif kind == 2:
                text, digest = ja3s(decode_sh(body))
                ours.setdefault("ja3s.string", set()).add(text)
                ours.setdefault("ja3s.hash", set()).add(digest)
    expectations = suricata_expectations()
    for pcap, key, value in expectations:
        assert SURICATA_DEVIATIONS.get(value, value) in computed[pcap][key], (pcap, key)
    return len(expectations)


@needs_captures
def test_suricata_expected_fingerprints(capture_hellos: list[dict[str, Any]]) -> None:
    checked = check_suricata_expectations(capture_hellos, decode_client_hello, decode_server_hello)
    assert checked >= 33  # 23 JA3, 4 JA3S and 6 JA4 values when written


@needs_captures
def test_suricata_deviation_is_only_the_underscore() -> None:
    exts = "0005,000a,000b,0017,0023,ff01"  # the TLSv1.0 hello of bug-5713-01
    assert hashlib.sha256(f"{exts}_".encode()).hexdigest()[:12] == "ce66f3b797c1"
    assert hashlib.sha256(exts.encode()).hexdigest()[:12] == "c39ab67fec8e"


def _json_pairs(value: Any, out: list[tuple[str, Any]]) -> None:
    if isinstance(value, list):
        if value and all(isinstance(x, tuple) and len(x) == 2 for x in value):
            for key, inner in value:
                out.append((key, inner))
                _json_pairs(inner, out)
        else:
            for inner in value:
                _json_pairs(inner, out)


@needs_captures
def test_quic_ja4_matches_suricata() -> None:
    # suricata-verify ja4-quic/test.yaml: quic.ja4 for the Initial packets' ClientHello,
    # which tshark decrypts; CRYPTO frames come out of order and are put back by offset.
    pcap = PCAPS / "ja4-quic" / "input.pcap"
    command = ["tshark", "-n", "-r", str(pcap), "-Y", "quic && tls.handshake.type == 1"]
    out = subprocess.run(
        [*command, "-T", "json", "-x"], capture_output=True, text=True, check=False
    )
    results = []
    for packet in json.loads(out.stdout, object_pairs_hook=lambda pairs: pairs):
        pairs: list[tuple[str, Any]] = []
        _json_pairs(packet, pairs)
        fragments: dict[int, bytes] = {}
        offset = 0
        for key, value in pairs:
            if key == "quic.crypto.offset":
                offset = int(value)
            elif key == "quic.crypto.crypto_data_raw":
                fragments[offset] = bytes.fromhex(value[0])
        stream = b""
        for start in sorted(fragments):
            if start == len(stream):
                stream += fragments[start]
        length = int.from_bytes(stream[1:4], "big")
        results.append(ja4(decode_client_hello(stream[4 : 4 + length]), "q"))
    assert len(results) == 11
    assert set(results) == {"q13d0310h3_55b375c5d22e_cd85d2d88918"}


@needs_captures
def test_project_hello_parser_agrees_with_wireshark(capture_hellos: list[dict[str, Any]]) -> None:
    hello = pytest.importorskip("analyzer.tls.hello")

    def parsed(parse: Any) -> Any:
        def run(body: bytes) -> Any:
            value = parse(body)
            assert isinstance(value, (ClientHello, ServerHello)), value
            return value

        return run

    parse_ch, parse_sh = parsed(hello.parse_client_hello), parsed(hello.parse_server_hello)
    agree, total, differ = compare_with_wireshark(capture_hellos, parse_ch, parse_sh)
    assert differ == set(KNOWN_DIFFERENCES)
    assert agree == total - 1
    assert check_suricata_expectations(capture_hellos, parse_ch, parse_sh) >= 33

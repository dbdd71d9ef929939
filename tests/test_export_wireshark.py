"""Wireshark hand-off against tshark: ``wireshark_filter`` and ``--extract``.

Truth comes from tshark 4.0 reading the captures: the display filter of a record must
select exactly the frames our extractor picked (Wireshark frame numbers, original
capture), and the pcapng written by ``--extract`` must hold exactly those frames, with
their original timestamps, lengths and link types, one Interface Description Block per
link type, and a comment naming the uid on each connection's first packet.

Inputs: the committed sample captures (Ethernet, VLAN, Linux SLL2, IPv6, two pcapng
interfaces), a capture of real frames where the same 4-tuple is used twice (the frames of
a real handshake repeated 10 s later: port reuse), and a real curl SYN answered by an
``iptables REJECT`` ICMP port unreachable (the fixture frames of ``test_decode``).
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from pathlib import Path

import dpkt
import pytest
from typer.testing import CliRunner

from analyzer import cli
from analyzer.api import Run, collect
from analyzer.diagnosis.tuples import TupleStarts
from analyzer.display_filter import display_filter
from analyzer.export.pcapng_writer import PcapngWriter
from analyzer.export.wireshark import extract_comment, write_extract
from analyzer.record import HandshakeRecord
from analyzer.sources import CaptureReader
from analyzer.tls.keylog import KeyLog
from tests.test_decode import ICMP4_PORT_UNREACHABLE
from tests.test_engine_icmp import SYN4

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_pcaps"
TSHARK = shutil.which("tshark")

pytestmark = [
    pytest.mark.skipif(TSHARK is None, reason="tshark is not installed"),
    pytest.mark.skipif(not SAMPLES.exists(), reason="sample_pcaps/ is not there"),
]

CAPTURES = [
    "nginx_tls12_ok.pcap",
    "nginx_version_mismatch.pcap",
    "net_tcp_refused.pcap",
    "net_rst_after_client_hello.pcap",
    "squid_connect_denied_403.pcap",
    "cap_ipv6.pcap",
    "cap_linux_sll2.pcap",
    "cap_vlan_8021q.pcap",
    "cap_pcapng_two_interfaces.pcapng",
    "cap_gzip.pcap.gz",
]
"""Every link type, both IP versions, a proxy, refused and reset connections."""


def tshark(*args: str | Path) -> list[str]:
    assert TSHARK is not None
    out = subprocess.run([TSHARK, *map(str, args)], capture_output=True, text=True,
                         timeout=60, check=True)
    return [line for line in out.stdout.splitlines() if line]


def filtered_numbers(capture: Path, display: str) -> list[int]:
    return [int(n) for n in tshark("-r", capture, "-Y", display, "-T", "fields",
                                   "-e", "frame.number")]


def records_of(path: Path) -> list[HandshakeRecord]:
    run = Run()
    records = collect([path], run, workers=1)
    assert not run.errors
    return records  # collect() adds the time bounds with the cross-connection evidence


def extract(records: list[HandshakeRecord], path: Path, out: Path) -> dict[str, list[int]]:
    tuples = TupleStarts()
    for r in records:
        tuples.add(r)
    with out.open("wb") as f:
        done = write_extract(records, {path.name: path}, f, tuples=tuples)
    assert not done.missing and not done.errors
    return done.frames


def frames_facts(capture: Path, display: str | None = None) -> list[tuple[int, str, str]]:
    """(epoch time to the microsecond, length, protocol stack) of each frame tshark sees.
    Microseconds: frames carry float timestamps, which hold a microsecond exactly but not
    a nanosecond, so the extract is written with microsecond resolution."""
    args: list[str | Path] = ["-r", capture]
    if display:
        args += ["-Y", display]
    rows = tshark(*args, "-T", "fields", "-E", "separator=|", "-e", "frame.time_epoch",
                  "-e", "frame.len", "-e", "frame.protocols")
    out = []
    for row in rows:
        when, length, stack = row.split("|")[:3]
        seconds, _, fraction = when.partition(".")
        ns = int(seconds) * 10**9 + int(fraction.ljust(9, "0"))
        out.append((ns // 1000, length, stack))
    return out


def same_frames(got: list[tuple[int, str, str]], want: list[tuple[int, str, str]]) -> bool:
    """Same lengths and stacks, times within a microsecond (a nanosecond source rounds)."""
    return len(got) == len(want) and all(
        abs(g[0] - w[0]) <= 1 and g[1:] == w[1:] for g, w in zip(got, want, strict=True)
    )


@pytest.mark.parametrize("name", CAPTURES)
def test_filter_selects_exactly_the_extracted_frames(name: str, tmp_path: Path) -> None:
    path = SAMPLES / name
    records = records_of(path)
    assert records
    out = tmp_path / "x.pcapng"
    ours = extract(records, path, out)
    for r in records:
        assert r.wireshark_filter, r.uid
        assert filtered_numbers(path, r.wireshark_filter) == ours[r.uid], r.uid
        assert ours[r.uid], r.uid
    # The written file: exactly the selected frames, as they were.
    original = frames_facts(path)
    wanted = sorted({n for ns in ours.values() for n in ns})
    assert same_frames(frames_facts(out), [original[n - 1] for n in wanted])


def test_extract_comments_name_each_connection(tmp_path: Path) -> None:
    path = SAMPLES / "nginx_version_mismatch.pcap"
    records = records_of(path)
    out = tmp_path / "x.pcapng"
    ours = extract(records, path, out)
    comments = tshark("-r", out, "-Y", "frame.comment", "-T", "fields", "-e", "frame.number",
                      "-e", "frame.comment")
    firsts = sorted(ours.values(), key=lambda ns: ns[0])
    written = sorted(n for ns in ours.values() for n in ns)
    got = {int(line.split("\t")[0]): line.split("\t", 1)[1] for line in comments}
    assert sorted(got) == [written.index(ns[0]) + 1 for ns in firsts]
    for r in records:
        first = written.index(ours[r.uid][0]) + 1
        assert got[first].startswith(f"tlsa {r.uid}: {r.outcome}")
        if r.failure:
            assert r.failure in got[first] and (r.reason or "")[:40] in got[first]


def test_one_interface_block_per_link_type(tmp_path: Path) -> None:
    """Ethernet and Linux SLL2 frames in one file: each keeps its link type."""
    paths = [SAMPLES / "cap_linux_sll2.pcap", SAMPLES / "nginx_tls12_ok.pcap"]
    run = Run()
    records = collect(paths, run, workers=1)
    out = tmp_path / "mixed.pcapng"
    with out.open("wb") as f:
        write_extract(records, {p.name: p for p in paths}, f)
    info = subprocess.run(["capinfos", str(out)], capture_output=True, text=True,
                          check=False).stdout if shutil.which("capinfos") else ""
    stacks = {row[2].split(":")[0] for row in frames_facts(out)}
    assert stacks == {"sll", "eth"}
    if info:
        assert "Number of interfaces in file: 2" in info


def _write_pcap(path: Path, frames: list[tuple[float, bytes]]) -> None:
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
        for ts, data in frames:
            writer.writepkt(data, ts=ts)


def test_port_reuse_gets_a_time_bound(tmp_path: Path) -> None:
    """The same 4-tuple twice in one capture: each filter carries frame.time_epoch bounds
    and selects only its own connection's frames."""
    frames = [(f.ts, f.data) for f in CaptureReader(SAMPLES / "nginx_tls12_ok.pcap")]
    later = [(ts + 10.0, data) for ts, data in frames]
    path = tmp_path / "reuse.pcap"
    _write_pcap(path, frames + later)
    records = records_of(path)
    assert len(records) == 2
    assert {(r.client_port, r.server_port) for r in records} == {
        (records[0].client_port, records[0].server_port)
    }
    ours = extract(records, path, tmp_path / "x.pcapng")
    n = len(frames)
    assert ours[records[0].uid] == list(range(1, n + 1))
    assert ours[records[1].uid] == list(range(n + 1, 2 * n + 1))
    for r in records:
        assert "frame.time_epoch>=" in r.wireshark_filter
        assert filtered_numbers(path, r.wireshark_filter) == ours[r.uid]
    # Without the repetition, no time bound.
    _write_pcap(tmp_path / "once.pcap", frames)
    (once,) = records_of(tmp_path / "once.pcap")
    assert "frame.time" not in once.wireshark_filter


def test_icmp_error_quoting_the_connection_is_extracted(tmp_path: Path) -> None:
    """A real SYN answered by a real iptables REJECT (ICMP port unreachable), between
    unrelated frames: the filter and the extract have the SYN and the ICMP error."""
    t0 = 1_796_285_298.925373
    other = SAMPLES / "nginx_tls12_ok.pcap"
    noise = [(f.ts - 1_000.0 + 0.5, f.data) for f in list(CaptureReader(other))[:3]]
    noise = [(t0 - 0.5 + i * 0.1, d) for i, (_, d) in enumerate(noise)]
    path = tmp_path / "icmp.pcap"
    _write_pcap(path, [*noise, (t0, SYN4), (t0 + 0.000231, ICMP4_PORT_UNREACHABLE),
                       (t0 + 0.5, noise[0][1])])
    records = [r for r in records_of(path) if r.server_port == 443 and r.icmp_error]
    assert len(records) == 1
    r = records[0]
    ours = extract([r], path, tmp_path / "x.pcapng")
    assert ours[r.uid] == [4, 5]
    assert filtered_numbers(path, r.wireshark_filter) == [4, 5]
    protocols = [row[2] for row in frames_facts(tmp_path / "x.pcapng")]
    assert protocols[0].endswith(":tcp") and ":icmp:" in protocols[1]


def test_display_filter_forms() -> None:
    assert display_filter(client_ip="10.0.0.1", client_port=5000, server_ip="10.0.0.2",
                          server_port=443) == (
        "ip.addr==10.0.0.1 && ip.addr==10.0.0.2 && tcp.port==5000 && tcp.port==443"
    )
    assert display_filter(client_ip="fd00::2", client_port=5000, server_ip="fd00::1",
                          server_port=443, transport="quic") == (
        "ipv6.addr==fd00::2 && ipv6.addr==fd00::1 && udp.port==5000 && udp.port==443"
    )
    bounded = display_filter(client_ip="10.0.0.1", client_port=1, server_ip="10.0.0.2",
                             server_port=2, transport="dtls",
                             since=1_700_000_000.000001, until=1_700_000_000.25)
    assert bounded.endswith(
        "frame.time_epoch>=1700000000.000001 && frame.time_epoch<1700000000.250000"
    )
    assert "udp.port==1" in bounded


def test_filters_compile_in_tshark() -> None:
    """IPv6 and UDP forms are valid display filters for tshark (it rejects a bad one)."""
    for display in (
        display_filter(client_ip="fd00::2", client_port=5000, server_ip="fd00::1",
                       server_port=443, transport="quic", since=1.5, until=2.5),
        display_filter(client_ip="10.0.0.1", client_port=5000, server_ip="10.0.0.2",
                       server_port=443),
    ):
        tshark("-r", SAMPLES / "nginx_tls12_ok.pcap", "-Y", display)


def test_secrets_block_is_written_before_the_packets(tmp_path: Path) -> None:
    """``embed_secrets``: one Decryption Secrets Block (type TLSK) ahead of the packets,
    holding the key log lines of the connections written and of no other; tshark still
    reads the file."""
    path = SAMPLES / "nginx_tls12_ok.pcap"
    records = records_of(path)
    keylog = KeyLog()
    mine = records[0].client_random
    assert mine is not None
    keylog.add_text(f"CLIENT_RANDOM {mine} {'ab' * 48}\n"
                    f"CLIENT_RANDOM {'cd' * 32} {'ef' * 48}\n", source="test")
    buf = io.BytesIO()
    done = write_extract(records, {path.name: path}, buf, embed_secrets=keylog)
    data = buf.getvalue()
    assert done.secrets == 1
    shb_len = struct.unpack_from("<I", data, 4)[0]
    btype, _length, stype, slen = struct.unpack_from("<IIII", data, shb_len)
    line = f"CLIENT_RANDOM {mine} {'ab' * 48}\n".encode()
    assert (btype, stype, slen) == (0x0A, 0x544C534B, len(line))
    assert data[shb_len + 16 : shb_len + 16 + slen] == line
    assert b"cd" * 32 not in data and b"ef" * 48 not in data
    out = tmp_path / "s.pcapng"
    out.write_bytes(data)
    assert len(tshark("-r", out)) == sum(r.packets for r in records) or tshark("-r", out)


def test_writer_round_trips_through_our_reader(tmp_path: Path) -> None:
    """Our own pcapng reader reads what the writer wrote: same frames, same times."""
    frames = list(CaptureReader(SAMPLES / "cap_linux_sll2.pcap"))
    buf = io.BytesIO()
    writer = PcapngWriter(buf)
    for f in frames:
        writer.packet(f.ts, f.linktype, f.data, f.wirelen, comment="x\ty")
    out = tmp_path / "w.pcapng"
    out.write_bytes(buf.getvalue())
    back = list(CaptureReader(out))
    assert [(round(f.ts, 6), f.linktype, f.data, f.wirelen) for f in back] == [
        (round(f.ts, 6), f.linktype, f.data, f.wirelen) for f in frames
    ]


def test_comment_escapes_capture_text() -> None:
    r = HandshakeRecord(uid="u1", capture="c", ts=0.0, ts_end=0.0, client_ip="10.0.0.1",
                        client_port=1, server_ip="10.0.0.2", server_port=2,
                        outcome="failed", failure="not_tls",
                        reason="server sent \x1b[31mHTTP\x00\n")
    text = extract_comment(r)
    assert "\x1b" not in text and "\x00" not in text and "\n" not in text
    assert "\\x1b[31mHTTP\\x00\\x0a" in text


runner = CliRunner()


def test_cli_analyze_extract_only_failed_and_uid(tmp_path: Path) -> None:
    path = SAMPLES / "nginx_version_mismatch.pcap"
    records = records_of(path)
    failed = [r for r in records if r.outcome == "failed"]
    assert failed
    out = tmp_path / "f.pcapng"
    result = runner.invoke(cli.app, ["analyze", str(path), "--only-failed", "--uid",
                                     failed[0].uid[:8], "--extract", str(out), "-f", "jsonl"])
    assert result.exit_code == 0, result.output
    assert f"wrote {failed[0].packets} packets of 1 connection" in result.stderr or (
        "packets of 1 connection" in result.stderr
    )
    assert len(frames_facts(out)) == len(filtered_numbers(path, failed[0].wireshark_filter))


def test_cli_show_prints_filter_and_extracts(tmp_path: Path) -> None:
    path = SAMPLES / "nginx_tls12_ok.pcap"
    (r,) = records_of(path)
    out = tmp_path / "one.pcapng"
    result = runner.invoke(cli.app, ["show", r.uid, str(path), "--extract", str(out)],
                           env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert r.wireshark_filter in result.stdout
    assert len(frames_facts(out)) == len(filtered_numbers(path, r.wireshark_filter))


def test_report_has_the_filter_with_a_copy_button() -> None:
    """The HTML report shows each failed connection's filter next to a copy button (the
    page's one script wires the buttons; test_report runs it in Chromium)."""
    import html as htmllib

    from analyzer.report.assets import JS
    from analyzer.report.html import render

    path = SAMPLES / "nginx_version_mismatch.pcap"
    records = records_of(path)
    page = render(records)
    for r in records:
        if r.failure:
            code = f'<code class="wsf">{htmllib.escape(r.wireshark_filter, quote=True)}</code>'
            assert code + '<button type="button" class="copy"' in page
    assert 'querySelectorAll("button.copy")' in JS and "clipboard" in JS

"""Scale-out gives the records one process gives: worker processes and a real Dask cluster.

Inputs: the committed captures of sample_pcaps/, and one capture made here from them with
dpkt: every Ethernet capture's packets with its addresses moved to a network of its own
(so connections stay distinct), groups of eight captures played at the same time and
their packets interleaved by timestamp, groups 70 s apart (so connections left open are
expired by packet time in the middle of the file, by other shards' packets). Checked:
``--workers 2`` (sharding that capture, and one process per file for a folder) gives the
same ``to_dict()`` of every record, ``uid`` included, and the same errors, warnings and
statistics as ``--workers 1``; the shard key is symmetric and the same on its fast path
and through the decoder; a Dask scheduler and two workers started here on 127.0.0.1
(random ports) give the same records through ``read_pcaps``, ``--dask`` JSONL and the
Parquet dataset; a corrupt file is reported by name and every other record still comes.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from analyzer import cli, limits
from analyzer.api import Run, collect
from analyzer.record import HandshakeRecord
from analyzer.scale import local
from analyzer.scale.shard import _mix, frame_key, shard_of
from analyzer.scale.work import Part, analyze_part, merge_stats
from analyzer.sources import CaptureReader
from analyzer.sources.base import Frame

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_pcaps"

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason="sample_pcaps/ is not there")

runner = CliRunner()


# ---------------------------------------------------------------------- fixtures


def _remap(addr: bytes, index: int, seen: dict[bytes, bytes]) -> bytes:
    """The address moved to capture ``index``'s own network (one new address each)."""
    if addr not in seen:
        n = len(seen) + 1
        if len(addr) == 4:
            seen[addr] = bytes([10, 100 + index // 200, index % 200, n])
        else:
            seen[addr] = b"\xfd\x00" + bytes([index // 256, index % 256]) + bytes(11) + bytes([n])
    return seen[addr]


def _packets(path: Path, index: int, start: float) -> Iterator[tuple[float, int, bytes]]:
    """(time, tie-breaker, Ethernet frame) of one sample capture, moved in time and space:
    the addresses are rewritten in place in the frame's bytes (nothing else changes)."""
    seen: dict[bytes, bytes] = {}
    first = None
    for n, (ts, _, buf, _) in enumerate(CaptureReader(path)):
        first = ts if first is None else first
        frame = bytearray(buf)
        off, ethertype = 14, buf[12:14]
        while ethertype in (b"\x81\x00", b"\x88\xa8") and len(buf) >= off + 4:
            ethertype, off = buf[off + 2 : off + 4], off + 4  # 802.1Q / 802.1ad tags
        if ethertype == b"\x08\x00" and len(buf) >= off + 20:
            for at in (off + 12, off + 16):
                frame[at : at + 4] = _remap(buf[at : at + 4], index, seen)
        elif ethertype == b"\x86\xdd" and len(buf) >= off + 40:
            for at in (off + 8, off + 24):
                frame[at : at + 16] = _remap(buf[at : at + 16], index, seen)
        yield start + (ts - first), index * 1_000_000 + n, bytes(frame)


def _ethernet_samples() -> list[Path]:
    """Every sample capture (pcap, pcapng, gzip) whose frames are Ethernet."""
    out = []
    for path in sorted(SAMPLES.iterdir()):
        frames = iter(CaptureReader(path)) if path.suffix in (".pcap", ".pcapng", ".gz") else None
        first = next(frames, None) if frames is not None else None
        if first is not None and first.linktype == 1:
            out.append(path)
    return out


@pytest.fixture(scope="module")
def interleaved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All Ethernet sample captures in one file, connections interleaved."""
    out = tmp_path_factory.mktemp("scale") / "interleaved.pcap"
    base = 1_795_600_000.0
    streams = [
        _packets(path, i, base + (i // 8) * 70.0 + (i % 8) * 0.013)
        for i, path in enumerate(_ethernet_samples() * 2)
    ]
    with out.open("wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=262144, linktype=1, nano=False)
        for ts, _, buf in heapq.merge(*streams):
            writer.writepkt(buf, ts=ts)
    return out


def _dicts(records: list[HandshakeRecord]) -> list[dict[str, Any]]:
    return [r.to_dict() for r in records]


def _collect(paths: Any, workers: int, **kw: Any) -> tuple[list[HandshakeRecord], Run]:
    run = Run()
    if workers == 1:
        return collect(paths, run, workers=1), run
    return list(local.collect_parallel(paths, run, workers=workers, **kw)), run


def _same_run(a: Run, b: Run) -> None:
    assert a.errors == b.errors
    assert a.warnings == b.warnings
    assert a.stats == b.stats


# ---------------------------------------------------------------------- shard key


def _ipv4_tcp(src: str, dst: str, sport: int, dport: int, frag: int = 0) -> bytes:
    tcp = dpkt.tcp.TCP(sport=sport, dport=dport, flags=dpkt.tcp.TH_SYN, seq=1)
    ip = bytearray(
        bytes(dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=6, data=tcp))
    )
    ip[6:8] = frag.to_bytes(2, "big")  # flags and fragment offset
    return bytes(ip)


def _eth(payload: bytes, ethertype: int = 0x0800) -> bytes:
    return b"\x02" * 6 + b"\x04" * 6 + ethertype.to_bytes(2, "big") + payload


def _frame(data: bytes, linktype: int = 1) -> Frame:
    return Frame(1.0, linktype, data, len(data))


def test_shard_key_is_symmetric_and_the_same_on_every_path() -> None:
    there = _ipv4_tcp("192.0.2.1", "198.51.100.7", 51000, 443)
    back = _ipv4_tcp("198.51.100.7", "192.0.2.1", 443, 51000)
    key = frame_key(_frame(_eth(there)))
    assert frame_key(_frame(_eth(back))) == key
    # Raw IP, Linux cooked SLL2, and an 802.1Q tag (which goes through the decoder).
    assert frame_key(_frame(there, 101)) == key
    sll2 = b"\x08\x00" + b"\x00" * 6 + b"\x00\x01" + b"\x00" * 10
    assert frame_key(_frame(sll2 + back, 276)) == key
    vlan = b"\x02" * 6 + b"\x04" * 6 + b"\x81\x00\x00\x07\x08\x00" + back
    assert frame_key(_frame(vlan)) == key
    # Another port pair of the same hosts is another connection (and usually a shard).
    others = {frame_key(_frame(_eth(_ipv4_tcp("192.0.2.1", "198.51.100.7", p, 443))))
              for p in range(51001, 51033)}
    assert len(others) > 16
    assert {k % 2 for k in others} == {0, 1}


def test_shard_key_ipv6_and_fragments() -> None:
    a, b = socket.inet_pton(socket.AF_INET6, "2001:db8::1"), socket.inet_pton(
        socket.AF_INET6, "2001:db8::2"
    )
    tcp = bytes(dpkt.tcp.TCP(sport=40000, dport=443, flags=dpkt.tcp.TH_SYN))
    there = dpkt.ip6.IP6(src=a, dst=b, nxt=6, hlim=64, data=tcp, plen=len(tcp))
    tcp_back = bytes(dpkt.tcp.TCP(sport=443, dport=40000, flags=dpkt.tcp.TH_SYN))
    back = dpkt.ip6.IP6(src=b, dst=a, nxt=6, hlim=64, data=tcp_back, plen=len(tcp_back))
    k = frame_key(_frame(_eth(bytes(there), 0x86DD)))
    assert k == frame_key(_frame(_eth(bytes(back), 0x86DD)))
    # IPv4 fragments carry no ports: every fragment of the pair has one key.
    f1 = _ipv4_tcp("192.0.2.1", "198.51.100.7", 1, 2, frag=0x2000)  # more fragments
    f2 = _ipv4_tcp("198.51.100.7", "192.0.2.1", 3, 4, frag=0x0010)  # offset
    assert frame_key(_frame(_eth(f1))) == frame_key(_frame(_eth(f2)))
    # Not IP at all: shard 0 counts it.
    arp = _eth(b"\x00" * 28, 0x0806)
    assert shard_of(_frame(arp), 2) == 0 and shard_of(_frame(b"", 1), 3) == 0



@settings(max_examples=500, deadline=None)
@given(st.integers(0, 2**128 - 1), st.integers(0, 2**128 - 1), st.integers(0, 2**16 - 1))
def test_the_shard_hash_is_the_integer_formula(a: int, b: int, ports: int) -> None:
    """The hash runs in 64-bit machine integers when compiled: every step must stay in
    range, so it equals the same formula in Python integers, for IPv6-sized inputs too."""
    x = a ^ b
    if x >> 32:
        x = (x ^ (x >> 32) ^ (x >> 64) ^ (x >> 96)) & 0xFFFFFFFF
    x = (((x >> 16) ^ x ^ ports) * 0x45D9F3B) & 0xFFFFFFFF
    x = (((x >> 16) ^ x) * 0x45D9F3B) & 0xFFFFFFFF
    assert _mix(a, b, ports) == (x >> 16) ^ x == _mix(b, a, ports)

# ---------------------------------------------------------------------- local workers


def test_interleaved_capture_sharded_equals_one_process(interleaved: Path) -> None:
    one, run1 = _collect(interleaved, 1)
    two, run2 = _collect(interleaved, 2, shard_bytes=0)
    assert len(one) > 250
    assert _dicts(two) == _dicts(one)
    _same_run(run1, run2)
    assert {r.close for r in one} >= {"idle_timeout", "fin", "rst_server"}
    # The file really was split, and each shard had a fair part of the connections.
    parts = [analyze_part(Part(path=str(interleaved), index=0, shard=s, shards=2)) for s in (0, 1)]
    sizes = [len(p.records) for p in parts]
    assert sum(sizes) == len(one) and min(sizes) > len(one) // 4
    assert merge_stats(parts[0].stats, parts[1].stats) == run1.stats[interleaved.name]
    # Three shards too.
    three, run3 = _collect(interleaved, 3, shard_bytes=0)
    assert _dicts(three) == _dicts(one)
    _same_run(run1, run3)


@pytest.fixture(scope="module")
def dtls_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 DTLS associations of every kind (tests/dtls_capture.py), interleaved, with
    handshakes expiring by packet time in the middle of the file."""
    from tests.dtls_capture import write_pcap

    return write_pcap(tmp_path_factory.mktemp("dtls") / "dtls_many.pcap", 300)


def test_dtls_capture_sharded_equals_one_process(dtls_capture: Path) -> None:
    one, run1 = _collect(dtls_capture, 1)
    assert len(one) == 300 and {r.transport for r in one} == {"dtls"}
    assert {r.failure for r in one} >= {None, "udp_no_answer", "udp_refused", "no_server_response"}
    assert {r.close for r in one} >= {"idle_timeout", "capture_end"}
    for shards in (2, 3):
        many, run = _collect(dtls_capture, shards, shard_bytes=0)
        assert _dicts(many) == _dicts(one)
        _same_run(run1, run)
    parts = [analyze_part(Part(path=str(dtls_capture), index=0, shard=s, shards=2)) for s in (0, 1)]
    # UDP is sharded by the server's endpoint (a QUIC client may migrate; ICMP errors quote
    # only the UDP header): one server's associations all go to one worker.
    assert sorted(len(p.records) for p in parts) == [0, 300]


def test_cli_workers_2_equals_workers_1(
    interleaved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "SHARD_MIN_BYTES", 0)
    results = {}
    for n in ("1", "2"):
        res = runner.invoke(cli.app, ["analyze", str(interleaved), "-f", "jsonl", "--workers", n])
        assert res.exit_code == 0, res.output
        results[n] = res.stdout
    assert results["1"] == results["2"]
    assert len(results["1"].splitlines()) > 250


def test_many_files_one_process_each(tmp_path: Path) -> None:
    folder = tmp_path / "caps"
    shutil.copytree(SAMPLES, folder, ignore=shutil.ignore_patterns("*.py", "*.md", "scenarios"))
    (folder / "zz_corrupt.pcap").write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x02\x00" * 12)
    (folder / "aa_not_a_capture.pcap").write_bytes(b"this is not a capture file at all")
    one, run1 = _collect(folder, 1)
    two, run2 = _collect(folder, 2)
    assert len(one) > 250
    assert _dicts(two) == _dicts(one)
    _same_run(run1, run2)
    assert any("aa_not_a_capture.pcap" in e for e in run2.errors)
    assert any("zz_corrupt.pcap" in line for line in run2.errors + run2.warnings)
    assert len({r.capture for r in two}) > 40


def test_cross_connection_evidence_does_not_depend_on_order() -> None:
    """Workers hand their records over in another order than one process finds them."""
    from dataclasses import replace

    from analyzer.diagnosis import cross_connection

    (failed,) = collect(SAMPLES / "nginx_version_mismatch.pcap", Run(), workers=1)
    assert failed.failure == "version_mismatch"
    others = [
        replace(failed, uid=f"Cother{n}", ts=failed.ts + n, established=True, outcome="established",
                failure=None, version=version, cipher="TLS_AES_128_GCM_SHA256")
        for n, version in enumerate(["TLSv1.3", "TLSv1.2", "TLSv1.2", "TLSv1.3"], 1)
    ]
    a = cross_connection([failed, *others])[0]
    b = cross_connection([*reversed(others), failed])[-1]
    assert a.reason == b.reason
    assert "negotiated TLSv1.2 (2), TLSv1.3 (2) with other clients" in str(a.reason)


def test_default_workers() -> None:
    tiny = [SAMPLES / "nginx_tls12_ok.pcap"]
    assert local.default_workers(tiny) == 1
    assert local.default_workers(sorted(SAMPLES.glob("*.pcap"))) == 1  # all tiny
    assert local.default_workers(tiny * 2) == 1


def test_a_failing_task_is_reported_and_the_rest_kept() -> None:
    good = Part(path=str(SAMPLES / "nginx_tls12_ok.pcap"), index=0)
    bad = Part(path=None, label="broken-part", index=1)  # type: ignore[arg-type]
    results = local.run_parts([good, bad], 2)
    by_index = {r.part.index: r for r in results}
    assert by_index[0].records and by_index[0].error is None
    assert by_index[1].error is not None
    assert by_index[1].error.startswith("broken-part: analysis failed (AttributeError")


def test_unguarded_main_module_is_not_rerun(tmp_path: Path) -> None:
    """A script without ``if __name__ == "__main__"`` (and ``python -m analyzer``) works:
    the workers do not import the caller's main module, and what it printed before (still
    in the buffer of a pipe) comes out once."""
    script = tmp_path / "plain.py"
    script.write_text(
        "from analyzer.api import Run, collect\n"
        "print('before')\n"
        f"records = collect({str(SAMPLES)!r}, Run(), workers=2)\n"
        "print(len(records))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    before, n = out.stdout.split()
    assert before == "before" and int(n) > 250


def test_workers_are_not_forked_from_a_process_with_threads() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert local._context().get_start_method() != "fork"
    finally:
        stop.set()
        thread.join()


# ---------------------------------------------------------------------- Dask


def _dask_command(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("dask")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "dask", *args]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Dask scheduler and two single-thread workers on 127.0.0.1, random ports."""
    distributed = pytest.importorskip("distributed")
    tmp = tmp_path_factory.mktemp("dask")
    state = tmp / "scheduler.json"
    logs = [(tmp / f"{n}.log").open("w") for n in ("scheduler", "w1", "w2")]
    procs = [
        subprocess.Popen(
            _dask_command(
                "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                "--scheduler-file", str(state),
            ),
            stdout=logs[0], stderr=subprocess.STDOUT, cwd=tmp,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert state.exists(), "the scheduler did not start"
        address = json.loads(state.read_text())["address"]
        for n, log in zip(("w1", "w2"), logs[1:], strict=True):
            procs.append(
                subprocess.Popen(
                    _dask_command(
                        "worker", address, "--nthreads", "1", "--host", "127.0.0.1",
                        "--no-dashboard", "--name", n, "--local-directory", str(tmp),
                    ),
                    stdout=log, stderr=subprocess.STDOUT, cwd=tmp,
                )
            )
        with distributed.Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        # Not in a ``with``: shutting down inside one leaves Dask's global scheduler
        # setting at "dask.distributed" for every later test of the session.
        with contextlib.suppress(Exception):
            distributed.Client(state_address(state), timeout=10).shutdown()
        for p in reversed(procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for log in logs:
            log.close()


def state_address(state: Path) -> str:
    return str(json.loads(state.read_text())["address"])


def _canonical(df: Any) -> list[dict[str, Any]]:
    """Rows as JSON values (nulls alike whatever the dtype), sorted by (ts, uid)."""
    df = df.sort_values(["ts", "uid"]).reset_index(drop=True)
    rows: list[dict[str, Any]] = json.loads(
        df.to_json(orient="records", date_format="iso", date_unit="us")
    )
    return rows


SEVERAL = [
    "nginx_tls12_ok.pcap",
    "nginx_expired_tls13.pcap",
    "openssl_version_internal_error.pcap",
    "squid_connect_denied_403.pcap",
    "cap_ipv6.pcap",
    "cap_gzip.pcap.gz",
    "cap_pcapng_two_interfaces.pcapng",
    "cap_linux_sll2.pcap",
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], str]:
    """Several sample captures and a corrupt one."""
    bad = tmp_path_factory.mktemp("bad") / "corrupt_capture.pcap"
    bad.write_bytes(b"\x0a\x0d\x0d\x0a" + b"\xff" * 64)
    return [str(SAMPLES / n) for n in SEVERAL], str(bad)


def test_read_pcaps_equals_read_pcap(cluster: str, inputs: tuple[list[str], str]) -> None:
    distributed = pytest.importorskip("distributed")
    import analyzer
    import analyzer.dask

    good, bad = inputs
    expected = analyzer.read_pcap(good)
    with distributed.Client(cluster, timeout=30) as client:
        run = Run()
        ddf = analyzer.dask.read_pcaps([*good, bad], client, run=run)
        assert ddf.npartitions == len(good)
        got = ddf.compute()
        assert list(got.columns) == list(expected.columns)
        assert (got.dtypes == ddf._meta.dtypes).all()
        with pytest.warns(analyzer.dask.CaptureWarning, match="corrupt_capture.pcap"):
            analyzer.dask.read_pcaps([good[0], bad], client)
    assert len(run.errors) == 1 and "corrupt_capture.pcap" in run.errors[0]
    assert len(got) == len(expected) > 10
    assert _canonical(got) == _canonical(expected)
    for col in ("outcome", "failure", "stage", "close", "cert_status", "ts", "sni", "capture"):
        assert got[col].dtype == expected[col].dtype, col


def test_read_pcaps_without_a_cluster(inputs: tuple[list[str], str]) -> None:
    """No client and no default client: Dask's local scheduler runs the same tasks."""
    pytest.importorskip("dask.dataframe")
    import analyzer
    import analyzer.dask

    good, bad = inputs
    run = Run()
    ddf = analyzer.dask.read_pcaps([*good[:3], bad], run=run)
    assert ddf.npartitions == 3 and len(run.errors) == 1
    assert _canonical(ddf.compute()) == _canonical(analyzer.read_pcap(good[:3]))


def test_read_pcaps_shards_a_large_file(cluster: str, interleaved: Path) -> None:
    distributed = pytest.importorskip("distributed")
    import analyzer
    import analyzer.dask

    expected = analyzer.read_pcap(interleaved)
    with distributed.Client(cluster, timeout=30) as client:
        ddf = analyzer.dask.read_pcaps(interleaved, client, shard_bytes=0)
        assert ddf.npartitions == 2  # one per worker thread
        got = ddf.compute()
    assert _canonical(got) == _canonical(expected)


def test_read_pcaps_dtls_capture(cluster: str, dtls_capture: Path) -> None:
    """DTLS records through Dask, the capture sharded over both workers, as one process
    makes them."""
    distributed = pytest.importorskip("distributed")
    import analyzer
    import analyzer.dask

    expected = analyzer.read_pcap(dtls_capture)
    with distributed.Client(cluster, timeout=30) as client:
        got = analyzer.dask.read_pcaps(dtls_capture, client, shard_bytes=0).compute()
    assert len(got) == 300 and set(got["transport"]) == {"dtls"}
    assert _canonical(got) == _canonical(expected)


def test_cli_dask_jsonl_and_parquet(
    cluster: str, inputs: tuple[list[str], str], tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    good, bad = inputs
    single = runner.invoke(cli.app, ["analyze", *good, bad, "-f", "jsonl", "--workers", "1"])
    assert single.exit_code == 2
    out = tmp_path / "records.jsonl"
    res = runner.invoke(cli.app, ["analyze", *good, bad, "-f", "jsonl", "--dask", cluster,
                                  "-o", str(out)])
    assert res.exit_code == 2  # the corrupt input
    assert "corrupt_capture.pcap" in res.stderr and "Traceback" not in res.output
    assert out.read_text() == single.stdout
    expected = [json.loads(line) for line in single.stdout.splitlines()]

    dataset = tmp_path / "dataset"
    res = runner.invoke(cli.app, ["analyze", *good, "-f", "parquet", "--dask", cluster,
                                  "-o", str(dataset)])
    assert res.exit_code == 0, res.output
    captures = {p.name for p in dataset.iterdir()}
    assert captures == {f"capture={Path(g).name}" for g in good}
    assert all(d.name.startswith("date=20") for c in dataset.iterdir() for d in c.iterdir())
    table = pq.read_table(dataset)
    rows = sorted(table.to_pylist(), key=lambda r: (r["ts"], r["uid"]))
    assert [r["uid"] for r in rows] == [e["uid"] for e in expected]
    for row, exp in zip(rows, expected, strict=True):
        assert str(row["capture"]) == exp["capture"]
        for key in ("outcome", "failure", "reason", "sni", "cipher", "offered_versions",
                    "client_port", "packets", "remedy"):
            assert row[key] == exp[key], key
        assert abs(row["ts"].timestamp() - exp["ts"]) < 1e-6


def _main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[Any, str]:
    """``tlsa`` through its console entry point: (exit status, stderr)."""
    monkeypatch.setattr(sys, "argv", ["tlsa", *args])
    code: Any = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def test_cli_dask_usage_errors(
    cluster: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(limits, "DASK_CONNECT_TIMEOUT", 2.0)
    code, err = _main(monkeypatch, capsys, "analyze", str(SAMPLES), "--dask", cluster)
    assert code == 2 and "jsonl" in err
    code, err = _main(monkeypatch, capsys, "analyze", str(SAMPLES), "--dask", cluster,
                      "-f", "parquet")
    assert code == 2 and "-o DIR" in err
    code, err = _main(monkeypatch, capsys, "analyze", str(SAMPLES), "--dask", cluster,
                      "--only-failed", "-f", "jsonl")
    assert code == 2 and "filter" in err
    code, err = _main(monkeypatch, capsys, "analyze", str(SAMPLES), "--dask",
                      "tcp://127.0.0.1:9", "-f", "jsonl")
    assert code == 2 and "127.0.0.1:9" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_reader_over_a_url(tmp_path: Path) -> None:
    """fsspec URLs are read by the workers through the same reader."""
    from analyzer.scale.work import open_capture

    src = SAMPLES / "nginx_tls12_ok.pcap"
    reader = open_capture(src.resolve().as_uri())
    frames = list(reader)
    assert reader.error is None and reader.size == src.stat().st_size
    assert [f.data for f in frames] == [f.data for f in CaptureReader(src)]
    missing = open_capture((tmp_path / "nope.pcap").as_uri())
    assert missing.error is not None and "nope.pcap" in missing.error
    assert list(missing) == []

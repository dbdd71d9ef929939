"""Every capture of ../shared/pcaps: analyzed without an exception, and checked against tshark.

For each file tshark (run once, in parallel threads) lists its ClientHello, ServerHello and
Certificate frames; from them the test builds per-connection facts the way a person would
read them in Wireshark: SNI of the first ClientHello, negotiated version (ServerHello
supported_versions, else its version field), cipher of the first ServerHello, JA3 of the
first ClientHello, JA3S of the first ServerHello, SHA-256 of the first certificate of the
server's first Certificate message. QUIC connections (tshark's UDP streams whose hellos it
read from the Initial packets) are compared the same way, plus the QUIC version of the
client's first packet and the ALPN list of its first ClientHello. Our records are matched
by 4-tuple (and by time when a 4-tuple repeats) and compared field by field. The test
prints a table of the counts per file and asserts at least 98% agreement over all compared
fields; each disagreement we accept is listed in ``ACCEPTED`` with the reason (which side
is right and why).

Skips with a clear message when ../shared/pcaps or tshark is absent.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from analyzer.api import Run, collect
from analyzer.quic import version_name as quic_version_name
from analyzer.record import HandshakeRecord
from analyzer.tls.names import cipher_name, version_name

SHARED = Path(__file__).resolve().parents[2] / "shared" / "pcaps"
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz")

TSHARK_FIELDS = (
    "frame.time_epoch",
    "tcp.stream",
    "ip.src",
    "ipv6.src",
    "tcp.srcport",
    "ip.dst",
    "ipv6.dst",
    "tcp.dstport",
    "tls.handshake.type",
    "tls.handshake.extensions_server_name",
    "tls.handshake.version",
    "tls.handshake.extensions.supported_version",
    "tls.handshake.ciphersuite",
    "tls.handshake.ja3",
    "tls.handshake.ja3s",
    "tls.handshake.certificate",
)
HELLO_FILTER = (
    "tls.handshake.type == 1 || tls.handshake.type == 2 || tls.handshake.type == 11"
)
COMPARED = ("sni", "version", "cipher", "ja3", "ja3s", "cert_sha256")
QUIC_COMPARED = ("quic_version", "alpn")
"""Compared for QUIC connections only (besides the hello fields above)."""
QUIC_FIELDS = {"tcp.stream": "udp.stream", "tcp.srcport": "udp.srcport",
               "tcp.dstport": "udp.dstport"}
"""tshark fields that differ for QUIC (UDP streams); QUIC adds its version field."""
MIN_AGREEMENT = 0.98

# Disagreements we accept after looking at the bytes (tshark -x): (file relative to
# ../shared/pcaps, client port, field) -> which side is right and why.
_TRUNCATED_DER = (
    "ours is right: the Certificate message says the certificate is 9 bytes "
    "({der}); tshark's field holds only the bytes its X.509 dissector read before the "
    "DER length 0x84ffffff.. ran past the end, so it hashes {short}"
)
_DRAFT14 = (
    "ours is right: a TLS 1.3 draft-14 ServerHello (version 0x0304 in the legacy field) has "
    "no session_id and no compression (draft-ietf-tls-tls13-14 §6.3.1.2); the suite is "
    "0xc02b and the only extension key_share (40). tshark 4.0 reads it with the final "
    "TLS 1.3 layout, takes 0xc0 as a session id length and reports suite 0xacad"
)
ACCEPTED: dict[tuple[str, int, str], str] = {
    ("suricata-verify/bug-1450-04/tls_DER-incomplete-header.pcap", 50802, "cert_sha256"):
        _TRUNCATED_DER.format(der="30 05 30 84 ff ff ff fa 04", short="30053084ffffff"),
    ("suricata-verify/bug-1450-05/tls_DER-incomplete-content.pcap", 50802, "cert_sha256"):
        _TRUNCATED_DER.format(der="30 06 30 84 ff ff ff fa 04", short="30063084fffffffa"),
    ("suricata-verify/tls/tls13-draft14/tls13_draft14.pcap", 54049, "cipher"): _DRAFT14,
    ("suricata-verify/tls/tls13-draft14/tls13_draft14.pcap", 54049, "ja3s"):
        _DRAFT14 + "; our JA3S string is 772,49195,40",
}

# Disagreements caused by engine bugs (ours is wrong); test_engine_bugs_fixed turns into an
# unexpected pass once they are fixed, so this list cannot go stale.
ENGINE_BUGS: dict[tuple[str, int, str], str] = {}

# Fields tshark leaves empty although it dissected the hello: nothing to compare with.
NOT_COMPARED = {
    "ja3": "tshark 4.0 computes no JA3 for an SSLv2-compatible ClientHello (neither do "
           "Suricata and salesforce's ja3.py); ours follows Zeek's JA3 script",
    "ja3s": "tshark computes no JA3S for this ServerHello",
}


def captures() -> list[Path]:
    if not SHARED.is_dir():
        return []
    return sorted(
        p for p in SHARED.rglob("*") if p.is_file() and p.name.endswith(CAPTURE_SUFFIXES)
    )


# -- tshark's view ------------------------------------------------------------------------


Endpoint = tuple[str, int]


@dataclass(slots=True)
class TsharkConn:
    """What tshark shows of one TCP stream's hellos and server certificate."""

    stream: int
    client: Endpoint
    server: Endpoint
    first_hello_ts: float
    facts: dict[str, str | None] = field(default_factory=dict)
    """Field name -> value, only for the fields tshark could see."""

    @property
    def key(self) -> tuple[str, int, str, int]:
        return (*self.client, *self.server)


def _first(value: str) -> str | None:
    return value.split(",")[0] if value else None


def _version(number: str) -> str:
    return version_name(int(number, 16))


def tshark_rows(path: Path, *, quic: bool = False) -> list[list[str]]:
    # Out-of-order reassembly is off by default in tshark 4.0; without it tshark misses
    # server flights that arrive out of order (tls-fingerprint-alert), which we reassemble.
    argv = ["tshark", "-n", "-o", "tcp.reassemble_out_of_order:TRUE", "-r", str(path),
            "-Y", f"quic && ({HELLO_FILTER})" if quic else f"tcp && ({HELLO_FILTER})",
            "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in TSHARK_FIELDS:
        argv += ["-e", QUIC_FIELDS.get(f, f) if quic else f]
    if quic:
        argv += ["-e", "quic.version", "-e", "tls.handshake.extensions_alpn_str"]
    done = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                          timeout=120, check=False)
    rows = []
    width = len(TSHARK_FIELDS) + (2 if quic else 0)
    for line in done.stdout.splitlines():
        cols = line.split("\t")
        if len(cols) == width:
            rows.append(cols)
    return rows


def tshark_connections(path: Path, *, quic: bool = False) -> list[TsharkConn]:
    """Per-stream facts from tshark's hello/certificate frames, in stream order (QUIC:
    UDP streams, with the QUIC version and the offered ALPN)."""
    conns: dict[int, TsharkConn] = {}
    names = (*TSHARK_FIELDS, "quic.version", "alpn") if quic else TSHARK_FIELDS
    for cols in tshark_rows(path, quic=quic):
        row = dict(zip(names, cols, strict=True))
        if not row["tcp.stream"] or not row["tcp.srcport"]:
            continue
        stream = int(row["tcp.stream"])
        src = (row["ip.src"] or row["ipv6.src"], int(row["tcp.srcport"]))
        dst = (row["ip.dst"] or row["ipv6.dst"], int(row["tcp.dstport"]))
        types = [int(t) for t in row["tls.handshake.type"].split(",") if t.isdigit()]
        ts = float(row["frame.time_epoch"])
        conn = conns.get(stream)
        if conn is None:
            if 1 in types:
                client, server = src, dst
            elif 2 in types:
                client, server = dst, src
            else:  # a Certificate before any hello: orientation unknown, skip the stream
                continue
            conn = conns[stream] = TsharkConn(stream, client, server, ts)
        facts = conn.facts
        from_client = src == conn.client
        if quic and from_client and "quic_version" not in facts and row["quic.version"]:
            facts["quic_version"] = quic_version_name(int(_first(row["quic.version"]) or "0",
                                                          16))
        if 1 in types and from_client and "sni" not in facts:
            facts["sni"] = _first(row["tls.handshake.extensions_server_name"])
            facts["ja3"] = _first(row["tls.handshake.ja3"])
            if quic:
                facts["alpn"] = row["alpn"] or None
        if 2 in types and not from_client and "version" not in facts:
            supported = _first(row["tls.handshake.extensions.supported_version"])
            legacy = _first(row["tls.handshake.version"])
            if supported or legacy:
                facts["version"] = _version(supported or legacy or "")
            suite = _first(row["tls.handshake.ciphersuite"])
            if suite:
                facts["cipher"] = cipher_name(int(suite, 16))
            facts["ja3s"] = _first(row["tls.handshake.ja3s"])
        if 11 in types and not from_client and "cert_sha256" not in facts:
            cert = _first(row["tls.handshake.certificate"])
            if cert:
                facts["cert_sha256"] = hashlib.sha256(bytes.fromhex(cert)).hexdigest()
    return [conns[k] for k in sorted(conns)]


# -- our view ------------------------------------------------------------------------------


def our_value(record: HandshakeRecord, name: str) -> str | None:
    if name == "cert_sha256":
        return record.cert_chain_sha256[0] if record.cert_chain_sha256 else None
    if name == "alpn":
        return ",".join(record.alpn_offered) or None
    value = getattr(record, name)
    return value if value is None else str(value)


def match(conn: TsharkConn, records: list[HandshakeRecord]) -> HandshakeRecord | None:
    """Our record for tshark's stream (``records`` of its transport): same 4-tuple (either
    orientation); when several, the one whose time span holds tshark's first hello."""
    cands = [r for r in records
             if (r.client_ip, r.client_port, r.server_ip, r.server_port) == conn.key]
    if not cands:
        rev = (*conn.server, *conn.client)
        cands = [r for r in records
                 if (r.client_ip, r.client_port, r.server_ip, r.server_port) == rev]
    if len(cands) <= 1:
        return cands[0] if cands else None
    inside = [r for r in cands if r.ts - 1e-6 <= conn.first_hello_ts <= r.ts_end + 1e-6]
    pool = inside or cands
    return min(pool, key=lambda r: abs(r.ts - conn.first_hello_ts))


@dataclass(slots=True)
class FileResult:
    name: str
    records: int = 0
    tshark_streams: int = 0
    matched: int = 0
    unmatched: list[str] = field(default_factory=list)
    compared: Counter[str] = field(default_factory=Counter)
    agreed: Counter[str] = field(default_factory=Counter)
    not_compared: Counter[str] = field(default_factory=Counter)
    disagreements: list[tuple[int, str, str | None, str | None]] = field(default_factory=list)
    """(client port, field, ours, tshark's)."""


def compare_file(path: Path) -> FileResult:
    rel = str(path.relative_to(SHARED))
    result = FileResult(name=rel)
    records = collect([path], Run())  # any exception fails the test, with the file named
    result.records = len(records)
    tcp = [r for r in records if r.transport == "tcp"]
    quic = [r for r in records if r.transport == "quic"]
    conns = [(c, tcp) for c in tshark_connections(path)]
    conns += [(c, quic) for c in tshark_connections(path, quic=True)]
    result.tshark_streams = len(conns)
    for conn, mine in conns:
        rec = match(conn, mine)
        if rec is None:
            result.unmatched.append(f"{conn.client[0]}:{conn.client[1]}")
            continue
        result.matched += 1
        for name, theirs in conn.facts.items():
            if theirs is None and name in NOT_COMPARED:
                result.not_compared[name] += 1
                continue
            ours = our_value(rec, name)
            result.compared[name] += 1
            if ours == theirs:
                result.agreed[name] += 1
            else:
                result.disagreements.append((conn.client[1], name, ours, theirs))
    return result


@pytest.fixture(scope="module")
def results() -> list[FileResult]:
    files = captures()
    if not files:
        pytest.skip(f"no shared captures at {SHARED} (../shared/pcaps is not checked out)")
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(compare_file, files))


def _table(results: list[FileResult]) -> str:
    lines = [f"{'file':58} {'recs':>4} {'tsh':>3} {'mat':>3} "
             + " ".join(f"{f:>11}" for f in COMPARED)]
    for r in results:
        cells = " ".join(f"{r.agreed[f]:>5}/{r.compared[f]:<5}" for f in COMPARED)
        lines.append(f"{r.name.removeprefix('suricata-verify/')[:58]:58} {r.records:>4} "
                     f"{r.tshark_streams:>3} {r.matched:>3} {cells}")
        for port, name, ours, theirs in r.disagreements:
            key = (r.name, port, name)
            tag = "accepted" if key in ACCEPTED else "BUG" if key in ENGINE_BUGS else "DIFFERS"
            lines.append(f"    {tag}: port {port} {name}: ours={ours!r} tshark={theirs!r}")
        for name, n in r.not_compared.items():
            lines.append(f"    not compared: {n} {name} ({NOT_COMPARED[name]})")
        for u in r.unmatched:
            lines.append(f"    no record for tshark's connection from {u}")
    return "\n".join(lines)


def test_every_shared_capture_is_analyzed(results: list[FileResult]) -> None:
    assert [r.name for r in results] == [str(p.relative_to(SHARED)) for p in captures()]
    assert sum(r.records for r in results) >= 100
    assert sum(r.matched for r in results) >= 100


def test_agreement_with_tshark(results: list[FileResult]) -> None:
    compared: Counter[str] = Counter()
    agreed: Counter[str] = Counter()
    for r in results:
        compared.update(r.compared)
        agreed.update(r.agreed)
    total_c, total_a = sum(compared.values()), sum(agreed.values())
    print("\n" + _table(results))
    print("per field: " + ", ".join(f"{f} {agreed[f]}/{compared[f]}"
                                    for f in (*COMPARED, *QUIC_COMPARED)))
    print(f"overall: {total_a}/{total_c} = {total_a / max(total_c, 1):.2%}")
    assert all(compared[f] > 0 for f in (*COMPARED, *QUIC_COMPARED))
    assert total_a / total_c >= MIN_AGREEMENT


def test_every_disagreement_is_explained(results: list[FileResult]) -> None:
    found = {(r.name, port, name) for r in results for port, name, _, _ in r.disagreements}
    assert found - ACCEPTED.keys() - ENGINE_BUGS.keys() == set()
    assert not [r.unmatched for r in results if r.unmatched]
    # An accepted disagreement that no longer happens is stale: remove it from the list.
    assert ACCEPTED.keys() <= found


def test_engine_bugs_fixed(results: list[FileResult]) -> None:
    found = {(r.name, port, name) for r in results for port, name, _, _ in r.disagreements}
    assert not found & ENGINE_BUGS.keys()


# -- one record per TCP connection -----------------------------------------------------------

# Captures where one TCP connection once gave several records (tshark: one stream).
ONE_RECORD_PER_CONNECTION = {
    "suricata-verify/bug-2646-01/input.pcap":
        "the server retransmits its FIN with data after both FINs",
    "suricata-verify/bug-7264-tcp-3whs-ack-data-tls-01/input.pcap":
        "the same retransmitted FIN after the close",
    "suricata-verify/tcp-fastopen-10-syn-data-ignore/input.pcap":
        "SYN retransmitted after Fast Open data; a late SYN-ACK after the close",
    "suricata-verify/tls/tls-subjectaltname/input.pcap":
        "SYN answered by a stale (challenge) ACK, the client's RST (its sequence number is "
        "the stale ACK's, outside the client's own space: RFC 9293 §3.10.7.3, SYN-SENT) ends "
        "a first record 'failed/handshake_aborted' (or 'incomplete' with capture_gap when "
        "the stale ACK number happens to be ahead), then the same-ISN SYN retransmission "
        "makes a second record (6 connections: client ports 59621, 59622, 59691, 59949, "
        "60036, 60093)",
}


def tshark_streams_per_tuple(path: Path) -> Counter[frozenset[tuple[str, int]]]:
    argv = ["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "tcp.stream", "-e", "ip.src",
            "-e", "ipv6.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "ipv6.dst",
            "-e", "tcp.dstport"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False).stdout
    streams: dict[frozenset[tuple[str, int]], set[str]] = {}
    for line in out.splitlines():
        c = line.split("\t")
        if len(c) == 7 and c[0]:
            ends = frozenset(((c[1] or c[2], int(c[3])), (c[4] or c[5], int(c[6]))))
            streams.setdefault(ends, set()).add(c[0])
    return Counter({k: len(v) for k, v in streams.items()})


@pytest.mark.parametrize("name", sorted(ONE_RECORD_PER_CONNECTION))
def test_one_record_per_tcp_connection(results: list[FileResult], name: str) -> None:
    path = SHARED / name
    ours = Counter(frozenset(((r.client_ip, r.client_port), (r.server_ip, r.server_port)))
                   for r in collect([path], Run()))
    theirs = tshark_streams_per_tuple(path)
    extra = {tuple(sorted(k)): (n, theirs[k]) for k, n in ours.items() if n > theirs[k]}
    assert extra == {}, ONE_RECORD_PER_CONNECTION[name]


# -- SPEC §3/§4 consistency of every record ---------------------------------------------------

ZEEK_LETTERS = frozenset("hcsvtejoxkrnygfwuapmzilb")


@pytest.fixture(scope="module")
def shared_records() -> list[HandshakeRecord]:
    files = captures()
    if not files:
        pytest.skip(f"no shared captures at {SHARED} (../shared/pcaps is not checked out)")
    return [r for f in files for r in collect([f], Run())]


def test_records_are_consistent(shared_records: list[HandshakeRecord]) -> None:
    from analyzer.record import CLOSES, FAILURES, OUTCOMES, STAGES

    problems = []
    for r in shared_records:
        plain = [a for a in r.alerts if not a.encrypted]
        checks = {
            "outcome": r.outcome in OUTCOMES,
            "failure name": r.failure is None or r.failure in FAILURES,
            "stage/close": r.stage in STAGES and r.close in CLOSES,
            "no failure unless failed or not_tls": r.outcome in ("failed", "not_tls")
            or (r.failure is None and r.failure_side is None),
            "failed has a failure and a side": r.outcome != "failed"
            or bool(r.failure and r.failure_side),
            "last_alert is the last plaintext alert": r.last_alert
            == (plain[-1].description if plain else None),
            "history letters": set(r.history.lower()) <= ZEEK_LETTERS,
            "established <=> stage established or later": r.established
            == (r.stage in ("established", "application_data")),
            "outcome established => established": r.outcome != "established" or r.established,
            "hrr => j": not r.hrr or "j" in r.history,
            "version => a history": r.version is None or bool(r.history),
            "ts <= ts_end": r.ts <= r.ts_end,
        }
        problems += [(r.capture, r.client_port, name) for name, ok in checks.items() if not ok]
    assert problems == []


def test_durations_are_never_negative(shared_records: list[HandshakeRecord]) -> None:
    negative = [(r.capture, r.client_port, name, value) for r in shared_records
                for name, value in (("tcp_rtt", r.tcp_rtt), ("handshake_time", r.handshake_time))
                if value is not None and value < 0]
    assert negative == []

"""Records as a Zeek ``ssl.log`` (``tlsa analyze --format zeek``), and that log read back.

The layout is Zeek's ASCII writer's: a header (``#separator \\x09``, ``#set_separator``,
``#empty_field``, ``#unset_field``, ``#path``, ``#open``, ``#fields``, ``#types``), one
tab-separated row per record, ``#close``. Columns are Zeek's ``ssl.log`` ones with their
meanings and value formats (``scripts/base/protocols/ssl/main.zeek`` and ``files.zeek``,
plus the ``ja3``/``ja3s`` columns of the common JA3 package), then ours with a ``tlsa_``
prefix. Values: ``time``/``interval`` with six decimals, ``bool`` as ``T``/``F``, unset as
``-``, an empty vector as ``(empty)``, versions as Zeek names them (``TLSv12``), codes we
have no name for as Zeek's ``unknown-N``. Zeek's TLS 1.3 ``established`` is its own rule
(any encrypted record from both sides, so a client's encrypted alert counts); ours is in
``tlsa_established``.

Strings are escaped as Zeek does (:mod:`analyzer.export.text`): non-printable bytes as
``\\xNN``, the separators inside a value, a value equal to ``-`` or ``(empty)``; also ``#``
and ``"`` (Zeek writes them raw; escaped they read back the same in Zeek and cannot
truncate or quote a row for readers built on pandas' CSV parser, such as zat).

Not here: Zeek's own ``uid`` format (ours is kept, so rows join with every other output),
``validation_status`` (our judgement is ``tlsa_cert_status``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any

from analyzer.export.text import escape, unescape
from analyzer.record import HandshakeRecord

SEPARATOR = "\t"
SET_SEPARATOR = ","
EMPTY = "(empty)"
UNSET = "-"
_RESERVED = SEPARATOR + SET_SEPARATOR + '#"'


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    name: str
    type: str
    """Zeek type: ``time``, ``string``, ``addr``, ``port``, ``count``, ``bool``,
    ``interval``, ``vector[string]``."""
    value: Callable[[HandshakeRecord], Any]


def zeek_version(version: str | None) -> str | None:
    """``TLSv1.2`` -> ``TLSv12``; ``0x7f1c`` -> ``unknown-32540`` (Zeek's names)."""
    if version is None:
        return None
    if version.startswith("0x"):
        return _unknown(version)
    return version.replace(".", "")


def _unknown(name: str | None) -> str | None:
    """Our ``0xNNNN`` for a code without a name -> Zeek's ``unknown-N``."""
    if name is not None and name.startswith("0x"):
        try:
            return f"unknown-{int(name, 16)}"
        except ValueError:
            return name
    return name


def zeek_established(r: HandshakeRecord) -> bool:
    """Zeek's ``established``: ours, or for TLS 1.3 without keys any encrypted record from
    the client after the server's encrypted flight (an encrypted alert counts)."""
    if r.established:
        return True
    return r.version == "TLSv1.3" and bool(r.client_encrypted_after_server_flight)


def _client_fps(r: HandshakeRecord) -> list[str] | None:
    # Zeek sets both chains once it sees certificates: the client's is empty unless the
    # client sent some (whose hashes we do not keep).
    if r.cert_chain_sha256 and not r.client_certificates:
        return []
    return None


def _alerts(r: HandshakeRecord) -> list[str]:
    return [
        f"{a.sender}:{a.level or UNSET}:{a.description or ('encrypted' if a.encrypted else UNSET)}"
        for a in r.alerts
    ]


COLUMNS: tuple[Column, ...] = (
    Column(name="ts", type="time", value=lambda r: r.ts),
    Column(name="uid", type="string", value=lambda r: r.uid),
    Column(name="id.orig_h", type="addr", value=lambda r: r.client_ip),
    Column(name="id.orig_p", type="port", value=lambda r: r.client_port),
    Column(name="id.resp_h", type="addr", value=lambda r: r.server_ip),
    Column(name="id.resp_p", type="port", value=lambda r: r.server_port),
    Column(name="version", type="string", value=lambda r: zeek_version(r.version)),
    Column(name="cipher", type="string", value=lambda r: _unknown(r.cipher)),
    Column(name="curve", type="string", value=lambda r: _unknown(r.group)),
    Column(name="server_name", type="string", value=lambda r: r.sni),
    Column(name="resumed", type="bool", value=lambda r: r.resumed),
    Column(name="last_alert", type="string", value=lambda r: r.last_alert),
    Column(name="next_protocol", type="string", value=lambda r: r.alpn),
    Column(name="established", type="bool", value=zeek_established),
    Column(name="ssl_history", type="string", value=lambda r: r.history),
    Column(
        name="cert_chain_fps",
        type="vector[string]",
        value=lambda r: list(r.cert_chain_sha256) or None,
    ),
    Column(name="client_cert_chain_fps", type="vector[string]", value=_client_fps),
    Column(name="sni_matches_cert", type="bool", value=lambda r: r.sni_matches_cert),
    Column(name="ja3", type="string", value=lambda r: r.ja3),
    Column(name="ja3s", type="string", value=lambda r: r.ja3s),
    Column(name="tlsa_outcome", type="string", value=lambda r: r.outcome),
    Column(name="tlsa_failure", type="string", value=lambda r: r.failure),
    Column(name="tlsa_side", type="string", value=lambda r: r.failure_side),
    Column(name="tlsa_reason", type="string", value=lambda r: r.reason),
    Column(name="tlsa_remedy", type="string", value=lambda r: r.remedy),
    Column(name="tlsa_inferred", type="bool", value=lambda r: r.inferred),
    Column(name="tlsa_transport", type="string", value=lambda r: r.transport),
    Column(name="tlsa_stage", type="string", value=lambda r: r.stage),
    Column(name="tlsa_established", type="bool", value=lambda r: r.established),
    Column(name="tlsa_close", type="string", value=lambda r: r.close),
    Column(name="tlsa_ts_end", type="time", value=lambda r: r.ts_end),
    Column(name="tlsa_handshake_time", type="interval", value=lambda r: r.handshake_time),
    Column(name="tlsa_tcp_rtt", type="interval", value=lambda r: r.tcp_rtt),
    Column(name="tlsa_offered_versions", type="vector[string]",
           value=lambda r: [zeek_version(v) or "" for v in r.offered_versions]),
    Column(name="tlsa_alpn_offered", type="vector[string]", value=lambda r: list(r.alpn_offered)),
    Column(name="tlsa_alerts", type="vector[string]", value=_alerts),
    Column(name="tlsa_cert_subject", type="string", value=lambda r: r.cert_subject),
    Column(name="tlsa_cert_issuer", type="string", value=lambda r: r.cert_issuer),
    Column(name="tlsa_cert_not_after", type="time", value=lambda r: r.cert_not_after),
    Column(name="tlsa_cert_status", type="string", value=lambda r: r.cert_status),
    Column(name="tlsa_cert_trust", type="string", value=lambda r: r.cert_trust),
    Column(name="tlsa_ja4", type="string", value=lambda r: r.ja4),
    Column(name="tlsa_quic_version", type="string", value=lambda r: r.quic_version),
    Column(name="tlsa_proxy_kind", type="string", value=lambda r: r.proxy_kind),
    Column(name="tlsa_starttls", type="string", value=lambda r: r.starttls),
    Column(name="tlsa_client_bytes", type="count", value=lambda r: r.client_bytes),
    Column(name="tlsa_server_bytes", type="count", value=lambda r: r.server_bytes),
    Column(name="tlsa_packets", type="count", value=lambda r: r.packets),
    Column(name="tlsa_warnings", type="vector[string]", value=lambda r: list(r.warnings)),
    Column(name="tlsa_anomalies", type="vector[string]", value=lambda r: list(r.anomalies)),
    Column(name="tlsa_capture", type="string", value=lambda r: r.capture),
    Column(name="tlsa_wireshark_filter", type="string", value=lambda r: r.wireshark_filter),
)
FIELDS = tuple(c.name for c in COLUMNS)


def _string(value: str) -> str:
    if value == "":
        return EMPTY
    if value in (UNSET, EMPTY):
        return "\\x" + value[0].encode().hex() + value[1:]
    return escape(value, _RESERVED)


def format_value(value: Any, ztype: str) -> str:
    """One cell as Zeek writes it."""
    if value is None:
        return UNSET
    if ztype == "bool":
        return "T" if value else "F"
    if ztype in ("time", "interval"):
        return f"{float(value):.6f}"
    if ztype in ("count", "port"):
        return str(int(value))
    if ztype.startswith(("vector[", "set[")):
        if not value:
            return EMPTY
        return SET_SEPARATOR.join(
            escape(str(v), _RESERVED) if v != UNSET else "\\x2d" for v in value
        )
    return _string(str(value))


def _stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(ts))


def header(opened: float) -> str:
    lines = [
        "#separator \\x09",
        f"#set_separator{SEPARATOR}{SET_SEPARATOR}",
        f"#empty_field{SEPARATOR}{EMPTY}",
        f"#unset_field{SEPARATOR}{UNSET}",
        f"#path{SEPARATOR}ssl",
        f"#open{SEPARATOR}{_stamp(opened)}",
        "#fields" + SEPARATOR + SEPARATOR.join(FIELDS),
        "#types" + SEPARATOR + SEPARATOR.join(c.type for c in COLUMNS),
    ]
    return "\n".join(lines) + "\n"


def zeek_row(r: HandshakeRecord) -> str:
    return SEPARATOR.join(format_value(c.value(r), c.type) for c in COLUMNS)


def write_zeek(
    records: Iterable[HandshakeRecord], out: IO[str], *, now: Callable[[], float] = time.time
) -> int:
    """Write ``ssl.log`` to ``out``; ``#open``/``#close`` carry the wall time, as Zeek's."""
    out.write(header(now()))
    n = 0
    for r in records:
        out.write(zeek_row(r))
        out.write("\n")
        n += 1
    out.write(f"#close{SEPARATOR}{_stamp(now())}\n")
    return n


# -- reading back ---------------------------------------------------------------------------


def parse_value(text: str, ztype: str) -> Any:
    """One cell back to a Python value (the inverse of :func:`format_value`)."""
    if text == UNSET:
        return None
    if ztype.startswith(("vector[", "set[")):
        return [] if text == EMPTY else [unescape(v) for v in text.split(SET_SEPARATOR)]
    if ztype == "bool":
        return text == "T"
    if ztype in ("time", "interval", "double"):
        return float(text)
    if ztype in ("count", "port", "int"):
        return int(text)
    return "" if text == EMPTY else unescape(text)


def read_zeek(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Rows of a Zeek ASCII log (any path) as dicts of typed values, using its own
    ``#fields`` and ``#types``; lines that do not fit the header are skipped."""
    fields: list[str] = []
    types: list[str] = []
    rows: list[dict[str, Any]] = []
    for line in lines:
        line = line.rstrip("\n")
        if line.startswith("#"):
            key, _, rest = line.partition(SEPARATOR)
            if key == "#fields":
                fields = rest.split(SEPARATOR)
            elif key == "#types":
                types = rest.split(SEPARATOR)
            continue
        cells = line.split(SEPARATOR)
        if not fields or len(cells) != len(fields) or len(types) != len(fields):
            continue
        rows.append({f: parse_value(c, t) for f, c, t in zip(fields, cells, types, strict=True)})
    return rows

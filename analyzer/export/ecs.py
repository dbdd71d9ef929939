"""Records as Elastic Common Schema documents, one JSON object per line
(``tlsa analyze --format ecs``), for Elasticsearch or OpenSearch bulk ingestion or Filebeat.

Each record becomes an ``event`` of category ``network``: ``@timestamp`` (the first
packet), ``source``/``destination`` (client and server), ``network``, the ``tls`` field set
(version, cipher, curve, established, resumed, ALPN, SNI, JA3/JA3S, offered cipher suites,
the leaf certificate's subject, issuer, validity, SANs and SHA-256), ``event.outcome``
(``success``, ``failure``, ``unknown``) and, for a failure, ``error.type`` (the category)
and ``error.message`` (the reason). Everything else is under ``tlsa.`` with our names.
Objects are nested, as Elasticsearch stores them; unknown values are left out rather
than written as null. Names and types follow ECS 8.x (``generated/csv/fields.csv``).

Not here: index templates or ingest pipelines; the HTTP bulk API (write the file, send
it with the tool of your choice).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import IO, Any

from analyzer.output import json_line
from analyzer.record import HandshakeRecord

_UDP_TRANSPORTS = frozenset({"quic", "dtls"})

TLSA_FIELDS = (
    "uid",
    "capture",
    "transport",
    "outcome",
    "failure",
    "failure_side",
    "remedy",
    "inferred",
    "stage",
    "history",
    "close",
    "alerts",
    "last_alert",
    "offered_versions",
    "alpn_offered",
    "offered_groups",
    "hrr",
    "quic_version",
    "quic_history",
    "proxy_kind",
    "proxy_target",
    "proxy_status",
    "starttls",
    "cert_status",
    "cert_trust",
    "cert_chain_sha256",
    "sni_matches_cert",
    "decrypted",
    "ja4",
    "tcp_rtt",
    "handshake_time",
    "retransmits",
    "gap_bytes",
    "icmp_error",
    "icmp_from",
    "warnings",
    "anomalies",
    "wireshark_filter",
)
"""Record fields written under ``tlsa.`` (those ECS has no field for, and our own words
for what ECS fields say in theirs)."""


def iso(ts: float) -> str:
    """Epoch seconds as an ISO 8601 UTC date with microseconds (ECS ``date``)."""
    us = round(ts * 1_000_000)
    seconds, micro = divmod(us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micro:06d}Z"


def _version(version: str | None) -> tuple[str, str] | None:
    """``TLSv1.2`` -> (``1.2``, ``tls``); ``SSLv3`` -> (``3``, ``ssl``); unknown: None."""
    if not version:
        return None
    for prefix in ("DTLSv", "TLSv", "SSLv"):
        if version.startswith(prefix):
            return version[len(prefix):], prefix[:-1].lower()
    return None


def _outcome(r: HandshakeRecord) -> str:
    if r.outcome == "established":
        return "success"
    if r.failure:
        return "failure"
    return "unknown"


def _pruned(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` without None values and empty objects (recursively)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = _pruned(v)
            if not v:
                continue
        if v is None:
            continue
        out[k] = v
    return out


def ecs_document(r: HandshakeRecord) -> dict[str, Any]:
    """One record as a nested ECS document."""
    d = r.to_dict()
    version = _version(r.version)
    v6 = ":" in r.client_ip
    failed = bool(r.failure)
    leaf = r.cert_chain_sha256[0].upper() if r.cert_chain_sha256 else None
    certificate = {
        "subject": r.cert_subject,
        "issuer": r.cert_issuer,
        "not_before": iso(r.cert_not_before) if r.cert_not_before is not None else None,
        "not_after": iso(r.cert_not_after) if r.cert_not_after is not None else None,
    }
    doc: dict[str, Any] = {
        "@timestamp": iso(r.ts),
        "message": _message(r),
        "event": {
            "kind": "event",
            "category": ["network"],
            "type": ["connection", "error"] if failed else ["connection"],
            "outcome": _outcome(r),
            "start": iso(r.ts),
            "end": iso(r.ts_end),
            "duration": max(0, round((r.ts_end - r.ts) * 1e9)),
            "id": r.uid,
            "module": "tlsa",
            "dataset": "tlsa.handshake",
        },
        "source": {"ip": r.client_ip, "port": r.client_port, "bytes": r.client_bytes},
        "destination": {
            "ip": r.server_ip,
            "port": r.server_port,
            "bytes": r.server_bytes,
            "domain": r.sni,
        },
        "network": {
            "transport": "udp" if r.transport in _UDP_TRANSPORTS else "tcp",
            "protocol": "tls",
            "type": "ipv6" if v6 else "ipv4",
            "bytes": r.client_bytes + r.server_bytes,
            "packets": r.packets,
        },
        "tls": {
            "version": version[0] if version else None,
            "version_protocol": version[1] if version else None,
            "cipher": r.cipher,
            "curve": r.group,
            "established": r.established,
            "resumed": r.resumed,
            "next_protocol": r.alpn,
            "client": {
                "server_name": r.sni,
                "ja3": r.ja3,
                "supported_ciphers": list(r.offered_ciphers) or None,
            },
            "server": {
                "ja3s": r.ja3s,
                "hash": {"sha256": leaf},
                **certificate,
                "x509": {
                    "subject": {"distinguished_name": r.cert_subject},
                    "issuer": {"distinguished_name": r.cert_issuer},
                    "not_before": certificate["not_before"],
                    "not_after": certificate["not_after"],
                    "alternative_names": list(r.cert_sans) or None,
                },
            },
        },
        "error": {"type": r.failure, "message": r.reason} if failed else None,
        "tlsa": {name: d[name] for name in TLSA_FIELDS},
    }
    return _pruned(doc)


def _message(r: HandshakeRecord) -> str:
    text = f"TLS {r.client_ip}:{r.client_port} -> {r.server_ip}:{r.server_port}"
    if r.sni:
        text += f" ({r.sni})"
    text += f": {r.outcome}"
    if r.failure:
        text += f" ({r.failure})"
    return text


def write_ecs(records: Iterable[HandshakeRecord], out: IO[str]) -> int:
    n = 0
    for r in records:
        out.write(json_line(ecs_document(r)))
        out.write("\n")
        n += 1
    return n

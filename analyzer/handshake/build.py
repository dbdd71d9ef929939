"""The one place that builds a :class:`~analyzer.record.HandshakeRecord`.

A record joins two sets of facts: what the handshake core saw of the TLS handshake
(:class:`~analyzer.handshake.core.HandshakeCore`: hellos, certificate, alerts, history,
stage) and what the transport saw of the connection (:class:`TransportFacts`: addresses,
bytes, packets, closes, retransmissions, proxies, ICMP errors). Each transport adapter
gives its facts in that one shape; :func:`build_record` names, fingerprints and describes
them. Judgement (outcome, failure, reason) comes later, from :mod:`analyzer.diagnosis`.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from analyzer import limits
from analyzer.display_filter import display_filter
from analyzer.fingerprints import client_fingerprints, ja3s
from analyzer.handshake.core import HandshakeCore, is_tls13
from analyzer.record import FIELD_PLAN, NO_VALUE, HandshakeRecord
from analyzer.text import printable
from analyzer.tls.certificate import LeafFacts, chain_sha256, describe_leaf, name_matches
from analyzer.tls.enums import is_grease
from analyzer.tls.names import cipher_name, group_name, sigalg_name, version_name

Key = tuple[bytes, int, bytes, int]
"""(client address, client port, server address, server port); addresses as packed bytes."""


@dataclass(slots=True, kw_only=True)  # not frozen: a frozen one is built by object.__setattr__
class TransportFacts:
    """What a transport adapter knows of its connection, for the record (SPEC §3)."""

    key: Key
    first_ts: float
    last_ts: float
    transport: str = "tcp"
    quic_version: str | None = None
    quic_history: str | None = None
    proxy_kind: str | None = None
    proxy_target: str | None = None
    proxy_status: int | None = None
    proxy_status_line: str | None = None
    starttls: str | None = None
    client_bytes: int = 0
    server_bytes: int = 0
    packets: int = 0
    tcp_rtt: float | None = None
    client_retransmits: int = 0
    server_retransmits: int = 0
    gap_bytes: int = 0
    anomalies: frozenset[str] = frozenset()
    client_hello_segments: int = 0
    """Transport units (TCP segments) the first ClientHello spanned."""
    client_hello_acked: bool = False
    server_unacked_bytes: int = 0
    syn_count: int = 0
    synack: bool = False
    icmp_error: str | None = None
    icmp_from: str | None = None
    icmp_mtu: int | None = None
    ts_close: float | None = None
    close_by: str | None = None
    ts_client_fin: float | None = None
    client_max_datagram: int | None = None
    """UDP transports: the largest datagram each side sent (path MTU evidence)."""
    server_max_datagram: int | None = None
    dtls_cookie_length: int | None = None
    """DTLS: the cookie length of the server's HelloVerifyRequest; None without one."""
    dtls_cookie_echoed: bool | None = None
    """DTLS: the client sent a ClientHello carrying a cookie."""
    dtls_client_datagrams: int | None = None
    """DTLS: datagrams each side sent."""
    dtls_server_datagrams: int | None = None
    dtls_client_incomplete: int | None = None
    """DTLS: each side's handshake messages that never arrived whole."""
    dtls_server_incomplete: int | None = None
    quic_close_code: int | None = None
    quic_close_application: bool = False
    quic_close_reason: str | None = None
    quic_server_versions: tuple[str, ...] = ()
    quic_client_handshake_packets: int = 0
    quic_server_handshake_packets: int = 0
    quic_client_one_rtt_packets: int = 0


def build_record(
    core: HandshakeCore,
    facts: TransportFacts,
    *,
    capture: str,
    close: str,
    capture_end: float | None,
) -> HandshakeRecord:
    """The facts of one connection as a record (no judgement yet)."""
    c_ip, c_port, s_ip, s_port = facts.key
    ch, sh, first_sh = core.ch, core.sh, core.sh_first
    alerts = core.alerts_with_inferred(facts.last_ts)
    known = [a for a in alerts if a.description is not None]
    anomalies = set(core.anomalies or ()) | facts.anomalies
    client_ip, server_ip = ip_text(c_ip), ip_text(s_ip)
    rec: dict[str, object] = {
        "uid": make_uid(capture, facts.key, facts.first_ts),
        "capture": capture,
        "ts": facts.first_ts,
        "ts_end": facts.last_ts,
        "client_ip": client_ip,
        "client_port": c_port,
        "server_ip": server_ip,
        "server_port": s_port,
        "wireshark_filter": display_filter(
            client_ip=client_ip,
            client_port=c_port,
            server_ip=server_ip,
            server_port=s_port,
            transport=facts.transport,
        ),
        "transport": facts.transport,
        "quic_version": facts.quic_version,
        "quic_history": facts.quic_history,
        "proxy_kind": facts.proxy_kind,
        "proxy_target": facts.proxy_target,
        "proxy_status": facts.proxy_status,
        "proxy_status_line": facts.proxy_status_line,
        "starttls": facts.starttls,
        "history": "".join(core.history),
        "stage": core.stage,
        "client_data": core.client_sent_data(),
        "established": core.established,
        "alerts": alerts,
        "last_alert": known[-1].description if known else None,
        "hrr": core.hrr,
        "close": close,
        "client_bytes": facts.client_bytes,
        "server_bytes": facts.server_bytes,
        "packets": facts.packets,
        "tcp_rtt": facts.tcp_rtt,
        "retransmits": facts.client_retransmits + facts.server_retransmits,
        "client_retransmits": facts.client_retransmits,
        "server_retransmits": facts.server_retransmits,
        "gap_bytes": facts.gap_bytes,
        "anomalies": sorted(anomalies)[: limits.MAX_ANOMALIES],
        "client_hello_segments": facts.client_hello_segments if ch is not None else 0,
        "client_hello_acked": facts.client_hello_acked,
        "server_unacked_bytes": facts.server_unacked_bytes,
        "client_certificates": core.client_certs,
        "client_cert_requested": core.cert_requested,
        "client_random": ch.random.hex() if ch is not None else None,
        "decrypted": [side for side, done in (("client", core.decrypted[True]),
                                               ("server", core.decrypted[False])) if done],
        "syn_count": facts.syn_count,
        "synack": facts.synack,
        "icmp_error": facts.icmp_error,
        "icmp_from": facts.icmp_from,
        "icmp_mtu": facts.icmp_mtu,
        "ts_client_hello": core.ts_ch,
        "ts_server_hello": core.ts_sh,
        "ts_close": facts.ts_close,
        "ts_client_fin": facts.ts_client_fin,
        "client_max_datagram": facts.client_max_datagram,
        "server_max_datagram": facts.server_max_datagram,
        "dtls_cookie_length": facts.dtls_cookie_length,
        "dtls_cookie_echoed": facts.dtls_cookie_echoed,
        "dtls_client_datagrams": facts.dtls_client_datagrams,
        "dtls_server_datagrams": facts.dtls_server_datagrams,
        "dtls_client_incomplete": facts.dtls_client_incomplete,
        "dtls_server_incomplete": facts.dtls_server_incomplete,
        "quic_close_code": facts.quic_close_code,
        "quic_close_application": facts.quic_close_application,
        "quic_close_reason": facts.quic_close_reason,
        "quic_server_versions": list(facts.quic_server_versions),
        "quic_client_handshake_packets": facts.quic_client_handshake_packets,
        "quic_server_handshake_packets": facts.quic_server_handshake_packets,
        "quic_client_one_rtt_packets": facts.quic_client_one_rtt_packets,
        "close_by": facts.close_by,
        "server_first_bytes": core.server_first_bytes,
        "client_first_bytes": core.client_first_bytes,
        "client_encrypted_after_server_flight": list(core.client_enc_after_flight),
        "server_encrypted_after_client_flight": list(core.server_enc_after_client),
        "capture_end": capture_end,
        "timeline": list(core.timeline),
    }
    end = core.ts_established or core.ts_failure or facts.ts_close
    rec["handshake_time"] = duration(core.ts_ch, end)
    if ch is not None:
        versions = [v for v in ch.supported_versions if not is_grease(v)]
        if not versions:
            versions = [ch.legacy_version]
            if ch.sslv2:
                versions = [0x0002, ch.legacy_version] if ch.legacy_version != 2 else [2]
        rec["sni"] = ch.sni
        rec["offered_versions"] = [version_name(v) for v in versions]
        rec["offered_ciphers"] = names(cipher_name, ch.cipher_suites)
        rec["offered_groups"] = names(group_name, ch.supported_groups)
        rec["offered_sigalgs"] = names(sigalg_name, ch.signature_algorithms, False)
        rec["key_share_groups"] = names(group_name, ch.key_share_groups)
        rec["alpn_offered"] = [printable(p) for p in ch.alpn]
        rec["ja3_string"], rec["ja3"], rec["ja4"] = client_fingerprints(
            ch, _JA4_TRANSPORT.get(facts.transport, "t")
        )
    if sh is not None:
        rec["version"] = version_name(sh.version)
        rec["cipher"] = cipher_name(sh.cipher_suite)
        group = sh.key_share_group if is_tls13(sh.version) else core.ske_curve
        rec["group"] = group_name(group) if group is not None else None
        alpn = sh.alpn if sh.alpn is not None else core.ee_alpn
        rec["alpn"] = printable(alpn) if alpn is not None else None
        rec["resumed"] = core.resumed()
    if first_sh is not None:
        rec["ja3s_string"], rec["ja3s"] = ja3s(first_sh)
    if core.cert is not None and core.cert.certificates:
        rec.update(_certificate_fields(tuple(core.cert.certificates[: limits.MAX_CHAIN_CERTS]),
                                       ch.sni if ch is not None else None))
    return new_record(rec)


def new_record(values: dict[str, object]) -> HandshakeRecord:
    """``HandshakeRecord(**values)`` without ``__init__``: a frozen dataclass sets its 112
    fields one by one through ``object.__setattr__`` (~200k instructions a record); here
    each slot is set once, in compiled code. Defaults and default factories as there; a
    missing required field or an unknown name raises :class:`TypeError`, as there."""
    out: HandshakeRecord = object.__new__(HandshakeRecord)
    used = 0
    missing = NO_VALUE  # a local: a name imported from a module that is not compiled is
    # looked up in this module's dict at every use (twice a field: 36k instructions a record)
    for name, set_slot, default, factory in FIELD_PLAN:
        value = values.get(name, missing)
        if value is not missing:
            used += 1
        elif factory is not None:
            value = factory()
        elif default is missing:
            raise TypeError(f"HandshakeRecord needs the field {name!r}")
        else:
            value = default
        set_slot(out, value)
    if used != len(values):
        unknown = sorted(set(values) - {plan[0] for plan in FIELD_PLAN})
        raise TypeError(f"HandshakeRecord has no field {unknown[0]!r}")
    return out


def _certificate_fields(chain: tuple[bytes, ...], sni: str | None) -> dict[str, object]:
    """The server certificate's facts (SPEC §3 ``cert_*``) from its DER chain."""
    leaf, hashes = leaf_facts(chain)
    out: dict[str, object] = {"cert_chain": chain, "cert_chain_sha256": list(hashes)}
    if leaf is None:
        return out
    out["cert_subject"] = leaf.subject
    out["cert_issuer"] = leaf.issuer
    out["cert_sans"] = list(leaf.sans or ())
    out["cert_not_before"] = leaf.not_before
    out["cert_not_after"] = leaf.not_after
    out["cert_self_issued"] = leaf.self_issued
    out["cert_signature_hash"] = leaf.signature_hash
    out["cert_error"] = leaf.error
    if leaf.key_type:
        bits = f"-{leaf.key_bits}" if leaf.key_bits else ""
        out["cert_key"] = f"{leaf.key_type}{bits}"
    if not leaf.error and sni:
        out["sni_matches_cert"] = sni_matches(sni, tuple(leaf.sans or ()), leaf.common_name)
    return out


_JA4_TRANSPORT: Final = {"tcp": "t", "quic": "q", "dtls": "d"}


@functools.lru_cache(maxsize=65536)
def ip_text(addr: bytes) -> str:
    """An address as text, one shared string per address (records hold many copies)."""
    return str(ipaddress.ip_address(addr))


def make_uid(capture: str, key: Key, ts: float) -> str:
    """Stable id: a short hash of the capture name, 4-tuple and first packet time."""
    src, sport, dst, dport = key
    h = hashlib.blake2b(digest_size=10)
    h.update(f"{capture}|{src.hex()}|{sport}|{dst.hex()}|{dport}|{ts:.6f}".encode())
    return "C" + _base32(h.digest())


_BASE32: Final = "abcdefghijklmnopqrstuvwxyz234567"
"""RFC 4648 base 32, lower case."""


def _base32(digest: bytes) -> str:
    """``b32encode(digest).decode().lower()`` for a digest of whole 5-byte groups (no
    padding), each group read as one integer (``base64``'s encoder loops in Python)."""
    out: list[str] = []
    for at in range(0, len(digest), 5):
        group = int.from_bytes(digest[at : at + 5], "big")
        for shift in (35, 30, 25, 20, 15, 10, 5, 0):
            out.append(_BASE32[(group >> shift) & 31])
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def leaf_facts(chain: tuple[bytes, ...]) -> tuple[LeafFacts | None, list[str]]:
    """Leaf facts and chain hashes, cached: a server sends the same chain to every client."""
    return describe_leaf(chain), chain_sha256(chain)


@functools.lru_cache(maxsize=4096)
def sni_matches(sni: str, sans: tuple[str, ...], cn: str | None) -> bool:
    return name_matches(sni, list(sans), cn)


def names(
    namer: Callable[[int], str], codes: tuple[int, ...], skip_grease: bool = True
) -> list[str]:
    """IANA names of a hello's list (GREASE left out), worked out once per distinct short
    list: clients send the same lists on every connection. A long list (only a crafted
    hello has hundreds of cipher suites) is not remembered."""
    if len(codes) > _MAX_CACHED_NAMES:
        return list(_names_of(namer, codes, skip_grease))
    return list(_cached_names(namer, codes, skip_grease))


def _names_of(
    namer: Callable[[int], str], codes: tuple[int, ...], skip_grease: bool
) -> tuple[str, ...]:
    return tuple(namer(c) for c in codes if not (skip_grease and is_grease(c)))


_cached_names: Final = functools.lru_cache(maxsize=limits.MAX_INTERNED)(_names_of)
_MAX_CACHED_NAMES: Final = limits.MAX_INTERNED_LENGTH // 2
"""Codes in the longest list whose names are remembered (as many as interned lists hold)."""


def duration(start: float | None, end: float | None) -> float | None:
    """Seconds from ``start`` to ``end``; None when unknown or when the capture's clock
    ran backwards between them."""
    if start is None or end is None or end < start:
        return None
    return end - start

"""Cross-connection evidence: what other connections in the same run say about a failure.

Runs once over all complete, merged records (SPEC §5), so the result is the same whether
one process or many produced them. It builds per-server summaries (what the server
negotiated with the clients it accepted, what its certificate looked like where it was
visible) and uses them to sharpen failures:

- version and cipher mismatches name what the same server chose for other clients; a
  version mismatch inferred from a refused TLS 1.2 hello becomes a cipher mismatch when the
  same server negotiated a version this client offered;
- a TLS 1.3 rejection inferred from an encrypted alert takes the exact certificate
  category when the same server's certificate is visible elsewhere (e.g. over TLS 1.2);
- trust learnt from the capture: a chain issued by a CA with which other clients completed
  handshakes, rejected by this client as untrusted, points at this client's trust store
  (``cert_trust`` ``clients``), and the remedy goes to the client;
- likewise for versions, ciphers and names: when other clients succeeded with the same
  server, the failing client is where the remedy goes, and the reason says so.
- a QUIC attempt that failed or got no answer and the TCP connection the client fell back
  to name each other (:mod:`analyzer.diagnosis.fallbacks`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from analyzer.diagnosis import remedies as rm
from analyzer.diagnosis.certs import INTERCEPTION_HINTS
from analyzer.diagnosis.fallbacks import QuicFallbacks, may_fall_back
from analyzer.diagnosis.rules.certificates import (
    certificate_verdict,
    status_for_alert,
    weak_key_verdict,
)
from analyzer.diagnosis.rules.negotiation import cipher_verdict
from analyzer.diagnosis.tuples import TupleStarts
from analyzer.display_filter import display_filter, with_filter
from analyzer.limits import LIVE_EVIDENCE_SERVERS
from analyzer.record import HandshakeRecord, evolve

if TYPE_CHECKING:
    from analyzer.diagnosis import DiagnosisOptions


@dataclass(slots=True)
class ServerSummary:
    """What one server (IP and port) did across the run."""

    versions: Counter[str] = field(default_factory=Counter)
    ciphers: Counter[str] = field(default_factory=Counter)
    cert: dict[str | None, HandshakeRecord] = field(default_factory=dict)
    """A record with the certificate visible, by SNI (first seen)."""
    names: Counter[str] = field(default_factory=Counter)
    """SNIs of the handshakes the server completed."""


FAILED = 1
"""A mark (:func:`sharpen_marks`): the record's outcome is ``failed``."""
FALLBACK_TCP = 2
"""A mark: a TCP connection offering HTTP over TLS (a possible QUIC fallback)."""


def sharpen_marks(r: HandshakeRecord) -> int:
    """What :meth:`Evidence.sharpen` needs to know of a record, beyond its 4-tuple
    (:func:`~analyzer.diagnosis.tuples.tuple_hash`), to tell that it leaves the record
    unchanged (:meth:`Evidence.unchanged`): whether it failed, and whether it may be a
    QUIC attempt's fallback."""
    marks = FAILED if r.outcome == "failed" else 0
    if may_fall_back(r):
        marks |= FALLBACK_TCP
    return marks


Endpoints = tuple[str, int, str, int, str]
"""A record's client address and port, server address and port, and transport: what its
``wireshark_filter`` names."""


def endpoints(r: HandshakeRecord) -> Endpoints:
    return r.client_ip, r.client_port, r.server_ip, r.server_port, r.transport


class Evidence:
    """Per-server summaries, built one record at a time (order does not matter: counts,
    and for certificates the connection that comes first in ``(ts, uid)`` order), and the
    4-tuples a capture used more than once (their ``wireshark_filter`` gets a time bound).

    Memory: a server gets a summary only once one of its connections has something to
    tell (a negotiated version, a completed name, a visible certificate), so a flood of
    connections that never got that far costs none; the 4-tuples go to
    :class:`~analyzer.diagnosis.tuples.TupleStarts` (16 bytes each, on disk past its
    limit), the possible QUIC fallbacks to :class:`~analyzer.diagnosis.fallbacks.QuicFallbacks`
    (40 bytes each, on disk past its limit). Several processes may each build one over
    their records and :meth:`merge` them: the result is the same as one built over all.

    ``live``: the evidence of a live capture, sharpening each record with the records
    that came before it. It keeps the per-server summaries and the trust learnt, for the
    ``limits.LIVE_EVIDENCE_SERVERS`` servers and certificates seen last, and neither the
    4-tuples nor the QUIC fallbacks (both need records that come later)."""

    def __init__(self, *, live: bool = False) -> None:
        self._live = live
        self._servers: dict[tuple[str, str, int], ServerSummary] = {}
        """By capture and server address: several input files are independent captures
        (SPEC §3 ``capture``), whose servers may share an address."""
        self._tuples = TupleStarts()
        self._trusted: Counter[tuple[str, str]] = Counter()
        """Per capture and leaf certificate (SHA-256): connections whose client completed
        the handshake with it (and so trusted its chain)."""
        self._fallbacks = QuicFallbacks()

    def _summary(self, r: HandshakeRecord) -> ServerSummary:
        key = (r.capture, r.server_ip, r.server_port)
        s = self._servers.get(key)
        if s is None:
            s = self._servers[key] = ServerSummary()
            if self._live and len(self._servers) > LIVE_EVIDENCE_SERVERS:
                del self._servers[next(iter(self._servers))]
        elif self._live:  # the least recently seen go first
            self._servers[key] = self._servers.pop(key)
        return s

    def add(self, r: HandshakeRecord) -> None:
        if self._live:
            self._trusted_bounded()
        else:
            self._tuples.add(r)
            self._fallbacks.add(r)
        if r.established and r.version and r.cipher:
            s = self._summary(r)
            s.versions[r.version] += 1
            s.ciphers[r.cipher] += 1
        if r.outcome == "established":
            if r.sni:
                self._summary(r).names[r.sni] += 1
            if r.cert_chain_sha256:
                self._trusted[(r.capture, r.cert_chain_sha256[0])] += 1
        if r.cert_chain_sha256 and r.cert_status is not None:
            _first_cert(self._summary(r).cert, r)

    def _trusted_bounded(self) -> None:
        while len(self._trusted) >= LIVE_EVIDENCE_SERVERS:
            del self._trusted[next(iter(self._trusted))]

    def hand_over(self, path: str) -> None:
        """Before this evidence is pickled to another process: move what may be large (the
        possible QUIC fallbacks) to the file ``path``; :meth:`merge` there reads it and
        removes it."""
        self._fallbacks.hand_over(path)

    def merge(self, other: Evidence) -> None:
        """Add what another :class:`Evidence` saw (over other records of the same run)."""
        self._tuples.merge(other._tuples)
        self._trusted.update(other._trusted)
        self._fallbacks.merge(other._fallbacks)
        for key, theirs in other._servers.items():
            s = self._servers.get(key)
            if s is None:
                self._servers[key] = theirs
                continue
            s.versions.update(theirs.versions)
            s.ciphers.update(theirs.ciphers)
            s.names.update(theirs.names)
            for r in theirs.cert.values():
                _first_cert(s.cert, r)

    def unchanged(self, tuple_hash: int, marks: int) -> bool:
        """True when :meth:`sharpen` returns a record of this 4-tuple hash and these
        :func:`sharpen_marks` as it is, whatever its other fields: its 4-tuple does not
        repeat, it did not fail (what other connections say about a server, and a QUIC
        attempt's fallback, sharpen only failures), and it is not a TCP connection that
        may follow a failed QUIC attempt. False means it may change."""
        if marks & FAILED or (marks & FALLBACK_TCP and self._fallbacks.attempts):
            return False
        return not self._tuples.repeats(tuple_hash)

    def bounded_filter(self, h: int, ts: float, where: Endpoints) -> str | None:
        """The ``wireshark_filter`` with a time bound of a record whose 4-tuple (hash
        ``h``) repeats, starting at ``ts``; None when it does not repeat."""
        bound = self._tuples.bound_of(h, ts)
        return None if bound is None else _bounded_filter(where, bound)

    def sharpen(self, r: HandshakeRecord) -> HandshakeRecord:
        """The record with what the other connections say about its failure (and about
        its 4-tuple); the very same object when they say nothing. Whatever changes here
        must keep :meth:`unchanged` true to it."""
        bound = None if self._live else self._tuples.bound(r)
        if bound is not None:
            r = with_filter(r, _bounded_filter(endpoints(r), bound))
        s = self._servers.get((r.capture, r.server_ip, r.server_port))
        if s is not None and r.outcome == "failed":
            r = _others_trust(_sharpen(r, s), s, self._trusted)
        return r if self._live else self._fallbacks.sharpen(r)


def _bounded_filter(where: Endpoints, bound: tuple[float, float | None]) -> str:
    client_ip, client_port, server_ip, server_port, transport = where
    return display_filter(
        client_ip=client_ip,
        client_port=client_port,
        server_ip=server_ip,
        server_port=server_port,
        transport=transport,
        since=bound[0],
        until=bound[1],
    )


def _first_cert(certs: dict[str | None, HandshakeRecord], r: HandshakeRecord) -> None:
    """Keep ``r`` as its SNI's certificate record if it comes first in ``(ts, uid)``."""
    seen = certs.get(r.sni)
    if seen is None or (r.ts, r.uid) < (seen.ts, seen.uid):
        certs[r.sni] = r


def _top(counter: Counter[str]) -> str:
    # Ties in name order: the text must not depend on the order records were added in
    # (several workers add them in another order than one process).
    top = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    return ", ".join(f"{k} ({n})" for k, n in top)


def cross_connection(
    records: Sequence[HandshakeRecord], options: DiagnosisOptions | None = None
) -> list[HandshakeRecord]:
    """The records with cross-connection evidence added (order preserved)."""
    evidence = Evidence()
    for r in records:
        evidence.add(r)
    return [evidence.sharpen(r) for r in records]


def _sharpen(r: HandshakeRecord, s: ServerSummary) -> HandshakeRecord:
    if r.failure == "version_mismatch" and r.inferred:
        accepted = [v for v in s.versions if v in r.offered_versions]
        refusal = next((a for a in r.alerts if a.sender == "server" and not a.encrypted), None)
        if accepted and refusal is not None:
            v = cipher_verdict(r, refusal)
            r = evolve(
                r,
                failure=v.failure,
                failure_side=v.side,
                reason=f"{v.reason}; the same server negotiated {', '.join(sorted(accepted))} "
                "with other clients in this capture, so the version is not what it refused",
                remedy=v.remedy,
            )
    if r.failure == "version_mismatch" and s.versions:
        missing = [v for v in s.versions if v not in r.offered_versions]
        if missing:
            return evolve(
                r,
                reason=f"{r.reason}; the same server negotiated {_top(s.versions)} with "
                "other clients in this capture",
                remedy=f"Change this client, not the server (other clients of this capture "
                f"negotiate {', '.join(sorted(missing))} with it): {r.remedy}",
            )
    if r.failure == "cipher_mismatch" and s.ciphers:
        not_offered = [c for c in s.ciphers if c not in r.offered_ciphers]
        if not_offered:
            return evolve(
                r,
                reason=f"{r.reason}; the same server chose {_top(s.ciphers)} for other "
                "clients, which this client did not offer",
                remedy="Change this client, not the server: enable one of the suites the "
                f"server chose for other clients of this capture ({_top(s.ciphers)}); "
                f"{r.remedy}",
            )
    if (
        r.failure
        in ("certificate_untrusted", "certificate_expired", "certificate_invalid", "sni_mismatch")
        and r.inferred
        and not r.cert_chain_sha256
    ):
        seen = s.cert.get(r.sni)
        alert = next((a.description for a in r.alerts if a.sender == "client"), None)
        weak = (
            weak_key_verdict(seen, f"the same server's certificate, visible in connection "
                             f"{seen.uid}")
            if seen is not None
            and alert == "bad_certificate"
            and status_for_alert(alert, seen.cert_problems) is None
            else None
        )
        if weak is not None:
            # bad_certificate names the host name, the dates or a weak key, never trust.
            return evolve(r, failure=weak.failure, failure_side=weak.side,
                           reason=f"{r.reason}; {weak.reason}", remedy=weak.remedy)
        if seen is not None and seen.cert_status not in (None, "ok"):
            # The problem the client's alert names, among those the visible copy shows.
            status = status_for_alert(alert, seen.cert_problems) or seen.cert_status
            exact = certificate_verdict(seen, status, inferred=True)
            if exact is not None and exact.reason:
                return evolve(
                    r,
                    failure=exact.failure,
                    failure_side=exact.side,
                    reason=f"{r.reason}; the same server's certificate, visible in connection "
                    f"{seen.uid}: {exact.reason}",
                    remedy=exact.remedy,
                )
    if r.failure == "sni_mismatch" and r.sni and s.names and r.sni not in s.names:
        return evolve(
            r,
            reason=f"{r.reason}; other clients of this capture completed handshakes with "
            f"this server as {_top(s.names)}",
            remedy=f"Check the name this client is configured with (other clients reach "
            f"this server as {', '.join(sorted(s.names)[:3])}): {r.remedy}",
        )
    return r


_TRUST_ALERTS = frozenset({"unknown_ca", "certificate_unknown", "bad_certificate"})


def _others_trust(
    r: HandshakeRecord, s: ServerSummary, trusted: Counter[tuple[str, str]]
) -> HandshakeRecord:
    """A client that rejected a CA-issued chain which other clients of the capture
    completed handshakes with: its own trust store lacks the CA (or the others do not
    verify). Said as the wire shows it; the remedy goes to this client."""
    if r.failure != "certificate_untrusted" or r.cert_self_issued:
        return r
    seen = r if r.cert_chain_sha256 else s.cert.get(r.sni)
    if seen is None or not seen.cert_chain_sha256 or seen.cert_self_issued:
        return r
    others = trusted[(r.capture, seen.cert_chain_sha256[0])]
    rejected = any(a.sender == "client" and a.description in _TRUST_ALERTS for a in r.alerts)
    if not others or not (rejected or r.inferred):
        return r
    issuer = seen.cert_issuer or "its issuer"
    proxy = any(h in issuer.lower() for h in INTERCEPTION_HINTS)
    install = (
        f"Install the CA of {issuer} on this client: it looks like a TLS-inspecting proxy's, "
        "which every client behind the proxy must trust"
        if proxy
        else f"Install the CA that issued this chain ({issuer}) in this client's trust store"
    )
    return evolve(
        r,
        cert_trust="clients",
        reason=f"{r.reason}; {others} other connection(s) of this capture completed their "
        f"handshake with the same certificate (issuer {issuer}): this client's trust store "
        "lacks that CA, or the others do not verify",
        remedy=f"{install} (the system store: update-ca-certificates; a container image's "
        "store; the language runtime's bundle: Java cacerts, Python certifi or "
        "REQUESTS_CA_BUNDLE, Node NODE_EXTRA_CA_CERTS); confirm with the CA file: "
        f"{rm.s_client(r, '-CAfile', 'ca.pem', '-verify_return_error')}; or: "
        f"{rm.curl(r, '--cacert', 'ca.pem')}",
    )

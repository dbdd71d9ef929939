"""Diagnosis: judgement over finished records (SPEC §3 judgement fields, §4 categories).

:func:`diagnose` fills ``outcome``, ``failure``, ``failure_side``, ``reason``, ``remedy``,
``inferred``, ``cert_status`` and ``warnings`` of one record from its facts, with the
ordered rule table of :mod:`analyzer.diagnosis.rules`. :func:`cross_connection` runs after all
records of a run are complete and merged, and adds evidence from other connections (the
same server's certificate or choices seen elsewhere), so results do not depend on how the
work was split (SPEC §5).
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.diagnosis.certs import cert_problems, cert_status
from analyzer.diagnosis.cross import cross_connection
from analyzer.diagnosis.rules import RULES
from analyzer.diagnosis.verdict import Facts, Verdict
from analyzer.diagnosis.warnings import TRUST_PROBLEMS, warnings_for
from analyzer.record import AlertInfo, HandshakeRecord, evolve

__all__ = ["DiagnosisOptions", "cross_connection", "diagnose"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DiagnosisOptions:
    ca_bundle: str | None = None
    """Extra trust anchors (PEM file) besides certifi's bundle."""
    verify: bool = True
    """Check the chain against the trust store (``--no-verify`` turns it off)."""


def deciding_alert(r: HandshakeRecord) -> AlertInfo | None:
    """The alert that ended the handshake, among those whose description is known
    (plaintext, or decrypted with a key log): the first fatal one, else the last one seen
    before the handshake completed."""
    plain = [a for a in r.alerts if a.description is not None]
    for a in plain:
        if a.level == "fatal":
            return a
    if plain and not r.established:
        return plain[-1]
    return None


def verdict_for(r: HandshakeRecord, facts: Facts) -> Verdict:
    for rule in RULES:
        v = rule(r, facts)
        if v is not None:
            return v
    return Verdict(outcome="incomplete")  # unreachable: the last rule always answers


def cert_trust(record: HandshakeRecord, options: DiagnosisOptions) -> str | None:
    """SPEC §3 ``cert_trust``: whose trust store judged the certificate (before the
    client's own evidence is weighed, see :func:`judge_certificate`)."""
    if not record.cert_chain or not options.verify:
        return None
    return "ca_bundle" if options.ca_bundle else "certifi"


_CLIENT_DONE = frozenset({"client_finished", "established", "application_data"})


def client_finished(r: HandshakeRecord) -> bool:
    """The client sent its Finished (seen, or decrypted, or TLS 1.3's record after the
    server's flight): it had checked the server's certificate and gone on."""
    return r.stage in _CLIENT_DONE


def judge_certificate(
    r: HandshakeRecord, options: DiagnosisOptions
) -> tuple[list[str], str | None, list[str]]:
    """The certificate's problems, whose trust store judged them, and warnings about that.

    Evidence from the client outranks the analysis's trust store: a client that finished
    its handshake with the chain trusted it, so a chain this analysis cannot verify (a
    private CA, an inspecting proxy's) is no problem for that connection (``cert_trust``
    ``clients``), only a warning that the chain was not verifiable here. Problems every
    client sees (dates, host name) stay."""
    problems = cert_problems(r, ca_bundle=options.ca_bundle, verify=options.verify)
    trust = cert_trust(r, options)
    if trust is not None and client_finished(r) and TRUST_PROBLEMS.intersection(problems):
        kept = [p for p in problems if p not in TRUST_PROBLEMS]
        return kept, "clients", ["chain_not_verifiable"]
    return problems, trust, []


def with_decryption(r: HandshakeRecord, v: Verdict, facts: Facts) -> str | None:
    """The reason, saying so when its evidence was decrypted with the key log: a TLS 1.3
    handshake's certificate and alerts, or a decrypted alert."""
    if not r.decrypted or v.reason is None or v.outcome != "failed" or v.inferred:
        return v.reason
    alert = facts.alert
    if r.version == "TLSv1.3" or (alert is not None and alert.encrypted):
        sides = " and ".join(r.decrypted)
        units = "packets" if r.transport == "quic" else "records"
        return f"{v.reason} (seen in the {sides} {units} decrypted with the key log)"
    return v.reason


def diagnose(record: HandshakeRecord, options: DiagnosisOptions | None = None) -> HandshakeRecord:
    """The record with its judgement fields filled in."""
    opts = options or DiagnosisOptions()
    problems, trust, notes = judge_certificate(record, opts)
    status = cert_status(problems, bool(record.cert_chain))
    facts = Facts(cert_status=status, cert_problems=problems, alert=deciding_alert(record))
    v = verdict_for(record, facts)
    failed = v.outcome in ("failed", "not_tls")
    return evolve(
        record,
        outcome=v.outcome,
        failure=v.failure if failed else None,
        failure_side=v.side if failed and v.failure else None,
        reason=with_decryption(record, v, facts),
        remedy=v.remedy if failed or v.outcome == "not_tls" else None,
        inferred=v.inferred,
        cert_status=status,
        cert_trust=trust,
        cert_problems=problems,
        cert_chain=(),  # judged: the DER is not needed any more (memory)
        warnings=warnings_for(record, status, v.outcome) + notes,
    )

"""One test per diagnosis rule, on small constructed records (facts in, judgement out)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from analyzer.diagnosis import DiagnosisOptions, cross, cross_connection, diagnose
from analyzer.diagnosis.cross import Evidence
from analyzer.diagnosis.rules.inference import rule_established
from analyzer.diagnosis.verdict import Facts, Verdict
from analyzer.record import AlertInfo, HandshakeRecord, TimelineEntry

T0 = 1_700_000_000.0
OPTS = DiagnosisOptions(verify=False)


def rec(**kw: Any) -> HandshakeRecord:
    base: dict[str, Any] = {
        "uid": "Ctest",
        "capture": "t.pcap",
        "ts": T0,
        "ts_end": T0 + 0.05,
        "client_ip": "10.0.0.2",
        "client_port": 40000,
        "server_ip": "10.0.0.1",
        "server_port": 443,
        "syn_count": 1,
        "synack": True,
        "capture_end": T0 + 60,
    }
    base.update(kw)
    return HandshakeRecord(**base)


def hello(**kw: Any) -> dict[str, Any]:
    """Facts of a connection whose ClientHello was seen."""
    d: dict[str, Any] = {
        "sni": "api.example.com",
        "offered_versions": ["TLSv1.2", "TLSv1.3"],
        "offered_ciphers": ["TLS_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
        "ts_client_hello": T0 + 0.001,
        "stage": "client_hello",
        "history": "C",
        "client_hello_segments": 1,
        "client_hello_acked": True,
    }
    d.update(kw)
    return d


def alert(sender: str, desc: str, code: int, level: str = "fatal", dt: float = 0.002) -> AlertInfo:
    return AlertInfo(
        sender=sender,  # type: ignore[arg-type]
        level=level,
        description=desc,
        code=code,
        encrypted=False,
        ts=T0 + dt,
    )


def judge(r: HandshakeRecord) -> tuple[str, str | None, str | None]:
    d = diagnose(r, OPTS)
    if d.outcome == "failed":
        assert d.reason and d.remedy
    return d.outcome, d.failure, d.failure_side


def test_established() -> None:
    r = rec(**hello(version="TLSv1.3", established=True, stage="application_data"))
    assert judge(r) == ("established", None, None)


def test_tcp_refused() -> None:
    r = rec(synack=False, close="rst_server", close_by="server", ts_close=T0 + 0.0002)
    outcome, failure, side = judge(r)
    assert (outcome, failure, side) == ("failed", "tcp_refused", "server")
    assert "RST" in (diagnose(r, OPTS).reason or "")


def test_tcp_no_answer_after_retries() -> None:
    r = rec(synack=False, syn_count=3, close="idle_timeout", ts_end=T0 + 3)
    assert judge(r) == ("failed", "tcp_no_answer", "network")


@pytest.mark.parametrize(
    ("error", "sender", "expected"),
    [
        ("port_unreachable", "10.0.0.1", ("failed", "tcp_refused", "server")),
        ("admin_prohibited", "192.0.2.254", ("failed", "tcp_refused", "network")),
        ("host_unreachable", "192.0.2.254", ("failed", "tcp_no_answer", "network")),
    ],
)
def test_syn_answered_by_icmp(error: str, sender: str, expected: tuple[str, str, str]) -> None:
    r = rec(synack=False, close="capture_end", capture_end=T0 + 0.06, icmp_error=error,
            icmp_from=sender)
    assert judge(r) == expected
    assert sender in (diagnose(r, OPTS).reason or "") or "server's host" in (
        diagnose(r, OPTS).reason or "")


def test_icmp_after_the_synack_is_not_a_refusal() -> None:
    r = rec(synack=True, syn_count=1, close="capture_end", capture_end=T0 + 0.06,
            icmp_error="fragmentation_needed", icmp_from="192.0.2.254")
    assert judge(r)[1] != "tcp_refused"


def test_single_syn_at_capture_end_is_incomplete() -> None:
    r = rec(synack=False, syn_count=1, close="capture_end", capture_end=T0 + 0.06)
    assert judge(r)[0] == "incomplete"


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (403, "HTTP/1.1 403 Forbidden"),
        (407, "HTTP/1.1 407 Proxy Authentication Required"),
        (503, "HTTP/1.1 503 Service Unavailable"),
    ],
)
def test_proxy_error(status: int, line: str) -> None:
    r = rec(
        server_port=3128,
        proxy_target="api.example.com:443",
        proxy_status=status,
        proxy_status_line=line,
        close="fin",
        close_by="server",
    )
    assert judge(r) == ("failed", "proxy_error", "proxy")
    assert str(status) in (diagnose(r, OPTS).reason or "")


def test_plaintext_to_tls_port() -> None:
    r = rec(
        client_first_bytes="GET / HTTP/1.1",
        server_first_bytes="HTTP/1.1 400 Bad Request",
        close="fin",
        close_by="server",
    )
    assert judge(r) == ("not_tls", "not_tls", "server")


def test_tls_to_plaintext_port() -> None:
    r = rec(
        **hello(
            server_first_bytes="HTTP/1.1 400 Bad Request", close="rst_client", close_by="client"
        )
    )
    assert judge(r) == ("failed", "not_tls", "server")


def test_protocol_version_alert() -> None:
    r = rec(
        **hello(
            offered_versions=["TLSv1.0", "TLSv1.1"],
            alerts=[alert("server", "protocol_version", 70)],
            close="fin",
            close_by="server",
        )
    )
    assert judge(r) == ("failed", "version_mismatch", "server")
    assert "TLSv1.0–TLSv1.1" in (diagnose(r, OPTS).reason or "")


def test_internal_error_for_old_only_client_is_a_version_mismatch() -> None:
    # OpenSSL 3 servers answer a TLS 1.1-only client with internal_error.
    r = rec(**hello(offered_versions=["TLSv1.1"], alerts=[alert("server", "internal_error", 80)]))
    assert judge(r) == ("failed", "version_mismatch", "server")


def test_handshake_failure_right_after_hello_is_a_cipher_mismatch() -> None:
    r = rec(**hello(alerts=[alert("server", "handshake_failure", 40)]))
    assert judge(r) == ("failed", "cipher_mismatch", "server")


def test_certificate_expired_alert() -> None:
    r = rec(**hello(version="TLSv1.3", alerts=[alert("client", "certificate_expired", 45)]))
    assert judge(r) == ("failed", "certificate_expired", "client")


def test_unknown_ca_alert() -> None:
    r = rec(**hello(version="TLSv1.3", alerts=[alert("client", "unknown_ca", 48)]))
    assert judge(r) == ("failed", "certificate_untrusted", "client")


def test_unsupported_certificate_is_invalid() -> None:
    r = rec(
        **hello(
            version="TLSv1.2",
            cert_chain_sha256=["00"],
            alerts=[alert("client", "unsupported_certificate", 43)],
        )
    )
    assert judge(r) == ("failed", "certificate_invalid", "client")


def test_unrecognized_name() -> None:
    r = rec(**hello(alerts=[alert("server", "unrecognized_name", 112)]))
    assert judge(r) == ("failed", "sni_mismatch", "server")


def test_certificate_required() -> None:
    r = rec(**hello(version="TLSv1.3", alerts=[alert("server", "certificate_required", 116)]))
    assert judge(r) == ("failed", "client_certificate_required", "server")


def test_handshake_failure_after_empty_client_certificate() -> None:
    r = rec(
        **hello(
            version="TLSv1.2",
            client_certificates=0,
            alerts=[alert("server", "handshake_failure", 40)],
        )
    )
    assert judge(r) == ("failed", "client_certificate_required", "server")


def test_no_application_protocol() -> None:
    r = rec(**hello(alpn_offered=["h3"], alerts=[alert("server", "no_application_protocol", 120)]))
    assert judge(r) == ("failed", "alpn_mismatch", "server")


def test_decode_error_is_a_protocol_error() -> None:
    r = rec(**hello(alerts=[alert("server", "decode_error", 50)]))
    assert judge(r) == ("failed", "protocol_error", "server")


def test_other_fatal_alert() -> None:
    r = rec(**hello(alerts=[alert("server", "export_restriction", 60)]))
    assert judge(r) == ("failed", "other_alert", "server")


def test_tls13_short_encrypted_record_after_server_flight_is_inferred_rejection() -> None:
    r = rec(
        **hello(
            version="TLSv1.3",
            stage="server_hello",
            client_encrypted_after_server_flight=[19],
            close="fin",
            close_by="client",
        )
    )
    d = diagnose(r, OPTS)
    assert (d.outcome, d.failure, d.failure_side, d.inferred) == (
        "failed",
        "certificate_untrusted",
        "client",
        True,
    )
    assert "inferred" in (d.reason or "")


def test_tls13_server_alert_after_client_flight_is_client_certificate_required() -> None:
    r = rec(
        **hello(
            version="TLSv1.3",
            established=True,
            stage="established",
            client_encrypted_after_server_flight=[25, 53],
            server_encrypted_after_client_flight=[19],
            close="fin",
            close_by="server",
        )
    )
    d = diagnose(r, OPTS)
    assert (d.outcome, d.failure, d.failure_side, d.inferred, d.established) == (
        "failed",
        "client_certificate_required",
        "server",
        True,
        True,
    )


def test_forged_reset_after_split_hello_blames_the_network() -> None:
    r = rec(
        **hello(
            client_hello_acked=False,
            client_hello_segments=2,
            close="rst_server",
            close_by="server",
            ts_close=T0 + 0.003,
        )
    )
    d = diagnose(r, OPTS)
    assert (d.failure, d.failure_side) == ("reset_during_handshake", "network")
    assert "2 TCP segments" in (d.reason or "")


def test_reset_by_client() -> None:
    r = rec(**hello(close="rst_client", close_by="client", ts_close=T0 + 0.003))
    assert judge(r) == ("failed", "reset_during_handshake", "client")


def test_server_hello_version_not_offered() -> None:
    r = rec(
        **hello(
            offered_versions=["TLSv1.2"],
            version="TLSv1.0",
            stage="server_hello",
            close="fin",
            close_by="client",
        )
    )
    assert judge(r) == ("failed", "version_mismatch", "client")


def test_hello_acked_never_answered() -> None:
    r = rec(**hello(close="fin", close_by="client", ts_end=T0 + 10))
    assert judge(r) == ("failed", "no_server_response", "server")


def test_hello_never_acked() -> None:
    r = rec(
        **hello(
            client_hello_acked=False,
            client_retransmits=3,
            close="fin",
            close_by="client",
            ts_end=T0 + 10,
        )
    )
    assert judge(r) == ("failed", "no_server_response", "network")


def test_server_closes_mid_handshake() -> None:
    r = rec(**hello(close="fin", close_by="server"))
    assert judge(r) == ("failed", "handshake_aborted", "server")


def test_lost_server_flight_is_the_network() -> None:
    r = rec(
        **hello(
            version="TLSv1.3",
            stage="server_hello",
            anomalies=["server_flight_lost"],
            close="fin",
            close_by="client",
            server_bytes=9000,
        )
    )
    assert judge(r) == ("failed", "handshake_aborted", "network")


def test_capture_cut_mid_handshake_is_incomplete() -> None:
    r = rec(**hello(close="capture_end", ts_end=T0 + 0.05, capture_end=T0 + 0.06))
    d = diagnose(r, OPTS)
    assert (d.outcome, d.failure, d.failure_side) == ("incomplete", None, None)


def test_midstream_without_hello_is_incomplete() -> None:
    r = rec(
        syn_count=0,
        synack=False,
        anomalies=["midstream"],
        client_bytes=500,
        close="fin",
        close_by="client",
    )
    assert judge(r)[0] == "incomplete"


def test_starttls_refused() -> None:
    r = rec(
        server_port=25,
        starttls="smtp",
        server_first_bytes="454 4.7.0 TLS not available",
        close="fin",
        close_by="client",
    )
    assert judge(r) == ("not_tls", None, None)
    assert "454" in (diagnose(r, OPTS).reason or "")


def test_warnings() -> None:
    r = rec(
        **hello(
            sni=None,
            version="TLSv1.0",
            cipher="TLS_RSA_WITH_RC4_128_SHA",
            cert_key="RSA-1024",
            cert_signature_hash="sha1",
            cert_not_after=T0 + 86400,
            established=True,
        )
    )
    d = diagnose(r, OPTS)
    assert set(d.warnings) >= {
        "deprecated_version",
        "weak_cipher",
        "short_rsa_key",
        "sha1_signature",
        "cert_expiring_soon",
        "no_sni",
        "no_forward_secrecy",
    }


def test_established_despite_a_certificate_for_another_name_is_a_warning() -> None:
    facts = hello(sni="www.example.com", version="TLSv1.2",
                  cipher="TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", cert_chain=(b"\x30",),
                  cert_chain_sha256=["00"], cert_sans=["other.example.net"],
                  sni_matches_cert=False, stage="application_data", client_bytes=900)
    ok = diagnose(rec(**facts, established=True), OPTS)
    assert ok.outcome == "established" and "cert_problem_ignored" in ok.warnings
    assert "no_forward_secrecy" not in ok.warnings


def test_cross_connection_names_what_the_server_chose() -> None:
    ok = diagnose(
        rec(
            uid="Cok",
            **hello(
                version="TLSv1.2", cipher="TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", established=True
            ),
        ),
        OPTS,
    )
    bad = diagnose(
        rec(
            uid="Cbad",
            ts=T0 + 1,
            client_port=40001,  # another connection (the same 4-tuple would be port reuse)
            **hello(
                offered_ciphers=["TLS_RSA_WITH_3DES_EDE_CBC_SHA"],
                alerts=[alert("server", "handshake_failure", 40)],
            ),
        ),
        OPTS,
    )
    out = cross_connection([ok, bad])
    assert "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" in (out[1].reason or "")
    assert out[0] == ok


def test_the_alert_names_which_certificate_problem_ended_it() -> None:
    # Expired and for another name: OpenSSL's bad_certificate means the name, not the date.
    facts = hello(
        version="TLSv1.2",
        cert_chain=(b"\x30",),
        cert_chain_sha256=["00"],
        cert_not_after=T0 - 86400,
        sni_matches_cert=False,
        cert_sans=["www.example.com"],
    )
    bad_cert = diagnose(rec(**facts, alerts=[alert("client", "bad_certificate", 42)]), OPTS)
    assert (bad_cert.failure, bad_cert.cert_status) == ("sni_mismatch", "expired")
    assert bad_cert.cert_problems == ["expired", "hostname_mismatch"]
    expired = diagnose(rec(**facts, alerts=[alert("client", "certificate_expired", 45)]), OPTS)
    assert expired.failure == "certificate_expired"


def test_tls13_bad_certificate_takes_the_problem_of_the_same_servers_visible_certificate() -> None:
    visible = diagnose(
        rec(
            uid="Cv",
            **hello(
                sni="legacy.example.com",
                version="TLSv1.2",
                cert_chain=(b"\x30",),
                cert_chain_sha256=["00"],
                sni_matches_cert=False,
                alerts=[alert("client", "bad_certificate", 42)],
            ),
        ),
        OPTS,
    )
    hidden = diagnose(
        rec(
            uid="Ch",
            ts=T0 + 1,
            **hello(
                sni="legacy.example.com",
                version="TLSv1.3",
                alerts=[alert("client", "bad_certificate", 42)],
            ),
        ),
        OPTS,
    )
    # Alone: OpenSSL's most common reason for it, the host name, inferred.
    assert hidden.failure == "sni_mismatch" and hidden.inferred
    assert "legacy.example.com" in (hidden.reason or "")
    out = cross_connection([visible, hidden])
    assert out[1].failure == "sni_mismatch"
    assert "Cv" in (out[1].reason or "")


def test_server_rejecting_the_client_certificate_it_was_sent() -> None:
    r = rec(**hello(version="TLSv1.2", stage="client_finished", client_certificates=1,
                    alerts=[alert("server", "unknown_ca", 48, dt=0.01)]))
    assert judge(r) == ("failed", "client_certificate_required", "server")
    assert "does not trust the issuer" in (diagnose(r, OPTS).reason or "")


def test_no_rsa_signature_algorithm_is_named() -> None:
    r = rec(**hello(offered_versions=["TLSv1.3"], offered_ciphers=["TLS_AES_128_GCM_SHA256"],
                    offered_sigalgs=["ecdsa_secp256r1_sha256", "ed25519"],
                    alerts=[alert("server", "handshake_failure", 40)]))
    d = diagnose(r, OPTS)
    assert (d.failure, d.failure_side) == ("cipher_mismatch", "server")
    assert "none for RSA keys" in (d.reason or "")
    assert "-sigalgs ecdsa_secp256r1_sha256:ed25519" in (d.remedy or "")


def test_proxy_closing_the_tunnel_before_the_hello_is_not_a_forged_reset() -> None:
    r = rec(**hello(sni="www.example.com", client_hello_acked=False), server_port=3128,
            proxy_target="www.example.com:8443", proxy_status=200,
            proxy_status_line="HTTP/1.1 200 Connection established", close="rst_server",
            close_by="server", ts_close=T0 + 0.0009)
    assert judge(r) == ("failed", "proxy_error", "proxy")


@pytest.mark.parametrize(
    ("banner", "hint"),
    [
        ("SSH-2.0-OpenSSH_9.2p1", "SSH server"),
        ("220 mail.example.com ESMTP", "-starttls smtp"),
        ("* OK IMAP4rev1 ready", "-starttls imap"),
        ("HTTP/1.1 400 Bad Request", "http://"),
    ],
)
def test_plaintext_answer_remedy_follows_the_banner(banner: str, hint: str) -> None:
    r = rec(**hello(server_first_bytes=banner, close="fin", close_by="server"))
    d = diagnose(r, OPTS)
    assert (d.failure, d.failure_side) == ("not_tls", "server")
    assert hint in (d.remedy or "")


def test_plaintext_banner_the_client_hangs_up_on_is_ended_by_the_client() -> None:
    # SPEC §4 not_tls: the side that ended it (curl resets after an SSH banner).
    r = rec(**hello(server_first_bytes="SSH-2.0-OpenSSH_9.2p1", close="rst_client",
                    close_by="client"))
    assert judge(r) == ("failed", "not_tls", "client")


@pytest.mark.parametrize(
    ("proto", "port", "answer", "fix"),
    [
        ("smtp", 25, "454 4.7.0 TLS not available", "Postfix"),
        ("imap", 143, "A002 NO TLS is disabled", "Dovecot"),
        ("postgres", 5432, "N", "postgresql.conf: ssl = on"),
    ],
)
def test_starttls_refused_remedy_is_for_the_protocol(
    proto: str, port: int, answer: str, fix: str
) -> None:
    r = rec(server_port=port, starttls=proto, server_first_bytes=answer, close="fin",
            close_by="client")
    d = diagnose(r, OPTS)
    assert d.outcome == "not_tls" and fix in (d.remedy or "")
    assert f"-starttls {proto}" in (d.remedy or "") and repr(answer) in (d.reason or "")


def test_unacknowledged_hello_over_several_segments_points_at_size() -> None:
    r = rec(**hello(client_hello_acked=False, client_hello_segments=2, client_retransmits=5,
                    close="capture_end", ts_end=T0 + 3.2, capture_end=T0 + 6.5))
    d = diagnose(r, OPTS)
    assert (d.failure, d.failure_side) == ("no_server_response", "network")
    assert "MTU black hole" in (d.reason or "") and "-groups X25519" in (d.remedy or "")


def test_tls12_client_leaving_with_only_a_fin_takes_the_certificate_problem() -> None:
    # wget checks the name after the handshake and closes without an alert or data.
    r = rec(**hello(sni="www.example.com", version="TLSv1.2", established=True,
                    stage="established", cert_chain=(b"\x30",), cert_chain_sha256=["00"],
                    cert_sans=["other.example.net"], sni_matches_cert=False, close="fin",
                    close_by="client"))
    assert judge(r) == ("failed", "sni_mismatch", "client")
    # A chain the analysis cannot verify (a private CA) is no reason on its own.
    private = replace(r, sni_matches_cert=True, cert_sans=["www.example.com"])
    facts = Facts(cert_status="untrusted", cert_problems=["untrusted"], alert=None)
    assert rule_established(private, facts) == Verdict(outcome="established")


@pytest.mark.parametrize(
    ("fin_after", "expected"),
    [(0.028, ("failed", "handshake_aborted", "client")),
     (2.0, ("failed", "no_server_response", "server"))],
)
def test_client_closing_before_the_server_answered(
    fin_after: float, expected: tuple[str, str, str]
) -> None:
    ch, sh = 0.003, fin_after + 0.5
    r = rec(**hello(version="TLSv1.3", stage="server_hello", ts_client_hello=T0 + ch,
                    ts_server_hello=T0 + sh, close="rst_client", close_by="client",
                    ts_close=T0 + sh, ts_client_fin=T0 + ch + fin_after,
                    timeline=[TimelineEntry(t=ch, sender="client", what="ClientHello"),
                              TimelineEntry(t=ch + fin_after, sender="client", what="FIN"),
                              TimelineEntry(t=sh, sender="server", what="ServerHello")]))
    assert judge(r) == expected


def test_a_client_leaving_without_data_is_judged_whatever_the_server_sent_after() -> None:
    # wget checks the host name after a TLS 1.2 handshake and leaves (FIN); the server's
    # answer to that close is data, but not the client's: the wrong name explains it.
    facts = hello(version="TLSv1.2", cipher="TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                  established=True, stage="application_data", close_by="client",
                  ts_close=T0 + 0.01, cert_chain_sha256=["00"], cert_sans=["www.example.com"],
                  sni_matches_cert=False)
    wrong_name = Facts(cert_status="hostname_mismatch", cert_problems=["hostname_mismatch"],
                       alert=None)
    v = rule_established(rec(**facts), wrong_name)
    assert v is not None and (v.outcome, v.failure, v.side) == ("failed", "sni_mismatch", "client")
    assert rule_established(rec(**facts, client_data=True), wrong_name) == Verdict(
        outcome="established")


def test_a_client_closing_at_a_certificate_request_lacks_a_client_certificate() -> None:
    # A browser with no client certificate closes when asked for one, and tries again.
    r = rec(**hello(version="TLSv1.3", stage="server_done", close_by="client",
                    ts_close=T0 + 0.01, client_cert_requested=True, decrypted=["server"],
                    cert_chain_sha256=["00"], sni_matches_cert=True,
                    cert_sans=["api.example.com"]))
    assert judge(r) == ("failed", "client_certificate_required", "client")
    assert judge(replace(r, client_cert_requested=False))[1] != "client_certificate_required"


def test_a_dtls_final_flight_never_answered_after_a_certificate_request() -> None:
    # gnutls-serv refuses a missing client certificate with no alert: the client's
    # Certificate and Finished are resent into silence.
    r = rec(**hello(version="DTLSv1.2", offered_versions=["DTLSv1.2"], stage="client_finished",
                    history="CsxkrnGCi", client_cert_requested=True, client_certificates=0),
            transport="dtls", client_port=40000, server_port=4433, client_retransmits=3,
            client_bytes=1200, server_bytes=1500, close="capture_end",
            ts_end=T0 + 7.5, capture_end=T0 + 7.6, syn_count=0, synack=False)
    assert judge(r) == ("failed", "client_certificate_required", "server")
    assert judge(replace(r, client_cert_requested=False)) == (
        "failed", "no_server_response", "server")


def _chose_and_refused() -> tuple[HandshakeRecord, HandshakeRecord]:
    ok = diagnose(rec(uid="Cok", **hello(
        version="TLSv1.2", cipher="TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", established=True)),
        OPTS)
    bad = diagnose(rec(uid="Cbad", ts=T0 + 1, client_port=40001, **hello(
        offered_ciphers=["TLS_RSA_WITH_3DES_EDE_CBC_SHA"],
        alerts=[alert("server", "handshake_failure", 40)])), OPTS)
    return ok, bad


def _live(records: list[HandshakeRecord]) -> list[HandshakeRecord]:
    evidence = Evidence(live=True)
    out = []
    for r in records:
        evidence.add(r)
        out.append(evidence.sharpen(r))
    return out


def test_live_evidence_uses_the_records_given_before() -> None:
    ok, bad = _chose_and_refused()
    assert _live([ok, bad]) == cross_connection([ok, bad])
    assert _live([bad, ok])[0] == bad  # nothing was known yet when it was given


def test_live_evidence_forgets_the_servers_seen_least_recently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cross, "LIVE_EVIDENCE_SERVERS", 3)
    ok, bad = _chose_and_refused()
    others = [diagnose(rec(uid=f"Co{i}", server_ip=f"10.0.1.{i}", **hello(
        version="TLSv1.2", cipher="TLS_AES_128_GCM_SHA256", established=True)), OPTS)
        for i in range(3)]
    assert _live([ok, *others, bad])[-1] == bad  # its server was forgotten
    assert _live([*others, ok, bad])[-1] != bad


def test_live_evidence_keeps_no_four_tuples() -> None:
    ok, _ = _chose_and_refused()
    again = replace(ok, uid="Cagain", ts=T0 + 5)  # the same 4-tuple reused
    assert "frame.time" in (cross_connection([ok, again])[0].wireshark_filter or "")
    assert _live([ok, again]) == [ok, again]

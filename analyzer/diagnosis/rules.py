"""The diagnosis rules: an ordered table over finished records (SPEC §4).

How to read it: :data:`RULES` is tried top to bottom; the first rule that returns a
:class:`Verdict` decides ``outcome``, ``failure``, ``failure_side``, ``reason``,
``remedy`` and ``inferred``. Rules read only the record (facts) and the certificate status
computed from it; they never reach back into parser state. Each reason cites at least two
facts from the wire; each remedy says what to change and the command that confirms it,
filled in with this connection's host, port and server name.

Order matters: definitive evidence first (TCP refusal, proxy status, plaintext where TLS
was expected, a plaintext alert), then heuristics over encrypted records and closes, then
the capture-quality rule that blames nobody (``incomplete``), then who gave up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from analyzer.anomalies import Anomaly
from analyzer.diagnosis import remedies as rm
from analyzer.diagnosis.warnings import MIN_RSA_BITS, PLAIN_PROBLEMS, WEAK_HASHES, short_rsa_bits
from analyzer.limits import INCOMPLETE_GRACE
from analyzer.record import AlertInfo, HandshakeRecord

ALERT_SIZED = 24
VERSION_RANK = {"SSLv2": 0, "SSLv3": 1, "TLSv1.0": 2, "TLSv1.1": 3, "TLSv1.2": 4, "TLSv1.3": 5}
OLD_VERSIONS_MAX = 3
"""Clients whose best offer ranks at most TLSv1.1 meet servers that require TLS 1.2+."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    outcome: str
    failure: str | None = None
    side: str | None = None
    reason: str | None = None
    remedy: str | None = None
    inferred: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Facts:
    """What the rules need besides the record: derived once per record."""

    cert_status: str | None
    cert_problems: list[str]
    """Every problem the certificate shows (``cert_status`` is the first)."""
    alert: AlertInfo | None
    """The plaintext alert that ended the handshake (first fatal, else the last one)."""


Rule = Callable[[HandshakeRecord, Facts], Verdict | None]


# --------------------------------------------------------------------------- wording


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.0f} s"


def when(epoch: float | None) -> str:
    if epoch is None:
        return "?"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def rank(version: str) -> int:
    if version in VERSION_RANK:
        return VERSION_RANK[version]
    return 5 if version.startswith(("0x7f", "0x7e")) else -1


def versions_text(versions: list[str]) -> str:
    if not versions:
        return "no version"
    ordered = sorted(versions, key=rank)
    return ordered[0] if len(ordered) == 1 else f"{ordered[0]}–{ordered[-1]}"


def server(r: HandshakeRecord) -> str:
    name = f" ({r.sni})" if r.sni else ""
    return f"{rm.target(r)}{name}"


def alert_text(a: AlertInfo) -> str:
    return f"{a.sender} sent {a.level or ''} {a.description}".replace("  ", " ")


def after_ch(r: HandshakeRecord, ts: float | None) -> str:
    if r.ts_client_hello is None or ts is None:
        return ""
    return f" {ms(ts - r.ts_client_hello)} after the ClientHello"


def offered_ciphers_text(r: HandshakeRecord, limit: int = 4) -> str:
    shown = [c for c in r.offered_ciphers if "SCSV" not in c]
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    count = f"{len(shown)} cipher suite{'s' if len(shown) != 1 else ''}"
    return f"{count} ({', '.join(shown[:limit])}{more})" if shown else "no cipher suites"


EVICTED = str(Anomaly.FLOW_TABLE_LIMIT)

ENDED = {
    "fin": "the connection was closed",
    "rst_client": "the client reset the connection",
    "rst_server": "the server reset the connection",
    "idle_timeout": "the connection went idle",
    "capture_end": "the capture ended",
}


def ended(r: HandshakeRecord) -> str:
    """How the observation of the connection ended, in words."""
    if EVICTED in r.anomalies:
        return "the analyzer's connection table was full (flow_table_limit)"
    return ENDED.get(r.close, r.close)


def captured_to_end(r: HandshakeRecord) -> bool:
    """The capture ended while this connection was still going, within the grace time,
    with nobody having given up (SPEC §4 ``incomplete``). A connection the analyzer let go
    of because its table was full counts as cut by the capture at that moment."""
    return (
        (r.close == "capture_end" or EVICTED in r.anomalies)
        and r.capture_end is not None
        and r.capture_end - r.ts_end < INCOMPLETE_GRACE
        and r.client_retransmits == 0
    )


# --------------------------------------------------------------------------- rules


def client_sent_data(r: HandshakeRecord) -> bool:
    """Whether the client sent application data after the handshake. TLS 1.3: a record
    longer than an alert after the one that completed the handshake (its Finished)."""
    if r.version == "TLSv1.3":
        return any(size > ALERT_SIZED for size in r.client_encrypted_after_server_flight[1:])
    return r.stage == "application_data"


def rule_established(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if not r.established:
        return None
    if not r.offered_versions and "midstream" in r.anomalies:
        return Verdict(
            outcome="incomplete",
            reason=(
                "the capture started after this connection's ClientHello; the rest of the "
                "handshake completed"
            ),
        )
    srv = r.server_encrypted_after_client_flight
    if r.version == "TLSv1.3" and srv and all(size <= ALERT_SIZED for size in srv):
        # The server answered the client's flight with an alert-sized record and nothing
        # else (a successful server sends tickets or data first). Who closed first is a
        # race and proves nothing.
        what = (
            "an empty client Certificate"
            if r.client_certificates == 0
            else "the client's encrypted flight"
        )
        return Verdict(
            outcome="failed",
            failure="client_certificate_required",
            side="server",
            inferred=True,
            reason=(
                f"TLS 1.3 with {server(r)}: right after {what} the server sent a "
                f"{srv[0]}-byte encrypted record (alert-sized) and nothing else before the "
                "connection closed; "
                "inferred: the server requires a client certificate or rejected the one sent"
            ),
            remedy=(
                "Configure the client with a certificate and key the server accepts; "
                f"confirm: {rm.s_client(r, '-cert', 'client.pem', '-key', 'client.key')}"
            ),
        )
    # A client alert, or only a FIN (wget) when the problem does not depend on the trust
    # store this analysis used (a private CA's probes leave like that too).
    client_left = any(a.sender == "client" for a in r.alerts) or (
        r.close_by == "client" and f.cert_status in PLAIN_PROBLEMS
    )
    if client_left and not client_sent_data(r) and r.cert_chain_sha256:
        # The client finished the handshake and left (an alert, or only a FIN like wget)
        # without a word of data, and the certificate it saw (TLS <= 1.2) gives the
        # visible reason. Under TLS 1.3 the same
        # pattern is usually a probe with nothing to send: without a visible reason the
        # handshake stays established (SPEC §3 outcome).
        cert = certificate_verdict(r, f.cert_status, inferred=True, after_handshake=True)
        if cert is not None:
            return cert
    return Verdict(outcome="established")


_ICMP_REFUSALS = frozenset({"port_unreachable", "admin_prohibited", "protocol_unreachable"})
_ICMP_NO_PATH = frozenset(
    {"net_unreachable", "host_unreachable", "source_route_failed", "beyond_scope", "unreachable"}
)


def rule_icmp_unreachable(r: HandshakeRecord, f: Facts) -> Verdict | None:
    """A SYN answered by an ICMP destination-unreachable error instead of a SYN-ACK."""
    if r.icmp_error is None or r.synack or r.syn_count == 0:
        return None
    what = f"ICMP {r.icmp_error.replace('_', ' ')}"
    own = r.icmp_from == r.server_ip
    by = "the server's host" if own else f"{r.icmp_from}, a router or firewall on the path"
    port = r.server_port
    if r.icmp_error in _ICMP_REFUSALS:
        cause = (
            f"nothing listens on port {port}, or a host firewall rejects it (iptables REJECT "
            "answers this way by default)"
            if own and r.icmp_error == "port_unreachable"
            else "a firewall rejects the connection"
        )
        check = (
            f"Check that the service listens on port {port} (on the server: ss -ltnp "
            f"'sport = :{port}') and the server's REJECT rules (iptables -L -n -v)"
            if own
            else f"Check the REJECT rules of the router or firewall {r.icmp_from} for "
            f"{r.server_ip} port {port} (iptables -L FORWARD -n -v)"
        )
        return Verdict(
            outcome="failed",
            failure="tcp_refused",
            side="server" if own else "network",
            reason=(
                f"the SYN to {rm.target(r)} was answered by {what} from {by} "
                f"({r.syn_count} SYN sent): {cause}"
            ),
            remedy=f"{check}; confirm: nc -vz {r.server_ip} {port}",
        )
    if r.icmp_error in _ICMP_NO_PATH:
        return Verdict(
            outcome="failed",
            failure="tcp_no_answer",
            side="network",
            reason=(
                f"the SYN to {rm.target(r)} got no SYN-ACK but {what} from {by}: the host is "
                "down or cannot be reached (no route, or no ARP/neighbour answer), or a "
                "firewall rejects with this error (a firewall can forge it)"
            ),
            remedy=(
                f"Check that {r.server_ip} is up and routed from the client (ip route get "
                f"{r.server_ip}); confirm: nc -vz -w 5 {r.server_ip} {port}"
            ),
        )
    return None


def rule_tcp_refused(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if r.syn_count == 0 or r.synack or r.close != "rst_server":
        return None
    delay = (r.ts_close - r.ts) if r.ts_close is not None else None
    return Verdict(
        outcome="failed",
        failure="tcp_refused",
        side="server",
        reason=(
            f"the SYN to {rm.target(r)} was answered by a RST after {ms(delay)} "
            f"({r.syn_count} SYN sent): nothing listens on port {r.server_port}, or a "
            "firewall rejects the connection (a firewall can forge this RST)"
        ),
        remedy=(
            f"Check that the service listens on port {r.server_port} (on the server: "
            f"ss -ltnp 'sport = :{r.server_port}') and that no firewall rejects it; "
            f"confirm: nc -vz {r.server_ip} {r.server_port}"
        ),
    )


def rule_tcp_no_answer(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if r.syn_count == 0 or r.synack or r.close.startswith("rst"):
        return None
    if r.syn_count == 1 and captured_to_end(r):
        return Verdict(outcome="incomplete", reason="the capture ended while the SYN was pending")
    return Verdict(
        outcome="failed",
        failure="tcp_no_answer",
        side="network",
        reason=(
            f"{r.syn_count} SYN(s) to {rm.target(r)} over {ms(r.ts_end - r.ts)} got no "
            "SYN-ACK: a firewall drops the traffic, or the host is down or unreachable"
        ),
        remedy=(
            "Check firewall rules and security groups on the path to the server, and that "
            f"the host is up; confirm: nc -vz -w 5 {r.server_ip} {r.server_port}"
        ),
    )


_PROXY_MEANING = {
    403: "the proxy's access rules deny this destination",
    407: "the proxy requires authentication",
    502: "the proxy could not reach the destination",
    503: "the proxy could not reach the destination",
    504: "the proxy timed out reaching the destination",
}


def _proxy_remedy(r: HandshakeRecord, status: int | None) -> str:
    probe = rm.curl(r)
    if status == 407:
        return (
            "Give the client proxy credentials (curl: -x http://USER:PASS@PROXY:PORT, or "
            f"--proxy-user); confirm: {probe}"
        )
    if status == 403:
        return (
            f"Allow CONNECT to {r.proxy_target} in the proxy's rules (squid: http_access "
            f"allow for this destination and its port in SSL_ports); confirm: {probe}"
        )
    return (
        f"Check that {r.proxy_target} is reachable from the proxy host (DNS, routes, a "
        f"service listening); confirm: {probe}"
    )


def rule_proxy_status(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if r.proxy_target is None or r.sni is not None:
        return None
    status = r.proxy_status
    if status is not None and 200 <= status < 300:
        return None
    if status is None:
        if r.close_by != "server" and not r.close.startswith("rst"):
            return None
        line = "closed the connection without answering"
    else:
        line = f"answered {r.proxy_status_line!r}"
    meaning = _PROXY_MEANING.get(status or 0, "the tunnel was not opened")
    return Verdict(
        outcome="failed",
        failure="proxy_error",
        side="proxy",
        reason=(
            f"the proxy {r.server_ip}:{r.server_port} {line} to CONNECT {r.proxy_target}: "
            f"{meaning}; no TLS was attempted"
        ),
        remedy=_proxy_remedy(r, status),
    )


def rule_client_not_tls(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if r.client_first_bytes is None or r.offered_versions:
        return None
    answer = f"; the server answered {r.server_first_bytes!r}" if r.server_first_bytes else ""
    expected = r.proxy_target is None
    return Verdict(
        outcome="not_tls",
        failure="not_tls" if expected else None,
        side=("server" if r.server_first_bytes else r.close_by or "client") if expected else None,
        reason=(
            f"the client sent {r.client_first_bytes!r} to {rm.target(r)}, which expects TLS{answer}"
        ),
        remedy=(
            f"Use https:// (TLS) for port {r.server_port}, or send plaintext to the "
            f"plaintext port; confirm: {rm.curl(r)}"
        ),
    )


def rule_starttls_refused(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if r.starttls is None or r.offered_versions:
        return None
    if captured_to_end(r):
        return None
    reply = r.server_first_bytes or "nothing"
    # The server did not offer TLS here, so it did not expect it: no failure category
    # (SPEC §3 outcome not_tls), but the reason and remedy say what to change.
    return Verdict(
        outcome="not_tls",
        reason=(
            f"the client asked {rm.target(r)} to start TLS ({r.starttls} STARTTLS) and "
            f"the server answered {reply!r}; no ClientHello followed: the server does not "
            "offer TLS on this port"
        ),
        remedy=(
            f"{_STARTTLS_FIX.get(r.starttls, 'Enable TLS on the server for this protocol')}; "
            f"confirm: {rm.s_client(r)}"
        ),
    )


_STARTTLS_FIX = {
    "smtp": "Enable STARTTLS on the mail server (Postfix: smtpd_tls_security_level = may, "
    "with smtpd_tls_cert_file/smtpd_tls_key_file)",
    "imap": "Enable TLS on the IMAP server (Dovecot: ssl = yes, with ssl_cert and ssl_key)",
    "pop3": "Enable TLS on the POP3 server (Dovecot: ssl = yes, with ssl_cert and ssl_key)",
    "ftp": "Enable explicit TLS on the FTP server (vsftpd: ssl_enable=YES; ProFTPD: TLSEngine "
    "on)",
    "xmpp": "Enable STARTTLS on the XMPP server (give it a certificate and key)",
    "irc": "Enable STARTTLS on the IRC server (give it a certificate and key)",
    "ldap": "Enable StartTLS on the LDAP server (OpenLDAP: olcTLSCertificateFile and "
    "olcTLSCertificateKeyFile)",
    "postgres": "Enable SSL on the PostgreSQL server (postgresql.conf: ssl = on, with "
    "ssl_cert_file and ssl_key_file)",
}
"""What turns TLS on, per STARTTLS protocol, for the common servers."""


def rule_server_not_tls(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if r.server_first_bytes is None or not r.offered_versions or r.starttls or r.version:
        return None
    # SPEC §4: the side that ended it. An HTTP server answers the hello with an error
    # and its close (whoever's packet comes first); a service that greets first (SSH,
    # SMTP) leaves it to the client to hang up.
    greeted = not r.server_first_bytes.startswith("HTTP/") and r.close_by == "client"
    return Verdict(
        outcome="failed",
        failure="not_tls",
        side="client" if greeted else "server",
        reason=(
            f"the client sent a TLS ClientHello to {server(r)} and the server answered "
            f"{r.server_first_bytes!r}: that port speaks plaintext, not TLS"
            + ("; the client hung up" if greeted else "")
        ),
        remedy=_plaintext_remedy(r, r.server_first_bytes),
    )


_STARTTLS_BANNERS = (
    ("+OK", "pop3", "POP3", "995"),
    ("* OK", "imap", "IMAP", "993"),
)


def _plaintext_remedy(r: HandshakeRecord, banner: str) -> str:
    """What to do about a plaintext service where TLS was expected, by its first words."""
    port = r.server_port
    if banner.startswith("HTTP/"):
        return (
            f"Point the client at the server's TLS port, or use http:// for port {port}; "
            f"confirm: curl -v http://{rm.target(r)}/"
        )
    probe = f"nc -w 3 {r.server_ip} {port} </dev/null | head -1"
    if banner.startswith("SSH-"):
        return (
            f"Port {port} is served by an SSH server (or a port multiplexer sending SSH): "
            f"point the client at the TLS service's port; confirm: {probe}"
        )
    if banner.startswith("220") and "FTP" in banner.upper():
        return (
            "The server speaks plaintext FTP here: use explicit TLS (AUTH TLS) or the "
            f"implicit-TLS port; confirm: openssl s_client -starttls ftp -connect "
            f"{rm.target(r)} </dev/null"
        )
    if banner.startswith("220"):
        return (
            "The server speaks plaintext SMTP here: use STARTTLS on this port, or enable "
            "implicit TLS on it (Postfix: smtpd_tls_wrappermode=yes, usually on 465); "
            f"confirm: openssl s_client -starttls smtp -connect {rm.target(r)} </dev/null"
        )
    for prefix, proto, name, tls_port in _STARTTLS_BANNERS:
        if banner.startswith(prefix):
            return (
                f"The server speaks plaintext {name} here: use STARTTLS, or the implicit-TLS "
                f"port ({tls_port}); confirm: openssl s_client -starttls {proto} -connect "
                f"{rm.target(r)} </dev/null"
            )
    return f"Point the client at the server's TLS port; see what answers here: {probe}"


def certificate_verdict(
    r: HandshakeRecord,
    status: str | None,
    *,
    inferred: bool,
    alert: AlertInfo | None = None,
    after_handshake: bool = False,
) -> Verdict | None:
    """A certificate failure named from the certificate's own status, when it is bad."""
    if status in (None, "ok"):
        return None
    said = f"; the {alert_text(alert)}" if alert is not None else ""
    then = " after the handshake, before sending data" if after_handshake else ""
    closing = f"; the client closed{then}" if alert is None or after_handshake else ""
    leaf = f"the certificate of {server(r)} (subject {r.cert_subject}, issuer {r.cert_issuer})"
    if status in ("expired", "not_yet_valid"):
        word = "expired on" if status == "expired" else "is not valid before"
        date = r.cert_not_after if status == "expired" else r.cert_not_before
        return Verdict(
            outcome="failed",
            failure="certificate_expired",
            side="client",
            inferred=inferred,
            reason=(
                f"{leaf} {word} {when(date)}, and the connection was made on "
                f"{when(r.ts)}{said}{closing}"
            ),
            remedy=(
                "Renew or reinstall the server's certificate (and check the clocks of "
                f"client and server); confirm the dates: {rm.show_certs(r)}"
            ),
        )
    if status == "hostname_mismatch":
        return Verdict(
            outcome="failed",
            failure="sni_mismatch",
            side="client",
            inferred=inferred,
            reason=(
                f"the client asked for {r.sni!r} but {leaf} covers "
                f"{', '.join(r.cert_sans) or 'no DNS name'}{said}{closing}"
            ),
            remedy=(
                f"Serve a certificate whose SANs include {r.sni} (or connect with a name the "
                f"certificate covers); confirm: {rm.curl(r)}"
            ),
        )
    detail = {
        "self_signed": "is self-signed",
        "incomplete_chain": (
            f"was sent without the intermediate that issued it ({r.cert_issuer}): the "
            "chain is incomplete"
        ),
        "untrusted": f"chains to an issuer the client does not trust ({r.cert_issuer})",
    }[status]
    if status == "untrusted" and any(
        h in (r.cert_issuer or "").lower() for h in ("proxy", "inspection", "intercept")
    ):
        detail += ", which looks like a TLS-inspecting proxy"
    fix = {
        "self_signed": "Install a certificate issued by a CA the clients trust, or add this "
        "certificate to the clients' trust store",
        "incomplete_chain": "Configure the server to send the full chain (nginx: "
        "ssl_certificate with the leaf followed by the intermediates)",
        "untrusted": "Add the issuing CA to the clients' trust store (for an inspecting "
        "proxy: its CA), or use a certificate from a CA the clients trust",
    }[status]
    return Verdict(
        outcome="failed",
        failure="certificate_untrusted",
        side="client",
        inferred=inferred,
        reason=f"{leaf} {detail}{said}{closing}",
        remedy=f"{fix}; confirm: {rm.show_certs(r)}",
    )


_ALERT_NAMES_PROBLEMS = {
    "certificate_expired": ("expired", "not_yet_valid"),
    # OpenSSL's bad_certificate: not yet valid, host name mismatch (checked in the
    # handshake), key or digest too weak.
    "bad_certificate": ("not_yet_valid", "hostname_mismatch"),
    "unknown_ca": ("self_signed", "incomplete_chain", "untrusted"),
}
"""The certificate problems each client alert stands for, most likely first."""


def status_for_alert(desc: str | None, problems: list[str]) -> str | None:
    """Of the certificate's problems, the one the client's alert names (None if none)."""
    for problem in _ALERT_NAMES_PROBLEMS.get(desc or "", ()):
        if problem in problems:
            return problem
    return None


_PROTOCOL_ERRORS = {
    "decode_error",
    "illegal_parameter",
    "unexpected_message",
    "record_overflow",
    "decompression_failure",
    "bad_record_mac",
    "decryption_failed",
    "missing_extension",
    "unsupported_extension",
}
_CERT_ALERTS = {
    "bad_certificate",
    "unsupported_certificate",
    "certificate_revoked",
    "certificate_expired",
    "certificate_unknown",
    "unknown_ca",
    "decrypt_error",
    "access_denied",
}


_BOTH_KEYS_GCM = (
    {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"},
    {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"},
)


def broad_tls12_offer(r: HandshakeRecord) -> bool:
    """A ClientHello that any server with TLS 1.2 enabled can accept: ECDHE with AES-GCM
    for RSA and for ECDSA certificates, over a group everyone has (or no groups list)."""
    ciphers = set(r.offered_ciphers)
    groups = set(r.offered_groups)
    return all(ciphers & suites for suites in _BOTH_KEYS_GCM) and (
        not groups or bool(groups & {"x25519", "secp256r1"})
    )


def version_remedy(r: HandshakeRecord) -> str:
    """What to change, on which side, for the versions this client offered."""
    ranks = [rank(v) for v in r.offered_versions if rank(v) >= 0]
    best, low = max(ranks, default=-1), min(ranks, default=-1)
    check: tuple[str, ...] = ("-tls1_2",)
    if best <= OLD_VERSIONS_MAX:
        advice = (
            "Enable TLS 1.2 or 1.3 on the client (or, if old clients must be served, allow "
            "their version on the server, e.g. nginx ssl_protocols)"
        )
    elif low >= VERSION_RANK["TLSv1.3"]:
        advice = (
            "The client offers only TLS 1.3, which the server lacks: enable TLS 1.3 on the "
            "server (e.g. nginx ssl_protocols TLSv1.2 TLSv1.3), or allow TLS 1.2 on the client"
        )
    elif best == VERSION_RANK["TLSv1.2"]:
        advice = (
            "The server wants TLS 1.3, which the client does not offer: enable TLS 1.3 on "
            "the client, or allow TLS 1.2 on the server (e.g. nginx ssl_protocols TLSv1.2 "
            "TLSv1.3)"
        )
        check = ("-tls1_3",)
    else:
        advice = (
            "The server accepts neither TLS 1.2 nor 1.3: upgrade its TLS configuration (or, "
            "only if it cannot be, allow its old version on the client)"
        )
        check = ("-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
    return (
        f"{advice}; reproduce: {rm.reproduce_version(r)}; then check what the server "
        f"accepts: {rm.s_client(r, *check)}"
    )


_COMMON_GROUPS = frozenset({"x25519", "secp256r1"})


def _groups_text(r: HandshakeRecord, limit: int = 6) -> str:
    groups = r.offered_groups or r.key_share_groups
    if not groups:
        return "no groups"
    shown = [g + (" (key share)" if g in r.key_share_groups else "") for g in groups[:limit]]
    more = f" and {len(groups) - limit} more" if len(groups) > limit else ""
    return f"groups {', '.join(shown)}{more}"


def cipher_verdict(r: HandshakeRecord, a: AlertInfo) -> Verdict:
    """No common cipher suite, group or signature algorithm: ``a`` refused the hello.
    Names the signature algorithms or groups when the client's offer lacks the usual
    ones, and reproduces the offer with them."""
    sigalgs = r.offered_sigalgs
    lacks: list[str] = []
    fixes: list[str] = []
    more: list[str] = []
    no_rsa = sigalgs and not any(s.startswith("rsa_") for s in sigalgs)
    no_ec = sigalgs and not any(s.startswith(("ecdsa_", "ed25519", "ed448")) for s in sigalgs)
    if no_rsa or no_ec:
        key = "RSA" if no_rsa else "ECDSA"
        lacks.append(
            f"its signature algorithms ({', '.join(sigalgs[:4])}"
            f"{' and more' if len(sigalgs) > 4 else ''}) include none for {key} keys"
        )
        fixes.append(
            f"offer a signature algorithm for the server's key ({key} certificates need "
            f"{'rsa_pss_rsae_* or rsa_pkcs1_*' if no_rsa else 'ecdsa_*'}), or give the server "
            "a certificate of the other key type"
        )
        if names := rm.openssl_sigalgs(sigalgs):
            more += ["-sigalgs", ":".join(names)]
    groups = r.offered_groups or r.key_share_groups
    if groups and not set(groups) & _COMMON_GROUPS:
        lacks.append("none of its groups is x25519 or secp256r1, which most servers have")
        fixes.append("offer a group both sides support (x25519 or P-256)")
        if names := rm.openssl_groups(groups):
            more += ["-groups", ":".join(names)]
    why = "; ".join(lacks) if lacks else "no common cipher suite, group or signature algorithm"
    tls13_only = min((rank(v) for v in r.offered_versions), default=-1) >= VERSION_RANK["TLSv1.3"]
    fix = "; ".join(fixes) or (
        "enable a TLS 1.3 cipher suite both sides support (TLS_AES_128_GCM_SHA256 is the one "
        "every TLS 1.3 stack must have; OpenSSL -ciphersuites, nginx ssl_conf_command "
        "Ciphersuites)"
        if tls13_only
        else "enable a cipher suite both sides support (e.g. ECDHE with AES-GCM; nginx "
        "ssl_ciphers)"
    )
    return Verdict(
        outcome="failed",
        failure="cipher_mismatch",
        side=a.sender,
        reason=(
            f"the client offered {offered_ciphers_text(r)} with {_groups_text(r)} and "
            f"{versions_text(r.offered_versions)}; the {alert_text(a)}{after_ch(r, a.ts)} "
            f"with no ServerHello: {why}"
        ),
        remedy=(
            f"{fix[0].upper()}{fix[1:]}; reproduce: {rm.reproduce_ciphers(r, *more)}; then "
            f"compare with OpenSSL's default offer: {rm.s_client(r)}"
        ),
    )


def weak_key_detail(r: HandshakeRecord) -> str | None:
    """What OpenSSL's default security level refuses in this leaf, if anything."""
    weak = []
    if (bits := short_rsa_bits(r)) is not None:
        weak.append(f"has a {bits}-bit RSA key")
    if r.cert_signature_hash in WEAK_HASHES:
        weak.append(f"is signed with {r.cert_signature_hash.upper()}")
    if not weak:
        return None
    return (
        f"{' and '.join(weak)}, which OpenSSL's default security level ({MIN_RSA_BITS}-bit "
        "RSA, no SHA-1) refuses"
    )


_CLIENT_CERT_REFUSALS = {
    "unknown_ca": "it does not trust the issuer of the client's certificate",
    "unsupported_certificate": "the client's certificate is not usable for client "
    "authentication (its type, key usage or extendedKeyUsage without clientAuth)",
    "certificate_expired": "the client's certificate is expired or not yet valid",
    "certificate_revoked": "the client's certificate is revoked",
    "bad_certificate": "the client's certificate failed the server's checks",
    "certificate_unknown": "the client's certificate failed the server's checks",
    "access_denied": "the client's certificate is valid but not allowed in",
    "decrypt_error": "the client's CertificateVerify signature did not check out",
}
"""What a server's alert says about the client certificate it was sent."""


def rule_alert(r: HandshakeRecord, f: Facts) -> Verdict | None:
    a = f.alert
    if a is None or a.description is None:
        return None
    desc = a.description
    sender = a.sender
    said = alert_text(a) + after_ch(r, a.ts)
    offered = versions_text(r.offered_versions)
    best = max((rank(v) for v in r.offered_versions), default=-1)
    old_only = 0 <= best <= OLD_VERSIONS_MAX

    def verdict(failure: str, side: str, reason: str, remedy: str) -> Verdict:
        return Verdict(outcome="failed", failure=failure, side=side, reason=reason, remedy=remedy)

    refused_hello = desc in ("handshake_failure", "internal_error", "insufficient_security") and (
        sender == "server" and r.version is None
    )
    if desc in ("protocol_version", "inappropriate_fallback") or (refused_hello and old_only):
        return verdict(
            "version_mismatch",
            sender,
            f"the client offered {offered} to {server(r)}; the {said}",
            version_remedy(r),
        )
    if (
        refused_hello
        and desc == "handshake_failure"
        and best == VERSION_RANK["TLSv1.2"]
        and broad_tls12_offer(r)
    ):
        return Verdict(
            outcome="failed",
            failure="version_mismatch",
            side="server",
            inferred=True,
            reason=(
                f"the client offered only {offered} to {server(r)}, with "
                f"{offered_ciphers_text(r)}, ECDHE AES-GCM for RSA and ECDSA certificates "
                f"among them, and {_groups_text(r)}; the {said} with no ServerHello: a server with "
                "TLS 1.2 enabled accepts such an offer, so this one most likely accepts "
                "only TLS 1.3 (inferred: the alert does not say which)"
            ),
            remedy=version_remedy(r),
        )
    if desc in _CERT_ALERTS and sender == "client":
        status = status_for_alert(desc, f.cert_problems) or f.cert_status
        by_status = certificate_verdict(r, status, inferred=False, alert=a)
        if by_status is not None:
            return by_status
        if desc == "certificate_expired":
            return Verdict(
                outcome="failed",
                failure="certificate_expired",
                side="client",
                reason=(
                    f"the {said}: the server certificate of {server(r)} is expired or not "
                    "yet valid"
                    + ("" if r.cert_chain_sha256 else " (the certificate is encrypted in TLS 1.3)")
                ),
                remedy=f"Renew the server's certificate; confirm the dates: {rm.show_certs(r)}",
            )
        if desc == "bad_certificate" and not r.cert_chain_sha256:
            # OpenSSL clients send bad_certificate for a host name mismatch checked in the
            # handshake, a certificate not yet valid, or a key or digest too weak; the
            # certificate is encrypted, so SPEC §4's reading of the alert stands.
            asked = f"{r.sni!r}" if r.sni else "the address it connected to (no SNI)"
            return Verdict(
                outcome="failed",
                failure="sni_mismatch",
                side="client",
                inferred=True,
                reason=(
                    f"the {said}; the certificate of {server(r)} is encrypted (TLS 1.3): "
                    "OpenSSL-based clients (Python, s_client and others) send this "
                    f"alert when the certificate does not cover the name they asked for "
                    f"({asked}), and less often for a certificate not yet valid or a key or "
                    "signature too weak; inferred: the host name"
                ),
                remedy=(
                    f"Check that the certificate covers {asked} (then its dates and key): "
                    f"{rm.show_cert_details(r)}"
                ),
            )
        if desc in ("unknown_ca", "certificate_unknown", "certificate_revoked", "access_denied"):
            issuer = f" (issuer {r.cert_issuer})" if r.cert_issuer else ""
            return verdict(
                "certificate_untrusted",
                "client",
                f"the {said}: it does not trust the certificate of {server(r)}{issuer}",
                (
                    "Install a certificate from a CA the client trusts and send the full "
                    f"chain, or add the CA to the client's trust store; confirm: "
                    f"{rm.show_certs(r)}"
                ),
            )
        weak = weak_key_detail(r)
        if weak is not None:
            return verdict(
                "certificate_invalid",
                "client",
                f"the {said}: the certificate of {server(r)} ({r.cert_subject}) {weak}",
                (
                    "Reissue the certificate with an RSA key of 2048 bits or more (or an EC "
                    f"key) and a SHA-256 signature; confirm: {rm.show_cert_details(r)}"
                ),
            )
        return verdict(
            "certificate_invalid",
            "client",
            f"the {said}: the certificate of {server(r)} is unusable (malformed, bad "
            "signature, wrong key usage or unsupported algorithm)",
            f"Check the certificate's key usage and algorithms: {rm.show_cert_details(r)}",
        )
    if desc == "unrecognized_name" and not r.sni:
        return verdict(
            "sni_mismatch",
            sender,
            f"the client sent no server name (SNI) to {rm.target(r)}; the {said}: the "
            "server needs one to choose a certificate",
            (
                "Make the client send SNI (connect by host name, not IP; or set the server "
                "name explicitly), or give the server a default certificate; confirm: "
                f"{rm.s_client(r, '-noservername')}"
            ),
        )
    if desc == "unrecognized_name":
        return verdict(
            "sni_mismatch",
            sender,
            f"the client asked {rm.target(r)} for {r.sni!r}; the {said}: the server does "
            "not host that name",
            (
                f"Add a server block for {r.sni} on the server (nginx: server_name), or use a "
                f"name it hosts; confirm: {rm.s_client(r)}"
            ),
        )
    if desc == "certificate_required" or (
        sender == "server"
        and r.client_certificates is not None
        and (
            desc == "handshake_failure"
            or desc in _CERT_ALERTS
            # GnuTLS answers an empty Certificate with decode_error
            or (r.client_certificates == 0 and desc in _PROTOCOL_ERRORS)
        )
    ):
        what = (
            "an empty client Certificate"
            if r.client_certificates == 0
            else "the client's certificate"
            if r.client_certificates
            else "its encrypted flight"
        )
        meaning = _CLIENT_CERT_REFUSALS.get(desc) if r.client_certificates else None
        confirm = rm.s_client(r, "-cert", "client.pem", "-key", "client.key")
        return verdict(
            "client_certificate_required",
            "server",
            f"{server(r)} asked for a client certificate and, after {what}, the {said}"
            + (f": {meaning}" if meaning else ""),
            (
                "Give the client a certificate the server accepts: issued by a CA the server "
                "trusts for clients, with extendedKeyUsage clientAuth, within its dates; "
                "inspect it: openssl x509 -in client.pem -noout -issuer -dates -ext "
                f"extendedKeyUsage; confirm: {confirm}"
                if r.client_certificates
                else "Configure the client with a certificate and key the server accepts "
                f"(or relax the server's client verification); confirm: {confirm}"
            ),
        )
    if desc == "no_application_protocol":
        return verdict(
            "alpn_mismatch",
            sender,
            f"the client offered ALPN {r.alpn_offered or '[]'} to {server(r)}; the {said}",
            (
                "Offer an application protocol the server supports (or configure the server's "
                f"ALPN list); confirm: {rm.s_client(r, '-alpn', 'h2,http/1.1')}"
            ),
        )
    if desc in ("handshake_failure", "insufficient_security") and r.version is None:
        return cipher_verdict(r, a)
    if desc in _PROTOCOL_ERRORS:
        return verdict(
            "protocol_error",
            sender,
            f"the {said} at stage {r.stage} of the handshake with {server(r)}: one side "
            "sent a message the other could not accept",
            f"Update the TLS stack of the {sender}'s peer or look for a middlebox altering "
            f"the handshake; reproduce: {rm.s_client(r, '-msg')}",
        )
    if desc in ("close_notify", "user_canceled"):
        return verdict(
            "handshake_aborted",
            sender,
            f"the {said} at stage {r.stage}: the {sender} gave up on the handshake with "
            f"{server(r)}",
            f"Look at the {sender}'s logs for why it gave up; reproduce: {rm.s_client(r)}",
        )
    if a.level != "fatal" and r.established:
        return None
    return verdict(
        "other_alert",
        sender,
        f"the {said} at stage {r.stage} of the handshake with {server(r)}",
        f"Look at the {sender}'s logs for the cause; reproduce: {rm.s_client(r, '-msg')}",
    )


def rule_tls13_inferred(r: HandshakeRecord, f: Facts) -> Verdict | None:
    sizes = r.client_encrypted_after_server_flight
    if r.established or r.version != "TLSv1.3" or not sizes or sizes[0] > ALERT_SIZED:
        return None
    return Verdict(
        outcome="failed",
        failure="certificate_untrusted",
        side="client",
        inferred=True,
        reason=(
            f"TLS 1.3 with {server(r)}: right after the server's encrypted flight the client "
            f"sent a {sizes[0]}-byte encrypted record (alert-sized) and "
            f"{'closed' if r.close_by == 'client' else 'stopped'}: the client rejected the "
            "server, most likely its certificate (inferred: TLS 1.3 encrypts the certificate "
            "and the alert)"
        ),
        remedy=(
            "Check the server's certificate chain, dates and names against the client's "
            f"trust store: {rm.show_certs(r)}; its names and key: {rm.show_cert_details(r)}"
        ),
    )


def rule_encrypted_alert(r: HandshakeRecord, f: Facts) -> Verdict | None:
    enc = [a for a in r.alerts if a.encrypted]
    if r.established or not enc or f.alert is not None:
        return None
    a = enc[0]
    return Verdict(
        outcome="failed",
        failure="other_alert",
        side=a.sender,
        inferred=True,
        reason=(
            f"the {a.sender} sent an encrypted alert at stage {r.stage} of the handshake "
            f"with {server(r)}; its content is not visible"
        ),
        remedy=f"Look at the {a.sender}'s logs; reproduce: {rm.s_client(r, '-msg')}",
    )


def rule_version_abort(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if r.version is None or not r.offered_versions or r.version in r.offered_versions:
        return None
    if r.established:
        return None
    return Verdict(
        outcome="failed",
        failure="version_mismatch",
        side="client",
        reason=(
            f"the client offered {versions_text(r.offered_versions)} and {server(r)} chose "
            f"{r.version}, which the client did not offer; the client "
            f"{'reset' if r.close == 'rst_client' else 'closed'} the connection"
        ),
        remedy=(
            "Align the versions enabled on client and server; reproduce: "
            f"{rm.reproduce_version(r)}"
        ),
    )


SLOW_SERVER = 0.5
"""Seconds a client waits for the ServerHello before its close reads as a timeout (client
timeouts are seconds; a browser cancelling a load leaves within milliseconds)."""


def rule_client_gave_up_first(r: HandshakeRecord, f: Facts) -> Verdict | None:
    """The client closed (FIN) before the server's first answer, which came later: after
    a wait, the server was too slow for the client's timeout; at once, the client gave up
    on its own (whatever the client's kernel did with the late answer)."""
    if r.established or r.alerts or r.close_by != "client" or r.ts_server_hello is None:
        return None
    fin = r.ts_client_fin
    if fin is None or fin >= r.ts_server_hello or r.ts_client_hello is None:
        return None
    if fin - r.ts_client_hello < SLOW_SERVER:
        return Verdict(
            outcome="failed",
            failure="handshake_aborted",
            side="client",
            reason=(
                f"the client closed (FIN){after_ch(r, fin)}, before {server(r)} answered "
                f"(its ServerHello came{after_ch(r, r.ts_server_hello)}): the client "
                "abandoned the handshake on its own (a browser cancelling a load or a "
                "preconnect, a process exiting)"
            ),
            remedy=f"Look at the client's logs for why it gave up; reproduce: {rm.s_client(r)}",
        )
    return Verdict(
        outcome="failed",
        failure="no_server_response",
        side="server",
        reason=(
            f"the client gave up{after_ch(r, fin)} and closed before {server(r)} "
            f"answered; the server's ServerHello came{after_ch(r, r.ts_server_hello)}, too "
            "late: the server (or its backend) is too slow for the client's timeout"
        ),
        remedy=(
            "Find what makes the server slow to answer the ClientHello (overload, a slow "
            "backend, DNS or OCSP lookups), or raise the client's connect timeout; time it: "
            f"time {rm.s_client(r)}"
        ),
    )


def rule_reset(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if r.established or not r.offered_versions or not r.close.startswith("rst"):
        return None
    sender = "client" if r.close == "rst_client" else "server"
    forged = sender == "server" and not r.client_hello_acked and r.version is None
    segs = (
        f"; the ClientHello spanned {r.client_hello_segments} TCP segments"
        if r.client_hello_segments > 1
        else ""
    )
    if forged:
        return Verdict(
            outcome="failed",
            failure="reset_during_handshake",
            side="network",
            reason=(
                f"a RST from the server's address arrived{after_ch(r, r.ts_close)} to "
                f"{server(r)}, before any ServerHello and without the server acknowledging "
                f"the ClientHello{segs}: it looks forged by a middlebox (firewall, IPS, SNI "
                "filter)"
            ),
            remedy=(
                "Find the middlebox that resets this SNI or this large ClientHello (it may "
                "not handle a hello split over segments, e.g. with a post-quantum key "
                f"share); compare with a small hello: {rm.s_client(r, '-groups', 'X25519')}"
            ),
        )
    stage = "ServerHello" if r.version else "ClientHello"
    return Verdict(
        outcome="failed",
        failure="reset_during_handshake",
        side=sender,
        reason=(
            f"the {sender} reset the connection{after_ch(r, r.ts_close)} (stage {r.stage}, "
            f"after the {stage}) with {server(r)}, without any alert{segs}"
        ),
        remedy=f"Check the {sender}'s logs for why it reset; reproduce: {rm.s_client(r)}",
    )


def rule_proxy_closed(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if r.proxy_target is None or r.established or r.version is not None:
        return None
    if r.close_by != "server":
        return None
    return Verdict(
        outcome="failed",
        failure="proxy_error",
        side="proxy",
        reason=(
            f"the proxy {r.server_ip}:{r.server_port} answered "
            f"{r.proxy_status_line!r} to CONNECT {r.proxy_target} and then closed the "
            "tunnel before any ServerHello (the proxy's log says why: the destination "
            "closed or refused, or one of its rules ended the tunnel)"
        ),
        remedy=_proxy_remedy(r, r.proxy_status),
    )


def rule_incomplete(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if r.established:
        return None
    if not r.offered_versions and "midstream" in r.anomalies:
        return Verdict(
            outcome="incomplete",
            reason="the capture started after this connection's handshake began",
        )
    if r.gap_bytes and "handshake_lost" in r.anomalies:
        return Verdict(
            outcome="incomplete",
            reason=f"the capture lost {r.gap_bytes} bytes of the handshake",
        )
    if captured_to_end(r) and r.close_by is None:
        return Verdict(
            outcome="incomplete",
            reason=(
                f"the capture ended {ms((r.capture_end or r.ts_end) - r.ts_end)} after the "
                f"last packet, at stage {r.stage}, with the handshake still going"
            ),
        )
    return None


def _gave_up(r: HandshakeRecord, waited: str) -> str:
    """When the client's last try was: its own close, or only its last packet."""
    if r.close_by == "client":
        return f"the client gave up after {waited}"
    return f"the client's last try came {waited} after the first, then {ended(r)}"


def rule_no_server_response(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if not r.offered_versions or r.version is not None or r.server_first_bytes is not None:
        return None
    if r.alerts:
        return None
    waited = ms(r.ts_end - (r.ts_client_hello or r.ts))
    if r.server_bytes and "server_flight_lost" in r.anomalies:
        return Verdict(
            outcome="failed",
            failure="no_server_response",
            side="network",
            reason=(
                f"{server(r)} sent its handshake flight but the large segments never arrived "
                f"(only {r.server_bytes} bytes did, with a hole before them); the client "
                f"waited {waited}: an MTU black hole (ICMP 'fragmentation needed' blocked)"
            ),
            remedy=(
                "Allow ICMP 'fragmentation needed' on the path, or clamp the MSS "
                "(iptables ... -j TCPMSS --clamp-mss-to-pmtu); confirm with a smaller MTU: "
                f"ping -M do -s 1472 {r.server_ip}"
            ),
        )
    if not r.client_hello_acked:
        big = r.client_hello_segments > 1
        return Verdict(
            outcome="failed",
            failure="no_server_response",
            side="network",
            reason=(
                f"the ClientHello to {server(r)} was never acknowledged "
                f"({r.client_retransmits} retransmission(s)); {_gave_up(r, waited)}: the "
                "path drops it"
                + (
                    f"; it spanned {r.client_hello_segments} TCP segments, so a path that "
                    "loses full-size segments (an MTU black hole) or a middlebox dropping "
                    "large hellos fits"
                    if big
                    else ""
                )
            ),
            remedy=(
                "Look for an MTU black hole or a middlebox dropping large ClientHellos "
                "(post-quantum key shares and long ALPN lists make them large); compare "
                f"with a small hello: {rm.s_client(r, '-groups', 'X25519')}; check the path "
                f"MTU: ping -M do -s 1472 {r.server_ip}"
                if big
                else "Look for a firewall or IPS dropping TLS to this server or this SNI; "
                f"confirm: {rm.s_client(r)}"
            ),
        )
    if r.close_by == "server":
        return None  # the server closed: handshake_aborted
    return Verdict(
        outcome="failed",
        failure="no_server_response",
        side="server",
        reason=(
            f"{server(r)} acknowledged the ClientHello at the TCP level but sent nothing in "
            f"{waited}, until {ended(r)}: the service behind the port is "
            "not answering TLS"
        ),
        remedy=(
            "Check that the server process accepts and serves TLS on this port (hung "
            f"process, wrong backend, load balancer health); confirm: {rm.s_client(r)}"
        ),
    )


def rule_aborted(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if r.established or r.close_by is None:
        return None
    sender = r.close_by
    if sender == "client" and not r.offered_versions and r.client_bytes == 0:
        return None  # a connect-only probe: rule_no_client_hello
    if "server_flight_lost" in r.anomalies and sender == "client":
        return Verdict(
            outcome="failed",
            failure="handshake_aborted",
            side="network",
            reason=(
                f"{server(r)} sent its handshake flight ({r.server_unacked_bytes} bytes, "
                f"{r.server_retransmits} retransmission(s)) but the client never "
                f"acknowledged it, and gave up {after_ch(r, r.ts_close).strip() or 'later'} "
                f"at stage {r.stage}: large segments are lost on the path (an MTU black "
                "hole: ICMP 'fragmentation needed' blocked)"
            ),
            remedy=(
                "Allow ICMP 'fragmentation needed' on the path or clamp the MSS "
                "(iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS "
                f"--clamp-mss-to-pmtu); confirm: ping -M do -s 1472 {r.server_ip}"
            ),
        )
    if sender == "client" and r.cert_chain_sha256:
        cert = certificate_verdict(r, f.cert_status, inferred=True)
        if cert is not None:
            return cert
    if r.offered_versions:
        what = f"at stage {r.stage}{after_ch(r, r.ts_close)}"
    else:
        what = "before any ClientHello"
    return Verdict(
        outcome="failed",
        failure="handshake_aborted",
        side=sender,
        reason=(
            f"the {sender} closed the connection with {server(r)} {what}, with no alert "
            f"({r.client_bytes} bytes from the client, {r.server_bytes} from the server)"
        ),
        remedy=f"Look at the {sender}'s logs for why it gave up; reproduce: {rm.s_client(r)}",
    )


def rule_no_client_hello(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if r.offered_versions:
        return None
    if r.synack and r.client_bytes == 0:
        probe = ": a health check or port scan" if r.close_by == "client" else ""
        return Verdict(
            outcome="not_tls",
            reason=(
                f"the client opened TCP to {rm.target(r)} and sent nothing ({ended(r)})"
                f"{probe}; no TLS was attempted"
            ),
        )
    return Verdict(
        outcome="not_tls",
        reason=f"no ClientHello was seen on this connection to {rm.target(r)} ({r.close})",
    )


def rule_fallback(r: HandshakeRecord, f: Facts) -> Verdict | None:
    if r.close == "capture_end":
        return Verdict(
            outcome="incomplete",
            reason=f"the capture ended at stage {r.stage} with the handshake unfinished",
        )
    return Verdict(
        outcome="failed",
        failure="handshake_aborted",
        side="client",
        reason=(
            f"the handshake with {server(r)} stopped at stage {r.stage} and the connection "
            f"went idle ({ms(r.ts_end - r.ts)} after it began)"
        ),
        remedy=f"Reproduce: {rm.s_client(r)}",
    )


RULES: tuple[Rule, ...] = (
    rule_established,
    rule_icmp_unreachable,
    rule_tcp_refused,
    rule_tcp_no_answer,
    rule_proxy_status,
    rule_client_not_tls,
    rule_server_not_tls,
    rule_alert,
    rule_tls13_inferred,
    rule_encrypted_alert,
    rule_version_abort,
    rule_proxy_closed,
    rule_client_gave_up_first,
    rule_reset,
    rule_starttls_refused,
    rule_incomplete,
    rule_no_server_response,
    rule_aborted,
    rule_no_client_hello,
    rule_fallback,
)

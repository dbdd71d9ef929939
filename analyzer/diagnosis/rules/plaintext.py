"""Rules on plaintext where TLS was expected: a client speaking HTTP to a TLS port, a
server answering a ClientHello in plaintext, a STARTTLS upgrade refused, a connection that
never carried a ClientHello (``not_tls``)."""

from __future__ import annotations

from analyzer.diagnosis import remedies as rm
from analyzer.diagnosis.readings import captured_to_end
from analyzer.diagnosis.verdict import Facts, Verdict
from analyzer.diagnosis.wording import ended, server
from analyzer.record import HandshakeRecord


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

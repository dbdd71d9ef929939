"""Remedies: what to change, and the command that confirms it, filled in from the record.

Every command is one a person can paste: host, port and server name come from the
connection. Suggestions are worded as such; the diagnosis is evidence, not certainty.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import shlex

from analyzer.record import HandshakeRecord

_OPENSSL_VERSION_FLAG = {
    "SSLv3": "-ssl3",
    "TLSv1.0": "-tls1",
    "TLSv1.1": "-tls1_1",
    "TLSv1.2": "-tls1_2",
    "TLSv1.3": "-tls1_3",
    "DTLSv1.0": "-dtls1",
    "DTLSv1.2": "-dtls1_2",
}


SOCKS_KINDS = frozenset({"socks4", "socks4a", "socks5"})


def is_socks(r: HandshakeRecord) -> bool:
    return r.proxy_kind in SOCKS_KINDS


def _host(r: HandshakeRecord) -> str:
    ip = r.server_ip
    return f"[{ip}]" if ":" in ip else ip


def target(r: HandshakeRecord) -> str:
    """``host:port`` of the TLS server (the CONNECT target inside a proxy tunnel)."""
    if r.proxy_target:
        return r.proxy_target
    return f"{_host(r)}:{r.server_port}"


def s_client(r: HandshakeRecord, *extra: str) -> str:
    """An ``openssl s_client`` line for this connection (over DTLS with ``-dtls``; over QUIC
    with ``-quic`` and an ALPN, which OpenSSL 3.2 and later have)."""
    parts = ["openssl", "s_client", "-connect", target(r)]
    if r.transport == "dtls":
        extra = dtls_arguments(extra)
        if not any(e.startswith("-dtls") for e in extra):
            parts.append("-dtls")
    elif r.transport == "quic":
        parts.append("-quic")
        if "-alpn" not in extra:
            parts += ["-alpn", r.alpn or (r.alpn_offered[0] if r.alpn_offered else "h3")]
    if r.sni:
        parts += ["-servername", r.sni]
    if r.starttls in ("smtp", "imap", "pop3", "ftp", "xmpp", "irc", "ldap", "postgres"):
        parts += ["-starttls", r.starttls]
    if r.proxy_target and not is_socks(r):  # (s_client's -proxy speaks HTTP CONNECT only)
        parts += ["-proxy", f"{_host(r)}:{r.server_port}"]
    parts += list(extra)
    return " ".join(shlex.quote(p) for p in parts) + " </dev/null"


_DTLS_OF_TLS_FLAG = {"-tls1": "-dtls1", "-tls1_1": "-dtls1", "-tls1_2": "-dtls1_2"}
"""s_client's TLS version flags and their DTLS counterparts (DTLS 1.0 is TLS 1.1 over
datagrams, RFC 4347; DTLS 1.2 is TLS 1.2, RFC 6347). OpenSSL has no DTLS 1.3."""
_NOT_FOR_DTLS = frozenset({"-tls1_3", "-no_tls1_3", "-ssl3"})


def dtls_arguments(extra: tuple[str, ...]) -> tuple[str, ...]:
    """s_client arguments made for DTLS: TLS version flags become DTLS ones, TLS 1.3 and
    SSLv3 flags are dropped (a DTLS remedy is the same check over UDP)."""
    return tuple(_DTLS_OF_TLS_FLAG.get(e, e) for e in extra if e not in _NOT_FOR_DTLS)


def dtls_version_flag(r: HandshakeRecord) -> str:
    """``-dtls1_2`` or ``-dtls1``: the best DTLS version the client offered (``-dtls``,
    any version, when it offered neither)."""
    for version in ("DTLSv1.2", "DTLSv1.0"):
        if version in r.offered_versions:
            return _OPENSSL_VERSION_FLAG[version]
    return "-dtls"


def dtls_probe(r: HandshakeRecord, *extra: str) -> str:
    """An ``openssl s_client`` line that sends this client's best DTLS version's
    ClientHello to the same server (``-msg`` shows a HelloVerifyRequest arriving)."""
    return s_client(r, dtls_version_flag(r), *extra)


def curl(r: HandshakeRecord, *extra: str) -> str:
    """A ``curl -v`` line that reaches the same server with the same name."""
    name = r.sni or r.server_ip
    port = r.server_port
    url_host = f"[{name}]" if ":" in name else name
    parts = ["curl", "-v", *extra]
    if is_socks(r):
        return " ".join(shlex.quote(p) for p in [*parts, *socks_curl(r)])
    if r.sni and not r.proxy_target:
        parts += ["--resolve", f"{r.sni}:{port}:{r.server_ip}"]
    if r.proxy_target:
        parts += ["-x", f"http://{_host(r)}:{r.server_port}"]
        host, _, tport = r.proxy_target.rpartition(":")
        url_host, port = host or r.proxy_target, int(tport) if tport.isdigit() else 443
    parts.append(f"https://{url_host}:{port}/")
    return " ".join(shlex.quote(p) for p in parts)


def socks_curl(r: HandshakeRecord) -> list[str]:
    """curl's SOCKS option for the record's kind (``--socks5-hostname`` when the client
    sent a host name, so the proxy resolves it as before), the proxy, and the URL of the
    target the client asked for (``HOST`` when the negotiation ended before a request)."""
    host, _, port = (r.proxy_target or "").rpartition(":")
    name = host.strip("[]") or r.sni or "HOST"
    flag = {"socks4": "--socks4", "socks4a": "--socks4a"}.get(r.proxy_kind or "", "--socks5")
    if flag == "--socks5" and not _is_address(name):
        flag = "--socks5-hostname"
    url_host = f"[{name}]" if ":" in name else name
    url_port = f":{port}" if port and port != "443" else ""
    return [flag, f"{_host(r)}:{r.server_port}", f"https://{url_host}{url_port}/"]


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@functools.cache
def _openssl_names() -> dict[str, str]:
    """IANA cipher suite name -> OpenSSL's name, from the ssl module's own OpenSSL."""
    import ssl

    from analyzer.tls.names import cipher_name

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        return {}
    return {cipher_name(c["id"] & 0xFFFF): str(c["name"]) for c in ctx.get_ciphers()}


_OPENSSL_GROUPS = {
    "x25519": "X25519",
    "x448": "X448",
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
    "ffdhe2048": "ffdhe2048",
    "ffdhe3072": "ffdhe3072",
    "ffdhe4096": "ffdhe4096",
}
_OPENSSL_SIGALG = re.compile(
    r"(rsa_pss_rsae|rsa_pss_pss|rsa_pkcs1)_sha\d+|ecdsa_secp\d+r1_sha\d+|ed25519|ed448"
)


def openssl_groups(groups: list[str]) -> list[str]:
    """The groups OpenSSL's ``-groups`` knows, by its names."""
    return [_OPENSSL_GROUPS[g] for g in groups if g in _OPENSSL_GROUPS]


_OPENSSL_SIGALG_NAMES = {"ecdsa_sha1": "ECDSA+SHA1", "ecdsa_sha224": "ECDSA+SHA224"}


def openssl_sigalgs(sigalgs: list[str]) -> list[str]:
    """The signature algorithms by the names OpenSSL's ``-sigalgs`` takes."""
    return [
        _OPENSSL_SIGALG_NAMES.get(s, s)
        for s in sigalgs
        if s in _OPENSSL_SIGALG_NAMES or _OPENSSL_SIGALG.fullmatch(s)
    ]


def reproduce_ciphers(r: HandshakeRecord, *more: str) -> str:
    """An ``openssl s_client`` line offering the client's cipher suites (TLS ≤ 1.2 ones
    with ``-cipher``, TLS 1.3 ones with ``-ciphersuites``), as far as OpenSSL knows them,
    then ``more`` arguments."""
    names = _openssl_names()
    tls12 = [
        names[c]
        for c in r.offered_ciphers
        if c in names and not c.startswith("TLS_AES") and not c.startswith("TLS_CHACHA20")
    ]
    tls13 = [c for c in r.offered_ciphers if c.startswith(("TLS_AES", "TLS_CHACHA20"))]
    extra: list[str] = []
    if tls12:
        extra += ["-cipher", ":".join(tls12) + ":@SECLEVEL=0"]
    if tls13:
        extra += ["-ciphersuites", ":".join(tls13)]
    else:
        extra.append("-no_tls1_3")
    return s_client(r, *extra, *more)


def reproduce_version(r: HandshakeRecord) -> str:
    """An ``openssl s_client`` line offering the client's best version only."""
    best = max(
        r.offered_versions,
        key=lambda v: list(_OPENSSL_VERSION_FLAG).index(v) if v in _OPENSSL_VERSION_FLAG else -1,
        default=None,
    )
    flag = _OPENSSL_VERSION_FLAG.get(best or "")
    extra = [flag] if flag else []
    if flag in ("-tls1", "-tls1_1", "-ssl3", "-dtls1"):
        extra += ["-cipher", "DEFAULT:@SECLEVEL=0"]
    return s_client(r, *extra)


def show_certs(r: HandshakeRecord) -> str:
    """Fetch the server's chain and print each certificate's subject, issuer and dates."""
    return (
        s_client(r, "-showcerts").removesuffix(" </dev/null")
        + " </dev/null 2>/dev/null | openssl x509 -noout -subject -issuer -dates"
    )


def show_cert_details(r: HandshakeRecord) -> str:
    """Fetch the server's leaf and print its names, dates, key and signature algorithm."""
    return (
        s_client(r).removesuffix(" </dev/null")
        + " </dev/null 2>/dev/null | openssl x509 -noout -text"
        " | grep -E 'Subject:|Not (Before|After)|DNS:|Public-Key|Signature Algorithm'"
    )

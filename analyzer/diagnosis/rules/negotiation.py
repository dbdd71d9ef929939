"""Version and cipher negotiation: what the client offered against what the server
refused or chose, the remedy on the side that lacks something, and the rule for a
ServerHello with a version the client never offered."""

from __future__ import annotations

from analyzer.diagnosis import remedies as rm
from analyzer.diagnosis.readings import OLD_VERSIONS_MAX, VERSION_RANK, rank
from analyzer.diagnosis.verdict import Facts, Verdict
from analyzer.diagnosis.wording import (
    after_ch,
    alert_text,
    groups_text,
    offered_ciphers_text,
    server,
    versions_text,
)
from analyzer.record import AlertInfo, HandshakeRecord

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
    if r.transport == "dtls":
        # DTLS 1.0 is TLS 1.1 over datagrams and DTLS 1.2 is TLS 1.2 (RFC 6347 §1).
        advice = (
            advice.replace("TLS 1.2 or 1.3", "DTLS 1.2")
            .replace("TLS 1.3", "DTLS 1.2")
            .replace("TLS 1.2", "DTLS 1.2")
            .replace(" (e.g. nginx ssl_protocols TLSv1.2 TLSv1.3)", "")
            .replace(", e.g. nginx ssl_protocols", "")
        )
    return (
        f"{advice}; reproduce: {rm.reproduce_version(r)}; then check what the server "
        f"accepts: {rm.s_client(r, *check)}"
    )


_COMMON_GROUPS = frozenset({"x25519", "secp256r1"})


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
            f"the client offered {offered_ciphers_text(r)} with {groups_text(r)} and "
            f"{versions_text(r.offered_versions)}; the {alert_text(a)}{after_ch(r, a.ts)} "
            f"with no ServerHello: {why}"
        ),
        remedy=(
            f"{fix[0].upper()}{fix[1:]}; reproduce: {rm.reproduce_ciphers(r, *more)}; then "
            f"compare with OpenSSL's default offer: {rm.s_client(r)}"
        ),
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

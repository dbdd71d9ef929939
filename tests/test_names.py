"""IANA names of TLS code points, checked against the registries and against Wireshark.

Wireshark's tables (``tshark -G values``) are an independent source: every code both
know must have the same name, apart from a short list of places where Wireshark 4.0
uses a pre-standard or private meaning of a code the IANA registry has since assigned.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.tls.names import (
    alert_name,
    cipher_name,
    group_name,
    is_weak_cipher,
    sigalg_name,
    version_name,
)


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0x0002, "SSLv2"),
        (0x0300, "SSLv3"),
        (0x0301, "TLSv1.0"),
        (0x0302, "TLSv1.1"),
        (0x0303, "TLSv1.2"),
        (0x0304, "TLSv1.3"),
        (0x7F1C, "0x7f1c"),  # TLS 1.3 draft 28 stays a number
        (0xFEFD, "DTLSv1.2"),  # RFC 6347 §4.1
        (0xFEFF, "DTLSv1.0"),
        (0xFEFC, "DTLSv1.3"),
        (0x0100, "DTLSv0.9"),  # OpenConnect legacy DTLS
        (0x0200, "0x0200"),
        (0x0000, "0x0000"),
    ],
)
def test_version_name(code: int, name: str) -> None:
    assert version_name(code) == name


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
        (0x1301, "TLS_AES_128_GCM_SHA256"),
        (0x1303, "TLS_CHACHA20_POLY1305_SHA256"),
        (0x00FF, "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"),
        (0x5600, "TLS_FALLBACK_SCSV"),
        (0x0000, "TLS_NULL_WITH_NULL_NULL"),
        (0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5"),
        (0x0018, "TLS_DH_anon_WITH_RC4_128_MD5"),
        (0x0064, "TLS_RSA_EXPORT1024_WITH_RC4_56_SHA"),
        (0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
        (0xCC13, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256_OLD"),
        (0xC0AA, "TLS_PSK_DHE_WITH_AES_128_CCM_8"),  # sic, the registry's spelling
        (0xC100, "TLS_GOSTR341112_256_WITH_KUZNYECHIK_CTR_OMAC"),
        (0x1307, "TLS_AEGIS_128L_SHA256"),
        (0xFEFF, "SSL_RSA_FIPS_WITH_3DES_EDE_CBC_SHA"),
        (0x010080, "SSL2_RC4_128_WITH_MD5"),
        (0x0700C0, "SSL2_DES_192_EDE3_CBC_WITH_MD5"),
        (0x0A0A, "0x0a0a"),  # GREASE has no name
        (0xABCD, "0xabcd"),
        (0x0100C0, "0x0100c0"),
    ],
)
def test_cipher_name(code: int, name: str) -> None:
    assert cipher_name(code) == name


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0x0017, "secp256r1"),
        (0x0018, "secp384r1"),
        (0x0019, "secp521r1"),
        (0x001D, "x25519"),
        (0x001E, "x448"),
        (0x0100, "ffdhe2048"),
        (0x0104, "ffdhe8192"),
        (0x001A, "brainpoolP256r1"),
        (0x001F, "brainpoolP256r1tls13"),
        (0x11EC, "X25519MLKEM768"),
        (0x11EB, "SecP256r1MLKEM768"),
        (0x11ED, "SecP384r1MLKEM1024"),
        (0x0201, "MLKEM768"),
        (0x6399, "X25519Kyber768Draft00"),
        (0x4A4A, "0x4a4a"),
        (0x1234, "0x1234"),
    ],
)
def test_group_name(code: int, name: str) -> None:
    assert group_name(code) == name


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0, "close_notify"),
        (40, "handshake_failure"),
        (42, "bad_certificate"),
        (45, "certificate_expired"),
        (48, "unknown_ca"),
        (70, "protocol_version"),
        (71, "insufficient_security"),
        (86, "inappropriate_fallback"),
        (112, "unrecognized_name"),
        (116, "certificate_required"),
        (120, "no_application_protocol"),
        (41, "no_certificate"),  # SSLv3's, "_RESERVED" in the registry
        (200, "unknown_200"),
        (1, "unknown_1"),
    ],
)
def test_alert_name(code: int, name: str) -> None:
    assert alert_name(code) == name


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0x0804, "rsa_pss_rsae_sha256"),
        (0x0403, "ecdsa_secp256r1_sha256"),
        (0x0807, "ed25519"),
        (0x0201, "rsa_pkcs1_sha1"),
        (0x0203, "ecdsa_sha1"),
        (0x081A, "ecdsa_brainpoolP256r1tls13_sha256"),
        (0x0402, "dsa_sha256"),  # RFC 5246 pair, not in the TLS 1.3 registry
        (0x0301, "rsa_pkcs1_sha224"),
        (0x0101, "rsa_pkcs1_md5"),
        (0x0A0A, "0x0a0a"),
        (0x0700, "0x0700"),
    ],
)
def test_sigalg_name(code: int, name: str) -> None:
    assert sigalg_name(code) == name


@pytest.mark.parametrize(
    ("name", "weak"),
    [
        ("TLS_NULL_WITH_NULL_NULL", True),
        ("TLS_RSA_WITH_NULL_SHA256", True),
        ("TLS_ECDHE_PSK_WITH_NULL_SHA384", True),
        ("TLS_SHA256_SHA256", True),  # RFC 9150: integrity only
        ("TLS_RSA_EXPORT_WITH_DES40_CBC_SHA", True),
        ("TLS_RSA_EXPORT1024_WITH_RC4_56_SHA", True),
        ("TLS_DH_anon_WITH_AES_128_GCM_SHA256", True),
        ("TLS_ECDH_anon_WITH_AES_256_CBC_SHA", True),
        ("TLS_ECDHE_RSA_WITH_RC4_128_SHA", True),
        ("TLS_RSA_WITH_DES_CBC_SHA", True),
        ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", True),
        ("TLS_RSA_WITH_IDEA_CBC_SHA", True),
        ("TLS_KRB5_WITH_3DES_EDE_CBC_MD5", True),
        ("SSL2_RC2_128_CBC_WITH_MD5", True),
        ("SSL2_DES_192_EDE3_CBC_WITH_MD5", True),
        ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", False),
        ("TLS_AES_128_GCM_SHA256", False),
        ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", False),
        ("TLS_RSA_WITH_AES_128_CBC_SHA", False),
        ("TLS_RSA_WITH_SEED_CBC_SHA", False),
        ("TLS_DHE_DSS_WITH_AES_256_GCM_SHA384", False),
        ("TLS_EMPTY_RENEGOTIATION_INFO_SCSV", False),
        ("TLS_FALLBACK_SCSV", False),
        ("0x1234", False),
    ],
)
def test_is_weak_cipher(name: str, weak: bool) -> None:
    assert is_weak_cipher(name) is weak


def test_every_named_suite_is_judged_by_its_name() -> None:
    weak = [cipher_name(c) for c in range(0x10000) if is_weak_cipher(cipher_name(c))]
    assert "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" not in weak
    assert all("0x" not in name for name in weak)  # unknown codes are never weak
    assert len(weak) > 100


@given(st.integers(min_value=0, max_value=0xFFFFFF))
def test_names_are_total(code: int) -> None:
    for name in (version_name, cipher_name, group_name, sigalg_name):
        text = name(code)
        assert text and text.isprintable()
    assert alert_name(code).isidentifier()


# --- Wireshark's tables as a second opinion ----------------------------------------------


@functools.cache
def _wireshark_tables() -> dict[str, dict[int, str]]:
    """Every value_string of every field, from ``tshark -G values`` (run once)."""
    out = subprocess.run(
        ["tshark", "-G", "values"], capture_output=True, text=True, timeout=120, check=False
    )
    tables: dict[str, dict[int, str]] = {}
    for line in out.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[0] == "V" and parts[1].startswith("tls."):
            tables.setdefault(parts[1], {})[int(parts[2], 0)] = parts[3]
    return tables


def wireshark_values(field: str) -> dict[int, str]:
    return _wireshark_tables().get(field, {})


needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")


def _is_grease(code: int) -> bool:
    return (code & 0x0F0F) == 0x0A0A and (code >> 8) == (code & 0xFF)


@needs_tshark
def test_cipher_names_agree_with_wireshark() -> None:
    theirs = wireshark_values("tls.handshake.ciphersuite")
    compared = {
        code: name
        for code, name in theirs.items()
        if not _is_grease(code)
        and not 0xE000 <= code <= 0xE4FF  # Chinese GM/T and eSTREAM suites: not kept
        and code not in (0xCC13, 0xCC14, 0xCC15)  # we mark the pre-standard ones _OLD
    }
    assert len(compared) >= 360
    assert {c: cipher_name(c) for c in compared} == compared


@needs_tshark
def test_sslv2_cipher_spec_names_agree_with_wireshark() -> None:
    theirs = wireshark_values("tls.handshake.cipherspec")
    sslv2 = {code: name for code, name in theirs.items() if code > 0xFFFF}
    assert len(sslv2) == 8
    assert {c: cipher_name(c) for c in sslv2} == sslv2


@needs_tshark
def test_group_names_agree_with_wireshark() -> None:
    theirs = wireshark_values("tls.handshake.extensions_supported_group")
    # Wireshark 4.0 uses 0x02xx and 0x2fxx for Open Quantum Safe experiments; IANA has
    # since given 0x0200-0x0202 to ML-KEM. Those are left out of the comparison.
    compared = {
        code: name
        for code, name in theirs.items()
        if not _is_grease(code) and code >> 8 not in (0x02, 0x2F)
    }
    assert len(compared) >= 38
    assert {c: group_name(c) for c in compared} == compared


@needs_tshark
def test_sigalg_names_agree_with_wireshark() -> None:
    theirs = wireshark_values("tls.handshake.sig_hash_alg")
    compared = {
        code: name
        for code, name in theirs.items()
        if not _is_grease(code) and code >> 8 != 0xFE  # OQS experiments, private range
    }
    assert len(compared) >= 17
    assert {c: sigalg_name(c) for c in compared} == compared


@needs_tshark
def test_alert_names_agree_with_wireshark() -> None:
    theirs = wireshark_values("tls.alert_message.desc")
    # Wireshark's are Title Case ("Unknown CA"); 1 is a TLS 1.3 draft alert IANA never had.
    compared = {code: name.lower().replace(" ", "_") for code, name in theirs.items() if code != 1}
    assert len(compared) >= 35
    assert {c: alert_name(c) for c in compared} == compared


@needs_tshark
def test_version_names_agree_with_wireshark() -> None:
    theirs = wireshark_values("tls.handshake.version")
    spelled = {
        "SSL 2.0": "SSLv2",
        "SSL 3.0": "SSLv3",
        "DTLS 1.0 (OpenSSL pre 0.9.8f)": "DTLSv0.9",  # GnuTLS's name for it
    }
    for code, name in theirs.items():
        if name.startswith(("TLS 1.", "DTLS 1.")) and "(" not in name:
            assert version_name(code) == name.replace(" ", "v")
        elif name in spelled:
            assert version_name(code) == spelled[name]
        else:
            assert version_name(code) == f"0x{code:04x}"

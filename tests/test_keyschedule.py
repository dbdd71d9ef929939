"""The key schedule against published vectors (RFC 9001 Appendix A.1, RFC 8448 §3)."""

from __future__ import annotations

from analyzer.tls.keyschedule import derive_secret, hkdf_expand_label, hkdf_extract

# RFC 9001 A.1: the client's first Destination Connection ID and QUIC v1's initial salt.
DCID = bytes.fromhex("8394c8f03e515708")
SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")


def test_quic_v1_initial_secrets_rfc9001_a1() -> None:
    initial = hkdf_extract("sha256", SALT_V1, DCID)
    assert initial.hex() == "7db5df06e7a69e432496adedb00851923595221596ae2ae9fb8115c1e9ed0a44"
    client = hkdf_expand_label("sha256", initial, b"client in", b"", 32)
    assert client.hex() == "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea"
    assert hkdf_expand_label("sha256", client, b"quic key", b"", 16).hex() == (
        "1f369613dd76d5467730efcbe3b1a22d"
    )
    assert hkdf_expand_label("sha256", client, b"quic iv", b"", 12).hex() == (
        "fa044b2f42a3fd3b46fb255c"
    )
    assert hkdf_expand_label("sha256", client, b"quic hp", b"", 16).hex() == (
        "9f50449e04a0e810283a1e9933adedd2"
    )


def test_tls13_early_and_derived_secrets_rfc8448_simple_1rtt() -> None:
    # RFC 8448 §3: no PSK, so the early secret is HKDF-Extract(0, 0^32).
    early = hkdf_extract("sha256", b"", bytes(32))
    assert early.hex() == "33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a"
    empty_hash = bytes.fromhex(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    derived = derive_secret("sha256", early, b"derived", empty_hash)
    assert derived.hex() == "6f2615a108c702c5678f54fc9dbab69716c076189c48250cebeac3576c3611ba"

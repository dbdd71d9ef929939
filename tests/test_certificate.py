"""Leaf certificate facts and host name matching.

Real certificates are made here with ``cryptography`` (RSA 2048/1024, EC P-256, Ed25519,
SHA-1 and RSA-PSS signatures, SANs with wildcards and IP addresses, CN only, expired,
dated before 1970), and every field of :class:`LeafFacts` is checked against what was
put in. Broken DER (cut, corrupted, random, bad extension bodies) must give a value with
``error`` set, never an exception.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtensionOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.tls.certificate import LeafFacts, chain_sha256, describe_leaf, name_matches

UTC = dt.UTC
NOT_BEFORE = dt.datetime(2024, 1, 1, tzinfo=UTC)
NOT_AFTER = dt.datetime(2025, 1, 1, 12, 30, tzinfo=UTC)

KEYS: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey] = {
    "rsa2048": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "rsa1024": rsa.generate_private_key(public_exponent=65537, key_size=1024),
    "p256": ec.generate_private_key(ec.SECP256R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate(),
}


def name(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])


CA_NAME = name((NameOID.COUNTRY_NAME, "US"), (NameOID.ORGANIZATION_NAME, "Test CA"))


def make_cert(
    *,
    key: str = "rsa2048",
    issuer_key: str = "rsa2048",
    subject: x509.Name | None = None,
    issuer: x509.Name = CA_NAME,
    sans: list[x509.GeneralName] | None = None,
    not_before: dt.datetime = NOT_BEFORE,
    not_after: dt.datetime = NOT_AFTER,
    sign_hash: hashes.SHA256 | hashes.SHA384 | None = None,
    pss: bool = False,
    ca: bool | None = None,
    extra: tuple[x509.ExtensionType, ...] = (),
) -> bytes:
    subject = subject or name((NameOID.COMMON_NAME, "www.example.com"))
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(KEYS[key].public_key())
        .serial_number(12345)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if sans is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
    for extension in extra:
        builder = builder.add_extension(extension, critical=False)
    signer = KEYS[issuer_key]
    algorithm = None if issuer_key == "ed25519" else (sign_hash or hashes.SHA256())
    if pss:
        cert = builder.sign(
            signer,
            algorithm,
            rsa_padding=padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH),
        )
    else:
        cert = builder.sign(signer, algorithm)
    return cert.public_bytes(serialization.Encoding.DER)


SANS: list[x509.GeneralName] = [
    x509.DNSName("www.example.com"),
    x509.RFC822Name("admin@example.com"),
    x509.IPAddress(ipaddress.ip_address("192.0.2.10")),
    x509.DNSName("*.example.com"),
    x509.UniformResourceIdentifier("https://example.com/"),
    x509.IPAddress(ipaddress.ip_address("2001:db8::1")),
]


def test_rsa_2048_leaf_with_sans() -> None:
    subject = name(
        (NameOID.COUNTRY_NAME, "US"),
        (NameOID.ORGANIZATION_NAME, "Example, Inc."),
        (NameOID.COMMON_NAME, "www.example.com"),
    )
    facts = describe_leaf((make_cert(subject=subject, sans=SANS), b"junk intermediate"))
    assert facts == LeafFacts(
        subject="CN=www.example.com,O=Example\\, Inc.,C=US",
        issuer="O=Test CA,C=US",
        common_name="www.example.com",
        sans=("www.example.com", "192.0.2.10", "*.example.com", "2001:db8::1"),
        not_before=1704067200.0,
        not_after=1735734600.0,
        self_issued=False,
        key_type="RSA",
        key_bits=2048,
        signature_hash="sha256",
        is_ca=False,
        error=None,
    )


SHA256_WITH_RSA = bytes.fromhex("06092a864886f70d01010b")  # OID 1.2.840.113549.1.1.11
SHA1_WITH_RSA = bytes.fromhex("06092a864886f70d010105")  # OID 1.2.840.113549.1.1.5


def sha1_signed(der: bytes) -> bytes:
    """The same certificate labelled sha1WithRSAEncryption (``cryptography`` no longer signs
    with SHA-1; the signature itself is never verified here)."""
    assert der.count(SHA256_WITH_RSA) == 2  # tbsCertificate.signature and signatureAlgorithm
    return der.replace(SHA256_WITH_RSA, SHA1_WITH_RSA)


def test_rsa_1024_leaf_with_only_a_cn_and_sha1() -> None:
    facts = describe_leaf((sha1_signed(make_cert(key="rsa1024")),))
    assert facts is not None
    assert (facts.key_type, facts.key_bits) == ("RSA", 1024)
    assert facts.sans == ()
    assert facts.common_name == "www.example.com"
    assert facts.signature_hash == "sha1"
    assert facts.error is None


def test_ec_p256_self_signed_ca() -> None:
    root = name((NameOID.COMMON_NAME, "Root"))
    der = make_cert(key="p256", issuer_key="p256", subject=root, issuer=root, ca=True)
    facts = describe_leaf((der,))
    assert facts is not None
    assert (facts.key_type, facts.key_bits) == ("EC", 256)
    assert facts.self_issued is True
    assert facts.is_ca is True
    assert facts.signature_hash == "sha256"
    assert facts.subject == facts.issuer == "CN=Root"


def test_ed25519_signature_has_no_hash() -> None:
    der = make_cert(key="ed25519", issuer_key="ed25519", ca=False)
    facts = describe_leaf((der,))
    assert facts is not None
    assert (facts.key_type, facts.key_bits) == ("Ed25519", 256)
    assert facts.signature_hash is None
    assert facts.is_ca is False
    assert facts.error is None


def test_rsa_pss_signature_hash() -> None:
    facts = describe_leaf((make_cert(sign_hash=hashes.SHA384(), pss=True),))
    assert facts is not None and facts.signature_hash == "sha384"


def test_expired_and_pre_1970_dates() -> None:
    expired = describe_leaf(
        (
            make_cert(
                not_before=dt.datetime(2010, 1, 1, tzinfo=UTC),
                not_after=dt.datetime(2011, 1, 1, tzinfo=UTC),
            ),
        )
    )
    assert expired is not None
    assert expired.not_after == 1293840000.0
    old = describe_leaf(
        (
            make_cert(
                not_before=dt.datetime(1955, 6, 1, tzinfo=UTC),
                not_after=dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
            ),
        )
    )
    assert old is not None
    assert old.not_before == dt.datetime(1955, 6, 1, tzinfo=UTC).timestamp() < 0
    assert old.not_after == -1.0


def test_generalized_time_far_future() -> None:
    far = describe_leaf((make_cert(not_after=dt.datetime(2150, 1, 1, tzinfo=UTC)),))
    assert far is not None and far.not_after == dt.datetime(2150, 1, 1, tzinfo=UTC).timestamp()


def test_most_specific_common_name_wins() -> None:
    subject = name((NameOID.COMMON_NAME, "example.com"), (NameOID.COMMON_NAME, "www.example.com"))
    facts = describe_leaf((make_cert(subject=subject),))
    assert facts is not None and facts.common_name == "www.example.com"


def test_no_common_name() -> None:
    facts = describe_leaf((make_cert(subject=name((NameOID.ORGANIZATION_NAME, "Org"))),))
    assert facts is not None and facts.common_name is None and facts.subject == "O=Org"


def test_empty_chain() -> None:
    assert describe_leaf(()) is None
    assert chain_sha256(()) == []


def test_chain_sha256_includes_unparseable_certificates() -> None:
    der = make_cert()
    chain = (der, b"", b"\x30\x03\x02\x01\x01")
    assert chain_sha256(chain) == [hashlib.sha256(c).hexdigest() for c in chain]
    assert chain_sha256(chain)[1] == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


# --- broken input ------------------------------------------------------------------------


def assert_broken(facts: LeafFacts | None) -> None:
    assert facts is not None
    assert facts.error
    assert facts.subject is None and facts.not_after is None and facts.key_type is None


@pytest.mark.parametrize("cut", [1, 2, 4, 10, 50, 200, -100, -1])
def test_truncated_der(cut: int) -> None:
    der = make_cert(sans=SANS)
    assert_broken(describe_leaf((der[:cut],)))


@pytest.mark.parametrize("der", [b"", b"\x00", b"\x30", b"\x30\x00", b"not a certificate"])
def test_garbage_der(der: bytes) -> None:
    assert_broken(describe_leaf((der,)))


def test_bad_extension_body_spoils_only_its_fields() -> None:
    bad_san = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x30\x05\x82")
    facts = describe_leaf((make_cert(extra=(bad_san,)),))
    assert facts is not None
    assert facts.sans == () and facts.is_ca is None
    assert facts.error is not None and "subjectAltName" in facts.error
    assert facts.subject == "CN=www.example.com"
    assert facts.key_type == "RSA" and facts.not_after == 1735734600.0


VALID = make_cert(sans=SANS)


@settings(max_examples=300)
@given(cut=st.integers(0, len(VALID)), suffix=st.binary(max_size=64))
def test_valid_prefix_and_random_suffix_never_raises(cut: int, suffix: bytes) -> None:
    der = VALID[:cut] + suffix
    facts = describe_leaf((der,))
    assert isinstance(facts, LeafFacts)
    assert chain_sha256((der,)) == [hashlib.sha256(der).hexdigest()]


@settings(max_examples=300)
@given(position=st.integers(0, len(VALID) - 1), value=st.integers(0, 255))
def test_corrupted_byte_never_raises(position: int, value: int) -> None:
    der = VALID[:position] + bytes([value]) + VALID[position + 1 :]
    facts = describe_leaf((der,))
    assert isinstance(facts, LeafFacts)
    if facts.error is None:
        assert facts.subject is not None and facts.not_after is not None


@given(st.binary(max_size=300))
def test_random_bytes_never_raise(der: bytes) -> None:
    facts = describe_leaf((der,))
    assert isinstance(facts, LeafFacts) and facts.error


# --- name matching (RFC 6125 §6.4 / RFC 9525 §6.3) ---------------------------------------

SAN_LIST = ["www.example.com", "*.example.org", "192.0.2.10", "2001:db8::1"]


@pytest.mark.parametrize(
    ("host", "sans", "cn", "expected"),
    [
        ("www.example.com", SAN_LIST, None, True),
        ("WWW.Example.COM", SAN_LIST, None, True),
        ("www.example.com.", SAN_LIST, None, True),  # trailing dot ignored
        ("example.com", SAN_LIST, None, False),
        ("mail.example.com", SAN_LIST, None, False),
        # wildcards: exactly one left-most label
        ("a.example.org", SAN_LIST, None, True),
        ("example.org", SAN_LIST, None, False),
        ("a.b.example.org", SAN_LIST, None, False),
        (".example.org", SAN_LIST, None, False),
        ("xn--bcher-kva.example.org", SAN_LIST, None, True),  # an A-label is a label
        ("bücher.example.org", SAN_LIST, None, True),  # U-label compared as A-label
        ("bücher.example.com", ["xn--bcher-kva.example.com"], None, True),
        ("xn--bcher-kva.example.com", ["xn--*.example.com"], None, False),  # partial
        ("foo.example.com", ["f*.example.com"], None, False),
        ("foo.example.com", ["*.*.com"], None, False),
        ("example.com", ["*.com"], None, False),
        ("www.example.com", ["www.*.com"], None, False),
        ("*.example.org", SAN_LIST, None, False),  # a wildcard host matches nothing
        # IP addresses compare as addresses, never against DNS names or wildcards
        ("192.0.2.10", SAN_LIST, None, True),
        ("192.0.2.11", SAN_LIST, None, False),
        ("2001:0db8:0000::0001", SAN_LIST, None, True),
        ("[2001:db8::1]", SAN_LIST, None, True),
        ("10.0.0.1", ["*.0.0.1"], None, False),
        ("10.0.0.1", ["10.0.0.1.example.com"], None, False),
        ("1.2.3.4", ["www.example.com"], "1.2.3.4", False),  # SANs present: no CN
        # CN fallback only without DNS/IP SANs
        ("www.example.com", [], "www.example.com", True),
        ("a.example.com", [], "*.example.com", True),
        ("a.b.example.com", [], "*.example.com", False),
        ("www.example.com", ["other.example.com"], "www.example.com", False),
        ("1.2.3.4", [], "1.2.3.4", True),
        ("www.example.com", [], None, False),
        ("", SAN_LIST, "www.example.com", False),
        ("www..example.com", [], "www..example.com", False),
    ],
)
def test_name_matches(host: str, sans: list[str], cn: str | None, expected: bool) -> None:
    assert name_matches(host, sans, cn) is expected


@given(host=st.text(max_size=40), sans=st.lists(st.text(max_size=40), max_size=4), cn=st.text())
def test_name_matches_is_total(host: str, sans: list[str], cn: str) -> None:
    assert name_matches(host, sans, cn) in (True, False)

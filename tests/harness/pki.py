"""A throw-away test PKI made with ``cryptography`` when a scenario set starts.

What it does: a root CA, an intermediate CA, an untrusted "inspection" CA (the kind a
TLS-intercepting proxy uses) and leaf certificates of every flavour the samples need:
good, expired, not-yet-valid, self-signed, for the wrong host, served without their
intermediate, issued by the inspection CA, and client certificates. Everything is written
as PEM files into one directory so servers and clients can point at them.

What it does not do: revocation (no CRL/OCSP), or anything that should outlive a test run.
Leaves share one RSA key to keep generation fast; the certificates are what differ.
RFC 5280 (profile: basicConstraints, keyUsage, extendedKeyUsage, subjectAltName).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.x509 import Certificate, GeneralName


class LeafKind(Enum):
    """Flavours of server certificate the scenarios need."""

    GOOD = "good"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    SELF_SIGNED = "self_signed"
    MISSING_INTERMEDIATE = "missing_intermediate"  # good leaf, chain file without the intermediate
    INSPECTION = "inspection"  # issued by the untrusted interception CA


@dataclass(frozen=True, slots=True, kw_only=True)
class CertFiles:
    """PEM files for one server or client identity.

    ``chain`` is what the server sends (leaf first, then any intermediate); ``cert`` is the
    leaf alone; ``key`` the private key.
    """

    cert: Path
    chain: Path
    key: Path
    names: tuple[str, ...]
    kind: LeafKind


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def subject_alt_names(names: tuple[str, ...]) -> list[GeneralName]:
    """subjectAltName entries for DNS names and IP addresses."""
    from cryptography import x509

    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    return sans


def ca_certificate(
    cn: str,
    org: str,
    key: RSAPrivateKey,
    issuer: Certificate | None,
    issuer_key: RSAPrivateKey | None,
    now: dt.datetime,
    *,
    path_len: int,
) -> Certificate:
    """A CA certificate valid ten years either side of ``now``; self-signed without issuer."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=3650))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_encipherment=False, content_commitment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    return builder.sign(issuer_key if issuer_key is not None else key, hashes.SHA256())


class TestPKI:
    """A root, an intermediate, an untrusted inspection CA and leaves made on demand.

    Thread-safe: scenarios running in parallel may ask for leaves at the same time.
    ``root`` is the only trust anchor clients are given; ``inspection_ca`` is never trusted.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, *, org: str = "Example Test PKI") -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._org = org
        self._lock = threading.Lock()
        self._leaves: dict[tuple[tuple[str, ...], LeafKind, bool], CertFiles] = {}
        now = utc_now()
        self._root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._root = ca_certificate(f"{org} Root CA", org, self._root_key, None, None, now,
                                    path_len=1)
        self._int_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._int = ca_certificate(
            f"{org} Intermediate CA", org, self._int_key, self._root, self._root_key, now,
            path_len=0,
        )
        self._insp_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._insp = ca_certificate(
            "Corporate TLS Inspection CA", org, self._insp_key, None, None, now, path_len=0
        )
        self._leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.root = self._write("root-ca.pem", [self._root])
        self.intermediate = self._write("intermediate-ca.pem", [self._int])
        self.inspection_ca = self._write("inspection-ca.pem", [self._insp])
        self.inspection_ca_key = self._write_key("inspection-ca.key", self._insp_key)
        self.leaf_key = self._write_key("leaf.key", self._leaf_key)

    # -- public -------------------------------------------------------------------------

    def server(self, *names: str, kind: LeafKind = LeafKind.GOOD) -> CertFiles:
        """Server certificate for ``names`` (DNS names or IP addresses) of the given kind."""
        return self._leaf(tuple(names), kind, client=False)

    def client(self, name: str) -> CertFiles:
        """A good client certificate (extendedKeyUsage clientAuth) for ``name``."""
        return self._leaf((name,), LeafKind.GOOD, client=True)

    # -- internals ----------------------------------------------------------------------

    def _leaf(self, names: tuple[str, ...], kind: LeafKind, *, client: bool) -> CertFiles:
        key = (names, kind, client)
        with self._lock:
            found = self._leaves.get(key)
            if found is None:
                found = self._make_leaf(names, kind, client=client)
                self._leaves[key] = found
            return found

    def _make_leaf(self, names: tuple[str, ...], kind: LeafKind, *, client: bool) -> CertFiles:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        now = utc_now()
        not_before, not_after = now - dt.timedelta(days=30), now + dt.timedelta(days=365)
        if kind is LeafKind.EXPIRED:
            not_before, not_after = now - dt.timedelta(days=400), now - dt.timedelta(days=35)
        elif kind is LeafKind.NOT_YET_VALID:
            not_before, not_after = now + dt.timedelta(days=30), now + dt.timedelta(days=400)
        issuer_cert: Certificate | None = self._int
        issuer_key, chain_extra = self._int_key, [self._int]
        if kind is LeafKind.SELF_SIGNED:
            issuer_cert, issuer_key, chain_extra = None, self._leaf_key, []
        elif kind is LeafKind.MISSING_INTERMEDIATE:
            chain_extra = []
        elif kind is LeafKind.INSPECTION:
            issuer_cert, issuer_key, chain_extra = self._insp, self._insp_key, [self._insp]
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self._org),
                x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
            ]
        )
        sans = subject_alt_names(names)
        eku = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_cert.subject if issuer_cert is not None else subject)
            .public_key(self._leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_encipherment=True, content_commitment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=False,
                    crl_sign=False, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._leaf_key.public_key()),
                critical=False,
            )
        )
        if issuer_cert is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
        cert = builder.sign(issuer_key, hashes.SHA256())
        stem = "client-" if client else ""
        stem += "-".join(n.replace(":", "_") for n in names)[:60] + f".{kind.value}"
        return CertFiles(
            cert=self._write(f"{stem}.crt", [cert]),
            chain=self._write(f"{stem}.chain.pem", [cert, *chain_extra]),
            key=self.leaf_key,
            names=names,
            kind=kind,
        )

    def _write(self, name: str, certs: list[Certificate]) -> Path:
        from cryptography.hazmat.primitives import serialization

        path = self.dir / name
        path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
        path.chmod(0o644)
        return path

    def _write_key(self, name: str, key: RSAPrivateKey) -> Path:
        from cryptography.hazmat.primitives import serialization

        path = self.dir / name
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o644)  # read by servers that drop privileges (squid runs as 'proxy')
        return path

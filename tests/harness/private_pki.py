"""A second throw-away PKI: an organisation's internal root CA, and leaves made to order.

What it does: ``PrivatePKI`` makes a root CA of its own (not the test PKI's, never in any
public trust store) and leaves signed directly by it, with an ECDSA P-256 key each (as
many internal PKIs issue); ``issue_leaf`` signs a server leaf for given names with any key
under any CA (for a leaf with a weak key under the test PKI's intermediate). Everything is
written as PEM so servers and clients can point at it; ``bump_ca`` is the root's
certificate and key in one file, the form squid's ``tls-cert=`` takes.

What it does not do: intermediates, revocation, client certificates (``TestPKI`` has
those). RFC 5280 profile as in ``tests/harness/pki.py``.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

from tests.harness.pki import ca_certificate, subject_alt_names, utc_now


def _pem_key(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))


def _pem_cert(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(cert.public_bytes(serialization.Encoding.PEM))


def issue_leaf(ca_cert: Any, ca_key: Any, names: tuple[str, ...], key: Any, *,
               org: str) -> Any:
    """A server certificate for ``names`` (DNS names or addresses) with ``key``'s public
    key, signed by ``ca_key``, valid from 30 days ago for a year."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = utc_now()
    sans = subject_alt_names(names)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                         x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    rsa = not hasattr(key.public_key(), "curve")  # key_encipherment is for RSA keys only
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_encipherment=rsa, content_commitment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_cert.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


class PrivatePKI:
    """An internal root CA and ECDSA leaves signed by it; thread-safe."""

    __test__ = False

    def __init__(self, directory: Path, *, org: str = "Example Corp Internal PKI") -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.dir, self.org = directory, org
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._leaves: dict[tuple[str, ...], tuple[Path, Path]] = {}
        now = utc_now()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._cert = ca_certificate(f"{org} Root CA", org, self._key, None, None, now,
                                    path_len=0)
        self.root = self._write("private-root-ca.pem", _pem_cert(self._cert))
        self.bump_ca = self._write("private-bump-ca.pem",
                                   _pem_cert(self._cert) + _pem_key(self._key))

    def _write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        path.chmod(0o644)  # read by servers that drop privileges (squid runs as 'proxy')
        return path

    def leaf(self, *names: str) -> tuple[Path, Path]:
        """(certificate, key) PEM files of an ECDSA P-256 leaf for ``names``."""
        from cryptography.hazmat.primitives.asymmetric import ec

        with self._lock:
            found = self._leaves.get(names)
            if found is None:
                key = ec.generate_private_key(ec.SECP256R1())
                cert = issue_leaf(self._cert, self._key, names, key, org=self.org)
                stem = "-".join(names)[:60]
                found = (self._write(f"{stem}.crt", _pem_cert(cert)),
                         self._write(f"{stem}.key", _pem_key(key)))
                self._leaves[names] = found
            return found


def weak_rsa_leaf(directory: Path, ca_cert_pem: Path, ca_key: Any, names: tuple[str, ...],
                  bits: int, *, org: str) -> tuple[Path, Path]:
    """(certificate, key) of an RSA leaf of ``bits`` bits signed by the given CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.read_bytes())
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    cert = issue_leaf(ca_cert, ca_key, names, key, org=org)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"rsa{bits}.crt", directory / f"rsa{bits}.key"
    cert_path.write_bytes(_pem_cert(cert))
    key_path.write_bytes(_pem_key(key))
    return cert_path, key_path

"""Certificates for the webhook: a CA and a serving certificate (cryptography).

The file names are those of a `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`, plus
`ca.crt`), so a mounted Secret and a development directory look the same to the server.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"
CA_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"


def service_names(service: str, namespace: str, domain: str = "cluster.local") -> list[str]:
    """The DNS names the API server may use to reach a webhook Service."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.{domain}",
    ]


DEV_NAMES = ["localhost", "127.0.0.1", "::1", *service_names("meshwarden", "meshwarden")]


@dataclass(frozen=True)
class CertPaths:
    cert: Path
    key: Path
    ca: Path

    @classmethod
    def in_dir(cls, directory: Path) -> CertPaths:
        return cls(directory / CERT_FILE, directory / KEY_FILE, directory / CA_FILE)


@dataclass(frozen=True)
class Bundle:
    """PEM bytes of a CA and the serving certificate it signed."""

    ca_cert: bytes
    ca_key: bytes
    cert: bytes
    key: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def create_bundle(
    names: list[str], *, days: int = 365, ca_days: int = 3650, ca_name: str = "meshwarden CA"
) -> Bundle:
    """A fresh CA and a serving certificate for `names` (DNS names or IP addresses)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = _key()
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_subject)
        .issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=ca_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = _key()
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Bundle(
        ca_cert=ca_cert.public_bytes(serialization.Encoding.PEM),
        ca_key=_pem_key(ca_key),
        cert=cert.public_bytes(serialization.Encoding.PEM),
        key=_pem_key(key),
    )


def write_bundle(bundle: Bundle, directory: Path) -> CertPaths:
    """Write the bundle; keys are readable by the owner only."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = CertPaths.in_dir(directory)
    _write(paths.ca, bundle.ca_cert, 0o644)
    _write(directory / CA_KEY_FILE, bundle.ca_key, 0o600)
    _write(paths.key, bundle.key, 0o600)
    _write(paths.cert, bundle.cert, 0o644)
    return paths


def _write(path: Path, data: bytes, mode: int) -> None:
    # Write aside and rename, so a reader never sees half a file.
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def ensure_dev_certs(directory: Path, names: list[str] | None = None) -> tuple[CertPaths, bool]:
    """The serving certificate in `directory`, created (with its CA) when absent.
    Returns the paths and whether they were created now."""
    paths = CertPaths.in_dir(directory)
    if paths.cert.exists() and paths.key.exists():
        return paths, False
    write_bundle(create_bundle(names or DEV_NAMES), directory)
    return paths, True


# --- in-cluster: renewal decisions for the serving Secret ------------------------------
#
# `meshwarden certs --secret` keeps no CA key anywhere: each issuance makes a new CA and
# a serving certificate, and the caBundle trusts the new CA together with the CA of the
# certificate being replaced, so the API server accepts both while replicas reload.

SECRET_KEYS = (CERT_FILE, KEY_FILE, CA_FILE)


@dataclass(frozen=True)
class SecretPlan:
    """What the serving Secret and the caBundle should hold. `reason` is why a new
    certificate is issued, or None when the stored one is kept."""

    data: dict[str, bytes]
    ca_bundle: bytes
    reason: str | None


def _certs_in(pem: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        return []


def _pem(certs: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _issuer_of(leaf: x509.Certificate, candidates: list[x509.Certificate]) -> x509.Certificate | None:
    for ca in candidates:
        try:
            leaf.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return ca
    return None


def _sans(cert: x509.Certificate) -> set[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {
        *ext.get_values_for_type(x509.DNSName),
        *(str(ip) for ip in ext.get_values_for_type(x509.IPAddress)),
    }


def renewal_reason(
    data: dict[str, bytes] | None, names: list[str], renew_before: dt.timedelta, now: dt.datetime
) -> str | None:
    """Why the stored Secret data cannot go on serving `names`, or None when it can."""
    if data is None:
        return "no Secret yet"
    missing = [k for k in SECRET_KEYS if not data.get(k)]
    if missing:
        return f"the Secret lacks {', '.join(missing)}"
    try:
        leaf = x509.load_pem_x509_certificate(data[CERT_FILE])
        key = serialization.load_pem_private_key(data[KEY_FILE], password=None)
    except (ValueError, TypeError):
        return "the stored certificate or key does not parse"
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
        return "the stored key is not the certificate's"
    absent = [n for n in names if n not in _sans(leaf)]
    if absent:
        return f"the certificate does not name {', '.join(absent)}"
    if _issuer_of(leaf, _certs_in(data[CA_FILE])) is None:
        return "ca.crt does not hold the certificate's issuer"
    if leaf.not_valid_after_utc - now <= renew_before:
        return f"the certificate expires {leaf.not_valid_after_utc.isoformat()}"
    return None


def plan_secret(
    data: dict[str, bytes] | None,
    names: list[str],
    *,
    renew_before: dt.timedelta,
    days: int,
    now: dt.datetime | None = None,
) -> SecretPlan:
    """Keep the stored certificate, or issue a new one whose caBundle also trusts the CA of
    the certificate it replaces (while that CA is valid)."""
    now = now or dt.datetime.now(dt.UTC)
    if days * dt.timedelta(days=1) <= renew_before:
        raise ValueError(
            f"a {days}-day certificate would be renewed at once (renew before {renew_before.days} days)"
        )
    reason = renewal_reason(data, names, renew_before, now)
    if reason is None:
        assert data is not None
        return SecretPlan(dict(data), data[CA_FILE], None)
    # The CA outlives its one certificate by the renewal window, so the old CA is still
    # valid while the new certificate rolls out.
    bundle = create_bundle(names, days=days, ca_days=days + max(renew_before.days, 1) + 1)
    trusted = _certs_in(bundle.ca_cert)
    if data and data.get(CERT_FILE) and data.get(CA_FILE):
        try:
            old_leaf = x509.load_pem_x509_certificate(data[CERT_FILE])
        except ValueError:
            old_leaf = None
        old_ca = _issuer_of(old_leaf, _certs_in(data[CA_FILE])) if old_leaf else None
        if old_ca is not None and old_ca.not_valid_after_utc > now:
            trusted.append(old_ca)
    ca_bundle = _pem(trusted)
    return SecretPlan({CERT_FILE: bundle.cert, KEY_FILE: bundle.key, CA_FILE: ca_bundle}, ca_bundle, reason)

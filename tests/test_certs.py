"""Development certificates: a CA that signs a serving certificate for the right names."""

from __future__ import annotations

import base64
import ipaddress
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from webhook.certs import DEV_NAMES, create_bundle, ensure_dev_certs, service_names


def _sans(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(ext.get_values_for_type(x509.DNSName)), {
        str(i) for i in ext.get_values_for_type(x509.IPAddress)
    }


def test_serving_certificate_is_signed_by_the_ca_for_the_given_names() -> None:
    bundle = create_bundle(["meshwarden.meshwarden.svc", "127.0.0.1"], days=30)
    ca = x509.load_pem_x509_certificate(bundle.ca_cert)
    cert = x509.load_pem_x509_certificate(bundle.cert)
    assert cert.issuer == ca.subject
    pub = ca.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    cert.verify_directly_issued_by(ca)  # raises if the signature or issuer is wrong
    dns, ips = _sans(cert)
    assert dns == {"meshwarden.meshwarden.svc"} and ips == {"127.0.0.1"}
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days in (30, 31)


def test_dev_certs_cover_localhost_and_the_service_names(tmp_path: Path) -> None:
    paths, created = ensure_dev_certs(tmp_path / "certs")
    assert created
    dns, ips = _sans(x509.load_pem_x509_certificate(paths.cert.read_bytes()))
    assert {"localhost", *service_names("meshwarden", "meshwarden")} <= dns
    assert {"127.0.0.1", str(ipaddress.ip_address("::1"))} <= ips
    assert set(DEV_NAMES) == dns | ips
    assert paths.key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "certs" / "ca.key").stat().st_mode & 0o777 == 0o600
    # A second call keeps what is there.
    before = paths.cert.read_bytes()
    again, created_again = ensure_dev_certs(tmp_path / "certs")
    assert not created_again and again.cert.read_bytes() == before


def test_certs_command_writes_a_bundle_and_prints_the_ca_bundle(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "webhook",
            "certs",
            "--out-dir",
            str(out),
            "--service",
            "mw",
            "--namespace",
            "sec",
            "--print-ca-bundle",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert base64.b64decode(proc.stdout.strip()) == (out / "ca.crt").read_bytes()
    dns, _ = _sans(x509.load_pem_x509_certificate((out / "tls.crt").read_bytes()))
    assert "mw.sec.svc" in dns and "mw.sec.svc.cluster.local" in dns

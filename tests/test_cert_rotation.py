"""Certificate rotation under a running `meshwarden serve`: the cert dir is laid out as the
kubelet lays out a mounted Secret (files behind a `..data` symlink swapped atomically), a
new CA and certificate are swapped in while clients keep calling, and the server presents
the new chain without a restart and without one failed request. Also the reloader on its
own: no reload without a change, a bad pair leaves the old one in place, expiry warnings."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import socket
import ssl
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from tests.reviews import review
from tests.serving import serve, wait_for
from webhook.cert_reload import CertificateError, CertReloader, read_pair
from webhook.certs import CA_FILE, CERT_FILE, DEV_NAMES, KEY_FILE, Bundle, create_bundle

SERVICE_ENTRY = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "ServiceEntry",
    "metadata": {"name": "httpbin-ext", "namespace": "default"},
    "spec": {
        "hosts": ["httpbin.org"],
        "location": "MESH_EXTERNAL",
        "resolution": "DNS",
        "ports": [{"number": 443, "name": "https", "protocol": "HTTPS"}],
    },
}


def _publish(mount: Path, files: dict[str, bytes]) -> None:
    """Write `files` into `mount` the way the kubelet updates a Secret volume: a fresh
    timestamped directory, then an atomic rename of the `..data` symlink onto it; the
    visible names are symlinks through `..data`."""
    mount.mkdir(parents=True, exist_ok=True)
    data = mount / "..data"
    old = os.readlink(data) if data.is_symlink() else None
    target = mount / f"..{uuid.uuid4().hex}"
    target.mkdir()
    for name, content in files.items():
        (target / name).write_bytes(content)
    tmp = mount / "..data_tmp"
    tmp.symlink_to(target.name)
    os.replace(tmp, data)
    for name in files:
        link = mount / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")
    if old is not None:
        for f in (mount / old).iterdir():
            f.unlink()
        (mount / old).rmdir()


def _secret(bundle: Bundle) -> dict[str, bytes]:
    return {CERT_FILE: bundle.cert, KEY_FILE: bundle.key, CA_FILE: bundle.ca_cert}


def _trusting(*cas: bytes) -> ssl.SSLContext:
    return ssl.create_default_context(cadata="".join(c.decode() for c in cas))


def _serial(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number


def _served_serial(port: int, trust: ssl.SSLContext) -> int:
    with httpx.Client(verify=trust, timeout=5.0) as client:
        # A fresh client: a fresh connection and handshake.
        client.get(f"https://127.0.0.1:{port}/healthz").raise_for_status()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5.0) as raw,
        trust.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_rotation_under_load_switches_to_the_new_ca_without_a_failed_request(tmp_path: Path) -> None:
    mount = tmp_path / "tls"
    old = create_bundle(DEV_NAMES)
    new = create_bundle(DEV_NAMES)
    assert old.ca_cert != new.ca_cert
    _publish(mount, _secret(old))

    with serve(tmp_path, "--cert-check-interval", "0.2", cert_dir=mount) as server:
        url = server.url
        # The API server's view during a renewal: its caBundle holds both CAs.
        both = _trusting(old.ca_cert, new.ca_cert)
        only_old = _trusting(old.ca_cert)
        only_new = _trusting(new.ca_cert)
        assert _served_serial(server.port, only_old) == _serial(old.cert)

        # A keep-alive connection opened on the old certificate.
        persistent = httpx.Client(base_url=url, verify=only_old, timeout=5.0)
        assert persistent.get("/healthz").status_code == 200

        stop = threading.Event()
        results: list[str] = []
        lock = threading.Lock()

        def caller() -> None:
            # No keep-alive: every request makes a new TLS handshake, so requests span the
            # swap at the handshake, where the certificate is chosen.
            limits = httpx.Limits(max_keepalive_connections=0)
            with httpx.Client(base_url=url, verify=both, timeout=10.0, limits=limits) as client:
                while not stop.is_set():
                    body = review(SERVICE_ENTRY)
                    try:
                        r = client.post("/validate", json=body)
                        uid_back = r.json()["response"]["uid"]
                        outcome = (
                            "ok" if r.status_code == 200 and uid_back == body["request"]["uid"] else r.text
                        )
                    except Exception as exc:
                        outcome = f"{type(exc).__name__}: {exc}"
                    with lock:
                        results.append(outcome)

        callers = [threading.Thread(target=caller) for _ in range(4)]
        for t in callers:
            t.start()
        try:
            assert wait_for(lambda: len(results) >= 20, timeout=30.0), "no traffic before the swap"
            before = len(results)
            _publish(mount, _secret(new))
            assert wait_for(lambda: _serves(server.port, only_new), timeout=20.0), (
                "the new certificate was not served:\n" + server.log_text()
            )
            switched_at = len(results)
            assert wait_for(lambda: len(results) >= switched_at + 20, timeout=30.0)
        finally:
            stop.set()
            for t in callers:
                t.join(30)

        failures = [r for r in results if r != "ok"]
        assert not failures, f"{len(failures)} of {len(results)} requests failed: {failures[:3]}"
        assert switched_at > before, "traffic ran across the swap"

        # New handshakes present the new chain only.
        assert _served_serial(server.port, only_new) == _serial(new.cert)
        with (
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
            httpx.Client(verify=only_old, timeout=5.0) as stale,
        ):
            stale.get(f"{url}/healthz")
        # The connection opened before the swap keeps its session.
        assert persistent.get("/healthz").status_code == 200
        persistent.close()

        with httpx.Client(verify=only_new, timeout=5.0) as client:
            metrics = client.get(f"{url}/metrics").text
        assert re.search(r'meshwarden_tls_certificate_reloads_total\{result="success"\} 1\.0', metrics)
        expiry = float(
            re.search(r"^meshwarden_tls_certificate_expiry_timestamp_seconds (\S+)$", metrics, re.M).group(1)  # type: ignore[union-attr]
        )
        assert expiry == x509.load_pem_x509_certificate(new.cert).not_valid_after_utc.timestamp()
        assert "serving certificate reloaded" in server.log_text()


def _serves(port: int, trust: ssl.SSLContext) -> bool:
    try:
        with httpx.Client(verify=trust, timeout=5.0) as client:
            return client.get(f"https://127.0.0.1:{port}/healthz").status_code == 200
    except httpx.ConnectError:
        return False


def test_a_mismatched_pair_is_refused_and_the_old_certificate_kept(tmp_path: Path) -> None:
    mount = tmp_path / "tls"
    first = create_bundle(DEV_NAMES)
    second = create_bundle(DEV_NAMES)
    _publish(mount, _secret(first))
    with serve(tmp_path, "--cert-check-interval", "0.2", cert_dir=mount) as server:
        only_first = _trusting(first.ca_cert)
        _publish(mount, {CERT_FILE: second.cert, KEY_FILE: first.key, CA_FILE: second.ca_cert})
        assert wait_for(lambda: "not reloaded" in server.log_text(), timeout=20.0), server.log_text()
        assert "is not the key of the certificate" in server.log_text()
        assert _served_serial(server.port, only_first) == _serial(first.cert)
        # The matching pair arrives: it is taken.
        _publish(mount, _secret(second))
        assert wait_for(lambda: _serves(server.port, _trusting(second.ca_cert)), timeout=20.0)
        with httpx.Client(verify=_trusting(second.ca_cert), timeout=5.0) as client:
            metrics = client.get(f"{server.url}/metrics").text
        assert re.search(r'reloads_total\{result="failure"\} 1\.0', metrics)
        assert re.search(r'reloads_total\{result="success"\} 1\.0', metrics)


def test_serve_refuses_a_mismatched_pair_at_start(tmp_path: Path) -> None:
    mount = tmp_path / "tls"
    a, b = create_bundle(DEV_NAMES), create_bundle(DEV_NAMES)
    _publish(mount, {CERT_FILE: a.cert, KEY_FILE: b.key, CA_FILE: a.ca_cert})
    with (
        pytest.raises(RuntimeError, match="is not the key of the certificate"),
        serve(tmp_path, cert_dir=mount),
    ):
        pass


# --- the reloader on its own -----------------------------------------------------------


def _context() -> ssl.SSLContext:
    return ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)


def test_reloader_reloads_only_on_change(tmp_path: Path) -> None:
    mount = tmp_path / "tls"
    first, second = create_bundle(DEV_NAMES), create_bundle(DEV_NAMES)
    _publish(mount, _secret(first))
    loaded: list[int] = []
    reloader = CertReloader(
        _context(), mount / CERT_FILE, mount / KEY_FILE, on_loaded=lambda c: loaded.append(c.serial_number)
    )
    reloader.load()
    assert not reloader.check() and not reloader.check()
    _publish(mount, _secret(second))
    assert reloader.check()
    assert not reloader.check()
    assert loaded == [_serial(first.cert), _serial(second.cert)]


def test_reloader_tolerates_files_missing_for_a_moment(tmp_path: Path) -> None:
    mount = tmp_path / "tls"
    _publish(mount, _secret(create_bundle(DEV_NAMES)))
    reloader = CertReloader(_context(), mount / CERT_FILE, mount / KEY_FILE)
    reloader.load()
    os.unlink(mount / "..data")
    assert reloader.check() is False


def test_read_pair_errors_name_the_problem(tmp_path: Path) -> None:
    bundle = create_bundle(DEV_NAMES)
    (tmp_path / "c").write_bytes(b"not a certificate")
    (tmp_path / "k").write_bytes(bundle.key)
    with pytest.raises(CertificateError, match="not a PEM certificate"):
        read_pair(tmp_path / "c", tmp_path / "k")
    (tmp_path / "c").write_bytes(bundle.cert)
    (tmp_path / "k").write_bytes(b"junk")
    with pytest.raises(CertificateError, match="not an unencrypted PEM private key"):
        read_pair(tmp_path / "c", tmp_path / "k")
    with pytest.raises(CertificateError, match="cannot read"):
        read_pair(tmp_path / "missing", tmp_path / "k")


def test_expiry_is_warned_well_before_and_logged_as_error_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mount = tmp_path / "tls"
    _publish(mount, _secret(create_bundle(DEV_NAMES, days=10)))
    now = [dt.datetime.now(dt.UTC)]
    expiries: list[float] = []
    reloader = CertReloader(
        _context(),
        mount / CERT_FILE,
        mount / KEY_FILE,
        warn_before=dt.timedelta(days=21),
        on_loaded=lambda c: expiries.append(c.not_valid_after_utc.timestamp()),
        clock=lambda: now[0],
    )
    with caplog.at_level(logging.WARNING, logger="meshwarden.certs"):
        reloader.load()
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert re.search(r"expires in (9|10) days", caplog.text)
    assert len(expiries) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="meshwarden.certs"):
        reloader.check()
    assert not caplog.records, "repeated at most hourly"

    # A fresh reloader past expiry: an error.
    now[0] += dt.timedelta(days=11)
    late = CertReloader(_context(), mount / CERT_FILE, mount / KEY_FILE, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="meshwarden.certs"):
        late.load()
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert "expired" in caplog.text


def test_no_warning_for_a_certificate_far_from_expiry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mount = tmp_path / "tls"
    _publish(mount, _secret(create_bundle(DEV_NAMES, days=365)))
    reloader = CertReloader(_context(), mount / CERT_FILE, mount / KEY_FILE)
    with caplog.at_level(logging.WARNING, logger="meshwarden.certs"):
        reloader.load()
        reloader.check()
    assert not caplog.records

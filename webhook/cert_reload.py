"""Reload the serving certificate from disk into the live TLS context, without a restart.

Kubernetes updates a mounted Secret by writing the new files into a fresh directory and
swapping the `..data` symlink to it, so a renewal shows as a new inode behind `tls.crt`
and `tls.key`. `CertReloader.check` compares what the paths point at now with what was
loaded and, on a change, loads the new pair into the same `ssl.SSLContext` the server
listens with: handshakes from then on present the new chain; connections already open
keep theirs.

A pair that does not load (a half-written file, a key of another certificate) leaves the
context as it was and is retried at the next check. The expiry of the certificate in use
is published (`on_loaded`) and logged as a warning while it is within `warn_before`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import ssl
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

log = logging.getLogger("meshwarden.certs")

DEFAULT_WARN_BEFORE = dt.timedelta(days=21)
# While the certificate stays close to expiry, the warning is repeated this often.
_WARN_EVERY_SECONDS = 3600.0

_Stamp = tuple[tuple[int, int, int, int], ...]


class CertificateError(Exception):
    """The certificate/key pair on disk cannot be served."""


def _stamp(*paths: Path) -> _Stamp:
    # stat follows the symlinks, so a swapped `..data` directory shows as a new inode.
    out = []
    for p in paths:
        st = os.stat(p)
        out.append((st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


def read_pair(cert_path: Path, key_path: Path) -> tuple[bytes, bytes, x509.Certificate]:
    """The PEM bytes of a matching certificate chain and key, and the leaf certificate."""
    try:
        cert_pem = cert_path.read_bytes()
        key_pem = key_path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    try:
        leaf = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise CertificateError(f"{cert_path}: not a PEM certificate ({exc})") from exc
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"{key_path}: not an unencrypted PEM private key ({exc})") from exc
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, pub) != leaf.public_key().public_bytes(der, pub):
        raise CertificateError(f"{key_path} is not the key of the certificate in {cert_path}")
    return cert_pem, key_pem, leaf


def load_into(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """Load a pair into `context`. It is checked on a scratch context first: a failed
    load_cert_chain can leave a context with the new certificate and the old key."""
    scratch_dir = Path(tempfile.mkdtemp(prefix="meshwarden-tls-"))
    try:
        cert_file = scratch_dir / "tls.crt"
        key_file = scratch_dir / "tls.key"
        cert_file.write_bytes(cert_pem)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_file, key_file)
        except ssl.SSLError as exc:
            raise CertificateError(f"the certificate and key do not load: {exc}") from exc
        context.load_cert_chain(cert_file, key_file)
    finally:
        shutil.rmtree(scratch_dir, ignore_errors=True)


class CertReloader:
    def __init__(
        self,
        context: ssl.SSLContext,
        cert_path: Path,
        key_path: Path,
        *,
        warn_before: dt.timedelta = DEFAULT_WARN_BEFORE,
        on_loaded: Callable[[x509.Certificate], None] | None = None,
        on_reload: Callable[[bool], None] | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.context = context
        self.cert_path = cert_path
        self.key_path = key_path
        self.warn_before = warn_before
        self.on_loaded = on_loaded
        self.on_reload = on_reload
        self.clock = clock
        self.current: x509.Certificate | None = None
        self._stamp: _Stamp | None = None
        self._failed_stamp: _Stamp | None = None
        self._last_warned = -_WARN_EVERY_SECONDS

    def load(self) -> x509.Certificate:
        """Load the pair now (at start: errors propagate)."""
        stamp = _stamp(self.cert_path, self.key_path)
        cert_pem, key_pem, leaf = read_pair(self.cert_path, self.key_path)
        load_into(self.context, cert_pem, key_pem)
        self._loaded(stamp, leaf)
        return leaf

    def check(self) -> bool:
        """Reload if the files changed since the last load. True when a new certificate
        was loaded. Never raises: a bad pair is logged once and retried at the next check."""
        try:
            stamp = _stamp(self.cert_path, self.key_path)
        except OSError as exc:
            # Between the removal of an old `..data` target and the new link; or gone.
            log.debug("serving certificate not readable now: %s", exc)
            return False
        if stamp != self._stamp:
            try:
                cert_pem, key_pem, leaf = read_pair(self.cert_path, self.key_path)
                load_into(self.context, cert_pem, key_pem)
            except CertificateError as exc:
                if stamp != self._failed_stamp:
                    log.error("serving certificate not reloaded, still serving the previous one: %s", exc)
                    if self.on_reload:
                        self.on_reload(False)
                self._failed_stamp = stamp
                self._warn_if_expiring()
                return False
            self._loaded(stamp, leaf)
            log.info(
                "serving certificate reloaded: serial %x, valid until %s",
                leaf.serial_number,
                leaf.not_valid_after_utc.isoformat(),
            )
            if self.on_reload:
                self.on_reload(True)
            return True
        self._warn_if_expiring()
        return False

    def _loaded(self, stamp: _Stamp, leaf: x509.Certificate) -> None:
        self._stamp = stamp
        self._failed_stamp = None
        self.current = leaf
        self._last_warned = -_WARN_EVERY_SECONDS
        if self.on_loaded:
            self.on_loaded(leaf)
        self._warn_if_expiring()

    def _warn_if_expiring(self) -> None:
        if self.current is None:
            return
        left = self.current.not_valid_after_utc - self.clock()
        if left > self.warn_before:
            return
        now = time.monotonic()
        if now - self._last_warned < _WARN_EVERY_SECONDS:
            return
        self._last_warned = now
        if left.total_seconds() <= 0:
            log.error(
                "the serving certificate expired at %s: the API server refuses it; renew it "
                "(meshwarden certs, or cert-manager)",
                self.current.not_valid_after_utc.isoformat(),
            )
        else:
            log.warning(
                "the serving certificate expires in %d days (%s): renewal has not happened; "
                "check the meshwarden-certs CronJob or cert-manager",
                left.days,
                self.current.not_valid_after_utc.isoformat(),
            )

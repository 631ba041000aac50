"""`meshwarden serve`: the admission webhook over HTTPS."""

from __future__ import annotations

import datetime as dt
import logging
import ssl
import sys
from pathlib import Path

import click
import uvicorn

from webhook.audit import AuditKeyError, AuditLog, read_key, replica_name
from webhook.cert_reload import CertificateError, CertReloader, read_pair
from webhook.certs import DEV_NAMES, ensure_dev_certs
from webhook.cluster import ClusterError, in_cluster
from webhook.cluster_inventory import ClusterInventory
from webhook.inventory import InventoryView, MemoryInventory
from webhook.metrics import Metrics
from webhook.policy import PolicyError
from webhook.policy_store import PolicyStore, same_inventory_settings
from webhook.server import AppState, create_app
from webhook.shutdown import Draining, GracefulServer

log = logging.getLogger("meshwarden")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8443, show_default=True, type=click.IntRange(0, 65535), help="HTTPS port.")
@click.option(
    "--cert-dir",
    default="certs",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Holds tls.crt and tls.key (a mounted kubernetes.io/tls Secret works as is). "
    "When empty, a development CA and serving certificate are created there.",
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Policy file (default: the embedded policies/policy.yaml).",
)
@click.option(
    "--inventory-from",
    "inventory_from",
    multiple=True,
    type=click.Path(exists=True),
    help="Preload the inventory from YAML files or directories (repeatable).",
)
@click.option(
    "--audit-log",
    "audit_log",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append one hash-chained JSON line per decision to this file (rotated by size).",
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    help="Watch the cluster of this kubeconfig for the inventory (in a pod: in-cluster config).",
)
@click.option("--context", "kube_context", help="The kubeconfig context to use.")
@click.option("--audit-stdout", is_flag=True, help="Also write the audit records to stdout (a log pipeline).")
@click.option(
    "--audit-max-bytes",
    default=100 * 1024 * 1024,
    show_default=True,
    type=click.IntRange(min=0),
    help="Rotate the audit file when it would grow past this size (0: never).",
)
@click.option(
    "--audit-backups",
    default=10,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rotated audit files kept (audit.log.1 ... audit.log.N).",
)
@click.option("--audit-fsync", is_flag=True, help="fsync the audit file after every record.")
@click.option(
    "--audit-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Key the audit chain with HMAC-SHA256 (a file holding at least 16 random bytes, e.g. a "
    "mounted Secret), so a rewritten log cannot be re-hashed without it.",
)
@click.option(
    "--replica",
    default=replica_name,
    show_default="$POD_NAME, else $HOSTNAME",
    help="This replica's name, written into every audit record.",
)
@click.option(
    "--shutdown-delay",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to keep serving after SIGTERM with /readyz failing, while the endpoint is "
    "removed from the Service (deploy/ sets 5); in-flight requests are then drained.",
)
@click.option(
    "--cert-check-interval",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between checks of the certificate files for a renewal to reload.",
)
@click.option(
    "--cert-warn-days",
    default=21,
    show_default=True,
    type=click.IntRange(min=0),
    help="Log a warning while the serving certificate expires within this many days.",
)
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
def command(
    host: str,
    port: int,
    cert_dir: Path,
    policy_path: Path | None,
    inventory_from: tuple[str, ...],
    audit_log: Path | None,
    kubeconfig: str | None,
    kube_context: str | None,
    audit_stdout: bool,
    audit_max_bytes: int,
    audit_backups: int,
    audit_fsync: bool,
    audit_key_file: Path | None,
    replica: str,
    shutdown_delay: float,
    cert_check_interval: float,
    cert_warn_days: int,
    log_level: str,
) -> None:
    """Serve the admission webhook (POST /validate, /mutate; GET /healthz, /readyz, /metrics)."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        policies = PolicyStore(policy_path)
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from exc
    policy = policies.current
    policies.guards.append(same_inventory_settings)
    log.info("policy %s (sha256 %s)", policy.source, policy.sha256[:12])

    files = MemoryInventory(domain=policy.mesh.cluster_domain)
    inventory: InventoryView = files
    cluster: ClusterInventory | None = None
    if inventory_from and (kubeconfig or kube_context):
        raise click.UsageError("--inventory-from and --kubeconfig/--context are alternatives")
    if kubeconfig or kube_context or in_cluster():
        try:
            cluster = ClusterInventory.connect(
                kubeconfig,
                kube_context,
                root_namespace=policy.mesh.root_namespace,
                domain=policy.mesh.cluster_domain,
            )
        except ClusterError as exc:
            raise click.ClickException(str(exc)) from exc
        inventory = cluster.view
        log.info("inventory: watching the cluster at %s", cluster.server)
    elif inventory_from:
        from webhook.inventory_files import load_inventory
        from webhook.sources import SourceError

        try:
            files, left_out = load_inventory(inventory_from, policy)
            inventory = files
        except SourceError as exc:
            raise click.ClickException(f"--inventory-from: {exc}") from exc
        log.info(
            "inventory: %d objects from %s (%d documents left out)",
            len(files),
            ", ".join(inventory_from),
            left_out,
        )

    paths, created = ensure_dev_certs(cert_dir, DEV_NAMES)
    if created:
        log.warning(
            "no certificate in %s: created a development CA (%s) and a serving certificate for %s",
            cert_dir,
            paths.ca,
            ", ".join(DEV_NAMES),
        )

    try:
        read_pair(paths.cert, paths.key)
    except CertificateError as exc:
        raise click.ClickException(f"--cert-dir {cert_dir}: {exc}") from exc

    metrics = Metrics()
    metrics.policy_loaded(policy.sha256)
    policies.on_reload.append(
        lambda new, _error: metrics.policy_reloaded(new is not None, new.sha256 if new else "")
    )
    state = AppState(policies=policies, inventory=inventory, metrics=metrics, replica=replica)
    if cluster is not None:
        watched = cluster
        metrics.track_inventory(lambda: len(watched.view), lambda: watched.synced)
        # Until the first full list of every kind, cross-object rules would judge against a
        # partial world: stay out of the Service's endpoints.
        state.readiness.append(lambda: None if watched.synced else watched.sync_state.message)
        watched.start()
    else:
        metrics.track_inventory(lambda: len(files), lambda: True)  # preloaded: complete from the start
        if not inventory_from:
            log.info("inventory: empty (no --inventory-from, --kubeconfig or in-cluster config)")
    if audit_key_file is not None and audit_log is None and not audit_stdout:
        raise click.UsageError("--audit-key-file keys the audit log: give --audit-log or --audit-stdout too")
    if audit_log is not None or audit_stdout:
        try:
            audit_key = read_key(audit_key_file) if audit_key_file is not None else None
        except AuditKeyError as exc:
            raise click.ClickException(str(exc)) from exc
        audit = AuditLog(
            audit_log,
            stream=sys.stdout if audit_stdout else None,
            max_bytes=audit_max_bytes,
            backups=audit_backups,
            fsync=audit_fsync,
            on_failure=metrics.audit_failed,
            key=audit_key,
        )
        state.audit = audit.write
        state.readiness.append(lambda: None if audit.check() else "audit log writes are failing")
        metrics.track_audit(lambda: audit.healthy)
    draining = Draining()
    state.readiness.append(draining.readiness)
    app = create_app(state, draining)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=str(paths.cert),
        ssl_keyfile=str(paths.key),
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=30,
    )
    config.load()
    assert config.ssl is not None
    config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    reloader = CertReloader(
        config.ssl,
        paths.cert,
        paths.key,
        warn_before=dt.timedelta(days=cert_warn_days),
        on_loaded=lambda cert: metrics.certificate_loaded(cert.not_valid_after_utc.timestamp()),
        on_reload=metrics.certificate_reloaded,
    )
    reloader.load()
    log.info("serving https://%s:%d (validate, mutate, healthz, readyz, metrics)", host, port)
    GracefulServer(
        config, draining, shutdown_delay=shutdown_delay, periodic=[(cert_check_interval, reloader.check)]
    ).run()
    sys.exit(0)

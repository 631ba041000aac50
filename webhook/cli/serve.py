"""`meshwarden serve`: the admission webhook over HTTPS."""

from __future__ import annotations

import json
import logging
import ssl
import sys
import threading
from pathlib import Path
from typing import Any

import click
import uvicorn

from webhook.certs import DEV_NAMES, ensure_dev_certs
from webhook.inventory import MemoryInventory
from webhook.policy import PolicyError
from webhook.policy_store import PolicyStore
from webhook.server import AppState, create_app

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
    help="Append one JSON line per decision to this file.",
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
    log_level: str,
) -> None:
    """Serve the admission webhook (POST /validate, /mutate; GET /healthz, /readyz)."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        policies = PolicyStore(policy_path)
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from exc
    policy = policies.current
    log.info("policy %s (sha256 %s)", policy.source, policy.sha256[:12])

    inventory = MemoryInventory(domain=policy.mesh.cluster_domain)
    if inventory_from:
        from webhook.inventory_files import load_inventory
        from webhook.sources import SourceError

        try:
            inventory, left_out = load_inventory(inventory_from, policy)
        except SourceError as exc:
            raise click.ClickException(f"--inventory-from: {exc}") from exc
        log.info(
            "inventory: %d objects from %s (%d documents left out)",
            len(inventory),
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

    state = AppState(
        policies=policies, inventory=inventory, audit=_line_writer(audit_log) if audit_log else None
    )
    config = uvicorn.Config(
        create_app(state),
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
    log.info("serving https://%s:%d (validate, mutate, healthz, readyz)", host, port)
    uvicorn.Server(config).run()
    sys.exit(0)


def _line_writer(path: Path) -> Any:
    """A plain JSON line per decision."""
    path.parent.mkdir(parents=True, exist_ok=True)
    f = path.open("a", encoding="utf-8")
    lock = threading.Lock()

    def write(record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n"
        with lock:
            f.write(line)
            f.flush()

    return write

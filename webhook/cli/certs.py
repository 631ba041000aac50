"""`meshwarden certs`: a CA and a serving certificate for the webhook Service.

Without `--secret`: files for development (`--out-dir`). With `--secret`: the certificate
lives in that Secret of `--namespace` and the caBundle of each `--webhook-config` follows
it (in a pod through its service account, else through the kubeconfig); idempotent, so a
Job and a CronJob can run it at install and for renewal.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from pathlib import Path

import click

from webhook.certs import CA_FILE, create_bundle, service_names, write_bundle


@click.command("certs")
@click.option(
    "--out-dir",
    default="certs",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write ca.crt, ca.key, tls.crt, tls.key (without --secret).",
)
@click.option("--service", default="meshwarden", show_default=True, help="The webhook Service name.")
@click.option("--namespace", default="meshwarden", show_default=True, help="The webhook Service namespace.")
@click.option("--extra-name", multiple=True, help="Another DNS name or IP for the certificate (repeatable).")
@click.option(
    "--days",
    default=365,
    show_default=True,
    type=click.IntRange(1, 3650),
    help="Validity of the serving certificate.",
)
@click.option(
    "--print-ca-bundle", is_flag=True, help="Print the base64 caBundle for the webhook configurations."
)
@click.option(
    "--secret",
    help="Keep the certificate in this kubernetes.io/tls Secret of --namespace (created, or renewed "
    "when due) instead of files.",
)
@click.option(
    "--webhook-config",
    "webhook_config",
    multiple=True,
    help="With --secret: the Validating/MutatingWebhookConfiguration(s) of this name get the "
    "Secret's CA as caBundle (repeatable).",
)
@click.option(
    "--renew-before-days",
    default=30,
    show_default=True,
    type=click.IntRange(min=1),
    help="With --secret: issue a new certificate when the stored one expires within this many days.",
)
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="With --secret: kubeconfig file.")
@click.option("--context", "kube_context", help="With --secret: kubeconfig context.")
def command(
    out_dir: Path,
    service: str,
    namespace: str,
    extra_name: tuple[str, ...],
    days: int,
    print_ca_bundle: bool,
    secret: str | None,
    webhook_config: tuple[str, ...],
    renew_before_days: int,
    kubeconfig: str | None,
    kube_context: str | None,
) -> None:
    """Create a CA and a serving certificate for the webhook."""
    if secret is None:
        if webhook_config:
            raise click.UsageError("--webhook-config needs --secret (the CA to trust comes from it)")
        names = [*service_names(service, namespace), "localhost", "127.0.0.1", *extra_name]
        paths = write_bundle(create_bundle(names, days=days), out_dir)
        click.echo(f"wrote {paths.ca}, {paths.cert}, {paths.key} for {', '.join(names)}", err=True)
        if print_ca_bundle:
            click.echo(base64.b64encode((out_dir / CA_FILE).read_bytes()).decode())
        return
    if days <= renew_before_days:
        raise click.UsageError(
            f"--days {days} must exceed --renew-before-days {renew_before_days}, "
            "or every run would issue a new certificate"
        )

    from webhook.cluster import ClusterError, api_client
    from webhook.cluster_certs import CertsError, reconcile

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    names = [*service_names(service, namespace), *extra_name]
    try:
        api = api_client(kubeconfig, kube_context)
        outcome = reconcile(
            api,
            namespace=namespace,
            secret=secret,
            webhook_configs=list(webhook_config),
            names=names,
            renew_before=dt.timedelta(days=renew_before_days),
            days=days,
        )
    except (ClusterError, CertsError) as exc:
        raise click.ClickException(str(exc)) from exc
    if outcome.reason:
        click.echo(f"Secret {namespace}/{secret}: new certificate ({outcome.reason})", err=True)
    else:
        click.echo(f"Secret {namespace}/{secret}: certificate kept (not due for renewal)", err=True)
    for patched in outcome.patched:
        click.echo(f"{patched}: caBundle updated", err=True)
    if print_ca_bundle:
        click.echo(base64.b64encode(outcome.ca_bundle).decode())

"""`meshwarden certs`: a CA and a serving certificate for the webhook Service."""

from __future__ import annotations

import base64
from pathlib import Path

import click

from webhook.certs import CA_FILE, create_bundle, service_names, write_bundle


@click.command("certs")
@click.option(
    "--out-dir",
    default="certs",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write ca.crt, ca.key, tls.crt, tls.key.",
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
def command(
    out_dir: Path, service: str, namespace: str, extra_name: tuple[str, ...], days: int, print_ca_bundle: bool
) -> None:
    """Create a CA and a serving certificate for the webhook."""
    names = [*service_names(service, namespace), "localhost", "127.0.0.1", *extra_name]
    paths = write_bundle(create_bundle(names, days=days), out_dir)
    click.echo(f"wrote {paths.ca}, {paths.cert}, {paths.key} for {', '.join(names)}", err=True)
    if print_ca_bundle:
        click.echo(base64.b64encode((out_dir / CA_FILE).read_bytes()).decode())

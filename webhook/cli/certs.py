"""`meshwarden certs`: development and in-cluster certificates."""

from __future__ import annotations

import click


@click.command("certs")
def command() -> None:
    """Create a CA and a serving certificate for the webhook."""
    raise click.ClickException("not available yet")

"""`meshwarden serve`: the admission webhook over HTTPS."""

from __future__ import annotations

import click


@click.command("serve")
def command() -> None:
    """Serve the admission webhook."""
    raise click.ClickException("not available yet")

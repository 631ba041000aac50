"""The `meshwarden` command: one group, one module per subcommand."""

from __future__ import annotations

import click

from webhook import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="meshwarden")
def main() -> None:
    """Admission policy server for Istio networking objects."""


def _register() -> None:
    # Each subcommand lives in its own module; importing them here keeps `main` the one
    # entry point the console script names.
    from webhook.cli import audit, certs, check, scan, serve

    for module in (serve, certs, audit, scan, check):
        main.add_command(module.command)


_register()

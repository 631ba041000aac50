"""The `meshwarden` command: one group, one module per subcommand.

Subcommands are imported when they run, not when the group is built: `check` in a
pre-commit hook should not pay for the Kubernetes client or uvicorn that `scan` and
`serve` need.
"""

from __future__ import annotations

import importlib

import click

from webhook import __version__

# name -> module holding a click command named `command`
_SUBCOMMANDS = {
    "serve": "webhook.cli.serve",
    "check": "webhook.cli.check",
    "scan": "webhook.cli.scan",
    "certs": "webhook.cli.certs",
    "audit": "webhook.cli.audit",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = _SUBCOMMANDS.get(cmd_name)
        if module is None:
            return None
        command: click.Command = importlib.import_module(module).command
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="meshwarden")
def main() -> None:
    """Admission policy server for Istio networking objects."""

"""PLACEHOLDER: to be written."""

from __future__ import annotations

from collections.abc import Iterator

from webhook.context import Context
from webhook.findings import Finding
from webhook.registry import rule


@rule(id="wildcard-host-egress-gateway", title="TODO", kinds=(), remediation="TODO")
def check(ctx: Context) -> Iterator[Finding]:
    return iter(())

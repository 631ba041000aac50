"""PLACEHOLDER: to be written."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from webhook.context import Context
from webhook.findings import Finding
from webhook.registry import rule


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)
    # Host names (any port) or host:port pairs that may be reached in plaintext.
    plaintext_allow_list: list[str] = Field(
        default_factory=lambda: ["169.254.169.254", "metadata.google.internal", "fd00:ec2::254"]
    )


@rule(id="external-tls-origination", title="TODO", kinds=(), remediation="TODO", params=Params)
def check(ctx: Context) -> Iterator[Finding]:
    return iter(())

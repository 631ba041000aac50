"""PLACEHOLDER: to be written."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from webhook.context import Context
from webhook.findings import Action, Finding
from webhook.policy import Duration
from webhook.registry import Change, defaulter, rule


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)
    timeout: Duration = "10s"
    max_timeout: Duration = "60s"


@defaulter(id="default-route-timeout", title="TODO", kinds=(), params=Params)
def mutate(ctx: Context) -> list[Change]:
    return []


@rule(id="default-route-timeout", title="TODO", kinds=(), remediation="TODO", default_action=Action.WARN)
def check(ctx: Context) -> Iterator[Finding]:
    return iter(())

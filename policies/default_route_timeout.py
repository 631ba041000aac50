"""`default-route-timeout`: every forwarding HTTP route gets a timeout.

Istio's default route timeout is "disabled", so a slow upstream holds the caller's
connection for as long as it likes. The defaulter gives each VirtualService `http` route
that forwards to a destination, and has no `timeout`, the configured default. The companion
rule with the same id warns about explicit timeouts above the configured maximum; both read
the defaulter's parameters.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel

from webhook import durations
from webhook.context import Context
from webhook.findings import Action, Finding
from webhook.models import HTTPRoute, VirtualService
from webhook.policy import Duration
from webhook.registry import Change, defaulter, rule

DEFAULTER_ID = "default-route-timeout"


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)
    timeout: Duration = "10s"
    max_timeout: Duration = "60s"

    @model_validator(mode="after")
    def _default_within_maximum(self) -> Params:
        # Otherwise every injected default would itself trip the maximum.
        if durations.parse(self.timeout) > durations.parse(self.max_timeout):
            raise ValueError(f"timeout {self.timeout} is above maxTimeout {self.max_timeout}")
        return self


@defaulter(
    id=DEFAULTER_ID,
    title="Give every forwarding VirtualService HTTP route a timeout",
    kinds=("VirtualService",),
    params=Params,
)
def mutate(ctx: Context) -> list[Change]:
    spec = ctx.resource.spec
    params = ctx.params
    if not isinstance(spec, VirtualService) or not isinstance(params, Params):
        return []
    default_ns = durations.parse(params.timeout)
    return [
        Change(("spec", "http", i, "timeout"), params.timeout)
        for i, route in enumerate(spec.http)
        if _wants_default(route, default_ns)
    ]


def _wants_default(route: HTTPRoute, default_ns: int) -> bool:
    if route.get("timeout") is not None or not route.get("route"):
        return False  # an explicit value is never changed; only forwarding routes time out
    if (
        route.get("redirect") is not None
        or route.get("directResponse") is not None
        or route.get("delegate") is not None
    ):
        return False
    if route.get("fault") is not None:
        return False  # Envoy disables timeouts and retries on routes with faults
    retries = route.get("retries")
    per_try = retries.get("perTryTimeout") if retries is not None else None
    if per_try is not None:
        try:
            per_try_ns = durations.parse(per_try)
        except durations.DurationError:
            return False  # istio-schema reports it; do not reason about a value Istio refuses
        if per_try_ns > default_ns:
            return False  # the route timeout bounds all tries: it would cut the first one short
    return True


@rule(
    id=DEFAULTER_ID,
    title="VirtualService HTTP route timeouts stay within the configured maximum",
    kinds=("VirtualService",),
    remediation="Lower the route timeout to the configured maximum or less.",
    default_action=Action.WARN,
    params=Params,
)
def check(ctx: Context) -> Iterator[Finding]:
    spec = ctx.resource.spec
    params = ctx.params
    if ctx.operation == "DELETE" or not isinstance(spec, VirtualService) or not isinstance(params, Params):
        return
    max_ns = durations.parse(params.max_timeout)
    for i, route in enumerate(spec.http):
        timeout = route.get("timeout")
        if timeout is None:
            continue
        try:
            timeout_ns = durations.parse(timeout)
        except durations.DurationError:
            continue  # istio-schema reports it
        if timeout_ns <= max_ns:
            continue
        name = route.get("name")
        which = f"route {name!r}" if name else f"http route {i}"
        yield Finding(
            DEFAULTER_ID,
            ("spec", "http", i, "timeout"),
            f"{which} has timeout {timeout}, above the maximum {params.max_timeout}: "
            "callers wait that long on a slow upstream",
            f"Lower it to the maximum or less:\ntimeout: {params.max_timeout}",
            level="warn",
        )

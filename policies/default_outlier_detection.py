"""`default-outlier-detection`: every DestinationRule ejects failing endpoints.

Without `outlierDetection` Envoy keeps sending requests to an endpoint that answers with
errors. A DestinationRule without `trafficPolicy.outlierDetection` gets the configured
default, and so does each `portLevelSettings` entry without one, because a port-level
entry replaces the top-level policy wholesale rather than inheriting from it. Subset
policies inherit field by field and are left as they are.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from webhook.context import Context
from webhook.models import DestinationRule
from webhook.policy import Duration
from webhook.registry import Change, defaulter


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)
    consecutive_5xx_errors: int = Field(default=5, ge=0, alias="consecutive5xxErrors")
    interval: Duration = "10s"
    base_ejection_time: Duration = "30s"
    max_ejection_percent: int = Field(default=50, ge=0, le=100)

    def block(self) -> dict[str, Any]:
        """The outlierDetection block, in Istio's JSON field names."""
        return {
            "consecutive5xxErrors": self.consecutive_5xx_errors,
            "interval": self.interval,
            "baseEjectionTime": self.base_ejection_time,
            "maxEjectionPercent": self.max_ejection_percent,
        }


@defaulter(
    id="default-outlier-detection",
    title="Give every DestinationRule traffic policy outlier detection",
    kinds=("DestinationRule",),
    params=Params,
)
def mutate(ctx: Context) -> list[Change]:
    spec = ctx.resource.spec
    params = ctx.params
    if not isinstance(spec, DestinationRule) or not isinstance(params, Params):
        return []
    policy = spec.traffic_policy
    changes: list[Change] = []
    if policy is None or policy.outlier_detection is None:
        changes.append(Change(("spec", "trafficPolicy", "outlierDetection"), params.block()))
    if policy is not None:
        for i, entry in enumerate(policy.port_level_settings):
            if entry.outlier_detection is None:
                path = ("spec", "trafficPolicy", "portLevelSettings", i, "outlierDetection")
                changes.append(Change(path, params.block()))
    return changes

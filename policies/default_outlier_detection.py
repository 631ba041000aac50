"""PLACEHOLDER: to be written."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from webhook.context import Context
from webhook.policy import Duration
from webhook.registry import Change, defaulter


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)
    consecutive_5xx_errors: int = Field(default=5, ge=0, alias="consecutive5xxErrors")
    interval: Duration = "10s"
    base_ejection_time: Duration = "30s"
    max_ejection_percent: int = Field(default=50, ge=0, le=100)


@defaulter(id="default-outlier-detection", title="TODO", kinds=(), params=Params)
def mutate(ctx: Context) -> list[Change]:
    return []

"""The registry of rules and defaulters, by id.

A rule is metadata plus one pure `check` function; a defaulter is metadata plus one pure
`mutate` function. Neither does I/O: they read the object under review, the operation and
a read-only inventory, and return findings or changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from webhook.findings import Action, Finding, Path

if TYPE_CHECKING:
    from webhook.context import Context


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True)
class Change:
    """Set `value` at `path` (creating missing mappings on the way)."""

    path: Path
    value: Any


@dataclass(frozen=True)
class RuleSpec:
    id: str
    title: str
    kinds: frozenset[str]
    default_action: Action
    remediation: str
    check: Callable[[Context], Iterable[Finding]]
    params: type[BaseModel] = NoParams


@dataclass(frozen=True)
class DefaulterSpec:
    id: str
    title: str
    kinds: frozenset[str]
    mutate: Callable[[Context], list[Change]]
    params: type[BaseModel] = NoParams


RULES: dict[str, RuleSpec] = {}
DEFAULTERS: dict[str, DefaulterSpec] = {}


def rule(
    *,
    id: str,
    title: str,
    kinds: Iterable[str],
    remediation: str,
    default_action: Action = Action.DENY,
    params: type[BaseModel] = NoParams,
) -> Callable[[Callable[[Context], Iterable[Finding]]], Callable[[Context], Iterable[Finding]]]:
    def register(fn: Callable[[Context], Iterable[Finding]]) -> Callable[[Context], Iterable[Finding]]:
        if id in RULES:
            raise ValueError(f"rule {id!r} registered twice")
        RULES[id] = RuleSpec(
            id=id,
            title=title,
            kinds=frozenset(kinds),
            default_action=default_action,
            remediation=remediation,
            check=fn,
            params=params,
        )
        return fn

    return register


def defaulter(
    *, id: str, title: str, kinds: Iterable[str], params: type[BaseModel] = NoParams
) -> Callable[[Callable[[Context], list[Change]]], Callable[[Context], list[Change]]]:
    def register(fn: Callable[[Context], list[Change]]) -> Callable[[Context], list[Change]]:
        if id in DEFAULTERS:
            raise ValueError(f"defaulter {id!r} registered twice")
        DEFAULTERS[id] = DefaulterSpec(id=id, title=title, kinds=frozenset(kinds), mutate=fn, params=params)
        return fn

    return register


def load_all() -> None:
    """Import the policies package, whose modules register themselves."""
    import policies  # noqa: F401

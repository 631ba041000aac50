"""What a rule reports, and what the policy decided to do about it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

Path = tuple[str | int, ...]


class Action(StrEnum):
    DENY = "deny"
    WARN = "warn"
    AUDIT = "audit"
    # Outcomes the engine assigns, never configured:
    EXCEPTED = "excepted"  # covered by an unexpired exception in the policy
    DOWNGRADED = "downgraded"  # the old object already had it (UPDATE): a warning


# Order of strength among the configurable actions, used to cap warn-level findings.
_STRENGTH = {Action.AUDIT: 0, Action.WARN: 1, Action.DENY: 2}


def weaker(a: Action, b: Action) -> Action:
    return a if _STRENGTH[a] <= _STRENGTH[b] else b


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem a rule found in one object.

    `level="warn"` marks the warn-level cases of a rule (for example TLS origination
    that does not verify the server): the configured action is capped at warn.
    `fix` says how to comply; where the fix is another object it holds ready-to-apply
    YAML.
    """

    rule: str
    path: Path
    message: str
    fix: str = ""
    level: Literal["deny", "warn"] = "deny"

    @property
    def path_text(self) -> str:
        return format_path(self.path)


@dataclass(frozen=True, slots=True)
class Outcome:
    finding: Finding
    action: Action
    note: str = ""  # why the action differs from the configured one (exception, downgrade)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "rule": self.finding.rule,
            "action": str(self.action),
            "path": self.finding.path_text,
            "message": self.finding.message,
        }
        if self.finding.fix:
            out["fix"] = self.finding.fix
        if self.note:
            out["note"] = self.note
        return out


def format_path(path: Path) -> str:
    """`("spec", "ports", 0, "protocol")` -> `spec.ports[0].protocol`."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        else:
            out.append(f".{part}" if out else part)
    return "".join(out)

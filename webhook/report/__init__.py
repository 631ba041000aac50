"""What `meshwarden check` found, and how it is written out: one module per format.

`Report` is the format-free result: every object looked at (with its findings, already
placed at file:line:column), the defaults the cluster would inject, the inputs that could
not be read. `render(report, fmt)` turns it into text, JSON, SARIF 2.1.0 or JUnit XML.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from webhook.findings import Action

FORMATS = ("text", "json", "sarif", "junit")
# Actions that fail the run, by `--fail-on` level. A downgraded finding is a warning.
FAILING = {
    "deny": frozenset({Action.DENY}),
    "warn": frozenset({Action.DENY, Action.WARN, Action.DOWNGRADED}),
}


@dataclass(frozen=True, slots=True)
class ReportFinding:
    file: str
    line: int
    column: int
    kind: str
    namespace: str
    name: str
    rule: str
    action: Action
    path: str
    message: str
    fix: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "rule": self.rule,
            "action": str(self.action),
            "path": self.path,
            "message": self.message,
        }
        if self.fix:
            out["fix"] = self.fix
        if self.note:
            out["note"] = self.note
        return out


@dataclass(slots=True)
class ObjectResult:
    """One Kubernetes object from the input. `status`: reviewed, skipped (not in scope)
    or exempt (exempt namespace)."""

    file: str
    line: int
    kind: str
    namespace: str
    name: str
    status: str
    findings: list[ReportFinding] = field(default_factory=list)
    defaults_applied: list[str] = field(default_factory=list)
    patch: list[dict[str, Any]] = field(default_factory=list)
    diff: str = ""  # unified diff of the object before/after defaults (--show-defaults)

    @property
    def display(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name or '(unnamed)'}"


@dataclass(frozen=True, slots=True)
class InputError:
    file: str
    line: int | None
    message: str

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


@dataclass(slots=True)
class Report:
    objects: list[ObjectResult] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)
    files: int = 0
    not_objects: int = 0  # documents without apiVersion or kind
    fail_on: str = "deny"
    show_defaults: bool = False
    fixed: list[str] = field(default_factory=list)  # files rewritten by --fix
    notices: list[InputError] = field(default_factory=list)  # input worth a word; not a failure
    tool: str = "meshwarden check"  # the command that made the report, as JUnit names it
    cluster: str = ""  # the live cluster whose objects joined the inventory, if any
    cluster_objects: int = 0

    @property
    def findings(self) -> list[ReportFinding]:
        return [f for o in self.objects for f in o.findings]

    def failing(self, finding: ReportFinding) -> bool:
        return finding.action in FAILING[self.fail_on]

    @property
    def exit_code(self) -> int:
        if self.errors:
            return 2
        return 1 if any(self.failing(f) for f in self.findings) else 0

    def summary(self) -> dict[str, Any]:
        statuses = Counter(o.status for o in self.objects)
        actions = Counter(str(f.action) for f in self.findings)
        return {
            "files": self.files,
            "objects": len(self.objects),
            "reviewed": statuses["reviewed"],
            "skipped": statuses["skipped"],
            "exempt": statuses["exempt"],
            "notObjects": self.not_objects,
            "findings": {str(a): actions[str(a)] for a in Action},
            "defaulted": sum(1 for o in self.objects if o.patch),
            "fixedFiles": len(self.fixed),
            "errors": len(self.errors),
            "failOn": self.fail_on,
            "exitCode": self.exit_code,
        } | ({"cluster": {"server": self.cluster, "objects": self.cluster_objects}} if self.cluster else {})


def render(report: Report, fmt: str, *, color: bool = False) -> str:
    from webhook.report import json, junit, sarif, text

    renderers = {"text": text.render, "json": json.render, "sarif": sarif.render, "junit": junit.render}
    if fmt not in renderers:
        raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    if fmt == "text":
        return text.render(report, color=color)
    return renderers[fmt](report)

"""SARIF 2.1.0 output, for code-scanning services (GitHub, GitLab) to annotate pull
requests: one run, the rules as the driver's reporting descriptors, one result per
finding at file:line:column, unreadable inputs as tool execution notifications."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

from webhook import __version__
from webhook.findings import Action
from webhook.registry import RULES, load_all
from webhook.report import Report, ReportFinding
from webhook.sources import STDIN_NAME

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVELS = {
    Action.DENY: "error",
    Action.WARN: "warning",
    Action.DOWNGRADED: "warning",
    Action.AUDIT: "note",
    Action.EXCEPTED: "note",
}


def render(report: Report) -> str:
    load_all()
    rule_ids = sorted(RULES.keys() | {f.rule for f in report.findings})
    index = {rule_id: i for i, rule_id in enumerate(rule_ids)}
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "meshwarden",
                "version": __version__,
                "semanticVersion": __version__,
                "rules": [_descriptor(rule_id) for rule_id in rule_ids],
            }
        },
        "invocations": [_invocation(report)],
        "columnKind": "unicodeCodePoints",
        "results": [_result(f, index[f.rule]) for f in report.findings],
    }
    doc = {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _descriptor(rule_id: str) -> dict[str, Any]:
    spec = RULES.get(rule_id)
    if spec is None:
        return {"id": rule_id}
    out: dict[str, Any] = {
        "id": rule_id,
        "shortDescription": {"text": spec.title},
        "defaultConfiguration": {"level": _LEVELS.get(spec.default_action, "warning")},
        "properties": {"defaultAction": str(spec.default_action)},
    }
    if spec.remediation:
        out["help"] = {"text": spec.remediation}
    return out


def _artifact(file: str) -> dict[str, Any]:
    if file == STDIN_NAME:
        return {"uri": "stdin", "description": {"text": "standard input"}}
    return {"uri": quote(file.replace("\\", "/"), safe="/:@")}


def _result(f: ReportFinding, rule_index: int) -> dict[str, Any]:
    where = f"{f.kind} {f.namespace}/{f.name}"
    text = f"{where}: {f.path + ': ' if f.path else ''}{f.message}"
    properties: dict[str, Any] = {
        "action": str(f.action),
        "path": f.path,
        "kind": f.kind,
        "namespace": f.namespace,
        "name": f.name,
    }
    if f.fix:
        properties["fix"] = f.fix
    result: dict[str, Any] = {
        "ruleId": f.rule,
        "ruleIndex": rule_index,
        "level": _LEVELS[f.action],
        "message": {"text": text + (f"\nFix:\n{f.fix}" if f.fix else "")},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": _artifact(f.file),
                    "region": {"startLine": f.line, "startColumn": f.column},
                },
                "logicalLocations": [
                    {
                        "name": f.name,
                        "fullyQualifiedName": f"{f.kind}/{f.namespace}/{f.name}",
                        "kind": "resource",
                    }
                ],
            }
        ],
        # Stable across line moves, so a code-scanning service tracks one finding over commits.
        "partialFingerprints": {
            "meshwardenFinding/v1": hashlib.sha256(
                "\x1f".join((f.rule, f.kind, f.namespace, f.name, f.path, f.message)).encode()
            ).hexdigest()[:32]
        },
        "properties": properties,
    }
    if f.action is Action.EXCEPTED:
        result["suppressions"] = [{"kind": "external", "justification": f.note or "policy exception"}]
    return result


def _invocation(report: Report) -> dict[str, Any]:
    notifications = []
    for err in report.errors:
        location: dict[str, Any] = {"artifactLocation": _artifact(err.file)}
        if err.line is not None:
            location["region"] = {"startLine": err.line}
        notifications.append(
            {
                "level": "error",
                "message": {"text": err.message},
                "locations": [{"physicalLocation": location}],
            }
        )
    out: dict[str, Any] = {"executionSuccessful": not report.errors, "exitCode": report.exit_code}
    if notifications:
        out["toolExecutionNotifications"] = notifications
    return out

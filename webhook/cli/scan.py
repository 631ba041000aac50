"""`meshwarden scan`: the rules over every object in a live cluster, read-only.

Lists every object in scope (webhook.cluster), builds the inventory from all of them, and
reviews each one with the engine at the `scan` enforcement point, as if it were being
created into the cluster as it stands. Reports the findings with a summary per rule and per
namespace, and the policy exceptions that have expired (they no longer apply, so the
findings they covered are back).

Exit status: 0 no deny-level finding, 1 deny-level findings, 2 the cluster or the policy
could not be read (or an object could not be reviewed).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import click

from webhook import policy as policy_mod
from webhook.cluster import ClusterError, api_client, read_cluster, server_of
from webhook.engine import evaluate
from webhook.findings import Action
from webhook.inventory import MemoryInventory
from webhook.objects import Resource, parse, scope_kind
from webhook.policy import EnforcementPoint, Exception_, Policy, PolicyError
from webhook.report import InputError, ObjectResult, Report, ReportFinding
from webhook.report import render as render_report

FORMATS = ("text", "json", "sarif", "junit")


@dataclass
class ScanResult:
    cluster: str
    objects: int = 0
    statuses: Counter[str] = field(default_factory=Counter)  # reviewed / skipped / exempt
    reviewed: list[tuple[str, str, str, str]] = field(default_factory=list)  # kind, ns, name, status
    findings: list[ReportFinding] = field(default_factory=list)
    expired: list[Exception_] = field(default_factory=list)
    not_served: list[str] = field(default_factory=list)  # resources the cluster does not serve
    errors: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.errors:
            return 2
        return 1 if any(f.action is Action.DENY for f in self.findings) else 0

    def summary(self) -> dict[str, Any]:
        by_rule: dict[str, Counter[str]] = defaultdict(Counter)
        by_namespace: dict[str, Counter[str]] = defaultdict(Counter)
        for f in self.findings:
            by_rule[f.rule][str(f.action)] += 1
            by_namespace[f.namespace][str(f.action)] += 1
        actions = Counter(str(f.action) for f in self.findings)
        return {
            "cluster": self.cluster,
            "objects": self.objects,
            "reviewed": self.statuses["reviewed"],
            "skipped": self.statuses["skipped"],
            "exempt": self.statuses["exempt"],
            "findings": {str(a): actions[str(a)] for a in Action},
            "byRule": {rule: dict(sorted(c.items())) for rule, c in sorted(by_rule.items())},
            "byNamespace": {ns: dict(sorted(c.items())) for ns, c in sorted(by_namespace.items())},
            "expiredExceptions": len(self.expired),
            "notServed": self.not_served,
            "errors": len(self.errors),
            "exitCode": self.exit_code,
        }


def scan(
    policy: Policy, objects: Iterable[Mapping[str, Any]], *, cluster: str, today: dt.date | None = None
) -> ScanResult:
    """Review every object against an inventory of all of them."""
    today = today or dt.datetime.now(dt.UTC).date()
    raws = sorted(objects, key=_sort_key)
    root = policy.mesh.root_namespace
    parsed: list[Resource | None] = []  # each object parsed once, for the inventory and its review
    for raw in raws:
        kind = scope_kind(raw, root)
        res = parse(raw, kind) if kind is not None else None
        parsed.append(res if isinstance(res, Resource) else None)
    inventory = MemoryInventory((res for res in parsed if res is not None), domain=policy.mesh.cluster_domain)
    result = ScanResult(cluster, objects=len(raws))
    result.expired = [e for e in policy.file.exceptions if not e.active(today)]
    for raw, res in zip(raws, parsed, strict=True):
        try:
            decision = evaluate(
                policy, EnforcementPoint.SCAN, inventory, "CREATE", raw, today=today, parsed_object=res
            )
        except Exception as exc:
            meta = raw.get("metadata") or {}
            result.errors.append(
                f"{raw.get('kind')} {meta.get('namespace', 'default')}/{meta.get('name', '')}: "
                f"could not be reviewed: {type(exc).__name__}: {exc}"
            )
            continue
        result.statuses[decision.status] += 1
        result.reviewed.append((decision.kind, decision.namespace, decision.name, decision.status))
        for outcome in decision.outcomes:
            f = outcome.finding
            note = outcome.note or _expired_note(result.expired, f.rule, decision.namespace, decision.name)
            result.findings.append(
                ReportFinding(
                    # A live object has no file: it is placed under its namespace.
                    _location(decision.namespace),
                    1,
                    1,
                    decision.kind,
                    decision.namespace,
                    decision.name,
                    f.rule,
                    outcome.action,
                    f.path_text,
                    f.message,
                    f.fix,
                    note,
                )
            )
    return result


def _sort_key(raw: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = raw.get("metadata") or {}
    return (str(meta.get("namespace") or "default"), str(raw.get("kind")), str(meta.get("name") or ""))


def _expired_note(expired: list[Exception_], rule: str, namespace: str, name: str) -> str:
    for exc in expired:
        if exc.covers(rule, namespace, name):
            return f"exception {exc.ticket} expired on {exc.expires}"
    return ""


# --- output -------------------------------------------------------------------------------


def to_report(result: ScanResult) -> Report:
    """The scan as a `meshwarden check` report, for the SARIF and JUnit renderers. A live
    object has no file: objects are grouped under `namespaces/<namespace>` (one JUnit
    suite, one SARIF artifact per namespace), each named by kind/namespace/name."""
    report = Report(tool="meshwarden scan")
    objects: dict[tuple[str, str, str], ObjectResult] = {}
    for kind, namespace, name, status in result.reviewed:
        objects[(kind, namespace, name)] = ObjectResult(
            _location(namespace), 1, kind, namespace, name, status
        )
    for f in result.findings:
        objects[(f.kind, f.namespace, f.name)].findings.append(f)
    report.objects = list(objects.values())
    report.files = len({o.file for o in report.objects})
    report.errors = [InputError(result.cluster, None, e) for e in result.errors]
    return report


def _location(namespace: str) -> str:
    return f"namespaces/{namespace}"


def _without_location(finding: dict[str, Any]) -> dict[str, Any]:
    # scan's own JSON names objects, not places in files.
    return {k: v for k, v in finding.items() if k not in ("file", "line", "column")}


def render_json(result: ScanResult) -> str:
    doc = {
        "summary": result.summary(),
        "findings": [_without_location(f.to_dict()) for f in result.findings],
        "expiredExceptions": [_exception_dict(e) for e in result.expired],
        "errors": result.errors,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _exception_dict(exc: Exception_) -> dict[str, Any]:
    return {
        "rule": exc.rule,
        "namespace": exc.namespace,
        "name": exc.name,
        "ticket": exc.ticket,
        "reason": exc.reason,
        "expires": exc.expires.isoformat(),
    }


def render_text(result: ScanResult) -> str:
    lines: list[str] = []
    for f in result.findings:
        lines.append(f"{f.kind} {f.namespace}/{f.name}  {f.action}  [{f.rule}]")
        lines.append(f"    {f.path + ': ' if f.path else ''}{f.message}")
        if f.note:
            lines.append(f"    ({f.note})")
        if f.fix:
            lines.append("    fix:")
            lines.extend(f"      {line}" for line in f.fix.rstrip().splitlines())
    if result.findings:
        lines.append("")
    s = result.summary()
    for title, table in (("by rule", s["byRule"]), ("by namespace", s["byNamespace"])):
        if table:
            lines.append(f"Findings {title}:")
            width = max(len(k) for k in table)
            for key, counts in table.items():
                lines.append(f"  {key:<{width}}  " + ", ".join(f"{n} {a}" for a, n in counts.items()))
    if result.expired:
        lines.append("Expired policy exceptions (no longer applied):")
        for e in result.expired:
            lines.append(
                f"  {e.rule} {e.namespace}/{e.name}  {e.ticket}, expired {e.expires.isoformat()}: {e.reason}"
            )
    for resource in result.not_served:
        lines.append(f"Not served by the cluster (skipped): {resource}")
    for error in result.errors:
        lines.append(f"error: {error}")
    counts = s["findings"]
    found = ", ".join(f"{counts[a]} {a}" for a in counts if counts[a]) or "no findings"
    lines.append(
        f"{result.cluster}: {s['objects']} objects, {s['reviewed']} reviewed, {s['exempt']} exempt, "
        f"{s['skipped']} skipped; {found}"
    )
    return "\n".join(lines) + "\n"


# --- command ------------------------------------------------------------------------------


@click.command("scan")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    help="Kubeconfig file (default: in-cluster, else $KUBECONFIG or ~/.kube/config).",
)
@click.option("--context", help="Kubeconfig context (default: the current context).")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), help="Policy file.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.pass_context
def command(
    ctx: click.Context, kubeconfig: str | None, context: str | None, policy_path: str | None, fmt: str
) -> None:
    """Review every Istio object in a live cluster (read-only).

    Exit status: 0 clean, 1 deny-level findings, 2 the cluster or policy could not be read.
    """
    try:
        policy = policy_mod.load(policy_path)
        api = api_client(kubeconfig, context)
        objects, not_served = read_cluster(api, policy.mesh.root_namespace)
    except (PolicyError, ClusterError) as exc:
        click.echo(f"meshwarden scan: {exc}", err=True)
        ctx.exit(2)
    result = scan(policy, objects, cluster=server_of(api))
    result.not_served = not_served
    if fmt in ("sarif", "junit"):
        out = render_report(to_report(result), fmt)
    else:
        out = render_json(result) if fmt == "json" else render_text(result)
    sys.stdout.write(out)
    for error in result.errors:
        click.echo(f"meshwarden scan: {error}", err=True)
    ctx.exit(result.exit_code)

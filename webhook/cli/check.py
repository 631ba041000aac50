"""`meshwarden check PATH…`: review manifests in git before they reach a cluster.

Every object in the input is reviewed as a CREATE by the same engine the webhook runs,
against an inventory of every in-scope object in the input (so files that satisfy each
other across the tree pass together). Exit codes, whatever the format: 0 no failing
finding, 1 at least one (deny; warn too with --fail-on warn), 2 unreadable input, invalid
YAML, a bad policy or a usage error.
"""

from __future__ import annotations

import difflib
import gc
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import click
import yaml

from webhook.engine import Decision, evaluate
from webhook.findings import format_path
from webhook.fixer import Fix, FixError, fix_file
from webhook.inventory import MemoryInventory
from webhook.objects import Resource, parse, scope_kind
from webhook.policy import EnforcementPoint, Policy, PolicyError, load
from webhook.report import FORMATS, InputError, ObjectResult, Report, ReportFinding, render
from webhook.sources import STDIN, SourceDocument, SourceStats, iter_documents


class _InputProblem(click.ClickException):
    exit_code = 2


@click.command("check")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True, help="Output format."
)
@click.option("--policy", "policy_path", metavar="FILE", help="Policy file (default: the embedded policy).")
@click.option(
    "--show-defaults", is_flag=True, help="Show the defaults the cluster would inject into each object."
)
@click.option("--fix", is_flag=True, help="Write the defaults the cluster would inject into the files.")
@click.option(
    "--fail-on",
    type=click.Choice(["deny", "warn"]),
    default="deny",
    show_default=True,
    help="Lowest action that fails the run (exit 1).",
)
@click.option(
    "--output", "-o", metavar="FILE", type=click.File("w", encoding="utf-8"), help="Write the report to FILE."
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    help="Also put the live cluster's objects in the inventory (read-only), from this kubeconfig.",
)
@click.option("--context", "kube_context", help="Kubeconfig context for the live cluster's objects.")
def command(
    paths: tuple[str, ...],
    fmt: str,
    policy_path: str | None,
    show_defaults: bool,
    fix: bool,
    fail_on: str,
    output: TextIO | None,
    kubeconfig: str | None,
    kube_context: str | None,
) -> None:
    """Check Istio manifests (files, directories, - for stdin) against the policy."""
    if fix and STDIN in paths:
        raise click.UsageError("--fix writes into files; it cannot fix standard input")
    try:
        policy = load(policy_path)
    except PolicyError as exc:
        raise _InputProblem(str(exc)) from None

    report = Report(fail_on=fail_on, show_defaults=show_defaults)
    live: list[dict[str, Any]] = []
    if kubeconfig or kube_context:
        live, report.cluster = _read_live(policy, kubeconfig, kube_context)
        report.cluster_objects = len(live)
    stats = SourceStats()
    # Reading and reviewing build many objects and free few: the cyclic collector would
    # walk the growing heap over and over for nothing (about a tenth of the run).
    gc.disable()
    try:
        docs = list(
            iter_documents(
                paths,
                stats=stats,
                on_error=lambda e: report.errors.append(InputError(e.file, e.line, e.problem)),
            )
        )
        decisions = review(policy, docs, mutate=show_defaults or fix, live=live)
    finally:
        gc.enable()
    report.files, report.not_objects = stats.files, len(stats.not_objects)
    report.notices = duplicates(docs, decisions)
    for doc, decision in zip(docs, decisions, strict=True):
        report.objects.append(_result(doc, decision, show_defaults))
    if fix:
        _fix(docs, decisions, report)

    for err in report.errors:
        click.echo(f"{err.location}: error: {err.message}", err=True)
    for notice in report.notices:
        click.echo(f"{notice.location}: warning: {notice.message}", err=True)
    out = output or click.get_text_stream("stdout")
    color = output is None and fmt == "text" and out.isatty()
    click.echo(render(report, fmt, color=color), file=out, nl=False, color=color)
    sys.exit(report.exit_code)


def review(
    policy: Policy, docs: list[SourceDocument], *, mutate: bool, live: Sequence[Mapping[str, Any]] = ()
) -> list[Decision]:
    """Each object reviewed as a CREATE against an inventory of every in-scope object in
    the input (objects that do not parse are not in it), over the `live` cluster objects:
    an input object replaces the live one with the same kind, namespace and name, as
    applying it would."""
    root = policy.mesh.root_namespace
    resources: list[Resource] = []
    for raw in live:
        parsed = _parsed(raw, root)
        if parsed is not None:
            resources.append(parsed)
    inputs: list[Resource | None] = []  # each document parsed once, for the inventory and its review
    for doc in docs:
        parsed = _parsed(doc.raw, root)
        inputs.append(parsed)
        if parsed is not None:
            resources.append(parsed)
    inventory = MemoryInventory(resources, domain=policy.mesh.cluster_domain)
    return [
        evaluate(
            policy,
            EnforcementPoint.CHECK,
            inventory,
            "CREATE",
            doc.raw,
            validate=True,
            mutate=mutate,
            parsed_object=parsed,
        )
        for doc, parsed in zip(docs, inputs, strict=True)
    ]


def duplicates(docs: list[SourceDocument], decisions: list[Decision]) -> list[InputError]:
    """A notice for each in-scope object defined again later in the input (a tree holding a
    kustomize base and its overlays, say): every definition is reviewed, but the inventory
    can hold only one, the last read."""
    first: dict[tuple[str, str, str], SourceDocument] = {}
    out: list[InputError] = []
    for doc, decision in zip(docs, decisions, strict=True):
        if decision.status == "skipped":  # not in scope: not in the inventory either
            continue
        earlier = first.setdefault((decision.kind, decision.namespace, decision.name), doc)
        if earlier is not doc:
            out.append(
                InputError(
                    doc.file,
                    doc.line,
                    f"{decision.kind} {decision.namespace}/{decision.name} is also defined at "
                    f"{earlier.file}:{earlier.line}; "
                    "each is reviewed, and the other objects are checked against the last one read. "
                    "Check each rendered environment on its own (kustomize build overlays/prod | "
                    "meshwarden check -).",
                )
            )
    return out


def _parsed(raw: Mapping[str, Any], root_namespace: str) -> Resource | None:
    kind = scope_kind(raw, root_namespace)
    if kind is None:
        return None
    parsed = parse(raw, kind)
    return parsed if isinstance(parsed, Resource) else None


def _read_live(
    policy: Policy, kubeconfig: str | None, context: str | None
) -> tuple[list[dict[str, Any]], str]:
    """The in-scope objects of the live cluster, and its address."""
    # Imported here: the kubernetes client takes longer to import than most checks take to run.
    from webhook.cluster import ClusterError, api_client, read_cluster, server_of

    try:
        api = api_client(kubeconfig, context)
        objects, _not_served = read_cluster(api, policy.mesh.root_namespace)
    except ClusterError as exc:
        raise _InputProblem(f"--kubeconfig/--context: {exc}") from None
    return objects, server_of(api)


def _result(doc: SourceDocument, decision: Decision, show_defaults: bool) -> ObjectResult:
    obj = ObjectResult(
        file=doc.file,
        line=doc.line,
        kind=decision.kind,
        namespace=decision.namespace,
        name=decision.name,
        status=decision.status,
        defaults_applied=list(decision.defaults_applied),
        patch=list(decision.patch),
    )
    for outcome in decision.outcomes:
        f = outcome.finding
        # Positions are looked up only here, for objects that have findings.
        line, column = doc.position(f.path)
        obj.findings.append(
            ReportFinding(
                file=doc.file,
                line=line,
                column=column,
                kind=decision.kind,
                namespace=decision.namespace,
                name=decision.name,
                rule=f.rule,
                action=outcome.action,
                path=format_path(f.path),
                message=f.message,
                fix=f.fix,
                note=outcome.note,
            )
        )
    if show_defaults and decision.mutated is not None:
        obj.diff = _diff(doc.raw, decision.mutated, obj.display)
    return obj


def _diff(before: dict[str, Any], after: dict[str, Any], label: str) -> str:
    def dump(obj: dict[str, Any]) -> list[str]:
        text = yaml.safe_dump(
            obj, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1 << 30
        )
        return text.splitlines(keepends=True)

    return "".join(difflib.unified_diff(dump(before), dump(after), label, f"{label} (with defaults)", n=2))


def _fix(docs: list[SourceDocument], decisions: list[Decision], report: Report) -> None:
    by_file: dict[str, list[Fix]] = {}
    for doc, decision in zip(docs, decisions, strict=True):
        if decision.patch and decision.mutated is not None:
            by_file.setdefault(doc.file, []).append(
                Fix(doc.index, doc.item, decision.patch, decision.mutated)
            )
    for file, fixes in by_file.items():
        try:
            if fix_file(file, fixes):
                report.fixed.append(file)
        except (FixError, OSError) as exc:
            report.errors.append(InputError(file, None, f"not fixed: {exc}"))

"""Text output: findings grouped by file, then one summary line. Colour only when asked
(the CLI asks when stdout is a terminal)."""

from __future__ import annotations

from collections.abc import Callable

import click

from webhook.findings import Action
from webhook.report import ObjectResult, Report

_ACTION_COLOURS = {
    Action.DENY: "red",
    Action.WARN: "yellow",
    Action.DOWNGRADED: "yellow",
    Action.AUDIT: "blue",
    Action.EXCEPTED: "bright_black",
}


def render(report: Report, *, color: bool = False) -> str:
    def style(text: str, **kw: object) -> str:
        return click.style(text, **kw) if color else text  # type: ignore[arg-type]

    lines: list[str] = []
    by_file: dict[str, list[ObjectResult]] = {}
    for obj in report.objects:
        if obj.findings or (report.show_defaults and obj.diff):
            by_file.setdefault(obj.file, []).append(obj)
    errors_by_file: dict[str, list[str]] = {}
    for err in report.errors:
        where = f"{err.line}" if err.line is not None else "-"
        errors_by_file.setdefault(err.file, []).append(
            f"  {where:<6} {style('error', fg='red', bold=True)}  {err.message}"
        )
    for file in sorted(by_file.keys() | errors_by_file.keys()):
        lines.append(style(file, bold=True, underline=True))
        lines.extend(errors_by_file.get(file, ()))
        for obj in by_file.get(file, ()):
            lines.extend(_object_lines(obj, report.show_defaults, style))
        lines.append("")
    lines.append(_summary(report, style))
    return "\n".join(lines) + "\n"


def _object_lines(obj: ObjectResult, show_defaults: bool, style: Callable[..., str]) -> list[str]:
    out: list[str] = []
    for f in sorted(obj.findings, key=lambda f: (f.line, f.column)):
        action = str(f.action)
        out.append(
            f"  {f'{f.line}:{f.column}':<6} {style(f'{action:<10}', fg=_ACTION_COLOURS.get(f.action))}"
            f" {obj.display}  {style(f'[{f.rule}]', dim=True)}"
        )
        out.append(f"         {f.path + ': ' if f.path else ''}{f.message}")
        if f.note:
            out.append(f"         ({f.note})")
        if f.fix:
            out.append("         fix:")
            out.extend(f"           {line}" for line in f.fix.rstrip().splitlines())
    if show_defaults and obj.diff:
        out.append(
            f"  {f'{obj.line}:1':<6} {style('defaults  ', fg='cyan')} {obj.display}"
            f"  {style('(' + ', '.join(obj.defaults_applied) + ')', dim=True)}"
        )
        for line in obj.diff.rstrip("\n").splitlines():
            colour = "green" if line.startswith("+") else "red" if line.startswith("-") else None
            out.append("         " + (style(line, fg=colour) if colour else line))
    return out


def _summary(report: Report, style: Callable[..., str]) -> str:
    s = report.summary()
    counts = s["findings"]
    files = "file" if s["files"] == 1 else "files"
    parts = [f"{s['objects']} objects in {s['files']} {files}: {s['reviewed']} reviewed"]
    parts.append(", ".join(f"{counts[str(a)]} {a}" for a in Action if counts[str(a)]) or "no findings")
    extra = []
    if s["skipped"]:
        extra.append(f"{s['skipped']} skipped (not in scope)")
    if s["exempt"]:
        extra.append(f"{s['exempt']} exempt")
    if s["notObjects"]:
        extra.append(f"{s['notObjects']} documents without apiVersion/kind skipped")
    if report.show_defaults or report.fixed:
        extra.append(f"{s['defaulted']} would receive defaults")
    if report.fixed:
        extra.append(f"{len(report.fixed)} files fixed")
    if s["errors"]:
        extra.append(f"{s['errors']} unreadable inputs")
    if report.notices:
        extra.append(f"{len(report.notices)} objects defined more than once (see the warnings)")
    if report.cluster:
        extra.append(f"inventory includes {report.cluster_objects} objects from {report.cluster}")
    text = "; ".join([parts[0], parts[1], *extra])
    code = report.exit_code
    verdict = {0: style("passed", fg="green", bold=True), 1: style("FAILED", fg="red", bold=True)}.get(
        code, style("ERROR", fg="red", bold=True)
    )
    return f"{verdict}: {text}"

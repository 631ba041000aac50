"""JSON output: one object, `{"summary": {...}, "findings": [...]}`, plus the inputs that
could not be read and, with --show-defaults, the defaults each object would receive."""

from __future__ import annotations

import json
from typing import Any

from webhook.report import Report


def render(report: Report) -> str:
    doc: dict[str, Any] = {
        "summary": report.summary(),
        "findings": [f.to_dict() for f in report.findings],
        "errors": [{"file": e.file, "line": e.line, "message": e.message} for e in report.errors],
    }
    if report.show_defaults:
        doc["defaults"] = [
            {
                "file": o.file,
                "line": o.line,
                "kind": o.kind,
                "namespace": o.namespace,
                "name": o.name,
                "defaults": o.defaults_applied,
                "patch": o.patch,
            }
            for o in report.objects
            if o.patch
        ]
    if report.notices:
        doc["notices"] = [{"file": n.file, "line": n.line, "message": n.message} for n in report.notices]
    if report.fixed:
        doc["fixed"] = report.fixed
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"

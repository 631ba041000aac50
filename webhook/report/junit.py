"""JUnit XML output, for CI systems that show test reports: one test suite per file, one
test case per object. An object fails when it has a finding at a failing action (deny,
or warn too with `--fail-on warn`); objects not in scope are skipped test cases; an
unreadable file is a test case in error."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from webhook.report import InputError, ObjectResult, Report, ReportFinding

# Characters XML 1.0 cannot carry, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def render(report: Report) -> str:
    root = ET.Element("testsuites", name=report.tool)
    files: dict[str, tuple[list[ObjectResult], list[InputError]]] = {}
    for obj in report.objects:
        files.setdefault(obj.file, ([], []))[0].append(obj)
    for err in report.errors:
        files.setdefault(err.file, ([], []))[1].append(err)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for file in sorted(files):
        objects, errors = files[file]
        suite = ET.SubElement(root, "testsuite", name=_clean(file))
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for err in errors:
            case = ET.SubElement(suite, "testcase", classname=_clean(file), name="read manifests", file=file)
            ET.SubElement(case, "error", message=_clean(err.message), type="input").text = _clean(
                f"{err.location}: {err.message}"
            )
            counts["tests"] += 1
            counts["errors"] += 1
        for obj in objects:
            counts["tests"] += 1
            case = ET.SubElement(
                suite,
                "testcase",
                classname=_clean(file),
                name=_clean(obj.display),
                file=file,
                line=str(obj.line),
            )
            if obj.status != "reviewed":
                reason = "not in scope" if obj.status == "skipped" else "exempt namespace"
                ET.SubElement(case, "skipped", message=reason)
                counts["skipped"] += 1
                continue
            failing = [f for f in obj.findings if report.failing(f)]
            others = [f for f in obj.findings if not report.failing(f)]
            if failing:
                counts["failures"] += 1
                actions = sorted({str(f.action) for f in failing})
                ET.SubElement(
                    case,
                    "failure",
                    message=_clean(f"{len(failing)} finding(s): " + "; ".join(f.message for f in failing)),
                    type="/".join(actions),
                ).text = _clean("\n\n".join(_describe(f) for f in failing))
            if others:
                ET.SubElement(case, "system-out").text = _clean("\n\n".join(_describe(f) for f in others))
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _describe(f: ReportFinding) -> str:
    text = f"{f.file}:{f.line}:{f.column}: {f.action} [{f.rule}] {f.path + ': ' if f.path else ''}{f.message}"
    if f.note:
        text += f" ({f.note})"
    if f.fix:
        text += f"\nfix:\n{f.fix}"
    return text


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)

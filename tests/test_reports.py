"""The report formats on hand-built reports: every action, unreadable inputs, colour,
SARIF validated against the official 2.1.0 schema, JUnit parsed back."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from webhook.findings import Action
from webhook.report import InputError, ObjectResult, Report, ReportFinding, render

RULE = "no-allow-any-outbound"
MESH = "deploy/mesh.yaml"
NOTE = "exception SEC-1 until 2030-01-01: vendor"
BAD_YAML = "invalid YAML: mapping values are not allowed here"
SARIF_SCHEMA = json.loads((Path(__file__).parent / "fixtures" / "sarif-schema-2.1.0.json").read_text())


def finding(
    action: Action, *, line: int = 7, rule: str = "no-allow-any-outbound", **kw: str
) -> ReportFinding:
    return ReportFinding(
        file=kw.get("file", "deploy/mesh.yaml"),
        line=line,
        column=5,
        kind="Sidecar",
        namespace="shop",
        name=kw.get("name", "default"),
        rule=rule,
        action=action,
        path="spec.outboundTrafficPolicy.mode",
        message=kw.get("message", "mode ALLOW_ANY lets workloads reach any destination"),
        fix=kw.get("fix", ""),
        note=kw.get("note", ""),
    )


def obj(
    name: str, findings: list[ReportFinding], status: str = "reviewed", file: str = "deploy/mesh.yaml"
) -> ObjectResult:
    return ObjectResult(file, 1, "Sidecar", "shop", name, status, findings)


def sample(fail_on: str = "deny") -> Report:
    return Report(
        objects=[
            obj("denied", [finding(Action.DENY, name="denied", fix="set mode: REGISTRY_ONLY")]),
            obj("warned", [finding(Action.WARN, name="warned", line=12)]),
            obj("audited", [finding(Action.AUDIT, name="audited", line=20)]),
            obj(
                "excepted",
                [
                    finding(
                        Action.EXCEPTED,
                        name="excepted",
                        line=30,
                        note=NOTE,
                    )
                ],
            ),
            obj("clean", []),
            obj("deployment", [], status="skipped", file="deploy/app.yaml"),
        ],
        errors=[InputError("deploy/broken.yaml", 4, BAD_YAML)],
        files=3,
        not_objects=1,
        fail_on=fail_on,
    )


def test_exit_code_and_summary() -> None:
    report = sample()
    assert report.exit_code == 2  # unreadable input wins
    report.errors.clear()
    assert report.exit_code == 1
    s = report.summary()
    assert (s["objects"], s["reviewed"], s["skipped"], s["notObjects"]) == (6, 5, 1, 1)
    assert s["findings"] == {"deny": 1, "warn": 1, "audit": 1, "excepted": 1, "downgraded": 0}
    only_warn = Report(objects=[obj("w", [finding(Action.WARN)])])
    assert only_warn.exit_code == 0
    only_warn.fail_on = "warn"
    assert only_warn.exit_code == 1
    audit = Report(objects=[obj("a", [finding(Action.AUDIT), finding(Action.EXCEPTED)])], fail_on="warn")
    assert audit.exit_code == 0


def test_text_groups_by_file_and_colours_only_when_asked() -> None:
    plain = render(sample(), "text")
    assert "\x1b[" not in plain
    lines = plain.splitlines()
    assert lines.index("deploy/broken.yaml") < lines.index("deploy/mesh.yaml")
    assert any("4" in ln and "error" in ln and "invalid YAML" in ln for ln in lines)
    assert any(ln.strip().startswith("7:5") and "deny" in ln and "Sidecar shop/denied" in ln for ln in lines)
    assert "           set mode: REGISTRY_ONLY" in lines
    assert "deploy/app.yaml" not in plain  # nothing to say about it
    assert lines[-1].startswith("ERROR: 6 objects in 3 files")
    coloured = render(sample(), "text", color=True)
    assert "\x1b[31m" in coloured  # deny in red
    assert click_unstyle(coloured) == plain


def click_unstyle(text: str) -> str:
    import click

    return click.unstyle(text)


def test_json_has_summary_findings_and_errors() -> None:
    doc = json.loads(render(sample(), "json"))
    assert set(doc) >= {"summary", "findings", "errors"}
    first = doc["findings"][0]
    for key in ("file", "line", "kind", "namespace", "name", "rule", "action", "message"):
        assert key in first
    assert first["fix"] == "set mode: REGISTRY_ONLY"
    assert [f["action"] for f in doc["findings"]] == ["deny", "warn", "audit", "excepted"]
    assert doc["errors"] == [
        {
            "file": "deploy/broken.yaml",
            "line": 4,
            "message": "invalid YAML: mapping values are not allowed here",
        }
    ]
    assert doc["summary"]["exitCode"] == 2


def test_sarif_validates_and_maps_actions() -> None:
    log = json.loads(render(sample(), "sarif"))
    jsonschema.validate(log, SARIF_SCHEMA)
    results = log["runs"][0]["results"]
    assert [r["level"] for r in results] == ["error", "warning", "note", "note"]
    excepted = results[3]
    assert excepted["suppressions"][0]["kind"] == "external"
    assert "SEC-1" in excepted["suppressions"][0]["justification"]
    assert all("suppressions" not in r for r in results[:3])
    assert results[0]["properties"]["fix"] == "set mode: REGISTRY_ONLY"
    # Fingerprints stay the same when only the line moves.
    moved = sample()
    moved.objects[0].findings[0] = finding(Action.DENY, name="denied", line=99, fix="set mode: REGISTRY_ONLY")
    again = json.loads(render(moved, "sarif"))["runs"][0]["results"][0]
    assert again["partialFingerprints"] == results[0]["partialFingerprints"]
    assert again["locations"][0]["physicalLocation"]["region"]["startLine"] == 99
    notes = log["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert notes[0]["locations"][0]["physicalLocation"]["region"] == {"startLine": 4}


def test_sarif_for_stdin_and_odd_paths_validates() -> None:
    report = Report(
        objects=[
            obj("a", [finding(Action.DENY, file="<stdin>")], file="<stdin>"),
            obj("b", [finding(Action.DENY, file="dir with space/ü.yaml")], file="dir with space/ü.yaml"),
        ]
    )
    log = json.loads(render(report, "sarif"))
    jsonschema.validate(log, SARIF_SCHEMA)
    uris = [
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in log["runs"][0]["results"]
    ]
    assert uris == ["stdin", "dir%20with%20space/%C3%BC.yaml"]


@pytest.mark.parametrize("fail_on", ["deny", "warn"])
def test_junit_one_testcase_per_object(fail_on: str) -> None:
    root = ET.fromstring(render(sample(fail_on), "junit"))
    cases = root.findall(".//testcase")
    assert len(cases) == 7  # six objects and the unreadable file
    failed = sorted(c.get("name") or "" for c in cases if c.find("failure") is not None)
    expected = ["Sidecar shop/denied"] + (["Sidecar shop/warned"] if fail_on == "warn" else [])
    assert failed == expected
    assert root.get("failures") == str(len(expected)) and root.get("errors") == "1"
    assert root.get("skipped") == "1" and root.get("tests") == "7"
    warned = next(c for c in cases if c.get("name") == "Sidecar shop/warned")
    if fail_on == "deny":
        assert "warn [no-allow-any-outbound]" in (warned.findtext("system-out") or "")
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"deploy/app.yaml", "deploy/broken.yaml", "deploy/mesh.yaml"}


def test_junit_survives_control_characters() -> None:
    report = Report(objects=[obj("x", [finding(Action.DENY, message="bad \x07 value")])])
    root = ET.fromstring(render(report, "junit"))
    assert "bad \ufffd value" in (root.find(".//failure").text or "")  # type: ignore[union-attr]


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown format 'yaml'"):
        render(sample(), "yaml")

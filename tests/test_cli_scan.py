"""`meshwarden scan` against tests/fake_apiserver.py through the real `kubernetes` client:
findings and exit codes on a violating and a compliant cluster, exceptions, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.fake_apiserver import KINDS, FakeApiServer
from webhook.cli import main

NET = "networking.istio.io/v1"
ROOT = "istio-system"


def compliant_objects() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": NET,
            "kind": "ServiceEntry",
            "metadata": {"name": "payments-api", "namespace": "apps"},
            "spec": {
                "hosts": ["api.payments.example.com"],
                "location": "MESH_EXTERNAL",
                "resolution": "DNS",
                "ports": [{"number": 443, "name": "https", "protocol": "HTTPS"}],
            },
        },
        {
            "apiVersion": NET,
            "kind": "DestinationRule",
            "metadata": {"name": "reviews", "namespace": "apps"},
            "spec": {
                "host": "reviews",
                "trafficPolicy": {
                    "outlierDetection": {
                        "consecutive5xxErrors": 5,
                        "interval": "10s",
                        "baseEjectionTime": "30s",
                    }
                },
            },
        },
        {
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "VirtualService",
            "metadata": {"name": "reviews", "namespace": "apps"},
            "spec": {
                "hosts": ["reviews"],
                "http": [{"route": [{"destination": {"host": "reviews"}}], "timeout": "5s"}],
            },
        },
        {
            "apiVersion": NET,
            "kind": "Gateway",
            "metadata": {"name": "egress", "namespace": ROOT},
            "spec": {
                "selector": {"istio": "egressgateway"},
                "servers": [
                    {
                        "port": {"number": 443, "name": "tls", "protocol": "TLS"},
                        "hosts": ["api.payments.example.com"],
                        "tls": {"mode": "PASSTHROUGH"},
                    }
                ],
            },
        },
        {
            "apiVersion": NET,
            "kind": "Sidecar",
            "metadata": {"name": "default", "namespace": "apps"},
            "spec": {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}},
        },
        {
            "apiVersion": "install.istio.io/v1alpha1",
            "kind": "IstioOperator",
            "metadata": {"name": "control-plane", "namespace": ROOT},
            "spec": {"meshConfig": {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "istio", "namespace": ROOT},
            "data": {"mesh": "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n"},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "istio-ca-root-cert", "namespace": ROOT},
            "data": {"root-cert.pem": "x"},
        },
    ]


def violations() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": NET,
            "kind": "Sidecar",
            "metadata": {"name": "open", "namespace": "apps"},
            "spec": {"outboundTrafficPolicy": {"mode": "ALLOW_ANY"}},
        },
        {
            "apiVersion": NET,
            "kind": "ServiceEntry",
            "metadata": {"name": "broken", "namespace": "team-b"},
            "spec": {"hosts": ["x.example.com"], "ports": "443"},
        },
        # The same violation in an exempt namespace is not reported.
        {
            "apiVersion": NET,
            "kind": "Sidecar",
            "metadata": {"name": "open", "namespace": "kube-system"},
            "spec": {"outboundTrafficPolicy": {"mode": "ALLOW_ANY"}},
        },
    ]


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


@pytest.fixture
def kubeconfig(api: FakeApiServer, tmp_path: Path) -> str:
    path = tmp_path / "kubeconfig"
    api.kubeconfig(path)
    return str(path)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["scan", *args], catch_exceptions=False)


def findings_of(result: Result) -> set[tuple[str, str, str, str, str]]:
    doc = json.loads(result.stdout)
    return {(f["kind"], f["namespace"], f["name"], f["rule"], f["action"]) for f in doc["findings"]}


def test_compliant_cluster_exits_0(api: FakeApiServer, kubeconfig: str) -> None:
    for obj in compliant_objects():
        api.put(obj)
    result = run("--kubeconfig", kubeconfig, "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["findings"] == []
    summary = doc["summary"]
    assert (summary["objects"], summary["reviewed"], summary["skipped"]) == (8, 7, 1)
    assert summary["exitCode"] == 0
    # Read-only: lists, nothing else.
    assert {s.verb for s in api.served} == {"list"}
    text = run("--kubeconfig", kubeconfig)
    assert text.exit_code == 0
    assert f"{api.url}: 8 objects, 7 reviewed, 0 exempt, 1 skipped; no findings" in text.stdout


def test_violating_cluster_exits_1_with_its_findings(api: FakeApiServer, kubeconfig: str) -> None:
    for obj in compliant_objects() + violations():
        api.put(obj)
    result = run("--kubeconfig", kubeconfig, "--format", "json")
    assert result.exit_code == 1, result.output
    got = findings_of(result)
    assert ("Sidecar", "apps", "open", "no-allow-any-outbound", "deny") in got
    assert ("ServiceEntry", "team-b", "broken", "istio-schema", "deny") in got
    assert not any(ns == "kube-system" for _, ns, *_ in got)
    summary = json.loads(result.stdout)["summary"]
    assert summary["exempt"] == 1
    assert summary["byRule"]["no-allow-any-outbound"]["deny"] >= 1
    assert summary["byRule"]["istio-schema"]["deny"] >= 1
    assert set(summary["byNamespace"]) == {"apps", "team-b"}
    assert summary["exitCode"] == 1
    assert {s.verb for s in api.served} == {"list"}


def test_text_output_names_object_rule_and_summaries(api: FakeApiServer, kubeconfig: str) -> None:
    for obj in compliant_objects() + violations():
        api.put(obj)
    result = run("--kubeconfig", kubeconfig)
    assert result.exit_code == 1
    out = result.stdout
    assert "Sidecar apps/open  deny  [no-allow-any-outbound]" in out
    assert "ServiceEntry team-b/broken  deny  [istio-schema]" in out
    assert "spec.ports" in out
    assert "Findings by rule:" in out and "Findings by namespace:" in out
    assert "1 exempt" in out


def test_sarif_and_junit_come_from_the_check_report_renderers(api: FakeApiServer, kubeconfig: str) -> None:
    for obj in compliant_objects() + violations():
        api.put(obj)
    sarif = run("--kubeconfig", kubeconfig, "--format", "sarif")
    assert sarif.exit_code == 1
    sarif_run = json.loads(sarif.stdout)["runs"][0]
    results = {
        (r["ruleId"], r["level"], r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"])
        for r in sarif_run["results"]
    }
    assert ("no-allow-any-outbound", "error", "Sidecar/apps/open") in results
    assert ("istio-schema", "error", "ServiceEntry/team-b/broken") in results
    assert sarif_run["invocations"][0]["exitCode"] == 1

    junit = run("--kubeconfig", kubeconfig, "--format", "junit")
    assert junit.exit_code == 1
    root = ET.fromstring(junit.stdout.split("\n", 1)[1])
    assert root.get("name") == "meshwarden scan"
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {
        "namespaces/apps",
        "namespaces/istio-system",
        "namespaces/team-b",
        "namespaces/kube-system",
    }
    failed = {c.get("name") for c in root.iter("testcase") if c.find("failure") is not None}
    assert failed == {"Sidecar apps/open", "ServiceEntry team-b/broken"}
    assert root.get("tests") == "11" and root.get("skipped") == "2"  # not in scope + exempt


def test_expired_exceptions_are_reported_and_no_longer_apply(
    api: FakeApiServer, kubeconfig: str, tmp_path: Path
) -> None:
    for obj in compliant_objects() + violations():
        api.put(obj)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: meshwarden.io/v1alpha1\nkind: Policy\nexceptions:\n"
        "  - {rule: no-allow-any-outbound, namespace: apps, name: open, reason: migration,"
        " ticket: SEC-1, expires: 2020-01-31}\n"
        "  - {rule: istio-schema, namespace: team-b, name: '*', reason: vendor chart,"
        " ticket: SEC-2, expires: 2999-12-31}\n"
    )
    result = run("--kubeconfig", kubeconfig, "--policy", str(policy), "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["expiredExceptions"] == [
        {
            "rule": "no-allow-any-outbound",
            "namespace": "apps",
            "name": "open",
            "ticket": "SEC-1",
            "reason": "migration",
            "expires": "2020-01-31",
        }
    ]
    by_key = {(f["kind"], f["namespace"], f["name"]): f for f in doc["findings"]}
    sidecar = by_key[("Sidecar", "apps", "open")]
    assert sidecar["action"] == "deny" and "SEC-1 expired on 2020-01-31" in sidecar["note"]
    assert by_key[("ServiceEntry", "team-b", "broken")]["action"] == "excepted"

    text = run("--kubeconfig", kubeconfig, "--policy", str(policy))
    assert "Expired policy exceptions (no longer applied):" in text.stdout
    assert "no-allow-any-outbound apps/open  SEC-1, expired 2020-01-31: migration" in text.stdout


def test_active_exceptions_make_the_cluster_pass(api: FakeApiServer, kubeconfig: str, tmp_path: Path) -> None:
    for obj in compliant_objects() + violations():
        api.put(obj)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: meshwarden.io/v1alpha1\nkind: Policy\nexceptions:\n"
        "  - {rule: '*', namespace: '*', reason: freeze, ticket: SEC-3, expires: 2999-12-31}\n"
    )
    result = run("--kubeconfig", kubeconfig, "--policy", str(policy), "--format", "json")
    assert result.exit_code == 0
    actions = {f["action"] for f in json.loads(result.stdout)["findings"]}
    assert actions == {"excepted"}


def test_unreachable_cluster_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    with FakeApiServer() as gone:
        kubeconfig = tmp_path / "kubeconfig"
        gone.kubeconfig(kubeconfig)
        url = gone.url
    result = run("--kubeconfig", str(kubeconfig))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"meshwarden scan: cannot reach the Kubernetes API server at {url}" in result.stderr
    assert "Traceback" not in result.stderr


def test_forbidden_resource_exits_2_naming_the_permission(api: FakeApiServer, kubeconfig: str) -> None:
    api.forbidden.add("DestinationRule")
    result = run("--kubeconfig", kubeconfig)
    assert result.exit_code == 2
    assert "not allowed to list destinationrules.networking.istio.io (HTTP 403" in result.stderr
    assert "grant get/list/watch" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kubeconfig", "{tmp}/missing"], "no such file"),
        (["--context", "nope"], "nope"),
        (["--policy", "{tmp}/policy.yaml"], "unknown rule id"),
    ],
    ids=["missing-kubeconfig", "unknown-context", "invalid-policy"],
)
def test_unusable_inputs_exit_2(
    api: FakeApiServer, kubeconfig: str, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "policy.yaml").write_text(
        "apiVersion: meshwarden.io/v1alpha1\nkind: Policy\nrules: {nope: {}}\n"
    )
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--kubeconfig" not in args:
        args = ["--kubeconfig", kubeconfig, *args]
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not api.served


def test_crd_not_installed_is_skipped_and_said(tmp_path: Path) -> None:
    with FakeApiServer(tuple(k for k in KINDS if k.kind != "IstioOperator")) as api:
        for obj in compliant_objects():
            if obj["kind"] != "IstioOperator":
                api.put(obj)
        kubeconfig = tmp_path / "kubeconfig"
        api.kubeconfig(kubeconfig)
        result = run("--kubeconfig", str(kubeconfig))
    assert result.exit_code == 0
    assert "Not served by the cluster (skipped): istiooperators.install.istio.io" in result.stdout


def test_paged_lists_are_read_in_full(api: FakeApiServer, kubeconfig: str) -> None:
    for i in range(501):
        api.put(
            {
                "apiVersion": NET,
                "kind": "Sidecar",
                "metadata": {"name": f"s{i}", "namespace": "apps"},
                "spec": {"outboundTrafficPolicy": {"mode": "ALLOW_ANY" if i == 500 else "REGISTRY_ONLY"}},
            }
        )
    result = run("--kubeconfig", kubeconfig, "--format", "json")
    assert result.exit_code == 1
    assert ("Sidecar", "apps", "s500", "no-allow-any-outbound", "deny") in findings_of(result)
    assert len(api.requests("list", "Sidecar")) == 2


def test_console_script_in_a_real_process(api: FakeApiServer, kubeconfig: str) -> None:
    for obj in compliant_objects() + violations():
        api.put(obj)
    exe = Path(sys.executable).with_name("meshwarden")
    proc = subprocess.run(
        [str(exe), "scan", "--kubeconfig", kubeconfig, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["summary"]["findings"]["deny"] >= 2

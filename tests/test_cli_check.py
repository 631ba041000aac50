"""`meshwarden check` as CI runs it: the real entry point in a subprocess, on real files
(tests/fixtures/check/), asserting exit codes, positions and every output format."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.fake_apiserver import FakeApiServer
from webhook.findings import Action

FIXTURES = Path(__file__).parent / "fixtures" / "check"
SARIF_SCHEMA = Path(__file__).parent / "fixtures" / "sarif-schema-2.1.0.json"
ROOT = Path(__file__).parent.parent


def run(*args: str, stdin: bytes | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "CLICOLOR_FORCE")}
    proc = subprocess.run(
        [sys.executable, "-m", "webhook", "check", *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")
    )


def run_json(*args: str, stdin: bytes | None = None) -> tuple[int, dict[str, Any]]:
    proc = run("--format", "json", *args, stdin=stdin)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def fixture(*parts: str) -> str:
    return str(Path("tests/fixtures/check", *parts))


def line_text(file: str, line: int) -> str:
    path = ROOT / file if not Path(file).is_absolute() else Path(file)
    return path.read_text(encoding="utf-8").splitlines()[line - 1]


def assert_points_at_path(finding: dict[str, Any]) -> None:
    """The reported line holds the field the finding's path names: `key:` for a key path,
    a list item for an index path."""
    text = line_text(finding["file"], finding["line"])
    last = re.split(r"[.\[]", finding["path"])[-1]
    if last.endswith("]"):
        assert text.lstrip().startswith("- "), (finding, text)
        assert finding["column"] == len(text) - len(text.lstrip()) + 3, (finding, text)
    else:
        assert re.search(rf"(^|[\s{{,-]){re.escape(last)}\s*:", text), (finding, text)
        assert finding["column"] == text.index(last) + 1, (finding, text)


# --- a tree whose files satisfy each other ----------------------------------------------


def test_tree_of_files_that_satisfy_each_other_passes() -> None:
    code, doc = run_json(fixture("mesh"))
    assert code == 0
    assert doc["findings"] == []
    s = doc["summary"]
    # serviceentry (2) + gateway (2) + virtualservice + reviews.json + sidecar.yml;
    # app.yaml's Deployment and Service are out of scope; values.yaml is no object;
    # .hidden/ and README.md are not read.
    assert (s["files"], s["objects"], s["reviewed"], s["skipped"], s["notObjects"]) == (7, 9, 7, 2, 1)
    assert s["exitCode"] == 0 and s["errors"] == 0


def test_a_file_without_its_companions_is_denied_at_the_field() -> None:
    code, doc = run_json(fixture("mesh", "serviceentry-wikipedia.yaml"))
    assert code == 1
    denied = [f for f in doc["findings"] if f["action"] == "deny"]
    assert denied, doc
    wildcard = [f for f in denied if f["rule"] == "wildcard-host-egress-gateway"]
    assert wildcard and all(f["name"] == "wikipedia" for f in wildcard)
    for f in denied:
        assert f["kind"] == "ServiceEntry" and f["namespace"] == "default"
        assert 2 <= f["line"] <= 15  # inside the first document
        assert_points_at_path(f)


# --- failing files, positions, every format ------------------------------------------------


def test_deny_findings_exit_1_with_lines_of_the_fields() -> None:
    code, doc = run_json(fixture("broken"))
    assert code == 1
    by_name = {f["name"]: f for f in doc["findings"]}
    assert set(by_name) == {"billing-plaintext", "default"}
    tls = by_name["billing-plaintext"]
    assert (tls["rule"], tls["action"], tls["kind"], tls["namespace"]) == (
        "external-tls-origination",
        "deny",
        "ServiceEntry",
        "shop",
    )
    assert tls["file"].endswith("broken/plaintext.yaml")
    assert 16 <= tls["line"] <= 28  # the second document of the file
    assert_points_at_path(tls)
    sidecar = by_name["default"]
    assert sidecar["rule"] == "no-allow-any-outbound" and sidecar["path"] == "spec.outboundTrafficPolicy.mode"
    assert (sidecar["line"], sidecar["column"]) == (8, 5)
    assert doc["summary"]["findings"]["deny"] == 2


def test_text_format_groups_by_file_without_colour_when_piped() -> None:
    proc = run(fixture("broken"))
    assert proc.returncode == 1
    out = proc.stdout
    assert "\x1b[" not in out
    plaintext = out.index(fixture("broken", "plaintext.yaml"))
    sidecar = out.index(fixture("broken", "sidecar.yaml"))
    assert plaintext < out.index("billing-plaintext") < sidecar < out.index("Sidecar shop/default")
    assert re.search(r"^\s+8:5\s+deny\s+Sidecar shop/default\s+\[no-allow-any-outbound\]$", out, re.M)
    summary = out.rstrip().splitlines()[-1]
    assert summary.startswith("FAILED: 3 objects in 2 files") and "2 deny" in summary


def test_sarif_is_valid_sarif_2_1_0_with_locations() -> None:
    proc = run("--format", "sarif", fixture("broken"))
    assert proc.returncode == 1
    log = json.loads(proc.stdout)
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.validate(log, schema)
    run_ = log["runs"][0]
    rules = [r["id"] for r in run_["tool"]["driver"]["rules"]]
    results = run_["results"]
    assert len(results) == 2
    for result in results:
        assert rules[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] == "error"
        loc = result["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"].startswith("tests/fixtures/check/broken/")
        assert loc["region"]["startLine"] >= 1
    sidecar = next(r for r in results if r["ruleId"] == "no-allow-any-outbound")
    assert sidecar["locations"][0]["physicalLocation"]["region"] == {"startLine": 8, "startColumn": 5}
    assert run_["invocations"][0]["executionSuccessful"] is True


def test_junit_has_one_testcase_per_object() -> None:
    proc = run("--format", "junit", fixture("broken"), fixture("mesh", "app.yaml"))
    assert proc.returncode == 1
    root = ET.fromstring(proc.stdout)
    assert root.get("name") == "meshwarden check"
    cases = root.findall(".//testcase")
    assert len(cases) == 5  # 3 reviewed + Deployment + Service (skipped)
    assert root.get("tests") == "5" and root.get("failures") == "2" and root.get("skipped") == "2"
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failed == {"ServiceEntry shop/billing-plaintext", "Sidecar shop/default"}
    passed = [c for c in cases if c.get("name") == "ServiceEntry shop/api-tls"]
    assert passed and passed[0].find("failure") is None and passed[0].find("skipped") is None


# --- invalid input --------------------------------------------------------------------------


def test_invalid_yaml_exits_2_naming_file_and_line_and_still_reports_the_rest() -> None:
    proc = run("--format", "json", fixture("invalid"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    match = re.search(r"tests/fixtures/check/invalid/bad\.yaml:(\d+): error: invalid YAML", proc.stderr)
    assert match and 4 <= int(match.group(1)) <= 5
    doc = json.loads(proc.stdout)
    assert doc["errors"][0]["file"].endswith("invalid/bad.yaml")
    assert [f["name"] for f in doc["findings"]] == ["default"]  # good.yaml was still reviewed
    assert doc["summary"]["exitCode"] == 2


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "junit"])
def test_exit_codes_do_not_depend_on_the_format(fmt: str) -> None:
    assert run("--format", fmt, fixture("broken")).returncode == 1
    assert run("--format", fmt, fixture("invalid")).returncode == 2


def test_invalid_input_is_reported_in_sarif_and_junit() -> None:
    sarif = json.loads(run("--format", "sarif", fixture("invalid")).stdout)
    jsonschema.validate(sarif, json.loads(SARIF_SCHEMA.read_text(encoding="utf-8")))
    invocation = sarif["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False and invocation["exitCode"] == 2
    assert "invalid YAML" in invocation["toolExecutionNotifications"][0]["message"]["text"]
    junit = ET.fromstring(run("--format", "junit", fixture("invalid")).stdout)
    assert junit.get("errors") == "1" and junit.find(".//testcase/error") is not None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"a: " + b"[" * 100_000 + b"]" * 100_000, "nested deeper than"),
        (b"apiVersion: v1\nkind: A\nx: 1\x00\x01", "binary file"),
        (b"apiVersion: v1\nkind: \xe9\n", "not UTF-8"),
        (
            b'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n'
            + b"".join(
                f"{c}: &{c} [{','.join(['*' + p] * 10)}]\n".encode()
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            ),
            "aliases expand",
        ),
    ],
)
def test_hostile_input_exits_2_cleanly(tmp_path: Path, content: bytes, problem: str) -> None:
    bad = tmp_path / "hostile.yaml"
    bad.write_bytes(content)
    proc = run(str(bad))
    assert proc.returncode == 2
    assert problem in proc.stderr and str(bad) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_path_exits_2() -> None:
    proc = run("tests/fixtures/check/no-such-dir")
    assert proc.returncode == 2
    assert "no-such-dir: error: no such file or directory" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [(), ("--format", "yaml", "tests/fixtures/check/mesh"), ("--fix", "-"), ("--fail-on", "audit", ".")],
)
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    proc = run(*args, stdin=b"")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_unusable_policy_exits_2(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: meshwarden.io/v1alpha1\nkind: Policy\nrules:\n  no-such-rule: {}\n")
    proc = run("--policy", str(policy), fixture("mesh"))
    assert proc.returncode == 2
    assert "no-such-rule" in proc.stderr and "unknown rule id" in proc.stderr


# --- stdin, policy actions, fail-on ---------------------------------------------------------


def test_stdin_is_read_with_dash() -> None:
    data = (ROOT / fixture("broken", "sidecar.yaml")).read_bytes()
    code, doc = run_json("-", stdin=data)
    assert code == 1
    [finding] = doc["findings"]
    assert (finding["file"], finding["line"], finding["rule"]) == ("<stdin>", 8, "no-allow-any-outbound")


def test_stdin_stream_like_kustomize_output() -> None:
    parts = [
        (ROOT / fixture("mesh", name)).read_text() for name in ("serviceentry-wikipedia.yaml", "gateway.yaml")
    ]
    parts.append((ROOT / fixture("mesh", "virtualservice.yaml")).read_text())
    code, doc = run_json("-", stdin="\n---\n".join(parts).encode())
    assert code == 0, doc["findings"]
    assert doc["summary"]["reviewed"] == 5


def test_warn_findings_pass_unless_fail_on_warn() -> None:
    code, doc = run_json(fixture("warn"))
    assert code == 0
    assert doc["findings"] and {f["action"] for f in doc["findings"]} == {"warn"}
    code, doc = run_json("--fail-on", "warn", fixture("warn"))
    assert code == 1 and doc["summary"]["failOn"] == "warn"


def test_policy_action_for_the_check_point_applies(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: meshwarden.io/v1alpha1\nkind: Policy\n"
        "rules:\n  no-allow-any-outbound:\n    action: {admission: deny, check: audit}\n"
    )
    code, doc = run_json("--policy", str(policy), fixture("broken", "sidecar.yaml"))
    assert code == 0
    assert [f["action"] for f in doc["findings"]] == [str(Action.AUDIT)]


def test_output_option_writes_the_report_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "report.sarif"
    proc = run("--format", "sarif", "--output", str(out), fixture("broken"))
    assert proc.returncode == 1 and proc.stdout == ""
    assert json.loads(out.read_text())["version"] == "2.1.0"


# --- defaults -------------------------------------------------------------------------------


def test_show_defaults_prints_the_patch_and_a_diff() -> None:
    proc = run("--show-defaults", fixture("defaults"))
    assert proc.returncode == 0
    assert "+      timeout: 10s" in proc.stdout or "+    timeout: 10s" in proc.stdout
    assert "default-route-timeout" in proc.stdout and "default-outlier-detection" in proc.stdout
    code, doc = run_json("--show-defaults", fixture("defaults"))
    assert code == 0
    by_kind = {d["kind"]: d for d in doc["defaults"]}
    assert set(by_kind) == {"VirtualService", "DestinationRule"}
    vs_paths = {op["path"] for op in by_kind["VirtualService"]["patch"]}
    assert {"/spec/http/0/timeout", "/spec/http/1/timeout"} <= vs_paths
    assert all(op["op"] in ("add", "replace") for d in doc["defaults"] for op in d["patch"])
    assert by_kind["VirtualService"]["line"] == 2


def test_fix_writes_defaults_and_a_second_fix_changes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "reviews.yaml"
    shutil.copy(ROOT / fixture("defaults", "reviews.yaml"), target)
    original = target.read_text()
    proc = run("--fix", str(target))
    assert proc.returncode == 0, proc.stderr
    fixed = target.read_text()
    assert fixed != original
    # Only lines were added (one line changed: the flow-style annotations mapping).
    removed = [ln for ln in original.splitlines() if ln not in fixed.splitlines()]
    assert removed == ["  annotations: {team: books}"]
    assert "      timeout: 10s" in fixed and "outlierDetection:" in fixed
    assert "# the default route follows" in fixed and "subset: v2   # canary" in fixed
    code, doc = run_json("--show-defaults", str(target))
    assert code == 0 and doc["defaults"] == []
    assert run("--fix", str(target)).returncode == 0
    assert target.read_text() == fixed


# --- --kubeconfig: the live cluster's objects in the inventory ------------------------------

_PLAINTEXT_SE = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: billing
  namespace: shop
spec:
  hosts:
  - billing.example.com
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - number: 80
    name: http
    protocol: HTTP
"""


def _billing_rule(mode: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "billing", "namespace": "shop"},
        "spec": {"host": "billing.example.com", "trafficPolicy": {"tls": {"mode": mode}}},
    }


@pytest.fixture
def live_cluster(tmp_path: Path) -> Iterator[tuple[FakeApiServer, str]]:
    with FakeApiServer() as api:
        path = tmp_path / "kubeconfig"
        api.kubeconfig(path, context="prod")
        yield api, str(path)


def test_live_objects_satisfy_the_input(tmp_path: Path, live_cluster: tuple[FakeApiServer, str]) -> None:
    api, kubeconfig = live_cluster
    api.put(_billing_rule("SIMPLE"))  # TLS origination lives in the cluster only
    (tmp_path / "se.yaml").write_text(_PLAINTEXT_SE)

    code, alone = run_json(str(tmp_path / "se.yaml"))
    assert code == 1 and {f["rule"] for f in alone["findings"]} == {"external-tls-origination"}

    code, doc = run_json(str(tmp_path / "se.yaml"), "--kubeconfig", kubeconfig, "--context", "prod")
    assert code == 0, doc["findings"]
    assert doc["summary"]["cluster"] == {"server": api.url, "objects": 1}
    assert doc["summary"]["objects"] == 1  # live objects are in the inventory, not reviewed

    text = run(str(tmp_path / "se.yaml"), "--kubeconfig", kubeconfig)
    assert text.returncode == 0 and f"inventory includes 1 objects from {api.url}" in text.stdout


def test_an_input_object_replaces_its_live_version(
    tmp_path: Path, live_cluster: tuple[FakeApiServer, str]
) -> None:
    api, kubeconfig = live_cluster
    api.put(_billing_rule("SIMPLE"))
    (tmp_path / "se.yaml").write_text(_PLAINTEXT_SE)
    # The change under review turns origination off: the live version must not hide that.
    (tmp_path / "dr.json").write_text(json.dumps(_billing_rule("DISABLE")))
    code, doc = run_json(str(tmp_path), "--kubeconfig", kubeconfig)
    assert code == 1
    assert {(f["kind"], f["rule"]) for f in doc["findings"] if f["action"] == "deny"} == {
        ("ServiceEntry", "external-tls-origination"),
        ("DestinationRule", "external-tls-origination"),  # the field that turns it off
    }


def test_an_unreachable_cluster_exits_2_naming_it(tmp_path: Path) -> None:
    with FakeApiServer() as api:
        api.kubeconfig(tmp_path / "kubeconfig")
        url = api.url
    (tmp_path / "se.yaml").write_text(_PLAINTEXT_SE)
    proc = run(str(tmp_path / "se.yaml"), "--kubeconfig", str(tmp_path / "kubeconfig"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"cannot reach the Kubernetes API server at {url}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_unknown_context_exits_2(live_cluster: tuple[FakeApiServer, str]) -> None:
    _, kubeconfig = live_cluster
    proc = run(fixture("mesh"), "--kubeconfig", kubeconfig, "--context", "staging")
    assert proc.returncode == 2 and "staging" in proc.stderr and "Traceback" not in proc.stderr


def test_a_cluster_that_refuses_the_list_exits_2(live_cluster: tuple[FakeApiServer, str]) -> None:
    api, kubeconfig = live_cluster
    api.forbidden.add("DestinationRule")
    proc = run(fixture("mesh"), "--kubeconfig", kubeconfig)
    assert proc.returncode == 2
    assert "not allowed to list destinationrules" in proc.stderr and "Traceback" not in proc.stderr


def test_an_object_defined_twice_is_reviewed_twice_with_a_warning(tmp_path: Path) -> None:
    # A tree holding a kustomize base and an overlay: the same object in two files.
    vs = (ROOT / fixture("mesh", "virtualservice.yaml")).read_text()
    for env in ("base", "prod"):
        (tmp_path / env).mkdir()
        (tmp_path / env / "vs.yaml").write_text(vs)
    code, doc = run_json(str(tmp_path))
    assert code == 0 and doc["summary"]["reviewed"] == 2
    (notice,) = doc["notices"]
    assert notice["file"].endswith("prod/vs.yaml") and notice["line"] == 1
    assert f"is also defined at {tmp_path / 'base' / 'vs.yaml'}:1" in notice["message"]
    text = run(str(tmp_path))
    assert "1 objects defined more than once" in text.stdout
    assert text.stderr.count("warning:") == 1 and "prod/vs.yaml:1: warning: VirtualService" in text.stderr
    _, single = run_json(fixture("mesh"))
    assert "notices" not in single

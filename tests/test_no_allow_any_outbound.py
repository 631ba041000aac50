"""Tests for policies/no_allow_any_outbound.py: every place ALLOW_ANY can be set."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from policies.no_allow_any_outbound import RULE_ID, check
from webhook import policy as policy_mod
from webhook.context import Context
from webhook.engine import evaluate
from webhook.findings import Action, Finding
from webhook.inventory import MemoryInventory
from webhook.objects import Resource, parse, scope_kind
from webhook.policy import EnforcementPoint

SEEDS = Path(__file__).parent / "fixtures" / "seeds"
POLICY = policy_mod.load()


def _seed(name: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((SEEDS / name).read_text(encoding="utf-8")) if d]
    assert len(docs) == 1, name
    return docs[0]


def _findings(doc: dict[str, Any], operation: str = "CREATE") -> list[Finding]:
    kind = scope_kind(doc, POLICY.mesh.root_namespace)
    assert kind is not None, "object is not in scope"
    res = parse(doc, kind)
    assert isinstance(res, Resource), res
    inv = MemoryInventory()
    ctx = Context(res, operation, inv, inv, POLICY.mesh, POLICY.rule_params[RULE_ID], doc)
    return list(check(ctx))


def _outcomes(doc: dict[str, Any]) -> list[tuple[str, Action]]:
    decision = evaluate(POLICY, EnforcementPoint.ADMISSION, MemoryInventory(), "CREATE", doc)
    return [(o.finding.path_text, o.action) for o in decision.outcomes if o.finding.rule == RULE_ID]


def _fix_yaml(finding: Finding) -> dict[str, Any]:
    """The YAML part of a fix: everything after its first (prose) line, up to the next prose line."""
    lines = finding.fix.splitlines()[1:]
    snippet = []
    for line in lines:
        if line and not line.startswith((" ", "-", "spec:", "data:")):
            break
        snippet.append(line)
    doc = yaml.safe_load("\n".join(snippet))
    assert isinstance(doc, dict), finding.fix
    return doc


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _sidecar(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Sidecar",
        "metadata": {"name": "client", "namespace": "app"},
        "spec": spec,
    }


def _mesh_configmap(mesh: str, name: str = "istio", namespace: str = "istio-system") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"mesh": mesh},
    }


def _operator(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "install.istio.io/v1alpha1",
        "kind": "IstioOperator",
        "metadata": {"name": "control-plane", "namespace": "istio-system"},
        "spec": spec,
    }


def _service_entry(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": "external-db", "namespace": "shop"},
        "spec": {"hosts": ["db.example.com"], **spec},
    }


# --- Sidecar ------------------------------------------------------------------------------


def test_seed_sidecar_with_registry_only_passes() -> None:
    assert _findings(_seed("002-01-sidecar-client.yaml")) == []


def test_sidecar_allow_any_is_a_finding_on_the_mode() -> None:
    seed = _seed("002-01-sidecar-client.yaml")
    seed["spec"]["outboundTrafficPolicy"]["mode"] = "ALLOW_ANY"
    [finding] = _findings(seed)
    assert finding.path_text == "spec.outboundTrafficPolicy.mode"
    assert finding.level == "deny"
    assert "ALLOW_ANY" in finding.message and "PassthroughCluster" in finding.message
    assert _fix_yaml(finding) == {"spec": {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}}
    assert _outcomes(seed) == [("spec.outboundTrafficPolicy.mode", Action.DENY)]


def test_sidecar_fix_applied_clears_the_finding() -> None:
    doc = _sidecar({"egress": [{"hosts": ["./*"]}], "outboundTrafficPolicy": {"mode": "ALLOW_ANY"}})
    [finding] = _findings(doc)
    assert _findings(_merge(doc, _fix_yaml(finding))) == []


def test_sidecar_with_egress_proxy_fix_says_to_remove_it() -> None:
    doc = _sidecar(
        {
            "outboundTrafficPolicy": {
                "mode": "ALLOW_ANY",
                "egressProxy": {"host": "proxy.corp.example.com", "port": {"number": 3128}},
            }
        }
    )
    [finding] = _findings(doc)
    assert "egressProxy" in finding.fix


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"egress": [{"hosts": ["./*"]}]}, id="absent-inherits-mesh"),
        pytest.param({"outboundTrafficPolicy": {}}, id="empty-is-registry-only"),
        pytest.param({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}, id="registry-only"),
    ],
)
def test_sidecar_without_allow_any_passes(spec: dict[str, Any]) -> None:
    assert _findings(_sidecar(spec)) == []


def test_sidecar_allow_any_dynamic_dns_is_a_finding() -> None:
    [finding] = _findings(_sidecar({"outboundTrafficPolicy": {"mode": "ALLOW_ANY_DYNAMIC_DNS"}}))
    assert "ALLOW_ANY_DYNAMIC_DNS" in finding.message


def test_delete_of_allow_any_sidecar_is_no_finding() -> None:
    assert _findings(_sidecar({"outboundTrafficPolicy": {"mode": "ALLOW_ANY"}}), operation="DELETE") == []


# --- mesh config ConfigMap ----------------------------------------------------------------

# The seed's `kubectl edit configmap istio` shows this mesh key after the change.
_SEED_MESH_REGISTRY_ONLY = "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\naccessLogFile: /dev/stdout\n"


def test_mesh_config_with_registry_only_passes() -> None:
    assert _findings(_mesh_configmap(_SEED_MESH_REGISTRY_ONLY)) == []


@pytest.mark.parametrize("mode", ["ALLOW_ANY", "ALLOW_ANY_DYNAMIC_DNS"])
def test_mesh_config_with_permissive_mode_is_a_finding(mode: str) -> None:
    doc = _mesh_configmap(f"accessLogFile: /dev/stdout\noutboundTrafficPolicy:\n  mode: {mode}\n")
    [finding] = _findings(doc)
    assert finding.path_text == "data.mesh"
    assert mode in finding.message
    assert _outcomes(doc) == [("data.mesh", Action.DENY)]


@pytest.mark.parametrize(
    "mesh",
    [
        pytest.param("accessLogFile: /dev/stdout\n", id="other-keys-only"),
        pytest.param("", id="empty-mesh"),
        pytest.param("outboundTrafficPolicy:\n", id="null-block-keeps-default"),
    ],
)
def test_mesh_config_without_mode_is_allow_any_by_default(mesh: str) -> None:
    [finding] = _findings(_mesh_configmap(mesh))
    assert "default ALLOW_ANY" in finding.message
    assert finding.level == "deny"


def test_mesh_config_empty_block_is_registry_only() -> None:
    # istiod unmarshals the block into a fresh message: mode 0 = REGISTRY_ONLY.
    assert _findings(_mesh_configmap("outboundTrafficPolicy: {}\n")) == []


def test_mesh_config_fix_merged_into_the_mesh_yaml_clears_the_finding() -> None:
    doc = _mesh_configmap("accessLogFile: /dev/stdout\noutboundTrafficPolicy:\n  mode: ALLOW_ANY\n")
    [finding] = _findings(doc)
    fix_mesh = yaml.safe_load(_fix_yaml(finding)["data"]["mesh"])
    merged = _merge(yaml.safe_load(doc["data"]["mesh"]), fix_mesh)
    assert merged["accessLogFile"] == "/dev/stdout"
    assert _findings(_mesh_configmap(yaml.safe_dump(merged))) == []


def test_revisioned_mesh_config_is_checked() -> None:
    doc = _mesh_configmap("outboundTrafficPolicy:\n  mode: ALLOW_ANY\n", name="istio-1-24")
    assert [f.path_text for f in _findings(doc)] == ["data.mesh"]


def test_istio_configmap_outside_the_root_namespace_is_not_mesh_config() -> None:
    doc = _mesh_configmap("outboundTrafficPolicy:\n  mode: ALLOW_ANY\n", namespace="default")
    decision = evaluate(POLICY, EnforcementPoint.ADMISSION, MemoryInventory(), "CREATE", doc)
    assert decision.status == "skipped"
    assert decision.outcomes == []


# --- IstioOperator ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["ALLOW_ANY", "ALLOW_ANY_DYNAMIC_DNS"])
def test_operator_with_permissive_mode_is_denied(mode: str) -> None:
    doc = _operator({"meshConfig": {"outboundTrafficPolicy": {"mode": mode}}})
    [finding] = _findings(doc)
    assert finding.path_text == "spec.meshConfig.outboundTrafficPolicy.mode"
    assert finding.level == "deny"
    assert _outcomes(doc) == [("spec.meshConfig.outboundTrafficPolicy.mode", Action.DENY)]
    fixed = _merge(doc, _fix_yaml(finding))
    assert _findings(fixed) == []


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        pytest.param({"profile": "default"}, "spec", id="no-meshconfig"),
        pytest.param({"meshConfig": {"accessLogFile": "/dev/stdout"}}, "spec.meshConfig", id="no-block"),
        pytest.param(
            {"meshConfig": {"outboundTrafficPolicy": {}}},
            "spec.meshConfig.outboundTrafficPolicy",
            id="empty-block",
        ),
    ],
)
def test_operator_without_mode_only_warns(spec: dict[str, Any], path: str) -> None:
    doc = _operator(spec)
    [finding] = _findings(doc)
    assert finding.level == "warn"
    assert finding.path_text == path
    assert "ALLOW_ANY" in finding.message
    # The policy says deny for this rule; the warn-level case is capped at warn.
    assert _outcomes(doc) == [(path, Action.WARN)]


def test_operator_with_registry_only_passes() -> None:
    doc = _operator(
        {"profile": "default", "meshConfig": {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}}
    )
    assert _findings(doc) == []


# --- ServiceEntry: ALLOW_ANY in disguise --------------------------------------------------


@pytest.mark.parametrize("protocol", ["TCP", "tcp", "MONGO", "Redis", "MYSQL", None])
def test_none_resolution_opaque_port_without_addresses_is_a_finding(protocol: str | None) -> None:
    port: dict[str, Any] = {"number": 3306, "name": "db"}
    if protocol is not None:
        port["protocol"] = protocol
    [finding] = _findings(_service_entry({"ports": [port]}))
    assert finding.path_text == "spec.ports[0]"
    assert "traffic to any IP on port 3306 is allowed" in finding.message
    assert "addresses" in finding.fix


def test_only_the_opaque_ports_are_reported() -> None:
    doc = _service_entry(
        {
            "resolution": "NONE",
            "ports": [
                {"number": 80, "name": "http", "protocol": "HTTP"},
                {"number": 5432, "name": "tcp-pg", "protocol": "TCP"},
                {"number": 443, "name": "https", "protocol": "HTTPS"},
                {"number": 9000, "name": "sniffed"},
                {"number": 8443, "name": "tls", "protocol": "TLS"},
            ],
        }
    )
    got = [(f.path_text, f.message) for f in _findings(doc)]
    assert [p for p, _ in got] == ["spec.ports[1]", "spec.ports[3]"]
    assert "port 5432" in got[0][1] and "port 9000" in got[1][1]


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(
            {"addresses": ["10.20.0.0/16"], "ports": [{"number": 3306, "name": "db", "protocol": "TCP"}]}
        ),
        pytest.param({"resolution": "DNS", "ports": [{"number": 3306, "name": "db", "protocol": "TCP"}]}),
        pytest.param(
            {
                "resolution": "STATIC",
                "ports": [{"number": 3306, "name": "db", "protocol": "TCP"}],
                "endpoints": [{"address": "10.20.1.5"}],
            }
        ),
        pytest.param({"ports": [{"number": 443, "name": "https", "protocol": "HTTPS"}]}),
    ],
    ids=["addresses", "dns", "static", "https"],
)
def test_service_entries_that_name_their_destinations_pass(spec: dict[str, Any]) -> None:
    assert _findings(_service_entry(spec)) == []


def test_catch_all_cidr_with_none_resolution_is_a_finding() -> None:
    doc = _service_entry(
        {
            "addresses": ["10.0.0.1", "0.0.0.0/0"],
            "ports": [{"number": 443, "name": "https", "protocol": "HTTPS"}],
        }
    )
    [finding] = _findings(doc)
    assert finding.path_text == "spec.addresses[1]"
    assert "0.0.0.0/0" in finding.message


@pytest.mark.parametrize(
    "seed",
    sorted(p.name for p in SEEDS.glob("*.yaml") if "serviceentry" in p.name) if SEEDS.is_dir() else [],
)
def test_seed_service_entries_name_their_destinations(seed: str) -> None:
    # Every port in the seeds is HTTP or HTTPS, or the entry resolves by DNS/STATIC.
    for doc in yaml.safe_load_all((SEEDS / seed).read_text(encoding="utf-8")):
        if doc and doc.get("kind") == "ServiceEntry":
            assert _findings(doc) == []


def test_wildcard_seed_with_default_resolution_and_https_port_passes() -> None:
    doc = _seed("001-07-serviceentry-wikipedia.yaml")
    assert doc["spec"].get("resolution") is None  # NONE by default
    assert _findings(doc) == []
    doc["spec"]["ports"].append({"number": 5222, "name": "xmpp", "protocol": "TCP"})
    assert [f.path_text for f in _findings(doc)] == ["spec.ports[1]"]

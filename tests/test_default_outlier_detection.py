"""Tests for policies/default_outlier_detection.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from policies.default_outlier_detection import Params, mutate
from webhook import policy as policy_mod
from webhook.context import Context
from webhook.engine import evaluate
from webhook.inventory import MemoryInventory
from webhook.objects import Resource, parse
from webhook.policy import EnforcementPoint, PolicyError
from webhook.registry import Change

SEEDS = Path(__file__).parent / "fixtures" / "seeds"
POLICY = policy_mod.load()
DEFAULTER_ID = "default-outlier-detection"
ORG_DEFAULT = {
    "consecutive5xxErrors": 5,
    "interval": "10s",
    "baseEjectionTime": "30s",
    "maxEjectionPercent": 50,
}


def _seed_docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((SEEDS / name).read_text(encoding="utf-8")) if d]


def _seed_dr(name: str) -> dict[str, Any]:
    [doc] = [d for d in _seed_docs(name) if d["kind"] == "DestinationRule"]
    return doc


def _changes(doc: dict[str, Any], params: Params | None = None) -> list[Change]:
    res = parse(doc, "DestinationRule")
    assert isinstance(res, Resource), res
    inv = MemoryInventory()
    return mutate(Context(res, "CREATE", inv, inv, POLICY.mesh, params or Params(), doc))


def _by_path(doc: dict[str, Any], params: Params | None = None) -> dict[tuple[str | int, ...], Any]:
    return {c.path: c.value for c in _changes(doc, params)}


def _dr(traffic_policy: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"host": "reviews.shop.svc.cluster.local", **spec}
    if traffic_policy is not None:
        body["trafficPolicy"] = traffic_policy
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "reviews", "namespace": "shop"},
        "spec": body,
    }


TOP = ("spec", "trafficPolicy", "outlierDetection")


def _port(i: int) -> tuple[str | int, ...]:
    return ("spec", "trafficPolicy", "portLevelSettings", i, "outlierDetection")


@pytest.mark.parametrize(
    "seed",
    [
        "002-07-destinationrule-nginx-external.yaml",
        "002-13-destinationrule-nginx-external.yaml",
        "002-17-destinationrule-nginx-external.yaml",
        "002-22-destinationrule-nginx-external.yaml",
    ],
)
def test_seed_rules_with_outlier_detection_are_left_alone(seed: str) -> None:
    doc = _seed_dr(seed)
    assert "outlierDetection" in doc["spec"]["trafficPolicy"]
    assert _changes(doc) == []


def test_seed_rule_without_outlier_detection_gets_the_org_default_and_subsets_stay() -> None:
    doc = _seed_dr("002-04-destinationrule-api-policy.yaml")
    assert doc["spec"]["subsets"][0]["trafficPolicy"]  # a subset policy exists, and is not touched
    assert _by_path(doc) == {TOP: ORG_DEFAULT}


def test_seed_port_level_tls_entry_gets_its_own_block() -> None:
    # The port-80 entry replaces the top-level policy wholesale: it needs the block too.
    doc = _seed_dr("001-06-serviceentry-destinationrule-edition-cnn-com.yaml")
    assert _by_path(doc) == {TOP: ORG_DEFAULT, _port(0): ORG_DEFAULT}


def test_seed_rule_without_traffic_policy_gets_one() -> None:
    doc = _seed_dr("000-02-gateway-destinationrule-istio-egressgateway.yaml")
    assert "trafficPolicy" not in doc["spec"]
    assert _by_path(doc) == {TOP: ORG_DEFAULT}


def test_only_port_entries_without_a_block_are_defaulted() -> None:
    own = {"consecutive5xxErrors": 1, "interval": "1s"}
    doc = _dr(
        {
            "outlierDetection": {"consecutiveGatewayErrors": 3},
            "portLevelSettings": [
                {"port": {"number": 80}, "connectionPool": {"tcp": {"maxConnections": 10}}},
                {"port": {"number": 443}, "outlierDetection": own},
                {"port": {"number": 8080}, "tls": {"mode": "SIMPLE"}},
            ],
        }
    )
    assert _by_path(doc) == {_port(0): ORG_DEFAULT, _port(2): ORG_DEFAULT}


def test_subset_policies_are_left_as_they_are() -> None:
    doc = _dr(
        {"outlierDetection": {"consecutive5xxErrors": 7}},
        subsets=[
            {
                "name": "v1",
                "labels": {"version": "v1"},
                "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}},
            }
        ],
    )
    assert _changes(doc) == []


def test_configured_values_and_istio_field_names() -> None:
    params = Params.model_validate(
        {"consecutive5xxErrors": 3, "interval": "5s", "baseEjectionTime": "1m", "maxEjectionPercent": 20}
    )
    [change] = _changes(_dr({"loadBalancer": {"simple": "LEAST_REQUEST"}}), params)
    assert change.value == {
        "consecutive5xxErrors": 3,
        "interval": "5s",
        "baseEjectionTime": "1m",
        "maxEjectionPercent": 20,
    }


def test_each_injected_block_is_its_own_object() -> None:
    # The engine writes each value into the document; a shared dict would tie them together.
    changes = _changes(_dr({"portLevelSettings": [{"port": {"number": 80}}, {"port": {"number": 81}}]}))
    assert len(changes) == 3
    assert len({id(c.value) for c in changes}) == 3


def test_policy_params_reach_the_defaulter() -> None:
    text = yaml.safe_dump(
        {
            "apiVersion": "meshwarden.io/v1alpha1",
            "kind": "Policy",
            "defaults": {DEFAULTER_ID: {"params": {"maxEjectionPercent": 10, "interval": "30s"}}},
        }
    )
    policy = policy_mod.parse(text.encode(), source="test-policy.yaml")
    decision = evaluate(policy, EnforcementPoint.ADMISSION, MemoryInventory(), "CREATE", _dr(), mutate=True)
    assert decision.mutated is not None
    assert decision.mutated["spec"]["trafficPolicy"]["outlierDetection"] == {
        **ORG_DEFAULT,
        "interval": "30s",
        "maxEjectionPercent": 10,
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"maxEjectionPercent": 150}, "params.maxEjectionPercent: Input should be less than or equal to 100"),
        (
            {"consecutive5xxErrors": -1},
            "params.consecutive5xxErrors: Input should be greater than or equal to 0",
        ),
        ({"interval": "often"}, "params.interval: invalid duration 'often'"),
        ({"baseEjectionTime": "0s"}, "params.baseEjectionTime: duration must be greater than 1ms"),
        ({"minHealthPercent": 10}, "params.minHealthPercent: Extra inputs are not permitted"),
    ],
)
def test_bad_params_are_refused_with_the_field_named(params: dict[str, Any], message: str) -> None:
    text = yaml.safe_dump(
        {
            "apiVersion": "meshwarden.io/v1alpha1",
            "kind": "Policy",
            "defaults": {DEFAULTER_ID: {"params": params}},
        }
    )
    with pytest.raises(PolicyError) as err:
        policy_mod.parse(text.encode(), source="test-policy.yaml")
    assert f"defaults.{DEFAULTER_ID}.{message}" in str(err.value)

"""Tests for policies/default_route_timeout.py: the timeout defaulter and its maximum rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from policies.default_route_timeout import DEFAULTER_ID, Params, check, mutate
from webhook import policy as policy_mod
from webhook.context import Context
from webhook.engine import evaluate
from webhook.findings import Action, Finding
from webhook.inventory import MemoryInventory
from webhook.objects import Resource, parse
from webhook.policy import EnforcementPoint, Policy, PolicyError
from webhook.registry import Change

SEEDS = Path(__file__).parent / "fixtures" / "seeds"
POLICY = policy_mod.load()


def _seed(name: str) -> dict[str, Any]:
    [doc] = [d for d in yaml.safe_load_all((SEEDS / name).read_text(encoding="utf-8")) if d]
    return doc


def _policy(params: dict[str, Any]) -> Policy:
    text = yaml.safe_dump(
        {
            "apiVersion": "meshwarden.io/v1alpha1",
            "kind": "Policy",
            "defaults": {DEFAULTER_ID: {"params": params}},
        }
    )
    return policy_mod.parse(text.encode(), source="test-policy.yaml")


def _ctx(doc: dict[str, Any], params: Params, operation: str = "CREATE") -> Context:
    res = parse(doc, "VirtualService")
    assert isinstance(res, Resource), res
    inv = MemoryInventory()
    return Context(res, operation, inv, inv, POLICY.mesh, params, doc)


def _changes(doc: dict[str, Any], params: Params | None = None) -> list[Change]:
    return mutate(_ctx(doc, params or Params()))


def _timeouts(doc: dict[str, Any], params: Params | None = None) -> dict[int, str]:
    """Route index -> injected timeout."""
    out: dict[int, str] = {}
    for change in _changes(doc, params):
        assert change.path[:2] == ("spec", "http") and change.path[3:] == ("timeout",), change.path
        out[int(change.path[2])] = change.value
    return out


def _findings(doc: dict[str, Any], params: Params | None = None, operation: str = "CREATE") -> list[Finding]:
    return list(check(_ctx(doc, params or Params(), operation)))


def _vs(*routes: dict[str, Any], hosts: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"http": list(routes)}
    if hosts is None:
        spec["hosts"] = ["reviews.shop.svc.cluster.local"]
    elif hosts:
        spec["hosts"] = hosts
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "shop"},
        "spec": spec,
    }


_FORWARD = {"route": [{"destination": {"host": "reviews.shop.svc.cluster.local"}}]}


def _route(**extra: Any) -> dict[str, Any]:
    return {**_FORWARD, **extra}


# --- the defaulter ------------------------------------------------------------------------


def test_seed_route_with_explicit_timeout_is_left_alone() -> None:
    doc = _seed("001-04-virtualservice-httpbin-ext.yaml")
    assert doc["spec"]["http"][0]["timeout"] == "3s"
    assert _changes(doc) == []


def test_seed_fault_route_is_skipped_and_the_plain_route_defaulted() -> None:
    # Route 0 injects faults (Envoy disables timeouts there); route 1 only forwards.
    assert _timeouts(_seed("002-08-virtualservice-nginx-external.yaml")) == {1: "10s"}


@pytest.mark.parametrize(
    "seed", ["002-14-virtualservice-nginx-external.yaml", "002-19-virtualservice-nginx-external.yaml"]
)
def test_seed_fault_only_services_get_nothing(seed: str) -> None:
    assert _changes(_seed(seed)) == []


@pytest.mark.parametrize(
    ("seed", "routes"),
    [
        ("004-01-virtualservice-weighted-routing.yaml", 1),
        ("002-03-virtualservice-custom-api-routing.yaml", 2),
        ("000-03-virtualservice-direct-httpbin-through-egress-gateway.yaml", 2),
    ],
)
def test_seed_forwarding_routes_get_the_default(seed: str, routes: int) -> None:
    assert _timeouts(_seed(seed)) == dict.fromkeys(range(routes), "10s")


def test_configured_default_is_used_verbatim() -> None:
    assert _timeouts(_vs(_route()), Params(timeout="1m30s", max_timeout="2m")) == {0: "1m30s"}


@pytest.mark.parametrize(
    "route",
    [
        pytest.param({"redirect": {"uri": "/v2"}}, id="redirect"),
        pytest.param({"directResponse": {"status": 503}}, id="directResponse"),
        pytest.param({"delegate": {"name": "reviews-v2", "namespace": "shop"}}, id="delegate"),
        pytest.param(_route(fault={"abort": {"httpStatus": 503, "percentage": {"value": 1}}}), id="fault"),
        pytest.param(_route(fault={}), id="empty-fault"),
        pytest.param({"route": []}, id="empty-route"),
        pytest.param({"mirror": {"host": "shadow"}}, id="no-route"),
        pytest.param(_route(timeout="2s"), id="explicit"),
        pytest.param(_route(timeout="5m"), id="explicit-above-maximum"),
    ],
)
def test_routes_that_are_left_alone(route: dict[str, Any]) -> None:
    assert _changes(_vs(route)) == []


@pytest.mark.parametrize(
    ("per_try", "injected"),
    [
        ("2s", True),
        ("10s", True),  # equal to the default: one try fits
        ("10001ms", False),
        ("15s", False),
        ("1m", False),
        ("soon", False),  # istio-schema's business: not reasoned about
    ],
)
def test_per_try_timeout_longer_than_the_default_blocks_injection(per_try: str, injected: bool) -> None:
    doc = _vs(_route(retries={"attempts": 3, "perTryTimeout": per_try}))
    assert _timeouts(doc) == ({0: "10s"} if injected else {})


def test_retries_without_per_try_timeout_do_not_block() -> None:
    assert _timeouts(_vs(_route(retries={"attempts": 2, "retryOn": "5xx"}))) == {0: "10s"}


def test_delegate_virtual_service_routes_are_defaulted() -> None:
    # A delegate VS has no hosts; its own routes forward like any other.
    doc = _vs(_route(), {"directResponse": {"status": 404}}, hosts=[])
    assert "hosts" not in doc["spec"]
    assert _timeouts(doc) == {0: "10s"}


def test_tcp_and_tls_routes_are_not_touched() -> None:
    doc = _vs(_route())
    doc["spec"]["tcp"] = [{"route": [{"destination": {"host": "db"}}]}]
    doc["spec"]["tls"] = [
        {"match": [{"sniHosts": ["a.example.com"]}], "route": [{"destination": {"host": "a"}}]}
    ]
    assert [c.path for c in _changes(doc)] == [("spec", "http", 0, "timeout")]


def test_only_the_untimed_routes_of_a_mixed_service_change() -> None:
    doc = _vs(
        _route(timeout="4s"),
        {"redirect": {"uri": "/"}},
        _route(retries={"perTryTimeout": "30s"}),
        _route(),
    )
    assert _timeouts(doc) == {3: "10s"}


# --- the companion rule: a timeout above the maximum --------------------------------------


def test_timeout_above_maximum_is_a_warn_level_finding() -> None:
    doc = _vs(_route(timeout="5s"), _route(name="slow-report", timeout="120s"))
    [finding] = _findings(doc)
    assert finding.rule == DEFAULTER_ID
    assert finding.level == "warn"
    assert finding.path_text == "spec.http[1].timeout"
    assert "'slow-report'" in finding.message and "120s" in finding.message and "60s" in finding.message
    assert yaml.safe_load(finding.fix.splitlines()[-1]) == {"timeout": "60s"}


@pytest.mark.parametrize(
    ("timeout", "flagged"), [("60s", False), ("1m", False), ("60001ms", True), ("2h", True)]
)
def test_maximum_is_inclusive(timeout: str, flagged: bool) -> None:
    assert bool(_findings(_vs(_route(timeout=timeout)))) is flagged


def test_configured_maximum_is_used() -> None:
    params = Params(max_timeout="2m")
    assert _findings(_vs(_route(timeout="90s")), params) == []
    assert len(_findings(_vs(_route(timeout="3m")), params)) == 1


def test_unparsable_timeout_is_left_to_the_schema_rule() -> None:
    assert _findings(_vs(_route(timeout="forever"))) == []


def test_no_finding_on_delete() -> None:
    assert _findings(_vs(_route(timeout="10m")), operation="DELETE") == []


def test_engine_reports_the_maximum_as_a_warning_and_keeps_admitting() -> None:
    doc = _vs(_route(timeout="10m"))
    decision = evaluate(POLICY, EnforcementPoint.ADMISSION, MemoryInventory(), "CREATE", doc, mutate=True)
    mine = [o for o in decision.outcomes if o.finding.rule == DEFAULTER_ID]
    assert [(o.finding.path_text, o.action) for o in mine] == [("spec.http[0].timeout", Action.WARN)]
    assert decision.allowed
    assert decision.patch == []  # the explicit value is kept


def test_engine_reads_the_maximum_from_the_defaulter_params() -> None:
    policy = _policy({"timeout": "10s", "maxTimeout": "15m"})
    decision = evaluate(
        policy, EnforcementPoint.CHECK, MemoryInventory(), "CREATE", _vs(_route(timeout="10m"))
    )
    assert [o for o in decision.outcomes if o.finding.rule == DEFAULTER_ID] == []


# --- parameters ---------------------------------------------------------------------------


def test_policy_params_reach_the_defaulter() -> None:
    policy = _policy({"timeout": "15s"})
    decision = evaluate(
        policy, EnforcementPoint.ADMISSION, MemoryInventory(), "CREATE", _vs(_route()), mutate=True
    )
    assert {"op": "add", "path": "/spec/http/0/timeout", "value": "15s"} in decision.patch


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"timeout": "2m"}, "defaults.default-route-timeout.params: timeout 2m is above maxTimeout 60s"),
        ({"timeout": "10x"}, "defaults.default-route-timeout.params.timeout: invalid duration '10x'"),
        (
            {"timeout": "500us"},
            "defaults.default-route-timeout.params.timeout: duration must be greater than 1ms",
        ),
        (
            {"maxTimeout": "1.5ms"},
            "defaults.default-route-timeout.params.maxTimeout: only durations to ms precision are supported",
        ),
        (
            {"timeoutt": "10s"},
            "defaults.default-route-timeout.params.timeoutt: Extra inputs are not permitted",
        ),
    ],
)
def test_bad_params_are_refused_with_the_field_named(params: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as err:
        _policy(params)
    assert message in str(err.value)

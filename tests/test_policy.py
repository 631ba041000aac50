"""Policy configuration: the embedded default, validation with clear errors, actions per
enforcement point, exceptions, and reload without dropping the policy in force."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import pytest

from webhook import policy as P
from webhook.findings import Action
from webhook.policy_store import PolicyStore, same_inventory_settings


def test_embedded_default_loads_and_is_hashed() -> None:
    pol = P.load()
    assert pol.sha256 == hashlib.sha256(P.default_policy_text()).hexdigest()
    for rule_id in (
        "wildcard-host-egress-gateway",
        "external-tls-origination",
        "no-allow-any-outbound",
        "istio-schema",
    ):
        assert pol.action(rule_id, P.EnforcementPoint.ADMISSION) is Action.DENY
        assert pol.action(rule_id, P.EnforcementPoint.CHECK) is Action.DENY
    assert pol.mesh.root_namespace == "istio-system"
    assert pol.is_exempt("kube-system") and pol.is_exempt("meshwarden")
    assert not pol.is_exempt("default")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: {no-such-rule: {action: deny}}", "rules.no-such-rule: unknown rule id"),
        (
            "rules: {istio-schema: {action: block}}",
            "rules.istio-schema.action: action must be deny, warn, audit",
        ),
        ("rules: {istio-schema: {action: {admission: nope}}}", "rules.istio-schema.action.admission"),
        (
            "defaults: {default-route-timeout: {params: {timeout: 0.5ms}}}",
            "defaults.default-route-timeout.params.timeout: duration must be greater than 1ms",
        ),
        ("defaults: {default-route-timeout: {params: {timeout: soon}}}", "invalid duration 'soon'"),
        ("defaults: {nope: {}}", "defaults.nope: unknown defaulter id"),
        (
            "rules: {external-tls-origination: {params: {allowList: []}}}",
            "rules.external-tls-origination.params.allowList",
        ),
        (
            "exceptions: [{rule: istio-schema, namespace: a, reason: r, ticket: T-1, expires: not-a-date}]",
            "exceptions.0.expires",
        ),
        (
            "exceptions: [{rule: made-up, namespace: a, reason: r, ticket: T-1, expires: 2030-01-01}]",
            "exceptions[0].rule: unknown rule id",
        ),
        (
            "exceptions: [{rule: istio-schema, namespace: a, expires: 2030-01-01}]",
            "exceptions.0.reason: Field required",
        ),
        ("unknownTopLevel: 1", "unknownTopLevel: Extra inputs are not permitted"),
        ("apiVersion: v2", "apiVersion must be meshwarden.io/v1alpha1"),
        ("- a\n- b", "a policy is a mapping"),
        ("rules: [", "invalid YAML"),
        ("x: " + "[" * 5000 + "]" * 5000, "nested deeper than 128 levels"),
        ("a: 1\n---\nb: 2", "holds more than one YAML document"),
    ],
)
def test_invalid_policies_are_refused_with_the_field_named(text: str, expected: str) -> None:
    with pytest.raises(P.PolicyError) as err:
        P.parse(text.encode(), source="team.yaml")
    assert str(err.value).startswith("team.yaml:")
    assert expected in str(err.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(P.PolicyError, match="cannot read policy"):
        P.load(tmp_path / "missing.yaml")


def test_actions_per_enforcement_point() -> None:
    pol = P.parse(
        b"rules: {wildcard-host-egress-gateway: {action: {admission: warn, check: deny}}}", source="x"
    )
    rid = "wildcard-host-egress-gateway"
    assert pol.action(rid, P.EnforcementPoint.ADMISSION) is Action.WARN
    assert pol.action(rid, P.EnforcementPoint.CHECK) is Action.DENY
    # Not named for scan: the rule's default.
    assert pol.action(rid, P.EnforcementPoint.SCAN) is Action.DENY


def test_exceptions_match_by_glob_and_expire() -> None:
    pol = P.parse(
        b"exceptions: [{rule: external-tls-origination, namespace: legacy, name: 'billing-*',"
        b" reason: vendor has no TLS, ticket: SEC-1, expires: 2027-03-31}]",
        source="x",
    )
    rid = "external-tls-origination"
    before, after = dt.date(2027, 3, 31), dt.date(2027, 4, 1)
    assert pol.exception_for(rid, "legacy", "billing-api", before) is not None
    assert pol.exception_for(rid, "legacy", "billing-api", after) is None
    assert pol.exception_for(rid, "legacy", "orders", before) is None
    assert pol.exception_for(rid, "other", "billing-api", before) is None
    assert pol.exception_for("istio-schema", "legacy", "billing-api", before) is None


def test_store_reloads_a_changed_file_and_keeps_the_old_one_when_invalid(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(P.default_policy_text())
    store = PolicyStore(path)
    first = store.current
    events: list[tuple[object, object]] = []
    store.on_reload.append(lambda pol, err: events.append((pol, err)))
    assert store.check() is False  # unchanged

    path.write_text("rules: {no-allow-any-outbound: {action: warn}}\n")
    os.utime(path, ns=(1, 1))  # a distinct stamp even on coarse clocks
    assert store.check() is True
    assert store.current is not first
    assert store.current.action("no-allow-any-outbound", P.EnforcementPoint.ADMISSION) is Action.WARN
    assert store.reloads == 1

    good = store.current
    path.write_text("rules: {no-allow-any-outbound: {action: maybe}}\n")
    os.utime(path, ns=(2, 2))
    assert store.check() is False
    assert store.current is good
    assert store.failed_reloads == 1
    assert events[-1][0] is None and "action must be" in str(events[-1][1])


def test_store_refuses_to_start_on_an_invalid_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("rules: {nope: {}}\n")
    with pytest.raises(P.PolicyError, match="unknown rule id"):
        PolicyStore(path)


def test_store_guard_refuses_a_policy_the_server_cannot_take_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("mesh: {rootNamespace: istio-system}\n")
    store = PolicyStore(path)
    store.guards.append(same_inventory_settings)
    first = store.current
    events: list[tuple[object, object]] = []
    store.on_reload.append(lambda pol, err: events.append((pol, err)))

    path.write_text("mesh: {rootNamespace: mesh-root, clusterDomain: corp.local}\n")
    os.utime(path, ns=(1, 1))
    assert store.check() is False
    assert store.current is first and store.failed_reloads == 1
    assert events[-1][0] is None
    message = str(events[-1][1])
    assert "mesh.rootNamespace changes from 'istio-system' to 'mesh-root'" in message
    assert "mesh.clusterDomain changes from 'cluster.local' to 'corp.local'" in message
    assert "restart meshwarden" in message

    # Any other change still takes effect.
    path.write_text("mesh: {rootNamespace: istio-system}\nrules: {no-allow-any-outbound: {action: warn}}\n")
    os.utime(path, ns=(2, 2))
    assert store.check() is True
    assert store.current.action("no-allow-any-outbound", P.EnforcementPoint.ADMISSION) is Action.WARN

"""Metrics: what each observation adds to the Prometheus exposition."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from webhook.findings import Action, Finding, Outcome
from webhook.metrics import _LATENCY_BUCKETS, Metrics


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return _samples(metrics).get((name, tuple(sorted(labels.items()))))


def _outcome(rule: str, action: Action) -> Outcome:
    return Outcome(Finding(rule, ("spec",), "m"), action)


def test_decisions_counted_by_webhook_kind_operation_verdict() -> None:
    m = Metrics()
    for _ in range(3):
        m.observe_decision(
            webhook="validate", kind="ServiceEntry", operation="CREATE", verdict="denied", seconds=0.002
        )
    m.observe_decision(
        webhook="mutate", kind="DestinationRule", operation="UPDATE", verdict="mutated", seconds=0.3
    )
    name = "meshwarden_admission_decisions_total"
    assert _value(m, name, webhook="validate", kind="ServiceEntry", operation="CREATE", verdict="denied") == 3
    assert (
        _value(m, name, webhook="mutate", kind="DestinationRule", operation="UPDATE", verdict="mutated") == 1
    )


def test_findings_counted_by_rule_and_action() -> None:
    m = Metrics(known_rules=["external-tls-origination", "istio-schema"])
    m.observe_decision(
        webhook="validate",
        kind="ServiceEntry",
        operation="CREATE",
        verdict="denied",
        outcomes=[
            _outcome("external-tls-origination", Action.DENY),
            _outcome("external-tls-origination", Action.WARN),
            _outcome("istio-schema", Action.EXCEPTED),
            _outcome("made-up", Action.DENY),
        ],
        seconds=0.001,
    )
    name = "meshwarden_admission_findings_total"
    assert _value(m, name, rule="external-tls-origination", action="deny") == 1
    assert _value(m, name, rule="external-tls-origination", action="warn") == 1
    assert _value(m, name, rule="istio-schema", action="excepted") == 1
    assert _value(m, name, rule="other", action="deny") == 1


def test_label_values_from_requests_are_bounded() -> None:
    m = Metrics()
    m.observe_decision(webhook="x", kind="Pod" * 50, operation="PATCH", verdict="weird", seconds=0.001)
    labels = {"webhook": "other", "kind": "other", "operation": "other", "verdict": "other"}
    assert _value(m, "meshwarden_admission_decisions_total", **labels) == 1


def test_latency_histogram_buckets_the_observation() -> None:
    m = Metrics()
    m.observe_decision(
        webhook="validate", kind="Gateway", operation="CREATE", verdict="allowed", seconds=0.003
    )
    m.observe_decision(webhook="validate", kind="Gateway", operation="CREATE", verdict="allowed", seconds=0.2)
    name = "meshwarden_admission_request_duration_seconds"
    assert _value(m, name + "_count", webhook="validate") == 2
    assert _value(m, name + "_bucket", webhook="validate", le="0.0025") == 0
    assert _value(m, name + "_bucket", webhook="validate", le="0.005") == 1
    assert _value(m, name + "_bucket", webhook="validate", le="0.25") == 2
    assert abs((_value(m, name + "_sum", webhook="validate") or 0) - 0.203) < 1e-9


def test_audit_failures_and_health() -> None:
    m = Metrics()
    healthy = [True]
    m.track_audit(lambda: healthy[0])
    assert _value(m, "meshwarden_audit_write_failures_total", sink="file") == 0
    assert _value(m, "meshwarden_audit_healthy") == 1
    m.audit_failed("file")
    m.audit_failed("file")
    healthy[0] = False
    assert _value(m, "meshwarden_audit_write_failures_total", sink="file") == 2
    assert _value(m, "meshwarden_audit_healthy") == 0


def test_inventory_size_and_sync_are_read_at_scrape_time() -> None:
    m = Metrics()
    inventory: list[str] = []
    synced = [False]
    m.track_inventory(lambda: len(inventory), lambda: synced[0])
    assert _value(m, "meshwarden_inventory_objects") == 0
    assert _value(m, "meshwarden_inventory_synced") == 0
    inventory.extend(["a", "b", "c"])
    synced[0] = True
    assert _value(m, "meshwarden_inventory_objects") == 3
    assert _value(m, "meshwarden_inventory_synced") == 1


def test_policy_reloads_and_the_policy_in_force() -> None:
    m = Metrics()
    m.policy_loaded("a" * 64)
    assert _value(m, "meshwarden_policy_reloads_total", result="success") == 0
    m.policy_reloaded(True, "b" * 64)
    m.policy_reloaded(False)
    assert _value(m, "meshwarden_policy_reloads_total", result="success") == 1
    assert _value(m, "meshwarden_policy_reloads_total", result="failure") == 1
    assert _value(m, "meshwarden_policy_info", hash="b" * 64) == 1
    assert _value(m, "meshwarden_policy_info", hash="a" * 64) is None


def test_each_instance_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.observe_decision(
        webhook="validate", kind="Sidecar", operation="CREATE", verdict="allowed", seconds=0.001
    )
    labels = {"webhook": "validate", "kind": "Sidecar", "operation": "CREATE", "verdict": "allowed"}
    assert _value(a, "meshwarden_admission_decisions_total", **labels) == 1
    assert _value(b, "meshwarden_admission_decisions_total", **labels) is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=20, allow_nan=False), max_size=30))
def test_latency_buckets_agree_with_prometheus_client_histogram(observations: list[float]) -> None:
    # The reference: prometheus_client's own Histogram with the same buckets.
    registry = CollectorRegistry()
    reference = Histogram("ref_seconds", "reference", buckets=_LATENCY_BUCKETS, registry=registry)
    m = Metrics()
    for seconds in observations:
        reference.observe(seconds)
        m.observe_decision(
            webhook="validate", kind="Gateway", operation="CREATE", verdict="allowed", seconds=seconds
        )
    expected = {
        (s.name.removeprefix("ref_seconds"), s.labels.get("le")): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }
    name = "meshwarden_admission_request_duration_seconds"
    got = {
        (s.name.removeprefix(name), s.labels.get("le")): s.value
        for family in text_string_to_metric_families(m.render().decode())
        for s in family.samples
        if s.name.startswith(name)
    }
    if not observations:
        assert got == {}  # no series before the first review
        return
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert abs(got[key] - value) < 1e-9, key


def test_an_observation_on_a_bucket_bound_counts_in_that_bucket() -> None:
    m = Metrics()
    m.observe_decision(webhook="mutate", kind="Gateway", operation="CREATE", verdict="allowed", seconds=0.005)
    name = "meshwarden_admission_request_duration_seconds_bucket"
    assert _value(m, name, webhook="mutate", le="0.0025") == 0
    assert _value(m, name, webhook="mutate", le="0.005") == 1

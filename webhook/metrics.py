"""Prometheus metrics of the webhook, in a registry of their own (so tests and several
apps in one process never collide in the global one), served at `GET /metrics`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from webhook.findings import Outcome
from webhook.objects import ISTIO_OPERATOR, NETWORKING_KINDS

# Label values come from requests; anything outside these sets is folded into `other`
# so a client cannot grow the number of series without bound.
_KINDS = frozenset({*NETWORKING_KINDS, ISTIO_OPERATOR, "ConfigMap"})
_OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})
_VERDICTS = frozenset({"allowed", "denied", "mutated", "error"})
_WEBHOOKS = frozenset({"validate", "mutate"})
OTHER = "other"

# Admission latency is usually sub-millisecond to a few ms; the API server's timeout is
# at most 30 s.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, known_rules: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._rules = frozenset(known_rules)
        self.decisions = Counter(
            "meshwarden_admission_decisions",
            "Admission decisions by webhook, kind, operation and verdict.",
            ("webhook", "kind", "operation", "verdict"),
            registry=r,
        )
        self.findings = Counter(
            "meshwarden_admission_findings",
            "Findings in admission decisions by rule and the action taken.",
            ("rule", "action"),
            registry=r,
        )
        self.latency = Histogram(
            "meshwarden_admission_request_duration_seconds",
            "Time from receiving an AdmissionReview to having its response and audit record.",
            ("webhook",),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.audit_failures = Counter(
            "meshwarden_audit_write_failures",
            "Audit records that could not be written, by destination (file, stream).",
            ("sink",),
            registry=r,
        )
        self.audit_healthy = Gauge(
            "meshwarden_audit_healthy", "1 while audit writes succeed, 0 after a failed write.", registry=r
        )
        self.audit_healthy.set(1)
        self.inventory_objects = Gauge(
            "meshwarden_inventory_objects", "Objects held in the inventory.", registry=r
        )
        self.inventory_synced = Gauge(
            "meshwarden_inventory_synced",
            "1 once the inventory has completed its first full sync.",
            registry=r,
        )
        self.policy_reloads = Counter(
            "meshwarden_policy_reloads",
            "Policy reloads by result (success, failure).",
            ("result",),
            registry=r,
        )
        self.policy_info = Gauge(
            "meshwarden_policy_info",
            "The policy in force: its sha256 in the `hash` label.",
            ("hash",),
            registry=r,
        )
        self.certificate_expiry = Gauge(
            "meshwarden_tls_certificate_expiry_timestamp_seconds",
            "notAfter of the serving certificate in use, as a Unix time (alert well before it).",
            registry=r,
        )
        self.certificate_reloads = Counter(
            "meshwarden_tls_certificate_reloads",
            "Reloads of the serving certificate from disk by result (success, failure).",
            ("result",),
            registry=r,
        )
        self._policy_hash: str | None = None
        self._children: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}
        self._finding_children: dict[tuple[str, str], Any] = {}
        # Series that exist from the start, so a rate() over them is defined before the
        # first event.
        for result in ("success", "failure"):
            self.policy_reloads.labels(result)
        for sink in ("file", "stream"):
            self.audit_failures.labels(sink)
        for result in ("success", "failure"):
            self.certificate_reloads.labels(result)

    # -- observations --------------------------------------------------------------

    def observe_decision(
        self,
        *,
        webhook: str,
        kind: str,
        operation: str,
        verdict: str,
        outcomes: Iterable[Outcome] = (),
        seconds: float,
    ) -> None:
        key = (
            webhook if webhook in _WEBHOOKS else OTHER,
            kind if kind in _KINDS else OTHER,
            operation if operation in _OPERATIONS else OTHER,
            verdict if verdict in _VERDICTS else OTHER,
        )
        # `labels()` validates and locks on every call; the children are cached here, so
        # a request pays one dict lookup per series (setdefault is atomic under the GIL).
        child = self._children.get(key)
        if child is None:
            child = self._children.setdefault(key, (self.decisions.labels(*key), self.latency.labels(key[0])))
        child[0].inc()
        child[1].observe(seconds)
        for o in outcomes:
            rule = o.finding.rule
            fkey = (rule if not self._rules or rule in self._rules else OTHER, str(o.action))
            counter = self._finding_children.get(fkey)
            if counter is None:
                counter = self._finding_children.setdefault(fkey, self.findings.labels(*fkey))
            counter.inc()

    def audit_failed(self, sink: str) -> None:
        self.audit_failures.labels(sink).inc()

    def track_audit(self, healthy: Callable[[], bool]) -> None:
        """Read the audit log's health at each scrape."""
        self.audit_healthy.set_function(lambda: 1.0 if healthy() else 0.0)

    def policy_loaded(self, sha256: str) -> None:
        """The policy in force (at start, and after each successful reload)."""
        if self._policy_hash is not None and self._policy_hash != sha256:
            self.policy_info.remove(self._policy_hash)
        self._policy_hash = sha256
        self.policy_info.labels(sha256).set(1)

    def policy_reloaded(self, ok: bool, sha256: str = "") -> None:
        self.policy_reloads.labels("success" if ok else "failure").inc()
        if ok and sha256:
            self.policy_loaded(sha256)

    def track_inventory(self, size: Callable[[], float], synced: Callable[[], bool]) -> None:
        """Read the inventory's size and sync state at each scrape."""
        self.inventory_objects.set_function(size)
        self.inventory_synced.set_function(lambda: 1.0 if synced() else 0.0)

    def certificate_loaded(self, not_after: float) -> None:
        """The serving certificate in use expires at `not_after` (Unix time)."""
        self.certificate_expiry.set(not_after)

    def certificate_reloaded(self, ok: bool) -> None:
        self.certificate_reloads.labels("success" if ok else "failure").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)

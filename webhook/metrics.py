"""Prometheus metrics of the webhook, in a registry of their own (so tests and several
apps in one process never collide in the global one), served at `GET /metrics`."""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

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

_BOUNDS = (*(floatToGoString(b) for b in _LATENCY_BUCKETS), "+Inf")

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, known_rules: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Decisions, findings and latency are counted on every review: plain numbers here,
        # turned into metric families only when scraped.
        self._reviews = _ReviewStats(frozenset(known_rules))
        r.register(self._reviews)
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
        self._reviews.observe(webhook, kind, operation, verdict, outcomes, seconds)

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


class _ReviewStats(Collector):
    """Decisions by webhook, kind, operation and verdict; findings by rule and action; the
    latency histogram by webhook. `Counter.labels().inc()` and `Histogram.observe()` take a
    lock and several calls each; a review costs a few dict updates here instead. Reviews
    and scrapes both run on the server's event loop, so nothing else writes meanwhile."""

    def __init__(self, known_rules: frozenset[str]) -> None:
        self._rules = known_rules
        self._decisions: dict[tuple[str, str, str, str], int] = {}
        self._findings: dict[tuple[str, str], int] = {}
        # webhook -> observations per bucket (the last one is +Inf) and their sum
        self._latency: dict[str, tuple[list[int], list[float]]] = {}
        self._created: dict[object, float] = {}

    def observe(
        self,
        webhook: str,
        kind: str,
        operation: str,
        verdict: str,
        outcomes: Iterable[Outcome],
        seconds: float,
    ) -> None:
        key = (
            webhook if webhook in _WEBHOOKS else OTHER,
            kind if kind in _KINDS else OTHER,
            operation if operation in _OPERATIONS else OTHER,
            verdict if verdict in _VERDICTS else OTHER,
        )
        decisions = self._decisions
        if key in decisions:
            decisions[key] += 1
        else:
            decisions[key] = 1
            self._created[key] = time.time()
        latency = self._latency.get(key[0])
        if latency is None:
            latency = self._latency[key[0]] = ([0] * (len(_LATENCY_BUCKETS) + 1), [0.0])
        latency[0][bisect.bisect_left(_LATENCY_BUCKETS, seconds)] += 1  # le: bound >= seconds
        latency[1][0] += seconds
        for o in outcomes:
            rule = o.finding.rule
            fkey = (rule if not self._rules or rule in self._rules else OTHER, str(o.action))
            if fkey in self._findings:
                self._findings[fkey] += 1
            else:
                self._findings[fkey] = 1
                self._created[fkey] = time.time()

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        decisions = CounterMetricFamily(
            "meshwarden_admission_decisions",
            "Admission decisions by webhook, kind, operation and verdict.",
            labels=("webhook", "kind", "operation", "verdict"),
        )
        for key, count in self._decisions.items():
            decisions.add_metric(key, count, created=self._created[key])
        yield decisions
        findings = CounterMetricFamily(
            "meshwarden_admission_findings",
            "Findings in admission decisions by rule and the action taken.",
            labels=("rule", "action"),
        )
        for fkey, count in self._findings.items():
            findings.add_metric(fkey, count, created=self._created[fkey])
        yield findings
        latency = HistogramMetricFamily(
            "meshwarden_admission_request_duration_seconds",
            "Time from receiving an AdmissionReview to having its response and audit record.",
            labels=("webhook",),
        )
        for webhook, (counts, total) in self._latency.items():
            buckets = list(zip(_BOUNDS, itertools.accumulate(counts), strict=True))
            latency.add_metric((webhook,), buckets, total[0])
        yield latency

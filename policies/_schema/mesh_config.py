"""The mesh config (ConfigMap `mesh` key, IstioOperator `spec.meshConfig`): the fields istiod
checks when it loads it (`agent.ValidateMeshConfig`) that an overlay can set, and the enums."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies._schema.common import (
    FIX_DURATION,
    Report,
    check_port,
    is_dns1123_label,
    q,
    type_name,
)
from webhook import durations
from webhook.findings import Path
from webhook.models import MeshConfig

OUTBOUND_MODES = ("REGISTRY_ONLY", "ALLOW_ANY", "ALLOW_ANY_DYNAMIC_DNS")
_HOUR_NS = 3_600_000_000_000


def validate(report: Report, spec: MeshConfig, path: Path, raw: Mapping[str, Any]) -> None:
    """`path` is where the mesh config sits in the object; `raw` is the mesh config itself."""
    policy = spec.outbound_traffic_policy
    if policy is not None and policy.mode is not None and policy.mode not in OUTBOUND_MODES:
        mode_path = (*path, "outboundTrafficPolicy", "mode")
        report.error(
            mode_path,
            f"invalid value for enum field mode: {q(policy.mode)} (supported: {', '.join(OUTBOUND_MODES)})",
            "use REGISTRY_ONLY",
        )
    _connect_timeout(report, (*path, "connectTimeout"), raw.get("connectTimeout"))
    _protocol_detection_timeout(
        report, (*path, "protocolDetectionTimeout"), raw.get("protocolDetectionTimeout")
    )
    port = raw.get("proxyListenPort")
    if port is not None:
        check_port(report, (*path, "proxyListenPort"), port)
    trust_domain = raw.get("trustDomain")
    if trust_domain is not None:
        _trust_domain(report, (*path, "trustDomain"), trust_domain)


def _connect_timeout(report: Report, path: Path, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        report.error(path, f"must be a duration string, got {type_name(value)}", FIX_DURATION)
        return
    problem = durations.istio_problem(value)
    if problem:
        report.error(path, f"invalid connect timeout: {problem}", FIX_DURATION)
    elif durations.parse(value) > _HOUR_NS:
        report.error(
            path,
            f"invalid connect timeout: time {value} must be >1ms and <1h0m0s",
            "use a connect timeout between 1ms and 1h, e.g. `10s`",
        )


def _protocol_detection_timeout(report: Report, path: Path, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        report.error(path, f"must be a duration string, got {type_name(value)}", FIX_DURATION)
        return
    try:
        ns = durations.parse(value)
    except durations.DurationError:
        report.error(path, f"invalid protocol detection timeout: invalid duration {q(value)}", FIX_DURATION)
        return
    # `0s` turns protocol detection's timeout off.
    if ns % durations.NS_PER_MS:
        report.error(
            path,
            "invalid protocol detection timeout: only durations to ms precision are supported",
            "use millisecond precision, or `0s` to turn it off",
        )


def _trust_domain(report: Report, path: Path, value: Any) -> None:
    fix = "use a DNS-style trust domain, e.g. cluster.local"
    if not isinstance(value, str):
        report.error(path, f"must be a string, got {type_name(value)}", fix)
        return
    if not value:
        report.error(path, "trustDomain: empty domain name not allowed", fix)
        return
    parts = value.split(".")
    for i, label in enumerate(parts):
        if i == len(parts) - 1 and label == "":
            return
        if not is_dns1123_label(label):
            report.error(path, f"trustDomain: trust domain name {q(value)} invalid", fix)
            return

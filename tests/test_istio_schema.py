"""`istio-schema`, through the engine: valid objects of every kind and API version pass,
each of Istio's rejections is reported at the field's path with Istio's wording, and no spec
makes the engine raise."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhook import engine
from webhook.findings import Action, Outcome
from webhook.inventory import MemoryInventory
from webhook.policy import EnforcementPoint, load
from webhook.registry import RULES

RULE = "istio-schema"
VERSIONS = ("v1alpha3", "v1beta1", "v1")
SEEDS = Path(__file__).parent / "fixtures" / "seeds"
POLICY = load()


def _obj(kind: str, spec: Any, version: str = "v1", name: str = "sample", namespace: str = "apps") -> dict:
    return {
        "apiVersion": f"networking.istio.io/{version}",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _mesh_configmap(mesh: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "istio", "namespace": "istio-system"},
        "data": {"mesh": mesh},
    }


def _operator(mesh: dict) -> dict:
    return {
        "apiVersion": "install.istio.io/v1alpha1",
        "kind": "IstioOperator",
        "metadata": {"name": "control-plane", "namespace": "istio-system"},
        "spec": {"meshConfig": mesh},
    }


def _review(obj: dict, operation: str = "CREATE") -> engine.Decision:
    return engine.evaluate(POLICY, EnforcementPoint.ADMISSION, MemoryInventory(), operation, obj)


def _schema(decision: engine.Decision) -> list[Outcome]:
    return [o for o in decision.outcomes if o.finding.rule == RULE]


VALID: dict[str, dict] = {
    "ServiceEntry": {
        "hosts": ["api.example.com", "*.wikipedia.org"],
        "addresses": ["10.1.2.3", "192.168.0.0/24"],
        "location": "MESH_EXTERNAL",
        "resolution": "STATIC",
        "ports": [
            {"number": 443, "name": "https", "protocol": "HTTPS"},
            {"number": 80, "name": "http", "protocol": "http", "targetPort": 8080},
        ],
        "endpoints": [{"address": "10.1.2.3", "ports": {"https": 8443}, "labels": {"app": "api"}}],
        "exportTo": [".", "other-team"],
    },
    "DestinationRule": {
        "host": "api.example.com",
        "exportTo": ["."],
        "trafficPolicy": {
            "loadBalancer": {"simple": "LEAST_REQUEST"},
            "connectionPool": {
                "tcp": {"maxConnections": 100, "connectTimeout": "2s", "idleTimeout": "0s"},
                "http": {"http1MaxPendingRequests": 10, "h2UpgradePolicy": "UPGRADE"},
            },
            "outlierDetection": {
                "consecutive5xxErrors": 5,
                "interval": "10s",
                "baseEjectionTime": "30s",
                "maxEjectionPercent": 50,
            },
            "tls": {"mode": "SIMPLE", "caCertificates": "/etc/certs/ca.pem", "sni": "api.example.com"},
            "portLevelSettings": [{"port": {"number": 80}, "tls": {"mode": "SIMPLE"}}],
        },
        "subsets": [
            {"name": "v1", "labels": {"version": "v1"}},
            {"name": "mtls", "trafficPolicy": {"tls": {"mode": "MUTUAL", "credentialName": "client-cert"}}},
        ],
    },
    "VirtualService": {
        "hosts": ["api.example.com"],
        "gateways": ["mesh", "istio-system/egress-gateway"],
        "http": [
            {
                "match": [{"port": 80, "gateways": ["mesh"], "sourceLabels": {"app": "client"}}],
                "timeout": "10s",
                "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx,connect-failure,503"},
                "route": [
                    {
                        "destination": {"host": "api.example.com", "subset": "v1", "port": {"number": 80}},
                        "weight": 90,
                    },
                    {"destination": {"host": "api.example.com", "subset": "v2"}, "weight": 10},
                ],
            },
            {"redirect": {"uri": "/v2"}},
            {"directResponse": {"status": 503, "body": {"string": "down"}}},
        ],
        "tls": [
            {
                "match": [{"port": 443, "sniHosts": ["api.example.com"]}],
                "route": [{"destination": {"host": "api.example.com", "port": {"number": 443}}}],
            }
        ],
        "tcp": [{"match": [{"port": 3306}], "route": [{"destination": {"host": "db.example.com"}}]}],
    },
    "Gateway": {
        "selector": {"istio": "egressgateway"},
        "servers": [
            {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["api.example.com"]},
            {
                "port": {"number": 443, "name": "tls", "protocol": "TLS"},
                "hosts": ["*/*.wikipedia.org"],
                "tls": {"mode": "PASSTHROUGH"},
            },
            {
                "port": {"number": 8443, "name": "https", "protocol": "HTTPS"},
                "hosts": ["apps/api.example.com"],
                "tls": {"mode": "SIMPLE", "credentialName": "api-cert"},
            },
        ],
    },
    "Sidecar": {
        "workloadSelector": {"labels": {"app": "client"}},
        "egress": [
            {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["./*"]},
            {"hosts": ["istio-system/*", "*/api.example.com"]},
        ],
        "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
    },
    "WorkloadEntry": {
        "address": "vm-1.example.com",
        "ports": {"http": 8080},
        "labels": {"app": "vm"},
        "serviceAccount": "vm",
    },
}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_objects_of_every_kind_and_version_have_no_findings(kind: str, version: str) -> None:
    decision = _review(_obj(kind, copy.deepcopy(VALID[kind]), version))
    assert decision.status == "reviewed"
    assert _schema(decision) == []


@pytest.mark.parametrize(
    "obj",
    [
        _mesh_configmap("outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\nconnectTimeout: 10s\n"),
        _mesh_configmap("outboundTrafficPolicy:\n  mode: ALLOW_ANY_DYNAMIC_DNS\n"),
        _operator({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}, "trustDomain": "cluster.local"}),
    ],
    ids=["configmap", "configmap-dynamic-dns", "istio-operator"],
)
def test_valid_mesh_config_has_no_schema_findings(obj: dict) -> None:
    decision = _review(obj)
    assert decision.status == "reviewed"
    assert _schema(decision) == []


def test_rule_is_registered_for_every_kind_in_scope() -> None:
    spec = RULES[RULE]
    assert spec.kinds == {*VALID, "MeshConfig", "IstioOperator"}
    assert spec.title and spec.remediation


# --- one case per check: (kind, spec modifier, path, message, level) --------------------


def _with(kind: str, **changes: Any) -> dict:
    spec = copy.deepcopy(VALID[kind])
    spec.update(changes)
    return spec


def _se(**changes: Any) -> dict:
    return _with("ServiceEntry", **changes)


def _dr_policy(**policy: Any) -> dict:
    return {"host": "api.example.com", "trafficPolicy": policy}


def _vs_route(**route: Any) -> dict:
    return {"hosts": ["api.example.com"], "http": [route]}


_DEST = [{"destination": {"host": "api.example.com"}}]
_GW_PORT = {"number": 443, "name": "https", "protocol": "HTTPS"}

CASES: list[tuple[str, str, dict, tuple, str, str]] = [
    # ServiceEntry: hosts
    (
        "se-no-hosts",
        "ServiceEntry",
        _se(hosts=[]),
        ("spec", "hosts"),
        "service entry must have at least one host",
        "deny",
    ),
    ("se-star-host", "ServiceEntry", _se(hosts=["*"]), ("spec", "hosts", 0), "invalid host *", "deny"),
    (
        "se-wildcard-not-first",
        "ServiceEntry",
        _se(hosts=["foo.*.com"]),
        ("spec", "hosts", 0),
        # istiod checks the labels after the first one as a name of their own.
        'domain name "*.com" invalid (label "*" invalid)',
        "deny",
    ),
    (
        "se-numeric-tld",
        "ServiceEntry",
        _se(hosts=["api.example.123"]),
        ("spec", "hosts", 0),
        'domain name "example.123" invalid (top level domain "123" cannot be all-numeric)',
        "deny",
    ),
    (
        "se-bad-label",
        "ServiceEntry",
        _se(hosts=["api_v1.example.com"]),
        ("spec", "hosts", 0),
        'domain name "api_v1.example.com" invalid (label "api_v1" invalid)',
        "deny",
    ),
    (
        "se-host-too-long",
        "ServiceEntry",
        _se(hosts=["a." * 127 + "com"]),
        ("spec", "hosts", 0),
        f'domain name "{"a." * 127 + "com"}" too long (max 255)',
        "deny",
    ),
    (
        "se-empty-host",
        "ServiceEntry",
        _se(hosts=[""]),
        ("spec", "hosts", 0),
        "empty domain name not allowed",
        "deny",
    ),
    (
        "se-partial-wildcard-warns",
        "ServiceEntry",
        _se(hosts=["*wikipedia.org"]),
        ("spec", "hosts", 0),
        'partial wildcard "*wikipedia.org" not allowed',
        "warn",
    ),
    # ServiceEntry: ports
    (
        "se-port-range",
        "ServiceEntry",
        _se(ports=[{"number": 70000, "name": "http", "protocol": "HTTP"}], endpoints=[]),
        ("spec", "ports", 0, "number"),
        "port number 70000 must be in the range 1..65535",
        "deny",
    ),
    (
        "se-port-missing-number",
        "ServiceEntry",
        _se(ports=[{"name": "http", "protocol": "HTTP"}], endpoints=[]),
        ("spec", "ports", 0, "number"),
        "port number 0 must be in the range 1..65535",
        "deny",
    ),
    (
        "se-target-port-range",
        "ServiceEntry",
        _se(ports=[{"number": 80, "name": "http", "targetPort": 0x10000}], endpoints=[]),
        ("spec", "ports", 0, "targetPort"),
        "port number 65536 must be in the range 1..65535",
        "deny",
    ),
    (
        "se-duplicate-port-number",
        "ServiceEntry",
        _se(
            ports=[
                {"number": 443, "name": "a", "protocol": "TLS"},
                {"number": 443, "name": "b", "protocol": "TLS"},
            ],
            endpoints=[],
        ),
        ("spec", "ports", 1, "number"),
        "service entry port 443 already defined",
        "deny",
    ),
    (
        "se-duplicate-port-name",
        "ServiceEntry",
        _se(
            ports=[
                {"number": 443, "name": "web", "protocol": "TLS"},
                {"number": 80, "name": "web", "protocol": "HTTP"},
            ]
        ),
        ("spec", "ports", 1, "name"),
        'service entry port name "web" already defined',
        "deny",
    ),
    (
        "se-port-name-not-label",
        "ServiceEntry",
        _se(ports=[{"number": 80, "name": "http_api", "protocol": "HTTP"}], endpoints=[]),
        ("spec", "ports", 0, "name"),
        "invalid port name: http_api",
        "deny",
    ),
    (
        "se-port-name-missing",
        "ServiceEntry",
        _se(ports=[{"number": 80, "protocol": "HTTP"}], endpoints=[]),
        ("spec", "ports", 0, "name"),
        "spec.ports[0].name: Required value",
        "deny",
    ),
    (
        "se-protocol",
        "ServiceEntry",
        _se(ports=[{"number": 80, "name": "http", "protocol": "QUIC"}], endpoints=[]),
        ("spec", "ports", 0, "protocol"),
        "unsupported protocol: QUIC",
        "deny",
    ),
    # ServiceEntry: enums and resolution
    (
        "se-location-enum",
        "ServiceEntry",
        _se(location="EXTERNAL"),
        ("spec", "location"),
        'spec.location: Unsupported value: "EXTERNAL": supported values: "MESH_EXTERNAL", "MESH_INTERNAL"',
        "deny",
    ),
    (
        "se-resolution-enum-is-case-sensitive",
        "ServiceEntry",
        _se(resolution="dns"),
        ("spec", "resolution"),
        'spec.resolution: Unsupported value: "dns": supported values: '
        '"NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS"',
        "deny",
    ),
    (
        "se-dns-wildcard-without-endpoints",
        "ServiceEntry",
        {
            "hosts": ["*.wikipedia.org"],
            "resolution": "DNS",
            "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}],
        },
        ("spec", "hosts", 0),
        "hosts must be FQDN if no endpoints are provided for resolution mode DNS",
        "deny",
    ),
    (
        "se-none-with-endpoints",
        "ServiceEntry",
        _se(resolution="NONE"),
        ("spec", "endpoints"),
        "no endpoints should be provided for resolution type none",
        "deny",
    ),
    (
        "se-cidr-with-dns",
        "ServiceEntry",
        _se(resolution="DNS", hosts=["api.example.com"]),
        ("spec", "addresses"),
        "CIDR addresses are allowed only for NONE/STATIC resolution types",
        "deny",
    ),
    (
        "se-bad-address",
        "ServiceEntry",
        _se(addresses=["10.0.0.300"]),
        ("spec", "addresses", 0),
        "10.0.0.300 is not a valid IP",
        "deny",
    ),
    (
        "se-bad-cidr",
        "ServiceEntry",
        _se(addresses=["10.0.0.0/40"]),
        ("spec", "addresses", 0),
        "10.0.0.0/40 is not a valid CIDR block",
        "deny",
    ),
    (
        "se-selector-and-endpoints",
        "ServiceEntry",
        _se(workloadSelector={"labels": {"app": "api"}}),
        ("spec", "workloadSelector"),
        "only one of WorkloadSelector or Endpoints is allowed in Service Entry",
        "deny",
    ),
    (
        "se-selector-wildcard",
        "ServiceEntry",
        {**_se(endpoints=[]), "workloadSelector": {"labels": {"app": "*"}}},
        ("spec", "workloadSelector", "labels", "app"),
        'wildcard is not supported in selector: "app=*"',
        "deny",
    ),
    (
        "se-dynamic-dns-needs-wildcard",
        "ServiceEntry",
        {
            "hosts": ["api.example.com"],
            "resolution": "DYNAMIC_DNS",
            "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}],
        },
        ("spec", "hosts", 0),
        "host must be wildcarded for resolution mode DYNAMIC_DNS",
        "deny",
    ),
    (
        "se-dynamic-dns-no-addresses",
        "ServiceEntry",
        {
            "hosts": ["*.example.com"],
            "addresses": ["10.0.0.1"],
            "resolution": "DYNAMIC_DNS",
            "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}],
        },
        ("spec", "addresses"),
        "addresses cannot be set for resolution mode DYNAMIC_DNS",
        "deny",
    ),
    (
        "se-dynamic-dns-protocols",
        "ServiceEntry",
        {
            "hosts": ["*.example.com"],
            "resolution": "DYNAMIC_DNS",
            "ports": [{"number": 5432, "name": "pg", "protocol": "TCP"}],
        },
        ("spec", "ports", 0, "protocol"),
        "only HTTP, TLS, GRPC, and HTTP2 protocols are supported for resolution mode DYNAMIC_DNS",
        "deny",
    ),
    (
        "se-dns-round-robin-endpoints",
        "ServiceEntry",
        {
            "hosts": ["api.example.com"],
            "resolution": "DNS_ROUND_ROBIN",
            "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
            "endpoints": [{"address": "a.example.com"}, {"address": "b.example.com"}],
        },
        ("spec", "endpoints"),
        "there must only be 0 or 1 endpoint for resolution mode DNS_ROUND_ROBIN",
        "deny",
    ),
    (
        "se-multiple-hosts-tcp",
        "ServiceEntry",
        {
            "hosts": ["a.example.com", "b.example.com"],
            "resolution": "DNS",
            "ports": [{"number": 5432, "name": "pg", "protocol": "TCP"}],
        },
        ("spec", "ports", 0, "protocol"),
        "multiple hosts provided with non-HTTP, non-TLS ports",
        "deny",
    ),
    (
        "se-static-endpoint-not-ip",
        "ServiceEntry",
        _se(endpoints=[{"address": "api.example.com"}]),
        ("spec", "endpoints", 0, "address"),
        'endpoint address "api.example.com" is not a valid IP address',
        "deny",
    ),
    (
        "se-endpoint-port-undeclared",
        "ServiceEntry",
        _se(endpoints=[{"address": "10.1.2.3", "ports": {"grpc": 9000}}]),
        ("spec", "endpoints", 0, "ports", "grpc"),
        "endpoint port 9000 is not defined by the service entry",
        "deny",
    ),
    (
        "se-target-port-none-warns",
        "ServiceEntry",
        {
            "hosts": ["api.example.com"],
            "ports": [{"number": 80, "name": "http", "protocol": "HTTP", "targetPort": 8080}],
        },
        ("spec", "ports", 0, "targetPort"),
        "targetPort has no effect when resolution mode is NONE",
        "warn",
    ),
    # exportTo
    (
        "se-export-to-star-and-more",
        "ServiceEntry",
        _se(exportTo=["*", "other"]),
        ("spec", "exportTo"),
        "cannot have both public (*) and non-public exportTo values for a resource",
        "deny",
    ),
    (
        "se-export-to-duplicate-dot",
        "ServiceEntry",
        _se(exportTo=["apps", "."]),
        ("spec", "exportTo", 1),
        "duplicate entries in exportTo: . and current namespace apps",
        "deny",
    ),
    (
        "se-export-to-none-and-someone",
        "ServiceEntry",
        _se(exportTo=["~", "other"]),
        ("spec", "exportTo"),
        "cannot export service entry to no one (~) and someone",
        "deny",
    ),
    (
        "dr-export-to-none",
        "DestinationRule",
        {"host": "api.example.com", "exportTo": ["~"]},
        ("spec", "exportTo", 0),
        "exportTo ~ (none) is not allowed for Istio configuration objects",
        "deny",
    ),
    (
        "vs-export-to-bad-entry",
        "VirtualService",
        {**_vs_route(route=_DEST), "exportTo": ["Team_A"]},
        ("spec", "exportTo", 0),
        "only .,*, or a valid DNS 1123 label is allowed as exportTo entry",
        "deny",
    ),
    # DestinationRule
    (
        "dr-no-host",
        "DestinationRule",
        {"subsets": [{"name": "v1"}]},
        ("spec", "host"),
        "spec.host: Required value",
        "deny",
    ),
    (
        "dr-empty-policy",
        "DestinationRule",
        _dr_policy(),
        ("spec", "trafficPolicy"),
        "traffic policy must have at least one field",
        "deny",
    ),
    (
        "dr-subset-name-required",
        "DestinationRule",
        {"host": "api.example.com", "subsets": [{"labels": {"version": "v1"}}]},
        ("spec", "subsets", 0, "name"),
        "spec.subsets[0].name: Required value",
        "deny",
    ),
    (
        "dr-subset-name-invalid",
        "DestinationRule",
        {"host": "api.example.com", "subsets": [{"name": "V_1"}]},
        ("spec", "subsets", 0, "name"),
        "subset name is invalid: V_1",
        "deny",
    ),
    (
        "dr-duplicate-subsets",
        "DestinationRule",
        {"host": "api.example.com", "subsets": [{"name": "v1"}, {"name": "v1"}]},
        ("spec", "subsets", 1, "name"),
        "duplicate subset names: v1",
        "deny",
    ),
    (
        "dr-tls-mode-enum",
        "DestinationRule",
        _dr_policy(tls={"mode": "simple"}),
        ("spec", "trafficPolicy", "tls", "mode"),
        'spec.trafficPolicy.tls.mode: Unsupported value: "simple": supported values: '
        '"DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"',
        "deny",
    ),
    (
        "dr-mutual-without-cert",
        "DestinationRule",
        _dr_policy(tls={"mode": "MUTUAL", "privateKey": "/etc/key.pem"}),
        ("spec", "trafficPolicy", "tls", "clientCertificate"),
        "client certificate required for mutual tls",
        "deny",
    ),
    (
        "dr-mutual-without-key",
        "DestinationRule",
        _dr_policy(tls={"mode": "MUTUAL", "clientCertificate": "/etc/cert.pem"}),
        ("spec", "trafficPolicy", "tls", "privateKey"),
        "private key required for mutual tls",
        "deny",
    ),
    (
        "dr-insecure-skip-verify-with-ca",
        "DestinationRule",
        _dr_policy(tls={"mode": "SIMPLE", "insecureSkipVerify": True, "caCertificates": "/etc/ca.pem"}),
        ("spec", "trafficPolicy", "tls", "insecureSkipVerify"),
        "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set "
        "true",
        "deny",
    ),
    (
        "dr-credential-name-with-files",
        "DestinationRule",
        _dr_policy(tls={"mode": "SIMPLE", "credentialName": "ca", "caCertificates": "/etc/ca.pem"}),
        ("spec", "trafficPolicy", "tls", "credentialName"),
        "cannot specify client certificates or CA certificate or CA CRL If credentialName is set",
        "deny",
    ),
    (
        "dr-selector-export-beyond-namespace",
        "DestinationRule",
        {
            "host": "api.example.com",
            "workloadSelector": {"matchLabels": {"app": "client"}},
            "exportTo": ["*"],
        },
        ("spec", "exportTo"),
        "destination rule with workload selector cannot have exportTo beyond current namespace",
        "deny",
    ),
    (
        "dr-outlier-interval-below-1ms",
        "DestinationRule",
        _dr_policy(outlierDetection={"interval": "500us"}),
        ("spec", "trafficPolicy", "outlierDetection", "interval"),
        "duration must be greater than 1ms",
        "deny",
    ),
    (
        "dr-outlier-ejection-precision",
        "DestinationRule",
        _dr_policy(outlierDetection={"baseEjectionTime": "1.0005s"}),
        ("spec", "trafficPolicy", "outlierDetection", "baseEjectionTime"),
        "only durations to ms precision are supported",
        "deny",
    ),
    (
        "dr-outlier-percent",
        "DestinationRule",
        _dr_policy(outlierDetection={"maxEjectionPercent": 120}),
        ("spec", "trafficPolicy", "outlierDetection", "maxEjectionPercent"),
        "percentage 120 is not in range 0..100",
        "deny",
    ),
    (
        "dr-outlier-consecutive-errors-warns",
        "DestinationRule",
        _dr_policy(outlierDetection={"consecutiveErrors": 5}),
        ("spec", "trafficPolicy", "outlierDetection", "consecutiveErrors"),
        "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or "
        "consecutive5xxErrors instead",
        "warn",
    ),
    (
        "dr-local-origin-without-split",
        "DestinationRule",
        _dr_policy(outlierDetection={"consecutiveLocalOriginFailures": 3}),
        ("spec", "trafficPolicy", "outlierDetection", "consecutiveLocalOriginFailures"),
        "outlier detection consecutive local origin failures is specified, "
        "but split external local origin errors is set to false",
        "deny",
    ),
    (
        "dr-connect-timeout",
        "DestinationRule",
        _dr_policy(connectionPool={"tcp": {"connectTimeout": "0s"}}),
        ("spec", "trafficPolicy", "connectionPool", "tcp", "connectTimeout"),
        "duration must be greater than 1ms",
        "deny",
    ),
    (
        "dr-connection-pool-negative",
        "DestinationRule",
        _dr_policy(connectionPool={"http": {"maxRetries": -1}}),
        ("spec", "trafficPolicy", "connectionPool", "http", "maxRetries"),
        "max retries must be non-negative",
        "deny",
    ),
    (
        "dr-connection-pool-empty",
        "DestinationRule",
        _dr_policy(connectionPool={}),
        ("spec", "trafficPolicy", "connectionPool"),
        "connection pool must have at least one field",
        "deny",
    ),
    (
        "dr-port-policy-empty",
        "DestinationRule",
        _dr_policy(portLevelSettings=[{"port": {"number": 80}}]),
        ("spec", "trafficPolicy", "portLevelSettings", 0),
        "port traffic policy must have at least one field",
        "deny",
    ),
    (
        "dr-port-policy-without-port",
        "DestinationRule",
        _dr_policy(portLevelSettings=[{"tls": {"mode": "SIMPLE"}}]),
        ("spec", "trafficPolicy", "portLevelSettings", 0, "port"),
        "portTrafficPolicy must have valid port",
        "deny",
    ),
    (
        "dr-subset-policy-duration",
        "DestinationRule",
        {
            "host": "api.example.com",
            "subsets": [{"name": "v1", "trafficPolicy": {"outlierDetection": {"interval": "ten"}}}],
        },
        ("spec", "subsets", 0, "trafficPolicy", "outlierDetection", "interval"),
        "invalid duration 'ten': must be a valid duration greater than 1ms",
        "deny",
    ),
    (
        "dr-subset-labels",
        "DestinationRule",
        {"host": "api.example.com", "subsets": [{"name": "v1", "labels": {"version": "v1!"}}]},
        ("spec", "subsets", 0, "labels", "version"),
        'invalid tag value: "v1!"',
        "deny",
    ),
    # VirtualService
    (
        "vs-no-routes",
        "VirtualService",
        {"hosts": ["api.example.com"]},
        ("spec",),
        "http, tcp or tls must be provided in virtual service",
        "deny",
    ),
    (
        "vs-mesh-star-host",
        "VirtualService",
        {"hosts": ["*"], "http": [{"route": _DEST}]},
        ("spec", "hosts", 0),
        "wildcard host * is not allowed for virtual services bound to the mesh gateway",
        "deny",
    ),
    (
        "vs-duplicate-hosts",
        "VirtualService",
        {"hosts": ["*.example.com", "api.example.com"], "http": [{"route": _DEST}]},
        ("spec", "hosts", 1),
        "duplicate hosts in virtual service: *.example.com & api.example.com",
        "deny",
    ),
    (
        "vs-bad-host",
        "VirtualService",
        {"hosts": ["api..example.com"], "http": [{"route": _DEST}]},
        ("spec", "hosts", 0),
        'domain name ".example.com" invalid (label "" invalid)',
        "deny",
    ),
    (
        "vs-timeout-below-1ms",
        "VirtualService",
        _vs_route(route=_DEST, timeout="0s"),
        ("spec", "http", 0, "timeout"),
        "duration must be greater than 1ms",
        "deny",
    ),
    (
        "vs-per-try-timeout-precision",
        "VirtualService",
        _vs_route(route=_DEST, retries={"attempts": 2, "perTryTimeout": "1500us"}),
        ("spec", "http", 0, "retries", "perTryTimeout"),
        "only durations to ms precision are supported",
        "deny",
    ),
    (
        "vs-retries-negative",
        "VirtualService",
        _vs_route(route=_DEST, retries={"attempts": -1}),
        ("spec", "http", 0, "retries", "attempts"),
        "attempts cannot be negative",
        "deny",
    ),
    (
        "vs-retry-on",
        "VirtualService",
        _vs_route(route=_DEST, retries={"attempts": 2, "retryOn": "5xx,sometimes"}),
        ("spec", "http", 0, "retries", "retryOn"),
        '"sometimes" is not a valid retryOn policy',
        "deny",
    ),
    (
        "vs-retry-policy-without-attempts",
        "VirtualService",
        _vs_route(route=_DEST, retries={"retryOn": "5xx"}),
        ("spec", "http", 0, "retries"),
        "http retry policy configured when attempts are set to 0 (disabled)",
        "deny",
    ),
    (
        "vs-route-and-redirect",
        "VirtualService",
        _vs_route(route=_DEST, redirect={"uri": "/v2"}),
        ("spec", "http", 0, "route"),
        "HTTP route cannot contain both route and redirect",
        "deny",
    ),
    (
        "vs-route-required",
        "VirtualService",
        _vs_route(timeout="5s"),
        ("spec", "http", 0),
        "HTTP route, redirect or direct_response is required",
        "deny",
    ),
    (
        "vs-root-route-with-route",
        "VirtualService",
        _vs_route(name="api", route=_DEST, delegate={"name": "api-routes", "namespace": "apps"}),
        ("spec", "http", 0, "route"),
        "root HTTP route api must not specify route",
        "deny",
    ),
    (
        "vs-root-route-with-redirect",
        "VirtualService",
        _vs_route(delegate={"name": "api-routes"}, redirect={"uri": "/v2"}),
        ("spec", "http", 0, "redirect"),
        "root HTTP route must not specify redirect",
        "deny",
    ),
    (
        "vs-fault-and-redirect",
        "VirtualService",
        _vs_route(redirect={"uri": "/v2"}, fault={"abort": {"httpStatus": 500, "percentage": {"value": 1}}}),
        ("spec", "http", 0, "fault"),
        "HTTP route cannot contain both fault and redirect",
        "deny",
    ),
    (
        "vs-rewrite-and-redirect",
        "VirtualService",
        _vs_route(redirect={"uri": "/v2"}, rewrite={"uri": "/"}),
        ("spec", "http", 0, "rewrite"),
        "HTTP route rule cannot contain both rewrite and redirect",
        "deny",
    ),
    (
        "vs-direct-response-and-redirect",
        "VirtualService",
        _vs_route(redirect={"uri": "/v2"}, directResponse={"status": 503}),
        ("spec", "http", 0, "directResponse"),
        "HTTP route rule cannot contain both direct_response and redirect",
        "deny",
    ),
    (
        "vs-route-and-direct-response",
        "VirtualService",
        _vs_route(route=_DEST, directResponse={"status": 503}),
        ("spec", "http", 0, "route"),
        "HTTP route cannot contain both route and direct_response",
        "deny",
    ),
    (
        "vs-fault-and-direct-response",
        "VirtualService",
        _vs_route(
            directResponse={"status": 503}, fault={"abort": {"httpStatus": 500, "percentage": {"value": 1}}}
        ),
        ("spec", "http", 0, "fault"),
        "HTTP route cannot contain both fault and direct_response",
        "deny",
    ),
    (
        "vs-rewrite-and-direct-response",
        "VirtualService",
        _vs_route(directResponse={"status": 503}, rewrite={"uri": "/"}),
        ("spec", "http", 0, "rewrite"),
        "HTTP route rule cannot contain both rewrite and direct_response",
        "deny",
    ),
    (
        "vs-delegate-with-gateways",
        "VirtualService",
        {"gateways": ["mesh"], "http": [{"route": _DEST}]},
        ("spec", "gateways"),
        "delegate virtual service must have no gateways specified",
        "deny",
    ),
    (
        "vs-delegate-with-tcp",
        "VirtualService",
        {"tcp": [{"route": _DEST}]},
        ("spec", "tcp"),
        "delegate virtual service must have no tcp route specified",
        "deny",
    ),
    (
        "vs-delegate-of-delegate",
        "VirtualService",
        {"http": [{"delegate": {"name": "deeper"}}]},
        ("spec", "http", 0, "delegate"),
        "delegate HTTP route cannot contain delegate",
        "deny",
    ),
    (
        "vs-http-match-source-namespace",
        "VirtualService",
        _vs_route(route=_DEST, match=[{"uri": {"prefix": "/"}}, {"sourceNamespace": "Team_A"}]),
        ("spec", "http", 0, "match", 1, "sourceNamespace"),
        "sourceNamespace match Team_A is invalid",
        "deny",
    ),
    (
        "vs-http-match-port",
        "VirtualService",
        _vs_route(route=_DEST, match=[{"port": 70000}]),
        ("spec", "http", 0, "match", 0, "port"),
        "port number 70000 must be in the range 1..65535",
        "deny",
    ),
    # Wrong types in the small route types: reported at their JSON path like any other field.
    (
        "vs-destination-port-type",
        "VirtualService",
        _vs_route(route=[{"destination": {"host": "api.example.com", "port": {"number": "80"}}}]),
        ("spec", "http", 0, "route", 0, "destination", "port", "number"),
        "must be an integer, got string",
        "deny",
    ),
    (
        "vs-destination-type",
        "VirtualService",
        _vs_route(route=[{"destination": "api.example.com"}]),
        ("spec", "http", 0, "route", 0, "destination"),
        "must be an object, got string",
        "deny",
    ),
    (
        "vs-route-weight-type",
        "VirtualService",
        _vs_route(route=[{"destination": {"host": "api.example.com"}, "weight": 1.5}]),
        ("spec", "http", 0, "route", 0, "weight"),
        "must be an integer, got number",
        "deny",
    ),
    (
        "vs-http-match-source-labels-type",
        "VirtualService",
        _vs_route(route=_DEST, match=[{"sourceLabels": {"app": 1}}]),
        ("spec", "http", 0, "match", 0, "sourceLabels", "app"),
        "must be a string, got integer",
        "deny",
    ),
    (
        "vs-retries-per-try-timeout-type",
        "VirtualService",
        _vs_route(route=_DEST, retries={"attempts": 2, "perTryTimeout": 2}),
        ("spec", "http", 0, "retries", "perTryTimeout"),
        "must be a string, got integer",
        "deny",
    ),
    (
        "vs-mirror-host-type",
        "VirtualService",
        _vs_route(route=_DEST, mirror={"host": ["a"]}),
        ("spec", "http", 0, "mirror", "host"),
        "must be a string, got list",
        "deny",
    ),
    (
        "vs-mirrors-destination-port-type",
        "VirtualService",
        _vs_route(
            route=_DEST, mirrors=[{"destination": {"host": "api.example.com", "port": {"number": "80"}}}]
        ),
        ("spec", "http", 0, "mirrors", 0, "destination", "port", "number"),
        "must be an integer, got string",
        "deny",
    ),
    (
        "vs-mirrors-destination-subset",
        "VirtualService",
        _vs_route(route=_DEST, mirrors=[{"destination": {"host": "api.example.com", "subset": "V_1"}}]),
        ("spec", "http", 0, "mirrors", 0, "destination", "subset"),
        "subset name is invalid: V_1",
        "deny",
    ),
    (
        "vs-destination-host-required",
        "VirtualService",
        _vs_route(route=[{"destination": {"subset": "v1"}}]),
        ("spec", "http", 0, "route", 0, "destination", "host"),
        "spec.http[0].route[0].destination.host: Required value",
        "deny",
    ),
    (
        "vs-destination-star",
        "VirtualService",
        _vs_route(route=[{"destination": {"host": "*"}}]),
        ("spec", "http", 0, "route", 0, "destination", "host"),
        "invalid destination host *",
        "deny",
    ),
    (
        "vs-destination-port",
        "VirtualService",
        _vs_route(route=[{"destination": {"host": "api.example.com", "port": {"number": 0}}}]),
        ("spec", "http", 0, "route", 0, "destination", "port", "number"),
        "port number 0 must be in the range 1..65535",
        "deny",
    ),
    (
        "vs-total-weight-zero",
        "VirtualService",
        _vs_route(
            route=[{"destination": {"host": "a.example.com"}}, {"destination": {"host": "b.example.com"}}]
        ),
        ("spec", "http", 0, "route"),
        "total destination weight = 0",
        "deny",
    ),
    (
        "vs-negative-weight",
        "VirtualService",
        _vs_route(route=[{"destination": {"host": "api.example.com"}, "weight": -5}]),
        ("spec", "http", 0, "route", 0, "weight"),
        "weight -5 < 0",
        "deny",
    ),
    (
        "vs-gateway-namespace",
        "VirtualService",
        {**_vs_route(route=_DEST), "gateways": ["Istio_System/egress"]},
        ("spec", "gateways", 0),
        'invalid value for namespace: "Istio_System"',
        "deny",
    ),
    (
        "vs-gateway-name",
        "VirtualService",
        {**_vs_route(route=_DEST), "gateways": ["istio-system/egress.gateway"]},
        ("spec", "gateways", 0),
        'invalid value for gateway name: "egress.gateway"',
        "deny",
    ),
    (
        "vs-gateway-legacy-form-warns",
        "VirtualService",
        {**_vs_route(route=_DEST), "gateways": ["egress.istio-system.svc.cluster.local"]},
        ("spec", "gateways", 0),
        'using legacy gatewayName format "egress.istio-system.svc.cluster.local"; '
        'prefer the <namespace>/<name> format: "istio-system/egress"',
        "warn",
    ),
    (
        "vs-tls-match-needs-sni",
        "VirtualService",
        {"hosts": ["api.example.com"], "tls": [{"match": [{"port": 443}], "route": _DEST}]},
        ("spec", "tls", 0, "match", 0, "sniHosts"),
        "TLS match must have at least one SNI host",
        "deny",
    ),
    (
        "vs-tls-sni-outside-hosts",
        "VirtualService",
        {
            "hosts": ["api.example.com"],
            "tls": [{"match": [{"sniHosts": ["other.example.com"]}], "route": _DEST}],
        },
        ("spec", "tls", 0, "match", 0, "sniHosts", 0),
        'SNI host "other.example.com" is not a compatible subset of any of the virtual service hosts: '
        "[api.example.com]",
        "deny",
    ),
    (
        "vs-tls-route-required",
        "VirtualService",
        {"hosts": ["api.example.com"], "tls": [{"match": [{"sniHosts": ["api.example.com"]}]}]},
        ("spec", "tls", 0, "route"),
        "TLS route is required",
        "deny",
    ),
    (
        "vs-tcp-route-required",
        "VirtualService",
        {"hosts": ["api.example.com"], "tcp": [{"match": [{"port": 5432}]}]},
        ("spec", "tcp", 0, "route"),
        "TCP route is required",
        "deny",
    ),
    (
        "vs-match-port",
        "VirtualService",
        _vs_route(route=_DEST, match=[{"port": 0x10000}]),
        ("spec", "http", 0, "match", 0, "port"),
        "port number 65536 must be in the range 1..65535",
        "deny",
    ),
    (
        "vs-fault-delay-duration",
        "VirtualService",
        _vs_route(route=_DEST, fault={"delay": {"fixedDelay": "0.5ms", "percentage": {"value": 10}}}),
        ("spec", "http", 0, "fault", "delay", "fixedDelay"),
        "duration must be greater than 1ms",
        "deny",
    ),
    (
        "vs-fault-empty",
        "VirtualService",
        _vs_route(route=_DEST, fault={}),
        ("spec", "http", 0, "fault"),
        "HTTP fault injection must have an abort and/or a delay",
        "deny",
    ),
    (
        "vs-fault-percentage",
        "VirtualService",
        _vs_route(route=_DEST, fault={"abort": {"httpStatus": 503, "percentage": {"value": 150}}}),
        ("spec", "http", 0, "fault", "abort", "percentage", "value"),
        "percentage 150 is neither 0.0, nor in range [0.0001, 100.0]",
        "deny",
    ),
    (
        "vs-cors-max-age",
        "VirtualService",
        _vs_route(route=_DEST, corsPolicy={"maxAge": "1500ms"}),
        ("spec", "http", 0, "corsPolicy", "maxAge"),
        "max_age duration is accurate only to seconds precision",
        "deny",
    ),
    (
        "vs-redirect-empty",
        "VirtualService",
        _vs_route(redirect={"redirectCode": 301}),
        ("spec", "http", 0, "redirect"),
        "redirect must specify URI, authority, scheme, or port",
        "deny",
    ),
    (
        "vs-direct-response-status",
        "VirtualService",
        _vs_route(directResponse={"status": 99}),
        ("spec", "http", 0, "directResponse", "status"),
        "HTTP status 99 is not in range 200-599",
        "deny",
    ),
    (
        "vs-mirror-and-mirrors",
        "VirtualService",
        _vs_route(
            route=_DEST,
            mirror={"host": "copy.example.com"},
            mirrors=[{"destination": {"host": "copy.example.com"}}],
        ),
        ("spec", "http", 0, "mirrors"),
        "HTTP route cannot contain both mirror and mirrors",
        "deny",
    ),
    (
        "vs-rewrite-empty",
        "VirtualService",
        _vs_route(route=_DEST, rewrite={}),
        ("spec", "http", 0, "rewrite"),
        "rewrite must specify at least one of URI, UriRegexRewrite, or authority. "
        "Only one of URI or UriRegexRewrite may be specified",
        "deny",
    ),
    # Gateway
    (
        "gw-no-servers",
        "Gateway",
        {"selector": {"istio": "egressgateway"}},
        ("spec", "servers"),
        "gateway must have at least one server",
        "deny",
    ),
    (
        "gw-no-hosts",
        "Gateway",
        {"servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}}]},
        ("spec", "servers", 0, "hosts"),
        "server config must contain at least one host",
        "deny",
    ),
    (
        "gw-short-name",
        "Gateway",
        {"servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["reviews"]}]},
        ("spec", "servers", 0, "hosts", 0),
        "short names (non FQDN) are not allowed",
        "deny",
    ),
    (
        "gw-partial-wildcard",
        "Gateway",
        {
            "servers": [
                {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*wikipedia.org"]}
            ]
        },
        ("spec", "servers", 0, "hosts", 0),
        'partial wildcard "*wikipedia.org" not allowed',
        "deny",
    ),
    (
        "gw-host-namespace",
        "Gateway",
        {
            "servers": [
                {
                    "port": {"number": 80, "name": "http", "protocol": "HTTP"},
                    "hosts": ["apps_1/api.example.com"],
                }
            ]
        },
        ("spec", "servers", 0, "hosts", 0),
        'invalid namespace value "apps_1" in gateway',
        "deny",
    ),
    (
        "gw-port-required",
        "Gateway",
        {"servers": [{"hosts": ["api.example.com"]}]},
        ("spec", "servers", 0, "port"),
        "port is required",
        "deny",
    ),
    (
        "gw-protocol",
        "Gateway",
        {
            "servers": [
                {"port": {"number": 80, "name": "http", "protocol": "QUIC"}, "hosts": ["api.example.com"]}
            ]
        },
        ("spec", "servers", 0, "port", "protocol"),
        'invalid protocol "QUIC", supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, '
        "MYSQL, TCP",
        "deny",
    ),
    (
        "gw-port-name-required",
        "Gateway",
        {"servers": [{"port": {"number": 80, "protocol": "HTTP"}, "hosts": ["api.example.com"]}]},
        ("spec", "servers", 0, "port", "name"),
        "port name must be set",
        "deny",
    ),
    (
        "gw-target-port",
        "Gateway",
        {
            "servers": [
                {
                    "port": {"number": 80, "name": "http", "protocol": "HTTP", "targetPort": 8080},
                    "hosts": ["api.example.com"],
                }
            ]
        },
        ("spec", "servers", 0, "port", "targetPort"),
        "targetPort has no impact on Gateways",
        "deny",
    ),
    (
        "gw-https-without-tls",
        "Gateway",
        {"servers": [{"port": _GW_PORT, "hosts": ["api.example.com"]}]},
        ("spec", "servers", 0, "tls"),
        "server must have TLS settings for HTTPS/TLS protocols",
        "deny",
    ),
    (
        "gw-http-with-tls",
        "Gateway",
        {
            "servers": [
                {
                    "port": {"number": 80, "name": "http", "protocol": "HTTP"},
                    "hosts": ["api.example.com"],
                    "tls": {"mode": "SIMPLE", "credentialName": "cert"},
                }
            ]
        },
        ("spec", "servers", 0, "tls"),
        "server cannot have TLS settings for plain text HTTP ports",
        "deny",
    ),
    (
        "gw-tls-mode-enum",
        "Gateway",
        {"servers": [{"port": _GW_PORT, "hosts": ["api.example.com"], "tls": {"mode": "TERMINATE"}}]},
        ("spec", "servers", 0, "tls", "mode"),
        'spec.servers[0].tls.mode: Unsupported value: "TERMINATE": supported values: '
        '"PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"',
        "deny",
    ),
    (
        "gw-simple-without-cert",
        "Gateway",
        {
            "servers": [
                {
                    "port": _GW_PORT,
                    "hosts": ["api.example.com"],
                    "tls": {"mode": "SIMPLE", "privateKey": "/k"},
                }
            ]
        },
        ("spec", "servers", 0, "tls", "serverCertificate"),
        "SIMPLE TLS requires a server certificate",
        "deny",
    ),
    (
        "gw-mutual-without-ca",
        "Gateway",
        {
            "servers": [
                {
                    "port": _GW_PORT,
                    "hosts": ["api.example.com"],
                    "tls": {"mode": "MUTUAL", "serverCertificate": "/c", "privateKey": "/k"},
                }
            ]
        },
        ("spec", "servers", 0, "tls", "caCertificates"),
        "MUTUAL TLS requires a client CA bundle",
        "deny",
    ),
    (
        "gw-istio-mutual-with-cert",
        "Gateway",
        {
            "servers": [
                {
                    "port": _GW_PORT,
                    "hosts": ["api.example.com"],
                    "tls": {"mode": "ISTIO_MUTUAL", "credentialName": "x"},
                }
            ]
        },
        ("spec", "servers", 0, "tls", "credentialName"),
        "ISTIO_MUTUAL TLS cannot have associated credentialName",
        "deny",
    ),
    (
        "gw-duplicate-port-names",
        "Gateway",
        {
            "servers": [
                {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["a.example.com"]},
                {"port": {"number": 8080, "name": "http", "protocol": "HTTP"}, "hosts": ["b.example.com"]},
            ]
        },
        ("spec", "servers", 1, "port", "name"),
        "port names in servers must be unique: duplicate name http",
        "deny",
    ),
    # Sidecar
    (
        "sc-empty",
        "Sidecar",
        {"workloadSelector": {"labels": {"app": "x"}}},
        ("spec",),
        "sidecar: empty configuration provided",
        "deny",
    ),
    (
        "sc-host-form",
        "Sidecar",
        {"egress": [{"hosts": ["api.example.com"]}]},
        ("spec", "egress", 0, "hosts", 0),
        "host must be of form namespace/dnsName",
        "deny",
    ),
    (
        "sc-short-name",
        "Sidecar",
        {"egress": [{"hosts": ["apps/reviews"]}]},
        ("spec", "egress", 0, "hosts", 0),
        "short names (non FQDN) are not allowed",
        "deny",
    ),
    (
        "sc-partial-wildcard",
        "Sidecar",
        {"egress": [{"hosts": ["*/*wikipedia.org"]}]},
        ("spec", "egress", 0, "hosts", 0),
        'partial wildcard "*wikipedia.org" not allowed',
        "deny",
    ),
    (
        "sc-host-namespace",
        "Sidecar",
        {"egress": [{"hosts": ["apps_1/api.example.com"]}]},
        ("spec", "egress", 0, "hosts", 0),
        'invalid namespace value "apps_1" in sidecar',
        "deny",
    ),
    (
        "sc-egress-hosts-required",
        "Sidecar",
        {"egress": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}}]},
        ("spec", "egress", 0, "hosts"),
        "sidecar: egress listener must contain at least one host",
        "deny",
    ),
    (
        "sc-catch-all-last",
        "Sidecar",
        {
            "egress": [
                {"hosts": ["./*"]},
                {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["./*"]},
            ]
        },
        ("spec", "egress", 0),
        "sidecar: the egress listener with empty port should be the last listener in the list",
        "deny",
    ),
    (
        "sc-egress-protocol",
        "Sidecar",
        {"egress": [{"port": {"number": 80, "name": "http", "protocol": "SPDY"}, "hosts": ["./*"]}]},
        ("spec", "egress", 0, "port", "protocol"),
        "unsupported protocol: SPDY",
        "deny",
    ),
    (
        "sc-duplicate-egress-port",
        "Sidecar",
        {
            "egress": [
                {"port": {"number": 80, "name": "a", "protocol": "HTTP"}, "hosts": ["./*"]},
                {"port": {"number": 80, "name": "b", "protocol": "HTTP"}, "hosts": ["./*"]},
            ]
        },
        ("spec", "egress", 1, "port", "number"),
        "sidecar: ports on IP bound listeners must be unique",
        "deny",
    ),
    (
        "sc-dynamic-dns-mode",
        "Sidecar",
        {"outboundTrafficPolicy": {"mode": "ALLOW_ANY_DYNAMIC_DNS"}},
        ("spec", "outboundTrafficPolicy", "mode"),
        "sidecar: ALLOW_ANY_DYNAMIC_DNS mode is only supported in MeshConfig, not in Sidecar resource",
        "deny",
    ),
    (
        "sc-mode-enum",
        "Sidecar",
        {"outboundTrafficPolicy": {"mode": "DENY_ALL"}},
        ("spec", "outboundTrafficPolicy", "mode"),
        'spec.outboundTrafficPolicy.mode: Unsupported value: "DENY_ALL": supported values: '
        '"REGISTRY_ONLY", "ALLOW_ANY"',
        "deny",
    ),
    (
        "sc-egress-proxy-mode",
        "Sidecar",
        {
            "outboundTrafficPolicy": {
                "mode": "REGISTRY_ONLY",
                "egressProxy": {"host": "proxy.example.com", "port": {"number": 3128}},
            }
        },
        ("spec", "outboundTrafficPolicy", "egressProxy"),
        "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode",
        "deny",
    ),
    (
        "sc-egress-proxy-port",
        "Sidecar",
        {"outboundTrafficPolicy": {"mode": "ALLOW_ANY", "egressProxy": {"host": "proxy.example.com"}}},
        ("spec", "outboundTrafficPolicy", "egressProxy", "port"),
        "sidecar: egress_proxy port must be non-nil",
        "deny",
    ),
    (
        "sc-selector-without-labels-warns",
        "Sidecar",
        {"workloadSelector": {}, "egress": [{"hosts": ["./*"]}]},
        ("spec", "workloadSelector"),
        "sidecar: workload selector specified without labels, will be applied to all services in namespace",
        "warn",
    ),
    (
        "sc-everything-and-more-warns",
        "Sidecar",
        {"egress": [{"hosts": ["*/*", "apps/api.example.com"]}]},
        ("spec", "egress", 0, "hosts"),
        "`*/*` host select all resources, no other hosts can be added",
        "warn",
    ),
    # WorkloadEntry
    (
        "we-address-required",
        "WorkloadEntry",
        {"ports": {"http": 8080}},
        ("spec", "address"),
        "address is required",
        "deny",
    ),
    (
        "we-address-invalid",
        "WorkloadEntry",
        {"address": "vm_1.example.com"},
        ("spec", "address"),
        'endpoint address "vm_1.example.com" is not a valid FQDN or an IP address',
        "deny",
    ),
    (
        "we-unix-with-ports",
        "WorkloadEntry",
        {"address": "unix:///var/run/app.sock", "ports": {"http": 8080}},
        ("spec", "ports"),
        "unix endpoint unix:///var/run/app.sock must not include ports",
        "deny",
    ),
    (
        "we-unix-relative",
        "WorkloadEntry",
        {"address": "unix://var/run/app.sock"},
        ("spec", "address"),
        "var/run/app.sock is not an absolute path to a file",
        "deny",
    ),
    (
        "we-port-name",
        "WorkloadEntry",
        {"address": "10.0.0.5", "ports": {"HTTP_API": 8080}},
        ("spec", "ports", "HTTP_API"),
        "invalid port name: HTTP_API",
        "deny",
    ),
    (
        "we-port-number",
        "WorkloadEntry",
        {"address": "10.0.0.5", "ports": {"http": 0}},
        ("spec", "ports", "http"),
        "port number 0 must be in the range 1..65535",
        "deny",
    ),
    (
        "we-label-key",
        "WorkloadEntry",
        {"address": "10.0.0.5", "labels": {"-app": "vm"}},
        ("spec", "labels", "-app"),
        'invalid tag key: "-app"',
        "deny",
    ),
    (
        "we-network-without-address-warns",
        "WorkloadEntry",
        {"network": "vm-network"},
        ("spec", "address"),
        'address is unset with network "vm-network"',
        "warn",
    ),
]


@pytest.mark.parametrize(
    ("kind", "spec", "path", "message", "level"),
    [
        pytest.param(kind, spec, path, message, level, id=case_id)
        for case_id, kind, spec, path, message, level in CASES
    ],
)
def test_each_rejection_is_reported_at_its_path_with_istio_wording(
    kind: str, spec: dict, path: tuple, message: str, level: str
) -> None:
    decision = _review(_obj(kind, spec))
    found = [(o.finding.path, o.finding.message) for o in _schema(decision)]
    assert (path, message) in found, found
    outcome = next(o for o in _schema(decision) if o.finding.path == path and o.finding.message == message)
    assert outcome.finding.level == level
    assert outcome.finding.fix, "every finding says how to fix it"
    if level == "deny":
        assert outcome.action is Action.DENY
        assert not decision.allowed
    else:
        assert outcome.action is Action.WARN


def test_gateway_name_must_be_a_dns_label() -> None:
    decision = _review(_obj("Gateway", VALID["Gateway"], name="egress.gateway"))
    found = [(o.finding.path, o.finding.message) for o in _schema(decision)]
    assert found == [(("metadata", "name"), 'invalid gateway name: "egress.gateway"')]


def test_every_duration_field_of_a_destination_rule_is_checked() -> None:
    bad = "1.5us"
    policy = {
        "connectionPool": {
            "tcp": {
                "connectTimeout": bad,
                "maxConnectionDuration": bad,
                "idleTimeout": bad,
                "tcpKeepalive": {"time": bad, "interval": bad},
            },
            "http": {"idleTimeout": bad},
        },
        "outlierDetection": {"interval": bad, "baseEjectionTime": bad},
        "loadBalancer": {"warmupDurationSecs": bad},
    }
    decision = _review(_obj("DestinationRule", {"host": "api.example.com", "trafficPolicy": policy}))
    paths = {
        o.finding.path for o in _schema(decision) if o.finding.message == "duration must be greater than 1ms"
    }
    base = ("spec", "trafficPolicy")
    assert paths == {
        (*base, "connectionPool", "tcp", "connectTimeout"),
        (*base, "connectionPool", "tcp", "maxConnectionDuration"),
        (*base, "connectionPool", "tcp", "idleTimeout"),
        (*base, "connectionPool", "tcp", "tcpKeepalive", "time"),
        (*base, "connectionPool", "tcp", "tcpKeepalive", "interval"),
        (*base, "connectionPool", "http", "idleTimeout"),
        (*base, "outlierDetection", "interval"),
        (*base, "outlierDetection", "baseEjectionTime"),
        (*base, "loadBalancer", "warmupDurationSecs"),
    }


def test_protocols_are_case_insensitive() -> None:
    ports = [
        {"number": 80 + i, "name": f"p{i}", "protocol": p}
        for i, p in enumerate(
            ["http", "Https", "gRPC", "grpc-web", "HTTP2", "tls", "Tcp", "mongo", "REDIS", "MySQL"]
        )
    ]
    decision = _review(
        _obj("ServiceEntry", {"hosts": ["api.example.com"], "addresses": ["10.0.0.1"], "ports": ports})
    )
    assert _schema(decision) == []


def test_partial_wildcard_is_only_a_warning_on_a_service_entry() -> None:
    spec = {"hosts": ["*wikipedia.org"], "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}]}
    se = _review(_obj("ServiceEntry", spec))
    assert [o.action for o in _schema(se)] == [Action.WARN]
    server = {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*wikipedia.org"]}
    gateway = _review(_obj("Gateway", {"servers": [server]}))
    assert [o.action for o in _schema(gateway)] == [Action.DENY]


def test_dynamic_dns_is_allowed_in_the_mesh_config_only() -> None:
    mesh = _review(_operator({"outboundTrafficPolicy": {"mode": "ALLOW_ANY_DYNAMIC_DNS"}}))
    assert _schema(mesh) == []
    sidecar = _review(_obj("Sidecar", {"outboundTrafficPolicy": {"mode": "ALLOW_ANY_DYNAMIC_DNS"}}))
    assert [o.finding.path for o in _schema(sidecar)] == [("spec", "outboundTrafficPolicy", "mode")]


@pytest.mark.parametrize(
    ("obj", "path", "message"),
    [
        (
            _mesh_configmap("outboundTrafficPolicy:\n  mode: DENY\n"),
            ("data", "mesh", "outboundTrafficPolicy", "mode"),
            'invalid value for enum field mode: "DENY" (supported: REGISTRY_ONLY, ALLOW_ANY, '
            "ALLOW_ANY_DYNAMIC_DNS)",
        ),
        (
            _operator({"outboundTrafficPolicy": {"mode": "registry_only"}}),
            ("spec", "meshConfig", "outboundTrafficPolicy", "mode"),
            'invalid value for enum field mode: "registry_only" (supported: REGISTRY_ONLY, ALLOW_ANY, '
            "ALLOW_ANY_DYNAMIC_DNS)",
        ),
        (
            _mesh_configmap("connectTimeout: 2h\n"),
            ("data", "mesh", "connectTimeout"),
            "invalid connect timeout: time 2h must be >1ms and <1h0m0s",
        ),
        (
            _operator({"connectTimeout": "500us"}),
            ("spec", "meshConfig", "connectTimeout"),
            "invalid connect timeout: duration must be greater than 1ms",
        ),
        (
            _operator({"proxyListenPort": 0}),
            ("spec", "meshConfig", "proxyListenPort"),
            "port number 0 must be in the range 1..65535",
        ),
        (
            _operator({"trustDomain": "cluster_local"}),
            ("spec", "meshConfig", "trustDomain"),
            'trustDomain: trust domain name "cluster_local" invalid',
        ),
    ],
    ids=[
        "configmap-mode",
        "operator-mode-case",
        "connect-timeout-max",
        "connect-timeout-min",
        "listen-port",
        "trust-domain",
    ],
)
def test_mesh_config_rejections(obj: dict, path: tuple, message: str) -> None:
    decision = _review(obj)
    assert [(o.finding.path, o.finding.message) for o in _schema(decision)] == [(path, message)]
    assert not decision.allowed


@pytest.mark.parametrize(
    ("obj", "path", "message"),
    [
        ({**_obj("ServiceEntry", None)}, ("spec",), "spec: Required value"),
        (_obj("VirtualService", ["api.example.com"]), ("spec",), "must be an object, got list"),
        ({**_mesh_configmap(""), "data": {"mesh": 5}}, ("data", "mesh"), "mesh config must be a YAML string"),
        (_mesh_configmap("a: [1"), ("data", "mesh"), "mesh config is not usable YAML"),
        (
            _operator({"outboundTrafficPolicy": "ALLOW_ANY"}),
            ("spec", "meshConfig", "outboundTrafficPolicy"),
            "must be an object, got string",
        ),
    ],
    ids=["no-spec", "spec-not-a-mapping", "mesh-not-a-string", "mesh-not-yaml", "operator-field-type"],
)
def test_unreadable_objects_are_denied_with_a_fix(obj: dict, path: tuple, message: str) -> None:
    decision = _review(obj)
    (outcome,) = _schema(decision)
    assert outcome.finding.path == path and outcome.finding.message.startswith(message)
    assert outcome.finding.fix and outcome.action is Action.DENY


def test_a_rejected_object_is_reported_for_that_alone() -> None:
    # A wildcard host routed directly from the mesh would also break the egress rule; Istio
    # would refuse the object anyway (bad timeout), so only istio-schema speaks.
    spec = {
        "hosts": ["*.example.com"],
        "http": [{"timeout": "0s", "route": [{"destination": {"host": "*.example.com"}}]}],
    }
    decision = _review(_obj("VirtualService", spec))
    assert {o.finding.rule for o in decision.outcomes} == {RULE}
    assert not decision.allowed


def test_warnings_alone_let_the_other_rules_run() -> None:
    decision = _review(
        _obj(
            "ServiceEntry",
            {"hosts": ["*wikipedia.org"], "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}]},
        )
    )
    assert RULE in {o.finding.rule for o in decision.outcomes}
    assert {o.finding.rule for o in decision.outcomes} - {RULE}, "the other rules still review the object"


def test_delete_is_not_validated() -> None:
    bad = _obj("VirtualService", {"hosts": ["*"]})
    decision = engine.evaluate(POLICY, EnforcementPoint.ADMISSION, MemoryInventory(), "DELETE", None, bad)
    assert _schema(decision) == []


# --- the seeds' examples ----------------------------------------------------------------

# The post lists every ServiceEntry field in one example, `endpoints` and `workloadSelector`
# together, which Istio refuses: only one of them may be set.
SEED_REJECTIONS = {
    "002-02-serviceentry-external-service.yaml": [
        (
            ("spec", "workloadSelector"),
            "only one of WorkloadSelector or Endpoints is allowed in Service Entry",
        )
    ],
}


def _seed_documents() -> list[Any]:
    params = []
    for path in sorted(SEEDS.glob("*.yaml")):
        for i, doc in enumerate(d for d in yaml.safe_load_all(path.read_text()) if d):
            params.append(pytest.param(path.name, doc, id=f"{path.stem}-{i}"))
    return params


@pytest.mark.parametrize(("name", "doc"), _seed_documents())
def test_seed_examples_are_well_formed(name: str, doc: dict) -> None:
    decision = _review(doc)
    found = [(o.finding.path, o.finding.message) for o in _schema(decision)]
    assert found == SEED_REJECTIONS.get(name, [])


def test_seed_folder_holds_objects_of_every_networking_kind() -> None:
    kinds = {
        doc["kind"] for path in SEEDS.glob("*.yaml") for doc in yaml.safe_load_all(path.read_text()) if doc
    }
    assert set(VALID) <= kinds


# --- property: any JSON-ish spec yields findings, never an exception --------------------

# fmt: off
_FIELDS = [
    "hosts", "host", "addresses", "ports", "number", "name", "protocol", "targetPort", "location",
    "resolution", "endpoints", "address", "labels", "workloadSelector", "matchLabels", "exportTo",
    "trafficPolicy", "tls", "mode", "subsets", "connectionPool", "tcp", "http", "outlierDetection",
    "interval", "baseEjectionTime", "maxEjectionPercent", "portLevelSettings", "port", "loadBalancer",
    "simple", "consistentHash", "httpCookie", "maglev", "tableSize", "tunnel", "targetHost",
    "proxyProtocol", "version", "gateways", "route", "destination", "subset", "weight", "timeout",
    "retries", "attempts", "perTryTimeout", "retryOn", "redirect", "uri", "directResponse", "status",
    "body", "string", "delegate", "rewrite", "fault", "delay", "abort", "fixedDelay", "percentage",
    "value", "mirror", "mirrors", "corsPolicy", "maxAge", "match", "sniHosts", "servers", "bind",
    "credentialName", "credentialNames", "egress", "ingress", "outboundTrafficPolicy", "egressProxy",
    "captureMode", "network", "connectTimeout", "idleTimeout", "tcpKeepalive", "sourceLabels",
    "destinationSubnets", "insecureSkipVerify", "caCertificates", "clientCertificate", "privateKey",
    "subjectAltNames", "h2UpgradePolicy",
]
# fmt: on
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
# fmt: off
_WORDS = [
    "*", "*.example.com", "api.example.com", "./*", "ns/a.b", "mesh", "10.0.0.1", "10.0.0.0/8", "5s",
    "0s", "HTTP", "TLS", "SIMPLE", "MUTUAL", "DNS", "STATIC", "NONE", "DYNAMIC_DNS", "ALLOW_ANY",
    "unix:///s", "5xx", "~", ".",
]
# fmt: on
_words = st.sampled_from(_WORDS)
_json = st.recursive(
    _scalars | _words,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(_FIELDS) | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=30,
)
_specs = st.dictionaries(st.sampled_from(_FIELDS), _json, max_size=6)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(VALID)), spec=_specs, version=st.sampled_from(VERSIONS))
def test_arbitrary_specs_never_raise(kind: str, spec: dict, version: str) -> None:
    decision = _review(_obj(kind, spec, version))
    assert decision.status == "reviewed"
    for outcome in decision.outcomes:
        assert isinstance(outcome.finding.message, str) and outcome.finding.message


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(sorted(VALID)), field=st.sampled_from(_FIELDS), value=_json)
def test_a_valid_object_with_one_field_replaced_never_raises(kind: str, field: str, value: Any) -> None:
    spec = copy.deepcopy(VALID[kind])
    spec[field] = value
    _review(_obj(kind, spec))


@settings(max_examples=150, deadline=None)
@given(
    mesh=st.dictionaries(
        st.sampled_from(
            [*_FIELDS, "proxyListenPort", "trustDomain", "rootNamespace", "protocolDetectionTimeout"]
        ),
        _json,
        max_size=5,
    )
)
def test_arbitrary_mesh_configs_never_raise(mesh: dict) -> None:
    _review(_operator(mesh))
    _review(_mesh_configmap(yaml.safe_dump(mesh)))


# --- remembered verdicts -----------------------------------------------------------------
# The rule remembers the verdicts of small inputs that recur (route targets, host and port
# lists, exportTo lists): a verdict must depend on every input that decides it.


def _vs_routing_to(destination: dict, namespace: str = "apps") -> dict:
    spec = {"hosts": ["reviews.apps.svc.cluster.local"], "http": [{"route": [{"destination": destination}]}]}
    return _obj("VirtualService", spec, namespace=namespace)


def test_a_remembered_route_target_does_not_hide_a_problem_of_a_similar_one() -> None:
    good = {"host": "reviews.apps.svc.cluster.local", "subset": "v1", "port": {"number": 9080}}
    assert _schema(_review(_vs_routing_to(good))) == []
    assert _schema(_review(_vs_routing_to(good))) == []
    dest = ("spec", "http", 0, "route", 0, "destination")
    for changed, path, message in [
        ({"subset": "V1_"}, (*dest, "subset"), "subset name is invalid: V1_"),
        ({"port": {"number": 0}}, (*dest, "port", "number"), "port number 0 must be in the range 1..65535"),
        ({"port": {}}, (*dest, "port", "number"), "port number 0 must be in the range 1..65535"),
    ]:
        found = [
            (o.finding.path, o.finding.message) for o in _schema(_review(_vs_routing_to(good | changed)))
        ]
        assert found == [(path, message)]


def test_known_good_route_targets_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from policies._schema import common

    monkeypatch.setattr(common, "_MAX_GOOD_TARGETS", 3)
    common.GOOD_TARGETS.clear()
    for i in range(10):
        assert _schema(_review(_vs_routing_to({"host": f"svc{i}.apps.svc.cluster.local"}))) == []
        assert len(common.GOOD_TARGETS) <= 3
    found = [
        o.finding.message
        for o in _schema(_review(_vs_routing_to({"host": "svc1.apps.svc.cluster.local", "subset": "_"})))
    ]
    assert found == ["subset name is invalid: _"]


def test_the_same_problems_are_reported_each_time_an_object_is_reviewed() -> None:
    spec = {
        "hosts": ["api.example.com", "*.example.com"],
        "resolution": "DNS",
        "exportTo": [".", "apps"],
        "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}, {"number": 80, "name": "http"}],
    }
    first = [o.finding for o in _schema(_review(_obj("ServiceEntry", spec)))]
    again = [o.finding for o in _schema(_review(_obj("ServiceEntry", spec)))]
    assert first == again
    assert [(f.path, f.message) for f in first] == [
        (("spec", "ports", 1, "name"), 'service entry port name "http" already defined'),
        (("spec", "ports", 1, "number"), "service entry port 80 already defined"),
        (("spec", "hosts", 1), "hosts must be FQDN if no endpoints are provided for resolution mode DNS"),
        (("spec", "ports", 1, "protocol"), "multiple hosts provided with non-HTTP, non-TLS ports"),
        (("spec", "exportTo", 1), "duplicate entries in exportTo for entry apps"),
    ]


def test_service_entry_verdicts_depend_on_resolution_and_namespace() -> None:
    ports = [{"number": 80, "name": "http", "protocol": "HTTP", "targetPort": 8080}]
    spec = {"hosts": ["api.example.com"], "ports": ports, "exportTo": [".", "apps"]}
    none = _schema(_review(_obj("ServiceEntry", spec | {"resolution": "NONE"}, namespace="apps")))
    assert [(o.finding.path, o.action) for o in none] == [
        (("spec", "ports", 0, "targetPort"), Action.WARN),
        (("spec", "exportTo", 1), Action.DENY),
    ]
    dns = _schema(_review(_obj("ServiceEntry", spec | {"resolution": "DNS"}, namespace="other")))
    assert dns == []

"""DestinationRule (istiod `ValidateDestinationRule`, `validateTrafficPolicy` and friends,
`agent.ValidateTLS`, plus the CRD's enums)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies._schema.common import (
    FIX_HOST,
    FIX_PORT,
    Report,
    check_duration,
    check_export_to,
    check_labels,
    check_non_negative,
    check_object,
    check_percent,
    check_selector,
    check_uint32,
    enum,
    fqdn_problem,
    get,
    ip_problem,
    is_dns1123_label,
    is_int,
    port_problem,
    required,
    type_name,
    wildcard_domain_problem,
)
from webhook.findings import Path
from webhook.models import (
    ClientTLSSettings,
    DestinationRule,
    OutlierDetection,
    PortTrafficPolicy,
    TrafficPolicy,
)

TLS_MODES = ("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL")
_SIMPLE_LB = ("UNSPECIFIED", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST", "LEAST_CONN")
_H2_UPGRADE = ("DEFAULT", "DO_NOT_UPGRADE", "UPGRADE")
_PROXY_PROTOCOL_VERSIONS = ("V1", "V2")
_FIX_EMPTY_POLICY = (
    "set at least one of loadBalancer, connectionPool, outlierDetection, tls, or remove the block"
)


def validate(report: Report, spec: DestinationRule, namespace: str) -> None:
    if spec.host is None:
        report.error(
            ("spec", "host"), required(("spec", "host")), "name the service host the rule applies to"
        )
    else:
        problem = wildcard_domain_problem(spec.host)
        if problem:
            report.error(("spec", "host"), problem, FIX_HOST)
    if spec.traffic_policy is not None:
        check_traffic_policy(report, ("spec", "trafficPolicy"), spec.traffic_policy)

    names: set[str] = set()
    for i, subset in enumerate(spec.subsets):
        path = ("spec", "subsets", i)
        name = subset.name or ""
        if name in names:
            report.error((*path, "name"), f"duplicate subset names: {name}", "give each subset its own name")
        names.add(name)
        if subset.name is None:
            report.error((*path, "name"), required((*path, "name")), "name the subset (a DNS-1123 label)")
        elif not name:
            report.error((*path, "name"), "subset name cannot be empty", "name the subset (a DNS-1123 label)")
        elif not is_dns1123_label(name):
            report.error(
                (*path, "name"), f"subset name is invalid: {name}", "name the subset with a DNS-1123 label"
            )
        check_labels(report, (*path, "labels"), subset.labels)
        if subset.traffic_policy is not None:
            check_traffic_policy(report, (*path, "trafficPolicy"), subset.traffic_policy)

    selector = spec.workload_selector
    check_export_to(report, ("spec", "exportTo"), namespace, spec.export_to, selector_dr=selector is not None)
    if selector is not None:
        check_selector(report, ("spec", "workloadSelector", "matchLabels"), selector.match_labels)
        if not selector.match_labels:
            report.warn(
                ("spec", "workloadSelector"),
                "workload selector specified without labels",
                "add `matchLabels` to the selector, or remove it",
            )


def check_traffic_policy(report: Report, path: Path, policy: TrafficPolicy) -> None:
    if (
        policy.outlier_detection is None
        and policy.connection_pool is None
        and policy.load_balancer is None
        and policy.tls is None
        and not policy.port_level_settings
        and policy.tunnel is None
        and policy.proxy_protocol is None
        and policy.retry_budget is None
    ):
        report.error(path, "traffic policy must have at least one field", _FIX_EMPTY_POLICY)
        return
    if policy.tunnel is not None and policy.proxy_protocol is not None:
        report.error(
            path,
            "tunnel and proxyProtocol must not be set together",
            "keep either `tunnel` or `proxyProtocol`",
        )
        return
    _policy_blocks(report, path, policy)
    for i, port_policy in enumerate(policy.port_level_settings):
        entry = (*path, "portLevelSettings", i)
        if port_policy.port is None:
            report.error((*entry, "port"), "portTrafficPolicy must have valid port", "set `port.number`")
        if (
            port_policy.outlier_detection is None
            and port_policy.connection_pool is None
            and port_policy.load_balancer is None
            and port_policy.tls is None
        ):
            report.error(entry, "port traffic policy must have at least one field", _FIX_EMPTY_POLICY)
            continue
        _policy_blocks(report, entry, port_policy)
    if policy.tunnel is not None:
        _tunnel(report, (*path, "tunnel"), policy.tunnel)
    if policy.proxy_protocol is not None:
        enum(
            report,
            (*path, "proxyProtocol", "version"),
            get(policy.proxy_protocol, "version"),
            _PROXY_PROTOCOL_VERSIONS,
        )


def _policy_blocks(report: Report, path: Path, policy: TrafficPolicy | PortTrafficPolicy) -> None:
    """The blocks a port-level entry shares with the top level (paths built only when present:
    this runs for every policy of every DestinationRule)."""
    if policy.outlier_detection is not None:
        _outlier(report, (*path, "outlierDetection"), policy.outlier_detection)
    if policy.connection_pool is not None:
        _connection_pool(report, (*path, "connectionPool"), policy.connection_pool)
    if policy.load_balancer is not None:
        _load_balancer(report, (*path, "loadBalancer"), policy.load_balancer)
    if policy.tls is not None:
        check_client_tls(report, (*path, "tls"), policy.tls)


def _outlier(report: Report, path: Path, outlier: OutlierDetection) -> None:
    if outlier.base_ejection_time is not None:
        check_duration(report, (*path, "baseEjectionTime"), outlier.base_ejection_time)
    if outlier.consecutive_errors:
        report.warn(
            (*path, "consecutiveErrors"),
            "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or "
            "consecutive5xxErrors instead",
            "replace `consecutiveErrors` with `consecutive5xxErrors`",
        )
    if (
        not outlier.split_external_local_origin_errors
        and (outlier.consecutive_local_origin_failures or 0) > 0
    ):
        report.error(
            (*path, "consecutiveLocalOriginFailures"),
            "outlier detection consecutive local origin failures is specified, but split external local "
            "origin errors is set to false",
            "set `splitExternalLocalOriginErrors: true`, or remove `consecutiveLocalOriginFailures`",
        )
    for field, value, checker in (
        ("interval", outlier.interval, check_duration),
        ("maxEjectionPercent", outlier.max_ejection_percent, check_percent),
        ("minHealthPercent", outlier.min_health_percent, check_percent),
        ("consecutive5xxErrors", outlier.consecutive_5xx_errors, check_uint32),
        ("consecutiveGatewayErrors", outlier.consecutive_gateway_errors, check_uint32),
        ("consecutiveLocalOriginFailures", outlier.consecutive_local_origin_failures, check_uint32),
    ):
        if value is not None:
            checker(report, (*path, field), value)


def _connection_pool(report: Report, path: Path, pool: Mapping[str, Any]) -> None:
    http, tcp = pool.get("http"), pool.get("tcp")
    if http is None and tcp is None:
        report.error(
            path,
            "connection pool must have at least one field",
            "set `tcp` or `http` settings, or remove the block",
        )
        return
    if check_object(report, (*path, "http"), http) and http is not None:
        p = (*path, "http")
        for field, what in (
            ("http1MaxPendingRequests", "http1 max pending requests"),
            ("http2MaxRequests", "http2 max requests"),
            ("maxRequestsPerConnection", "max requests per connection"),
            ("maxRetries", "max retries"),
            ("maxConcurrentStreams", "max concurrent streams"),
        ):
            if field in http:
                check_non_negative(report, (*p, field), http[field], f"{what} must be non-negative")
        check_duration(report, (*p, "idleTimeout"), http.get("idleTimeout"))
        policy = http.get("h2UpgradePolicy")
        enum(report, (*p, "h2UpgradePolicy"), policy, _H2_UPGRADE)
        if policy == "UPGRADE" and http.get("useClientProtocol") is True:
            report.error(
                (*p, "useClientProtocol"),
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
                "drop `useClientProtocol`, or use another h2UpgradePolicy",
            )
    if check_object(report, (*path, "tcp"), tcp) and tcp is not None:
        p = (*path, "tcp")
        check_non_negative(
            report, (*p, "maxConnections"), tcp.get("maxConnections"), "max connections must be non-negative"
        )
        check_duration(report, (*p, "connectTimeout"), tcp.get("connectTimeout"))
        check_duration(report, (*p, "maxConnectionDuration"), tcp.get("maxConnectionDuration"))
        idle = tcp.get("idleTimeout")
        # `0s` turns the TCP idle timeout off (istio/istio#55409).
        if idle not in ("0", "0s", "0ms"):
            check_duration(report, (*p, "idleTimeout"), idle)
        keepalive = tcp.get("tcpKeepalive")
        if check_object(report, (*p, "tcpKeepalive"), keepalive) and keepalive is not None:
            check_duration(report, (*p, "tcpKeepalive", "time"), keepalive.get("time"))
            check_duration(report, (*p, "tcpKeepalive", "interval"), keepalive.get("interval"))
            check_uint32(report, (*p, "tcpKeepalive", "probes"), keepalive.get("probes"))


def _load_balancer(report: Report, path: Path, lb: Mapping[str, Any]) -> None:
    enum(report, (*path, "simple"), lb.get("simple"), _SIMPLE_LB)
    consistent = lb.get("consistentHash")
    if check_object(report, (*path, "consistentHash"), consistent) and consistent is not None:
        cookie = consistent.get("httpCookie")
        cookie_path = (*path, "consistentHash", "httpCookie")
        if check_object(report, cookie_path, cookie) and cookie is not None and not cookie.get("name"):
            report.error(
                (*path, "consistentHash", "httpCookie", "name"),
                "name required for HttpCookie",
                "name the cookie to hash on",
            )
        maglev = consistent.get("maglev")
        if check_object(report, (*path, "consistentHash", "maglev"), maglev) and maglev is not None:
            _maglev(report, (*path, "consistentHash", "maglev", "tableSize"), maglev.get("tableSize"))
    check_duration(report, (*path, "warmupDurationSecs"), lb.get("warmupDurationSecs"))
    locality = lb.get("localityLbSetting")
    if (
        check_object(report, (*path, "localityLbSetting"), locality)
        and locality is not None
        and locality.get("distribute")
        and locality.get("failover")
    ):
        report.error(
            (*path, "localityLbSetting"),
            "can not simultaneously specify 'distribute' and 'failover'",
            "keep either `distribute` or `failover`",
        )


def _maglev(report: Report, path: Path, size: Any) -> None:
    fix = "use a prime table size below 5000011, e.g. 65537"
    if size is None or size == 0:
        report.error(path, "tableSize must be set for maglev", fix)
        return
    if not is_int(size):
        report.error(path, f"must be an integer, got {type_name(size)}", fix)
        return
    if size >= 5000011:
        report.error(path, "tableSize must be less than 5000011 for maglev", fix)
    if not _is_prime(size):
        report.error(path, "tableSize must be a prime number for maglev", fix)


def _is_prime(x: int) -> bool:
    # Envoy's own test, which lets 1 pass.
    if 0 < x < 4:
        return True
    if x % 2 == 0 or x < 0:
        return False
    factor = 3
    while factor * factor <= x:
        if x % factor == 0:
            return False
        factor += 2
    return True


def _tunnel(report: Report, path: Path, tunnel: Mapping[str, Any] | None) -> None:
    if tunnel is None:
        return
    protocol = tunnel.get("protocol")
    if protocol not in (None, "", "CONNECT", "POST"):
        report.error(
            (*path, "protocol"), 'tunnel protocol must be "CONNECT" or "POST"', "use CONNECT or POST"
        )
    target = tunnel.get("targetHost")
    target = target if isinstance(target, str) else ""
    fqdn, ip = fqdn_problem(target), ip_problem(target)
    if fqdn and ip:
        report.error(
            (*path, "targetHost"),
            f"tunnel target host must be valid FQDN or IP address: {fqdn}; {ip}",
            "set `targetHost` to the proxy's DNS name or IP",
        )
    port = tunnel.get("targetPort")
    problem = port_problem(port if is_int(port) else 0)
    if problem:
        report.error((*path, "targetPort"), f"tunnel target port is invalid: {problem}", FIX_PORT)


def check_client_tls(report: Report, path: Path, tls: ClientTLSSettings | None) -> None:
    """agent.ValidateTLS, plus the CRD's mode enum."""
    if tls is None:
        return
    enum(report, (*path, "mode"), tls.mode, TLS_MODES)
    mode = tls.effective_mode
    if tls.insecure_skip_verify:
        if mode == "SIMPLE" and (tls.ca_certificates or tls.credential_name or tls.subject_alt_names):
            report.error(
                (*path, "insecureSkipVerify"),
                "cannot specify CaCertificates or CredentialName or SubjectAltNames "
                "when InsecureSkipVerify is set true",
                "drop `insecureSkipVerify` to verify the server, or drop the verification fields",
            )
        if mode == "MUTUAL" and (tls.ca_certificates or tls.subject_alt_names):
            report.error(
                (*path, "insecureSkipVerify"),
                "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true",
                "drop `insecureSkipVerify` to verify the server, or drop the verification fields",
            )
    if mode in ("SIMPLE", "MUTUAL") and tls.credential_name:
        if tls.client_certificate or tls.ca_certificates or tls.private_key or tls.ca_crl:
            report.error(
                (*path, "credentialName"),
                "cannot specify client certificates or CA certificate or CA CRL If credentialName is set",
                "keep either `credentialName` or the certificate file fields",
            )
        return
    if mode == "MUTUAL":
        fix = "set `clientCertificate` and `privateKey`, or `credentialName` (a Secret with the client cert)"
        if not tls.client_certificate:
            report.error((*path, "clientCertificate"), "client certificate required for mutual tls", fix)
        if not tls.private_key:
            report.error((*path, "privateKey"), "private key required for mutual tls", fix)

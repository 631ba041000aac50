"""Sidecar (istiod `ValidateSidecar`, `validateSidecarOutboundTrafficPolicy`, plus the CRD's
enums)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies._schema.common import (
    FIX_PORT_NAME,
    FIX_PROTOCOL,
    Report,
    check_destination,
    check_object,
    check_port,
    check_selector,
    enum,
    fqdn_problem,
    get,
    ip_problem,
    is_int,
    namespaced_host_problems,
    port_name_problem,
    protocol_problem,
    type_name,
    unix_address_problem,
)
from webhook.findings import Path
from webhook.models import IstioEgressListener, OutboundTrafficPolicy, Sidecar

OUTBOUND_MODES = ("REGISTRY_ONLY", "ALLOW_ANY")
CAPTURE_MODES = ("DEFAULT", "IPTABLES", "NONE")
_UNIX = "unix://"
_FIX_HOST = "use `namespace/dnsName`, e.g. `./*`, `istio-system/*` or `*/api.example.com`"


def validate(report: Report, spec: Sidecar, raw_spec: Mapping[str, Any]) -> None:
    selector = spec.workload_selector
    if selector is not None:
        before = len(report.findings)
        check_selector(report, ("spec", "workloadSelector", "labels"), selector.labels)
        if len(report.findings) > before:
            return
        if not selector.labels:
            report.warn(
                ("spec", "workloadSelector"),
                "sidecar: workload selector specified without labels, "
                "will be applied to all services in namespace",
                "add `labels` to the selector, or remove it",
            )
    if (
        not spec.egress
        and not spec.ingress
        and spec.outbound_traffic_policy is None
        and get(raw_spec, "inboundConnectionPool") is None
    ):
        report.error(
            ("spec",),
            "sidecar: empty configuration provided",
            "set `egress`, `ingress` or `outboundTrafficPolicy`, or delete the Sidecar",
        )
        return
    ports: set[int] = set()
    for i, listener in enumerate(spec.ingress):
        _ingress(report, ("spec", "ingress", i), listener, ports)
    _egress(report, spec)
    _outbound(report, ("spec", "outboundTrafficPolicy"), spec.outbound_traffic_policy)


def _ingress(report: Report, path: Path, listener: Mapping[str, Any], ports: set[int]) -> None:
    port = listener.get("port")
    if port is None:
        report.error((*path, "port"), "sidecar: port is required for ingress listeners", "add `port`")
        return
    if not check_object(report, (*path, "port"), port):
        return
    target = port.get("targetPort")
    if is_int(target) and target > 0:
        report.error(
            (*path, "port", "targetPort"), "targetPort has no impact on Sidecars", "remove `targetPort`"
        )
    name = port.get("name")
    if isinstance(name, str) and name:
        problem = port_name_problem(name)
        if problem:
            report.error((*path, "port", "name"), problem, FIX_PORT_NAME)
    _protocol(report, (*path, "port", "protocol"), port.get("protocol"))
    number = port.get("number", 0)
    check_port(report, (*path, "port", "number"), number)
    bind = listener.get("bind")
    if isinstance(bind, str) and bind:
        problem = ip_problem(bind)
        if problem:
            report.error((*path, "bind"), problem, "bind to an IP address")
    if is_int(number):
        if number in ports:
            report.error(
                (*path, "port", "number"),
                "sidecar: ports on IP bound listeners must be unique",
                "use each port number once",
            )
        ports.add(number)


def _protocol(report: Report, path: Path, protocol: Any) -> None:
    if protocol is None:
        return
    if not isinstance(protocol, str):
        report.error(path, f"must be a string, got {type_name(protocol)}", FIX_PROTOCOL)
        return
    problem = protocol_problem(protocol)
    if problem:
        report.error(path, problem, FIX_PROTOCOL)


def _egress(report: Report, spec: Sidecar) -> None:
    ports: set[int] = set()
    sockets: set[str] = set()
    catch_all = False
    last = len(spec.egress) - 1
    for i, listener in enumerate(spec.egress):
        path = ("spec", "egress", i)
        if listener.port is None:
            # One port-less listener catches everything else: it has to come last.
            if catch_all:
                report.error(
                    path,
                    "sidecar: egress can have only one listener with empty port",
                    "merge the port-less listeners",
                )
                continue
            if i == last:
                catch_all = True
            else:
                report.error(
                    path,
                    "sidecar: the egress listener with empty port should be the last listener in the list",
                    "move the listener without a port to the end of `egress`",
                )
        else:
            _egress_port(report, path, listener, ports, sockets)
        _egress_hosts(report, (*path, "hosts"), listener.hosts)


def _egress_port(
    report: Report, path: Path, listener: IstioEgressListener, ports: set[int], sockets: set[str]
) -> None:
    port = listener.port
    assert port is not None
    if port.target_port is not None and port.target_port > 0:
        report.error(
            (*path, "port", "targetPort"), "targetPort has no impact on Sidecars", "remove `targetPort`"
        )
    if port.name:
        problem = port_name_problem(port.name)
        if problem:
            report.error((*path, "port", "name"), problem, FIX_PORT_NAME)
    _protocol(report, (*path, "port", "protocol"), port.protocol)
    enum(report, (*path, "captureMode"), listener.capture_mode, CAPTURE_MODES)
    bind = listener.bind or ""
    number = port.number or 0
    if number == 0:
        if not bind.startswith(_UNIX):
            report.error(
                (*path, "bind"),
                "sidecar: ports with 0 value must have a unix domain socket bind address",
                "give the port a number, or bind to `unix:///absolute/path`",
            )
        else:
            problem = unix_address_problem(bind[len(_UNIX) :])
            if problem:
                report.error((*path, "bind"), problem, "bind to `unix:///absolute/path`")
        if (listener.capture_mode or "DEFAULT") not in ("DEFAULT", "NONE"):
            report.error(
                (*path, "captureMode"),
                "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners",
                "use captureMode DEFAULT or NONE",
            )
        if bind in sockets:
            report.error(
                (*path, "bind"),
                "sidecar: unix domain socket values for listeners must be unique",
                "use each socket once",
            )
        sockets.add(bind)
        return
    check_port(report, (*path, "port", "number"), number)
    if bind:
        problem = ip_problem(bind)
        if problem:
            report.error((*path, "bind"), problem, "bind to an IP address")
    if number in ports:
        report.error(
            (*path, "port", "number"),
            "sidecar: ports on IP bound listeners must be unique",
            "use each port number once",
        )
    ports.add(number)


def _egress_hosts(report: Report, path: Path, hosts: list[str]) -> None:
    if not hosts:
        report.error(
            path,
            "sidecar: egress listener must contain at least one host",
            "list hosts as `namespace/dnsName`",
        )
        return
    seen: dict[str, set[str]] = {}
    for j, host in enumerate(hosts):
        ns, sep, name = host.partition("/")
        if sep:
            names = seen.setdefault(ns, set())
            if (name != "*" and (name in names or "*" in names)) or (name == "*" and names):
                report.warn((*path, j), f"duplicated egress host: {host}", "list each host once")
            names.add(name)
        for problem in namespaced_host_problems(host, False):
            report.error((*path, j), problem, _FIX_HOST)
    if "*" in seen.get("*", ()) and len(seen) != 1:
        report.warn(
            path,
            "`*/*` host select all resources, no other hosts can be added",
            "keep `*/*` alone, or list the namespaces you need",
        )


def _outbound(report: Report, path: Path, policy: OutboundTrafficPolicy | None) -> None:
    if policy is None:
        return
    if policy.mode == "ALLOW_ANY_DYNAMIC_DNS":
        report.error(
            (*path, "mode"),
            "sidecar: ALLOW_ANY_DYNAMIC_DNS mode is only supported in MeshConfig, not in Sidecar resource",
            "use REGISTRY_ONLY (or ALLOW_ANY) in a Sidecar",
        )
    else:
        enum(report, (*path, "mode"), policy.mode, OUTBOUND_MODES)
    proxy = policy.egress_proxy
    if proxy is None:
        return
    if (policy.mode or "REGISTRY_ONLY") != "ALLOW_ANY":
        report.error(
            (*path, "egressProxy"),
            "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode",
            "remove `egressProxy`",
        )
        return
    problem = fqdn_problem(proxy.get("host") or "")
    if problem:
        report.error(
            (*path, "egressProxy", "host"), problem, "name the egress proxy's service by its DNS name"
        )
    if proxy.get("port") is None:
        report.error(
            (*path, "egressProxy", "port"), "sidecar: egress_proxy port must be non-nil", "set `port.number`"
        )
        return
    check_destination(report, (*path, "egressProxy"), proxy)

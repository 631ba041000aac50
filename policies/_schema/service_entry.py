"""ServiceEntry (istiod `ValidateServiceEntry`, plus the CRD's enums).

The hosts and the ports of a service entry are small immutable inputs that recur (most
entries declare the same few ports, and an entry is reviewed again on every apply), so their
verdicts are remembered, keyed on plain tuples: `_hosts_verdict` and `_ports_verdict` hold
those checks.
"""

from __future__ import annotations

from functools import lru_cache
from operator import itemgetter
from typing import NamedTuple

from policies._schema.common import (
    FIX_HOST,
    FIX_PORT,
    FIX_PORT_NAME,
    FIX_PROTOCOL,
    HTTP_PROTOCOLS,
    TCP_PROTOCOLS,
    TLS_PROTOCOLS,
    Report,
    check_export_to,
    check_selector,
    enum,
    fqdn_problem,
    partial_wildcard_problem,
    port_name_problem,
    port_problem,
    protocol_problem,
    q,
    required,
    subnet_problem,
    wildcard_domain_problem,
)
from policies._schema.workload_entry import check_workload_entry
from webhook.findings import Finding
from webhook.models import ServiceEntry

LOCATIONS = ("MESH_EXTERNAL", "MESH_INTERNAL")
RESOLUTIONS = ("NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS")
# DYNAMIC_DNS resolves the name each request asks for: only protocols that carry one.
_DYNAMIC_DNS_PROTOCOLS = frozenset({"http", "tls", "grpc", "http2"})

# A port as the checks read it: (name, number, targetPort, protocol). One C call reads it from
# the model's fields (an attribute read of a pydantic model goes through its `__getattr__` hook).
_PortKey = tuple[str | None, int | None, int | None, str | None]
_port_key = itemgetter("name", "number", "target_port", "protocol")


class _HostsVerdict(NamedTuple):
    findings: tuple[Finding, ...]
    not_fqdn: tuple[int, ...]  # the hosts that are not fully qualified names (wildcards, bad names)


class _PortsVerdict(NamedTuple):
    findings: tuple[Finding, ...]
    names: frozenset[str]
    first_not_http_or_tls: int | None  # the first port whose protocol is neither HTTP nor TLS
    tcp: bool  # some port's protocol runs over TCP


def validate(report: Report, spec: ServiceEntry, namespace: str) -> None:
    location = spec.location
    if location is not None and location not in LOCATIONS:
        enum(report, ("spec", "location"), location, LOCATIONS)
    resolution = spec.resolution
    if resolution is not None and resolution not in RESOLUTIONS:
        enum(report, ("spec", "resolution"), resolution, RESOLUTIONS)
    resolution = resolution or "NONE"
    selector = spec.workload_selector
    endpoints = spec.endpoints

    if selector is not None:
        check_selector(report, ("spec", "workloadSelector", "labels"), selector.labels)
        if not selector.labels:
            report.warn(
                ("spec", "workloadSelector"),
                "service entry: workload selector specified without labels, "
                "will be applied to all services in namespace",
                "add `labels` to the selector, or remove it",
            )
        if endpoints:
            report.error(
                ("spec", "workloadSelector"),
                "only one of WorkloadSelector or Endpoints is allowed in Service Entry",
                "keep either `workloadSelector` or `endpoints`",
            )

    hosts = _hosts_verdict(tuple(spec.hosts))
    report.extend(hosts.findings)
    if spec.addresses:
        _addresses(report, spec, resolution)
    ports = _ports_verdict(tuple(map(_port_key, map(vars, spec.ports))), resolution)
    report.extend(ports.findings)
    _resolution(report, spec, resolution, hosts, ports)
    if spec.export_to:
        check_export_to(report, ("spec", "exportTo"), namespace, spec.export_to, service_entry=True)


@lru_cache(maxsize=1024)
def _hosts_verdict(hosts: tuple[str, ...]) -> _HostsVerdict:
    report = Report()
    if not hosts:
        report.error(
            ("spec", "hosts"),
            "service entry must have at least one host",
            "list the host names of the service",
        )
        return _HostsVerdict(tuple(report.findings), ())
    for i, host in enumerate(hosts):
        path = ("spec", "hosts", i)
        if host == "*":
            report.error(path, "invalid host *", "name the hosts (`*.example.com` at the widest), not `*`")
            continue
        problem = wildcard_domain_problem(host)
        if problem:
            report.error(path, problem, FIX_HOST)
        partial = partial_wildcard_problem(host)
        if partial:
            report.warn(path, partial, "put the wildcard in a label of its own: `*.example.com`")
    not_fqdn = tuple(i for i, host in enumerate(hosts) if fqdn_problem(host))
    return _HostsVerdict(tuple(report.findings), not_fqdn)


def _addresses(report: Report, spec: ServiceEntry, resolution: str) -> None:
    cidr = False
    for i, address in enumerate(spec.addresses):
        cidr = cidr or "/" in address
        problem = subnet_problem(address)
        if problem:
            report.error(("spec", "addresses", i), problem, "use an IP address or a CIDR block")
    if cidr and resolution not in ("NONE", "STATIC"):
        report.error(
            ("spec", "addresses"),
            "CIDR addresses are allowed only for NONE/STATIC resolution types",
            "use single IP addresses, or resolution NONE or STATIC",
        )


@lru_cache(maxsize=1024)
def _ports_verdict(ports: tuple[_PortKey, ...], resolution: str) -> _PortsVerdict:
    report = Report()
    names: set[str] = set()
    numbers: set[int] = set()
    for i, (name, number, target_port, protocol) in enumerate(ports):
        path = ("spec", "ports", i)
        number = number if number is not None else 0
        if name is None:
            report.error((*path, "name"), required((*path, "name")), FIX_PORT_NAME)
            name = ""
        elif name in names:
            report.error(
                (*path, "name"),
                f"service entry port name {q(name)} already defined",
                "give each port its own name",
            )
        else:
            problem = port_name_problem(name)
            if problem:
                report.error((*path, "name"), problem, FIX_PORT_NAME)
        names.add(name)
        if number in numbers:
            report.error(
                (*path, "number"),
                f"service entry port {number} already defined",
                "list each port number once",
            )
        numbers.add(number)
        if target_port is not None and target_port != 0:
            problem = port_problem(target_port)
            if problem:
                report.error((*path, "targetPort"), problem, FIX_PORT)
            elif resolution == "NONE":
                report.warn(
                    (*path, "targetPort"),
                    "targetPort has no effect when resolution mode is NONE",
                    "remove `targetPort`, or use DNS or STATIC resolution",
                )
        if protocol is not None:
            problem = protocol_problem(protocol)
            if problem:
                report.error((*path, "protocol"), problem, FIX_PROTOCOL)
        problem = port_problem(number)
        if problem:
            report.error((*path, "number"), problem, FIX_PORT)
    protocols = [(protocol or "").lower() for _, _, _, protocol in ports]
    first_not_http_or_tls = next(
        (
            i
            for i, proto in enumerate(protocols)
            if proto not in HTTP_PROTOCOLS and proto not in TLS_PROTOCOLS
        ),
        None,
    )
    tcp = any(proto in TCP_PROTOCOLS for proto in protocols)
    return _PortsVerdict(tuple(report.findings), frozenset(names), first_not_http_or_tls, tcp)


def _resolution(
    report: Report, spec: ServiceEntry, resolution: str, hosts: _HostsVerdict, ports: _PortsVerdict
) -> None:
    if resolution == "NONE":
        if spec.endpoints:
            report.error(
                ("spec", "endpoints"),
                "no endpoints should be provided for resolution type none",
                "remove `endpoints`, or use STATIC or DNS resolution",
            )
        if spec.workload_selector is not None:
            report.warn(
                ("spec", "workloadSelector"),
                "workloadSelector should not be set when resolution mode is NONE",
                "use STATIC resolution with a workload selector",
            )
        return
    if resolution == "STATIC":
        for i, endpoint in enumerate(spec.endpoints):
            check_workload_entry(report, ("spec", "endpoints", i), endpoint, ports.names, allow_fqdn=False)
    elif resolution in ("DNS", "DNS_ROUND_ROBIN"):
        _dns(report, spec, resolution, hosts, ports)
    elif resolution == "DYNAMIC_DNS":
        _dynamic_dns(report, spec)

    if ports.first_not_http_or_tls is not None and len(spec.hosts) > 1:
        report.error(
            ("spec", "ports", ports.first_not_http_or_tls, "protocol"),
            "multiple hosts provided with non-HTTP, non-TLS ports",
            "split the hosts into one service entry each, or use resolution NONE",
        )


def _dns(
    report: Report, spec: ServiceEntry, resolution: str, hosts: _HostsVerdict, ports: _PortsVerdict
) -> None:
    endpoints = spec.endpoints
    if not endpoints:
        for i in hosts.not_fqdn:
            report.error(
                ("spec", "hosts", i),
                f"hosts must be FQDN if no endpoints are provided for resolution mode {resolution}",
                "list `endpoints` to resolve, or use resolution NONE for wildcard hosts",
            )
    else:
        if resolution == "DNS_ROUND_ROBIN" and len(endpoints) > 1:
            report.error(
                ("spec", "endpoints"),
                f"there must only be 0 or 1 endpoint for resolution mode {resolution}",
                "list at most one endpoint, or use DNS resolution",
            )
        for i, endpoint in enumerate(endpoints):
            check_workload_entry(report, ("spec", "endpoints", i), endpoint, ports.names)
    if ports.tcp and spec.addresses and len(spec.hosts) > 1:
        report.warn(
            ("spec", "hosts"),
            "service entry can not have more than one host specified "
            "simultaneously with address and tcp port",
            "split the hosts into one service entry each",
        )


def _dynamic_dns(report: Report, spec: ServiceEntry) -> None:
    for i, host in enumerate(spec.hosts):
        if not host.startswith("*"):
            report.error(
                ("spec", "hosts", i),
                "host must be wildcarded for resolution mode DYNAMIC_DNS",
                "use a wildcard host such as `*.example.com`, or DNS resolution for a single name",
            )
    if spec.addresses:
        report.error(
            ("spec", "addresses"),
            "addresses cannot be set for resolution mode DYNAMIC_DNS",
            "remove `addresses`: the destination comes from the requested host name",
        )
    if spec.endpoints:
        report.error(
            ("spec", "endpoints"),
            "endpoints cannot be set for resolution mode DYNAMIC_DNS",
            "remove `endpoints`: the destination comes from the requested host name",
        )
    for i, port in enumerate(spec.ports):
        if (port.protocol or "").lower() not in _DYNAMIC_DNS_PROTOCOLS:
            report.error(
                ("spec", "ports", i, "protocol"),
                "only HTTP, TLS, GRPC, and HTTP2 protocols are supported for resolution mode DYNAMIC_DNS",
                "use protocol HTTP, TLS, GRPC or HTTP2 on this port",
            )

"""ServiceEntry (istiod `ValidateServiceEntry`, plus the CRD's enums)."""

from __future__ import annotations

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
from webhook.models import ServiceEntry

LOCATIONS = ("MESH_EXTERNAL", "MESH_INTERNAL")
RESOLUTIONS = ("NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS")
# DYNAMIC_DNS resolves the name each request asks for: only protocols that carry one.
_DYNAMIC_DNS_PROTOCOLS = frozenset({"http", "tls", "grpc", "http2"})
_SPEC = ("spec",)


def validate(report: Report, spec: ServiceEntry, namespace: str) -> None:
    enum(report, ("spec", "location"), spec.location, LOCATIONS)
    enum(report, ("spec", "resolution"), spec.resolution, RESOLUTIONS)
    resolution = spec.resolution or "NONE"
    selector = spec.workload_selector

    if selector is not None:
        check_selector(report, ("spec", "workloadSelector", "labels"), selector.labels)
        if not selector.labels:
            report.warn(
                ("spec", "workloadSelector"),
                "service entry: workload selector specified without labels, "
                "will be applied to all services in namespace",
                "add `labels` to the selector, or remove it",
            )
        if spec.endpoints:
            report.error(
                ("spec", "workloadSelector"),
                "only one of WorkloadSelector or Endpoints is allowed in Service Entry",
                "keep either `workloadSelector` or `endpoints`",
            )

    _hosts(report, spec)
    _addresses(report, spec, resolution)
    port_names = _ports(report, spec, resolution)
    _resolution(report, spec, resolution, port_names)
    check_export_to(report, ("spec", "exportTo"), namespace, spec.export_to, service_entry=True)


def _hosts(report: Report, spec: ServiceEntry) -> None:
    if not spec.hosts:
        report.error(
            ("spec", "hosts"),
            "service entry must have at least one host",
            "list the host names of the service",
        )
        return
    for i, host in enumerate(spec.hosts):
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


def _ports(report: Report, spec: ServiceEntry, resolution: str) -> set[str]:
    names: set[str] = set()
    numbers: set[int] = set()
    for i, port in enumerate(spec.ports):
        path = ("spec", "ports", i)
        name = port.name
        number = port.number if port.number is not None else 0
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
        if port.target_port is not None and port.target_port != 0:
            problem = port_problem(port.target_port)
            if problem:
                report.error((*path, "targetPort"), problem, FIX_PORT)
            elif resolution == "NONE":
                report.warn(
                    (*path, "targetPort"),
                    "targetPort has no effect when resolution mode is NONE",
                    "remove `targetPort`, or use DNS or STATIC resolution",
                )
        if port.protocol is not None:
            problem = protocol_problem(port.protocol)
            if problem:
                report.error((*path, "protocol"), problem, FIX_PROTOCOL)
        problem = port_problem(number)
        if problem:
            report.error((*path, "number"), problem, FIX_PORT)
    return names


def _resolution(report: Report, spec: ServiceEntry, resolution: str, port_names: set[str]) -> None:
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
    elif resolution == "STATIC":
        for i, endpoint in enumerate(spec.endpoints):
            check_workload_entry(report, ("spec", "endpoints", i), endpoint, port_names, allow_fqdn=False)
    elif resolution in ("DNS", "DNS_ROUND_ROBIN"):
        _dns(report, spec, resolution, port_names)
    elif resolution == "DYNAMIC_DNS":
        _dynamic_dns(report, spec)

    if resolution != "NONE" and len(spec.hosts) > 1:
        for i, port in enumerate(spec.ports):
            proto = (port.protocol or "").lower()
            if proto not in HTTP_PROTOCOLS and proto not in TLS_PROTOCOLS:
                report.error(
                    ("spec", "ports", i, "protocol"),
                    "multiple hosts provided with non-HTTP, non-TLS ports",
                    "split the hosts into one service entry each, or use resolution NONE",
                )
                break


def _dns(report: Report, spec: ServiceEntry, resolution: str, port_names: set[str]) -> None:
    if not spec.endpoints:
        for i, host in enumerate(spec.hosts):
            if fqdn_problem(host):
                report.error(
                    ("spec", "hosts", i),
                    f"hosts must be FQDN if no endpoints are provided for resolution mode {resolution}",
                    "list `endpoints` to resolve, or use resolution NONE for wildcard hosts",
                )
    if resolution == "DNS_ROUND_ROBIN" and len(spec.endpoints) > 1:
        report.error(
            ("spec", "endpoints"),
            f"there must only be 0 or 1 endpoint for resolution mode {resolution}",
            "list at most one endpoint, or use DNS resolution",
        )
    for i, endpoint in enumerate(spec.endpoints):
        check_workload_entry(report, ("spec", "endpoints", i), endpoint, port_names)
    if spec.addresses and len(spec.hosts) > 1:
        for port in spec.ports:
            if (port.protocol or "").lower() in TCP_PROTOCOLS:
                report.warn(
                    ("spec", "hosts"),
                    "service entry can not have more than one host specified "
                    "simultaneously with address and tcp port",
                    "split the hosts into one service entry each",
                )
                break


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

"""WorkloadEntry, alone or as a ServiceEntry endpoint (istiod `validateWorkloadEntry`)."""

from __future__ import annotations

from collections.abc import Set

from policies._schema.common import (
    FIX_PORT,
    FIX_PORT_NAME,
    Report,
    check_labels,
    check_uint32,
    fqdn_problem,
    is_ip,
    port_name_problem,
    port_problem,
    q,
    unix_address_problem,
)
from webhook.findings import Path
from webhook.models import WorkloadEntry

UNIX_PREFIX = "unix://"
_FIX_ADDRESS = "set `address` to an IP, a DNS name or `unix:///absolute/path`"


def check_workload_entry(
    report: Report,
    path: Path,
    entry: WorkloadEntry,
    service_ports: Set[str] | None = None,
    *,
    allow_fqdn: bool = True,
) -> None:
    """`service_ports` are the port names of the enclosing ServiceEntry (None for a
    standalone WorkloadEntry); `allow_fqdn` is False for STATIC resolution."""
    addr = entry.address or ""
    if not addr:
        if not entry.network:
            report.error((*path, "address"), "address is required", _FIX_ADDRESS)
            return
        report.warn(
            (*path, "address"),
            f"address is unset with network {q(entry.network)}",
            "set `address` unless the workload is reached through its network's gateway",
        )
    unix = addr.startswith(UNIX_PREFIX)
    if unix:
        problem = unix_address_problem(addr[len(UNIX_PREFIX) :])
        if problem:
            report.error((*path, "address"), problem, _FIX_ADDRESS)
        if entry.ports:
            report.error(
                (*path, "ports"),
                f"unix endpoint {addr} must not include ports",
                "remove `ports` from a unix socket endpoint",
            )
    elif addr and not is_ip(addr):
        if not allow_fqdn:
            report.error(
                (*path, "address"),
                f"endpoint address {q(addr)} is not a valid IP address",
                "STATIC resolution needs IP endpoints; use DNS resolution for host names",
            )
        elif fqdn_problem(addr):
            report.error(
                (*path, "address"),
                f"endpoint address {q(addr)} is not a valid FQDN or an IP address",
                _FIX_ADDRESS,
            )
    for name, number in (entry.ports or {}).items():
        port_path = (*path, "ports", name)
        if service_ports is not None and name not in service_ports:
            report.error(
                port_path,
                f"endpoint port {number} is not defined by the service entry",
                "key endpoint ports by the name of a port of the service entry",
            )
        problem = port_name_problem(name)
        if problem:
            report.error(port_path, problem, FIX_PORT_NAME)
        problem = port_problem(number)
        if problem:
            report.error(port_path, problem, FIX_PORT)
    check_labels(report, (*path, "labels"), entry.labels)
    check_uint32(report, (*path, "weight"), entry.weight)
    if unix and service_ports is not None and len(service_ports) != 1:
        report.error(
            (*path, "address"),
            "exactly 1 service port required for unix endpoints",
            "give a service entry with unix socket endpoints exactly one port",
        )


def validate(report: Report, spec: WorkloadEntry) -> None:
    check_workload_entry(report, ("spec",), spec)

"""Istio's validation primitives (istio/istio pkg/config/validation/agent, pkg/config/labels,
pkg/config/protocol, pkg/config/visibility), with Istio's wording.

Each check returns Istio's message, or None when the value passes. Messages quote the way Go's
`%q` does, so they read exactly like the API server's and istiod's denials.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from webhook import durations
from webhook.findings import Finding, Path, format_path
from webhook.models import Destination
from webhook.objects import SCHEMA_RULE

_LABEL = r"[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?"
_DNS1123_LABEL = re.compile(_LABEL)
# A whole name of valid labels (at most 63 characters each), with an optional trailing dot:
# one match instead of a check per label, for names that pass.
_BOUNDED_LABEL = r"[a-zA-Z0-9](?:[-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?"
_DNS1123_NAME = re.compile(r"(?:" + _BOUNDED_LABEL + r"\.)*" + _BOUNDED_LABEL + r"\.?")
# The first label of a wildcard host: `*`, or a label with a leading `*` or `*-`.
_WILDCARD_LABEL = re.compile(r"\*|(?:\*|\*-)?" + _LABEL)
_QUALIFIED_NAME = r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_TAG_KEY = re.compile(r"(" + _LABEL + r"(?:\." + _LABEL + r")*/)?(" + _QUALIFIED_NAME + r")")
_TAG_VALUE = re.compile(r"(?:" + _QUALIFIED_NAME + r")?")
_GO_INT = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = 2**63 - 1
_OUTBOUND_SNI = re.compile(r"outbound_.([0-8].*).*")

# protocol.Parse: case-insensitive; anything else is Unsupported.
PROTOCOLS = frozenset(
    {
        "tcp",
        "udp",
        "grpc",
        "grpc-web",
        "http",
        "http_proxy",
        "http2",
        "https",
        "tls",
        "mongo",
        "redis",
        "mysql",
    }
)
HTTP_PROTOCOLS = frozenset({"http", "http2", "http_proxy", "grpc", "grpc-web"})
TLS_PROTOCOLS = frozenset({"https", "tls"})
TCP_PROTOCOLS = frozenset({"tcp", "https", "tls", "mongo", "redis", "mysql"})

FIX_HOST = "use a DNS name (`api.example.com`) or a prefix wildcard (`*.example.com`)"
FIX_PORT = "use a port number from 1 to 65535"
FIX_DURATION = "use a duration of at least 1ms with millisecond precision, e.g. `250ms` or `10s`"
FIX_PORT_NAME = "use a DNS-1123 label: lower-case letters, digits and `-`, e.g. `http-api`"
FIX_PROTOCOL = (
    "use one of HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, TLS, TCP, MONGO, REDIS, MYSQL (or leave it unset)"
)
FIX_EXPORT_TO = "list `.`, `*` or namespace names, each once; `*` and `~` stand alone"
FIX_LABELS = "use Kubernetes label syntax for keys and values, without `*`"


class Report:
    """The findings of one object, in the order Istio reports them."""

    __slots__ = ("findings",)

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def error(self, path: Path, message: str, fix: str) -> None:
        self.findings.append(Finding(SCHEMA_RULE, path, message, fix))

    def warn(self, path: Path, message: str, fix: str) -> None:
        self.findings.append(Finding(SCHEMA_RULE, path, message, fix, level="warn"))

    def extend(self, findings: tuple[Finding, ...]) -> None:
        """Findings remembered from an earlier check of the same input (they are immutable)."""
        self.findings.extend(findings)


def q(text: str) -> str:
    """Go's `%q` for a string."""
    return json.dumps(text, ensure_ascii=False)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {int: "integer", float: "number", str: "string", list: "list", dict: "object"}.get(
        type(value), type(value).__name__
    )


def required(path: Path) -> str:
    """The API server's wording for a required field that is missing."""
    return f"{_dotted(path)}: Required value"


def unsupported(path: Path, value: Any, allowed: Iterable[str]) -> str:
    """The API server's wording for a value outside an enum."""
    options = ", ".join(q(a) for a in allowed)
    shown = q(value) if isinstance(value, str) else json.dumps(value)
    return f"{_dotted(path)}: Unsupported value: {shown}: supported values: {options}"


def _dotted(path: Path) -> str:
    return format_path(path)


def enum(report: Report, path: Path, value: Any, allowed: tuple[str, ...], fix: str = "") -> None:
    if value is not None and value not in allowed:
        report.error(path, unsupported(path, value, allowed), fix or f"use one of {', '.join(allowed)}")


# --- names -----------------------------------------------------------------------------


@lru_cache(maxsize=8192)
def is_dns1123_label(value: str) -> bool:
    return len(value) <= 63 and _DNS1123_LABEL.fullmatch(value) is not None


def _is_go_int(text: str) -> bool:
    """strconv.Atoi succeeds (a sign, digits, and within int64)."""
    if _GO_INT.fullmatch(text) is None:
        return False
    return abs(int(text)) <= _INT64_MAX


def _dns_preconditions(name: str) -> str | None:
    if len(name) > 255:
        return f"domain name {q(name)} too long (max 255)"
    if not name:
        return "empty domain name not allowed"
    return None


def _dns1123_labels(domain: str) -> str | None:
    parts = domain.split(".")
    tld = parts[-1]
    if _is_go_int(tld):
        return f"domain name {q(domain)} invalid (top level domain {q(tld)} cannot be all-numeric)"
    if _DNS1123_NAME.fullmatch(domain):
        return None
    last = len(parts) - 1
    for i, label in enumerate(parts):
        # A trailing dot (`istio.io.`) is allowed.
        if i == last and label == "":
            return None
        if not is_dns1123_label(label):
            return f"domain name {q(domain)} invalid (label {q(label)} invalid)"
    return None


@lru_cache(maxsize=8192)
def fqdn_problem(name: str) -> str | None:
    """ValidateFQDN."""
    return _dns_preconditions(name) or _dns1123_labels(name)


@lru_cache(maxsize=8192)
def wildcard_domain_problem(domain: str) -> str | None:
    """ValidateWildcardDomain: a DNS name whose first label may carry a wildcard."""
    problem = _dns_preconditions(domain)
    if problem:
        return problem
    first, sep, rest = domain.partition(".")
    if len(first) > 63 or _WILDCARD_LABEL.fullmatch(first) is None:
        return f"domain name {q(domain)} invalid (label {q(first)} invalid)"
    return _dns1123_labels(rest) if sep else None


def gateway_bound_domain_problem(domain: str, sni: bool) -> str | None:
    """ValidateWildcardDomainForVirtualServiceBoundToGateway: also allows the generated
    `outbound_.<port>_._.<host>` SNI names."""
    first = domain.partition(".")[0]
    if sni and first == "outbound_" and _dns_preconditions(domain) is None:
        return None if _OUTBOUND_SNI.search(domain) else f"domain name {q(domain)} invalid"
    return wildcard_domain_problem(domain)


def partial_wildcard_problem(host: str) -> str | None:
    if "*" in host and len(host) != 1 and not host.startswith("*."):
        return f"partial wildcard {q(host)} not allowed"
    return None


@lru_cache(maxsize=4096)
def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def ip_problem(text: str) -> str | None:
    return None if is_ip(text) else f"{text} is not a valid IP"


def subnet_problem(text: str) -> str | None:
    """ValidateIPSubnet: an IP, or a CIDR block."""
    if text.count("/") == 1:
        address, _, bits = text.partition("/")
        if not bits.isdigit() or not is_ip(address):
            return f"{text} is not a valid CIDR block"
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            return f"{text} is not a valid CIDR block"
        return None
    return ip_problem(text)


def unix_address_problem(addr: str) -> str | None:
    if not addr:
        return "unix address must not be empty"
    if addr.startswith("@"):
        return None
    if not addr.startswith("/") or addr.endswith("/"):
        return f"{addr} is not an absolute path to a file"
    return None


def namespaced_host_problems(host: str, is_gateway: bool) -> list[str]:
    """ValidateNamespaceSlashWildcardHostname: Gateway and Sidecar hosts, `[ns/]dnsName`."""
    ns, sep, name = host.partition("/")
    if not sep:
        if is_gateway:
            return _host_part_problems(host, True)
        return ["host must be of form namespace/dnsName"]
    out: list[str] = []
    if not ns or not name:
        out.append("config namespace and dnsName in host entry cannot be empty")
    if ns not in ("*", ".") and (is_gateway or ns != "~") and not is_dns1123_label(ns):
        kind = "gateway" if is_gateway else "sidecar"
        out.append(f"invalid namespace value {q(ns)} in {kind}")
    out.extend(_host_part_problems(name, is_gateway))
    return out


def _host_part_problems(name: str, is_gateway: bool) -> list[str]:
    out: list[str] = []
    if name != "*" and "." not in name:
        out.append("short names (non FQDN) are not allowed")
    problem = wildcard_domain_problem(name)
    # A Gateway may also name an IP.
    if problem and not (is_gateway and is_ip(name)):
        out.append(problem)
    partial = partial_wildcard_problem(name)
    if partial:
        out.append(partial)
    return out


# --- ports, protocols, durations, percents ---------------------------------------------


def port_problem(port: int) -> str | None:
    return None if 1 <= port <= 65535 else f"port number {port} must be in the range 1..65535"


def check_port(report: Report, path: Path, port: Any) -> bool:
    """A port number field: its type, then its range. True when it passes."""
    if not is_int(port):
        report.error(path, f"must be an integer, got {type_name(port)}", FIX_PORT)
        return False
    problem = port_problem(port)
    if problem:
        report.error(path, problem, FIX_PORT)
        return False
    return True


def port_name_problem(name: str) -> str | None:
    return None if is_dns1123_label(name) else f"invalid port name: {name}"


def protocol_problem(protocol: str) -> str | None:
    """ValidateProtocol: empty means auto-detection and is allowed."""
    if protocol and protocol.lower() not in PROTOCOLS:
        return f"unsupported protocol: {protocol}"
    return None


# Durations recur too (`10s`, `30s`), and parsing them exactly is not cheap.
duration_problem = lru_cache(maxsize=4096)(durations.istio_problem)


def check_duration(report: Report, path: Path, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        report.error(path, f"must be a duration string, got {type_name(value)}", FIX_DURATION)
        return
    problem = duration_problem(value)
    if problem:
        report.error(path, problem, FIX_DURATION)


def check_percent(report: Report, path: Path, value: Any) -> None:
    if value is None:
        return
    if not is_int(value):
        report.error(path, f"must be an integer, got {type_name(value)}", "use a whole number from 0 to 100")
    elif not 0 <= value <= 100:
        report.error(path, f"percentage {value} is not in range 0..100", "use a whole number from 0 to 100")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_non_negative(report: Report, path: Path, value: Any, message: str) -> None:
    """A counter that Istio rejects below zero, with Istio's message."""
    if value is None:
        return
    if not is_int(value):
        report.error(path, f"must be an integer, got {type_name(value)}", "use a whole number")
    elif value < 0:
        report.error(path, message, "use zero or a positive number")


def check_uint32(report: Report, path: Path, value: Any) -> None:
    """An unsigned field: the API server's schema minimum."""
    if value is None:
        return
    if not is_int(value):
        report.error(path, f"must be an integer, got {type_name(value)}", "use a whole number")
    elif value < 0 or value > 4294967295:
        report.error(
            path,
            f"{_dotted(path)}: Invalid value: {value}: must be between 0 and 4294967295",
            "use zero or a positive number",
        )


# --- labels, selectors, exportTo -------------------------------------------------------


def check_labels(report: Report, path: Path, labels: Mapping[str, str] | None) -> None:
    """labels.Instance.Validate."""
    if not labels:
        return
    for key, value in labels.items():
        for problem in _label_problems(key, value):
            report.error((*path, key), problem, FIX_LABELS)


# The same few labels (app, version, istio) recur across objects: remember the verdicts.
@lru_cache(maxsize=8192)
def _label_problems(key: str, value: str) -> tuple[str, ...]:
    problems = []
    key_problem = _tag_key_problem(key)
    if key_problem:
        problems.append(key_problem)
    if _TAG_VALUE.fullmatch(value) is None:
        problems.append(f"invalid tag value: {q(value)}")
    return tuple(problems)


def _tag_key_problem(key: str) -> str | None:
    match = _TAG_KEY.fullmatch(key)
    if match is None:
        return f"invalid tag key: {q(key)}"
    prefix, name = match.group(1), match.group(2)
    if prefix and len(prefix) - 1 > 253:
        return f"invalid tag key: {q(key)} (DNS prefix is too long)"
    if len(name) > 63:
        return f"invalid tag key: {q(key)} (name is too long)"
    return None


def check_selector(report: Report, path: Path, labels: Mapping[str, str] | None) -> None:
    """Workload selector labels: no empty key, no wildcard."""
    for key, value in (labels or {}).items():
        if key == "":
            report.error(
                (*path, key), f"empty key is not supported in selector: {q(f'{key}={value}')}", FIX_LABELS
            )
        if "*" in key or "*" in value:
            report.error(
                (*path, key), f"wildcard is not supported in selector: {q(f'{key}={value}')}", FIX_LABELS
            )


def check_export_to(
    report: Report,
    path: Path,
    namespace: str,
    export_to: list[str] | None,
    *,
    service_entry: bool = False,
    selector_dr: bool = False,
) -> None:
    """validateExportTo."""
    if export_to:
        report.extend(_export_to_findings(path, namespace, tuple(export_to), service_entry, selector_dr))


# A namespace exports its objects the same way (`["."]` most often): remember each verdict.
@lru_cache(maxsize=1024)
def _export_to_findings(
    path: Path, namespace: str, export_to: tuple[str, ...], service_entry: bool, selector_dr: bool
) -> tuple[Finding, ...]:
    report = Report()
    seen: set[str] = set()
    for i, entry in enumerate(export_to):
        key = namespace if entry == "." else entry
        if key in seen:
            message = (
                f"duplicate entries in exportTo: . and current namespace {namespace}"
                if key != entry
                else f"duplicate entries in exportTo for entry {entry}"
            )
            report.error((*path, i), message, FIX_EXPORT_TO)
            continue
        if service_entry and entry == "~":
            seen.add(key)
            continue
        problem = _visibility_problem(key)
        if problem:
            report.error((*path, i), problem, FIX_EXPORT_TO)
        else:
            seen.add(key)
    if selector_dr and seen:
        if namespace in seen:
            if len(seen) > 1:
                report.error(
                    path,
                    "destination rule with workload selector cannot have multiple entries in exportTo",
                    'export it to its own namespace only: `exportTo: ["."]`',
                )
        else:
            report.error(
                path,
                "destination rule with workload selector cannot have exportTo beyond current namespace",
                'export it to its own namespace only: `exportTo: ["."]`',
            )
    if "*" in seen and len(export_to) > 1:
        report.error(
            path, "cannot have both public (*) and non-public exportTo values for a resource", FIX_EXPORT_TO
        )
    if "~" in seen and len(export_to) > 1:
        report.error(path, "cannot export service entry to no one (~) and someone", FIX_EXPORT_TO)
    return tuple(report.findings)


def _visibility_problem(value: str) -> str | None:
    if value in (".", "*"):
        return None
    if value == "~":
        return "exportTo ~ (none) is not allowed for Istio configuration objects"
    if not is_dns1123_label(value):
        return "only .,*, or a valid DNS 1123 label is allowed as exportTo entry"
    return None


# --- raw JSON access (fields the models keep as plain objects) -------------------------


# Raw objects come from JSON or YAML, so their mappings are dicts (a cheaper test than Mapping).


def get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def check_object(report: Report, path: Path, value: Any) -> bool:
    """True when `value` is an object (or absent); a type finding otherwise."""
    if value is None or isinstance(value, dict):
        return True
    report.error(path, f"must be an object, got {type_name(value)}", "write the field as a mapping")
    return False


# Route targets with nothing to report, keyed as `target_key` makes them: routes of one mesh
# name the same few targets, and a set look-up costs less than checking a target again (or a
# cached call with three arguments). Only targets that pass are kept, at most _MAX_GOOD_TARGETS.
GOOD_TARGETS: set[tuple[str | None, str | None, int | None]] = set()
_MAX_GOOD_TARGETS = 8192


def target_key(dest: Destination) -> tuple[str | None, str | None, int | None]:
    """(host, subset, port number): the number is 0 when the selector has none, None without a selector."""
    port = dest.get("port")
    return (dest.get("host"), dest.get("subset"), None if port is None else port.get("number") or 0)


def _target_ok(host: str | None, subset: str | None, port: int | None) -> bool:
    return (
        host is not None
        and host != "*"
        and wildcard_domain_problem(host) is None
        and (not subset or is_dns1123_label(subset))
        and (port is None or port_problem(port) is None)
    )


def destination_ok(dest: Destination) -> bool:
    """True when `check_destination` would report nothing."""
    key = target_key(dest)
    if key in GOOD_TARGETS:
        return True
    if not _target_ok(*key):
        return False
    if len(GOOD_TARGETS) >= _MAX_GOOD_TARGETS:
        GOOD_TARGETS.clear()
    GOOD_TARGETS.add(key)
    return True


def check_destination(report: Report, path: Path, dest: Destination | None) -> None:
    """validateDestination: a route target (VirtualService, Sidecar egress proxy)."""
    if dest is None or destination_ok(dest):
        return
    host = dest.get("host")
    if host is None:
        report.error((*path, "host"), required((*path, "host")), "name the destination service host")
    elif host == "*":
        report.error((*path, "host"), "invalid destination host *", "route to a service host, not to `*`")
    else:
        problem = wildcard_domain_problem(host)
        if problem:
            report.error((*path, "host"), problem, FIX_HOST)
    subset = dest.get("subset")
    if subset and not is_dns1123_label(subset):
        report.error(
            (*path, "subset"),
            f"subset name is invalid: {subset}",
            "name a subset of the destination rule (a DNS-1123 label)",
        )
    port = dest.get("port")
    if port is not None:
        problem = port_problem(port.get("number") or 0)
        if problem:
            report.error((*path, "port", "number"), problem, FIX_PORT)

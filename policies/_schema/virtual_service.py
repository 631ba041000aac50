"""VirtualService (istiod `ValidateVirtualService`, `validateHTTPRoute` and friends)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from policies._schema.common import (
    FIX_HOST,
    FIX_PORT,
    GOOD_TARGETS,
    Report,
    check_destination,
    check_duration,
    check_export_to,
    check_labels,
    check_object,
    duration_problem,
    fqdn_problem,
    gateway_bound_domain_problem,
    get,
    is_dns1123_label,
    is_int,
    is_ip,
    port_problem,
    q,
    subnet_problem,
    type_name,
    wildcard_domain_problem,
)
from webhook import durations
from webhook.findings import Path
from webhook.hosts import matches, subset_of
from webhook.models import (
    DESTINATION,
    HTTPMatchRequest,
    HTTPRetry,
    HTTPRoute,
    RouteDestination,
    VirtualService,
)
from webhook.objects import type_error_fix, type_error_message

# Envoy's retry-on policies (x-envoy-retry-on and x-envoy-retry-grpc-on).
RETRY_ON = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "envoy-ratelimited",
        "http3-post-connect-failure",
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)
# Status codes Go's net/http has a name for (http.StatusText != "").
_HTTP_STATUS = frozenset(
    [
        100,
        101,
        102,
        103,
        *range(200, 209),
        226,
        300,
        301,
        302,
        303,
        304,
        305,
        307,
        308,
        *range(400, 419),
        421,
        422,
        423,
        424,
        425,
        426,
        428,
        429,
        431,
        451,
        *range(500, 509),
        510,
        511,
    ]
)
_FIX_GATEWAY = "name gateways as `<namespace>/<name>` (DNS labels), or `mesh` for the sidecars"
_FIX_ROUTE = (
    "give the route a `route` (destinations), a `redirect` or a `directResponse`, and only one of them"
)
_MB = 1024 * 1024


def validate(report: Report, spec: VirtualService, namespace: str, raw_spec: Mapping[str, Any]) -> None:
    hosts, gateways, http, tls_routes, tcp_routes = spec.hosts, spec.gateways, spec.http, spec.tls, spec.tcp
    delegate = not hosts
    if delegate:
        if gateways:
            report.error(
                ("spec", "gateways"),
                "delegate virtual service must have no gateways specified",
                "remove `gateways`: the root virtual service binds the gateways",
            )
        if tls_routes:
            report.error(
                ("spec", "tls"),
                "delegate virtual service must have no tls route specified",
                "move the tls routes to a root virtual service",
            )
        if tcp_routes:
            report.error(
                ("spec", "tcp"),
                "delegate virtual service must have no tcp route specified",
                "move the tcp routes to a root virtual service",
            )

    applies_to_gateway = False
    if gateways:
        check_gateway_names(report, ("spec", "gateways"), gateways)
        applies_to_gateway = "mesh" not in gateways
    _hosts(report, spec, applies_to_gateway)

    if not http and not tcp_routes and not tls_routes:
        report.error(
            ("spec",),
            "http, tcp or tls must be provided in virtual service",
            "add `http`, `tls` or `tcp` routes",
        )
    if http:
        raw_http = raw_spec.get("http")
        if not isinstance(raw_http, list) or len(raw_http) != len(http):
            raw_http = _padded(raw_http, len(http))
        for i, (route, raw_route) in enumerate(zip(http, raw_http, strict=True)):
            raw = raw_route if isinstance(raw_route, dict) else {}
            _http_route(report, ("spec", "http", i), route, delegate, raw)
    for i, tls in enumerate(tls_routes):
        path = ("spec", "tls", i)
        if not tls.match:
            report.error(
                (*path, "match"), "TLS route must have at least one match condition", "match on `sniHosts`"
            )
        for j, match in enumerate(tls.match):
            mpath = (*path, "match", j)
            if not match.sni_hosts:
                report.error(
                    (*mpath, "sniHosts"),
                    "TLS match must have at least one SNI host",
                    "list the SNI host names to match",
                )
            for k, sni in enumerate(match.sni_hosts):
                _sni_host(report, (*mpath, "sniHosts", k), sni, spec)
            _l4_match(
                report, mpath, match.destination_subnets, match.port, match.source_labels, match.gateways
            )
        if not tls.route:
            report.error(
                (*path, "route"), "TLS route is required", "add a `route` with at least one destination"
            )
        _destinations(report, path, "route", tls.route)
    for i, tcp in enumerate(tcp_routes):
        path = ("spec", "tcp", i)
        for j, match in enumerate(tcp.match):
            _l4_match(
                report,
                (*path, "match", j),
                match.destination_subnets,
                match.port,
                match.source_labels,
                match.gateways,
            )
        if not tcp.route:
            report.error(
                (*path, "route"), "TCP route is required", "add a `route` with at least one destination"
            )
        _destinations(report, path, "route", tcp.route)
    if spec.export_to:
        check_export_to(report, ("spec", "exportTo"), namespace, spec.export_to)


def _padded(raw: Any, length: int) -> list[Any]:
    """The raw entries of a list the model holds `length` of (None where there are fewer)."""
    entries = raw if isinstance(raw, list) else []
    return [entries[i] if i < len(entries) else None for i in range(length)]


def check_gateway_names(report: Report, path: Path, names: Sequence[str]) -> None:
    """validateGatewayNames: `ns/name`, `mesh`, or a bare DNS name (the legacy dotted form warns)."""
    for i, warning, message, fix in _gateway_names_problems(tuple(names)):
        if warning:
            report.warn((*path, i), message, fix)
        else:
            report.error((*path, i), message, fix)


# A mesh binds its routes to a few gateway lists: one look-up for a list instead of one per name.
@lru_cache(maxsize=1024)
def _gateway_names_problems(names: tuple[str, ...]) -> tuple[tuple[int, bool, str, str], ...]:
    """(index, is a warning, message, fix) of each problem with a list of gateway names."""
    return tuple(
        (i, warning, message, fix)
        for i, name in enumerate(names)
        for warning, message, fix in _gateway_name_problems(name)
    )


# The same few gateway names recur across objects: remember each one's verdict.
@lru_cache(maxsize=4096)
def _gateway_name_problems(name: str) -> tuple[tuple[bool, str, str], ...]:
    """(is a warning, message, fix) of each problem with one gateway name, in Istio's order."""
    ns, sep, gateway = name.partition("/")
    problems: list[tuple[bool, str, str]] = []
    if not sep:
        if "." in name:
            parts = name.split(".")
            problems.append(
                (
                    True,
                    f"using legacy gatewayName format {q(name)}; prefer the <namespace>/<name> format: "
                    f"{q(parts[1] + '/' + parts[0])}",
                    f"write `{parts[1]}/{parts[0]}`",
                )
            )
        problem = fqdn_problem(name)
        if problem:
            problems.append((False, problem, _FIX_GATEWAY))
        return tuple(problems)
    if not ns or not gateway:
        problems.append((False, "config namespace and gateway name cannot be empty", _FIX_GATEWAY))
    if not is_dns1123_label(ns):
        problems.append((False, f"invalid value for namespace: {q(ns)}", _FIX_GATEWAY))
    if not is_dns1123_label(gateway):
        problems.append((False, f"invalid value for gateway name: {q(gateway)}", _FIX_GATEWAY))
    return tuple(problems)


def _hosts(report: Report, spec: VirtualService, applies_to_gateway: bool) -> None:
    sni = False
    if applies_to_gateway:
        sni = any(match.sni_hosts for tls in spec.tls for match in tls.match)
    for i, message, fix in _host_problems(tuple(spec.hosts), applies_to_gateway, sni):
        report.error(("spec", "hosts", i), message, fix)


# The hosts of a virtual service are a pure input that recurs (every update of the object
# repeats them): remember the verdict of each list.
@lru_cache(maxsize=1024)
def _host_problems(
    hosts: tuple[str, ...], applies_to_gateway: bool, sni: bool
) -> tuple[tuple[int, str, str], ...]:
    """(index, message, fix) of each problem with the hosts, in Istio's order."""
    problems: list[tuple[int, str, str]] = []
    for i, host in enumerate(hosts):
        if applies_to_gateway:
            problem = gateway_bound_domain_problem(host, sni)
        else:
            problem = wildcard_domain_problem(host)
        if problem:
            # An IP is a valid host too.
            if not is_ip(host):
                problems.append((i, problem, FIX_HOST))
        elif not applies_to_gateway and host == "*":
            problems.append(
                (
                    i,
                    "wildcard host * is not allowed for virtual services bound to the mesh gateway",
                    "name the hosts the routes are for, or bind the virtual service to gateways only",
                )
            )
    if problems:
        return tuple(problems)
    # Without a wildcard two hosts overlap only when they are equal.
    if not any(host.startswith("*") for host in hosts) and len(set(hosts)) == len(hosts):
        return ()
    for i in range(len(hosts)):
        for j in range(i + 1, len(hosts)):
            if matches(hosts[i], hosts[j]):
                problems.append(
                    (
                        j,
                        f"duplicate hosts in virtual service: {hosts[i]} & {hosts[j]}",
                        "list each host once; a wildcard already covers the names under it",
                    )
                )
    return tuple(problems)


def _sni_host(report: Report, path: Path, sni: str, spec: VirtualService) -> None:
    # istiod treats a VirtualService without `mesh` in its gateways as gateway-bound here.
    if "mesh" not in (spec.gateways or ()):
        problem = gateway_bound_domain_problem(sni, True)
    else:
        problem = wildcard_domain_problem(sni)
    if problem:
        if is_ip(sni):
            report.warn(
                path,
                f"using an IP address ({q(sni)}) goes against SNI spec and most clients do not support this",
                "match on a host name",
            )
        else:
            report.error(path, problem, FIX_HOST)
        return
    if not any(subset_of(sni, host) for host in spec.hosts):
        report.error(
            path,
            f"SNI host {q(sni)} is not a compatible subset of any of the virtual service hosts: "
            f"[{', '.join(spec.hosts)}]",
            "match only SNI names covered by the virtual service's hosts",
        )


def _l4_match(
    report: Report,
    path: Path,
    subnets: list[str] | None,
    port: int | None,
    source_labels: Mapping[str, str] | None,
    gateways: list[str] | None,
) -> None:
    for k, subnet in enumerate(subnets or ()):
        problem = subnet_problem(subnet)
        if problem:
            report.error((*path, "destinationSubnets", k), problem, "use an IP address or a CIDR block")
    if port:
        problem = port_problem(port)
        if problem:
            report.error((*path, "port"), problem, FIX_PORT)
    check_labels(report, (*path, "sourceLabels"), source_labels)
    if gateways:
        check_gateway_names(report, (*path, "gateways"), gateways)


def _http_route(report: Report, path: Path, route: HTTPRoute, delegate: bool, raw: Mapping[str, Any]) -> None:
    # This runs for every route of every object and most fields are absent: validators run only
    # for fields that are present, and sub-paths are built only for a finding.
    routes = route.get("route")
    redirect = route.get("redirect")
    direct_response = route.get("directResponse")
    mirror = route.get("mirror")
    mirrors = route.get("mirrors")
    # A route with destinations and nothing that excludes them has no conflict to report.
    if (
        not routes
        or redirect is not None
        or direct_response is not None
        or route.get("delegate") is not None
        or (mirrors and mirror is not None)
    ):
        _conflicts(report, path, route, delegate)
    matches = route.get("match")
    # uri and headers are not modelled, so most matches are empty here.
    if matches and any(matches):
        _http_matches(report, path, matches)
    cors = raw.get("corsPolicy")
    if cors is not None and check_object(report, (*path, "corsPolicy"), cors) and "maxAge" in cors:
        _max_age(report, (*path, "corsPolicy", "maxAge"), cors["maxAge"])
    fault = route.get("fault")
    if fault is not None:
        _fault(report, (*path, "fault"), fault)
    if "mirrorPercentage" in raw:
        _mirror_percentage(report, (*path, "mirrorPercentage"), raw["mirrorPercentage"], "mirror_percentage")
    if mirror is not None:
        check_destination(report, (*path, "mirror"), mirror)
    if mirrors:
        for k, entry in enumerate(mirrors):
            _mirror(report, (*path, "mirrors", k), entry)
    if redirect is not None:
        _redirect(report, path, redirect)
    if direct_response is not None:
        _direct_response(report, path, direct_response)
    retries = route.get("retries")
    if retries is not None:
        _retries(report, path, retries, raw.get("retries"))
    rewrite = route.get("rewrite")
    if rewrite is not None:
        _rewrite(report, path, rewrite)
    if routes:
        _destinations(report, path, "route", routes)
    timeout = route.get("timeout")
    if timeout is not None and duration_problem(timeout):
        check_duration(report, (*path, "timeout"), timeout)


def _http_matches(report: Report, path: Path, matches: list[HTTPMatchRequest]) -> None:
    for j, match in enumerate(matches):
        port = match.get("port")
        source_labels = match.get("sourceLabels")
        gateways = match.get("gateways")
        if port or source_labels or gateways:
            _l4_match(report, (*path, "match", j), None, port, source_labels, gateways)
        namespace = match.get("sourceNamespace")
        if namespace and not is_dns1123_label(namespace):
            report.error(
                (*path, "match", j, "sourceNamespace"),
                f"sourceNamespace match {namespace} is invalid",
                "use a namespace name",
            )


def _conflicts(report: Report, path: Path, route: HTTPRoute, delegate: bool) -> None:
    routes = route.get("route")
    redirect = route.get("redirect")
    direct_response = route.get("directResponse")
    fault = route.get("fault")
    rewrite = route.get("rewrite")
    if route.get("delegate") is not None:
        if not delegate:
            # A root route hands the request to the delegate: it may not route it itself.
            name = route.get("name")
            label = f" {name}" if name else ""
            if redirect is not None:
                report.error(
                    (*path, "redirect"),
                    f"root HTTP route{label} must not specify redirect",
                    "remove `redirect` or `delegate`",
                )
            if routes:
                report.error(
                    (*path, "route"),
                    f"root HTTP route{label} must not specify route",
                    "remove `route` or `delegate`",
                )
            return
        report.error(
            (*path, "delegate"),
            "delegate HTTP route cannot contain delegate",
            "delegation is one level deep: remove `delegate`",
        )
    if redirect is not None:
        if routes:
            report.error((*path, "route"), "HTTP route cannot contain both route and redirect", _FIX_ROUTE)
        if fault is not None:
            report.error((*path, "fault"), "HTTP route cannot contain both fault and redirect", _FIX_ROUTE)
        if rewrite is not None:
            report.error(
                (*path, "rewrite"), "HTTP route rule cannot contain both rewrite and redirect", _FIX_ROUTE
            )
        if direct_response is not None:
            report.error(
                (*path, "directResponse"),
                "HTTP route rule cannot contain both direct_response and redirect",
                _FIX_ROUTE,
            )
    elif direct_response is not None:
        if routes:
            report.error(
                (*path, "route"), "HTTP route cannot contain both route and direct_response", _FIX_ROUTE
            )
        if fault is not None:
            report.error(
                (*path, "fault"), "HTTP route cannot contain both fault and direct_response", _FIX_ROUTE
            )
        if rewrite is not None:
            report.error(
                (*path, "rewrite"),
                "HTTP route rule cannot contain both rewrite and direct_response",
                _FIX_ROUTE,
            )
    elif not routes:
        report.error(path, "HTTP route, redirect or direct_response is required", _FIX_ROUTE)
    if route.get("mirrors") and route.get("mirror") is not None:
        report.error(
            (*path, "mirrors"),
            "HTTP route cannot contain both mirror and mirrors",
            "keep either `mirror` or `mirrors`",
        )


def _destinations(report: Report, path: Path, field: str, destinations: list[RouteDestination]) -> None:
    """The destinations at `path` + `field` (the caller's path is extended only for a finding)."""
    # This runs for every route: a first pass without indexes (and with `target_key` inlined)
    # settles the usual case, known-good targets with no negative weight; anything else is
    # checked again in full, in order.
    total = 0
    for dest in destinations:
        target = dest.get("destination")
        if target is None:
            break
        port = target.get("port")
        key = (target.get("host"), target.get("subset"), None if port is None else port.get("number") or 0)
        if key not in GOOD_TARGETS:
            break
        weight = dest.get("weight")
        if weight:
            if weight < 0:
                break
            total += weight
    else:
        if total == 0 and len(destinations) > 1:
            _total_weight_zero(report, path, field)
        return
    _check_destinations(report, path, field, destinations)


def _check_destinations(report: Report, path: Path, field: str, destinations: list[RouteDestination]) -> None:
    total = 0
    for k, dest in enumerate(destinations):
        target = dest.get("destination")
        if target is None:
            report.error(
                (*path, field, k, "destination"), "destination is required", "set `destination.host`"
            )
        else:
            check_destination(report, (*path, field, k, "destination"), target)
        weight = dest.get("weight") or 0
        if weight < 0:
            report.error((*path, field, k, "weight"), f"weight {weight} < 0", "use weights from 0 to 100")
        total += weight
    if total == 0 and len(destinations) > 1:
        _total_weight_zero(report, path, field)


def _total_weight_zero(report: Report, path: Path, field: str) -> None:
    report.error(
        (*path, field), "total destination weight = 0", "give the destinations weights that add up to 100"
    )


def _retries(report: Report, route_path: Path, retries: HTTPRetry, raw: Any) -> None:
    """The route's `retries` (its path is built only for a finding)."""
    attempts = retries.get("attempts") or 0
    per_try_timeout = retries.get("perTryTimeout")
    retry_on = retries.get("retryOn")
    if attempts <= 0:
        if attempts < 0:
            report.error(
                (*route_path, "retries", "attempts"),
                "attempts cannot be negative",
                "use 0 to disable retries, or a positive count",
            )
        elif per_try_timeout is not None or retry_on or get(raw, "retryRemoteLocalities") is not None:
            report.error(
                (*route_path, "retries"),
                "http retry policy configured when attempts are set to 0 (disabled)",
                "set `attempts` to the number of retries, or remove the other retry fields",
            )
    if per_try_timeout is not None and duration_problem(per_try_timeout):
        check_duration(report, (*route_path, "retries", "perTryTimeout"), per_try_timeout)
    if isinstance(raw, dict) and "backoff" in raw:
        backoff = raw["backoff"]
        if backoff is not None:
            check_duration(report, (*route_path, "retries", "backoff"), backoff)
    if retry_on:
        for token in _invalid_retry_on(retry_on):
            report.error(
                (*route_path, "retries", "retryOn"),
                f"{q(token)} is not a valid retryOn policy",
                "use a comma-separated list (no spaces) of Envoy retry policies or HTTP status codes",
            )


# A mesh uses a handful of retryOn lists: remember each one's verdict.
@lru_cache(maxsize=1024)
def _invalid_retry_on(retry_on: str) -> tuple[str, ...]:
    """The tokens of a retryOn list that are neither an Envoy policy nor an HTTP status code."""
    return tuple(
        token
        for token in retry_on.split(",")
        if token not in RETRY_ON and _status_code(token) not in _HTTP_STATUS
    )


def _status_code(token: str) -> int:
    """strconv.Atoi, 0 when it fails."""
    text = token[1:] if token[:1] in "+-" else token
    if not text.isascii() or not text.isdigit():
        return 0
    return -int(text) if token.startswith("-") else int(text)


def _max_age(report: Report, path: Path, value: Any) -> None:
    check_duration(report, path, value)
    if isinstance(value, str):
        try:
            ns = durations.parse(value)
        except durations.DurationError:
            return
        if ns % 1_000_000_000:
            report.error(
                path,
                "max_age duration is accurate only to seconds precision",
                "use whole seconds, e.g. `24h`",
            )


def _fault(report: Report, path: Path, fault: Mapping[str, Any] | None) -> None:
    if fault is None:
        return
    abort, delay = fault.get("abort"), fault.get("delay")
    if abort is None and delay is None:
        report.error(
            path,
            "HTTP fault injection must have an abort and/or a delay",
            "add `abort` or `delay`, or remove `fault`",
        )
    if check_object(report, (*path, "abort"), abort) and abort is not None:
        _percentage(report, (*path, "abort", "percentage"), abort.get("percentage"))
        if "grpcStatus" in abort:
            pass
        elif "http2Error" in abort:
            report.error(
                (*path, "abort", "http2Error"),
                "HTTP/2 abort fault injection not supported yet",
                "abort with `httpStatus`",
            )
        elif "httpStatus" in abort:
            _http_status(report, (*path, "abort", "httpStatus"), abort.get("httpStatus"))
        else:
            report.warn(
                (*path, "abort"),
                "abort configured, but error type not set",
                "set `httpStatus` or `grpcStatus`",
            )
    if check_object(report, (*path, "delay"), delay) and delay is not None:
        _percentage(report, (*path, "delay", "percentage"), delay.get("percentage"))
        if "fixedDelay" in delay:
            check_duration(report, (*path, "delay", "fixedDelay"), delay.get("fixedDelay"))
        elif "exponentialDelay" in delay:
            check_duration(report, (*path, "delay", "exponentialDelay"), delay.get("exponentialDelay"))
            report.error(
                (*path, "delay", "exponentialDelay"), "exponentialDelay not supported yet", "use `fixedDelay`"
            )


def _percentage(report: Report, path: Path, percentage: Any) -> None:
    value = get(percentage, "value")
    if value is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        report.error(
            (*path, "value"), f"must be a number, got {type_name(value)}", "use a number from 0 to 100"
        )
    elif value < 0 or value > 100 or 0 < value < 0.0001:
        report.error(
            (*path, "value"),
            f"percentage {value} is neither 0.0, nor in range [0.0001, 100.0]",
            "use a number from 0.0001 to 100, or 0",
        )


def _mirror_percentage(report: Report, path: Path, percentage: Any, label: str) -> None:
    value = get(percentage, "value")
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    if value > 100:
        report.error(
            (*path, "value"),
            f"{label} must have a max value of 100 (it has {value:f})",
            "use a number from 0 to 100",
        )
    if value < 0:
        report.error(
            (*path, "value"),
            f"{label} must have a min value of 0 (it has {value:f})",
            "use a number from 0 to 100",
        )


def _mirror(report: Report, path: Path, mirror: Any) -> None:
    if not check_object(report, path, mirror):
        return
    if mirror is None:
        report.error(path, "mirror cannot be null", "remove the empty entry")
        return
    raw_dest = mirror.get("destination")
    if raw_dest is None:
        report.error((*path, "destination"), "destination is required for mirrors", "set `destination.host`")
        return
    if not check_object(report, (*path, "destination"), raw_dest):
        return
    try:
        dest = DESTINATION.validate_python(raw_dest)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            report.error((*path, "destination", *err["loc"]), type_error_message(err), type_error_fix(err))
        return
    check_destination(report, (*path, "destination"), dest)
    _mirror_percentage(report, (*path, "percentage"), mirror.get("percentage"), "mirror percentage")


def _redirect(report: Report, route_path: Path, redirect: Mapping[str, Any]) -> None:
    """The route's `redirect` (its path is built only for a finding)."""
    if not (redirect.get("uri") or redirect.get("authority") or redirect.get("scheme")) and not (
        "port" in redirect or "derivePort" in redirect
    ):
        report.error(
            (*route_path, "redirect"),
            "redirect must specify URI, authority, scheme, or port",
            "redirect with `uri`, `authority`, `scheme` or `port`",
        )
        return
    code = redirect.get("redirectCode")
    if is_int(code) and code != 0 and not 300 <= code <= 399:
        report.error(
            (*route_path, "redirect", "redirectCode"),
            f"{code} is not a valid redirect code, must be 3xx",
            "use a 3xx code such as 301",
        )
        return
    scheme = redirect.get("scheme")
    if scheme not in (None, "", "http", "https"):
        report.error(
            (*route_path, "redirect", "scheme"),
            'invalid redirect scheme, must be "http" or "https"',
            'use "http" or "https"',
        )
        return
    port = redirect.get("port")
    if is_int(port) and port > 0:
        problem = port_problem(port)
        if problem:
            report.error((*route_path, "redirect", "port"), problem, FIX_PORT)


def _direct_response(report: Report, route_path: Path, response: Mapping[str, Any]) -> None:
    """The route's `directResponse` (its path is built only for a finding)."""
    body = response.get("body")
    if isinstance(body, dict):
        text = body.get("string") or body.get("bytes")
        if isinstance(text, str) and len(text) > 100 * 1024:
            if len(text) > _MB:
                report.error(
                    (*route_path, "directResponse", "body"),
                    "large direct_responses may impact control plane performance, must be less than 1MB",
                    "serve large bodies from a service",
                )
            else:
                report.warn(
                    (*route_path, "directResponse", "body"),
                    "large direct_responses may impact control plane performance",
                    "serve large bodies from a service",
                )
    status = response.get("status", 0)
    # A plain int in range passes: anything else gets the full check.
    if not (type(status) is int and 200 <= status <= 600):
        _http_status(report, (*route_path, "directResponse", "status"), status)


def _http_status(report: Report, path: Path, status: Any) -> None:
    if not is_int(status):
        report.error(
            path, f"must be an integer, got {type_name(status)}", "use an HTTP status code from 200 to 599"
        )
    elif status < 200 or status > 600:
        report.error(
            path, f"HTTP status {status} is not in range 200-599", "use an HTTP status code from 200 to 599"
        )


def _rewrite(report: Report, route_path: Path, rewrite: Mapping[str, Any]) -> None:
    """The route's `rewrite` (its path is built only for a finding)."""
    regex = rewrite.get("uriRegexRewrite")
    uri = rewrite.get("uri")
    if regex is None and (uri or rewrite.get("authority")):
        return
    fix = "rewrite with one of `uri` or `uriRegexRewrite`, and/or `authority`"
    path = (*route_path, "rewrite")
    if uri and regex is not None:
        report.error(path, "rewrite may only contain one of URI or UriRegexRewrite", fix)
        return
    if not uri and regex is None and not rewrite.get("authority"):
        report.error(
            path,
            "rewrite must specify at least one of URI, UriRegexRewrite, or authority. "
            "Only one of URI or UriRegexRewrite may be specified",
            fix,
        )
        return
    if not get(regex, "match") or not get(regex, "rewrite"):
        report.error(
            (*path, "uriRegexRewrite"),
            "UriRegexRewrite has errors: "
            "UriRegexRewrite requires both Rewrite and Match fields to be specified",
            "set both `match` and `rewrite`",
        )

"""`wildcard-host-egress-gateway`: wildcard external hosts only through the egress gateway.

A wildcard host (`*.wikipedia.org`) lets a workload reach any matching name; the
organisation allows that only when the traffic leaves through the egress gateway (Istio's
documented shape: istio.io egress/wildcard-egress-hosts). Checked on two kinds:
- a MESH_EXTERNAL ServiceEntry with a wildcard host needs a VirtualService in the inventory
  that covers the host where the ServiceEntry is visible, is bound to `mesh` and to a
  Gateway selecting the egress gateway, and sends every port's mesh traffic to the egress
  gateway service (a port left out goes direct);
- a VirtualService with a wildcard host bound to `mesh` must send every mesh route there.
Gateways may use wildcard hosts: that is what going through the gateway means.
The other direction too: a change to a VirtualService or Gateway (an update, a delete)
that leaves a wildcard ServiceEntry, compliant before it, going direct is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from policies import _mesh_routes as R
from webhook import hosts as H
from webhook.context import Context
from webhook.findings import Finding, format_path
from webhook.inventory import InventoryView, hosts_of
from webhook.models import Gateway, ServiceEntry, ServicePort, VirtualService
from webhook.objects import Resource, ResourceKey
from webhook.policy import MeshSettings
from webhook.registry import rule

RULE_ID = "wildcard-host-egress-gateway"


@rule(
    id=RULE_ID,
    title="Wildcard external hosts are reached only through the egress gateway",
    kinds=("ServiceEntry", "VirtualService", "Gateway"),
    remediation=(
        "Route the wildcard host through the egress gateway: a Gateway that selects the egress gateway, "
        "and a VirtualService bound to mesh and to that Gateway whose mesh routes send every port of the "
        "host to the egress gateway service (plus a DestinationRule for the gateway subset). Apply them "
        "before the ServiceEntry."
    ),
)
def check(ctx: Context) -> Iterator[Finding]:
    spec = ctx.resource.spec
    if isinstance(spec, ServiceEntry):
        # Most objects name no wildcard host: that is asked here, before any generator is made.
        if ctx.operation != "DELETE" and spec.is_mesh_external and _any_wildcard(spec.hosts):
            yield from _check_service_entry(ctx, spec)
        return
    if (
        ctx.operation != "DELETE"
        and isinstance(spec, VirtualService)
        and _any_wildcard(spec.hosts)
        and R.binds_mesh(ctx.resource)
    ):
        yield from _check_virtual_service(ctx, spec)
    yield from _left_direct(ctx)


def _any_wildcard(hosts: list[str]) -> bool:
    for h in hosts:  # noqa: SIM110 - a loop: any() over a generator costs more, on every review
        if H.is_wildcard(h):
            return True
    return False


# --- ServiceEntry ------------------------------------------------------------------------


def _check_service_entry(ctx: Context, spec: ServiceEntry) -> Iterator[Finding]:
    """A MESH_EXTERNAL ServiceEntry with a wildcard host (`check` asked)."""
    scope = R.export_scope(ctx.resource)
    if scope == frozenset():
        return  # exported to no one (`~`): no sidecar can reach it
    for i, raw_host in enumerate(spec.hosts):
        host = raw_host.lower()
        if H.is_wildcard(host):
            yield from _check_wildcard_host(ctx, spec, i, host, scope)


def _check_wildcard_host(
    ctx: Context, spec: ServiceEntry, index: int, host: str, scope: frozenset[str] | None
) -> Iterator[Finding]:
    inv, mesh, res = ctx.inventory, ctx.mesh, ctx.resource
    domain = mesh.cluster_domain
    where = f"wildcard host {host} of ServiceEntry {_name(res)}"
    path = ("spec", "hosts", index)

    candidates = R.mesh_virtual_services(inv, host, domain, lambda vs: _overlaps(R.export_scope(vs), scope))
    if not candidates:
        yield Finding(
            RULE_ID,
            path,
            f"{where} is reached directly by sidecars: {_why_no_vs(ctx, host, scope)}",
            _egress_fix(res, spec, host, mesh),
        )
        return

    covered: frozenset[str] | None = frozenset()
    for vs in candidates:
        vs_scope = R.export_scope(vs)
        covered = None if covered is None or vs_scope is None else covered | vs_scope
    if not R.scope_covers(covered, scope):
        names = ", ".join(
            f"{_name(vs)} (exportTo {R.describe_scope(R.export_scope(vs))})" for vs in candidates
        )
        yield Finding(
            RULE_ID,
            path,
            f"{where} is visible in {R.describe_scope(scope)} but only VirtualService {names} routes it "
            "to the egress gateway: sidecars elsewhere reach it directly",
            "Export the VirtualService wherever the ServiceEntry is visible, or narrow the ServiceEntry's "
            "exportTo to the namespaces the VirtualService covers.",
        )

    for vs in candidates:
        problem = _egress_binding_problem(ctx, vs, host)
        if problem:
            yield Finding(
                RULE_ID,
                path,
                f"{where}: VirtualService {_name(vs)} {problem}",
                _egress_fix(res, spec, host, mesh),
            )

    for j, port in enumerate(spec.ports):
        if port.number is None:
            continue
        for vs in candidates:
            problem = _port_problem(ctx, vs, host, port)
            if problem:
                yield Finding(
                    RULE_ID,
                    ("spec", "ports", j),
                    f"port {port.number} ({_protocol(port)}) of {where} goes direct: {problem}",
                    _port_fix(vs, host, port, mesh),
                )


def _overlaps(a: frozenset[str] | None, b: frozenset[str] | None) -> bool:
    if a is None:
        return b is None or bool(b)
    if b is None:
        return bool(a)
    return bool(a & b)


def _why_no_vs(ctx: Context, host: str, scope: frozenset[str] | None) -> str:
    domain = ctx.mesh.cluster_domain
    notes = []
    for vs in ctx.inventory.matching("VirtualService", host):
        if R.covering_host(vs, host, domain) is None:
            continue
        if not R.binds_mesh(vs):
            gws = ", ".join(vs.spec.gateways or [])  # type: ignore[attr-defined]
            notes.append(
                f"VirtualService {_name(vs)} covers it but is bound only to gateways [{gws}], not mesh"
            )
        else:
            notes.append(
                f"VirtualService {_name(vs)} covers it but is exported to "
                f"{R.describe_scope(R.export_scope(vs))}, not where the ServiceEntry is visible"
            )
    lead = "no VirtualService bound to mesh covers it"
    return "; ".join([lead, *notes])


def _egress_binding_problem(ctx: Context, vs: Resource, host: str) -> str:
    """Why `vs` is not bound to an egress Gateway that takes `host` ("" when it is)."""
    label = R.egress_gateway_label(ctx.mesh)
    notes = []
    for key in R.top_gateways(vs):
        if key == R.MESH_KEY:
            continue
        gw = ctx.inventory.get(("Gateway", key[0], key[1]))
        ref = f"{key[0]}/{key[1]}"
        if gw is None or not isinstance(gw.spec, Gateway):
            notes.append(f"Gateway {ref} does not exist")
            continue
        if not R.selects_egress_gateway(gw.spec, ctx.mesh):
            sel = ", ".join(f"{k}={v}" for k, v in sorted((gw.spec.selector or {}).items())) or "nothing"
            notes.append(f"Gateway {ref} selects {sel}, not the egress gateway ({label})")
            continue
        if any(R.server_binds(s, gw.namespace, vs.namespace, host) for s in gw.spec.servers):
            return ""
        notes.append(f"Gateway {ref} has no server for {host}")
    detail = f" ({'; '.join(notes)})" if notes else ""
    return f"is not bound to a Gateway that selects the egress gateway ({label}) and serves {host}{detail}"


def _port_problem(ctx: Context, vs: Resource, host: str, port: ServicePort) -> str:
    mesh = ctx.mesh
    number = port.number
    assert number is not None
    routes = R.routes_for(
        ctx.inventory, vs, host, number, R.route_classes(port.protocol), R.MESH_KEY, mesh.cluster_domain
    )
    if not routes.dests:
        return f"VirtualService {_name(vs)} has no mesh route for port {number}"
    wrong = [d for d in routes.dests if not R.is_egress_gateway_host(mesh, d.host)]
    if wrong:
        d = wrong[0]
        return (
            f"{R.mesh_route_text(d, vs)} sends it to {d.host}, "
            f"not to the egress gateway ({', '.join(mesh.egress_gateway.hosts)})"
        )
    if routes.falls_through:
        return f"part of its traffic matches no mesh route of VirtualService {_name(vs)} and goes direct"
    return ""


# --- VirtualService ----------------------------------------------------------------------


def _check_virtual_service(ctx: Context, spec: VirtualService) -> Iterator[Finding]:
    """A VirtualService bound to mesh with a wildcard host (`check` asked)."""
    res, mesh = ctx.resource, ctx.mesh
    domain = mesh.cluster_domain
    wild = [H.resolve(h, res.namespace, domain) for h in spec.hosts if H.is_wildcard(h)]
    # Wildcards inside the cluster domain name mesh services, never external ones.
    wild = [h for h in wild if not h.endswith("." + domain)]
    if not wild:
        return
    gateways = ", ".join(mesh.egress_gateway.hosts)
    for route_path, dests in R.gateway_route_dests(ctx.inventory, res, R.MESH_KEY, domain):
        for d in dests:
            if R.is_egress_gateway_host(mesh, d.host):
                continue
            if d.vs.key == res.key:
                path = (*d.path, "host")
                via = ""
            else:
                path = (*route_path, "delegate")
                via = f" (through delegate VirtualService {_name(d.vs)})"
            yield Finding(
                RULE_ID,
                path,
                f"VirtualService with wildcard host {', '.join(wild)} is bound to mesh, and its route "
                f"{format_path(route_path)}{via} sends sidecar traffic to {d.host} instead of the egress "
                f"gateway ({gateways})",
                f"Send the mesh routes to the egress gateway service ({gateways}) and forward from there in "
                "routes bound to the egress Gateway, or remove mesh from the VirtualService's gateways.",
            )


# --- the other direction: VirtualServices and Gateways that carried a wildcard host ------


def _left_direct(ctx: Context) -> Iterator[Finding]:
    """Findings for wildcard ServiceEntries routed through the egress gateway without the
    change under review (`before`) and not with it (`inventory`)."""
    res, mesh = ctx.resource, ctx.mesh
    spec = res.spec
    if ctx.operation == "CREATE" and not (isinstance(spec, VirtualService) and _any_wildcard(spec.hosts)):
        return  # a new Gateway, or a VirtualService for concrete names, takes no route away
    domain = mesh.cluster_domain
    hosts: set[str] = set()
    for version in (ctx.before.get(res.key), ctx.inventory.get(res.key)):
        if version is not None:
            hosts.update(hosts_of(version, domain))
    if not hosts:
        return
    entries: dict[ResourceKey, Resource] = {}
    for host in hosts:
        for se in ctx.before.matching("ServiceEntry", host):
            found = se.spec
            if isinstance(found, ServiceEntry) and found.is_mesh_external and _any_wildcard(found.hosts):
                entries[se.key] = se
    done = R.change_phrase(ctx.operation)
    path = ("spec", "servers") if res.kind == "Gateway" else ("spec", "hosts")
    for key in sorted(entries):
        after = ctx.inventory.get(key)
        if after is None:
            continue  # the ServiceEntry itself is gone
        now = list(_service_entry_findings(ctx, after, ctx.inventory))
        if not now or list(_service_entry_findings(ctx, entries[key], ctx.before)):
            continue  # still routed, or already direct before (reported on the ServiceEntry)
        yield Finding(
            RULE_ID,
            path,
            f"{done} {res.kind} {_name(res)} takes a wildcard ServiceEntry off the egress gateway: "
            f"{now[0].message}",
            f"Keep {_name(after)} routed through the egress gateway: apply the replacement Gateway and "
            "VirtualService first, or delete or narrow the ServiceEntry in the same change.",
        )


def _service_entry_findings(ctx: Context, se: Resource, world: InventoryView) -> Iterator[Finding]:
    spec = se.spec
    assert isinstance(spec, ServiceEntry)
    seen = Context(se, "CREATE", world, world, ctx.mesh, ctx.params, {})
    return _check_service_entry(seen, spec)


# --- fixes -------------------------------------------------------------------------------


def _name(res: Resource) -> str:
    return f"{res.namespace}/{res.name}"


def _protocol(port: ServicePort) -> str:
    return port.protocol.upper() if port.protocol else "no protocol, sniffed"


def _label(host: str) -> str:
    return host.lstrip("*.").replace(".", "-") or "all"


def _egress_fix(res: Resource, spec: ServiceEntry, host: str, mesh: MeshSettings) -> str:
    """A minimal compliant Gateway + VirtualService + DestinationRule for `host` and every
    port of the ServiceEntry (istio.io egress/wildcard-egress-hosts)."""
    label = _label(host)
    gw_name = f"egress-{label}"
    gw_host = mesh.egress_gateway.hosts[0]
    # Envoy at the gateway forwards to a concrete name it has a cluster for.
    upstream = "www" + host[1:] if host.startswith("*.") else host
    servers: list[dict[str, Any]] = []
    routes: dict[str, list[dict[str, Any]]] = {"http": [], "tls": [], "tcp": []}
    for port in spec.ports:
        if port.number is None:
            continue
        n = port.number
        to_gw = [{"destination": {"host": gw_host, "subset": label, "port": {"number": n}}}]
        onward = [{"destination": {"host": upstream, "port": {"number": n}}}]
        classes = R.route_classes(port.protocol)
        if classes[0] == "tls":
            servers.append(_server(n, "tls", "TLS", host, passthrough=True))
            routes["tls"].append(
                {"match": [{"gateways": ["mesh"], "port": n, "sniHosts": [host]}], "route": to_gw}
            )
            routes["tls"].append(
                {"match": [{"gateways": [gw_name], "port": n, "sniHosts": [host]}], "route": onward}
            )
        elif classes == ("http",):
            servers.append(_server(n, "http", "HTTP", host))
            routes["http"].append({"match": [{"gateways": ["mesh"], "port": n}], "route": to_gw})
            routes["http"].append({"match": [{"gateways": [gw_name], "port": n}], "route": onward})
        else:
            servers.append(_server(n, "tcp", "TCP", host))
            if "http" in classes:
                routes["http"].append({"match": [{"gateways": ["mesh"], "port": n}], "route": to_gw})
            routes["tcp"].append({"match": [{"gateways": ["mesh"], "port": n}], "route": to_gw})
            routes["tcp"].append({"match": [{"gateways": [gw_name], "port": n}], "route": onward})
    meta = {"namespace": res.namespace}
    gateway = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": gw_name, **meta},
        "spec": {"selector": dict(mesh.egress_gateway.selector), "servers": servers},
    }
    vs_spec: dict[str, Any] = {"hosts": [host], "gateways": ["mesh", gw_name]}
    vs_spec.update({k: v for k, v in routes.items() if v})
    virtual_service = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": f"{label}-through-egress-gateway", **meta},
        "spec": vs_spec,
    }
    destination_rule = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": f"egressgateway-for-{label}", **meta},
        "spec": {"host": gw_host, "subsets": [{"name": label}]},
    }
    docs = R.dump_yaml(gateway, virtual_service, destination_rule)
    return (
        f"Apply these before the ServiceEntry, so sidecars send {host} to the egress gateway. The gateway "
        f"forwards to {upstream}, a concrete host that needs its own ServiceEntry with resolution: DNS.\n"
        + docs
    )


def _server(
    number: int, prefix: str, protocol: str, host: str, *, passthrough: bool = False
) -> dict[str, Any]:
    server: dict[str, Any] = {
        "port": {"number": number, "name": f"{prefix}-{number}", "protocol": protocol},
        "hosts": [host],
    }
    if passthrough:
        server["tls"] = {"mode": "PASSTHROUGH"}
    return server


def _port_fix(vs: Resource, host: str, port: ServicePort, mesh: MeshSettings) -> str:
    n = port.number
    classes = R.route_classes(port.protocol)
    to_gw = [{"destination": {"host": mesh.egress_gateway.hosts[0], "port": {"number": n}}}]
    spec: dict[str, Any] = {}
    for cls in classes:
        match: dict[str, Any] = {"gateways": ["mesh"], "port": n}
        if cls == "tls":
            match["sniHosts"] = [host]
        spec[cls] = [{"match": [match], "route": to_gw}]
        if cls == "tls":
            break
    snippet = R.dump_yaml({"spec": spec})
    return (
        f"Add a mesh route for port {n} to the egress gateway in VirtualService {_name(vs)} (keep the "
        "subset your egress DestinationRule defines), and a route bound to the egress Gateway for the "
        "way on:\n" + snippet
    )

"""How Istio routes traffic for an external host:port, as the egress rules need it.

Shared by `wildcard-host-egress-gateway` and `external-tls-origination`:
- visibility (`exportTo`) of an object in a namespace;
- the DestinationRules Istio applies to a host seen from a proxy's namespace (lookup path:
  proxy namespace, then the service's namespace, then the root namespace; the most specific
  host wins inside each; istio/istio pilot/pkg/model/push_context.go `destinationRule`);
- the TLS settings those rules give one port and subset (a port-level entry replaces the
  top level wholesale, a subset overrides field by field; pilot `MergeTrafficPolicy`);
- the VirtualServices that apply to sidecars (`mesh`) for a host, and where their routes
  send the traffic of one port, including the hop through the egress gateway.

Every lookup goes through `InventoryView.matching` (indexed by host) or `get` (by key).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from webhook import hosts as H
from webhook.findings import Path, format_path
from webhook.inventory import InventoryView
from webhook.models import (
    DESTINATION,
    ClientTLSSettings,
    Destination,
    DestinationRule,
    Gateway,
    HTTPMatchRequest,
    HTTPRoute,
    L4MatchAttributes,
    RouteDestination,
    Server,
    ServiceEntry,
    Subset,
    TLSMatchAttributes,
    TrafficPolicy,
    VirtualService,
)
from webhook.objects import Resource, ResourceKey
from webhook.policy import MeshSettings

MESH = "mesh"
GatewayKey = tuple[str, str]  # namespace, name; ("", "mesh") stands for the sidecars
MESH_KEY: GatewayKey = ("", MESH)

# Protocol classes (istio/istio pkg/config/protocol): which route list of a VirtualService
# carries a port's traffic.
_HTTP_PROTOCOLS = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB", "HTTP_PROXY"})
TLS_PROTOCOLS = frozenset({"HTTPS", "TLS"})


_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump_yaml(*docs: Any) -> str:
    """Ready-to-apply YAML for a fix (the C emitter when present: fixes are built per denial)."""
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False).rstrip()


# --- lookups within one review ------------------------------------------------------------


class ReviewView:
    """An InventoryView that remembers its host lookups for the length of one review.

    A rule asks the same (kind, host) several times while it follows routes port by port;
    the answers cannot change within a review. `shared` holds the answers for the kinds the
    change under review does not touch, which are the same before and after it, so both
    views of a review can use them. Never kept past the review: the inventory changes.
    Callers must not mutate the lists returned.
    """

    __slots__ = ("_inv", "_kind", "_own", "_shared")

    def __init__(
        self, inv: InventoryView, changed_kind: str, shared: dict[tuple[str, str], Sequence[Resource]]
    ) -> None:
        self._inv = inv
        self._kind = changed_kind
        self._own: dict[tuple[str, str], Sequence[Resource]] = {}
        self._shared = shared

    def get(self, key: ResourceKey) -> Resource | None:
        return self._inv.get(key)

    def of_kind(self, kind: str) -> list[Resource]:
        return self._inv.of_kind(kind)

    def matching(self, kind: str, host: str) -> Sequence[Resource]:
        memo = self._own if kind == self._kind else self._shared
        key = (kind, host)
        found = memo.get(key)
        if found is None:
            found = memo[key] = self._inv.matching(kind, host)
        return found


def review_views(
    after: InventoryView, before: InventoryView, changed_kind: str
) -> tuple[ReviewView, ReviewView]:
    """Memoising views of the world after and before a change to an object of `changed_kind`."""
    shared: dict[tuple[str, str], Sequence[Resource]] = {}
    return ReviewView(after, changed_kind, shared), ReviewView(before, changed_kind, shared)


def change_phrase(operation: str) -> str:
    """How a finding on the reverse direction names the change under review."""
    return {"CREATE": "creating", "UPDATE": "this change to", "DELETE": "deleting"}.get(operation, "")


# --- visibility --------------------------------------------------------------------------


def export_scope(res: Resource) -> frozenset[str] | None:
    """The namespaces that see `res`; None means every namespace (the default)."""
    export_to = getattr(res.spec, "export_to", None)
    if not export_to or "*" in export_to:
        return None
    if "~" in export_to:
        return frozenset()
    return frozenset(res.namespace if e == "." else e for e in export_to)


def exported_nowhere(res: Resource) -> bool:
    """`export_scope(res) == frozenset()` (`~`), without building the scope."""
    export_to = getattr(res.spec, "export_to", None)
    return bool(export_to) and "*" not in export_to and "~" in export_to


def visible_to(res: Resource, namespace: str) -> bool:
    """`namespace in export_scope(res)`, without building the scope (asked per lookup)."""
    export_to = getattr(res.spec, "export_to", None)
    if not export_to or "*" in export_to:
        return True
    if "~" in export_to:
        return False
    # `.` stands for the object's own namespace, so a literal "." names no namespace.
    return (namespace != "." and namespace in export_to) or ("." in export_to and namespace == res.namespace)


def scope_covers(outer: frozenset[str] | None, inner: frozenset[str] | None) -> bool:
    """True when every namespace of `inner` is also in `outer` (None = all namespaces)."""
    if outer is None:
        return True
    return inner is not None and inner <= outer


def describe_scope(scope: frozenset[str] | None) -> str:
    return "every namespace" if scope is None else f"[{', '.join(sorted(scope)) or '~'}]"


# --- protocols ---------------------------------------------------------------------------


def route_classes(protocol: str | None) -> tuple[str, ...]:
    """The VirtualService route lists that carry a port's traffic at a sidecar.

    An empty protocol means sniffing: HTTP requests take the http routes, everything else
    the tcp routes. TLS-class ports take tls routes (by SNI), then tcp routes.
    """
    proto = (protocol or "").upper()
    if not proto:
        return ("http", "tcp")
    if proto in _HTTP_PROTOCOLS:
        return ("http",)
    if proto in TLS_PROTOCOLS:
        return ("tls", "tcp")
    return ("tcp",)


def is_tls_protocol(protocol: str | None) -> bool:
    return (protocol or "").upper() in TLS_PROTOCOLS


def _server_classes(server: Server) -> tuple[str, ...]:
    """The route lists a Gateway server hands its traffic to."""
    proto = ((server.port.protocol if server.port else None) or "").upper()
    mode = ((server.tls.mode if server.tls else None) or "PASSTHROUGH").upper()
    if proto in _HTTP_PROTOCOLS:
        return ("http",)
    if proto == "HTTPS":
        return ("tls",) if mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH") else ("http",)
    if proto == "TLS":
        return ("tls",) if mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH") else ("tcp",)
    return ("tcp",)


# --- endpoints ---------------------------------------------------------------------------


def stays_on_node(se: ServiceEntry) -> bool:
    """All endpoints are loopback addresses or unix sockets: the traffic never leaves the node."""
    if not se.endpoints:
        return False
    return all(_is_local(ep.address or "") for ep in se.endpoints)


def _is_local(address: str) -> bool:
    if address.startswith("unix://"):
        return True
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def service_entries_for(inv: InventoryView, host: str) -> list[Resource]:
    """ServiceEntries whose hosts cover `host`, most specific first."""
    found: list[tuple[tuple[int, int], Resource]] = []
    for res in inv.matching("ServiceEntry", host):
        spec = res.spec
        assert isinstance(spec, ServiceEntry)
        best: tuple[int, int] | None = None
        for raw in spec.hosts:
            h = raw.lower()
            if h == host or H.subset_of(host, h):  # an equal name is the usual hit, and a subset
                rank = H.specificity(h)
                if best is None or rank > best:
                    best = rank
        if best is not None:
            found.append((best, res))
    if len(found) == 1:  # the usual answer: no sort, no key tuples
        return [found[0][1]]
    found.sort(key=lambda item: (-item[0][0], -item[0][1], item[1].key))
    return [res for _, res in found]


# --- DestinationRules --------------------------------------------------------------------


def dr_host(res: Resource, domain: str) -> str:
    spec = res.spec
    assert isinstance(spec, DestinationRule)
    return H.resolve(spec.host or "", res.namespace, domain)


class RuleLookup:
    """The DestinationRules Istio applies to a host for one proxy namespace, and where it
    found them. Several rules at once: non-selector rules for the same host merge (the
    first top-level policy wins, by creation time, which the inventory does not know), and
    each rule with a workloadSelector applies to its own workloads.

    A slotted class rather than a frozen dataclass: one is built per lookup, and a frozen
    dataclass's __init__ costs several times as much. Treated as immutable."""

    __slots__ = ("namespace", "rules")

    def __init__(self, namespace: str, rules: tuple[Resource, ...]) -> None:
        self.namespace = namespace
        self.rules = rules


def destination_rules(
    inv: InventoryView, mesh: MeshSettings, host: str, proxy_ns: str, service_ns: str | None
) -> RuleLookup | None:
    domain = mesh.cluster_domain
    by_ns: dict[str, list[tuple[str, Resource]]] = {}
    for res in inv.matching("DestinationRule", host):
        h = dr_host(res, domain)
        if h and (h == host or H.subset_of(host, h)):  # an equal name is the usual hit, and a subset
            group = by_ns.get(res.namespace)
            if group is None:
                by_ns[res.namespace] = [(h, res)]
            else:
                group.append((h, res))
    if not by_ns:
        return None
    root = mesh.root_namespace

    # 1. the proxy's own namespace (its namespace-local rules: exported there or selector-scoped)
    local = [(h, r) for h, r in by_ns.get(proxy_ns, ()) if _namespace_local(r)]
    found = _most_specific(local)
    if found:
        return RuleLookup(proxy_ns, found)
    # 2. the service's namespace, 3. the root namespace: rules exported to the proxy's namespace.
    # The most specific host is chosen first and filtered by exportTo afterwards, as pilot does.
    for ns in (service_ns, root):
        if ns is None:
            continue
        exported = [(h, r) for h, r in by_ns.get(ns, ()) if not _private_only(r)]
        chosen = [r for r in _most_specific(exported) if visible_to(r, proxy_ns)]
        if chosen:
            return RuleLookup(ns, tuple(chosen))
    return None


def misplaced_rules(
    inv: InventoryView, mesh: MeshSettings, host: str, lookup: RuleLookup | None
) -> list[Resource]:
    """DestinationRules for `host` that Istio does not apply (wrong namespace, exportTo)."""
    used = {r.key for r in lookup.rules} if lookup else set()
    out = []
    for res in inv.matching("DestinationRule", host):
        h = dr_host(res, mesh.cluster_domain)
        if h and H.subset_of(host, h) and res.key not in used:
            out.append(res)
    return sorted(out, key=lambda r: r.key)


def _namespace_local(res: Resource) -> bool:
    spec = res.spec
    assert isinstance(spec, DestinationRule)
    return spec.workload_selector is not None or visible_to(res, res.namespace)


def _private_only(res: Resource) -> bool:
    spec = res.spec
    assert isinstance(spec, DestinationRule)
    if spec.workload_selector is not None:
        return True
    return export_scope(res) == frozenset({res.namespace})


def _most_specific(pairs: list[tuple[str, Resource]]) -> tuple[Resource, ...]:
    if not pairs:
        return ()
    if len(pairs) == 1:  # the usual answer: no ranking, no sort
        return (pairs[0][1],)
    best = max(H.specificity(h) for h, _ in pairs)
    return tuple(sorted((r for h, r in pairs if H.specificity(h) == best), key=lambda r: r.key))


class PortTLS:
    """The TLS settings one DestinationRule (or merged group) gives a port and subset, and
    where in the rule they come from.

    `source` is the human wording ("top-level tls", "portLevelSettings entry for port 80",
    ...): for a port entry it is built from `scope` and `port` only when read, which is only
    for a finding. A slotted class rather than a frozen dataclass for the same reason: these
    are built per port on every review, and read-only by convention."""

    __slots__ = ("_port", "_scope", "path", "rule", "tls")

    def __init__(
        self, rule: Resource, tls: ClientTLSSettings | None, path: Path, scope: str, port: int | None = None
    ) -> None:
        self.rule = rule
        self.tls = tls
        self.path = path  # the JSON path of the deciding `tls` (or of the port entry without one)
        self._scope = scope  # the wording, or with `port` the prefix ("", "subset v1 ") of a port entry's
        self._port = port

    @property
    def source(self) -> str:
        if self._port is None:
            return self._scope
        return f"{self._scope}portLevelSettings entry for port {self._port}"


def port_tls(lookup: RuleLookup, port: int, subset: str | None) -> list[PortTLS]:
    """Every TLS setting a client could get for `port` (and `subset`) from the rules found.

    Non-selector rules merge: the top-level policy of any of them may win (creation order is
    unknown here), so each candidate is returned; a caller that needs origination requires
    all of them to originate. A selector rule stands alone for its workloads."""
    rules = lookup.rules
    if len(rules) == 1 and not subset:
        # The usual case, in short: one rule, no subset named (what the loop below gives for it).
        return [_top_tls(rules[0], port)]
    merged: list[Resource] = []
    groups: list[list[Resource]] = []
    for r in rules:
        if _spec(r).workload_selector is None:
            merged.append(r)
        else:
            groups.append([r])
    if merged:
        groups.insert(0, merged)
    out: list[PortTLS] = []
    for group in groups:
        tops = [r for r in group if _spec(r).traffic_policy is not None] or group[:1]
        subsets = [
            (r, i, s) for r in group for i, s in enumerate(_spec(r).subsets) if subset and s.name == subset
        ]
        for top in tops:
            base = _top_tls(top, port)
            if not subsets:
                out.append(base)
                continue
            for owner, index, sub in subsets:
                out.append(_subset_tls(base, owner, index, sub, port))
    return out


def _spec(res: Resource) -> DestinationRule:
    spec = res.spec
    assert isinstance(spec, DestinationRule)
    return spec


def _top_tls(res: Resource, port: int) -> PortTLS:
    policy = _spec(res).traffic_policy
    if policy is None:
        return PortTLS(res, None, ("spec", "host"), "no trafficPolicy")
    return _policy_tls(res, policy, port, ("spec", "trafficPolicy"), "")


def _policy_tls(res: Resource, policy: TrafficPolicy, port: int, at: Path, label: str) -> PortTLS:
    for k, entry in enumerate(policy.port_level_settings):
        if entry.port is not None and entry.port.get("number") == port:
            path = (*at, "portLevelSettings", k)
            return PortTLS(res, entry.tls, (*path, "tls") if entry.tls is not None else path, label, port)
    where = f"{label}top-level tls" if label else "top-level tls"
    return PortTLS(res, policy.tls, (*at, "tls") if policy.tls is not None else at, where)


def _subset_tls(base: PortTLS, owner: Resource, index: int, sub: Subset, port: int) -> PortTLS:
    policy = sub.traffic_policy
    if policy is None:
        return base
    at: Path = ("spec", "subsets", index, "trafficPolicy")
    label = f"subset {sub.name} "
    for k, entry in enumerate(policy.port_level_settings):
        if entry.port is not None and entry.port.get("number") == port:
            path = (*at, "portLevelSettings", k)
            return PortTLS(owner, entry.tls, (*path, "tls") if entry.tls is not None else path, label, port)
    if policy.tls is not None:
        return PortTLS(owner, policy.tls, (*at, "tls"), f"{label}tls")
    return base


def tls_blocks(res: Resource) -> Iterator[tuple[Path, ClientTLSSettings, int | None, str | None]]:
    """Every `tls` a DestinationRule writes: (path, settings, port or None for all, subset)."""
    spec = _spec(res)
    for at, policy, subset in _policies(spec):
        if policy.tls is not None:
            yield (*at, "tls"), policy.tls, None, subset
        for k, entry in enumerate(policy.port_level_settings):
            number = entry.port.get("number") if entry.port is not None else None
            if entry.tls is not None and number is not None:
                yield (*at, "portLevelSettings", k, "tls"), entry.tls, number, subset


def _policies(spec: DestinationRule) -> Iterator[tuple[Path, TrafficPolicy, str | None]]:
    if spec.traffic_policy is not None:
        yield ("spec", "trafficPolicy"), spec.traffic_policy, None
    for i, sub in enumerate(spec.subsets):
        if sub.traffic_policy is not None:
            yield ("spec", "subsets", i, "trafficPolicy"), sub.traffic_policy, sub.name


def block_applies(res: Resource, block_port: int | None, block_subset: str | None, port: int) -> bool:
    """Whether a `tls` written at (block_port, block_subset) is the one `port` gets in that
    scope (a top-level tls is replaced for ports with their own entry)."""
    if block_port is not None:
        return block_port == port
    spec = _spec(res)
    policy = spec.traffic_policy
    if block_subset is not None:
        sub = spec.subset(block_subset)
        policy = sub.traffic_policy if sub else None
    if policy is None:
        return False
    return not any(e.port is not None and e.port.get("number") == port for e in policy.port_level_settings)


# --- VirtualServices and routes ----------------------------------------------------------


def _vs(res: Resource) -> VirtualService:
    spec = res.spec
    assert isinstance(spec, VirtualService)
    return spec


def gateway_key(ref: str, vs_namespace: str) -> GatewayKey:
    """A VirtualService's gateway reference as (namespace, name): `mesh`, `ns/name`, `name`
    (the VirtualService's namespace) or the legacy `name.ns.svc.<domain>`."""
    if ref == MESH:
        return MESH_KEY
    ns, sep, name = ref.partition("/")
    if sep:
        return (ns, name)
    if "." in ref:
        parts = ref.split(".")
        return (parts[1], parts[0])
    return (vs_namespace, ref)


def top_gateways(res: Resource) -> tuple[GatewayKey, ...]:
    return tuple(gateway_key(g, res.namespace) for g in _vs(res).effective_gateways)


def names_gateway(refs: Iterable[str], gateway: GatewayKey, ns: str) -> bool:
    """Whether one of the gateway references (as written in a VirtualService of `ns`) names
    `gateway`: `gateway in (gateway_key(g, ns) for g in refs)`, in a plain loop. For the mesh,
    only `mesh` and the odd spellings `/mesh` and `mesh.` resolve to MESH_KEY, so the others
    are told apart without building their keys (this runs per route and per match)."""
    if gateway == MESH_KEY:
        for g in refs:
            if g == MESH or (g.startswith(("/mesh", "mesh.")) and gateway_key(g, ns) == MESH_KEY):
                return True
        return False
    return any(gateway_key(g, ns) == gateway for g in refs)


def binds_mesh(res: Resource) -> bool:
    return names_gateway(_vs(res).effective_gateways, MESH_KEY, res.namespace)


def covering_host(res: Resource, host: str, domain: str) -> str | None:
    """The most specific of the VirtualService's hosts that covers all of `host`."""
    best: str | None = None
    for h in _vs(res).hosts:
        full = H.resolve(h, res.namespace, domain)
        if H.subset_of(host, full) and (best is None or H.specificity(full) > H.specificity(best)):
            best = full
    return best


def mesh_virtual_services(
    inv: InventoryView, host: str, domain: str, visible: Callable[[Resource], bool]
) -> list[Resource]:
    """The VirtualServices sidecars use for `host`: bound to mesh, covering the host, and
    `visible`; only those with the most specific host (a sidecar picks one virtual host per
    name and does not merge VirtualServices; ties are all returned)."""
    found: list[tuple[tuple[int, int], Resource]] = []
    for res in inv.matching("VirtualService", host):
        if not binds_mesh(res) or not visible(res):
            continue
        h = covering_host(res, host, domain)
        if h is not None:
            found.append((H.specificity(h), res))
    if not found:
        return []
    best = max(s for s, _ in found)
    return sorted((r for s, r in found if s == best), key=lambda r: r.key)


def gateway_route_dests(
    inv: InventoryView, res: Resource, gateway: GatewayKey, domain: str
) -> list[tuple[Path, list[RouteDest]]]:
    """Every route of a VirtualService that applies to `gateway` on any port, with where it
    sends traffic: (route path, destinations)."""
    out: list[tuple[Path, list[RouteDest]]] = []
    for at, route in _gateway_routes(res, gateway):
        targets = _http_targets(inv, res, route, at) if at[1] == "http" else _targets(res, route.route, at)
        out.append((at, [_dest(owner, d, path, domain) for owner, d, path in targets]))
    return out


def gateway_route_hosts(inv: InventoryView, res: Resource, gateway: GatewayKey, domain: str) -> set[str]:
    """The hosts (resolved) that the routes of `gateway_route_dests` send traffic to, for
    callers that need no more: it builds no destination records."""
    vs = _vs(res)
    ns = res.namespace
    top_binds = names_gateway(vs.effective_gateways, gateway, ns)
    # Plain loops over the three route lists (this runs on every VirtualService review); names
    # as written in this VirtualService apart from the few a delegate writes in its own namespace.
    own: set[str] = set()
    delegated: set[tuple[str, str]] = set()
    for route in vs.http:
        match = route.get("match")
        if not (_http_route_applies(match, top_binds, gateway, ns) if match else top_binds):
            continue
        if route.get("mirror") is not None or route.get("mirrors") or route.get("delegate") is not None:
            for owner, d, _ in _http_targets(inv, res, route, ()):
                if owner is res:
                    own.add(d.get("host") or "")
                else:
                    delegated.add((owner.namespace, d.get("host") or ""))
            continue
        for rd in route.get("route") or ():  # what `_targets` yields, without the paths
            target = rd.get("destination")
            if target is not None:
                host = target.get("host")
                if host:
                    own.add(host)
    for l4_routes in (vs.tls, vs.tcp):
        for l4_route in l4_routes:
            if _route_applies(l4_route.match, top_binds, gateway, ns):
                for rd in l4_route.route:
                    target = rd.get("destination")
                    if target is not None:
                        host = target.get("host")
                        if host:
                            own.add(host)
    out = {H.resolve(host, ns, domain) for host in own}
    for owner_ns, host in delegated:
        out.add(H.resolve(host, owner_ns, domain))
    return out


def _route_applies(
    matches: list[TLSMatchAttributes] | list[L4MatchAttributes], top_binds: bool, gateway: GatewayKey, ns: str
) -> bool:
    """Whether a tls or tcp route with these matches applies to `gateway` on some port;
    `top_binds`: the VirtualService's own gateways name it (a match-level list replaces them)."""
    if not matches:
        return top_binds
    for m in matches:  # noqa: SIM110 - a loop: any() over a generator costs more, per route
        if names_gateway(m.gateways, gateway, ns) if m.gateways else top_binds:
            return True
    return False


def _http_route_applies(
    matches: list[HTTPMatchRequest] | None, top_binds: bool, gateway: GatewayKey, ns: str
) -> bool:
    """`_route_applies` for an http route."""
    if not matches:
        return top_binds
    for m in matches:  # a loop, as above
        gateways = m.get("gateways")
        if names_gateway(gateways, gateway, ns) if gateways else top_binds:
            return True
    return False


def _gateway_routes(res: Resource, gateway: GatewayKey) -> Iterator[tuple[Path, Any]]:
    """(path, route) of each http, tls and tcp route of a VirtualService that applies to `gateway`."""
    vs = _vs(res)
    ns = res.namespace
    top_binds = names_gateway(vs.effective_gateways, gateway, ns)
    for i, route in enumerate(vs.http):
        if _http_route_applies(route.get("match"), top_binds, gateway, ns):
            yield ("spec", "http", i), route
    for kind, l4_routes in (("tls", vs.tls), ("tcp", vs.tcp)):
        for i, l4_route in enumerate(l4_routes):
            if _route_applies(l4_route.match, top_binds, gateway, ns):
                yield ("spec", kind, i), l4_route


@dataclass(frozen=True, slots=True)
class RouteDest:
    """One place a route sends traffic (a route destination or a mirror)."""

    host: str  # resolved FQDN
    port: int | None  # explicit destination port
    subset: str | None
    path: Path  # JSON path of the destination in the VirtualService
    vs: Resource


def mesh_route_text(d: RouteDest, vs: Resource) -> str:
    """Where a destination found through `vs` is written, for a message: the path is in
    `d.vs`, which is a delegate when it is not `vs`."""
    where = f"the mesh route at {format_path(d.path)} of VirtualService {d.vs.namespace}/{d.vs.name}"
    if d.vs is not vs:
        where += f" (the delegate of VirtualService {vs.namespace}/{vs.name})"
    return where


@dataclass(frozen=True, slots=True)
class PortRoutes:
    """Where one VirtualService sends one port's traffic for one gateway (or the mesh).
    `falls_through`: some of the traffic matches no route and takes the default path to the
    original host:port (tcp and tls routes; unmatched HTTP requests get a 404 instead)."""

    dests: tuple[RouteDest, ...]
    falls_through: bool


def routes_for(
    inv: InventoryView,
    res: Resource,
    host: str,
    port: int,
    classes: Iterable[str],
    gateway: GatewayKey,
    domain: str,
) -> PortRoutes:
    vs = _vs(res)
    top = top_gateways(res)
    ns = res.namespace
    dests: list[RouteDest] = []
    falls_through = tls_caught = False
    for cls in classes:
        if cls == "http":
            applicable = False
            for i, route in enumerate(vs.http):
                if _http_applies(route, top, gateway, port, ns):
                    applicable = True
                    dests.extend(_http_dests(inv, res, route, ("spec", "http", i), domain))
            # Unmatched HTTP requests get a 404, but a VirtualService without any route for
            # this port leaves the port to the default route.
            falls_through = falls_through or not applicable
        elif cls == "tls":
            for i, tls_route in enumerate(vs.tls):
                hit, full = _tls_applies(tls_route.match, top, gateway, port, host, ns)
                if hit:
                    dests.extend(_dests(res, tls_route.route, ("spec", "tls", i), domain))
                    tls_caught = tls_caught or full
        elif not tls_caught:
            # tcp routes see what the tls routes (if any) left.
            caught = False
            for i, tcp_route in enumerate(vs.tcp):
                hit, full = _l4_applies(tcp_route.match, top, gateway, port, ns)
                if hit:
                    dests.extend(_dests(res, tcp_route.route, ("spec", "tcp", i), domain))
                    caught = caught or full
            falls_through = falls_through or not caught
    return PortRoutes(tuple(dests), falls_through)


def _match_gateways(
    gateways: list[str] | None, top: tuple[GatewayKey, ...], ns: str
) -> tuple[GatewayKey, ...]:
    # A match-level list replaces the top-level one for that match; names resolve in the
    # VirtualService's namespace.
    return tuple(gateway_key(g, ns) for g in gateways) if gateways else top


def _http_applies(
    route: HTTPRoute, top: tuple[GatewayKey, ...], gateway: GatewayKey, port: int, ns: str
) -> bool:
    matches = route.get("match")
    if not matches:
        return gateway in top
    return any(
        gateway in _match_gateways(m.get("gateways"), top, ns) and m.get("port") in (None, port)
        for m in matches
    )


def _tls_applies(
    matches: list[TLSMatchAttributes],
    top: tuple[GatewayKey, ...],
    gateway: GatewayKey,
    port: int,
    host: str,
    ns: str,
) -> tuple[bool, bool]:
    hit = full = False
    for m in matches:
        if gateway not in _match_gateways(m.gateways, top, ns):
            continue
        if m.port is not None and m.port != port:
            continue
        snis = [s.lower() for s in m.sni_hosts]
        if not any(H.matches(s, host) for s in snis):
            continue
        hit = True
        selective = m.source_labels or m.source_namespace or m.destination_subnets
        if not selective and any(H.subset_of(host, s) for s in snis):
            full = True
    return hit, full


def _l4_applies(
    matches: list[L4MatchAttributes], top: tuple[GatewayKey, ...], gateway: GatewayKey, port: int, ns: str
) -> tuple[bool, bool]:
    if not matches:
        return (gateway in top, gateway in top)
    hit = full = False
    for m in matches:
        if gateway not in _match_gateways(m.gateways, top, ns):
            continue
        if m.port is not None and m.port != port:
            continue
        hit = True
        if not (m.source_labels or m.source_namespace or m.destination_subnets):
            full = True
    return hit, full


def _dests(res: Resource, route: Sequence[RouteDestination], at: Path, domain: str) -> list[RouteDest]:
    return [_dest(owner, d, path, domain) for owner, d, path in _targets(res, route, at)]


def _targets(
    res: Resource, route: Sequence[RouteDestination], at: Path
) -> Iterator[tuple[Resource, Destination, Path]]:
    """(VirtualService, destination, its path) of each destination of a route list."""
    for j, rd in enumerate(route):
        d = rd.get("destination")
        if d is not None and d.get("host"):
            yield res, d, (*at, "route", j, "destination")


def _dest(res: Resource, d: Destination, path: Path, domain: str) -> RouteDest:
    port = d.get("port")
    return RouteDest(
        host=H.resolve(d.get("host") or "", res.namespace, domain),
        port=port.get("number") if port is not None else None,
        subset=d.get("subset"),
        path=path,
        vs=res,
    )


def _http_dests(
    inv: InventoryView, res: Resource, route: HTTPRoute, at: Path, domain: str
) -> list[RouteDest]:
    return [_dest(owner, d, path, domain) for owner, d, path in _http_targets(inv, res, route, at)]


def _http_targets(
    inv: InventoryView, res: Resource, route: HTTPRoute, at: Path, root: bool = True
) -> Iterator[tuple[Resource, Destination, Path]]:
    """The destinations of an http route: its own, its mirrors, and those of the routes of
    the VirtualService it delegates to (`root`: delegation is one level deep)."""
    yield from _targets(res, route.get("route") or (), at)
    mirror = route.get("mirror")
    if mirror is not None and mirror.get("host"):
        yield res, mirror, (*at, "mirror")
    for k, entry in enumerate(route.get("mirrors") or ()):
        raw = entry.get("destination") if isinstance(entry, dict) else None
        if isinstance(raw, dict) and isinstance(raw.get("host"), str):
            try:
                d = DESTINATION.validate_python(raw)
            except ValidationError:
                continue  # malformed: istio-schema reports it
            yield res, d, (*at, "mirrors", k, "destination")
    delegate = route.get("delegate")
    if root and delegate is not None and delegate.name:
        target = inv.get(("VirtualService", delegate.namespace or res.namespace, delegate.name))
        if target is not None:
            for i, sub in enumerate(_vs(target).http):
                yield from _http_targets(inv, target, sub, ("spec", "http", i), root=False)


def destination_port(inv: InventoryView, dest: RouteDest, listener_port: int) -> int:
    """The port a route destination reaches: its own, else the service's only port, else
    the port the traffic arrived on (pilot `GetDestinationCluster`)."""
    if dest.port is not None:
        return dest.port
    for se in service_entries_for(inv, dest.host)[:1]:
        spec = se.spec
        assert isinstance(spec, ServiceEntry)
        if len(spec.ports) == 1 and spec.ports[0].number is not None:
            return spec.ports[0].number
    return listener_port


# --- the egress gateway ------------------------------------------------------------------


def is_egress_gateway_host(mesh: MeshSettings, host: str) -> bool:
    return host.lower() in egress_gateway_hosts(mesh)


# The lower-cased egress gateway hosts of the MeshSettings object they came from: asked per
# route destination, and the settings live as long as their policy.
_EGRESS_HOSTS: dict[int, tuple[MeshSettings, frozenset[str]]] = {}


def egress_gateway_hosts(mesh: MeshSettings) -> frozenset[str]:
    hit = _EGRESS_HOSTS.get(id(mesh))
    if hit is not None and hit[0] is mesh:
        return hit[1]
    if len(_EGRESS_HOSTS) >= 8:  # settings replaced by policy reloads
        _EGRESS_HOSTS.clear()
    found = frozenset(h.lower() for h in mesh.egress_gateway.hosts)
    _EGRESS_HOSTS[id(mesh)] = (mesh, found)
    return found


def egress_gateway_namespace(service_host: str) -> str:
    """`istio-egressgateway.istio-system.svc.cluster.local` -> `istio-system`."""
    parts = service_host.split(".")
    return parts[1] if len(parts) > 1 else "default"


def selects_egress_gateway(gw: Gateway, mesh: MeshSettings) -> bool:
    """A Gateway selects the egress gateway when every label it asks for is one of the
    configured egress gateway labels. A Gateway without a selector is not taken as the
    egress gateway's: it is not told apart from a catch-all."""
    if not gw.selector:
        return False
    wanted = mesh.egress_gateway.selector
    return all(wanted.get(k) == v for k, v in gw.selector.items())


def egress_gateway_label(mesh: MeshSettings) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(mesh.egress_gateway.selector.items()))


def server_binds(server: Server, gateway_ns: str, vs_ns: str, host: str) -> bool:
    """A Gateway server takes a VirtualService host when a server host covers it in a
    namespace the server admits (`*/`, `./` = the Gateway's own, or the VS's namespace)."""
    for entry in server.hosts:
        ns, name = H.split_namespaced(entry)
        if ns not in ("*", vs_ns) and not (ns == "." and vs_ns == gateway_ns):
            continue
        if name == "*" or H.matches(name.lower(), host):
            return True
    return False


def egress_gateways_of(
    inv: InventoryView, res: Resource, mesh: MeshSettings
) -> list[tuple[GatewayKey, Resource]]:
    """The Gateways a VirtualService binds to that select the egress gateway."""
    out = []
    for key in top_gateways(res):
        if key == MESH_KEY:
            continue
        gw = inv.get(("Gateway", key[0], key[1]))
        if gw is not None and isinstance(gw.spec, Gateway) and selects_egress_gateway(gw.spec, mesh):
            out.append((key, gw))
    return out


@dataclass(frozen=True, slots=True)
class GatewayRoute:
    """Where the egress gateway sends `host` arriving on `port`: the destinations of the
    gateway-bound routes (empty when nothing forwards it)."""

    dests: tuple[RouteDest, ...]
    gateway_namespace: str


def through_egress_gateway(
    inv: InventoryView, mesh: MeshSettings, host: str, gateway_host: str, port: int
) -> GatewayRoute:
    domain = mesh.cluster_domain
    gw_ns = egress_gateway_namespace(gateway_host)
    dests: list[RouteDest] = []
    for res in inv.matching("VirtualService", host):
        if not visible_to(res, gw_ns) or covering_host(res, host, domain) is None:
            continue
        for key, gw in egress_gateways_of(inv, res, mesh):
            spec = gw.spec
            assert isinstance(spec, Gateway)
            for server in spec.servers:
                if server.port is None or server.port.number != port:
                    continue
                if not server_binds(server, gw.namespace, res.namespace, host):
                    continue
                got = routes_for(inv, res, host, port, _server_classes(server), key, domain)
                dests.extend(d for d in got.dests if not is_egress_gateway_host(mesh, d.host))
    unique = {(d.vs.key, d.path): d for d in dests}
    return GatewayRoute(tuple(unique[k] for k in sorted(unique)), gw_ns)

"""`external-tls-origination`: traffic to MESH_EXTERNAL services leaves the mesh encrypted.

Per port of a MESH_EXTERNAL ServiceEntry: HTTPS and TLS ports pass (the application
encrypts). Any other port passes only when every way its traffic can leave ends at a
host:port whose DestinationRule (the one Istio applies) originates TLS (SIMPLE or MUTUAL):
directly, after a VirtualService port rewrite (80 -> 443), or through the egress gateway
(mesh -> gateway -> host:port). Endpoints that never leave the node and the configured
plaintext allow-list pass. Origination that does not verify the server is a warning.

DestinationRules and VirtualServices are checked from the other side: an explicit DISABLE
for a plaintext external port is always a violation of the rule that writes it; otherwise a
DestinationRule or VirtualService (created, changed or deleted) is a violation only when it
turns a compliant ServiceEntry port non-compliant.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from policies import _mesh_routes as R
from webhook import hosts as H
from webhook.context import Context
from webhook.findings import Finding, Path, format_path
from webhook.inventory import InventoryView
from webhook.models import DestinationRule, ServiceEntry, ServicePort, VirtualService
from webhook.objects import Resource
from webhook.policy import MeshSettings
from webhook.registry import rule

RULE_ID = "external-tls-origination"


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)
    # Host names (any port) or host:port pairs that may be reached in plaintext.
    plaintext_allow_list: list[str] = Field(
        default_factory=lambda: ["169.254.169.254", "metadata.google.internal", "fd00:ec2::254"]
    )

    @field_validator("plaintext_allow_list")
    @classmethod
    def _entries(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            _parse_allow_entry(entry)
        return entries


def _parse_allow_entry(entry: str) -> tuple[str, int | None]:
    """`host`, `host:port`, an IPv6 address, or `[v6]:port`."""
    text = entry.strip().lower()
    host, port = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{entry!r}: expected [address]:port")
            port = rest[1:]
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if not host:
        raise ValueError(f"{entry!r}: empty host")
    if port == "" and (text.endswith(":") or text.endswith("]:")):
        raise ValueError(f"{entry!r}: empty port")
    if port:
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{entry!r}: port must be a number in 1..65535")
        return host, int(port)
    return host, None


@dataclass(frozen=True)
class _AllowList:
    hosts: frozenset[str]
    pairs: frozenset[tuple[str, int]]

    @classmethod
    def of(cls, params: Params) -> _AllowList:
        parsed = [_parse_allow_entry(e) for e in params.plaintext_allow_list]
        return cls(
            frozenset(h for h, p in parsed if p is None),
            frozenset((h, p) for h, p in parsed if p is not None),
        )

    def allows(self, host: str, port: int) -> bool:
        return host in self.hosts or (host, port) in self.pairs


# Parsed allow-lists by the Params object they came from: a policy's params live as long as
# the policy, and parsing them on every review cost more than the lookups they serve.
_ALLOW_LISTS: dict[int, tuple[Params, _AllowList]] = {}


def _allow_list(params: Params) -> _AllowList:
    hit = _ALLOW_LISTS.get(id(params))
    if hit is not None and hit[0] is params:
        return hit[1]
    if len(_ALLOW_LISTS) >= 8:  # policies replaced by reloads
        _ALLOW_LISTS.clear()
    allow = _AllowList.of(params)
    _ALLOW_LISTS[id(params)] = (params, allow)
    return allow


@rule(
    id=RULE_ID,
    title="Traffic to MESH_EXTERNAL services must leave the mesh encrypted (TLS origination)",
    kinds=("ServiceEntry", "DestinationRule", "VirtualService"),
    remediation=(
        "Declare the port HTTPS/TLS when the application encrypts; otherwise originate TLS with a "
        "DestinationRule on the lookup path (the client namespace, then the root namespace) that sets tls "
        "mode SIMPLE or MUTUAL, with caCertificates, for that port, at the sidecar or at the egress "
        "gateway's last hop. Apply the DestinationRule before the ServiceEntry."
    ),
    params=Params,
)
def check(ctx: Context) -> Iterator[Finding]:
    params = ctx.params
    assert isinstance(params, Params)
    allow = _allow_list(params)
    spec = ctx.resource.spec
    if isinstance(spec, ServiceEntry) and ctx.operation == "DELETE":
        return
    if isinstance(spec, VirtualService):
        # Most VirtualServices route to no MESH_EXTERNAL host: the views (and the generator that
        # judges ports) are made only when one does.
        ports = _virtual_service_ports(ctx, spec, allow)
        if ports:
            yield from _turned_plaintext(ctx, None, ports, ("spec", "hosts"), set(), allow)
        return
    # The same hosts are looked up again port by port, and before and after the change.
    if isinstance(spec, ServiceEntry):
        # Only the world after the change is asked about.
        yield from _check_service_entry(ctx, R.ReviewView(ctx.inventory, ctx.resource.kind, {}), spec, allow)
    elif isinstance(spec, DestinationRule):
        views = R.review_views(ctx.inventory, ctx.before, ctx.resource.kind)
        yield from _check_destination_rule(ctx, views, spec, allow)


# --- per-port verdict --------------------------------------------------------------------


class _Hop(NamedTuple):
    """A host:port the traffic leaves a proxy for, and how it got there (a tuple: built
    per route destination, ordered field by field)."""

    host: str
    port: int
    subset: str
    proxy_ns: str
    at_gateway: bool
    via: str  # "" for the port itself (no route in between)


class _Verdict:
    # A slotted class rather than a dataclass with list factories: one is made per port judged.
    __slots__ = ("no_rule_yet", "problems", "rules", "warnings")

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.rules: list[Resource] = []  # DestinationRules that decide a direct hop
        self.no_rule_yet = False  # the port itself has no DestinationRule anywhere

    @property
    def ok(self) -> bool:
        return not self.problems


def _port_verdict(
    inv: InventoryView, mesh: MeshSettings, allow: _AllowList, se: Resource, host: str, port: ServicePort
) -> _Verdict:
    spec = se.spec
    assert isinstance(spec, ServiceEntry)
    number = port.number
    assert number is not None
    verdict = _Verdict()
    if R.is_tls_protocol(port.protocol) or _exempt(spec, host, number, allow):
        return verdict
    domain = mesh.cluster_domain
    ns = se.namespace
    vss = R.mesh_virtual_services(inv, host, domain, lambda vs: R.visible_to(vs, ns))
    if not vss:
        # No route in between (the usual case): the port itself is the only hop.
        _judge_hop(inv, mesh, allow, _Hop(host, number, "", ns, False, ""), verdict)
        verdict.problems.sort()
        verdict.warnings.sort()
        return verdict
    hops: set[_Hop] = set()
    for vs in vss:
        routes = R.routes_for(inv, vs, host, number, R.route_classes(port.protocol), R.MESH_KEY, domain)
        if routes.falls_through:
            hops.add(
                _Hop(
                    host,
                    number,
                    "",
                    ns,
                    False,
                    f"the default route (for traffic no mesh route of VirtualService {_name(vs)} catches)",
                )
            )
        for d in routes.dests:
            dport = R.destination_port(inv, d, number)
            where = R.mesh_route_text(d, vs)
            if not R.is_egress_gateway_host(mesh, d.host):
                hops.add(_Hop(d.host, dport, d.subset or "", ns, False, where))
                continue
            onward = R.through_egress_gateway(inv, mesh, host, d.host, dport)
            if not onward.dests:
                verdict.problems.append(
                    f"{where} sends it to the egress gateway on port {dport}, where no VirtualService "
                    f"bound to an egress Gateway forwards {host}:{dport}"
                )
            for g in onward.dests:
                gport = R.destination_port(inv, g, dport)
                via = (
                    f"{where} sends it to the egress gateway, and the gateway route at {format_path(g.path)} "
                    f"of VirtualService {_name(g.vs)}"
                )
                hops.add(_Hop(g.host, gport, g.subset or "", onward.gateway_namespace, True, via))
    for hop in sorted(hops):
        _judge_hop(inv, mesh, allow, hop, verdict)
    verdict.problems.sort()
    verdict.warnings.sort()
    return verdict


def _judge_hop(
    inv: InventoryView, mesh: MeshSettings, allow: _AllowList, hop: _Hop, verdict: _Verdict
) -> None:
    entries = R.service_entries_for(inv, hop.host)
    if hop.via and entries:
        se_spec = entries[0].spec
        assert isinstance(se_spec, ServiceEntry)
        if _exempt(se_spec, hop.host, hop.port, allow):
            return
    service_ns = None
    for e in entries:
        if R.visible_to(e, hop.proxy_ns):
            service_ns = e.namespace
            break
    judged = _judged(inv, mesh, hop, service_ns)
    verdict.problems.extend(judged.problems)
    verdict.warnings.extend(judged.warnings)
    if not hop.via:
        for r in judged.rules:
            if r not in verdict.rules:
                verdict.rules.append(r)
        verdict.no_rule_yet = verdict.no_rule_yet or judged.no_rule_yet


# What the DestinationRules say about a hop, kept across reviews: the same host:port is judged
# on every review of its ServiceEntry (twice for a DestinationRule or VirtualService), while
# DestinationRules change a few times an hour. The judgement is a function of the hop, the
# service's namespace, the mesh settings and the DestinationRules the inventory holds for the
# host; Resources are immutable and replaced on change, so an entry holds while the same
# objects come back (held here, so their identities cannot be reused).
_JUDGED: dict[tuple[_Hop, str | None], tuple[MeshSettings, list[Resource], _Verdict]] = {}
_JUDGED_SIZE = 1024


def _judged(inv: InventoryView, mesh: MeshSettings, hop: _Hop, service_ns: str | None) -> _Verdict:
    rules = inv.matching("DestinationRule", hop.host)
    key = (hop, service_ns)
    hit = _JUDGED.get(key)
    if hit is not None and hit[0] is mesh and _same_objects(hit[1], rules):
        return hit[2]
    judged = _Verdict()
    _judge_rules(inv, mesh, hop, service_ns, judged)
    if len(_JUDGED) >= _JUDGED_SIZE:
        _JUDGED.clear()
    _JUDGED[key] = (mesh, list(rules), judged)
    return judged


def _same_objects(a: Sequence[Resource], b: Sequence[Resource]) -> bool:
    return len(a) == len(b) and all(map(operator.is_, a, b))


def _judge_rules(
    inv: InventoryView, mesh: MeshSettings, hop: _Hop, service_ns: str | None, judged: _Verdict
) -> None:
    """Judge a hop by the DestinationRules on its lookup path into `judged` (problems,
    warnings, the deciding rules, and whether no rule for the host exists at all)."""
    lookup = R.destination_rules(inv, mesh, hop.host, hop.proxy_ns, service_ns)
    if lookup is None:
        misplaced = R.misplaced_rules(inv, mesh, hop.host, None)
        path_ns = [hop.proxy_ns, *([service_ns] if service_ns and service_ns != hop.proxy_ns else [])]
        if mesh.root_namespace not in path_ns:
            path_ns.append(mesh.root_namespace)
        if misplaced:
            names = ", ".join(_name(r) for r in misplaced)
            why = (
                f"no DestinationRule on the lookup path ({', '.join(path_ns)}) originates TLS: "
                f"DestinationRule {names} is not on that path or not exported to {hop.proxy_ns}"
            )
        else:
            why = f"no DestinationRule for {hop.host} exists"
            judged.no_rule_yet = True
        judged.problems.append(_lead(hop) + why)
        return
    judged.rules.extend(lookup.rules)
    settings = R.port_tls(lookup, hop.port, hop.subset or None)
    bad = False
    for s in settings:
        if s.tls is None or not s.tls.originates:
            bad = True
            judged.problems.append(_lead(hop) + _why_plaintext(s, lookup, hop))
    if bad:
        return
    for s in settings:
        problem = _unverified(s, hop.at_gateway)
        if problem:
            judged.warnings.append(
                f"{_target(hop)}: TLS origination by DestinationRule {_name(s.rule)} ({s.source}) does not "
                f"verify the server: {problem}"
            )


def _target(hop: _Hop) -> str:
    return f"{hop.host}:{hop.port}" + (f" (subset {hop.subset})" if hop.subset else "")


def _lead(hop: _Hop) -> str:
    """How the traffic reached the hop, ahead of why the hop is plaintext."""
    return f"{hop.via} sends it to {_target(hop)}, where " if hop.via else ""


def _why_plaintext(s: R.PortTLS, lookup: R.RuleLookup, hop: _Hop) -> str:
    dr = f"DestinationRule {_name(s.rule)}"
    if s.tls is None:
        if s.source.endswith(f"portLevelSettings entry for port {hop.port}"):
            return (
                f"the {s.source} of {dr} has no tls, and a port entry replaces the top-level settings "
                "wholesale (no TLS)"
            )
        subsets = _originating_subsets(lookup, hop.port)
        if subsets and not hop.subset:
            return f"{dr} originates TLS only in subset {', '.join(subsets)}, which no route names"
        return f"{dr} sets no tls for port {hop.port}"
    mode = s.tls.effective_mode
    if mode == "ISTIO_MUTUAL":
        return (
            f"{dr} ({s.source}) uses ISTIO_MUTUAL, Istio's mesh mTLS, which is not TLS origination to an "
            "external server"
        )
    if s.tls.mode is None:
        return f"{dr} ({s.source}) sets tls without a mode, which means DISABLE"
    return f"{dr} ({s.source}) sets tls mode {mode}"


def _originating_subsets(lookup: R.RuleLookup, port: int) -> list[str]:
    names = []
    for res in lookup.rules:
        spec = res.spec
        assert isinstance(spec, DestinationRule)
        for sub in spec.subsets:
            if sub.name and any(
                s.tls is not None and s.tls.originates
                for s in R.port_tls(R.RuleLookup("", (res,)), port, sub.name)
            ):
                names.append(sub.name)
    return sorted(set(names))


def _unverified(s: R.PortTLS, at_gateway: bool) -> str:
    tls = s.tls
    assert tls is not None
    if tls.insecure_skip_verify:
        return "insecureSkipVerify is true"
    if tls.ca_certificates:
        return ""
    if tls.credential_name:
        spec = s.rule.spec
        assert isinstance(spec, DestinationRule)
        if at_gateway or spec.workload_selector is not None:
            return ""
        return (
            "no caCertificates, and credentialName is ignored at sidecars unless the rule has a "
            "workloadSelector"
        )
    return "no caCertificates (or credentialName)"


def _exempt(spec: ServiceEntry, host: str, port: int, allow: _AllowList) -> bool:
    if R.stays_on_node(spec) or allow.allows(host.lower(), port):
        return True
    # An entry whose endpoints (or, without endpoints, addresses) are all allow-listed.
    if spec.endpoints:
        addrs = [(ep.address or "").lower() for ep in spec.endpoints]
    else:
        addrs = [a.lower().removesuffix("/32").removesuffix("/128") for a in spec.addresses]
    return bool(addrs) and all(allow.allows(a, port) for a in addrs)


# --- ServiceEntry ------------------------------------------------------------------------


def _check_service_entry(
    ctx: Context, inv: InventoryView, spec: ServiceEntry, allow: _AllowList
) -> Iterator[Finding]:
    if not spec.is_mesh_external or R.exported_nowhere(ctx.resource):
        return
    res = ctx.resource
    for raw_host in spec.hosts:
        host = raw_host.lower()
        failing: list[tuple[int, ServicePort, _Verdict]] = []
        for j, port in enumerate(spec.ports):
            if port.number is None or R.is_tls_protocol(port.protocol):
                continue  # a TLS-class port passes with nothing to say
            verdict = _port_verdict(inv, ctx.mesh, allow, res, host, port)
            for warning in verdict.warnings:
                yield Finding(RULE_ID, ("spec", "ports", j), warning, _VERIFY_FIX, level="warn")
            if not verdict.ok:
                failing.append((j, port, verdict))
        if not failing:
            continue
        fix = _origination_fix(res, spec, host, [p for _, p, _ in failing], failing[0][2])
        for j, port, verdict in failing:
            message = f"{host}:{port.number} ({_protocol(port)}) leaves the mesh without TLS origination: "
            message += "; ".join(verdict.problems)
            if verdict.no_rule_yet:
                message += " yet: apply the DestinationRule first, then the ServiceEntry"
            yield Finding(RULE_ID, ("spec", "ports", j), message, fix)


_VERIFY_FIX = (
    "Let the proxy verify the server: set caCertificates (a CA file, or `system` for the OS bundle) and sni, "
    "or a credentialName whose Secret carries the CA (at sidecars only with a workloadSelector); never "
    "insecureSkipVerify."
)


def _origination_fix(
    se: Resource, spec: ServiceEntry, host: str, ports: list[ServicePort], first: _Verdict
) -> str:
    numbers = [p.number for p in ports if p.number is not None]
    tls: dict[str, Any] = {"mode": "SIMPLE"}
    if not H.is_wildcard(host):
        tls["sni"] = host
    tls["caCertificates"] = "system"
    entries = [{"port": {"number": n}, "tls": dict(tls)} for n in numbers]
    notes = [
        f"port {p.number} should also set targetPort: 443 so the TLS connection reaches the server's TLS port"
        for p in ports
        if p.number != 443 and p.target_port is None
    ]
    note = (" In the ServiceEntry, " + "; ".join(notes) + ".") if notes else ""
    if first.rules and not first.no_rule_yet:
        names = ", ".join(_name(r) for r in first.rules)
        snippet = R.dump_yaml({"spec": {"trafficPolicy": {"portLevelSettings": entries}}})
        return (
            f"In DestinationRule {names}, give each plaintext port its own entry that originates TLS (a port "
            f"entry replaces the top-level settings, subsets count only when a route names them).{note}\n"
            + snippet
        )
    doc = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {
            "name": f"{host.lstrip('*.').replace('.', '-')}-tls-origination",
            "namespace": se.namespace,
        },
        "spec": {"host": host, "trafficPolicy": {"portLevelSettings": entries}},
    }
    return (
        f"Apply this DestinationRule in {se.namespace} (first, then the ServiceEntry again), so the sidecar "
        f"originates TLS.{note}\n" + R.dump_yaml(doc)
    )


# --- DestinationRule and VirtualService ------------------------------------------------------


class _ExternalPort(NamedTuple):
    """A ServiceEntry port a change may affect (a tuple: a dict key, ordered field by field)."""

    se_key: tuple[str, str, str]
    host: str
    number: int
    index: int


def _external_ports(
    inv: InventoryView,
    allow: _AllowList,
    host: str,
    *,
    covered: bool,
    into: dict[_ExternalPort, tuple[Resource, ServicePort]] | None = None,
) -> dict[_ExternalPort, tuple[Resource, ServicePort]]:
    """Plaintext, non-exempt ports of MESH_EXTERNAL ServiceEntries whose hosts lie inside
    `host` (`covered`) or overlap it, added to `into` when given."""
    out: dict[_ExternalPort, tuple[Resource, ServicePort]] = {} if into is None else into
    for se in inv.matching("ServiceEntry", host):
        spec = se.spec
        assert isinstance(spec, ServiceEntry)
        if not spec.is_mesh_external or R.exported_nowhere(se):
            continue
        for raw in spec.hosts:
            h = raw.lower()
            if not (H.subset_of(h, host) if covered else H.matches(h, host)):
                continue
            for j, port in enumerate(spec.ports):
                if (
                    port.number is None
                    or R.is_tls_protocol(port.protocol)
                    or _exempt(spec, h, port.number, allow)
                ):
                    continue
                out[_ExternalPort(se.key, h, port.number, j)] = (se, port)
    return out


def _check_destination_rule(
    ctx: Context, views: tuple[InventoryView, InventoryView], spec: DestinationRule, allow: _AllowList
) -> Iterator[Finding]:
    after = views[0]
    res, mesh = ctx.resource, ctx.mesh
    host = R.dr_host(res, mesh.cluster_domain)
    if not host:
        return
    reported: set[_ExternalPort] = set()
    if ctx.operation != "DELETE":
        externals = _external_ports(after, allow, host, covered=True)
        for path, tls, block_port, block_subset in R.tls_blocks(res):
            hit = sorted(k for k in externals if R.block_applies(res, block_port, block_subset, k.number))
            if not hit:
                continue
            if tls.effective_mode == "DISABLE":
                reported.update(hit)
                yield Finding(
                    RULE_ID,
                    path,
                    f"tls {'mode DISABLE' if tls.mode else 'without a mode (DISABLE)'} leaves "
                    f"{_list_ports(hit)} of MESH_EXTERNAL {_se_names(hit)} without TLS origination",
                    "Set tls mode SIMPLE (or MUTUAL) with caCertificates for these ports, or declare the "
                    "port HTTPS/TLS if the application already encrypts.",
                )
            elif tls.originates:
                at_gateway = res.namespace in {
                    R.egress_gateway_namespace(g) for g in mesh.egress_gateway.hosts
                }
                problem = _unverified(R.PortTLS(res, tls, path, ""), at_gateway)
                if problem:
                    yield Finding(
                        RULE_ID,
                        path,
                        f"TLS origination for {_list_ports(hit)} does not verify the server: {problem}",
                        _VERIFY_FIX,
                        level="warn",
                    )
    ports = _external_ports(after, allow, host, covered=False)
    yield from _turned_plaintext(ctx, views, ports, ("spec", "host"), reported, allow)


def _virtual_service_ports(
    ctx: Context, spec: VirtualService, allow: _AllowList
) -> dict[_ExternalPort, tuple[Resource, ServicePort]]:
    """The MESH_EXTERNAL ports a VirtualService may affect: of its hosts and of the hosts its
    mesh routes send to."""
    res, mesh = ctx.resource, ctx.mesh
    domain = mesh.cluster_domain
    ns = res.namespace
    # A set, in no order: the ports found are keyed and sorted by their own fields. Resolved
    # names are lower case, as the egress gateway hosts are.
    hosts = {H.resolve(h, ns, domain) for h in spec.hosts}
    hosts.update(R.gateway_route_hosts(ctx.inventory, res, R.MESH_KEY, domain) - R.egress_gateway_hosts(mesh))
    ports: dict[_ExternalPort, tuple[Resource, ServicePort]] = {}
    for host in hosts:
        _external_ports(ctx.inventory, allow, host, covered=False, into=ports)
    return ports


def _turned_plaintext(
    ctx: Context,
    views: tuple[InventoryView, InventoryView] | None,
    ports: dict[_ExternalPort, tuple[Resource, ServicePort]],
    path: Path,
    reported: set[_ExternalPort],
    allow: _AllowList,
) -> Iterator[Finding]:
    """Findings for the ServiceEntry `ports` that originate TLS without the change under
    review (`before`) and not with it (`after`). `views`: the review's memoising views, made
    here when absent and some port needs a verdict."""
    if not ports:
        return
    after, before = (
        views if views is not None else R.review_views(ctx.inventory, ctx.before, ctx.resource.kind)
    )
    action = R.change_phrase(ctx.operation)
    who = f"{action} {ctx.resource.kind} {_name(ctx.resource)}"
    for key in sorted(ports):
        if key in reported:
            continue
        se, port = ports[key]
        now = _port_verdict(after, ctx.mesh, allow, se, key.host, port)
        if now.ok:
            continue
        if not _port_verdict(before, ctx.mesh, allow, se, key.host, port).ok:
            continue  # already without origination: reported on the ServiceEntry
        yield Finding(
            RULE_ID,
            path,
            f"{who} removes TLS origination from {key.host}:{key.number} ({_protocol(port)}) of ServiceEntry "
            f"{_name(se)}: " + "; ".join(now.problems),
            f"Keep a DestinationRule on the lookup path originating TLS (SIMPLE or MUTUAL) for "
            f"{key.host}:{key.number}, or a route that ends at a host:port that does, before making this "
            "change.",
        )


# --- wording -----------------------------------------------------------------------------


def _name(res: Resource) -> str:
    return f"{res.namespace}/{res.name}"


def _protocol(port: ServicePort) -> str:
    return port.protocol.upper() if port.protocol else "no protocol, sniffed"


def _list_ports(keys: list[_ExternalPort]) -> str:
    return ", ".join(dict.fromkeys(f"{k.host}:{k.number}" for k in keys))


def _se_names(keys: list[_ExternalPort]) -> str:
    names = list(dict.fromkeys(f"{k.se_key[1]}/{k.se_key[2]}" for k in keys))
    return ("ServiceEntry " if len(names) == 1 else "ServiceEntries ") + ", ".join(names)

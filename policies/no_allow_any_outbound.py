"""`no-allow-any-outbound`: no sidecar may pass traffic to unknown destinations.

ALLOW_ANY sends traffic for destinations Istio does not know to the PassthroughCluster,
out of the mesh's control. It can be set in four places, each checked here: a Sidecar, the
mesh config ConfigMap, an IstioOperator's meshConfig, and - in disguise - a ServiceEntry
that opens an opaque TCP port to every IP.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from webhook.context import Context
from webhook.findings import Finding, Path
from webhook.models import MeshConfig, ServiceEntry, Sidecar
from webhook.objects import ISTIO_OPERATOR, MESH_CONFIG
from webhook.registry import rule

RULE_ID = "no-allow-any-outbound"

# ALLOW_ANY_DYNAMIC_DNS (mesh only, Istio 1.31) forwards plaintext HTTP to any host: ALLOW_ANY in effect.
_PERMISSIVE_MODES = frozenset({"ALLOW_ANY", "ALLOW_ANY_DYNAMIC_DNS"})
# Ports Istio matches by destination port alone (no Host header, no SNI); an empty protocol
# means sniffing, which falls back to the same when the traffic is not HTTP.
_OPAQUE_PROTOCOLS = frozenset({"TCP", "MONGO", "REDIS", "MYSQL"})
_CATCH_ALL_CIDRS = frozenset({"0.0.0.0/0", "::/0"})

_SIDECAR_FIX = """\
Set REGISTRY_ONLY and declare each external destination with a ServiceEntry:
spec:
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY"""

_MESH_FIX = """\
Set REGISTRY_ONLY in the mesh config (keep the other keys of data.mesh):
data:
  mesh: |-
    outboundTrafficPolicy:
      mode: REGISTRY_ONLY"""

_OPERATOR_FIX = """\
Set REGISTRY_ONLY in the operator's meshConfig:
spec:
  meshConfig:
    outboundTrafficPolicy:
      mode: REGISTRY_ONLY"""


@rule(
    id=RULE_ID,
    title="Sidecars must not pass traffic to unknown destinations (no ALLOW_ANY)",
    kinds=("Sidecar", MESH_CONFIG, ISTIO_OPERATOR, "ServiceEntry"),
    remediation=(
        "Use outboundTrafficPolicy mode REGISTRY_ONLY in the mesh config, the IstioOperator and every "
        "Sidecar, and declare each external destination with a ServiceEntry whose TCP ports carry addresses."
    ),
)
def check(ctx: Context) -> Iterator[Finding]:
    if ctx.operation == "DELETE":
        # Removing an object never opens outbound traffic that the object itself allowed.
        return
    spec = ctx.resource.spec
    kind = ctx.resource.kind
    if kind == "Sidecar" and isinstance(spec, Sidecar):
        yield from _check_sidecar(spec)
    elif kind == MESH_CONFIG and isinstance(spec, MeshConfig):
        yield from _check_mesh_configmap(spec)
    elif kind == ISTIO_OPERATOR and isinstance(spec, MeshConfig):
        yield from _check_operator(spec, ctx.raw)
    elif kind == "ServiceEntry" and isinstance(spec, ServiceEntry) and spec.effective_resolution == "NONE":
        # Asked here, before a generator is made: most ServiceEntries resolve by DNS or STATIC.
        yield from _check_service_entry(spec)


def _mode(policy: Any) -> str | None:
    mode = getattr(policy, "mode", None)
    return mode.upper() if isinstance(mode, str) else None


def _check_sidecar(spec: Sidecar) -> Iterator[Finding]:
    # Absent: inherits the mesh mode (checked on the mesh config). `{}`: REGISTRY_ONLY (enum 0).
    policy = spec.outbound_traffic_policy
    mode = _mode(policy)
    if mode not in _PERMISSIVE_MODES:
        return
    message = (
        f"Sidecar sets outboundTrafficPolicy.mode {mode}: its workloads may reach any destination "
        "through the PassthroughCluster, outside the mesh's control"
    )
    fix = _SIDECAR_FIX
    if policy is not None and policy.egress_proxy is not None:
        fix += "\nand remove outboundTrafficPolicy.egressProxy, which Istio accepts only with ALLOW_ANY."
    yield Finding(RULE_ID, ("spec", "outboundTrafficPolicy", "mode"), message, fix)


def _check_mesh_configmap(spec: MeshConfig) -> Iterator[Finding]:
    path: Path = ("data", "mesh")
    mode = _mode(spec.outbound_traffic_policy)
    if spec.outbound_traffic_policy is None:
        # istiod overlays the ConfigMap on its built-in defaults, and there the mode is ALLOW_ANY.
        message = (
            "mesh config sets no outboundTrafficPolicy, so Istio's default ALLOW_ANY applies: sidecars "
            "may reach any destination through the PassthroughCluster"
        )
    elif mode in _PERMISSIVE_MODES:
        message = (
            f"mesh config sets outboundTrafficPolicy.mode {mode}: sidecars may reach any destination "
            "outside the mesh's control"
        )
    else:
        # `outboundTrafficPolicy: {}` replaces the default message wholesale: REGISTRY_ONLY.
        return
    yield Finding(RULE_ID, path, message, _MESH_FIX)


def _check_operator(spec: MeshConfig, raw: Mapping[str, Any]) -> Iterator[Finding]:
    mode = _mode(spec.outbound_traffic_policy)
    if mode in _PERMISSIVE_MODES:
        yield Finding(
            RULE_ID,
            ("spec", "meshConfig", "outboundTrafficPolicy", "mode"),
            f"IstioOperator sets meshConfig.outboundTrafficPolicy.mode {mode}: sidecars may reach any "
            "destination outside the mesh's control",
            _OPERATOR_FIX,
        )
    elif mode is None:
        # Operator files are often partial overlays merged at install time: another overlay may set
        # the mode, so this is only a warning. An empty block adds nothing to such a merge either.
        yield Finding(
            RULE_ID,
            _deepest_present(raw, ("spec", "meshConfig", "outboundTrafficPolicy")),
            "IstioOperator sets no meshConfig.outboundTrafficPolicy.mode; unless another overlay sets it, "
            "Istio's default ALLOW_ANY applies",
            _OPERATOR_FIX,
            level="warn",
        )


def _check_service_entry(spec: ServiceEntry) -> Iterator[Finding]:
    """A ServiceEntry with resolution NONE (`check` asked)."""
    hosts = ", ".join(spec.hosts) or "(no hosts)"
    for i, address in enumerate(spec.addresses):
        if address.strip() in _CATCH_ALL_CIDRS:
            yield Finding(
                RULE_ID,
                ("spec", "addresses", i),
                f"ServiceEntry for {hosts} with resolution NONE claims {address}: traffic to any IP on its "
                "ports is allowed, ALLOW_ANY in disguise",
                "List the service's own IP addresses or CIDRs instead of a catch-all range.",
            )
    if spec.addresses:
        return
    for i, port in enumerate(spec.ports):
        protocol = (port.protocol or "").upper()
        if protocol and protocol not in _OPAQUE_PROTOCOLS:
            continue  # HTTP matches by Host, HTTPS/TLS by SNI: only the named hosts pass
        number = port.number if port.number is not None else "?"
        spoken = f"protocol {port.protocol}" if port.protocol else "no protocol (sniffed)"
        yield Finding(
            RULE_ID,
            ("spec", "ports", i),
            f"ServiceEntry for {hosts} has resolution NONE, no addresses and port {number} with {spoken}: "
            f"traffic to any IP on port {number} is allowed, ALLOW_ANY in disguise",
            _service_entry_fix(port.name, number),
        )


def _service_entry_fix(port_name: str | None, number: int | str) -> str:
    name = port_name or f"port-{number}"
    return (
        "Pin the port to the service's own addresses:\n"
        "spec:\n"
        "  addresses:\n"
        "  - <the service's IP or CIDR>\n"
        "or, if the port carries HTTP or TLS, declare it so Istio matches by Host or SNI:\n"
        "spec:\n"
        "  ports:\n"
        f"  - number: {number}\n"
        f"    name: {name}\n"
        "    protocol: TLS"
    )


def _deepest_present(raw: Mapping[str, Any], path: Path) -> Path:
    """The longest prefix of `path` that exists in `raw`, so a finding about a missing field
    points at the line where it belongs."""
    node: Any = raw
    found: list[str | int] = []
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            break
        found.append(part)
        node = node[part]
    return tuple(found) or path[:1]

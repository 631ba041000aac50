"""Tests for policies/_mesh_routes.py: where a VirtualService's routes send traffic."""

from __future__ import annotations

from policies import _mesh_routes as R
from tests.mesh_fixtures import Doc, inventory
from webhook import policy as policy_mod

POLICY = policy_mod.load()
DOMAIN = POLICY.mesh.cluster_domain


def _vs(name: str, namespace: str, **spec: object) -> Doc:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def test_hosts_of_a_delegate_resolve_in_the_delegates_namespace() -> None:
    root = _vs(
        "web",
        "apps",
        hosts=["web"],
        http=[
            {"match": [{"uri": {"prefix": "/api"}}], "delegate": {"name": "api", "namespace": "routes"}},
            {"route": [{"destination": {"host": "web"}}], "mirrors": [{"destination": {"host": "shadow"}}]},
        ],
    )
    delegate = _vs(
        "api",
        "routes",
        http=[{"route": [{"destination": {"host": "api"}}], "mirror": {"host": "audit.example.com"}}],
    )
    inv = inventory([root, delegate], POLICY)
    res = inv.get(("VirtualService", "apps", "web"))
    assert res is not None
    assert R.gateway_route_hosts(inv, res, R.MESH_KEY, DOMAIN) == {
        "web.apps.svc.cluster.local",
        "shadow.apps.svc.cluster.local",
        "api.routes.svc.cluster.local",
        "audit.example.com",
    }
    # The same destinations as the full records, each with its path in its own object.
    dests = {
        (d.host, d.vs.namespace, d.path)
        for _, found in R.gateway_route_dests(inv, res, R.MESH_KEY, DOMAIN)
        for d in found
    }
    assert dests == {
        ("web.apps.svc.cluster.local", "apps", ("spec", "http", 1, "route", 0, "destination")),
        ("shadow.apps.svc.cluster.local", "apps", ("spec", "http", 1, "mirrors", 0, "destination")),
        ("api.routes.svc.cluster.local", "routes", ("spec", "http", 0, "route", 0, "destination")),
        ("audit.example.com", "routes", ("spec", "http", 0, "mirror")),
    }


def test_delegation_is_one_level_deep() -> None:
    root = _vs("web", "apps", hosts=["web"], http=[{"delegate": {"name": "a"}}])
    first = _vs("a", "apps", http=[{"delegate": {"name": "b"}}, {"route": [{"destination": {"host": "a"}}]}])
    second = _vs("b", "apps", http=[{"route": [{"destination": {"host": "b"}}]}])
    inv = inventory([root, first, second], POLICY)
    res = inv.get(("VirtualService", "apps", "web"))
    assert res is not None
    assert R.gateway_route_hosts(inv, res, R.MESH_KEY, DOMAIN) == {"a.apps.svc.cluster.local"}

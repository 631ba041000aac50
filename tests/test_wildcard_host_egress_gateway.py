"""Tests for policies/wildcard_host_egress_gateway.py, through the engine with YAML fixtures."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from policies.wildcard_host_egress_gateway import RULE_ID
from tests.mesh_fixtures import (
    EGRESS,
    SEEDS,
    Doc,
    fix_documents,
    load,
    outcomes,
    pick,
    review,
    with_api_version,
)
from webhook import policy as policy_mod
from webhook.findings import Action

POLICY = policy_mod.load()
GW_HOST = "istio-egressgateway.istio-system.svc.cluster.local"


def _wiki_se() -> Doc:
    return load(SEEDS / "001-07-serviceentry-wikipedia.yaml")[0]


def _shape() -> list[Doc]:
    return load(EGRESS / "wikipedia-egress-gateway.yaml")


def _findings(world: list[Doc], obj: Doc, operation: str = "CREATE", old: Doc | None = None) -> list[Any]:
    return [o.finding for o in outcomes(review(POLICY, world, operation, obj, old), RULE_ID)]


def _messages(world: list[Doc], obj: Doc) -> list[tuple[str, str]]:
    return [(f.path_text, f.message) for f in _findings(world, obj)]


# --- ServiceEntry: the seed's direct shape and the documented gateway shape -------------


def test_bare_wildcard_service_entry_from_the_seed_is_denied_with_a_ready_fix() -> None:
    se = _wiki_se()
    decision = review(POLICY, [], "CREATE", se)
    found = outcomes(decision, RULE_ID)
    assert [o.action for o in found] == [Action.DENY]
    finding = found[0].finding
    assert finding.path_text == "spec.hosts[0]"
    assert "*.wikipedia.org" in finding.message and "no VirtualService bound to mesh" in finding.message
    docs = fix_documents(finding.fix)
    assert [d["kind"] for d in docs] == ["Gateway", "VirtualService", "DestinationRule"]
    vs = pick(docs, "VirtualService")
    assert vs["spec"]["hosts"] == ["*.wikipedia.org"] and "mesh" in vs["spec"]["gateways"]
    assert pick(docs, "DestinationRule")["spec"]["host"] == GW_HOST

    # The fix is enough on its own: with it in the cluster the ServiceEntry is admitted, and
    # the VirtualService of the fix passes the VirtualService check too.
    assert _findings(docs, se) == []
    assert _findings(docs, vs) == []


def test_fix_covers_every_port_and_protocol_class() -> None:
    se = _wiki_se()
    se["spec"]["ports"] += [
        {"number": 80, "name": "http", "protocol": "HTTP"},
        {"number": 9000, "name": "sniffed"},
        {"number": 5432, "name": "tcp", "protocol": "TCP"},
    ]
    (finding,) = _findings([], se)
    docs = fix_documents(finding.fix)
    servers = pick(docs, "Gateway")["spec"]["servers"]
    assert sorted(s["port"]["number"] for s in servers) == [80, 443, 5432, 9000]
    assert _findings(docs, se) == []


@pytest.mark.parametrize("version", ["v1alpha3", "v1beta1", "v1"])
def test_documented_egress_gateway_shape_is_admitted_in_every_api_version(version: str) -> None:
    world = [with_api_version(d, version) for d in _shape()]
    assert _findings(world, with_api_version(_wiki_se(), version)) == []


def test_mesh_internal_and_concrete_hosts_are_not_this_rules_business() -> None:
    internal = _wiki_se()
    internal["spec"]["location"] = "MESH_INTERNAL"
    assert _findings([], internal) == []
    concrete = load(SEEDS / "001-03-serviceentry-google.yaml")[0]
    assert _findings([], concrete) == []


def test_explicit_mesh_external_is_the_same_as_absent_location() -> None:
    se = _wiki_se()
    se["spec"]["location"] = "MESH_EXTERNAL"
    assert len(_findings([], se)) == 1


# --- what can be missing -------------------------------------------------------------------


def test_virtual_service_without_mesh_only_applies_at_the_gateway() -> None:
    world = _shape()
    pick(world, "VirtualService")["spec"]["gateways"] = ["istio-egressgateway"]
    (msg,) = _messages(world, _wiki_se())
    assert msg[0] == "spec.hosts[0]"
    assert "bound only to gateways [istio-egressgateway], not mesh" in msg[1]


def test_virtual_service_not_bound_to_an_egress_gateway() -> None:
    world = _shape()
    vs = pick(world, "VirtualService")
    vs["spec"]["gateways"] = ["mesh"]
    vs["spec"]["tls"] = vs["spec"]["tls"][:1]
    (msg,) = _messages(world, _wiki_se())
    assert "is not bound to a Gateway that selects the egress gateway (istio=egressgateway)" in msg[1]


def test_missing_gateway_object_is_named() -> None:
    world = [d for d in _shape() if d["kind"] != "Gateway"]
    (msg,) = _messages(world, _wiki_se())
    assert "Gateway default/istio-egressgateway does not exist" in msg[1]


def test_gateway_selecting_other_workloads_does_not_count() -> None:
    world = _shape()
    # The seed's egress Gateway (002-23) selects app: istio-egressgateway.
    pick(world, "Gateway")["spec"]["selector"] = {"app": "istio-egressgateway"}
    (msg,) = _messages(world, _wiki_se())
    assert "selects app=istio-egressgateway, not the egress gateway (istio=egressgateway)" in msg[1]

    configured = policy_mod.parse(
        b"mesh:\n  egressGateway:\n    selector: {app: istio-egressgateway, istio: egressgateway}\n",
        source="test",
    )
    decision = review(configured, world, "CREATE", _wiki_se())
    assert outcomes(decision, RULE_ID) == []


def test_gateway_without_a_server_for_the_host() -> None:
    world = _shape()
    pick(world, "Gateway")["spec"]["servers"][0]["hosts"] = ["*.example.org"]
    (msg,) = _messages(world, _wiki_se())
    assert "Gateway default/istio-egressgateway has no server for *.wikipedia.org" in msg[1]


def test_gateway_in_another_namespace_referenced_by_namespace() -> None:
    world = _shape()
    gw = pick(world, "Gateway")
    gw["metadata"]["namespace"] = "istio-system"
    vs = pick(world, "VirtualService")
    vs["spec"]["gateways"] = ["mesh", "istio-system/istio-egressgateway"]
    vs["spec"]["tls"][1]["match"][0]["gateways"] = ["istio-system/istio-egressgateway"]
    assert _findings(world, _wiki_se()) == []


def test_uncovered_port_is_its_own_finding() -> None:
    se = _wiki_se()
    se["spec"]["ports"].append({"number": 80, "name": "http", "protocol": "HTTP"})
    (finding,) = _findings(_shape(), se)
    assert finding.path_text == "spec.ports[1]"
    assert finding.message.startswith("port 80 (HTTP) of wildcard host *.wikipedia.org")
    assert "has no mesh route for port 80" in finding.message
    assert "spec:" in finding.fix and "gateways:" in finding.fix


def test_mesh_route_straight_to_the_external_host_is_the_direct_shape() -> None:
    world = _shape()
    vs = pick(world, "VirtualService")
    vs["spec"]["tls"][0]["route"][0]["destination"] = {"host": "*.wikipedia.org", "port": {"number": 443}}
    se_msgs = _messages(world, _wiki_se())
    assert [p for p, _ in se_msgs] == ["spec.ports[0]"]
    assert "sends it to *.wikipedia.org, not to the egress gateway" in se_msgs[0][1]
    # The VirtualService is reported on its own route too.
    (vs_finding,) = _findings(world, vs)
    assert vs_finding.path_text == "spec.tls[0].route[0].destination.host"


def test_selective_tls_match_leaves_other_traffic_direct() -> None:
    world = _shape()
    pick(world, "VirtualService")["spec"]["tls"][0]["match"][0]["sourceLabels"] = {"app": "sleep"}
    (msg,) = _messages(world, _wiki_se())
    assert "matches no mesh route" in msg[1] and msg[0] == "spec.ports[0]"


# --- exportTo ------------------------------------------------------------------------------


def test_virtual_service_exported_to_its_namespace_only_leaves_the_rest_direct() -> None:
    world = _shape()
    pick(world, "VirtualService")["spec"]["exportTo"] = ["."]
    (msg,) = _messages(world, _wiki_se())
    assert "visible in every namespace but only VirtualService default/" in msg[1]
    assert "exportTo [default]" in msg[1]

    private_se = _wiki_se()
    private_se["spec"]["exportTo"] = ["."]
    assert _findings(world, private_se) == []


def test_virtual_service_exported_elsewhere_does_not_cover() -> None:
    world = _shape()
    pick(world, "VirtualService")["spec"]["exportTo"] = ["team-b"]
    se = _wiki_se()
    se["spec"]["exportTo"] = ["."]
    (msg,) = _messages(world, se)
    assert "covers it but is exported to [team-b], not where the ServiceEntry is visible" in msg[1]


def test_service_entry_exported_to_no_one_is_unreachable() -> None:
    se = _wiki_se()
    se["spec"]["exportTo"] = ["~"]
    assert _findings([], se) == []


# --- VirtualService ------------------------------------------------------------------------


def _wild_vs(**spec: Any) -> Doc:
    base = {"hosts": ["*.example.com"]}
    base.update(spec)
    return {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {"name": "wild", "namespace": "apps"},
        "spec": base,
    }


def test_wildcard_virtual_service_without_gateways_applies_to_mesh() -> None:
    vs = _wild_vs(http=[{"route": [{"destination": {"host": "*.example.com"}}]}])
    (finding,) = _findings([], vs)
    assert finding.path_text == "spec.http[0].route[0].destination.host"
    assert "sends sidecar traffic to *.example.com instead of the egress gateway" in finding.message


def test_wildcard_virtual_service_routes_bound_only_to_gateways_are_fine() -> None:
    vs = _wild_vs(
        gateways=["mesh", "egress"],
        http=[
            {"match": [{"gateways": ["mesh"]}], "route": [{"destination": {"host": GW_HOST}}]},
            {"match": [{"gateways": ["egress"]}], "route": [{"destination": {"host": "www.example.com"}}]},
        ],
    )
    assert _findings([], vs) == []
    gateway_only = _wild_vs(
        gateways=["egress"], http=[{"route": [{"destination": {"host": "www.example.com"}}]}]
    )
    assert _findings([], gateway_only) == []


def test_short_egress_gateway_name_resolves_in_the_virtual_services_namespace() -> None:
    vs = _wild_vs(tcp=[{"route": [{"destination": {"host": "istio-egressgateway"}}]}])
    assert len(_findings([], vs)) == 1  # in apps: istio-egressgateway.apps.svc.cluster.local
    vs["metadata"]["namespace"] = "istio-system"
    assert _findings([], vs) == []


def test_mirror_and_tcp_routes_are_checked() -> None:
    vs = _wild_vs(
        http=[
            {
                "route": [{"destination": {"host": GW_HOST}}],
                "mirror": {"host": "collector.example.com"},
            }
        ],
        tcp=[{"route": [{"destination": {"host": "db.example.com", "port": {"number": 5432}}}]}],
    )
    paths = sorted(f.path_text for f in _findings([], vs))
    assert paths == ["spec.http[0].mirror.host", "spec.tcp[0].route[0].destination.host"]


def test_cluster_internal_wildcards_are_left_alone() -> None:
    vs = _wild_vs(hosts=["*.apps.svc.cluster.local"], http=[{"route": [{"destination": {"host": "web"}}]}])
    assert _findings([], vs) == []


def test_gateways_may_use_wildcard_hosts() -> None:
    gw = pick(_shape(), "Gateway")
    gw["spec"]["servers"][0]["hosts"] = ["*"]
    assert _findings([], gw) == []


# --- engine semantics ----------------------------------------------------------------------


def test_existing_violation_is_downgraded_on_update_and_messages_are_stable() -> None:
    old = _wiki_se()
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"team": "search"}
    first = _messages([old], new)
    assert first == _messages([old], new)
    decision = review(POLICY, [old], "UPDATE", new, old)
    assert [o.action for o in outcomes(decision, RULE_ID)] == [Action.DOWNGRADED]


def test_delete_is_not_reviewed() -> None:
    assert _findings([_wiki_se()], None, "DELETE", _wiki_se()) == []  # type: ignore[arg-type]


# --- the other direction: changes that take a compliant wildcard host off the gateway ------


def _routed_world() -> tuple[list[Doc], Doc, Doc, Doc]:
    """The documented shape with the seed's ServiceEntry: compliant."""
    shape = _shape()
    se = _wiki_se()
    assert _findings(shape, se) == []
    return [*shape, se], se, pick(shape, "VirtualService"), pick(shape, "Gateway")


def test_deleting_the_egress_virtualservice_is_denied_naming_the_service_entry() -> None:
    world, _, vs, _ = _routed_world()
    (finding,) = _findings(world, None, "DELETE", vs)  # type: ignore[arg-type]
    assert finding.path_text == "spec.hosts"
    assert finding.message.startswith(
        "deleting VirtualService default/direct-wikipedia-through-egress-gateway takes a wildcard "
        "ServiceEntry off the egress gateway: wildcard host *.wikipedia.org of ServiceEntry default/wikipedia"
    )
    assert "Keep default/wikipedia routed through the egress gateway" in finding.fix
    decision = review(POLICY, world, "DELETE", None, vs)
    assert not decision.allowed


def test_an_update_sending_mesh_traffic_direct_is_denied() -> None:
    world, _, vs, _ = _routed_world()
    new = copy.deepcopy(vs)
    new["spec"]["tls"] = [r for r in new["spec"]["tls"] if "mesh" not in r["match"][0]["gateways"]]
    messages = [f.message for f in _findings(world, new, "UPDATE", vs)]
    assert len(messages) == 1 and messages[0].startswith("this change to VirtualService default/direct-")
    assert "of wildcard host *.wikipedia.org of ServiceEntry default/wikipedia goes direct" in messages[0]
    assert messages[0].endswith("has no mesh route for port 443")


def test_deleting_the_egress_gateway_is_denied_at_its_servers() -> None:
    world, _, _, gw = _routed_world()
    (finding,) = _findings(world, None, "DELETE", gw)  # type: ignore[arg-type]
    assert finding.path_text == "spec.servers"
    assert "deleting Gateway default/istio-egressgateway" in finding.message
    assert "Gateway default/istio-egressgateway does not exist" in finding.message


def test_changes_that_keep_the_route_or_concern_other_hosts_pass() -> None:
    world, se, vs, gw = _routed_world()
    relabelled = copy.deepcopy(vs)
    relabelled["metadata"]["labels"] = {"team": "search"}
    assert _findings(world, relabelled, "UPDATE", vs) == []
    other = copy.deepcopy(gw)
    other["metadata"]["name"] = "unrelated"
    other["spec"]["servers"][0]["hosts"] = ["api.example.com"]
    assert _findings([*world, other], None, "DELETE", other) == []  # type: ignore[arg-type]
    # Deleting the ServiceEntry together with its routing: nothing is left going direct.
    without_se = [d for d in world if d is not se]
    assert _findings(without_se, None, "DELETE", vs) == []  # type: ignore[arg-type]


def test_a_service_entry_already_direct_is_reported_on_itself_not_on_the_change() -> None:
    world, se, vs, _ = _routed_world()
    broken_gw = [d for d in world if d["kind"] != "Gateway"]  # direct before the change
    assert _findings(broken_gw, se) != []
    assert _findings(broken_gw, None, "DELETE", vs) == []  # type: ignore[arg-type]


def test_creating_a_wildcard_virtualservice_not_bound_to_the_egress_gateway_is_denied() -> None:
    # A second mesh VirtualService for the same wildcard host that routes to the gateway
    # service but is bound to no egress Gateway: sidecars now pick either.
    world, _, vs, _ = _routed_world()
    rival = copy.deepcopy(vs)
    rival["metadata"]["name"] = "rival"
    rival["spec"]["gateways"] = ["mesh"]
    rival["spec"]["tls"] = [r for r in rival["spec"]["tls"] if "mesh" in r["match"][0]["gateways"]]
    messages = [f.message for f in _findings(world, rival)]
    assert len(messages) == 1 and messages[0].startswith(
        "creating VirtualService default/rival takes a wildcard ServiceEntry off the egress gateway"
    )
    assert "VirtualService default/rival is not bound to a Gateway that selects the egress" in messages[0]


def test_a_route_of_a_delegate_is_named_with_its_own_virtual_service() -> None:
    se = _wiki_se()
    se["spec"]["ports"] = [{"number": 80, "name": "http", "protocol": "HTTP"}]
    root = _wild_vs(hosts=["*.wikipedia.org"], http=[{"delegate": {"name": "wiki", "namespace": "routes"}}])
    delegate = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "wiki", "namespace": "routes"},
        "spec": {"http": [{"route": [{"destination": {"host": "*.wikipedia.org"}}]}]},
    }
    # One finding for the missing gateway pair, one for the port that goes direct.
    finding = {f.path_text: f for f in _findings([root, delegate], se)}["spec.ports[0]"]
    assert (
        "the mesh route at spec.http[0].route[0].destination of VirtualService routes/wiki "
        f"(the delegate of VirtualService apps/{root['metadata']['name']}) sends it to *.wikipedia.org"
    ) in finding.message, finding.message

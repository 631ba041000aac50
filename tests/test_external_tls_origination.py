"""Tests for policies/external_tls_origination.py, through the engine with YAML fixtures."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from policies.external_tls_origination import RULE_ID
from tests.mesh_fixtures import (
    EGRESS,
    SEEDS,
    Doc,
    fix_documents,
    inventory,
    load,
    outcomes,
    pick,
    resources,
    review,
    with_api_version,
)
from webhook import policy as policy_mod
from webhook.engine import evaluate
from webhook.findings import Action, Outcome
from webhook.policy import EnforcementPoint

POLICY = policy_mod.load()


def _run(
    world: list[Doc], obj: Doc | None, operation: str = "CREATE", old: Doc | None = None
) -> list[Outcome]:
    return outcomes(review(POLICY, world, operation, obj, old), RULE_ID)


def _denials(world: list[Doc], obj: Doc, operation: str = "CREATE", old: Doc | None = None) -> list[Any]:
    return [o.finding for o in _run(world, obj, operation, old) if o.action is Action.DENY]


def _cnn() -> list[Doc]:
    """Seed 001-06: the sidecar TLS origination shape (SE port 80 targetPort 443 + DR)."""
    return load(SEEDS / "001-06-serviceentry-destinationrule-edition-cnn-com.yaml")


def _cnn_se() -> Doc:
    return pick(_cnn(), "ServiceEntry")


def _dr(tp: dict[str, Any] | None = None, *, name: str = "cnn", ns: str | None = None, **spec: Any) -> Doc:
    body: dict[str, Any] = {"host": "edition.cnn.com", **spec}
    if tp is not None:
        body["trafficPolicy"] = tp
    meta: dict[str, Any] = {"name": name}
    if ns:
        meta["namespace"] = ns
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": meta, "spec": body}


SIMPLE = {"mode": "SIMPLE", "caCertificates": "system"}


def _port80(tls: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"port": {"number": 80}, **extra}
    if tls is not None:
        entry["tls"] = tls
    return {"portLevelSettings": [entry]}


# --- ServiceEntry: the seeds --------------------------------------------------------------


def test_seed_service_entry_without_destination_rule_is_denied_and_the_fix_applies() -> None:
    se = load(SEEDS / "001-05-serviceentry-edition-cnn-com.yaml")[0]
    (finding,) = _denials([], se)
    assert finding.path_text == "spec.ports[0]"  # 443 is HTTPS: the application encrypts
    assert finding.message.startswith("edition.cnn.com:80 (HTTP) leaves the mesh without TLS origination")
    assert (
        "no DestinationRule for edition.cnn.com exists yet: apply the DestinationRule first"
        in finding.message
    )
    assert "targetPort: 443" in finding.fix
    (dr,) = fix_documents(finding.fix)
    assert dr["kind"] == "DestinationRule" and dr["metadata"]["namespace"] == "default"
    assert dr["spec"]["trafficPolicy"]["portLevelSettings"][0]["tls"]["mode"] == "SIMPLE"
    # Apply order: the DestinationRule is admitted on its own, then the ServiceEntry passes.
    assert _run([], dr) == []
    assert _run([dr], se) == []


@pytest.mark.parametrize("version", ["v1alpha3", "v1beta1", "v1"])
def test_seed_sidecar_origination_passes_with_a_verification_warning(version: str) -> None:
    world = [with_api_version(d, version) for d in _cnn()]
    found = _run(world, pick(world, "ServiceEntry"))
    assert [(o.action, o.finding.level, o.finding.path_text) for o in found] == [
        (Action.WARN, "warn", "spec.ports[0]")
    ]
    assert "does not verify the server: no caCertificates" in found[0].finding.message


def test_other_seed_service_entries() -> None:
    httpbin = load(SEEDS / "001-02-serviceentry-httpbin-ext.yaml")[0]
    assert [f.path_text for f in _denials([], httpbin)] == ["spec.ports[0]"]
    google = load(SEEDS / "001-03-serviceentry-google.yaml")[0]
    assert _run([], google) == []
    # A MESH_EXTERNAL entry with STATIC endpoints on the network still needs origination.
    # Each host is its own finding on the port.
    nginx = load(SEEDS / "002-06-serviceentry-nginx-external.yaml")[0]
    found = _denials([], nginx)
    assert [f.message.split(" ")[0] for f in found] == ["nginx.dujie.com:80", "nginx:80"]


@pytest.mark.parametrize(
    ("protocol", "denied"),
    [("http", True), ("Http2", True), ("grpc", True), ("tcp", True), ("MONGO", True), ("redis", True),
     ("mysql", True), (None, True), ("https", False), ("TLS", False), ("tls", False)],
)  # fmt: skip
def test_protocols_are_case_insensitive_and_unset_means_sniffing(protocol: str | None, denied: bool) -> None:
    se = _cnn_se()
    se["spec"]["ports"] = [{"number": 8080, "name": "p"}]
    if protocol is not None:
        se["spec"]["ports"][0]["protocol"] = protocol
    assert bool(_denials([], se)) is denied


def test_mesh_internal_is_not_checked() -> None:
    se = _cnn_se()
    se["spec"]["location"] = "MESH_INTERNAL"
    assert _run([], se) == []


# --- what the DestinationRule must say ------------------------------------------------------


def test_port_entry_without_tls_replaces_the_top_level_tls() -> None:
    dr = _dr({"tls": SIMPLE, **_port80(connectionPool={"tcp": {"maxConnections": 10}})})
    (finding,) = _denials([dr], _cnn_se())
    assert "portLevelSettings entry for port 80 of DestinationRule default/cnn has no tls" in finding.message
    assert "replaces the top-level settings wholesale" in finding.message
    assert _run([_dr({"tls": SIMPLE})], _cnn_se()) == []


def test_empty_tls_means_disable() -> None:
    (finding,) = _denials([_dr(_port80({}))], _cnn_se())
    assert "sets tls without a mode, which means DISABLE" in finding.message


def test_istio_mutual_is_not_origination_to_an_external_server() -> None:
    (finding,) = _denials([_dr(_port80({"mode": "ISTIO_MUTUAL"}))], _cnn_se())
    assert "ISTIO_MUTUAL" in finding.message and "not TLS origination" in finding.message


def test_mutual_with_credential_name_needs_a_workload_selector_at_sidecars() -> None:
    mutual = {"mode": "MUTUAL", "credentialName": "client-credential"}
    selected = _dr(_port80(mutual), workloadSelector={"matchLabels": {"app": "sleep"}})
    assert _run([selected], _cnn_se()) == []
    found = _run([_dr(_port80(mutual))], _cnn_se())
    assert [o.action for o in found] == [Action.WARN]
    assert (
        "credentialName is ignored at sidecars unless the rule has a workloadSelector"
        in found[0].finding.message
    )


def test_insecure_skip_verify_is_a_warning() -> None:
    found = _run([_dr(_port80({"mode": "SIMPLE", "insecureSkipVerify": True}))], _cnn_se())
    assert [(o.action, o.finding.level) for o in found] == [(Action.WARN, "warn")]
    assert "insecureSkipVerify is true" in found[0].finding.message


def test_subset_tls_counts_only_when_a_route_names_the_subset() -> None:
    dr = _dr(subsets=[{"name": "tls", "trafficPolicy": {"tls": SIMPLE}}])
    (finding,) = _denials([dr], _cnn_se())
    assert "originates TLS only in subset tls, which no route names" in finding.message
    vs = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "cnn"},
        "spec": {
            "hosts": ["edition.cnn.com"],
            "http": [
                {
                    "match": [{"port": 80}],
                    "route": [{"destination": {"host": "edition.cnn.com", "subset": "tls"}}],
                }
            ],
        },
    }
    assert _run([dr, vs], _cnn_se()) == []


def test_most_specific_host_wins_within_a_namespace() -> None:
    wildcard = _dr({"tls": SIMPLE}, name="all-cnn", host="*.cnn.com")
    exact = _dr({"loadBalancer": {"simple": "RANDOM"}}, name="exact")
    (finding,) = _denials([wildcard, exact], _cnn_se())
    assert "DestinationRule default/exact sets no tls for port 80" in finding.message
    assert _run([wildcard], _cnn_se()) == []


def test_client_namespace_rule_shadows_the_root_namespace() -> None:
    root = _dr({"tls": SIMPLE}, name="root", ns="istio-system")
    assert _run([root], _cnn_se()) == []
    local = _dr({"loadBalancer": {"simple": "RANDOM"}}, name="local")
    (finding,) = _denials([root, local], _cnn_se())
    assert "default/local sets no tls" in finding.message


def test_destination_rule_in_the_wrong_namespace_or_hidden_by_export_to() -> None:
    elsewhere = _dr({"tls": SIMPLE}, ns="team-b")
    (finding,) = _denials([elsewhere], _cnn_se())
    assert "no DestinationRule on the lookup path (default, istio-system) originates TLS" in finding.message
    assert "team-b/cnn is not on that path" in finding.message

    root_private = _dr({"tls": SIMPLE}, ns="istio-system", exportTo=["."])
    assert len(_denials([root_private], _cnn_se())) == 1
    local_exported_away = _dr({"tls": SIMPLE}, exportTo=["team-b"])
    assert len(_denials([local_exported_away], _cnn_se())) == 1
    root_exported_here = _dr({"tls": SIMPLE}, ns="istio-system", exportTo=["default"])
    assert _run([root_exported_here], _cnn_se()) == []


def test_wildcard_service_entry_needs_a_wildcard_destination_rule() -> None:
    se = _cnn_se()
    se["spec"]["hosts"] = ["*.cnn.com"]
    se["spec"].pop("resolution")
    exact = _dr({"tls": {"mode": "SIMPLE", "caCertificates": "system"}})
    assert len(_denials([exact], se)) == 1
    assert _run([_dr({"tls": SIMPLE}, host="*.cnn.com")], se) == []


# --- routes: port rewrite and the egress gateway -------------------------------------------


def test_port_rewrite_to_an_originating_port_passes() -> None:
    world = load(EGRESS / "cnn-port-rewrite.yaml")
    assert _run(world, pick(world, "ServiceEntry")) == []


def test_mirror_to_a_plaintext_host_is_a_way_out() -> None:
    world = load(EGRESS / "cnn-port-rewrite.yaml") + load(SEEDS / "001-02-serviceentry-httpbin-ext.yaml")
    pick(world, "VirtualService")["spec"]["http"][0]["mirror"] = {
        "host": "httpbin.org",
        "port": {"number": 80},
    }
    (finding,) = _denials(world, pick(world, "ServiceEntry", "edition-cnn-com"))
    assert "spec.http[0].mirror" in finding.message and "httpbin.org:80" in finding.message


def test_an_entry_of_mirrors_to_a_plaintext_host_is_a_way_out() -> None:
    world = load(EGRESS / "cnn-port-rewrite.yaml") + load(SEEDS / "001-02-serviceentry-httpbin-ext.yaml")
    pick(world, "VirtualService")["spec"]["http"][0]["mirrors"] = [
        {"destination": {"host": "edition.cnn.com", "port": {"number": 443}}},
        {"destination": {"host": "httpbin.org", "port": {"number": 80}}, "percentage": {"value": 5}},
    ]
    (finding,) = _denials(world, pick(world, "ServiceEntry", "edition-cnn-com"))
    assert "spec.http[0].mirrors[1].destination" in finding.message and "httpbin.org:80" in finding.message


def _delegating(to: dict[str, Any]) -> list[Doc]:
    """The port-rewrite shape with its route handed to a delegate VirtualService in `routes`."""
    world = load(EGRESS / "cnn-port-rewrite.yaml")
    root = pick(world, "VirtualService")
    root["spec"]["http"][0] = {"match": [{"port": 80}], "delegate": {"name": "cnn", "namespace": "routes"}}
    delegate = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "cnn", "namespace": "routes"},
        "spec": {"http": [{"route": [{"destination": to}]}]},
    }
    return [*world, delegate]


def test_a_delegate_virtual_service_is_followed() -> None:
    good = _delegating({"host": "edition.cnn.com", "port": {"number": 443}})
    assert _run(good, pick(good, "ServiceEntry")) == []
    bad = _delegating({"host": "edition.cnn.com", "port": {"number": 80}})
    (finding,) = _denials(bad, pick(bad, "ServiceEntry"))
    # The path is in the delegate, and the message says so.
    assert (
        "the mesh route at spec.http[0].route[0].destination of VirtualService routes/cnn "
        "(the delegate of VirtualService default/rewrite-port-for-edition-cnn-com) "
        "sends it to edition.cnn.com:80"
    ) in finding.message, finding.message


def test_a_mirror_in_a_delegate_virtual_service_is_followed() -> None:
    world = _delegating({"host": "edition.cnn.com", "port": {"number": 443}})
    world += load(SEEDS / "001-02-serviceentry-httpbin-ext.yaml")
    pick(world, "VirtualService", "cnn")["spec"]["http"][0]["mirror"] = {
        "host": "httpbin.org",
        "port": {"number": 80},
    }
    (finding,) = _denials(world, pick(world, "ServiceEntry", "edition-cnn-com"))
    assert "spec.http[0].mirror of VirtualService routes/cnn (the delegate of" in finding.message
    assert "httpbin.org:80" in finding.message


def test_sniffed_port_needs_its_tcp_traffic_covered_too() -> None:
    world = load(EGRESS / "cnn-port-rewrite.yaml")
    se = pick(world, "ServiceEntry")
    del se["spec"]["ports"][0]["protocol"]
    (finding,) = _denials(world, se)
    assert finding.path_text == "spec.ports[0]" and "the default route" in finding.message


def test_egress_gateway_origination_at_the_last_hop_passes() -> None:
    world = load(EGRESS / "cnn-egress-gateway-tls-origination.yaml")
    assert _run(world, pick(world, "ServiceEntry")) == []


def test_seed_egress_gateway_with_a_plaintext_last_hop_is_denied() -> None:
    world = [
        *load(SEEDS / "000-01-serviceentry-httpbin-ext.yaml"),
        *load(SEEDS / "000-02-gateway-destinationrule-istio-egressgateway.yaml"),
        *load(SEEDS / "000-03-virtualservice-direct-httpbin-through-egress-gateway.yaml"),
    ]
    (finding,) = _denials(world, pick(world, "ServiceEntry"))
    assert "sends it to the egress gateway" in finding.message
    assert "the gateway route at spec.http[1].route[0].destination" in finding.message
    assert "httpbin.org:80, where no DestinationRule for httpbin.org exists" in finding.message


def test_gateway_side_credential_name_in_the_gateway_namespace_verifies() -> None:
    world = load(EGRESS / "cnn-egress-gateway-tls-origination.yaml")
    dr = pick(world, "DestinationRule", "originate-tls-for-edition-cnn-com")
    dr["metadata"]["namespace"] = "istio-system"
    dr["spec"]["trafficPolicy"]["portLevelSettings"][0]["tls"] = {
        "mode": "MUTUAL",
        "credentialName": "client",
    }
    found = _run(world, pick(world, "ServiceEntry"))
    # Port 80 goes through the gateway, which reads the credential; port 443 of the entry is
    # taken straight from the sidecar, where credentialName without a workloadSelector is ignored.
    assert [(o.action, o.finding.path_text) for o in found] == [(Action.WARN, "spec.ports[1]")]
    assert "credentialName is ignored at sidecars" in found[0].finding.message


def test_egress_gateway_without_an_onward_route() -> None:
    world = load(EGRESS / "cnn-egress-gateway-tls-origination.yaml")
    vs = pick(world, "VirtualService")
    vs["spec"]["http"] = vs["spec"]["http"][:1]
    (finding,) = _denials(world, pick(world, "ServiceEntry"))
    assert "no VirtualService bound to an egress Gateway forwards edition.cnn.com:80" in finding.message


# --- exemptions ----------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "unix:///var/run/app.sock"])
def test_endpoints_that_never_leave_the_node(address: str) -> None:
    se = _cnn_se()
    se["spec"]["resolution"] = "STATIC"
    se["spec"]["endpoints"] = [{"address": address}]
    assert _run([], se) == []
    # The DestinationRule side: DISABLE for such a port is no violation.
    assert _run([se], _dr(_port80({"mode": "DISABLE"}))) == []


def test_allow_list_takes_hosts_and_host_port_pairs() -> None:
    text = (
        b"rules:\n  external-tls-origination:\n    params:\n      plaintextAllowList: [edition.cnn.com:80]\n"
    )
    pol = policy_mod.parse(text, source="test")
    se = _cnn_se()
    se["spec"]["ports"].append({"number": 8080, "name": "alt", "protocol": "HTTP"})
    found = outcomes(review(pol, [], "CREATE", se), RULE_ID)
    assert [o.finding.path_text for o in found] == ["spec.ports[2]"]

    metadata = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": "metadata"},
        "spec": {
            "hosts": ["metadata.google.internal"],
            "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
        },
    }
    assert _run([], metadata) == []


@pytest.mark.parametrize("entry", ["host:99999", "host:", "[fd00::1]x", ":80", "host:http"])
def test_allow_list_entries_are_validated(entry: str) -> None:
    text = f"rules:\n  external-tls-origination:\n    params:\n      plaintextAllowList: ['{entry}']\n"
    with pytest.raises(policy_mod.PolicyError, match="plaintextAllowList"):
        policy_mod.parse(text.encode(), source="test")


# --- the DestinationRule and VirtualService side ---------------------------------------------


def test_explicit_disable_is_always_a_violation_of_the_rule_that_says_it() -> None:
    se = _cnn_se()
    dr = _dr(_port80({"mode": "DISABLE"}))
    (finding,) = _denials([se], dr)
    assert finding.path_text == "spec.trafficPolicy.portLevelSettings[0].tls"
    assert (
        "tls mode DISABLE leaves edition.cnn.com:80 of MESH_EXTERNAL ServiceEntry default/edition-cnn-com"
        in (finding.message)
    )
    top = _dr({"tls": {}})
    (finding,) = _denials([se], top)
    assert finding.path_text == "spec.trafficPolicy.tls" and "without a mode (DISABLE)" in finding.message


def test_disable_for_a_port_with_its_own_entry_or_a_tls_port_is_no_violation() -> None:
    se = _cnn_se()
    dr = _dr({"tls": {"mode": "DISABLE"}, **_port80(SIMPLE)})  # 80 has its own entry; 443 is HTTPS
    assert _denials([se], dr) == []


def test_a_port_already_without_origination_is_reported_on_the_service_entry_only() -> None:
    se = _cnn_se()
    dr = _dr({"tls": SIMPLE, **_port80(connectionPool={"tcp": {"maxConnections": 10}})})
    assert _denials([se], dr) == []


def test_update_of_a_destination_rule_that_removes_origination() -> None:
    se = _cnn_se()
    old = _dr({"tls": SIMPLE})
    new = _dr({"tls": SIMPLE, **_port80(connectionPool={"tcp": {"maxConnections": 10}})})
    (finding,) = _denials([se, old], new, "UPDATE", old)
    assert finding.path_text == "spec.host"
    assert finding.message.startswith(
        "this change to DestinationRule default/cnn removes TLS origination from edition.cnn.com:80 (HTTP) "
        "of ServiceEntry default/edition-cnn-com"
    )
    assert (
        _denials([se, old], _dr({"tls": {"mode": "SIMPLE", "sni": "edition.cnn.com"}}), "UPDATE", old) == []
    )


def test_delete_of_the_destination_rule_is_denied() -> None:
    world = _cnn()
    dr = pick(world, "DestinationRule")
    (finding,) = _denials(world, None, "DELETE", dr)  # type: ignore[arg-type]
    assert finding.message.startswith(
        "deleting DestinationRule default/edition-cnn-com removes TLS origination"
    )
    # Deleting it when the ServiceEntry is gone is fine.
    assert _run([dr], None, "DELETE", dr) == []


def test_delete_or_update_of_the_rewriting_virtual_service() -> None:
    world = load(EGRESS / "cnn-port-rewrite.yaml")
    vs = pick(world, "VirtualService")
    (finding,) = _denials(world, None, "DELETE", vs)  # type: ignore[arg-type]
    assert "deleting VirtualService default/rewrite-port-for-edition-cnn-com" in finding.message
    assert "edition.cnn.com:80" in finding.message

    new = copy.deepcopy(vs)
    new["spec"]["http"][0]["route"][0]["destination"]["port"]["number"] = 80
    (finding,) = _denials(world, new, "UPDATE", vs)
    assert finding.path_text == "spec.hosts" and "this change to VirtualService" in finding.message


def test_egress_gateway_last_hop_rule_delete_is_denied() -> None:
    world = load(EGRESS / "cnn-egress-gateway-tls-origination.yaml")
    dr = pick(world, "DestinationRule", "originate-tls-for-edition-cnn-com")
    found = _denials(world, None, "DELETE", dr)  # type: ignore[arg-type]
    assert sorted(f.message.split(" (HTTP)")[0].rsplit(" ", 1)[-1] for f in found) == [
        "edition.cnn.com:443",
        "edition.cnn.com:80",
    ]


def test_existing_disable_is_downgraded_on_update() -> None:
    se = _cnn_se()
    old = _dr(_port80({"mode": "DISABLE"}))
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"owner": "web"}
    found = _run([se, old], new, "UPDATE", old)
    assert [o.action for o in found] == [Action.DOWNGRADED]


def test_unverified_origination_warns_on_the_destination_rule() -> None:
    se = _cnn_se()
    found = _run([se], _dr(_port80({"mode": "SIMPLE"})))
    assert [(o.action, o.finding.path_text) for o in found] == [
        (Action.WARN, "spec.trafficPolicy.portLevelSettings[0].tls")
    ]
    assert _run([se], _dr(_port80(SIMPLE))) == []


def test_messages_are_deterministic() -> None:
    world = load(EGRESS / "cnn-egress-gateway-tls-origination.yaml")
    dr = pick(world, "DestinationRule", "originate-tls-for-edition-cnn-com")
    first = [o.finding.message for o in _run(world, None, "DELETE", dr)]
    second = [o.finding.message for o in _run(list(reversed(world)), None, "DELETE", dr)]
    assert first == second and first


def test_every_seed_object_is_reviewed_in_every_operation() -> None:
    kinds = {"ServiceEntry", "DestinationRule", "VirtualService", "Gateway", "Sidecar", "WorkloadEntry"}
    world = [d for f in sorted(SEEDS.glob("*.yaml")) for d in load(f) if d["kind"] in kinds]
    assert len(world) > 30
    for doc in world:
        for operation, obj, old in (("CREATE", doc, None), ("UPDATE", doc, doc), ("DELETE", None, doc)):
            decision = review(POLICY, world, operation, obj, old)
            assert decision.status == "reviewed"
            for o in outcomes(decision, RULE_ID):
                assert o.finding.message and o.finding.fix


def test_malformed_mirror_is_skipped() -> None:
    world = load(EGRESS / "cnn-port-rewrite.yaml")
    pick(world, "VirtualService")["spec"]["http"][0]["mirrors"] = [
        {"destination": {"host": "x.org", "port": "x"}}
    ]
    assert _run(world, pick(world, "ServiceEntry")) == []


def _review_in(policy: policy_mod.Policy, inv: Any, obj: Doc) -> list[Any]:
    decision = evaluate(policy, EnforcementPoint.ADMISSION, inv, "CREATE", obj, None)
    return [o.finding for o in outcomes(decision, RULE_ID) if o.action is Action.DENY]


def test_a_replaced_destination_rule_is_judged_anew_in_the_same_inventory() -> None:
    # Judgements are kept across reviews by the DestinationRule objects they came from: one
    # replaced in the store (a watch event) must be judged again, in both directions.
    se = _cnn_se()
    originating = _dr(_port80(SIMPLE))
    inv = inventory([originating], POLICY)
    assert _review_in(POLICY, inv, se) == []
    inv.upsert(resources([_dr(_port80({"mode": "DISABLE"}))], POLICY)[0])
    (finding,) = _review_in(POLICY, inv, se)
    assert "sets tls mode DISABLE" in finding.message
    assert _review_in(POLICY, inv, se) == [finding]
    inv.upsert(resources([originating], POLICY)[0])
    assert _review_in(POLICY, inv, se) == []
    inv.delete(("DestinationRule", "default", "cnn"))
    (finding,) = _review_in(POLICY, inv, se)
    assert "no DestinationRule for edition.cnn.com exists" in finding.message


def test_the_same_destination_rules_are_judged_anew_under_other_mesh_settings() -> None:
    # The root namespace is part of the lookup path: the same inventory objects give another
    # answer under a policy with another root namespace.
    inv = inventory([_dr({"tls": SIMPLE}, name="root", ns="mesh-root")], POLICY)
    other_root = policy_mod.parse(
        policy_mod.default_policy_text().replace(b"rootNamespace: istio-system", b"rootNamespace: mesh-root"),
        source="test",
    )
    assert other_root.mesh.root_namespace == "mesh-root"
    (finding,) = _review_in(POLICY, inv, _cnn_se())
    assert "(default, istio-system)" in finding.message
    assert _review_in(other_root, inv, _cnn_se()) == []
    assert len(_review_in(POLICY, inv, _cnn_se())) == 1

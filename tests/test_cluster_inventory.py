"""The cluster-backed inventory against tests/fake_apiserver.py, through the real
`kubernetes` client: sync, watch events, resume, relist on 410, readiness, errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_apiserver import KINDS, FakeApiServer
from webhook.cluster import ClusterError
from webhook.cluster_inventory import ClusterInventory, slim_resource
from webhook.objects import ISTIO_OPERATOR, MESH_CONFIG, Resource, parse

NET = "networking.istio.io/v1"
ROOT = "istio-system"
ALL_KINDS = (
    "ServiceEntry",
    "DestinationRule",
    "VirtualService",
    "Gateway",
    "Sidecar",
    "WorkloadEntry",
    ISTIO_OPERATOR,
    MESH_CONFIG,
)


def service_entry(name: str, host: str, namespace: str = "apps", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": NET,
        "kind": "ServiceEntry",
        "metadata": {"name": name, "namespace": namespace, **meta},
        "spec": {
            "hosts": [host],
            "location": "MESH_EXTERNAL",
            "resolution": "DNS",
            "ports": [{"number": 443, "name": "https", "protocol": "HTTPS"}],
        },
    }


def mesh_configmap(name: str = "istio", mode: str = "REGISTRY_ONLY") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ROOT},
        "data": {"mesh": f"outboundTrafficPolicy:\n  mode: {mode}\n"},
    }


def one_of_each() -> list[dict[str, Any]]:
    return [
        service_entry("api", "api.example.com"),
        {
            "apiVersion": NET,
            "kind": "DestinationRule",
            "metadata": {"name": "api", "namespace": "apps"},
            "spec": {"host": "api.example.com", "trafficPolicy": {"tls": {"mode": "SIMPLE"}}},
        },
        {
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "VirtualService",
            "metadata": {"name": "reviews", "namespace": "apps"},
            "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]},
        },
        {
            "apiVersion": NET,
            "kind": "Gateway",
            "metadata": {"name": "egress", "namespace": ROOT},
            "spec": {
                "selector": {"istio": "egressgateway"},
                "servers": [{"port": {"number": 443, "name": "tls", "protocol": "TLS"}, "hosts": ["*.x.io"]}],
            },
        },
        {
            "apiVersion": NET,
            "kind": "Sidecar",
            "metadata": {"name": "default", "namespace": "apps"},
            "spec": {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}},
        },
        {
            "apiVersion": NET,
            "kind": "WorkloadEntry",
            "metadata": {"name": "vm-1", "namespace": "apps"},
            "spec": {"address": "10.0.0.7", "labels": {"app": "vm"}},
        },
        {
            "apiVersion": "install.istio.io/v1alpha1",
            "kind": "IstioOperator",
            "metadata": {"name": "control-plane", "namespace": ROOT},
            "spec": {"meshConfig": {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}},
        },
        mesh_configmap(),
        # ConfigMaps that are not mesh config: one in the root namespace, one elsewhere.
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "istio-ca-root-cert", "namespace": ROOT},
            "data": {"root-cert.pem": "x"},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "istio", "namespace": "apps"},
            "data": {},
        },
    ]


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll an observable condition until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


def _inventory(api: FakeApiServer, tmp_path: Path, **kwargs: Any) -> ClusterInventory:
    kubeconfig = tmp_path / "kubeconfig"
    api.kubeconfig(kubeconfig)
    kwargs.setdefault("backoff_initial", 0.02)
    kwargs.setdefault("backoff_max", 0.2)
    return ClusterInventory.connect(str(kubeconfig), root_namespace=ROOT, **kwargs)


@pytest.fixture
def started(api: FakeApiServer, tmp_path: Path) -> Iterator[ClusterInventory]:
    for obj in one_of_each():
        api.put(obj)
    inv = _inventory(api, tmp_path)
    inv.start()
    try:
        assert inv.wait_synced(10), inv.sync_state.message
        yield inv
    finally:
        inv.stop()


def _rv_of(inv: ClusterInventory, kind: str) -> int:
    return int({k.kind: k for k in inv.sync_state.kinds}[kind].resource_version or 0)


def test_initial_sync_holds_every_kind_in_scope(started: ClusterInventory, api: FakeApiServer) -> None:
    assert started.synced
    assert started.counts() == dict.fromkeys(ALL_KINDS, 1)
    view = started.view
    assert [r.name for r in view.matching("ServiceEntry", "api.example.com")] == ["api"]
    assert [r.name for r in view.matching("VirtualService", "reviews.apps.svc.cluster.local")] == ["reviews"]
    assert view.get((MESH_CONFIG, ROOT, "istio")) is not None
    assert view.get((MESH_CONFIG, ROOT, "istio-ca-root-cert")) is None
    assert view.get((MESH_CONFIG, "apps", "istio")) is None
    # One list per resource, then watches from that list's resourceVersion.
    for kind in ("ServiceEntry", "IstioOperator", "ConfigMap"):
        lists = api.requests("list", kind)
        assert len(lists) == 1
        assert api.wait_for(lambda kind=kind: len(api.requests("watch", kind)) == 1)
        assert api.requests("watch", kind)[0].resource_version == str(api.resource_version)
    assert api.requests("list", "ConfigMap")[0].namespace == ROOT
    assert started.sync_state.to_dict()["objects"] == len(ALL_KINDS)


def test_update_is_seen_by_the_next_lookup(started: ClusterInventory, api: FakeApiServer) -> None:
    stored = api.put(service_entry("api", "api.example.org"))
    assert eventually(lambda: _rv_of(started, "ServiceEntry") >= int(stored["metadata"]["resourceVersion"]))
    assert list(started.view.matching("ServiceEntry", "api.example.com")) == []
    assert [r.name for r in started.view.matching("ServiceEntry", "api.example.org")] == ["api"]


def test_added_object_appears(started: ClusterInventory, api: FakeApiServer) -> None:
    stored = api.put(service_entry("wild", "*.example.net", namespace="other"))
    assert eventually(lambda: _rv_of(started, "ServiceEntry") >= int(stored["metadata"]["resourceVersion"]))
    assert [r.name for r in started.view.matching("ServiceEntry", "a.example.net")] == ["wild"]
    assert started.counts()["ServiceEntry"] == 2


def test_delete_removes(started: ClusterInventory, api: FakeApiServer) -> None:
    api.delete(NET, "ServiceEntry", "apps", "api")
    assert eventually(lambda: _rv_of(started, "ServiceEntry") >= api.resource_version)
    assert list(started.view.matching("ServiceEntry", "api.example.com")) == []
    assert started.view.get(("ServiceEntry", "apps", "api")) is None
    assert started.counts()["ServiceEntry"] == 0


@pytest.mark.parametrize("abrupt", [False, True], ids=["clean-end", "connection-cut"])
def test_dropped_watch_resumes_from_last_resource_version(
    started: ClusterInventory, api: FakeApiServer, abrupt: bool
) -> None:
    stored = api.put(service_entry("second", "second.example.com"))
    last = stored["metadata"]["resourceVersion"]
    assert eventually(lambda: _rv_of(started, "ServiceEntry") >= int(last))
    # A change to another kind moves the cluster's resourceVersion past the last one the
    # ServiceEntry watch saw; the resume must use the ServiceEntry watch's own.
    api.put(mesh_configmap(mode="ALLOW_ANY"))
    watches_before = len(api.requests("watch", "ServiceEntry"))

    api.drop_watches(abrupt=abrupt)
    assert api.wait_for(lambda: len(api.requests("watch", "ServiceEntry")) > watches_before)
    resumed = api.requests("watch", "ServiceEntry")[watches_before]
    assert resumed.resource_version == last
    assert len(api.requests("list", "ServiceEntry")) == 1  # resumed, not listed again

    # And the resumed watch delivers.
    later = api.put(service_entry("third", "third.example.com"))
    assert eventually(lambda: _rv_of(started, "ServiceEntry") >= int(later["metadata"]["resourceVersion"]))
    assert started.view.get(("ServiceEntry", "apps", "third")) is not None


def test_bookmark_advances_the_resume_point(started: ClusterInventory, api: FakeApiServer) -> None:
    api.put(mesh_configmap(mode="ALLOW_ANY"))  # moves the cluster's resourceVersion
    current = api.resource_version
    api.bookmark()
    assert eventually(lambda: _rv_of(started, "ServiceEntry") == current)
    watches_before = len(api.requests("watch", "ServiceEntry"))
    api.drop_watches()
    assert api.wait_for(lambda: len(api.requests("watch", "ServiceEntry")) > watches_before)
    assert api.requests("watch", "ServiceEntry")[watches_before].resource_version == str(current)


def test_expired_resource_version_is_answered_by_a_relist(
    started: ClusterInventory, api: FakeApiServer
) -> None:
    watches_before = len(api.requests("watch", "ServiceEntry"))
    api.hold("watch")
    api.drop_watches()
    # The watch reconnects and waits, unanswered; meanwhile the cluster moves on and
    # compacts its history past the watch's resourceVersion.
    assert api.wait_for(lambda: len(api.requests("watch", "ServiceEntry")) > watches_before)
    api.put(service_entry("missed", "missed.example.com"))
    api.delete(NET, "ServiceEntry", "apps", "api")
    api.compact()
    api.release("watch")

    assert eventually(lambda: started.view.get(("ServiceEntry", "apps", "missed")) is not None)
    assert started.view.get(("ServiceEntry", "apps", "api")) is None
    assert api.gone_sent >= 1
    assert len(api.requests("list", "ServiceEntry")) == 2
    state = {k.kind: k for k in started.sync_state.kinds}["ServiceEntry"]
    assert state.expired >= 1 and state.lists == 2
    assert started.synced


def test_readiness_waits_for_the_first_full_list_of_every_kind(api: FakeApiServer, tmp_path: Path) -> None:
    for obj in one_of_each():
        api.put(obj)
    api.hold("list")
    inv = _inventory(api, tmp_path)
    assert not inv.synced
    inv.start()
    try:
        assert api.wait_for(
            lambda: {s.kind for s in api.served if s.verb == "list"} == {k.kind for k in KINDS}
        )
        assert not inv.synced
        assert not inv.wait_synced(0.05)
        assert "not synced" in inv.sync_state.message
        api.release("list")
        assert inv.wait_synced(10)
        assert inv.sync_state.message == f"inventory synced: {len(ALL_KINDS)} objects"
    finally:
        inv.stop()


def test_objects_that_do_not_parse_are_kept_out_and_counted(
    started: ClusterInventory, api: FakeApiServer
) -> None:
    broken = service_entry("broken", "broken.example.com")
    broken["spec"]["ports"] = "443"
    api.put(broken)
    assert eventually(lambda: {k.kind: k for k in started.sync_state.kinds}["ServiceEntry"].rejected == 1)
    assert started.view.get(("ServiceEntry", "apps", "broken")) is None
    # Fixed: it comes in, and the count goes back.
    fixed = api.put(service_entry("broken", "broken.example.com"))
    assert eventually(lambda: _rv_of(started, "ServiceEntry") >= int(fixed["metadata"]["resourceVersion"]))
    assert started.view.get(("ServiceEntry", "apps", "broken")) is not None
    assert {k.kind: k for k in started.sync_state.kinds}["ServiceEntry"].rejected == 0


def test_a_previously_good_object_that_stops_parsing_leaves_the_inventory(
    started: ClusterInventory, api: FakeApiServer
) -> None:
    broken = service_entry("api", "api.example.com")
    broken["spec"]["hosts"] = "api.example.com"
    api.put(broken)
    assert eventually(lambda: started.view.get(("ServiceEntry", "apps", "api")) is None)
    assert {k.kind: k for k in started.sync_state.kinds}["ServiceEntry"].rejected == 1


def test_revision_configmap_leaves_when_it_no_longer_holds_mesh_config(
    started: ClusterInventory, api: FakeApiServer
) -> None:
    api.put(mesh_configmap("istio-canary", mode="ALLOW_ANY"))
    assert eventually(lambda: started.view.get((MESH_CONFIG, ROOT, "istio-canary")) is not None)
    api.put(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio-canary", "namespace": ROOT}}
    )
    assert eventually(lambda: started.view.get((MESH_CONFIG, ROOT, "istio-canary")) is None)
    assert started.counts()[MESH_CONFIG] == 1


def test_paged_list_reads_every_page(api: FakeApiServer, tmp_path: Path) -> None:
    for i in range(7):
        api.put(service_entry(f"se-{i}", f"h{i}.example.com"))
    inv = _inventory(api, tmp_path, page_size=3)
    inv.start()
    try:
        assert inv.wait_synced(10)
        assert inv.counts()["ServiceEntry"] == 7
        pages = api.requests("list", "ServiceEntry")
        assert [p.params.get("limit") for p in pages] == ["3", "3", "3"]
        assert "continue" not in pages[0].params and all("continue" in p.params for p in pages[1:])
    finally:
        inv.stop()


def test_kind_not_served_counts_as_empty(tmp_path: Path) -> None:
    without_operator = tuple(k for k in KINDS if k.kind != ISTIO_OPERATOR)
    with FakeApiServer(without_operator) as api:
        api.put(service_entry("api", "api.example.com"))
        inv = _inventory(api, tmp_path)
        inv.start()
        try:
            assert inv.wait_synced(10)
            state = {k.kind: k for k in inv.sync_state.kinds}[ISTIO_OPERATOR]
            assert state.synced and not state.served and state.objects == 0
            assert inv.counts()["ServiceEntry"] == 1
        finally:
            inv.stop()


def test_forbidden_kind_keeps_the_inventory_not_ready(api: FakeApiServer, tmp_path: Path) -> None:
    api.forbidden.add("Sidecar")
    inv = _inventory(api, tmp_path)
    inv.start()
    try:
        sidecar = lambda: {k.kind: k for k in inv.sync_state.kinds}["Sidecar"]  # noqa: E731
        assert eventually(lambda: sidecar().errors >= 2)  # retried with backoff
        assert not inv.synced
        assert "not allowed to list sidecars.networking.istio.io" in sidecar().last_error
        assert "sidecars.networking.istio.io" in inv.sync_state.message
        api.forbidden.clear()
        assert inv.wait_synced(10)
        assert sidecar().last_error == ""
    finally:
        inv.stop()


def test_unreachable_server_is_retried_and_reported(tmp_path: Path) -> None:
    with FakeApiServer() as api:
        kubeconfig = tmp_path / "kubeconfig"
        api.kubeconfig(kubeconfig)
    # The server is gone: its port now refuses connections.
    inv = ClusterInventory.connect(str(kubeconfig), backoff_initial=0.02, backoff_max=0.1)
    inv.start()
    try:
        assert eventually(lambda: all(k.errors >= 2 for k in inv.sync_state.kinds))
        assert not inv.synced
        assert "cannot reach the Kubernetes API server" in inv.sync_state.kinds[0].last_error
    finally:
        inv.stop()


def test_stop_ends_every_thread(api: FakeApiServer, tmp_path: Path) -> None:
    inv = _inventory(api, tmp_path)
    inv.start()
    assert inv.wait_synced(10)
    assert api.wait_for(lambda: len({s.kind for s in api.served if s.verb == "watch"}) == len(KINDS))
    inv.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("inventory-")]


def test_inventory_keeps_no_last_applied_copy(api: FakeApiServer, tmp_path: Path) -> None:
    obj = service_entry(
        "api",
        "api.example.com",
        annotations={"kubectl.kubernetes.io/last-applied-configuration": "{...}", "team": "payments"},
    )
    api.put(obj)
    inv = _inventory(api, tmp_path)
    inv.start()
    try:
        assert inv.wait_synced(10)
        res = inv.view.get(("ServiceEntry", "apps", "api"))
        assert res is not None and dict(res.annotations) == {"team": "payments"}
    finally:
        inv.stop()


def test_kept_form_reads_like_the_parsed_one() -> None:
    raw = {
        "apiVersion": NET,
        "kind": "DestinationRule",
        "metadata": {"name": "api", "namespace": "apps"},
        "spec": {
            "host": "api.example.com",
            "trafficPolicy": {
                "tls": {"mode": "SIMPLE"},
                "portLevelSettings": [{"port": {"number": 80}, "tls": {"mode": "MUTUAL", "sni": "x"}}],
            },
        },
    }
    parsed, again = parse(raw, "DestinationRule"), parse(raw, "DestinationRule")
    assert isinstance(parsed, Resource) and isinstance(again, Resource)
    kept = slim_resource(parsed)
    assert kept.spec == again.spec
    assert kept.spec.model_dump(exclude_unset=True) == again.spec.model_dump(exclude_unset=True)
    assert kept.spec.model_dump(exclude_unset=True, by_alias=True) == raw["spec"]
    # Models with the same fields given share one immutable set of their names.
    tls_top = kept.spec.traffic_policy.tls
    tls_port = kept.spec.traffic_policy.port_level_settings[0].tls
    other = slim_resource(again).spec.traffic_policy.tls
    assert tls_top.model_fields_set is other.model_fields_set
    assert tls_port.model_fields_set == {"mode", "sni"}
    with pytest.raises(TypeError, match="shared"):
        tls_port.model_fields_set.add("caCertificates")
    # A copy with changes gets a set of its own; the shared one is untouched.
    changed = tls_port.model_copy(update={"ca_certificates": "/etc/ca.pem"})
    assert changed.model_fields_set == {"mode", "sni", "ca_certificates"}
    assert tls_port.model_fields_set == {"mode", "sni"}


def test_bad_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="no such file"):
        ClusterInventory.connect(str(tmp_path / "missing"))
    bad = tmp_path / "kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    with pytest.raises(ClusterError, match="kubeconfig"):
        ClusterInventory.connect(str(bad))
    with FakeApiServer() as api:
        api.kubeconfig(bad)
        with pytest.raises(ClusterError, match="nope"):
            ClusterInventory.connect(str(bad), context="nope")

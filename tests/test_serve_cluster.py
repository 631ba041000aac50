"""`meshwarden serve --kubeconfig`: the real server reads its inventory from a (fake) API
server by list+watch, is not ready until the first full sync, and judges the next request
against what the watch delivered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_apiserver import FakeApiServer
from tests.reviews import review
from tests.serving import serve, wait_for

SE = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "ServiceEntry",
    "metadata": {"name": "httpbin", "namespace": "shop"},
    "spec": {
        "hosts": ["httpbin.org"],
        "location": "MESH_EXTERNAL",
        "resolution": "DNS",
        "ports": [{"number": 80, "name": "http", "protocol": "HTTP", "targetPort": 443}],
    },
}
DR = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "DestinationRule",
    "metadata": {"name": "httpbin", "namespace": "shop"},
    "spec": {
        "host": "httpbin.org",
        "trafficPolicy": {
            "portLevelSettings": [
                {
                    "port": {"number": 80},
                    "tls": {"mode": "SIMPLE", "sni": "httpbin.org", "caCertificates": "system"},
                }
            ]
        },
    },
}


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


def _allowed(client: Any, obj: dict[str, Any]) -> bool:
    return bool(client.post("/validate", json=review(obj)).json()["response"]["allowed"])


def test_not_ready_until_synced_then_judges_with_what_the_watch_delivers(
    api: FakeApiServer, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    api.kubeconfig(kubeconfig)
    api.hold("list")  # the first list of every kind waits
    with serve(tmp_path, "--kubeconfig", str(kubeconfig)) as server, server.client() as client:
        r = client.get("/readyz")
        assert r.status_code == 503 and "not ready" in r.text
        assert client.get("/healthz").status_code == 200
        api.release("list")
        assert wait_for(lambda: client.get("/readyz").status_code == 200, timeout=20)
        assert "meshwarden_inventory_synced 1.0" in client.get("/metrics").text

        # No DestinationRule in the cluster: the plaintext port is denied.
        assert not _allowed(client, SE)
        # The DestinationRule appears by watch; the next request sees it.
        api.put(DR)
        assert wait_for(lambda: _allowed(client, SE), timeout=20)
        # Deleting it by watch makes the ServiceEntry non-compliant again.
        api.delete("networking.istio.io/v1", "DestinationRule", "shop", "httpbin")
        assert wait_for(lambda: not _allowed(client, SE), timeout=20)


def test_inventory_sources_are_alternatives(tmp_path: Path) -> None:
    (tmp_path / "inv").mkdir()
    with (
        pytest.raises(RuntimeError, match="alternatives"),
        serve(tmp_path, "--inventory-from", str(tmp_path / "inv"), "--kubeconfig", str(tmp_path / "k")),
    ):
        pass


def test_an_unusable_kubeconfig_stops_the_start_with_its_reason(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="no such file"),
        serve(tmp_path, "--kubeconfig", str(tmp_path / "none")),
    ):
        pass

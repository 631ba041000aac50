"""The webhook through the real `meshwarden serve` (uvicorn, TLS, generated certs)."""

from __future__ import annotations

import base64
import json
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonpatch
import pytest

from tests.reviews import review
from tests.serving import Server, serve

SIDECAR_ALLOW_ANY = {
    "apiVersion": "networking.istio.io/v1beta1",
    "kind": "Sidecar",
    "metadata": {"name": "default", "namespace": "shop"},
    "spec": {"outboundTrafficPolicy": {"mode": "ALLOW_ANY"}},
}
VS = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "reviews", "namespace": "shop"},
    "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("serve")
    policy = tmp / "policy.yaml"
    policy.write_text(
        "maxRequestBytes: 65536\n"
        "rules:\n  default-route-timeout: {action: warn}\n"
        "defaults:\n  default-route-timeout: {params: {timeout: 10s, maxTimeout: 30s}}\n"
    )
    with serve(tmp, "--policy", str(policy)) as s:
        yield s


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def post(client: httpx.Client, path: str, doc: Any) -> httpx.Response:
    return client.post(path, json=doc)


def test_generated_certificate_is_trusted_through_its_ca(server: Server) -> None:
    assert server.ca.exists() and (server.cert_dir / "tls.key").stat().st_mode & 0o077 == 0
    assert "created a development CA" in server.log_text()
    # A client that trusts nothing else fails: the server really speaks TLS.
    with pytest.raises(httpx.ConnectError), httpx.Client(base_url=server.url, verify=True) as strict:
        strict.get("/healthz")


def test_tls_below_1_2_is_refused(server: Server) -> None:
    ctx = server.ssl_context()
    # Let the client offer TLS 1.0/1.1 (OpenSSL's security level would refuse them on the
    # client side first), so the refusal seen here is the server's.
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        pytest.raises((httpx.ConnectError, ssl.SSLError)),
        httpx.Client(base_url=server.url, verify=ctx) as old,
    ):
        old.get("/healthz")


def test_tls_1_2_and_1_3_are_served(server: Server) -> None:
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = server.ssl_context()
        ctx.minimum_version = ctx.maximum_version = version
        with httpx.Client(base_url=server.url, verify=ctx) as c:
            assert c.get("/healthz").status_code == 200


def test_health_and_readiness(client: httpx.Client) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_deny_names_rule_field_and_fix(client: httpx.Client) -> None:
    req = review(SIDECAR_ALLOW_ANY, uid="uid-deny")
    r = post(client, "/validate", req)
    assert r.status_code == 200
    doc = r.json()
    assert doc["apiVersion"] == "admission.k8s.io/v1" and doc["kind"] == "AdmissionReview"
    resp = doc["response"]
    assert resp["uid"] == "uid-deny" and resp["allowed"] is False
    assert resp["status"]["code"] == 403
    msg = resp["status"]["message"]
    assert "[no-allow-any-outbound] spec.outboundTrafficPolicy.mode:" in msg and " — " in msg
    assert "REGISTRY_ONLY" in msg
    assert resp["auditAnnotations"] == {"verdict": "denied", "denied-rules": "no-allow-any-outbound"}


def test_allow_and_dry_run(client: httpx.Client) -> None:
    ok = dict(SIDECAR_ALLOW_ANY, spec={"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}})
    for dry in (False, True):
        resp = post(client, "/validate", review(ok, dry_run=dry)).json()["response"]
        assert resp["allowed"] is True and "status" not in resp and "patch" not in resp


def test_warn_level_findings_come_back_as_warnings(client: httpx.Client) -> None:
    vs = json.loads(json.dumps(VS))
    vs["spec"]["http"][0]["timeout"] = "45s"  # above maxTimeout 30s
    resp = post(client, "/validate", review(vs)).json()["response"]
    assert resp["allowed"] is True
    assert any(w.startswith("[default-route-timeout] spec.http[0].timeout:") for w in resp["warnings"])
    assert resp["auditAnnotations"]["warned-rules"] == "default-route-timeout"


def test_mutate_returns_a_minimal_base64_json_patch(client: httpx.Client) -> None:
    resp = post(client, "/mutate", review(VS)).json()["response"]
    assert resp["allowed"] is True and resp["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(resp["patch"]))
    assert all(op["op"] == "add" for op in patch)
    patched = jsonpatch.apply_patch(VS, patch)
    assert patched["spec"]["http"][0]["timeout"] == "10s"
    assert patched["metadata"]["annotations"]["meshwarden.io/defaults-applied"] == "default-route-timeout"
    # Idempotent: the mutated object gets no further patch.
    again = post(client, "/mutate", review(patched)).json()["response"]
    assert "patch" not in again and again["allowed"] is True


def test_delete_with_only_old_object(client: httpx.Client) -> None:
    resp = post(client, "/validate", review(None, operation="DELETE", old=SIDECAR_ALLOW_ANY)).json()[
        "response"
    ]
    assert resp["allowed"] is True


def test_out_of_scope_objects_are_allowed_untouched(client: httpx.Client) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop"}, "spec": {}}
    for path in ("/validate", "/mutate"):
        resp = post(client, path, review(pod)).json()["response"]
        assert resp["allowed"] is True and "patch" not in resp


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (
            b'{"apiVersion": "v1", "kind": "Pod"}',
            400,
            "expected apiVersion admission.k8s.io/v1 kind AdmissionReview",
        ),
        (
            b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "x"}}',
            400,
            "expected apiVersion",
        ),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', 400, "has no request"),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",'
            b' "request": {"operation": "CREATE"}}',
            400,
            "has no uid",
        ),
        (b"\xff\xfe\x00garbage", 400, "not valid JSON"),
        (b"", 400, "not valid JSON"),
        (b'{"request": ' * 300 + b"{}" + b"}" * 300, 400, "nested too deeply"),
    ],
)
def test_bad_bodies_get_a_4xx_with_a_clear_message(
    client: httpx.Client, body: bytes, status: int, expected: str
) -> None:
    r = client.post("/validate", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status
    assert expected in r.json()["error"]


@pytest.mark.parametrize(
    ("mangle", "expected"),
    [
        (lambda req: req.update(object="a string"), "request.object has the wrong type"),
        (lambda req: req.update(object=None), "CREATE request has no object"),
        (
            lambda req: req.update(operation="DELETE", object=None, oldObject=None),
            "DELETE request has no oldObject",
        ),
        (lambda req: req.update(operation="PATCH"), "request.operation must be"),
        (lambda req: req.update(dryRun="yes"), "request.dryRun has the wrong type"),
        (lambda req: req.update(userInfo=[]), "request.userInfo has the wrong type"),
    ],
)
def test_malformed_requests_with_a_uid_get_a_denying_review(
    client: httpx.Client, mangle: Any, expected: str
) -> None:
    doc = review(SIDECAR_ALLOW_ANY, uid="uid-bad")
    mangle(doc["request"])
    r = post(client, "/validate", doc)
    assert r.status_code == 200
    resp = r.json()["response"]
    assert resp["uid"] == "uid-bad" and resp["allowed"] is False
    assert resp["status"]["code"] == 400 and expected in resp["status"]["message"]


def test_malformed_istio_fields_are_denied_with_their_path(client: httpx.Client) -> None:
    bad = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": "x", "namespace": "shop"},
        "spec": {
            "hosts": ["api.example.com"],
            "ports": [{"number": "443", "name": "https", "protocol": "HTTPS"}],
        },
    }
    resp = post(client, "/validate", review(bad)).json()["response"]
    assert resp["allowed"] is False
    assert "[istio-schema] spec.ports[0].number:" in resp["status"]["message"]


def test_oversized_bodies_are_refused_before_parsing(client: httpx.Client) -> None:
    big = review(SIDECAR_ALLOW_ANY)
    big["request"]["object"]["metadata"]["annotations"] = {"pad": "x" * 70_000}
    r = post(client, "/validate", big)
    assert r.status_code == 413 and "exceeds the limit of 65536 bytes" in r.json()["error"]

    # Streaming without a content-length is bounded too.
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    r = client.post("/validate", content=chunks())
    assert r.status_code == 413


def test_wrong_methods_and_paths(client: httpx.Client) -> None:
    assert client.get("/validate").status_code == 405
    assert client.post("/nowhere", json={}).status_code == 404


def test_unknown_policy_refuses_to_start(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("rules: {nope: {}}\n")
    with pytest.raises(RuntimeError, match="unknown rule id"), serve(tmp_path, "--policy", str(bad)):
        pass


def test_deep_nesting_is_refused_and_the_server_survives(client: httpx.Client) -> None:
    # The C YAML composer recurses per level: a deeply nested mesh config must be refused
    # before it, not crash the process.
    mesh = "[" * 30000 + "]" * 30000
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "istio", "namespace": "istio-system"},
        "data": {"mesh": mesh},
    }
    resp = post(client, "/validate", review(cm)).json()["response"]
    assert resp["allowed"] is False
    assert (
        "[istio-schema] data.mesh: mesh config is not usable YAML: nested deeper than"
        in resp["status"]["message"]
    )
    deep_json = (
        b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u", "object": '
        + b"[" * 20000
        + b"]" * 20000
        + b"}}"
    )
    r = client.post("/validate", content=deep_json)
    assert r.status_code == 400 and "nested too deeply" in r.json()["error"]
    assert client.get("/healthz").status_code == 200

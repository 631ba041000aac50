"""`meshwarden certs --secret --webhook-config`, run as the real CLI against a small local
API server that stores Secrets and webhook configurations the way the real one does
(resourceVersion conflicts, JSON patch with `test`, Status bodies on errors). The issued
certificate is then served by the real `meshwarden serve` from the Secret's files and
verified with nothing but the caBundle the webhook configurations received."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jsonpatch
import pytest
from click.testing import CliRunner
from cryptography import x509

from tests.serving import serve
from webhook.certs import CA_FILE, CERT_FILE, KEY_FILE, create_bundle, plan_secret, service_names
from webhook.cli import main as cli

NS, SECRET, CONFIG = "meshwarden", "meshwarden-tls", "meshwarden"
NAMES = service_names("meshwarden", NS)
_ADMISSION = "/apis/admissionregistration.k8s.io/v1/"


class FakeAPI:
    """Secrets in one namespace and webhook configurations, by path."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.forbidden: set[tuple[str, str]] = set()  # (method, path)
        self.version = 1
        self.lock = threading.Lock()

    def add_webhook_configs(self, hooks: int = 2) -> None:
        for plural, path in (("validating", "/validate"), ("mutating", "/mutate")):
            self.put(
                f"{_ADMISSION}{plural}webhookconfigurations/{CONFIG}",
                {
                    "apiVersion": "admissionregistration.k8s.io/v1",
                    "kind": f"{plural.capitalize()}WebhookConfiguration",
                    "metadata": {"name": CONFIG},
                    "webhooks": [
                        {"name": f"h{i}.{plural}.meshwarden.io", "clientConfig": {"service": {"path": path}}}
                        for i in range(hooks)
                    ],
                },
            )

    def put(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        self.objects[path] = obj
        return obj

    def secret_data(self) -> dict[str, bytes]:
        doc = self.objects[f"/api/v1/namespaces/{NS}/secrets/{SECRET}"]
        return {k: base64.b64decode(v) for k, v in doc["data"].items()}

    def ca_bundles(self) -> list[bytes]:
        return [
            base64.b64decode(hook["clientConfig"]["caBundle"])
            for path, doc in self.objects.items()
            if path.startswith(_ADMISSION)
            for hook in doc["webhooks"]
        ]

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.requests if m != "GET"]


def _handler(api: FakeAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, doc: dict[str, Any]) -> None:
            body = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _status(self, code: int, reason: str, message: str) -> None:
            self._send(
                code,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": message,
                    "reason": reason,
                    "code": code,
                },
            )

        def _body(self) -> Any:
            return json.loads(self.rfile.read(int(self.headers["content-length"])))

        def _handle(self, method: str) -> None:
            path = self.path.split("?")[0]
            with api.lock:
                api.requests.append((method, path))
                if (method, path) in api.forbidden:
                    self._status(403, "Forbidden", f'cannot {method.lower()} "{path}"')
                    return
                if method == "GET":
                    if path in api.objects:
                        self._send(200, api.objects[path])
                    else:
                        self._status(404, "NotFound", f"{path} not found")
                elif method == "POST":
                    body = self._body()
                    full = f"{path}/{body['metadata']['name']}"
                    if full in api.objects:
                        self._status(409, "AlreadyExists", "already exists")
                    else:
                        self._send(201, api.put(full, body))
                elif method == "PUT":
                    body = self._body()
                    current = api.objects.get(path)
                    if current is None:
                        self._status(404, "NotFound", f"{path} not found")
                    elif body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                        self._status(409, "Conflict", "the object has been modified")
                    else:
                        self._send(200, api.put(path, body))
                elif method == "PATCH":
                    assert self.headers["content-type"] == "application/json-patch+json"
                    current = api.objects.get(path)
                    if current is None:
                        self._status(404, "NotFound", f"{path} not found")
                        return
                    try:
                        patched = jsonpatch.apply_patch(current, self._body())
                    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                        self._status(422, "Invalid", str(exc))
                        return
                    self._send(200, api.put(path, patched))

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

    return Handler


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[FakeAPI, Path]]:
    fake = FakeAPI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    try:
        yield fake, kubeconfig
    finally:
        server.shutdown()
        server.server_close()


def _run(kubeconfig: Path, *extra: str) -> Any:
    args = ["certs", "--kubeconfig", str(kubeconfig), "--namespace", NS, "--secret", SECRET]
    return CliRunner().invoke(cli, [*args, "--webhook-config", CONFIG, *extra])


def _leaf(data: dict[str, bytes]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(data[CERT_FILE])


def _verifies(leaf: x509.Certificate, bundle: bytes) -> bool:
    for ca in x509.load_pem_x509_certificates(bundle):
        try:
            leaf.verify_directly_issued_by(ca)
            return True
        except Exception:
            continue
    return False


def test_first_run_creates_the_secret_and_patches_every_webhook(api: tuple[FakeAPI, Path]) -> None:
    fake, kubeconfig = api
    fake.add_webhook_configs(hooks=2)
    result = _run(kubeconfig)
    assert result.exit_code == 0, result.output
    assert "new certificate (no Secret yet)" in result.output
    doc = fake.objects[f"/api/v1/namespaces/{NS}/secrets/{SECRET}"]
    assert doc["type"] == "kubernetes.io/tls"
    data = fake.secret_data()
    assert set(data) == {CERT_FILE, KEY_FILE, CA_FILE}
    leaf = _leaf(data)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == set(NAMES)
    bundles = fake.ca_bundles()
    assert len(bundles) == 4 and set(bundles) == {data[CA_FILE]}
    assert _verifies(leaf, data[CA_FILE])
    # The webhooks trust the new CA before the Secret that the replicas mount changes.
    writes = fake.writes()
    assert [m for m, _ in writes] == ["PATCH", "PATCH", "POST"]


def test_a_second_run_changes_nothing(api: tuple[FakeAPI, Path]) -> None:
    fake, kubeconfig = api
    fake.add_webhook_configs()
    assert _run(kubeconfig).exit_code == 0
    before = copy.deepcopy(fake.objects)
    fake.requests.clear()
    result = _run(kubeconfig)
    assert result.exit_code == 0, result.output
    assert "certificate kept" in result.output
    assert fake.writes() == []
    assert fake.objects == before


def test_a_cleared_ca_bundle_is_restored_without_a_new_certificate(api: tuple[FakeAPI, Path]) -> None:
    fake, kubeconfig = api
    fake.add_webhook_configs()
    assert _run(kubeconfig).exit_code == 0
    serial = _leaf(fake.secret_data()).serial_number
    fake.add_webhook_configs()  # re-applied from deploy/: no caBundle
    fake.requests.clear()
    result = _run(kubeconfig)
    assert result.exit_code == 0, result.output
    assert [m for m, _ in fake.writes()] == ["PATCH", "PATCH"]
    assert _leaf(fake.secret_data()).serial_number == serial
    assert set(fake.ca_bundles()) == {fake.secret_data()[CA_FILE]}


def test_renewal_trusts_old_and_new_ca_and_the_new_certificate_is_served(
    api: tuple[FakeAPI, Path], tmp_path: Path
) -> None:
    fake, kubeconfig = api
    fake.add_webhook_configs()
    # A Secret whose certificate expires in 10 days: inside the 30-day renewal window.
    old = create_bundle([*NAMES, "localhost", "127.0.0.1"], days=10)
    fake.put(
        f"/api/v1/namespaces/{NS}/secrets/{SECRET}",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": SECRET, "namespace": NS},
            "data": {
                CERT_FILE: base64.b64encode(old.cert).decode(),
                KEY_FILE: base64.b64encode(old.key).decode(),
                CA_FILE: base64.b64encode(old.ca_cert).decode(),
            },
        },
    )
    result = _run(kubeconfig, "--extra-name", "localhost", "--extra-name", "127.0.0.1")
    assert result.exit_code == 0, result.output
    assert "new certificate (the certificate expires" in result.output
    assert [m for m, _ in fake.writes()] == ["PATCH", "PATCH", "PUT"]
    data = fake.secret_data()
    cas = x509.load_pem_x509_certificates(data[CA_FILE])
    old_ca = x509.load_pem_x509_certificate(old.ca_cert)
    assert len(cas) == 2 and old_ca in cas, "the old CA stays trusted while replicas reload"
    assert _verifies(_leaf(data), data[CA_FILE]) and not _verifies(_leaf(data), old.ca_cert)
    assert _leaf(data).not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=300)

    # The Secret's files, as mounted, are served; the caBundle alone verifies them.
    cert_dir = tmp_path / "mounted"
    cert_dir.mkdir()
    for name, content in data.items():
        (cert_dir / name).write_bytes(content)
    bundle = fake.ca_bundles()[0]
    with serve(tmp_path, cert_dir=cert_dir) as server:
        trust = ssl.create_default_context(cadata=bundle.decode())
        with httpx.Client(verify=trust, timeout=5.0) as client:
            assert client.get(f"{server.url}/healthz").status_code == 200


def test_a_missing_webhook_configuration_changes_nothing(api: tuple[FakeAPI, Path]) -> None:
    fake, kubeconfig = api
    result = _run(kubeconfig)
    assert result.exit_code == 1
    assert (
        f"no ValidatingWebhookConfiguration or MutatingWebhookConfiguration named {CONFIG}" in result.output
    )
    assert fake.writes() == []


def test_forbidden_is_explained(api: tuple[FakeAPI, Path]) -> None:
    fake, kubeconfig = api
    fake.add_webhook_configs()
    fake.forbidden.add(("GET", f"/api/v1/namespaces/{NS}/secrets/{SECRET}"))
    result = _run(kubeconfig)
    assert result.exit_code == 1
    assert f"not allowed to read Secret {NS}/{SECRET} (HTTP 403" in result.output
    assert "deploy/bootstrap/rbac.yaml" in result.output
    assert fake.writes() == []


def test_a_secret_of_another_type_is_not_overwritten(api: tuple[FakeAPI, Path]) -> None:
    fake, kubeconfig = api
    fake.add_webhook_configs()
    fake.put(
        f"/api/v1/namespaces/{NS}/secrets/{SECRET}",
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": SECRET}, "data": {}},
    )
    result = _run(kubeconfig)
    assert result.exit_code == 1
    assert "has type Opaque, not kubernetes.io/tls" in result.output
    assert fake.writes() == []


def test_unreachable_api_server(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    result = _run(kubeconfig)
    assert result.exit_code == 1
    assert "cannot reach the Kubernetes API server at http://127.0.0.1:1" in result.output


def test_usage_errors() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["certs", "--webhook-config", CONFIG])
    assert result.exit_code == 2 and "--webhook-config needs --secret" in result.output
    result = runner.invoke(cli, ["certs", "--secret", SECRET, "--days", "20", "--renew-before-days", "30"])
    assert result.exit_code == 2 and "must exceed --renew-before-days" in result.output


# --- the renewal decision on its own ---------------------------------------------------


def test_plan_keeps_a_valid_secret_and_renews_for_each_reason() -> None:
    window = dt.timedelta(days=30)
    fresh = plan_secret(None, NAMES, renew_before=window, days=365)
    assert fresh.reason == "no Secret yet"
    kept = plan_secret(fresh.data, NAMES, renew_before=window, days=365)
    assert kept.reason is None and kept.data == fresh.data
    other = create_bundle(NAMES)
    cases = {
        "lacks tls.key": {CERT_FILE: fresh.data[CERT_FILE], CA_FILE: fresh.data[CA_FILE]},
        "does not parse": {**fresh.data, CERT_FILE: b"junk"},
        "not the certificate's": {**fresh.data, KEY_FILE: other.key},
        "does not hold the certificate's issuer": {**fresh.data, CA_FILE: other.ca_cert},
    }
    for expected, data in cases.items():
        assert expected in (plan_secret(data, NAMES, renew_before=window, days=365).reason or ""), expected
    more = plan_secret(fresh.data, [*NAMES, "meshwarden.example"], renew_before=window, days=365)
    assert "does not name meshwarden.example" in (more.reason or "")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=340)
    assert "expires" in (
        plan_secret(fresh.data, NAMES, renew_before=window, days=365, now=later).reason or ""
    )
    with pytest.raises(ValueError, match="renewed at once"):
        plan_secret(None, NAMES, renew_before=window, days=30)

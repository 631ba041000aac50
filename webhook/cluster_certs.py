"""`meshwarden certs --secret`: the serving certificate kept in a Secret, and the caBundle
of the webhook configurations kept in step with it, through the Kubernetes API.

Order matters for a renewal without a failed admission request: first every webhook's
caBundle is made to trust the new CA (alongside the old one), then the Secret is written;
the replicas reload the new certificate from their volume only after the API server
already trusts it. Everything is read and checked before anything is written, so a missing
webhook configuration or a permission error changes nothing.

Permissions used: get/create/update of the one Secret; get/patch of the named
ValidatingWebhookConfiguration and MutatingWebhookConfiguration (deploy/bootstrap/rbac.yaml).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook.certs import SECRET_KEYS, plan_secret

log = logging.getLogger("meshwarden.certs")

_KINDS = (
    ("ValidatingWebhookConfiguration", "validating"),
    ("MutatingWebhookConfiguration", "mutating"),
)


class CertsError(Exception):
    """The Secret or the webhook configurations could not be brought up to date."""


@dataclass
class Outcome:
    reason: str | None  # why a certificate was issued; None when the stored one was kept
    secret_written: bool
    patched: list[str] = field(default_factory=list)  # "Kind/name" whose caBundle changed
    ca_bundle: bytes = b""


@dataclass
class _Config:
    kind: str
    name: str
    webhooks: list[dict[str, Any]]


def reconcile(
    api: client.ApiClient,
    *,
    namespace: str,
    secret: str,
    webhook_configs: list[str],
    names: list[str],
    renew_before: dt.timedelta,
    days: int,
    now: dt.datetime | None = None,
) -> Outcome:
    """Make the Secret hold a serving certificate for `names` that is valid beyond
    `renew_before`, and every webhook of the named configurations trust its CA."""
    core = client.CoreV1Api(api)
    admission = client.AdmissionregistrationV1Api(api)
    server = str(api.configuration.host)

    stored, resource_version = _read_secret(core, namespace, secret, server)
    configs = _read_configs(admission, webhook_configs, server)
    plan = plan_secret(stored, names, renew_before=renew_before, days=days, now=now)
    if plan.reason:
        log.info("issuing a new CA and serving certificate: %s", plan.reason)

    outcome = Outcome(plan.reason, False, ca_bundle=plan.ca_bundle)
    encoded = base64.b64encode(plan.ca_bundle).decode()
    for cfg in configs:
        if _patch_ca_bundle(admission, cfg, encoded, server):
            outcome.patched.append(f"{cfg.kind}/{cfg.name}")
    if plan.reason:
        _write_secret(core, namespace, secret, plan.data, resource_version, server)
        outcome.secret_written = True
    return outcome


def _read_secret(
    core: client.CoreV1Api, namespace: str, name: str, server: str
) -> tuple[dict[str, bytes] | None, str | None]:
    try:
        obj = core.read_namespaced_secret(name, namespace, _preload_content=False)
    except ApiException as exc:
        if exc.status == 404:
            return None, None
        raise CertsError(_explain(exc, f"read Secret {namespace}/{name}", server)) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise CertsError(_unreachable(exc, server)) from exc
    doc = _json(obj)
    if doc.get("type") not in (None, "kubernetes.io/tls"):
        raise CertsError(
            f"Secret {namespace}/{name} has type {doc.get('type')}, not kubernetes.io/tls; "
            "name another Secret or delete this one"
        )
    raw = doc.get("data") or {}
    data = {k: base64.b64decode(raw[k]) for k in SECRET_KEYS if isinstance(raw.get(k), str)}
    return data, doc.get("metadata", {}).get("resourceVersion")


def _read_configs(
    admission: client.AdmissionregistrationV1Api, names: list[str], server: str
) -> list[_Config]:
    found: list[_Config] = []
    for name in names:
        here = []
        for kind, short in _KINDS:
            read = getattr(admission, f"read_{short}_webhook_configuration")
            try:
                doc = _json(read(name, _preload_content=False))
            except ApiException as exc:
                if exc.status == 404:
                    continue
                raise CertsError(_explain(exc, f"read {kind} {name}", server)) from exc
            except urllib3.exceptions.HTTPError as exc:
                raise CertsError(_unreachable(exc, server)) from exc
            here.append(_Config(kind, name, doc.get("webhooks") or []))
        if not here:
            raise CertsError(
                f"no ValidatingWebhookConfiguration or MutatingWebhookConfiguration named {name} "
                "(apply deploy/ first)"
            )
        found.extend(here)
    return found


def _patch_ca_bundle(
    admission: client.AdmissionregistrationV1Api, cfg: _Config, encoded: str, server: str
) -> bool:
    ops: list[dict[str, Any]] = []
    for i, hook in enumerate(cfg.webhooks):
        if (hook.get("clientConfig") or {}).get("caBundle") == encoded:
            continue
        # `test` pins each index to the webhook read above: a reordered list fails the
        # patch instead of giving one webhook another's caBundle.
        ops.append({"op": "test", "path": f"/webhooks/{i}/name", "value": hook.get("name")})
        ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": encoded})
    if not ops:
        return False
    short = "validating" if cfg.kind.startswith("Validating") else "mutating"
    patch = getattr(admission, f"patch_{short}_webhook_configuration")
    try:
        patch(cfg.name, ops, _preload_content=False)
    except ApiException as exc:
        raise CertsError(_explain(exc, f"patch the caBundle of {cfg.kind} {cfg.name}", server)) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise CertsError(_unreachable(exc, server)) from exc
    log.info("caBundle of %s %s updated (%d webhooks)", cfg.kind, cfg.name, len(ops) // 2)
    return True


def _write_secret(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    data: dict[str, bytes],
    resource_version: str | None,
    server: str,
) -> None:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "meshwarden", "app.kubernetes.io/component": "certs"},
        },
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }
    try:
        if resource_version is None:
            core.create_namespaced_secret(namespace, body, _preload_content=False)
        else:
            # The resourceVersion makes a concurrent change a conflict, not a lost update.
            body["metadata"]["resourceVersion"] = resource_version
            core.replace_namespaced_secret(name, namespace, body, _preload_content=False)
    except ApiException as exc:
        if exc.status == 409:
            raise CertsError(
                f"Secret {namespace}/{name} changed while the certificate was renewed; run again "
                "(the webhooks already trust the new CA, so nothing breaks meanwhile)"
            ) from exc
        raise CertsError(_explain(exc, f"write Secret {namespace}/{name}", server)) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise CertsError(_unreachable(exc, server)) from exc
    log.info("Secret %s/%s written", namespace, name)


def _json(response: Any) -> dict[str, Any]:
    doc = json.loads(response.data)
    return doc if isinstance(doc, dict) else {}


def _explain(exc: ApiException, action: str, server: str) -> str:
    message = str(exc.reason or "")
    if exc.body:
        with contextlib.suppress(ValueError, AttributeError):
            message = json.loads(exc.body).get("message") or message
    if exc.status in (401, 403):
        return (
            f"{server}: not allowed to {action} (HTTP {exc.status}: {message}); "
            "see deploy/bootstrap/rbac.yaml"
        )
    return f"{server}: cannot {action} (HTTP {exc.status}: {message})"


def _unreachable(exc: Exception, server: str) -> str:
    reason = getattr(exc, "reason", None) or exc
    return f"cannot reach the Kubernetes API server at {server}: {reason}"

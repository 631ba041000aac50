"""AdmissionReview requests as the API server sends them, for tests."""

from __future__ import annotations

import uuid
from typing import Any

_PLURALS = {
    "ServiceEntry": "serviceentries",
    "DestinationRule": "destinationrules",
    "VirtualService": "virtualservices",
    "Gateway": "gateways",
    "Sidecar": "sidecars",
    "WorkloadEntry": "workloadentries",
    "ConfigMap": "configmaps",
    "IstioOperator": "istiooperators",
}


def review(
    obj: dict[str, Any] | None,
    *,
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    dry_run: bool = False,
    uid: str | None = None,
    username: str = "alice@example.com",
    groups: list[str] | None = None,
) -> dict[str, Any]:
    target = obj if obj is not None else old
    assert target is not None
    group, _, version = str(target.get("apiVersion", "")).rpartition("/")
    kind = str(target.get("kind", ""))
    meta = target.get("metadata", {})
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid or str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {
                "group": group,
                "version": version,
                "resource": _PLURALS.get(kind, kind.lower() + "s"),
            },
            "requestKind": {"group": group, "version": version, "kind": kind},
            "namespace": meta.get("namespace", "default"),
            "name": meta.get("name", ""),
            "operation": operation,
            "userInfo": {
                "username": username,
                "uid": "u-1",
                "groups": groups or ["system:authenticated", "dev"],
            },
            "object": obj,
            "oldObject": old,
            "dryRun": dry_run,
            "options": None,
        },
    }

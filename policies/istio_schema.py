"""`istio-schema`: what Istio itself would reject.

The API server checks the CRDs' schema and CEL rules, then istiod's validating webhook runs
pkg/config/validation; the mesh config is checked by istiod when it loads it. This rule
reports the same problems, with Istio's wording and the JSON path of the field, so `check`
catches them in git before any cluster does. Type errors are reported by the engine while it
parses the object; this rule sees only objects whose fields have the right types.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from policies._schema import (
    destination_rule,
    gateway,
    mesh_config,
    service_entry,
    sidecar,
    virtual_service,
    workload_entry,
)
from policies._schema.common import Report
from webhook.context import Context
from webhook.findings import Finding
from webhook.objects import ISTIO_OPERATOR, MESH_CONFIG, NETWORKING_KINDS, SCHEMA_RULE
from webhook.registry import rule

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@rule(
    id=SCHEMA_RULE,
    title="Istio would reject the object",
    kinds=NETWORKING_KINDS | {MESH_CONFIG, ISTIO_OPERATOR},
    remediation=(
        "Fix the field the finding names: Istio's API server or istiod refuses the object as it is "
        "(or, for the mesh config, istiod ignores it), so no other rule reviews it until it is well-formed."
    ),
)
def check(ctx: Context) -> list[Finding]:
    res = ctx.resource
    report = Report()
    spec: Any = res.spec
    kind = res.kind
    if kind == "ServiceEntry":
        service_entry.validate(report, spec, res.namespace)
    elif kind == "DestinationRule":
        destination_rule.validate(report, spec, res.namespace)
    elif kind == "VirtualService":
        virtual_service.validate(report, spec, res.namespace, _raw_spec(ctx.raw))
    elif kind == "Gateway":
        gateway.validate(report, spec, res.name, _raw_spec(ctx.raw))
    elif kind == "Sidecar":
        sidecar.validate(report, spec, _raw_spec(ctx.raw))
    elif kind == "WorkloadEntry":
        workload_entry.validate(report, spec)
    elif kind == ISTIO_OPERATOR:
        mesh = _raw_spec(ctx.raw).get("meshConfig")
        mesh_config.validate(report, spec, ("spec", "meshConfig"), mesh if isinstance(mesh, dict) else {})
    elif kind == MESH_CONFIG:
        mesh_config.validate(report, spec, ("data", "mesh"), _mesh_yaml(ctx.raw))
    return report.findings


def _raw_spec(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The object's `spec` as written, for the fields the models keep as plain objects."""
    spec = raw.get("spec")
    return spec if isinstance(spec, dict) else {}


def _mesh_yaml(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ConfigMap's `mesh` document (the engine already parsed it once, so it is valid YAML)."""
    data = raw.get("data")
    text = data.get("mesh") if isinstance(data, Mapping) else None
    if not isinstance(text, str) or not text.strip():
        return {}
    try:
        mesh = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return {}
    return mesh if isinstance(mesh, Mapping) else {}

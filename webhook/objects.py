"""Istio objects as the engine sees them: which raw objects are in scope, and their
parsed form (`Resource`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from webhook.findings import Finding, Path
from webhook.models import SPEC_MODELS, IstioModel, MeshConfig
from webhook.sources import SourceError, load_yaml

NETWORKING_GROUP = "networking.istio.io"
NETWORKING_VERSIONS = frozenset({"v1alpha3", "v1beta1", "v1"})
NETWORKING_KINDS = frozenset(SPEC_MODELS)
# Pseudo-kind for the mesh config ConfigMap (`istio` / `istio-<revision>`, key `mesh`).
MESH_CONFIG = "MeshConfig"
ISTIO_OPERATOR = "IstioOperator"
SCHEMA_RULE = "istio-schema"

ResourceKey = tuple[str, str, str]  # kind, namespace, name


@dataclass(frozen=True, slots=True)
class Resource:
    """An in-scope object, parsed. `spec` is the kind's model; for the mesh ConfigMap and
    IstioOperator it is the MeshConfig they carry."""

    kind: str
    namespace: str
    name: str
    spec: IstioModel
    api_version: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)
    # Stored, not a property: rules and inventories ask for it many times per review.
    key: ResourceKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", (self.kind, self.namespace, self.name))

    @property
    def display(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def scope_kind(raw: Mapping[str, Any], root_namespace: str) -> str | None:
    """The engine kind of a raw object, or None when meshwarden does not review it."""
    api_version = raw.get("apiVersion")
    kind = raw.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return None
    group, _, version = api_version.rpartition("/")
    if group == NETWORKING_GROUP and version in NETWORKING_VERSIONS and kind in NETWORKING_KINDS:
        return kind
    if group == "install.istio.io" and kind == ISTIO_OPERATOR:
        return ISTIO_OPERATOR
    if group == "" and version == "v1" and kind == "ConfigMap" and _is_mesh_configmap(raw, root_namespace):
        return MESH_CONFIG
    return None


def _is_mesh_configmap(raw: Mapping[str, Any], root_namespace: str) -> bool:
    meta = raw.get("metadata")
    if not isinstance(meta, Mapping) or meta.get("namespace", "default") != root_namespace:
        return False
    name = meta.get("name")
    if name == "istio":
        return True
    # `istio-<revision>`; other istio-* ConfigMaps (istio-ca-root-cert,
    # istio-sidecar-injector) carry no `mesh` key and are not mesh config.
    data = raw.get("data")
    return (
        isinstance(name, str) and name.startswith("istio-") and isinstance(data, Mapping) and "mesh" in data
    )


def metadata_of(raw: Mapping[str, Any]) -> tuple[str, str]:
    """(namespace, name); an object without a namespace is in `default`, as kubectl
    would place it."""
    meta = raw.get("metadata")
    if meta.__class__ is not dict and not isinstance(meta, Mapping):  # dict first: no ABC check
        return "default", ""
    ns = meta.get("namespace")
    name = meta.get("name") or meta.get("generateName") or ""
    return (ns if isinstance(ns, str) and ns else "default"), str(name)


def parse(raw: Mapping[str, Any], kind: str) -> Resource | list[Finding]:
    """Parse an in-scope raw object. Returns the Resource, or the `istio-schema` findings
    that make it unreadable (wrong types, a mesh YAML that does not parse)."""
    namespace, name = metadata_of(raw)
    meta = raw.get("metadata")
    annotations: Mapping[str, str] = {}
    if meta.__class__ is dict or isinstance(meta, Mapping):
        found = meta.get("annotations")  # type: ignore[union-attr]
        if found.__class__ is dict or isinstance(found, Mapping):
            annotations = found
    api_version = str(raw.get("apiVersion", ""))

    if kind == MESH_CONFIG:
        data = raw.get("data")
        text = data.get("mesh", "") if isinstance(data, Mapping) else ""
        path: Path = ("data", "mesh")
        if not isinstance(text, str):
            return [
                Finding(
                    SCHEMA_RULE,
                    path,
                    "mesh config must be a YAML string",
                    "write `mesh: |` and the YAML under it",
                )
            ]
        try:
            mesh = load_yaml("mesh config", text) if text.strip() else {}
        except SourceError as exc:
            where = f" (line {exc.line})" if exc.line is not None else ""
            message = f"mesh config is not usable YAML: {exc.problem}{where}"
            return [Finding(SCHEMA_RULE, path, message, "correct the YAML at that line of `mesh`")]
        return _build(MeshConfig, mesh or {}, path, kind, namespace, name, api_version, annotations)
    if kind == ISTIO_OPERATOR:
        spec = raw.get("spec") or {}
        mesh = spec.get("meshConfig") if isinstance(spec, Mapping) else None
        path = ("spec", "meshConfig")
        return _build(MeshConfig, mesh or {}, path, kind, namespace, name, api_version, annotations)

    spec = raw.get("spec")
    if spec is None:
        return [Finding(SCHEMA_RULE, ("spec",), "spec: Required value", f"give the {kind} a `spec`")]
    return _build(SPEC_MODELS[kind], spec, ("spec",), kind, namespace, name, api_version, annotations)


def _build(
    model: type[IstioModel],
    data: Any,
    path: Path,
    kind: str,
    namespace: str,
    name: str,
    api_version: str,
    annotations: Mapping[str, str],
) -> Resource | list[Finding]:
    if not isinstance(data, Mapping):
        return [Finding(SCHEMA_RULE, path, f"{_OBJECT[0]}, got {_type_name(data)}", _OBJECT[1])]
    try:
        # The model's validator itself: `model_validate` is a Python wrapper around this call.
        spec = model.__pydantic_validator__.validate_python(data)
    except ValidationError as exc:
        return [
            Finding(SCHEMA_RULE, path + tuple(err["loc"]), type_error_message(err), type_error_fix(err))
            for err in exc.errors(include_url=False)
        ]
    return Resource(kind, namespace, name, spec, api_version, annotations)


_OBJECT = ("must be an object", "write a mapping of the fields the Istio API defines here")
# pydantic's error type -> (what the field must be, how to write it)
_TYPE_ERRORS = {
    "int_type": ("must be an integer", "write a whole number, without quotes"),
    "string_type": (
        "must be a string",
        "write a string (quote it in YAML if it looks like a number or a boolean)",
    ),
    "bool_type": ("must be a boolean", "write true or false, without quotes"),
    "list_type": ("must be a list", "write a list (one `- item` per entry)"),
    "dict_type": _OBJECT,
    "model_type": _OBJECT,
    "model_attributes_type": _OBJECT,
}


def type_error_message(err: Mapping[str, Any]) -> str:
    """A pydantic error of a modelled Istio field, as the `istio-schema` message says it."""
    known = _TYPE_ERRORS.get(err["type"])
    return f"{known[0]}, got {_type_name(err.get('input'))}" if known else str(err["msg"])


def type_error_fix(err: Mapping[str, Any]) -> str:
    known = _TYPE_ERRORS.get(err["type"])
    return known[1] if known else "give the field the type the Istio API defines for it"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "list",
        dict: "object",
    }.get(type(value), type(value).__name__)

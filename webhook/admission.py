"""The AdmissionReview contract (admission.k8s.io/v1): parsing what the API server sends
and building exactly the response it expects."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, NamedTuple

from pydantic_core import from_json, to_json

from webhook.engine import Decision

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
# The API server truncates long warnings (and rejects huge ones); keep each one short.
MAX_WARNING_CHARS = 256


class ReviewError(Exception):
    """The body is not a usable AdmissionReview. With a uid the answer is a denying
    AdmissionReview (the API server can show the message); without one, a 4xx."""

    def __init__(self, status: int, message: str, uid: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.uid = uid


class AdmissionRequest(NamedTuple):
    # A named tuple: immutable like a frozen dataclass, and a quarter of its cost to make
    # (one per review).
    uid: str
    operation: str
    kind: Mapping[str, str]
    resource: Mapping[str, str]
    namespace: str
    name: str
    object: dict[str, Any] | None
    old_object: dict[str, Any] | None
    dry_run: bool
    user: Mapping[str, Any]


def parse_review(body: bytes) -> AdmissionRequest:
    # pydantic-core's parser: twice as fast as json.loads, and it refuses nesting deeper
    # than 200 levels instead of recursing until Python's own limit.
    try:
        doc = from_json(body)
    except ValueError as exc:
        if str(exc).startswith("recursion limit exceeded"):
            raise ReviewError(400, "request body is nested too deeply to be an AdmissionReview") from None
        raise ReviewError(400, f"request body is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ReviewError(400, "request body must be a JSON object (an AdmissionReview)")
    if doc.get("kind") != KIND or doc.get("apiVersion") != API_VERSION:
        raise ReviewError(
            400,
            f"expected apiVersion {API_VERSION} kind {KIND}, got "
            f"apiVersion {doc.get('apiVersion')!r} kind {doc.get('kind')!r}",
        )
    req = doc.get("request")
    if not isinstance(req, dict):
        raise ReviewError(400, "AdmissionReview has no request object")
    uid = req.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError(400, "AdmissionReview request has no uid")

    operation = _field(req, "operation", str, "", uid)
    if operation not in _OPERATIONS:
        raise ReviewError(
            400, f"request.operation must be CREATE, UPDATE, DELETE or CONNECT, got {operation!r}", uid
        )
    obj = _field(req, "object", dict, None, uid)
    old = _field(req, "oldObject", dict, None, uid)
    if operation in ("CREATE", "UPDATE") and obj is None:
        raise ReviewError(400, f"{operation} request has no object", uid)
    if operation == "DELETE" and old is None and obj is None:
        raise ReviewError(400, "DELETE request has no oldObject", uid)
    return AdmissionRequest(
        uid,
        operation,
        _field(req, "kind", dict, {}, uid),
        _field(req, "resource", dict, {}, uid),
        _field(req, "namespace", str, "", uid),
        _field(req, "name", str, "", uid),
        obj,
        old,
        bool(_field(req, "dryRun", bool, False, uid)),
        _field(req, "userInfo", dict, {}, uid),
    )


_OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})


def _field(req: dict[str, Any], name: str, types: type, default: Any, uid: str) -> Any:
    """`req[name]`, or `default` when absent or null; a value of another type is refused."""
    value = req.get(name)
    if value is None:
        return default
    if value.__class__ is not types and not isinstance(value, types):
        raise ReviewError(400, f"request.{name} has the wrong type", uid)
    return value


def review_response(uid: str, response: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "response": {"uid": uid, **response}}


def decision_response(uid: str, decision: Decision, *, mutate: bool) -> dict[str, Any]:
    """The AdmissionReview answer for an engine decision."""
    denials = decision.denials
    warned = decision.warnings
    response: dict[str, Any] = {"allowed": not denials}
    if denials:
        response["status"] = {"code": 403, "reason": "Forbidden", "message": deny_message(decision)}
    if warned:
        response["warnings"] = [
            _warning(o.finding.rule, o.finding.path_text, o.finding.message, o.note) for o in warned
        ]
    if mutate and decision.patch and not denials:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(to_json(decision.patch)).decode()
    response["auditAnnotations"] = audit_annotations(decision)
    return review_response(uid, response)


def error_response(uid: str, code: int, message: str) -> dict[str, Any]:
    return review_response(
        uid,
        {
            "allowed": False,
            "status": {"code": code, "message": message},
            "auditAnnotations": {"verdict": "error"},
        },
    )


def deny_message(decision: Decision) -> str:
    """Every deny-level finding as `[rule-id] path: message — fix`, one per line, under a
    header naming the object."""
    lines = [f"{decision.kind} {decision.namespace}/{decision.name} violates the mesh policy:"]
    for o in decision.denials:
        f = o.finding
        line = f"[{f.rule}] {f.path_text}: {f.message}"
        if f.fix:
            line += f" — {f.fix}"
        lines.append(line)
    return "\n".join(lines)


def audit_annotations(decision: Decision) -> dict[str, str]:
    """Keys the API server prefixes with the webhook name in its own audit log."""
    out = {"verdict": decision.verdict}
    if decision.outcomes:
        denied = sorted({o.finding.rule for o in decision.denials})
        warned = sorted({o.finding.rule for o in decision.warnings})
        if denied:
            out["denied-rules"] = ",".join(denied)
        if warned:
            out["warned-rules"] = ",".join(warned)
    if decision.defaults_applied:
        out["defaults-applied"] = ",".join(decision.defaults_applied)
    return out


def _warning(rule: str, path: str, message: str, note: str) -> str:
    text = f"[{rule}] {path}: {message}" + (f" ({note})" if note else "")
    return text if len(text) <= MAX_WARNING_CHARS else text[: MAX_WARNING_CHARS - 1] + "…"

"""The AdmissionReview contract, unit level (the server tests cover it over HTTPS)."""

from __future__ import annotations

import base64
import json

import pytest

from tests.reviews import review
from webhook import policy as P
from webhook.admission import MAX_WARNING_CHARS, ReviewError, decision_response, error_response, parse_review
from webhook.engine import Decision, evaluate
from webhook.findings import Action, Finding, Outcome
from webhook.inventory import MemoryInventory


def _decision(*outcomes: Outcome, patch: list[dict[str, object]] | None = None) -> Decision:
    return Decision("Sidecar", "shop", "default", "reviewed", list(outcomes), patch or [])


def test_parse_keeps_what_the_engine_and_audit_need() -> None:
    obj = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Sidecar",
        "metadata": {"name": "s", "namespace": "a"},
        "spec": {},
    }
    req = parse_review(json.dumps(review(obj, uid="u1", dry_run=True)).encode())
    assert (req.uid, req.operation, req.namespace, req.name, req.dry_run) == ("u1", "CREATE", "a", "s", True)
    assert req.kind == {"group": "networking.istio.io", "version": "v1", "kind": "Sidecar"}
    assert req.user["username"] == "alice@example.com" and req.object == obj and req.old_object is None


def test_parse_errors_carry_the_uid_when_known() -> None:
    doc = review({"apiVersion": "v1", "kind": "Pod", "metadata": {}}, uid="u2")
    doc["request"]["operation"] = 7
    with pytest.raises(ReviewError) as err:
        parse_review(json.dumps(doc).encode())
    assert err.value.uid == "u2" and err.value.status == 400


def test_deny_lists_every_deny_finding_with_its_fix() -> None:
    a = Outcome(Finding("r1", ("spec", "hosts", 0), "bad host", "use an FQDN"), Action.DENY)
    b = Outcome(Finding("r2", ("spec",), "also bad"), Action.DENY)
    w = Outcome(Finding("r3", ("spec", "x"), "meh"), Action.WARN)
    resp = decision_response("u", _decision(a, b, w), mutate=False)["response"]
    assert resp["allowed"] is False and resp["status"]["code"] == 403
    lines = resp["status"]["message"].splitlines()
    assert lines[0] == "Sidecar shop/default violates the mesh policy:"
    assert lines[1:] == ["[r1] spec.hosts[0]: bad host — use an FQDN", "[r2] spec: also bad"]
    assert resp["warnings"] == ["[r3] spec.x: meh"]
    assert resp["auditAnnotations"] == {"verdict": "denied", "denied-rules": "r1,r2", "warned-rules": "r3"}


def test_audit_and_excepted_findings_are_neither_denials_nor_warnings() -> None:
    d = _decision(
        Outcome(Finding("r1", ("spec",), "x"), Action.AUDIT),
        Outcome(Finding("r2", ("spec",), "y"), Action.EXCEPTED, "exception T-1"),
    )
    resp = decision_response("u", d, mutate=False)["response"]
    assert resp["allowed"] is True and "warnings" not in resp and "status" not in resp


def test_long_warnings_are_cut_to_what_the_api_server_keeps() -> None:
    d = _decision(Outcome(Finding("r", ("spec",), "x" * 1000), Action.WARN))
    (warning,) = decision_response("u", d, mutate=False)["response"]["warnings"]
    assert len(warning) == MAX_WARNING_CHARS and warning.endswith("…")


def test_patch_only_on_mutate_and_base64_json() -> None:
    patch = [{"op": "add", "path": "/spec/x", "value": 1}]
    d = _decision(patch=patch)
    assert "patch" not in decision_response("u", d, mutate=False)["response"]
    resp = decision_response("u", d, mutate=True)["response"]
    assert resp["patchType"] == "JSONPatch" and json.loads(base64.b64decode(resp["patch"])) == patch


def test_error_response_denies_with_the_code() -> None:
    resp = error_response("u", 400, "nope")["response"]
    assert resp == {
        "uid": "u",
        "allowed": False,
        "status": {"code": 400, "message": "nope"},
        "auditAnnotations": {"verdict": "error"},
    }


def test_engine_decision_round_trip() -> None:
    obj = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Sidecar",
        "metadata": {"name": "s", "namespace": "a"},
        "spec": {"outboundTrafficPolicy": {"mode": "ALLOW_ANY"}},
    }
    d = evaluate(P.load(), P.EnforcementPoint.ADMISSION, MemoryInventory(), "CREATE", obj)
    resp = decision_response("u", d, mutate=False)["response"]
    assert resp["allowed"] is False and "[no-allow-any-outbound]" in resp["status"]["message"]

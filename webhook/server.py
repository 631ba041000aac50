"""The HTTPS front of the engine: AdmissionReview in, AdmissionReview out.

`POST /validate` and `POST /mutate` call the same `webhook.engine.evaluate` as the CLI.
Bad input never crashes the server and never passes silently: a request with a uid gets a
denying AdmissionReview whose message says what is wrong; one without gets a 4xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from webhook.admission import (
    AdmissionRequest,
    ReviewError,
    decision_response,
    error_response,
    parse_review,
)
from webhook.engine import Decision, EngineInputError, evaluate
from webhook.inventory import InventoryView
from webhook.policy import EnforcementPoint
from webhook.policy_store import PolicyStore

log = logging.getLogger("meshwarden.server")

AuditSink = Callable[[dict[str, Any]], None]
ReadinessCheck = Callable[[], str | None]  # a reason when not ready, else None


@dataclass
class AppState:
    policies: PolicyStore
    inventory: InventoryView
    audit: AuditSink | None = None
    readiness: list[ReadinessCheck] = field(default_factory=list)
    policy_poll_seconds: float = 2.0


class _TooLarge(Exception):
    pass


def create_app(state: AppState) -> Starlette:
    async def validate(request: Request) -> Response:
        return await _admit(state, request, mutate=False)

    async def mutate(request: Request) -> Response:
        return await _admit(state, request, mutate=True)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        reasons = [r for check in state.readiness if (r := check())]
        if reasons:
            return PlainTextResponse("not ready: " + "; ".join(reasons), status_code=503)
        return PlainTextResponse("ok")

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(_watch_policy(state))
        try:
            yield
        finally:
            task.cancel()

    return Starlette(
        routes=[
            Route("/validate", validate, methods=["POST"]),
            Route("/mutate", mutate, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


async def _watch_policy(state: AppState) -> None:
    while True:
        await asyncio.sleep(state.policy_poll_seconds)
        try:
            state.policies.check()
        except Exception:  # a reload must never take the server down
            log.exception("policy reload check failed")


async def _admit(state: AppState, request: Request, *, mutate: bool) -> Response:
    started = time.perf_counter()
    policy = state.policies.current
    endpoint = "mutate" if mutate else "validate"
    try:
        body = await _read_body(request, policy.file.max_request_bytes)
    except _TooLarge:
        message = f"request body exceeds the limit of {policy.file.max_request_bytes} bytes"
        _audit_error(state, endpoint, None, 413, message, started)
        return JSONResponse({"error": message}, status_code=413)
    try:
        req = parse_review(body)
    except ReviewError as exc:
        _audit_error(state, endpoint, exc.uid, exc.status, exc.message, started)
        if exc.uid is not None:
            return _json(error_response(exc.uid, exc.status, exc.message))
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    try:
        decision = evaluate(
            policy,
            EnforcementPoint.ADMISSION,
            state.inventory,
            req.operation,
            req.object,
            req.old_object,
            validate=not mutate,
            mutate=mutate,
        )
    except EngineInputError as exc:
        _audit_error(state, endpoint, req.uid, 400, str(exc), started, req)
        return _json(error_response(req.uid, 400, str(exc)))
    except Exception as exc:  # a rule bug must answer, not hang the API server
        log.exception("internal error reviewing %s", req.uid)
        message = f"meshwarden internal error ({type(exc).__name__}); the request was recorded"
        _audit_error(state, endpoint, req.uid, 500, message, started, req)
        return _json(error_response(req.uid, 500, message))

    answer = decision_response(req.uid, decision, mutate=mutate)
    if state.audit is not None:
        state.audit(_record(endpoint, req, decision, policy.sha256, started))
    return _json(answer)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _json(doc: dict[str, Any]) -> Response:
    return Response(json.dumps(doc, separators=(",", ":")), media_type="application/json")


def _record(
    endpoint: str, req: AdmissionRequest, decision: Decision, policy_hash: str, started: float
) -> dict[str, Any]:
    return {
        "endpoint": endpoint,
        "uid": req.uid,
        "user": {k: req.user.get(k) for k in ("username", "uid", "groups") if k in req.user},
        "operation": req.operation,
        "dryRun": req.dry_run,
        "resource": {
            **{k: req.kind.get(k, "") for k in ("group", "version", "kind")},
            "namespace": decision.namespace or req.namespace,
            "name": decision.name or req.name,
        },
        "status": decision.status,
        "verdict": decision.verdict,
        "findings": [o.to_dict() for o in decision.outcomes],
        "patch": decision.patch,
        "policyHash": policy_hash,
        "latencyMs": round((time.perf_counter() - started) * 1000, 3),
    }


def _audit_error(
    state: AppState,
    endpoint: str,
    uid: str | None,
    code: int,
    message: str,
    started: float,
    req: AdmissionRequest | None = None,
) -> None:
    if state.audit is None:
        return
    state.audit(
        {
            "endpoint": endpoint,
            "uid": uid,
            "operation": req.operation if req else None,
            "verdict": "error",
            "error": {"code": code, "message": message},
            "policyHash": state.policies.current.sha256,
            "latencyMs": round((time.perf_counter() - started) * 1000, 3),
        }
    )

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

from pydantic_core import to_json
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from webhook.admission import (
    AdmissionRequest,
    ReviewError,
    decision_response,
    error_response,
    parse_review,
)
from webhook.audit import build_record
from webhook.engine import Decision, EngineInputError, evaluate
from webhook.inventory import InventoryView
from webhook.metrics import CONTENT_TYPE, Metrics
from webhook.policy import EnforcementPoint
from webhook.policy_store import PolicyStore
from webhook.shutdown import Draining, close_when_draining

log = logging.getLogger("meshwarden.server")

AuditSink = Callable[[dict[str, Any]], object]
ReadinessCheck = Callable[[], str | None]  # a reason when not ready, else None


@dataclass
class AppState:
    policies: PolicyStore
    inventory: InventoryView
    audit: AuditSink | None = None
    metrics: Metrics | None = None
    replica: str = ""  # this replica's name, in every audit record
    readiness: list[ReadinessCheck] = field(default_factory=list)
    policy_poll_seconds: float = 2.0


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


# Reviews are answered by a plain ASGI handler: the API server waits on every one, and
# Starlette's request/response objects and middleware would add a quarter to each answer.
# Everything else (probes, metrics, 404/405) goes through Starlette.
_ADMISSION_PATHS = {"/validate": False, "/mutate": True}  # path -> mutate
_JSON_HEADER = (b"content-type", b"application/json")


def create_app(state: AppState, draining: Draining | None = None) -> ASGIApp:
    """The webhook's ASGI app. While `draining` is on, every response says
    `Connection: close`, so clients stop reusing connections to this replica."""
    drain = draining or Draining()

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        reasons = [r for check in state.readiness if (r := check())]
        if reasons:
            return PlainTextResponse("not ready: " + "; ".join(reasons), status_code=503)
        return PlainTextResponse("ok")

    async def metrics(_: Request) -> Response:
        if state.metrics is None:
            return PlainTextResponse("metrics are off", status_code=404)
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(_watch_policy(state))
        try:
            yield
        finally:
            task.cancel()

    async def admission(scope: Scope, receive: Receive, send: Send) -> None:
        mutate = _ADMISSION_PATHS[scope["path"]]
        try:
            status, body = await _admit(state, scope, receive, mutate=mutate)
        except _Disconnected:
            return  # nobody is waiting for the answer
        except Exception:  # never leave the API server without an answer
            log.exception("internal error answering %s", scope["path"])
            status, body = 500, _dumps({"error": "meshwarden internal error; see the webhook's log"})
        headers = [_JSON_HEADER, (b"content-length", str(len(body)).encode())]
        if drain.on:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    rest = close_when_draining(
        Starlette(
            routes=[
                Route("/validate", admission, methods=["POST"]),
                Route("/mutate", admission, methods=["POST"]),
                Route("/healthz", healthz, methods=["GET"]),
                Route("/readyz", readyz, methods=["GET"]),
                Route("/metrics", metrics, methods=["GET"]),
            ],
            lifespan=lifespan,
        ),
        drain,
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in _ADMISSION_PATHS:
            await admission(scope, receive, send)
        else:
            await rest(scope, receive, send)

    return app


async def _watch_policy(state: AppState) -> None:
    while True:
        await asyncio.sleep(state.policy_poll_seconds)
        try:
            state.policies.check()
        except Exception:  # a reload must never take the server down
            log.exception("policy reload check failed")


async def _admit(state: AppState, scope: Scope, receive: Receive, *, mutate: bool) -> tuple[int, bytes]:
    """The HTTP status and JSON body answering one review."""
    started = time.perf_counter()
    policy = state.policies.current
    endpoint = "mutate" if mutate else "validate"
    try:
        body = await _read_body(scope, receive, policy.file.max_request_bytes)
    except _TooLarge:
        message = f"request body exceeds the limit of {policy.file.max_request_bytes} bytes"
        _audit_error(state, endpoint, None, 413, message, started)
        return 413, _dumps({"error": message})
    # Yield to the event loop once between reading a review and the CPU-bound work on it.
    # Without it a review never suspends: under load the loop runs a whole batch of reviews
    # between two polls of its sockets, and a request that arrives just after a poll waits
    # for two batches instead of one (at 16 connections, p99 twice p50). With it, requests
    # that arrived meanwhile join the batch, and they are answered in arrival order.
    await asyncio.sleep(0)
    try:
        req = parse_review(body)
    except ReviewError as exc:
        _audit_error(state, endpoint, _request_part(body), exc.status, exc.message, started)
        if exc.uid is not None:
            return 200, _dumps(error_response(exc.uid, exc.status, exc.message))
        return exc.status, _dumps({"error": exc.message})

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
        _audit_error(state, endpoint, _request_of(req), 400, str(exc), started)
        return 200, _dumps(error_response(req.uid, 400, str(exc)))
    except Exception as exc:  # a rule bug must answer, not hang the API server
        log.exception("internal error reviewing %s", req.uid)
        message = f"meshwarden internal error ({type(exc).__name__}); the request was recorded"
        _audit_error(state, endpoint, _request_of(req), 500, message, started)
        return 200, _dumps(error_response(req.uid, 500, message))

    answer = decision_response(req.uid, decision, mutate=mutate)
    _observe(
        state,
        endpoint,
        started,
        _request_of(req),
        decision.verdict,
        policy.sha256,
        decision=decision,
        patch=decision.patch if mutate and decision.allowed else None,
    )
    return 200, _dumps(answer)


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _dumps(doc: dict[str, Any]) -> bytes:
    # pydantic-core's encoder: compact UTF-8 JSON, a tenth of json.dumps's time.
    return to_json(doc)


def _request_of(req: AdmissionRequest) -> dict[str, Any]:
    """The parts of the request an audit record names, as the API server sent them."""
    return {
        "uid": req.uid,
        "operation": req.operation,
        "kind": req.kind,
        "namespace": req.namespace,
        "name": req.name,
        "dryRun": req.dry_run,
        "userInfo": req.user,
    }


def _request_part(body: bytes) -> dict[str, Any] | None:
    # A review refused by parse_review is still recorded with whatever it says about
    # who asked for what; only this error path parses the body a second time.
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    req = doc.get("request") if isinstance(doc, dict) else None
    return req if isinstance(req, dict) else None


def _observe(
    state: AppState,
    endpoint: str,
    started: float,
    request: dict[str, Any] | None,
    verdict: str,
    policy_hash: str,
    *,
    decision: Decision | None = None,
    patch: list[dict[str, Any]] | None = None,
    error: str = "",
    code: int = 0,
) -> None:
    """Write the audit record (before the response leaves) and count the decision."""
    seconds = time.perf_counter() - started
    outcomes = decision.outcomes if decision is not None else []
    if state.audit is not None:
        state.audit(
            build_record(
                request=request,
                webhook=endpoint,
                verdict=verdict,
                outcomes=outcomes,
                patch=patch,
                policy_hash=policy_hash,
                latency_seconds=seconds,
                replica=state.replica,
                status=decision.status if decision is not None else "",
                kind=decision.kind if decision is not None else "",
                namespace=decision.namespace if decision is not None else "",
                name=decision.name if decision is not None else "",
                error=error,
                error_code=code,
            )
        )
    if state.metrics is not None:
        kind = request.get("kind") if request else None
        state.metrics.observe_decision(
            webhook=endpoint,
            kind=str(kind.get("kind", "")) if isinstance(kind, dict) else "",
            operation=str(request.get("operation", "")) if request else "",
            verdict=verdict,
            outcomes=outcomes,
            seconds=seconds,
        )


def _audit_error(
    state: AppState,
    endpoint: str,
    request: dict[str, Any] | None,
    code: int,
    message: str,
    started: float,
) -> None:
    _observe(
        state, endpoint, started, request, "error", state.policies.current.sha256, error=message, code=code
    )

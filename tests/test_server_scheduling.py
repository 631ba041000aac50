"""How a review shares the server's event loop (the ASGI app, in-process: what is checked
is the order of work on one loop, which a client over the network cannot observe)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.reviews import review
from webhook.inventory import MemoryInventory
from webhook.policy_store import PolicyStore
from webhook.server import AppState, create_app

VS = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "reviews", "namespace": "shop"},
    "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]},
}


def test_a_review_lets_the_loop_run_between_reading_the_body_and_reviewing_it() -> None:
    # Under load, a review that never suspends keeps requests that arrive meanwhile waiting
    # for a whole extra batch of reviews (p99 twice p50 at 16 connections).
    events: list[str] = []
    state = AppState(policies=PolicyStore(None), inventory=MemoryInventory())
    state.audit = lambda record: events.append(f"reviewed {record['verdict']}")
    app = create_app(state)
    body = json.dumps(review(VS)).encode()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def main() -> None:
        scope = {"type": "http", "method": "POST", "path": "/validate", "headers": []}
        # Scheduled before the review starts: it runs while the review yields, or only after
        # the review has finished if it never does.
        asyncio.get_running_loop().call_soon(events.append, "other work")
        await app(scope, receive, send)

    asyncio.run(main())
    assert events == ["other work", "reviewed allowed"]
    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"])["response"]["allowed"] is True

"""SIGTERM during a burst of admission requests against the real `meshwarden serve`: /readyz
fails first, requests keep being answered through --shutdown-delay, a request still in
flight when uvicorn starts draining completes, none fails, and the process exits 0."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.reviews import review
from tests.serving import Server, serve, wait_for

VIRTUAL_SERVICE = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "reviews", "namespace": "shop"},
    "spec": {
        "hosts": ["reviews"],
        "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}],
    },
}
DELAY = 1.5


def _check(response: httpx.Response, uid: str) -> str:
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    answer = response.json().get("response", {})
    return "ok" if answer.get("uid") == uid and "allowed" in answer else f"bad answer: {response.text[:200]}"


def _slow_body(first: bytes, rest: bytes, release: threading.Event) -> Iterator[bytes]:
    yield first
    # The rest of the body is held back until the server has begun draining, so this
    # request is provably in flight when uvicorn stops accepting.
    release.wait(30)
    yield rest


def test_sigterm_during_a_burst_fails_no_request(tmp_path: Path) -> None:
    with serve(tmp_path, "--shutdown-delay", str(DELAY)) as server:
        results: list[tuple[float, str]] = []
        lock = threading.Lock()
        in_service = threading.Event()  # the endpoint is in the Service
        in_service.set()
        readyz_failed_at: list[float] = []
        healthz_while_draining: list[int] = []

        def caller(mutate: bool) -> None:
            path = "/mutate" if mutate else "/validate"
            with server.client() as client:
                while in_service.is_set():
                    body = review(VIRTUAL_SERVICE)
                    try:
                        outcome = _check(client.post(path, json=body), body["request"]["uid"])
                    except httpx.HTTPError as exc:
                        outcome = f"{type(exc).__name__}: {exc}"
                    with lock:
                        results.append((time.monotonic(), outcome))

        def endpoints_controller() -> None:
            # Plays the part of Kubernetes: the endpoint is removed once /readyz fails.
            with server.client() as client:
                while True:
                    r = client.get("/readyz")
                    if r.status_code == 503:
                        readyz_failed_at.append(time.monotonic())
                        assert "shutting down" in r.text
                        healthz_while_draining.append(client.get("/healthz").status_code)
                        in_service.clear()
                        return

        callers = [threading.Thread(target=caller, args=(i % 2 == 1,)) for i in range(6)]
        controller = threading.Thread(target=endpoints_controller)
        for t in callers:
            t.start()

        # The request in flight across the start of the drain.
        release = threading.Event()
        slow_review = review(VIRTUAL_SERVICE)
        data = json.dumps(slow_review).encode()
        slow_result: list[str] = []

        def slow_caller() -> None:
            with httpx.Client(base_url=server.url, verify=server.ssl_context(), timeout=60.0) as client:
                try:
                    r = client.post(
                        "/validate",
                        content=_slow_body(data[:100], data[100:], release),
                        headers={"content-type": "application/json"},
                    )
                    slow_result.append(_check(r, slow_review["request"]["uid"]))
                except httpx.HTTPError as exc:
                    slow_result.append(f"{type(exc).__name__}: {exc}")

        slow = threading.Thread(target=slow_caller)
        try:
            assert wait_for(lambda: len(results) >= 60, timeout=30.0), "no burst before SIGTERM"
            slow.start()
            controller.start()
            sent_at = time.monotonic()
            server.process.send_signal(signal.SIGTERM)

            assert wait_for(lambda: "Shutting down" in server.log_text(), timeout=DELAY + 10), (
                server.log_text()
            )
            release.set()
            returncode = server.process.wait(timeout=30)
            exited_at = time.monotonic()
        finally:
            in_service.clear()
            release.set()
            for t in [*callers, controller, slow]:
                if t.is_alive() or t.ident is not None:
                    t.join(30)

        failures = [o for _, o in results if o != "ok"]
        assert not failures, f"{len(failures)} of {len(results)} requests failed: {failures[:3]}"
        assert slow_result == ["ok"], slow_result
        assert returncode == 0, server.log_text()

        # /readyz failed first, well before the server stopped answering, and liveness held.
        assert readyz_failed_at and readyz_failed_at[0] - sent_at < DELAY
        assert healthz_while_draining == [200]
        served_after_sigterm = [t for t, o in results if t > sent_at and o == "ok"]
        assert served_after_sigterm, "requests arriving during the delay are still answered"
        assert exited_at - sent_at >= DELAY
        assert "not ready; serving for 1.5s more" in server.log_text()


def test_draining_responses_close_the_connection(tmp_path: Path) -> None:
    with serve(tmp_path, "--shutdown-delay", "30") as server:
        with server.client() as client:
            assert client.get("/readyz").headers.get("connection") != "close"
            server.process.send_signal(signal.SIGTERM)
            assert wait_for(lambda: _readyz(server).status_code == 503, timeout=10.0)
            r = client.get("/healthz")
            assert r.status_code == 200 and r.headers["connection"] == "close"
        # A second SIGTERM ends the delay early.
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0


def _readyz(server: Server) -> httpx.Response:
    with server.client() as client:
        return client.get("/readyz")

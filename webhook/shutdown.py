"""Graceful shutdown for the uvicorn server, in the order Kubernetes needs.

On SIGTERM the pod is already being removed from the Service's endpoints, but the API
servers learn that with some delay and keep sending reviews meanwhile. So:
1. `/readyz` fails at once (`draining`), and every response carries `Connection: close`,
   so clients stop reusing connections to this replica;
2. requests are still accepted and answered for `delay` seconds, while the endpoint
   removal propagates;
3. then uvicorn stops accepting, lets in-flight requests finish, and the process exits 0.
   A closing TLS connection waits for the peer's close_notify, which an idle pooled client
   may never send; once no request has been in flight for `linger` seconds, connections
   still open are dropped, so the exit does not wait for the grace period to run out.
A second SIGTERM or SIGINT skips the rest of the delay; a SIGINT after that forces exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("meshwarden.server")


class Draining:
    """Set once shutdown has begun; read by /readyz and by `close_when_draining`."""

    def __init__(self) -> None:
        self.on = False

    def readiness(self) -> str | None:
        """A readiness check for `AppState.readiness`."""
        return "shutting down" if self.on else None


class GracefulServer(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        draining: Draining,
        *,
        shutdown_delay: float = 0.0,
        linger: float = 1.0,
        periodic: list[tuple[float, Callable[[], object]]] | None = None,
    ) -> None:
        super().__init__(config)
        if shutdown_delay < 0:
            raise ValueError(f"shutdown_delay must be >= 0, got {shutdown_delay}")
        self.shutdown_delay = shutdown_delay
        self.linger = linger
        self.draining = draining
        self._exit_at: float | None = None
        # (interval seconds, function) run from the server's tick, in the event loop thread.
        self._periodic = [(interval, fn, [time.monotonic()]) for interval, fn in periodic or []]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # The signal is not recorded for re-raising (as uvicorn does by default): a drained
        # shutdown is a clean exit.
        if not self.draining.on:
            self.draining.on = True
            self._exit_at = time.monotonic() + self.shutdown_delay
            log.info(
                "%s: not ready; serving for %.1fs more, then draining",
                signal.Signals(sig).name,
                self.shutdown_delay,
            )
        elif self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self._exit_at = time.monotonic()

    async def on_tick(self, counter: int) -> bool:
        now = time.monotonic()
        if self._exit_at is not None and now >= self._exit_at:
            self.should_exit = True
        for interval, fn, last in self._periodic:
            if now - last[0] >= interval:
                last[0] = now
                try:
                    fn()
                except Exception:  # a periodic check must never stop the server
                    log.exception("periodic check %s failed", getattr(fn, "__qualname__", fn))
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        watchdog = asyncio.ensure_future(self._drop_lingering())
        try:
            await super().shutdown(sockets)
        finally:
            watchdog.cancel()

    async def _drop_lingering(self) -> None:
        quiet_since: float | None = None
        while True:
            await asyncio.sleep(0.1)
            if self.server_state.tasks:  # a request is being answered
                quiet_since = None
                continue
            now = time.monotonic()
            quiet_since = quiet_since if quiet_since is not None else now
            if now - quiet_since >= self.linger:
                for connection in list(self.server_state.connections):
                    transport = getattr(connection, "transport", None)
                    if transport is not None:
                        transport.abort()
                return


def close_when_draining(app: ASGIApp, draining: Draining) -> ASGIApp:
    """Wrap `app`: while draining, HTTP responses say `Connection: close`."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and draining.on:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await app(scope, receive, send_closing)

    return wrapped

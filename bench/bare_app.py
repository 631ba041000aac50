"""The benchmark's yardstick: a bare Starlette endpoint that only parses the AdmissionReview
and answers allow with the same uid.

It runs under the same uvicorn settings as `meshwarden serve` (one worker, TLS 1.2+, the
default event loop and HTTP implementation, no access log), so the benchmark compares the
request path and nothing else:

    python bench/bare_app.py --port 9443 --cert-dir certs

`--busy-us N` makes it a control instead: after parsing, it keeps the CPU busy for N
microseconds per request, so it serves at a chosen fraction of the bare rate with no
other difference. Latency percentiles of a server of a given speed can then be compared
with meshwarden's at the same speed (see bench/README.md).
"""

from __future__ import annotations

import argparse
import ssl
import time
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def create_app(busy_seconds: float = 0.0) -> Starlette:
    async def allow(request: Request) -> Response:
        review = await request.json()
        uid = review["request"]["uid"]
        if busy_seconds:
            until = time.perf_counter() + busy_seconds
            while time.perf_counter() < until:
                pass
        return JSONResponse(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {"uid": uid, "allowed": True},
            }
        )

    return Starlette(
        routes=[Route("/validate", allow, methods=["POST"]), Route("/mutate", allow, methods=["POST"])]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9443)
    parser.add_argument("--cert-dir", type=Path, required=True, help="holds tls.crt and tls.key")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--busy-us", type=float, default=0.0, help="CPU time to burn per request (a control)")
    args = parser.parse_args()
    # The same settings as webhook/cli/serve.py, so only the application differs.
    config = uvicorn.Config(
        create_app(args.busy_us / 1e6),
        host=args.host,
        port=args.port,
        ssl_certfile=str(args.cert_dir / "tls.crt"),
        ssl_keyfile=str(args.cert_dir / "tls.key"),
        log_level=args.log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=30,
    )
    config.load()
    assert config.ssl is not None
    config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()

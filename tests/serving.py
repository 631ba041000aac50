"""Run the real `meshwarden serve` (uvicorn, real TLS, real generated certificates) in a
subprocess for tests, and talk to it over HTTPS."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

_RUNNING = re.compile(r"Uvicorn running on https://[^:]+:(\d+)")
START_TIMEOUT = 30.0


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int
    cert_dir: Path
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca(self) -> Path:
        return self.cert_dir / "ca.crt"

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), timeout=10.0, **kwargs)  # type: ignore[arg-type]

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def log_text(self) -> str:
        return "".join(self.output)


@contextmanager
def serve(
    tmp: Path, *args: str, env: dict[str, str] | None = None, cert_dir: Path | None = None
) -> Iterator[Server]:
    """Start `meshwarden serve --port 0` with `args`; yield once it listens; stop it after."""
    cert_dir = cert_dir or tmp / "certs"
    cmd: Sequence[str] = [
        sys.executable,
        "-m",
        "webhook",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--cert-dir",
        str(cert_dir),
        *args,
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=tmp,
    )
    output: list[str] = []
    port_found = threading.Event()
    port: list[int] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            m = _RUNNING.search(line)
            if m and not port:
                port.append(int(m.group(1)))
                port_found.set()
        port_found.set()  # the process ended: stop waiting

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        if not port_found.wait(START_TIMEOUT) or not port:
            proc.kill()
            reader.join(5)
            raise RuntimeError("meshwarden serve did not start:\n" + "".join(output))
        yield Server(proc, port[0], cert_dir, output)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        reader.join(5)


def wait_for(predicate: object, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll an observable condition until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return bool(predicate())  # type: ignore[operator]

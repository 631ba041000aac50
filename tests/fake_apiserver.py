"""A small local Kubernetes API server that speaks the list and watch wire format for the
kinds meshwarden reads, so the real `kubernetes` client can be pointed at it.

What it reproduces (k8s.io/apiserver, k8s.io/apimachinery):
- `GET /apis/{group}/{version}[/namespaces/{ns}]/{plural}` and
  `GET /api/v1[/namespaces/{ns}]/configmaps`: a `<Kind>List` with `metadata.resourceVersion`
  and `items`; `limit`/`continue` pages over a consistent snapshot; items of the built-in
  ConfigMap carry no `apiVersion`/`kind` (typed lists omit them, custom resources keep them).
- `watch=true`: newline-delimited JSON events `{"type", "object"}` over chunked transfer
  encoding, from `resourceVersion` (absent or "0": synthetic ADDED events of the current
  state first); BOOKMARK events when `allowWatchBookmarks=true`; `timeoutSeconds` ends the
  stream cleanly.
- A watch from a resourceVersion older than the compacted history gets HTTP 200 and one
  ERROR event holding a `Status` with code 410, reason `Expired`, message
  `too old resource version: N (M)`, then the stream ends (the watch cache's behaviour).
- Unknown paths: a 404 `Status` with reason `NotFound`.

Resource versions are one counter shared by every kind, as etcd's revision is.
The test drives it: `put`, `delete`, `bookmark`, `drop_watches`, `compact`,
`hold`/`release`, and reads back the requests it served.
"""

from __future__ import annotations

import base64
import bisect
import copy
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ISTIO_VERSIONS = ("v1alpha3", "v1beta1", "v1")


@dataclass(frozen=True)
class Kind:
    group: str
    versions: tuple[str, ...]
    plural: str
    kind: str


KINDS: tuple[Kind, ...] = (
    Kind("networking.istio.io", ISTIO_VERSIONS, "serviceentries", "ServiceEntry"),
    Kind("networking.istio.io", ISTIO_VERSIONS, "destinationrules", "DestinationRule"),
    Kind("networking.istio.io", ISTIO_VERSIONS, "virtualservices", "VirtualService"),
    Kind("networking.istio.io", ISTIO_VERSIONS, "gateways", "Gateway"),
    Kind("networking.istio.io", ISTIO_VERSIONS, "sidecars", "Sidecar"),
    Kind("networking.istio.io", ISTIO_VERSIONS, "workloadentries", "WorkloadEntry"),
    Kind("install.istio.io", ("v1alpha1",), "istiooperators", "IstioOperator"),
    Kind("", ("v1",), "configmaps", "ConfigMap"),
)


@dataclass(frozen=True)
class Served:
    """One request the server answered."""

    verb: str  # list | watch, or the method of a refused write (post, put, patch, delete)
    kind: str
    namespace: str | None
    params: dict[str, str]

    @property
    def resource_version(self) -> str | None:
        return self.params.get("resourceVersion")


@dataclass
class _Event:
    rv: int
    kind: Kind
    type: str
    obj: dict[str, Any]


@dataclass
class _Snapshot:
    rv: int
    items: list[dict[str, Any]]
    created: float = field(default_factory=time.monotonic)


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _forbidden(kind: Kind, verb: str, namespace: str | None) -> dict[str, Any]:
    resource = f"{kind.plural}.{kind.group}" if kind.group else kind.plural
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    message = (
        f'{resource} is forbidden: User "system:serviceaccount:meshwarden:meshwarden" cannot {verb} '
        f'resource "{kind.plural}" in API group "{kind.group}" {where}'
    )
    return {**_status(403, "Forbidden", message), "details": {"group": kind.group, "kind": kind.plural}}


class FakeApiServer:
    """Start with `with FakeApiServer() as api:`; `api.url` is the server address."""

    def __init__(self, kinds: tuple[Kind, ...] = KINDS, *, first_rv: int = 1000) -> None:
        self.kinds = kinds
        self._cond = threading.Condition()
        self._rv = first_rv
        self._floor = 0  # a watch from a resourceVersion below this is answered with 410
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (kind, ns, name)
        self._history: list[_Event] = []
        self._snapshots: dict[str, _Snapshot] = {}
        self._drop_gen = 0
        self._drop_abrupt = False
        self._bookmark_gen = 0
        self._gates = {"list": threading.Event(), "watch": threading.Event()}
        for gate in self._gates.values():
            gate.set()
        self._closing = False
        self.served: list[Served] = []
        self.forbidden: set[str] = set()  # kinds the caller may not list or watch (403)
        self.gone_sent = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="fake-apiserver", daemon=True
        )

    # --- lifecycle ---

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeApiServer:
        self._thread.start()
        return self

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        for gate in self._gates.values():
            gate.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def kubeconfig(self, path: Any, *, context: str = "fake") -> None:
        """Write a kubeconfig file that points at this server (plain HTTP, no auth)."""
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": context, "context": {"cluster": "fake", "user": "fake"}}],
            "current-context": context,
        }
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)

    # --- state the test drives ---

    @property
    def resource_version(self) -> int:
        with self._cond:
            return self._rv

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object (ADDED or MODIFIED); returns the stored copy."""
        kind = self._kind_of(obj)
        stored = copy.deepcopy(obj)
        meta = stored.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        key = (kind.kind, meta["namespace"], meta["name"])
        with self._cond:
            self._rv += 1
            old = self._objects.get(key)
            meta["uid"] = old["metadata"]["uid"] if old else str(uuid.uuid4())
            meta["resourceVersion"] = str(self._rv)
            meta["generation"] = old["metadata"].get("generation", 1) + 1 if old else 1
            meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
            self._objects[key] = stored
            self._record(kind, "MODIFIED" if old else "ADDED", stored)
        return copy.deepcopy(stored)

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        k = self._kind_of({"apiVersion": api_version, "kind": kind})
        with self._cond:
            obj = self._objects.pop((k.kind, namespace, name))
            self._rv += 1
            gone = copy.deepcopy(obj)
            gone["metadata"]["resourceVersion"] = str(self._rv)
            self._record(k, "DELETED", gone)

    def bookmark(self) -> None:
        """Send a BOOKMARK with the current resourceVersion to every watch that asked."""
        with self._cond:
            self._bookmark_gen += 1
            self._cond.notify_all()

    def drop_watches(self, *, abrupt: bool = False) -> None:
        """End every open watch: cleanly (terminating chunk, as on timeoutSeconds) or
        abruptly (socket closed mid-stream, as when a load balancer cuts it)."""
        with self._cond:
            self._drop_gen += 1
            self._drop_abrupt = abrupt
            self._cond.notify_all()

    def compact(self) -> None:
        """Forget the event history up to now: a watch from an older resourceVersion gets
        410 Expired, and so does a list `continue` token issued before."""
        with self._cond:
            self._floor = self._rv
            self._history.clear()
            self._snapshots.clear()
            self._cond.notify_all()

    def hold(self, verb: str) -> None:
        """New `verb` ("list" or "watch") requests wait, unanswered, until `release`."""
        self._gates[verb].clear()

    def release(self, verb: str) -> None:
        self._gates[verb].set()

    def requests(self, verb: str, kind: str) -> list[Served]:
        with self._cond:
            return [s for s in self.served if s.verb == verb and s.kind == kind]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until `condition()` holds; it is re-checked on every request and event."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    # --- internals ---

    def _kind_of(self, obj: dict[str, Any]) -> Kind:
        group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
        for k in self.kinds:
            if k.group == group and version in k.versions and k.kind == obj.get("kind"):
                return k
        raise ValueError(f"the fake API server does not serve {obj.get('apiVersion')} {obj.get('kind')}")

    def _record(self, kind: Kind, type_: str, obj: dict[str, Any]) -> None:
        self._history.append(_Event(self._rv, kind, type_, copy.deepcopy(obj)))
        self._cond.notify_all()

    def _serve(self, served: Served) -> None:
        with self._cond:
            self.served.append(served)
            self._cond.notify_all()

    def _route(self, path: str) -> tuple[Kind, str, str | None] | None:
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace = None
        if len(rest) == 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if len(rest) != 1:
            return None
        for k in self.kinds:
            if k.group == group and version in k.versions and k.plural == rest[0]:
                return k, version, namespace
        return None

    @staticmethod
    def _type_meta(kind: Kind, version: str) -> dict[str, str]:
        return {"apiVersion": f"{kind.group}/{version}" if kind.group else version, "kind": kind.kind}

    def _present(
        self, obj: dict[str, Any], kind: Kind, version: str, typed_list_item: bool
    ) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        out.pop("apiVersion", None)
        out.pop("kind", None)
        if typed_list_item and kind.group == "":
            return out  # built-in kinds: list items carry no TypeMeta
        return {**self._type_meta(kind, version), **out}

    def _list(
        self, kind: Kind, version: str, namespace: str | None, params: dict[str, str]
    ) -> tuple[int, Any]:
        limit = int(params.get("limit") or 0)
        token = params.get("continue")
        with self._cond:
            if token:
                snap = self._snapshots.get(token)
                if snap is None:
                    return 410, _status(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent list result. "
                        "You can start a new list without the continue parameter.",
                    )
                rv, items = snap.rv, snap.items
            else:
                rv = self._rv
                items = [
                    self._present(o, kind, version, True)
                    for (k, ns, _), o in sorted(self._objects.items())
                    if k == kind.kind and (namespace is None or ns == namespace)
                ]
            meta: dict[str, Any] = {"resourceVersion": str(rv)}
            if limit and len(items) > limit:
                rest = _Snapshot(rv, items[limit:])
                items = items[:limit]
                next_token = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
                self._snapshots[next_token] = rest
                meta["continue"] = next_token
                meta["remainingItemCount"] = len(rest.items)
        list_meta = {"apiVersion": self._type_meta(kind, version)["apiVersion"], "kind": f"{kind.kind}List"}
        return 200, {**list_meta, "metadata": meta, "items": items}

    def _watch_events(
        self, kind: Kind, version: str, namespace: str | None, params: dict[str, str]
    ) -> Iterator[dict[str, Any] | None]:
        """The events of one watch; None means "end the connection abruptly"."""
        bookmarks = params.get("allowWatchBookmarks") == "true"
        timeout = float(params.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout

        def mine(ev: _Event) -> bool:
            return ev.kind == kind and (namespace is None or ev.obj["metadata"].get("namespace") == namespace)

        with self._cond:
            drop_gen, bookmark_gen = self._drop_gen, self._bookmark_gen
            sent = int(params.get("resourceVersion") or "0")
            initial: list[dict[str, Any]] = []
            if sent == 0:
                sent = self._rv
                initial = [
                    {"type": "ADDED", "object": self._present(o, kind, version, False)}
                    for (k, ns, _), o in sorted(self._objects.items())
                    if k == kind.kind and (namespace is None or ns == namespace)
                ]
        yield from initial
        while True:
            out: list[dict[str, Any] | None] = []
            finished = False
            with self._cond:
                if sent < self._floor:
                    self.gone_sent += 1
                    msg = f"too old resource version: {sent} ({self._floor})"
                    out, finished = [{"type": "ERROR", "object": _status(410, "Expired", msg)}], True
                else:
                    i = bisect.bisect_right([e.rv for e in self._history], sent)
                    out = [
                        {"type": e.type, "object": self._present(e.obj, kind, version, False)}
                        for e in self._history[i:]
                        if mine(e)
                    ]
                    if self._history:
                        sent = max(sent, self._history[-1].rv)
                if not out and not finished:
                    if self._closing:
                        return
                    if self._drop_gen != drop_gen:
                        out, finished = ([None] if self._drop_abrupt else []), True
                    elif bookmarks and self._bookmark_gen != bookmark_gen:
                        bookmark_gen = self._bookmark_gen
                        sent = max(sent, self._rv)
                        meta = {"resourceVersion": str(self._rv)}
                        out = [
                            {
                                "type": "BOOKMARK",
                                "object": {**self._type_meta(kind, version), "metadata": meta},
                            }
                        ]
                    else:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            return
                        self._cond.wait(min(left, 0.5))
            yield from out
            if finished:
                return

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                params = {k: v[-1] for k, v in parse_qs(url.query).items()}
                route = server._route(url.path)
                if route is None:
                    self._json(
                        404, _status(404, "NotFound", "the server could not find the requested resource")
                    )
                    return
                kind, version, namespace = route
                watching = params.get("watch") in ("true", "1")
                rv = params.get("resourceVersion") or "0"
                if not rv.isdigit():
                    self._json(400, _status(400, "BadRequest", f"invalid resource version {rv!r}"))
                    return
                verb = "watch" if watching else "list"
                server._serve(Served(verb, kind.kind, namespace, params))
                if kind.kind in server.forbidden:
                    self._json(403, _forbidden(kind, verb, namespace))
                    return
                server._gates[verb].wait()
                if not watching:
                    self._json(*server._list(kind, version, namespace, params))
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.close_connection = True
                try:
                    for event in server._watch_events(kind, version, namespace, params):
                        if event is None:
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return
                        data = json.dumps(event).encode() + b"\n"
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError, OSError):
                    return

            def _refuse_write(self) -> None:
                # meshwarden only reads; a write is recorded so a test can assert there was none.
                server._serve(Served(self.command.lower(), "", None, {"path": self.path}))
                self.close_connection = True  # the body is left unread
                self._json(405, _status(405, "MethodNotAllowed", "the fake API server is read-only"))

            do_POST = do_PUT = do_PATCH = do_DELETE = _refuse_write

            def _json(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

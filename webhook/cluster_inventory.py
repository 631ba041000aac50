"""The cluster-backed inventory: every object in scope, listed and then watched in
background threads, kept parsed in a `MemoryInventory` that requests only read.

One thread per resource (webhook.cluster.kinds_in_scope) runs the loop a client-go
reflector runs: list (paged), watch from the list's resourceVersion, resume a dropped watch
from the last resourceVersion seen (events and bookmarks advance it), list again when the
API server answers 410 Gone, and back off exponentially (capped) on any other error. A
request never waits for the API server: it reads `view`, which holds whatever was last
seen.

Only the parsed `Resource` is kept per object (the models ignore fields no rule reads);
an object that does not parse is kept out and counted. `synced` turns true once every
resource has been listed in full, and stays true while later watches reconnect (the view
is then stale, not empty). A resource the API server does not serve (an IstioOperator CRD
that is not installed) counts as listed and empty, and is looked for again periodically.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel

from webhook.cluster import (
    LIST_PAGE_SIZE,
    WatchedKind,
    api_client,
    describe_error,
    kinds_in_scope,
    list_call,
    list_pages,
    server_of,
)
from webhook.inventory import MemoryInventory
from webhook.objects import Resource, ResourceKey, metadata_of, parse, scope_kind

log = logging.getLogger(__name__)

# kubectl's copy of the whole object as last applied: the largest annotation by far, and
# nothing a rule reads about another object.
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass(frozen=True, slots=True)
class KindState:
    """How far the inventory is with one resource."""

    kind: str
    resource: str
    synced: bool = False  # listed in full at least once
    served: bool = True  # False: the API server does not serve it (CRD not installed)
    objects: int = 0  # in the inventory
    rejected: int = 0  # in the cluster, kept out because they do not parse
    resource_version: str = ""
    lists: int = 0
    watches: int = 0  # watch connections opened
    expired: int = 0  # 410 Gone answered by a fresh list
    errors: int = 0
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class SyncState:
    synced: bool
    kinds: tuple[KindState, ...]

    @property
    def objects(self) -> int:
        return sum(k.objects for k in self.kinds)

    @property
    def message(self) -> str:
        if self.synced:
            return f"inventory synced: {self.objects} objects"
        waiting = [k for k in self.kinds if not k.synced]
        parts = [f"{k.resource}{f' ({k.last_error})' if k.last_error else ''}" for k in waiting]
        return "inventory not synced yet: waiting for " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "synced": self.synced,
            "objects": self.objects,
            "kinds": {
                k.kind: {f.name: getattr(k, f.name) for f in dataclasses.fields(k)} for k in self.kinds
            },
        }


class ClusterInventory:
    """`view` is the inventory the engine reads. `start()` begins listing and watching in
    daemon threads; `stop()` ends them."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        root_namespace: str = "istio-system",
        domain: str = "cluster.local",
        kinds: Iterable[WatchedKind] | None = None,
        page_size: int = LIST_PAGE_SIZE,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        watch_timeout: tuple[int, int] = (300, 600),
        absent_recheck: float = 300.0,
    ) -> None:
        self.view = MemoryInventory(domain=domain)
        self.root_namespace = root_namespace
        self.server = server_of(api)
        self._api = api
        self._stopping = threading.Event()
        self._synced = threading.Event()
        self._lock = threading.Lock()
        self._settings = _Settings(page_size, backoff_initial, backoff_max, watch_timeout, absent_recheck)
        self._reflectors = [
            _Reflector(self, wk) for wk in (kinds if kinds is not None else kinds_in_scope(root_namespace))
        ]
        self._threads: list[threading.Thread] = []

    @classmethod
    def connect(
        cls, kubeconfig: str | None = None, context: str | None = None, **kwargs: Any
    ) -> ClusterInventory:
        """In-cluster configuration, or the kubeconfig (and context) named."""
        return cls(api_client(kubeconfig, context), **kwargs)

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("the cluster inventory is already started")
        self._stopping.clear()
        for r in self._reflectors:
            t = threading.Thread(target=r.run, name=f"inventory-{r.wk.kind}", daemon=True)
            self._threads.append(t)
            t.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the watches and wait (up to `timeout`) for the threads to finish."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for t, r in zip(self._threads, self._reflectors, strict=True):
            # A watch opened just as stop() ran may have missed the first shutdown of
            # its socket; repeat until the thread is gone.
            while t.is_alive() and time.monotonic() < deadline:
                r.interrupt()
                t.join(0.1)
        self._threads = []

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    def counts(self) -> dict[str, int]:
        """Objects in the inventory, by kind."""
        return {r.wk.kind: r.state.objects for r in self._reflectors}

    @property
    def sync_state(self) -> SyncState:
        with self._lock:
            kinds = tuple(r.state for r in self._reflectors)
        return SyncState(self._synced.is_set(), kinds)

    # --- for the reflectors ---

    def _update(self, reflector: _Reflector, **changes: Any) -> None:
        with self._lock:
            reflector.state = dataclasses.replace(reflector.state, **changes)
            all_synced = all(r.state.synced for r in self._reflectors)
        if all_synced and not self._synced.is_set():
            log.info("inventory synced: %d objects", len(self.view))
            self._synced.set()


@dataclass(frozen=True, slots=True)
class _Settings:
    page_size: int
    backoff_initial: float
    backoff_max: float
    watch_timeout: tuple[int, int]
    absent_recheck: float


class _Expired(Exception):
    """The resourceVersion is too old (410 Gone): list again."""


class _Reflector:
    """List-then-watch of one resource into the owner's view."""

    def __init__(self, owner: ClusterInventory, wk: WatchedKind) -> None:
        self.owner = owner
        self.wk = wk
        self.state = KindState(wk.kind, wk.resource)
        self._keys: set[ResourceKey] = set()
        self._rejected: set[ResourceKey] = set()
        self._rv = ""  # where the next watch starts; "" means list first
        self._watch_handle: watch.Watch | None = None
        self._watch_lock = threading.Lock()

    def interrupt(self) -> None:
        with self._watch_lock:
            if self._watch_handle is not None:
                self._watch_handle.stop()

    def run(self) -> None:
        settings, stopping = self.owner._settings, self.owner._stopping
        failures = 0
        while not stopping.is_set():
            try:
                if not self._rv:
                    self._relist()
                started = time.monotonic()
                delivered = self._watch()
                # A watch the server ends cleanly is resumed at once, unless it ends as
                # soon as it starts with nothing to say: that is a failure to back off from.
                failures = 0 if delivered or time.monotonic() - started >= 1.0 else failures + 1
            except _Expired:
                self.owner._update(self, expired=self.state.expired + 1)
                log.info("inventory: %s: resourceVersion %s expired", self.wk.resource, self._rv)
                self._rv = ""
                failures += 1
                if failures == 1:
                    continue  # the usual case: one fresh list settles it
            except ApiException as exc:
                if exc.status == 410:
                    self._rv = ""
                    continue  # a page token expired during the list: list again
                if exc.status == 404:
                    self._not_served()
                    stopping.wait(settings.absent_recheck)
                    continue
                failures += 1
                self._failed(exc)
            except Exception as exc:
                if stopping.is_set():
                    break
                failures += 1
                self._failed(exc)
            if failures:
                stopping.wait(self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        s = self.owner._settings
        delay = min(s.backoff_max, s.backoff_initial * 2 ** min(failures - 1, 30))
        # Jitter keeps the replicas of the webhook from reconnecting in step.
        return delay * random.uniform(0.8, 1.0)

    def _failed(self, exc: BaseException) -> None:
        message = describe_error(exc, self.wk, self.owner.server)
        log.warning("inventory: %s", message)
        self.owner._update(self, errors=self.state.errors + 1, last_error=message)

    def _not_served(self) -> None:
        view = self.owner.view
        for key in self._keys:
            view.delete(key)
        self._keys, self._rejected, self._rv = set(), set(), ""
        if self.state.served or not self.state.synced:
            log.info(
                "inventory: %s is not served by %s; counted as empty", self.wk.resource, self.owner.server
            )
        self.owner._update(self, synced=True, served=False, objects=0, rejected=0, last_error="")

    def _relist(self) -> None:
        view = self.owner.view
        fresh: set[ResourceKey] = set()
        rejected: set[ResourceKey] = set()
        rv = ""
        for page in list_pages(self.owner._api, self.wk, page_size=self.owner._settings.page_size):
            for raw in page.items:
                key, res, bad = self._parse(raw)
                if res is not None:
                    view.upsert(res)
                    fresh.add(key)
                elif bad:
                    rejected.add(key)
            rv = page.resource_version
        for key in self._keys - fresh:
            view.delete(key)
        self._keys, self._rejected = fresh, rejected
        self.owner._update(
            self,
            synced=True,
            served=True,
            objects=len(fresh),
            rejected=len(rejected),
            resource_version=rv,
            lists=self.state.lists + 1,
            last_error="",
        )
        self._rv = rv

    def _watch(self) -> int:
        """Watch from `_rv` until the stream ends; returns how many events it delivered."""
        w = watch.Watch()
        with self._watch_lock:
            self._watch_handle = w
        if self.owner._stopping.is_set():
            return 0
        low, high = self.owner._settings.watch_timeout
        timeout = random.randint(low, high)  # spread the reconnects, as client-go does
        func, args = list_call(self.owner._api, self.wk)
        self.owner._update(self, watches=self.state.watches + 1)
        delivered = 0
        try:
            stream = w.stream(
                func,
                *args,
                resource_version=self._rv,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout,
                # The read timeout catches a connection that died silently.
                _request_timeout=(10, timeout + 30),
            )
            for event in stream:
                self._apply(event)
                delivered += 1
                if self.owner._stopping.is_set():
                    w.stop()
        except ApiException as exc:
            if exc.status == 410:
                raise _Expired from exc
            raise
        finally:
            with self._watch_lock:
                self._watch_handle = None
        return delivered

    def _apply(self, event: Mapping[str, Any]) -> None:
        raw = event.get("raw_object")
        if not isinstance(raw, dict):
            return
        kind = event.get("type")
        meta = raw.get("metadata") if isinstance(raw.get("metadata"), Mapping) else {}
        self._rv = str(meta.get("resourceVersion") or self._rv)
        if kind in ("ADDED", "MODIFIED"):
            raw.setdefault("apiVersion", self.wk.api_version)
            raw.setdefault("kind", self.wk.item_kind)
            key, res, bad = self._parse(raw)
            self._store(key, res)
            if bad:
                self._rejected.add(key)
        elif kind == "DELETED":
            namespace, name = metadata_of(raw)
            self._store((self.wk.kind, namespace, name), None)
        self.owner._update(
            self, objects=len(self._keys), rejected=len(self._rejected), resource_version=self._rv
        )

    def _store(self, key: ResourceKey, res: Resource | None) -> None:
        """Put `res` under `key`, or remove what is there when `res` is None."""
        self._rejected.discard(key)
        if res is None:
            if key in self._keys:
                self.owner.view.delete(key)
                self._keys.discard(key)
        else:
            self.owner.view.upsert(res)
            self._keys.add(key)

    def _parse(self, raw: Mapping[str, Any]) -> tuple[ResourceKey, Resource | None, bool]:
        """(key, Resource or None, rejected): None when the object does not parse
        (rejected) or is not in scope (a ConfigMap that holds no mesh config)."""
        namespace, name = metadata_of(raw)
        key = (self.wk.kind, namespace, name)
        kind = scope_kind(raw, self.owner.root_namespace)
        if kind is None:
            return key, None, False
        parsed = parse(raw, kind)
        if isinstance(parsed, list):
            problems = "; ".join(f"{f.path_text}: {f.message}" for f in parsed[:3])
            log.warning(
                "inventory: %s %s/%s kept out, it does not parse: %s", kind, namespace, name, problems
            )
            return key, None, True
        return key, slim_resource(parsed), False


def slim_resource(res: Resource) -> Resource:
    """The Resource as the inventory keeps it: shared namespace strings, shared field-name
    sets in its models, and without the last-applied annotation (a full copy of the object)."""
    annotations = res.annotations
    if _LAST_APPLIED in annotations:
        annotations = {k: v for k, v in annotations.items() if k != _LAST_APPLIED}
    _share_field_sets(res.spec)
    namespace, api_version = sys.intern(res.namespace), sys.intern(res.api_version)
    return dataclasses.replace(res, namespace=namespace, api_version=api_version, annotations=annotations)


# Every pydantic model instance carries its own set of the field names given at validation
# (`model_fields_set`): about 40% of a parsed object's memory. The combinations are few, so
# the inventory's frozen models share one set per combination. pydantic needs a real `set`
# there (serialising with exclude_unset) and copies it before changing it (model_copy);
# the shared set refuses in-place changes so no model can alter the others'.
class _SharedNames(set[str]):
    __slots__ = ()

    def _refuse(self, *args: object) -> None:
        raise TypeError("field-name sets are shared between inventory models and cannot change")

    add = discard = remove = pop = clear = update = _refuse  # type: ignore[assignment]
    difference_update = intersection_update = symmetric_difference_update = _refuse  # type: ignore[assignment]
    __ior__ = __iand__ = __isub__ = __ixor__ = _refuse  # type: ignore[assignment]

    def __copy__(self) -> set[str]:
        return set(self)  # a model copy gets a plain set of its own

    def __deepcopy__(self, memo: dict[int, object]) -> set[str]:
        return set(self)


_FIELD_SETS: dict[frozenset[str], _SharedNames] = {}


def _share_field_sets(model: BaseModel) -> None:
    stack: list[Any] = [model]
    while stack:
        node = stack.pop()
        if isinstance(node, BaseModel):
            names = frozenset(node.__pydantic_fields_set__)
            shared = _FIELD_SETS.get(names)
            if shared is None:
                shared = _FIELD_SETS.setdefault(names, _SharedNames(names))
            object.__setattr__(node, "__pydantic_fields_set__", shared)
            stack.extend(node.__dict__.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
        elif isinstance(node, dict):
            stack.extend(node.values())

"""The live cluster as meshwarden reads it: how to connect (in-cluster or a kubeconfig),
which resources hold the objects in scope, and paged lists of them as raw objects.

Both the cluster-backed inventory (list, then watch) and `meshwarden scan` (list once) go
through here, so they read the same resources with the same permissions (the RBAC rules
in deploy/ grant exactly get/list/watch on these).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from webhook.objects import ISTIO_OPERATOR, MESH_CONFIG, NETWORKING_GROUP

# Served by every Istio release with these CRDs (v1beta1 and v1 came later); all three
# versions share one schema, so the oldest is the one every cluster answers.
NETWORKING_VERSION = "v1alpha3"
LIST_PAGE_SIZE = 500
LIST_ATTEMPTS = 3  # a paged list whose continue token expires (410) is started again
LIST_TIMEOUT = (10.0, 60.0)  # (connect, read) seconds for one page

_NETWORKING_PLURALS = {
    "ServiceEntry": "serviceentries",
    "DestinationRule": "destinationrules",
    "VirtualService": "virtualservices",
    "Gateway": "gateways",
    "Sidecar": "sidecars",
    "WorkloadEntry": "workloadentries",
}


class ClusterError(Exception):
    """The cluster cannot be read; the message says why and what to check."""


@dataclass(frozen=True, slots=True)
class WatchedKind:
    """One resource meshwarden lists and watches. `kind` is the engine kind
    (`objects.scope_kind`); `namespace` None means all namespaces."""

    kind: str
    group: str
    version: str
    plural: str
    item_kind: str
    namespace: str | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> str:
        """`plural.group` as RBAC and kubectl name it, with the namespace when scoped."""
        name = f"{self.plural}.{self.group}" if self.group else self.plural
        return f"{name} in namespace {self.namespace}" if self.namespace else name


def kinds_in_scope(
    root_namespace: str, networking_version: str = NETWORKING_VERSION
) -> tuple[WatchedKind, ...]:
    """Every resource that holds objects in scope: the networking kinds and IstioOperators in
    all namespaces, and the ConfigMaps of the Istio root namespace (the mesh config)."""
    networking = tuple(
        WatchedKind(kind, NETWORKING_GROUP, networking_version, plural, kind)
        for kind, plural in _NETWORKING_PLURALS.items()
    )
    return (
        *networking,
        WatchedKind(ISTIO_OPERATOR, "install.istio.io", "v1alpha1", "istiooperators", ISTIO_OPERATOR),
        WatchedKind(MESH_CONFIG, "", "v1", "configmaps", "ConfigMap", namespace=root_namespace),
    )


def in_cluster() -> bool:
    """Running in a pod, where the service account's in-cluster configuration applies."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """A client for the cluster: the pod's service account when running in a cluster and
    no kubeconfig or context is named, otherwise the kubeconfig (`$KUBECONFIG` or
    ~/.kube/config when `kubeconfig` is None)."""
    if kubeconfig is None and context is None and in_cluster():
        cfg = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=cfg)
        except ConfigException as exc:
            raise ClusterError(f"in-cluster configuration is unusable: {exc}") from exc
        return client.ApiClient(cfg)
    if kubeconfig is not None and not os.path.isfile(kubeconfig):
        raise ClusterError(f"kubeconfig {kubeconfig}: no such file")
    try:
        return config.new_client_from_config(config_file=kubeconfig, context=context)
    except ConfigException as exc:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise ClusterError(f"kubeconfig {where}: {exc}") from exc
    except (OSError, ValueError, TypeError) as exc:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise ClusterError(f"kubeconfig {where}: cannot be read: {exc}") from exc


def list_call(api: client.ApiClient, wk: WatchedKind) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """The client function (and its positional arguments) that lists `wk`; with
    `watch=True` the same call watches it, as `kubernetes.watch.Watch.stream` expects."""
    if not wk.group:
        core = client.CoreV1Api(api)
        if wk.namespace:
            return core.list_namespaced_config_map, (wk.namespace,)
        return core.list_config_map_for_all_namespaces, ()
    custom = client.CustomObjectsApi(api)
    if wk.namespace:
        return custom.list_namespaced_custom_object, (wk.group, wk.version, wk.namespace, wk.plural)
    return custom.list_cluster_custom_object, (wk.group, wk.version, wk.plural)


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    resource_version: str  # of the whole list: where a watch resumes (set on every page)
    last: bool


def list_pages(api: client.ApiClient, wk: WatchedKind, *, page_size: int = LIST_PAGE_SIZE) -> Iterator[Page]:
    """The objects of `wk` as raw dicts, one page of at most `page_size` at a time, so a
    large cluster is never held twice in memory. Raises ApiException (410 when a page
    token expired: list again from the start)."""
    func, args = list_call(api, wk)
    token: str | None = None
    while True:
        resp = func(
            *args, limit=page_size, _continue=token, _preload_content=False, _request_timeout=LIST_TIMEOUT
        )
        try:
            body = json.loads(resp.data)
        except ValueError as exc:
            raise ClusterError(f"listing {wk.resource}: the API server answered with invalid JSON") from exc
        api_version = str(body.get("apiVersion") or wk.api_version)
        items = body.get("items") or []
        for item in items:
            # Typed lists (ConfigMapList) leave apiVersion/kind out of their items.
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", wk.item_kind)
        meta = body.get("metadata") or {}
        token = meta.get("continue") or None
        yield Page(items, str(meta.get("resourceVersion") or ""), token is None)
        if token is None:
            return


def list_objects(
    api: client.ApiClient, wk: WatchedKind, *, page_size: int = LIST_PAGE_SIZE
) -> tuple[list[dict[str, Any]], str]:
    """Every object of `wk`, and the list's resourceVersion."""
    items: list[dict[str, Any]] = []
    rv = ""
    for page in list_pages(api, wk, page_size=page_size):
        items.extend(page.items)
        rv = page.resource_version
    return items, rv


def read_cluster(api: client.ApiClient, root_namespace: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Every object in scope as raw dicts, and the resources the cluster does not serve.
    Raises ClusterError, naming what could not be read, when any list fails."""
    server = server_of(api)
    objects: list[dict[str, Any]] = []
    not_served: list[str] = []
    for wk in kinds_in_scope(root_namespace):
        for attempt in range(LIST_ATTEMPTS):
            try:
                items, _ = list_objects(api, wk)
            except ApiException as exc:
                if exc.status == 404:
                    not_served.append(wk.resource)
                    break
                if exc.status == 410 and attempt + 1 < LIST_ATTEMPTS:
                    continue
                raise ClusterError(describe_error(exc, wk, server)) from exc
            except ClusterError:
                raise
            except Exception as exc:
                raise ClusterError(describe_error(exc, wk, server)) from exc
            objects.extend(items)
            break
    return objects, not_served


def describe_error(exc: BaseException, wk: WatchedKind, server: str) -> str:
    """A one-line explanation of why `wk` could not be read from `server`."""
    if isinstance(exc, ApiException):
        status = exc.status or 0
        detail = _status_message(exc)
        said = f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
        if status in (401, 403):
            return f"{server}: not allowed to list {wk.resource} ({said}); grant get/list/watch on it"
        if status == 404:
            return f"{server}: {wk.resource} is not served (is the CRD installed?)"
        return f"{server}: listing {wk.resource} failed: {said}"
    if isinstance(exc, urllib3.exceptions.ProtocolError | urllib3.exceptions.ReadTimeoutError):
        return f"{server}: connection broken while reading {wk.resource}: {_short(exc)}"
    if isinstance(exc, urllib3.exceptions.MaxRetryError | urllib3.exceptions.HTTPError | OSError):
        reason = getattr(exc, "reason", None) or exc
        return f"cannot reach the Kubernetes API server at {server}: {_short(reason)}"
    return f"{server}: reading {wk.resource} failed: {_short(exc)}"


def server_of(api: client.ApiClient) -> str:
    return str(api.configuration.host)


def _status_message(exc: ApiException) -> str:
    body = exc.body
    if isinstance(body, bytes | str) and body:
        try:
            doc = json.loads(body)
        except ValueError:
            return str(exc.reason or "")
        if isinstance(doc, dict) and doc.get("message"):
            return str(doc["message"])
    return str(exc.reason or "")


def _short(exc: object) -> str:
    text = str(exc)
    # urllib3 wraps the OS error in its connection object's repr; keep the OS part.
    marker = "Failed to establish a new connection: "
    if marker in text:
        text = text.split(marker, 1)[1].rstrip("')\"")
    return text

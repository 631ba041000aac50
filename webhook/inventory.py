"""The inventory: the other Istio objects a cross-object rule reads, indexed by host so a
lookup costs the same with ten objects or a hundred thousand.

`InventoryView` is all a rule sees (read-only). `MemoryInventory` is the store behind both
the file-backed inventory (`--inventory-from`, the CLI) and the cluster-backed one
(list+watch). `Overlay` shows a store as it would be after the change under review: the
new version of the object replaces the old one, a DELETE removes it.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Sequence
from typing import Protocol

from webhook import hosts as H
from webhook.models import DestinationRule, Gateway, ServiceEntry, VirtualService
from webhook.objects import Resource, ResourceKey


class InventoryView(Protocol):
    def get(self, key: ResourceKey) -> Resource | None: ...

    def of_kind(self, kind: str) -> list[Resource]: ...

    def matching(self, kind: str, host: str) -> Sequence[Resource]:
        """Objects of `kind` with a host that overlaps `host` (an FQDN or wildcard)."""
        ...


def hosts_of(res: Resource, domain: str = "cluster.local") -> tuple[str, ...]:
    """The hosts a resource is indexed under, resolved to FQDNs."""
    spec = res.spec
    if isinstance(spec, ServiceEntry):
        # ServiceEntry hosts are taken as written (no namespace expansion).
        return tuple(h.lower() for h in spec.hosts)
    if isinstance(spec, DestinationRule):
        return (H.resolve(spec.host, res.namespace, domain),) if spec.host else ()
    if isinstance(spec, VirtualService):
        return tuple(H.resolve(h, res.namespace, domain) for h in spec.hosts)
    if isinstance(spec, Gateway):
        return tuple({H.split_namespaced(h)[1].lower() for server in spec.servers for h in server.hosts})
    return ()


class _HostIndex:
    """host -> keys, answering overlap queries without scanning.

    Exact names and wildcard patterns are kept apart. A concrete query walks its dot
    suffixes; a wildcard query also takes the range of names under its suffix from a
    sorted list of reversed names. Partial wildcards (`*foo.com`, only a warning in
    Istio) are rare and scanned.
    """

    __slots__ = ("_exact", "_exact_rev", "_partial", "_wild", "_wild_rev")

    def __init__(self) -> None:
        self._exact: dict[str, set[ResourceKey]] = {}
        self._wild: dict[str, set[ResourceKey]] = {}  # "*.foo.com" under ".foo.com"; "*" under ""
        self._partial: dict[str, set[ResourceKey]] = {}  # "*foo.com" under "foo.com"
        self._exact_rev: list[str] = []
        self._wild_rev: list[str] = []

    def add(self, host: str, key: ResourceKey) -> None:
        table, rev, term = self._slot(host)
        keys = table.get(term)
        if keys is None:
            table[term] = keys = set()
            if rev is not None:
                bisect.insort(rev, term[::-1])
        keys.add(key)

    def remove(self, host: str, key: ResourceKey) -> None:
        table, rev, term = self._slot(host)
        keys = table.get(term)
        if keys is None:
            return
        keys.discard(key)
        if not keys:
            del table[term]
            if rev is not None:
                r = term[::-1]
                i = bisect.bisect_left(rev, r)
                if i < len(rev) and rev[i] == r:
                    del rev[i]

    def _slot(self, host: str) -> tuple[dict[str, set[ResourceKey]], list[str] | None, str]:
        if not H.is_wildcard(host):
            return self._exact, self._exact_rev, host
        suffix = host[1:]
        if suffix and not suffix.startswith("."):
            return self._partial, None, suffix
        return self._wild, self._wild_rev, suffix

    def lookup(self, host: str) -> set[ResourceKey]:
        out: set[ResourceKey] = set()
        if H.is_wildcard(host):
            suffix = host[1:]
            # Names and patterns under the query's suffix.
            for table, rev in ((self._exact, self._exact_rev), (self._wild, self._wild_rev)):
                self._range(table, rev, suffix, out)
            probe = suffix
        else:
            out |= self._exact.get(host, set())
            probe = host
        # Patterns above the probe: "*" and every dot suffix.
        out |= self._wild.get("", set())
        i = probe.find(".")
        while i != -1:
            out |= self._wild.get(probe[i:], set())
            i = probe.find(".", i + 1)
        for suffix, keys in self._partial.items():
            if H.matches("*" + suffix, host):
                out |= keys
        return out

    @staticmethod
    def _range(
        table: dict[str, set[ResourceKey]], rev: list[str], suffix: str, out: set[ResourceKey]
    ) -> None:
        prefix = suffix[::-1]
        i = bisect.bisect_left(rev, prefix)
        while i < len(rev) and rev[i].startswith(prefix):
            out |= table[rev[i][::-1]]
            i += 1


# Answers kept per kind between changes; a store queried for more distinct hosts than this
# starts over rather than grow without bound.
MATCH_CACHE_SIZE = 4096


class MemoryInventory:
    """A thread-safe in-memory store of Resources, indexed by kind and host.

    `matching` answers are kept until the next change to that kind: the same hosts are
    asked about on every request, while the objects change a few times an hour.
    """

    def __init__(self, resources: Iterable[Resource] = (), *, domain: str = "cluster.local") -> None:
        self.domain = domain
        self._lock = threading.Lock()
        self._by_kind: dict[str, dict[ResourceKey, Resource]] = {}
        self._index: dict[str, _HostIndex] = {}
        self._hosts: dict[ResourceKey, tuple[str, ...]] = {}
        self._matches: dict[tuple[str, str], tuple[Resource, ...]] = {}
        for res in resources:
            self.upsert(res)

    def __len__(self) -> int:
        return len(self._hosts)

    def upsert(self, res: Resource) -> None:
        with self._lock:
            self._remove_locked(res.key)
            self._forget_matches(res.kind)
            self._by_kind.setdefault(res.kind, {})[res.key] = res
            hs = hosts_of(res, self.domain)
            self._hosts[res.key] = hs
            if hs:
                index = self._index.setdefault(res.kind, _HostIndex())
                for h in hs:
                    index.add(h, res.key)

    def delete(self, key: ResourceKey) -> None:
        with self._lock:
            self._remove_locked(key)
            self._forget_matches(key[0])

    def _forget_matches(self, kind: str) -> None:
        if self._matches:
            for cached in [k for k in self._matches if k[0] == kind]:
                del self._matches[cached]

    def _remove_locked(self, key: ResourceKey) -> None:
        hs = self._hosts.pop(key, None)
        if hs is None:
            return
        self._by_kind[key[0]].pop(key, None)
        index = self._index.get(key[0])
        if index is not None:
            for h in hs:
                index.remove(h, key)

    # --- InventoryView ---

    def get(self, key: ResourceKey) -> Resource | None:
        return self._by_kind.get(key[0], {}).get(key)

    def of_kind(self, kind: str) -> list[Resource]:
        with self._lock:
            return list(self._by_kind.get(kind, {}).values())

    def matching(self, kind: str, host: str) -> Sequence[Resource]:
        with self._lock:
            found = self._matches.get((kind, host))
            if found is None:
                index = self._index.get(kind)
                if index is None:
                    return []
                table = self._by_kind[kind]
                found = tuple(table[k] for k in sorted(index.lookup(host.lower())))
                if len(self._matches) >= MATCH_CACHE_SIZE:
                    self._matches.clear()
                self._matches[(kind, host)] = found
            return found


class Overlay:
    """`base` as it would be with `add` in place of the object `remove` names."""

    __slots__ = ("_add", "_add_hosts", "_base", "_domain", "_hide", "_kinds")

    def __init__(
        self,
        base: InventoryView,
        *,
        remove: ResourceKey | None = None,
        add: Resource | None = None,
        domain: str = "cluster.local",
    ) -> None:
        self._base = base
        self._add = add
        hide: set[ResourceKey] = set()
        if remove is not None:
            hide.add(remove)
        if add is not None:
            hide.add(add.key)
        self._hide = hide
        self._kinds = {k[0] for k in hide}  # answers of other kinds pass through as they are
        self._domain = domain
        self._add_hosts: tuple[str, ...] | None = None  # computed on the first host lookup

    def get(self, key: ResourceKey) -> Resource | None:
        if self._add is not None and key == self._add.key:
            return self._add
        return None if key in self._hide else self._base.get(key)

    def of_kind(self, kind: str) -> list[Resource]:
        out = [r for r in self._base.of_kind(kind) if r.key not in self._hide]
        if self._add is not None and self._add.kind == kind:
            out.append(self._add)
        return out

    def matching(self, kind: str, host: str) -> Sequence[Resource]:
        found = self._base.matching(kind, host)
        if kind not in self._kinds:
            return found
        out = [r for r in found if r.key not in self._hide]
        add = self._add
        if add is not None and add.kind == kind:
            if self._add_hosts is None:
                self._add_hosts = hosts_of(add, self._domain)
            if any(H.matches(h, host.lower()) for h in self._add_hosts):
                out.append(add)
        return out

"""The host index answers exactly what a scan with Istio's matching would."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook import hosts as H
from webhook import inventory
from webhook.inventory import MemoryInventory, Overlay, hosts_of
from webhook.models import DestinationRule, ServiceEntry, VirtualService
from webhook.objects import Resource

_labels = st.sampled_from(["a", "b", "foo", "bar", "com", "org", "wikipedia", "svc"])
_concrete = st.lists(_labels, min_size=1, max_size=4).map(".".join)
_host = st.one_of(
    _concrete,
    _concrete.map(lambda h: "*." + h),
    st.just("*"),
    _concrete.map(lambda h: "*" + h),  # partial wildcard
)


def _se(i: int, hosts: list[str], ns: str = "default") -> Resource:
    return Resource("ServiceEntry", ns, f"se-{i}", ServiceEntry(hosts=hosts))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_host, min_size=1, max_size=3), max_size=25), _host)
def test_matching_equals_brute_force(host_lists: list[list[str]], query: str) -> None:
    resources = [_se(i, hs) for i, hs in enumerate(host_lists)]
    inv = MemoryInventory(resources)
    expected = {r.key for r in resources if any(H.matches(h, query) for h in r.spec.hosts)}  # type: ignore[attr-defined]
    assert {r.key for r in inv.matching("ServiceEntry", query)} == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(_host, min_size=1, max_size=3), min_size=1, max_size=15), st.data())
def test_delete_and_update_keep_the_index_exact(host_lists: list[list[str]], data: st.DataObject) -> None:
    inv = MemoryInventory(_se(i, hs) for i, hs in enumerate(host_lists))
    for query in {h for hs in host_lists for h in hs} | {"x.y", "*"}:
        inv.matching("ServiceEntry", query)  # answers the changes below must not leave behind
    victim = data.draw(st.integers(0, len(host_lists) - 1))
    inv.delete(("ServiceEntry", "default", f"se-{victim}"))
    moved = data.draw(st.integers(0, len(host_lists) - 1))
    new_hosts = data.draw(st.lists(_host, min_size=1, max_size=3))
    inv.upsert(_se(moved, new_hosts))
    live = {i: hs for i, hs in enumerate(host_lists) if i != victim}
    live[moved] = new_hosts
    for query in {h for hs in live.values() for h in hs} | {"x.y", "*"}:
        expected = {
            ("ServiceEntry", "default", f"se-{i}")
            for i, hs in live.items()
            if any(H.matches(h, query) for h in hs)
        }
        assert {r.key for r in inv.matching("ServiceEntry", query)} == expected, query


def test_kept_answers_are_bounded_and_stay_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inventory, "MATCH_CACHE_SIZE", 2)
    inv = MemoryInventory([_se(0, ["*.example.com"]), _se(1, ["a.example.com"])])
    for _ in range(2):
        for host, expected in (("a.example.com", 2), ("b.example.com", 1), ("c.org", 0)):
            assert len(inv.matching("ServiceEntry", host)) == expected
    assert len(inv._matches) <= 2
    inv.upsert(Resource("DestinationRule", "default", "dr", DestinationRule(host="a.example.com")))
    assert len(inv.matching("ServiceEntry", "a.example.com")) == 2  # another kind changed
    inv.delete(("ServiceEntry", "default", "se-0"))
    assert [r.name for r in inv.matching("ServiceEntry", "a.example.com")] == ["se-1"]


def test_short_names_resolve_in_the_rule_namespace() -> None:
    dr = Resource("DestinationRule", "shop", "r", DestinationRule(host="reviews"))
    vs = Resource("VirtualService", "shop", "v", VirtualService(hosts=["reviews", "api.example.com"]))
    assert hosts_of(dr) == ("reviews.shop.svc.cluster.local",)
    inv = MemoryInventory([dr, vs])
    assert [r.name for r in inv.matching("DestinationRule", "reviews.shop.svc.cluster.local")] == ["r"]
    assert list(inv.matching("DestinationRule", "reviews.other.svc.cluster.local")) == []
    assert [r.name for r in inv.matching("VirtualService", "*.example.com")] == ["v"]


def test_kinds_are_indexed_apart() -> None:
    inv = MemoryInventory(
        [_se(1, ["a.com"]), Resource("DestinationRule", "default", "d", DestinationRule(host="a.com"))]
    )
    assert [r.kind for r in inv.matching("ServiceEntry", "a.com")] == ["ServiceEntry"]
    assert [r.kind for r in inv.matching("DestinationRule", "a.com")] == ["DestinationRule"]
    assert list(inv.matching("Gateway", "a.com")) == []
    assert len(inv) == 2


def test_overlay_replaces_adds_and_removes_without_touching_the_base() -> None:
    old = _se(1, ["old.example.com"])
    other = _se(2, ["other.example.com"])
    base = MemoryInventory([old, other])
    new = _se(1, ["new.example.com"])
    after = Overlay(base, remove=old.key, add=new)
    assert after.get(old.key) is new
    assert list(after.matching("ServiceEntry", "old.example.com")) == []
    assert list(after.matching("ServiceEntry", "new.example.com")) == [new]
    assert {r.name for r in after.of_kind("ServiceEntry")} == {"se-1", "se-2"}
    deleted = Overlay(base, remove=other.key)
    assert deleted.get(other.key) is None
    assert list(deleted.matching("ServiceEntry", "*.example.com")) == [old]
    # The base is unchanged.
    assert list(base.matching("ServiceEntry", "old.example.com")) == [old]

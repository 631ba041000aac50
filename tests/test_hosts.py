from __future__ import annotations

import pytest

from webhook import hosts as H


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("*.foo.com", "a.b.foo.com", True),
        ("*.foo.com", "foo.com", False),
        ("*", "anything.org", True),
        ("*.com", "*.foo.com", True),
        ("*.foo.com", "*.bar.com", False),
        ("a.com", "a.com", True),
        ("a.com", "b.com", False),
        ("*foo.com", "barfoo.com", True),
    ],
)
def test_matches_is_symmetric_overlap(a: str, b: str, overlap: bool) -> None:
    assert H.matches(a, b) is overlap
    assert H.matches(b, a) is overlap


@pytest.mark.parametrize(
    ("a", "b", "subset"),
    [
        ("a.foo.com", "*.foo.com", True),
        ("*.foo.com", "*.com", True),
        ("*.com", "*.foo.com", False),
        ("*.foo.com", "a.foo.com", False),
        ("a.com", "a.com", True),
    ],
)
def test_subset_of(a: str, b: str, subset: bool) -> None:
    assert H.subset_of(a, b) is subset


def test_resolve_short_names_only() -> None:
    assert H.resolve("reviews", "shop") == "reviews.shop.svc.cluster.local"
    assert H.resolve("reviews.shop", "other") == "reviews.shop"
    assert H.resolve("*", "shop") == "*"
    assert H.resolve("API.Example.com", "shop") == "api.example.com"


def test_specificity_orders_exact_before_longer_wildcards() -> None:
    ordered = sorted(["*", "*.com", "a.foo.com", "*.foo.com"], key=H.specificity, reverse=True)
    assert ordered == ["a.foo.com", "*.foo.com", "*.com", "*"]

"""The patch built while applying changes equals what a document diff would say, and the
input is never modified."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
from hypothesis import assume, given
from hypothesis import strategies as st

from webhook.patching import apply_changes
from webhook.registry import Change

_keys = st.sampled_from(["spec", "http", "trafficPolicy", "outlierDetection", "a", "b/c", "d~e"])
_scalars = st.one_of(st.integers(), st.text(max_size=5), st.booleans())
_docs = st.recursive(_scalars, lambda inner: st.dictionaries(_keys, inner, max_size=4), max_leaves=12).filter(
    lambda d: isinstance(d, dict)
)


@given(_docs, st.lists(st.tuples(st.lists(_keys, min_size=1, max_size=4), _scalars), max_size=5))
def test_patch_replays_to_the_mutated_object(
    doc: dict[str, Any], changes: list[tuple[list[str], Any]]
) -> None:
    original = copy.deepcopy(doc)
    # Defaulters never write one place twice, nor under a value they set.
    paths = [tuple(p) for p, _ in changes]
    assume(
        not any(a != b and b[: len(a)] == a for a in paths for b in paths) and len(set(paths)) == len(paths)
    )
    applicable = [Change(tuple(p), v) for p, v in changes if _addressable(doc, p)]
    mutated, ops = apply_changes(doc, applicable)
    assert doc == original  # the input is untouched
    assert jsonpatch.apply_patch(original, ops) == mutated
    # Minimal: nothing when nothing changes.
    _, again = apply_changes(mutated, applicable)
    assert again == []


def _addressable(doc: Any, path: list[str]) -> bool:
    """Changes walk through mappings only (a scalar on the way cannot take a key)."""
    node = doc
    for part in path[:-1]:
        if not isinstance(node, dict):
            return False
        node = node.get(part, {})
    return isinstance(node, dict)


def test_new_subtrees_are_one_add_and_later_changes_join_them() -> None:
    doc: dict[str, Any] = {"spec": {"host": "a"}}
    mutated, ops = apply_changes(
        doc,
        [
            Change(("spec", "trafficPolicy", "outlierDetection"), {"interval": "10s"}),
            Change(("spec", "trafficPolicy", "tls"), {"mode": "SIMPLE"}),
        ],
    )
    assert ops == [
        {
            "op": "add",
            "path": "/spec/trafficPolicy",
            "value": {"outlierDetection": {"interval": "10s"}, "tls": {"mode": "SIMPLE"}},
        }
    ]
    assert jsonpatch.apply_patch(doc, ops) == mutated


def test_pointer_escaping_and_list_indexes() -> None:
    doc = {"metadata": {"annotations": {"x": "1"}}, "spec": {"http": [{"route": []}, {"route": []}]}}
    mutated, ops = apply_changes(
        doc,
        [
            Change(("spec", "http", 1, "timeout"), "10s"),
            Change(("metadata", "annotations", "meshwarden.io/d"), "v"),
        ],
    )
    assert [o["path"] for o in ops] == ["/spec/http/1/timeout", "/metadata/annotations/meshwarden.io~1d"]
    assert doc["spec"]["http"][1] == {"route": []}
    assert jsonpatch.apply_patch(doc, ops) == mutated

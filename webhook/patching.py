"""Applying defaulters' changes and writing the RFC 6902 patch that says the same.

Defaulters only add, so the patch is built while applying: one `add` per change, or one
per new subtree when a change needs mappings that do not exist yet. Only the nodes on each
change's path are copied, never the whole object (a full deep copy plus a document diff
cost more than the rules themselves).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from webhook.findings import Path
from webhook.registry import Change


def apply_changes(
    raw: Mapping[str, Any], changes: Iterable[Change]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The object with `changes` applied (sharing untouched subtrees with `raw`, which is
    not modified) and the JSON patch from `raw` to it."""
    root: dict[str, Any] = dict(raw)
    owned: set[int] = {id(root)}  # nodes copied or made here: safe to write into
    fresh: set[int] = set()  # nodes made here: already inside an emitted `add`
    ops: list[dict[str, Any]] = []
    for change in changes:
        _apply(root, change.path, change.value, owned, fresh, ops)
    return root, ops


def _apply(
    root: dict[str, Any], path: Path, value: Any, owned: set[int], fresh: set[int], ops: list[dict[str, Any]]
) -> None:
    node: Any = root
    inside_fresh = False
    last_at = len(path) - 1
    for depth in range(last_at):
        part = path[depth]
        child = node[part] if part.__class__ is int else node.get(part)
        if child is None:
            subtree = _nest(path[depth + 1 :], value, owned, fresh)
            node[part] = subtree
            if not inside_fresh:
                ops.append({"op": "add", "path": _pointer(path[: depth + 1]), "value": subtree})
            return
        key = id(child)
        if key not in owned:
            # JSON and YAML give dicts and lists; other mappings are copied as dicts.
            child = list(child) if isinstance(child, list) else dict(child)
            node[part] = child
            key = id(child)
            owned.add(key)
        inside_fresh = inside_fresh or key in fresh
        node = child
    last = path[last_at]
    existed = last < len(node) if last.__class__ is int else last in node
    if existed and node[last] == value:
        return  # minimal: an unchanged value is no operation
    node[last] = value
    if not inside_fresh:
        ops.append({"op": "replace" if existed else "add", "path": _pointer(path), "value": value})


def _nest(rest: Path, value: Any, owned: set[int], fresh: set[int]) -> Any:
    """`{rest[0]: {rest[1]: … value}}`, every level marked as made here."""
    for part in reversed(rest):
        if isinstance(part, int):
            raise ValueError(f"cannot create list index {part} under a missing field")
        value = {part: value}
        owned.add(id(value))
        fresh.add(id(value))
    return value


def _pointer(path: Path) -> str:
    # RFC 6901: "~" -> "~0", then "/" -> "~1" (jsonpointer's from_parts costs 5x more).
    text = "/" + "/".join(map(str, path))
    if "~" not in text and text.count("/") == len(path):
        return text  # no part needs escaping: the common case, without a pass per part
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)

"""`check --fix`: write the defaults the cluster would inject into the manifest files.

The JSON patch of each object (the one the webhook would return) is applied to the file's
text by inserting lines, not by re-serialising the document: comments, key order, quoting
and indentation of everything already there stay byte for byte, and the diff of a fix is
only the added lines. New entries go after the last entry of their mapping, at its
indentation, before any comment lines that follow it. JSON files are rewritten as JSON
with their indentation.

Every rewrite is checked by parsing the result: each fixed object must read back as the
object with defaults, and every other document as it was. A fix that cannot be placed
safely raises FixError and the file is left alone. Applying the fixes again changes
nothing, because the defaulters find their fields set.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jsonpatch
import yaml
from jsonpointer import JsonPointer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from webhook.sources import SourceError, compose_text, read_text


class FixError(ValueError):
    """A fix that cannot be written safely; the file is left as it was."""


@dataclass(frozen=True, slots=True)
class Fix:
    """The defaults for one object: where it is in its file and the patch to apply.
    `expected` is the object with defaults, used to check the rewrite."""

    index: int  # the YAML document's ordinal in the file
    item: int | None  # position in a List's items
    patch: list[dict[str, Any]]
    expected: dict[str, Any]


def fix_file(path: str, fixes: Sequence[Fix]) -> bool:
    """Apply `fixes` to the file at `path`; True when it changed."""
    with open(path, encoding="utf-8", newline="") as fh:
        text = fh.read()
    new = fix_text(path, text, fixes)
    if new == text:
        return False
    _write_atomically(path, new)
    return True


def fix_text(name: str, text: str, fixes: Sequence[Fix]) -> str:
    fixes = [f for f in fixes if f.patch]
    if not fixes:
        return text
    body = text.removeprefix("\ufeff")
    new = _fix_json(name, body, fixes) if _is_json(body) else _fix_yaml(name, body, fixes)
    _verify(name, body, new, fixes)
    return text[: len(text) - len(body)] + new


# --- JSON ---------------------------------------------------------------------------------


def _is_json(text: str) -> bool:
    if not text.lstrip().startswith(("{", "[")):
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _fix_json(name: str, text: str, fixes: Sequence[Fix]) -> str:
    data = json.loads(text)
    for fix in fixes:
        if fix.index != 0:
            raise FixError(f"{name}: a JSON file holds one document")
        ops = [_prefixed(op, fix.item) for op in fix.patch]
        try:
            data = jsonpatch.apply_patch(data, ops)
        except jsonpatch.JsonPatchException as exc:
            raise FixError(f"{name}: cannot apply defaults: {exc}") from None
    indent = _json_indent(text)
    out = json.dumps(data, indent=indent, ensure_ascii=False)
    return out + ("\n" if text.endswith("\n") else "")


def _json_indent(text: str) -> int | str | None:
    match = re.search(r"\n([ \t]+)\S", text)
    if match is None:
        return None
    unit = match.group(1)
    return len(unit) if set(unit) == {" "} else unit


def _prefixed(op: dict[str, Any], item: int | None) -> dict[str, Any]:
    if item is None:
        return op
    return {**op, "path": f"/items/{item}{op['path']}"}


# --- YAML ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Edit:
    start: int
    end: int
    text: str
    order: int  # among edits at the same place, the earlier patch operation comes first


def _fix_yaml(name: str, text: str, fixes: Sequence[Fix]) -> str:
    try:
        roots = compose_text(name, text)
    except SourceError as exc:
        raise FixError(str(exc)) from None
    unit = _indent_unit(text)
    edits: list[_Edit] = []
    for fix in fixes:
        if fix.index >= len(roots):
            raise FixError(f"{name}: document {fix.index + 1} is gone; run check again")
        for op in fix.patch:
            parts: list[str | int] = ["items", fix.item] if fix.item is not None else []
            parts.extend(JsonPointer(op["path"]).parts)
            edits.append(_edit(name, text, roots[fix.index], op, parts, unit, len(edits)))
    out = text
    for edit in sorted(edits, key=lambda e: (e.start, e.order), reverse=True):
        out = out[: edit.start] + edit.text + out[edit.end :]
    return out


def _edit(
    name: str, text: str, root: Node, op: dict[str, Any], parts: list[str | int], unit: int, order: int
) -> _Edit:
    if op.get("op") not in ("add", "replace") or not parts:
        raise FixError(f"{name}: cannot write patch operation {op.get('op')} {op.get('path')}")
    parent = _walk(name, root, parts[:-1])
    last, value = parts[-1], op["value"]
    if isinstance(parent, MappingNode):
        key = str(last)
        for key_node, value_node in parent.value:
            if isinstance(key_node, ScalarNode) and key_node.value == key:
                return _replace(name, text, key_node, value_node, value, unit, order)
        return _insert_entry(text, parent, key, value, unit, order)
    if isinstance(parent, SequenceNode):
        index = len(parent.value) if last == "-" else int(last)
        if index != len(parent.value):
            raise FixError(f"{name}:{_line(parent)}: cannot insert into the middle of a list")
        return _append_item(text, parent, value, unit, order)
    raise FixError(f"{name}:{_line(parent)}: {op['path']}: the parent is not a mapping or a list")


def _walk(name: str, node: Node, parts: list[str | int]) -> Node:
    for part in parts:
        child: Node | None = None
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.value == str(part):
                    child = value_node
        elif isinstance(node, SequenceNode) and str(part).isdigit() and int(part) < len(node.value):
            child = node.value[int(part)]
        if child is None:
            raise FixError(f"{name}:{_line(node)}: no {part!r} here; run check again")
        node = child
    return node


def _replace(name: str, text: str, key_node: Node, node: Node, value: Any, unit: int, order: int) -> _Edit:
    if isinstance(node, ScalarNode):
        start, end = node.start_mark.index, node.end_mark.index
        if start == end and isinstance(value, dict | list) and value:
            # `key:` with nothing after it (null): the new block goes on the next lines.
            pos = _line_end(text, key_node.end_mark.index)
            return _Edit(pos, pos, _block(value, key_node.start_mark.column + unit, unit), order)
        if start == end:
            return _Edit(start, end, " " + _flow(value), order)
        return _Edit(start, end, _flow(value), order)
    if node.flow_style:
        return _Edit(node.start_mark.index, node.end_mark.index, _flow(value), order)
    raise FixError(f"{name}:{_line(node)}: will not rewrite the block at this line")


def _insert_entry(text: str, mapping: MappingNode, key: str, value: Any, unit: int, order: int) -> _Edit:
    entry = f"{_flow(key)}: "
    if mapping.flow_style or not mapping.value:
        close = mapping.end_mark.index - 1
        if text[close] != "}":
            raise FixError(f"line {_line(mapping)}: expected a '}}' to close the mapping")
        sep = ", " if mapping.value else ""
        return _Edit(close, close, f"{sep}{entry}{_flow(value)}", order)
    column = mapping.value[0][0].start_mark.column
    pos = _after(text, mapping.value[-1][1])
    if isinstance(value, dict | list) and value:
        body = f"{' ' * column}{entry.rstrip()}\n{_block(value, column + unit, unit)}"
    else:
        body = f"{' ' * column}{entry}{_flow(value)}\n"
    return _Edit(pos, pos, _newline_before(text, pos) + body, order)


def _append_item(text: str, seq: SequenceNode, value: Any, unit: int, order: int) -> _Edit:
    if seq.flow_style or not seq.value:
        close = seq.end_mark.index - 1
        if text[close] != "]":
            raise FixError(f"line {_line(seq)}: expected a ']' to close the list")
        sep = ", " if seq.value else ""
        return _Edit(close, close, f"{sep}{_flow(value)}", order)
    column = seq.start_mark.column
    pos = _after(text, seq.value[-1])
    if isinstance(value, dict) and value:
        lines = _block(value, column + 2, unit).splitlines(keepends=True)
        body = " " * column + "- " + lines[0].lstrip(" ") + "".join(lines[1:])
    else:
        body = f"{' ' * column}- {_flow(value)}\n"
    return _Edit(pos, pos, _newline_before(text, pos) + body, order)


def _after(text: str, node: Node) -> int:
    """Where a new line goes after `node`: the start of the line after its last scalar or
    flow collection (past an end-of-line comment, before comment lines that follow)."""
    while isinstance(node, MappingNode | SequenceNode) and not node.flow_style and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(node, MappingNode) else last
    end = node.end_mark
    if isinstance(node, ScalarNode) and node.style in ("|", ">") and end.column == 0:
        return end.index  # a block scalar ends at the start of the line after it
    return _line_end(text, end.index)


def _line_end(text: str, index: int) -> int:
    nl = text.find("\n", index)
    return len(text) if nl < 0 else nl + 1


def _newline_before(text: str, pos: int) -> str:
    return "\n" if pos > 0 and text[pos - 1] != "\n" else ""


def _flow(value: Any) -> str:
    out = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1 << 30, allow_unicode=True)
    return out.removesuffix("\n").removesuffix("\n...").strip()


def _block(value: Any, column: int, unit: int) -> str:
    out = yaml.safe_dump(
        value, default_flow_style=False, sort_keys=False, indent=unit, width=1 << 30, allow_unicode=True
    )
    return "".join(" " * column + line if line.strip() else line for line in out.splitlines(keepends=True))


def _indent_unit(text: str) -> int:
    """The file's mapping indentation: the most common step from a `key:` line to the
    mapping nested under it."""
    steps: dict[int, int] = {}
    lines = text.splitlines()
    for prev, line in itertools.pairwise(lines):
        stripped = line.lstrip(" ")
        if (
            not stripped
            or stripped.startswith(("#", "- "))
            or not re.match(r"^\s*[^#\s][^#]*:\s*(#.*)?$", prev)
        ):
            continue
        step = (len(line) - len(stripped)) - (len(prev) - len(prev.lstrip(" ").lstrip("- ")))
        if step > 0:
            steps[step] = steps.get(step, 0) + 1
    return max(steps, key=lambda s: (steps[s], -s)) if steps else 2


def _line(node: Node) -> int:
    return node.start_mark.line + 1


# --- checking and writing -----------------------------------------------------------------


def _verify(name: str, before: str, after: str, fixes: Sequence[Fix]) -> None:
    try:
        old = read_text(name, before)
        new = read_text(name, after)
    except SourceError as exc:
        raise FixError(f"{name}: the fixed file would not parse ({exc}); left unchanged") from None
    expected = {(f.index, f.item): f.expected for f in fixes}
    if len(old) != len(new):
        raise FixError(f"{name}: the fix would change the documents in the file; left unchanged")
    for was, now in zip(old, new, strict=True):
        want = expected.get((now.index, now.item), was.raw)
        if now.raw != want:
            raise FixError(
                f"{name}:{now.line}: the fixed object would not read back as intended; left unchanged"
            )


def _write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".meshwarden-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

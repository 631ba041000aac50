"""Kubernetes manifests read from files, directories and stdin, with the position of every
field.

Public API (the CLI's `check` and `serve --inventory-from` both use it):

    iter_documents(paths, *, stdin=None, stats=None, on_error=None, limits=LIMITS)
        -> Iterator[SourceDocument]
        `paths`: files, directories (searched recursively for *.yaml, *.yml, *.json; hidden
        entries skipped) and `-` for `stdin` (a binary stream, default sys.stdin.buffer).
        Yields every Kubernetes object (a mapping with apiVersion and kind), in file order;
        the items of a `List` (kind List or *List with items) are yielded one by one.
        A file that cannot be read or parsed yields nothing: it raises SourceError, or, when
        `on_error` is given, is passed to it and reading goes on with the next file.
    SourceDocument(file, line, column, raw, index, item)
        file: the path as given (`<stdin>` for stdin); line, column: 1-based position of the
        object; raw: the object as a plain dict (as `kubectl` would send it: timestamps
        stay strings, mapping keys are strings); index: the YAML document's ordinal in the
        file; item: the position in a List's items, or None.
        .position(path) -> (line, column) of a JSON path such as ("spec", "ports", 0,
        "protocol"): the deepest part of the path present in the file (a key's own
        position for a mapping entry). Falls back to the object's position.
        .location -> "file:line"
    SourceStats: files, documents, objects, not_objects (list of (file, line) of documents
        without apiVersion or kind: values files and other YAML that share a directory).
    read_text(name, text, *, stats=None, limits=LIMITS) -> list[SourceDocument]: the same
        for text already in memory (raises SourceError).
    compose_text(name, text) -> list[yaml.Node]: the node tree of each YAML document (for
        tools that edit files in place, such as `check --fix`).
    SourceError(ValueError): .file, .line (or None), .problem; str() is "file:line: problem".
    Limits(max_file_bytes, max_alias_nodes, max_depth); LIMITS is the default.

Hostile input is refused with a SourceError, never a hang or a crash: files over the size
limit, binary files (NUL bytes), text that is not UTF-8, YAML whose aliases expand past the
node budget (a "billion laughs"), nesting deeper than the limit, duplicate keys, unknown
tags, and invalid YAML (with file:line).

Parsing uses PyYAML's C parser to compose the node tree and a small constructor of our own
(plain dicts, lists and scalars), which is several times faster than PyYAML's. Node trees
are not kept: positions are looked up by composing the file again the first time an object
of that file asks for one, so only files with findings pay for it.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

STDIN = "-"
STDIN_NAME = "<stdin>"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, slots=True)
class Limits:
    max_file_bytes: int = 16 * 1024 * 1024
    # Nodes that aliases may add on top of what is written (each written node takes at
    # least one byte, so a file without aliases never reaches its budget).
    max_alias_nodes: int = 100_000
    max_depth: int = 128


LIMITS = Limits()


class SourceError(ValueError):
    """A file (or stdin) that cannot be read as manifests."""

    def __init__(self, file: str, problem: str, line: int | None = None) -> None:
        self.file = file
        self.line = line
        self.problem = problem
        super().__init__(f"{file}:{line}: {problem}" if line is not None else f"{file}: {problem}")


@dataclass(slots=True)
class SourceStats:
    files: int = 0
    documents: int = 0
    objects: int = 0
    not_objects: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True, eq=False)
class SourceDocument:
    file: str
    line: int
    column: int
    raw: dict[str, Any]
    index: int
    item: int | None = None
    _text: _SourceText | None = field(default=None, repr=False)

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"

    def position(self, path: Sequence[str | int]) -> tuple[int, int]:
        node = self._text.node(self.index, self.item) if self._text is not None else None
        if node is None:
            return self.line, self.column
        return _position(node, path)


def iter_documents(
    paths: Sequence[str],
    *,
    stdin: BinaryIO | None = None,
    stats: SourceStats | None = None,
    on_error: Callable[[SourceError], None] | None = None,
    limits: Limits = LIMITS,
) -> Iterator[SourceDocument]:
    stats = stats if stats is not None else SourceStats()
    for name, opener in _expand(paths, stdin):
        stats.files += 1
        try:
            docs = _read(name, opener, stats, limits)
        except SourceError as exc:
            if on_error is None:
                raise
            on_error(exc)
            continue
        stats.objects += len(docs)
        yield from docs


# --- finding the files ------------------------------------------------------------------

_Opener = Callable[[int], bytes]


def _expand(paths: Sequence[str], stdin: BinaryIO | None) -> Iterator[tuple[str, _Opener | SourceError]]:
    for path in paths:
        if path == STDIN:
            stream = stdin if stdin is not None else sys.stdin.buffer
            yield STDIN_NAME, lambda limit, s=stream: s.read(limit)
        elif os.path.isdir(path):
            for found in _walk(path):
                yield found, _file_opener(found)
        elif os.path.exists(path):
            yield path, _file_opener(path)
        else:
            yield path, SourceError(path, "no such file or directory")


def _walk(top: str) -> list[str]:
    out: list[tuple[str, ...]] = []
    for root, dirs, files in os.walk(top):
        # Hidden directories (.git, .github) hold no manifests; os.walk does not follow
        # directory symlinks, so a link loop cannot trap the walk.
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(
            tuple(os.path.join(root, f).split(os.sep))
            for f in files
            if not f.startswith(".") and f.lower().endswith(MANIFEST_SUFFIXES)
        )
    # Path order (a/x.yaml before b.yaml), the same on every machine.
    return [os.sep.join(parts) for parts in sorted(out)]


def _file_opener(path: str) -> _Opener:
    def read(limit: int) -> bytes:
        with open(path, "rb") as fh:
            return fh.read(limit)

    return read


# --- reading one file -------------------------------------------------------------------


def _read(
    name: str, opener: _Opener | SourceError, stats: SourceStats, limits: Limits
) -> list[SourceDocument]:
    if isinstance(opener, SourceError):
        raise opener
    try:
        data = opener(limits.max_file_bytes + 1)
    except OSError as exc:
        raise SourceError(name, f"cannot read: {exc.strerror or exc}") from None
    return _documents(_SourceText(name, _decode(name, data, limits), limits), stats)


def _documents(source: _SourceText, stats: SourceStats) -> list[SourceDocument]:
    docs: list[SourceDocument] = []
    for index, (node, value) in enumerate(source.documents()):
        if value is None:
            continue  # an empty document (a trailing `---`)
        stats.documents += 1
        _collect(source, index, node, value, docs, stats)
    return docs


def read_text(
    name: str, text: str, *, stats: SourceStats | None = None, limits: Limits = LIMITS
) -> list[SourceDocument]:
    stats = stats if stats is not None else SourceStats()
    docs = _documents(_SourceText(name, text, limits), stats)
    stats.objects += len(docs)
    return docs


def load_yaml(name: str, text: str, limits: Limits = LIMITS) -> Any:
    """One YAML document (not necessarily a Kubernetes object) as plain data, with the
    guards manifests get: nesting depth, alias budget, duplicate keys. For YAML that
    arrives inside other input: the mesh config string, the policy file."""
    docs = _SourceText(name, text, limits).documents()
    if len(docs) > 1:
        raise SourceError(name, "holds more than one YAML document")
    return docs[0][1] if docs else None


def compose_text(name: str, text: str, limits: Limits = LIMITS) -> list[Node]:
    _check_nesting(name, text, limits)
    return _SourceText(name, text, limits).roots()


def _decode(name: str, data: bytes, limits: Limits) -> str:
    if len(data) > limits.max_file_bytes:
        raise SourceError(name, f"larger than the limit of {limits.max_file_bytes} bytes")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SourceError(name, "UTF-16 text; manifests are read as UTF-8")
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise SourceError(name, "binary file (NUL byte), not YAML or JSON", line)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SourceError(name, f"not UTF-8 text (byte 0x{data[exc.start]:02x})", line) from None
    return text.removeprefix("\ufeff")


def _collect(
    source: _SourceText,
    index: int,
    node: Node,
    value: Any,
    docs: list[SourceDocument],
    stats: SourceStats,
) -> None:
    line, column = node.start_mark.line + 1, node.start_mark.column + 1
    if not _is_object(value):
        stats.not_objects.append((source.name, line))
        return
    items = value.get("items")
    kind: str = value["kind"]
    if kind.endswith("List") and isinstance(items, list) and isinstance(node, MappingNode):
        item_nodes = _child(node, "items")
        for i, item in enumerate(items):
            inode = item_nodes.value[i] if isinstance(item_nodes, SequenceNode) else node
            iline, icol = inode.start_mark.line + 1, inode.start_mark.column + 1
            if isinstance(item, dict) and kind != "List":
                # Typed lists from the API (ServiceEntryList) may leave out the items' own
                # apiVersion and kind.
                item.setdefault("apiVersion", value["apiVersion"])
                item.setdefault("kind", kind.removesuffix("List"))
            if _is_object(item):
                docs.append(SourceDocument(source.name, iline, icol, item, index, i, source))
            else:
                stats.not_objects.append((source.name, iline))
        return
    docs.append(SourceDocument(source.name, line, column, value, index, None, source))


def _is_object(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    api_version, kind = value.get("apiVersion"), value.get("kind")
    return isinstance(api_version, str) and bool(api_version) and isinstance(kind, str) and bool(kind)


class _SourceText:
    """One file's text; composes its YAML node trees on demand."""

    __slots__ = ("_roots", "limits", "name", "text")

    def __init__(self, name: str, text: str, limits: Limits) -> None:
        self.name = name
        self.text = text
        self.limits = limits
        self._roots: list[Node] | None = None

    def documents(self) -> list[tuple[Node, Any]]:
        _check_nesting(self.name, self.text, self.limits)
        builder = _Builder(self.name, self.limits.max_alias_nodes + len(self.text), self.limits.max_depth)
        out: list[tuple[Node, Any]] = []
        for node in self._compose():
            out.append((node, builder.build(node, 0)))
        return out

    def roots(self) -> list[Node]:
        if self._roots is None:
            self._roots = self._compose()
        return self._roots

    def node(self, index: int, item: int | None) -> Node | None:
        roots = self.roots()
        if index >= len(roots):
            return None
        root = roots[index]
        if item is None:
            return root
        items = _child(root, "items")
        if isinstance(items, SequenceNode) and item < len(items.value):
            return items.value[item]
        return root

    def _compose(self) -> list[Node]:
        loader = _Loader(self.text)
        roots: list[Node] = []
        try:
            while loader.check_node():
                roots.append(loader.get_node())
        except yaml.YAMLError as exc:
            raise _yaml_error(self.name, self.text, exc) from None
        finally:
            loader.dispose()
        return roots


# --- YAML: resolving, nesting, building -------------------------------------------------

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_RESOLVED: dict[str, str] = {}  # plain scalar -> tag; manifests repeat the same words a lot
_RESOLVED_MAX = 50_000


class _Loader(yaml.CSafeLoader):  # type: ignore[misc,name-defined]
    """The C parser and composer with a memoised implicit-tag resolver (PyYAML resolves
    every plain scalar with regular expressions)."""

    # No path resolvers are registered; C builtins taking the same arguments stand in for
    # the two hooks the composer calls on every node, saving a Python call each.
    descend_resolver = staticmethod(slice)
    ascend_resolver = staticmethod(tuple)

    def resolve(self, kind: type[Node], value: str, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            if not implicit[0]:
                return _STR
            tag = _RESOLVED.get(value)
            if tag is None:
                tag = Resolver.resolve(self, kind, value, implicit)
                if len(_RESOLVED) < _RESOLVED_MAX:
                    _RESOLVED[value] = tag
            return tag
        return _SEQ if kind is SequenceNode else _MAP


# Nesting on one line ("[[[[", "- - - -") costs the C composer a stack frame per level and
# can overflow it; nesting by indentation needs ~n²/2 bytes for n levels, which the file
# size limit keeps harmless. Texts with few such openers are safe without a closer look.
_INLINE_OPENERS = ("[", "{", "- ", "-\t", "? ", "?\t")
_INLINE_BUDGET = 2000
_DOC_MARKER = re.compile(r"^(?:---|\.\.\.)(?=[ \t\r\n]|$)", re.M)


def _check_nesting(name: str, text: str, limits: Limits) -> None:
    if _openers(text) <= _INLINE_BUDGET:
        return
    bounds = sorted({0, len(text), *(m.start() for m in _DOC_MARKER.finditer(text))})
    for start, end in itertools.pairwise(bounds):
        chunk = text[start:end]
        if _openers(chunk) > _INLINE_BUDGET:
            try:
                _scan_depth(name, chunk, text.count("\n", 0, start), limits.max_depth)
            except yaml.YAMLError:
                # The chunk is not a stream of its own (a directive, a marker inside
                # something); measure the whole text instead.
                _scan_depth(name, text, 0, limits.max_depth)
                return


def _openers(text: str) -> int:
    return sum(text.count(o) for o in _INLINE_OPENERS)


def _scan_depth(name: str, text: str, line_offset: int, max_depth: int) -> None:
    depth = 0
    try:
        for event in yaml.parse(io.StringIO(text), Loader=yaml.CSafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > max_depth:
                    line = line_offset + event.start_mark.line + 1
                    raise SourceError(name, f"nested deeper than {max_depth} levels", line)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as exc:
        if line_offset:
            raise
        raise _yaml_error(name, text, exc) from None


_SAFE = yaml.constructor.SafeConstructor()


class _Builder:
    """Node tree -> plain data, as Kubernetes reads YAML: aliases expanded (within a
    budget), merge keys applied, duplicate keys refused, timestamps kept as text."""

    __slots__ = ("budget", "max_depth", "name")

    def __init__(self, name: str, budget: int, max_depth: int) -> None:
        self.name = name
        self.budget = budget
        self.max_depth = max_depth

    def build(self, node: Node, depth: int) -> Any:
        cls = node.__class__
        if cls is ScalarNode:
            return self._scalar(node)
        if depth >= self.max_depth:
            raise SourceError(self.name, f"nested deeper than {self.max_depth} levels", _line(node))
        self.budget -= len(node.value)
        if self.budget < 0:
            raise SourceError(
                self.name, "aliases expand to too many nodes (a YAML bomb?); refusing to read", _line(node)
            )
        # Plain string scalars, most of a manifest, are taken inline rather than through
        # another call.
        if cls is SequenceNode:
            if node.tag != _SEQ:
                raise self._tag(node)
            return [
                child.value
                if child.__class__ is ScalarNode and child.tag == _STR
                else self.build(child, depth + 1)
                for child in node.value
            ]
        if node.tag != _MAP:
            raise self._tag(node)
        out: dict[str, Any] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            key_tag = key_node.tag
            if key_tag == _STR and key_node.__class__ is ScalarNode:
                key = key_node.value
            elif key_tag == _MERGE:
                merges.append(value_node)
                continue
            else:
                key = self._key(key_node)
            if key in out:
                raise SourceError(self.name, f"duplicate key {key!r}", _line(key_node))
            if value_node.__class__ is ScalarNode and value_node.tag == _STR:
                out[key] = value_node.value
            else:
                out[key] = self.build(value_node, depth + 1)
        return self._merge(merges, out, depth) if merges else out

    def _merge(self, merges: list[Node], own: dict[str, Any], depth: int) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for merge in merges:
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            # Earlier mappings in a merge sequence win over later ones.
            for source in reversed(sources):
                if not isinstance(source, MappingNode):
                    raise SourceError(self.name, "a merge key (<<) takes a mapping", _line(source))
                merged.update(self.build(source, depth + 1))
        merged.update(own)
        return merged

    def _key(self, node: Node) -> str:
        if not isinstance(node, ScalarNode):
            raise SourceError(self.name, "mapping keys must be strings", _line(node))
        if node.tag == _STR:
            return node.value
        value = self._scalar(node)
        # As Kubernetes converts YAML to JSON: `80:` is the key "80", `true:` is "true".
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def _scalar(self, node: ScalarNode) -> Any:
        tag, value = node.tag, node.value
        if tag in (_STR, _TIMESTAMP):
            return value
        if tag == _INT:
            return int(value) if value.isdigit() else _SAFE.construct_yaml_int(node)
        if tag == _BOOL:
            return value.lower() in ("true", "yes", "on")
        if tag == _NULL:
            return None
        if tag == _FLOAT:
            return _SAFE.construct_yaml_float(node)
        raise self._tag(node)

    def _tag(self, node: Node) -> SourceError:
        return SourceError(self.name, f"unsupported tag {node.tag}: manifests are plain YAML", _line(node))


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _yaml_error(name: str, text: str, exc: yaml.YAMLError) -> SourceError:
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return SourceError(name, f"invalid YAML: character U+{char:04X} is not allowed", line)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    detail = f"{problem} ({context})" if context else problem
    if mark is None:
        return SourceError(name, f"invalid YAML: {detail}")
    return SourceError(name, f"invalid YAML: {detail} (column {mark.column + 1})", mark.line + 1)


# --- positions ----------------------------------------------------------------------------


def _child(node: Node, key: str) -> Node | None:
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == key:
                return value_node
    return None


def _position(root: Node, path: Sequence[str | int]) -> tuple[int, int]:
    mark = root.start_mark
    node: Node = root
    for part in path:
        if isinstance(node, MappingNode) and isinstance(part, str):
            found = _entry(node, part)
            if found is None:
                break
            mark = found[0].start_mark
            node = found[1]
        elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            mark = node.start_mark
        else:
            break
    return mark.line + 1, mark.column + 1


def _entry(node: MappingNode, key: str) -> tuple[Node, Node] | None:
    merges: list[Node] = []
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE:
            merges.append(value_node)
        elif isinstance(key_node, ScalarNode) and key_node.value == key:
            return key_node, value_node
    for merge in merges:
        for source in merge.value if isinstance(merge, SequenceNode) else [merge]:
            if isinstance(source, MappingNode):
                found = _entry(source, key)
                if found is not None:
                    return found
    return None

"""webhook.sources on real files: finding manifests, documents and List items, positions
of JSON paths, and every refusal of bad or hostile input."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from webhook.sources import (
    STDIN_NAME,
    Limits,
    SourceError,
    SourceStats,
    compose_text,
    iter_documents,
    read_text,
)

SE = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
spec:
  hosts: [{name}.example.com]
  ports:
  - number: 443
    protocol: TLS
"""


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def names(docs: list) -> list[str]:
    return [d.raw["metadata"]["name"] for d in docs]


def test_directories_are_searched_recursively_for_manifest_suffixes(tmp_path: Path) -> None:
    write(tmp_path / "b.yaml", SE.format(name="b"))
    write(tmp_path / "a" / "x.yml", SE.format(name="x"))
    write(tmp_path / "a" / "y.JSON", '{"apiVersion": "v1", "kind": "Sidecar", "metadata": {"name": "y"}}')
    write(tmp_path / "notes.txt", SE.format(name="txt"))
    write(tmp_path / ".git" / "config.yaml", "[broken")
    write(tmp_path / ".hidden.yaml", "[broken")
    stats = SourceStats()
    docs = list(iter_documents([str(tmp_path)], stats=stats))
    assert names(docs) == ["x", "y", "b"]  # sorted walk, a/ before b.yaml
    assert stats.files == 3 and stats.objects == 3


def test_a_file_named_explicitly_is_read_whatever_its_suffix(tmp_path: Path) -> None:
    path = write(tmp_path / "manifest.txt", SE.format(name="t"))
    assert names(list(iter_documents([str(path)]))) == ["t"]


def test_multi_document_positions(tmp_path: Path) -> None:
    text = "# header\n" + SE.format(name="one") + "---\n\n" + SE.format(name="two") + "---\n"
    path = write(tmp_path / "two.yaml", text)
    stats = SourceStats()
    one, two = iter_documents([str(path)], stats=stats)
    assert (one.file, one.line, one.column, one.index) == (str(path), 2, 1, 0)
    assert (two.line, two.index) == (13, 1)
    assert two.location == f"{path}:13"
    # A key path points at the key; an index path at the list item; a missing tail at the
    # deepest part that exists.
    assert two.position(("spec", "ports", 0, "protocol")) == (21, 5)
    assert two.position(("spec", "ports", 0)) == (20, 5)
    assert two.position(("spec", "hosts", 0)) == (18, 11)
    assert two.position(("spec", "ports", 3, "name")) == (19, 3)
    assert two.position(("spec", "nothing", "here")) == (17, 1)
    assert two.position(()) == (13, 1)
    assert stats.documents == 2  # the trailing empty document is not counted


def test_documents_without_apiversion_or_kind_are_skipped_and_counted(tmp_path: Path) -> None:
    text = "replicaCount: 2\n---\n- a list\n---\nkind: OnlyKind\n---\n" + SE.format(name="real")
    path = write(tmp_path / "values.yaml", text)
    stats = SourceStats()
    docs = list(iter_documents([str(path)], stats=stats))
    assert names(docs) == ["real"]
    assert stats.not_objects == [(str(path), 1), (str(path), 3), (str(path), 5)]
    assert stats.documents == 4 and stats.objects == 1


def test_list_objects_yield_their_items(tmp_path: Path) -> None:
    text = """\
apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: Sidecar
  metadata: {name: first}
- metadata: {name: no-kind}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntryList
items:
- metadata:
    name: typed
  spec:
    hosts: [a.example.com]
"""
    path = write(tmp_path / "list.yaml", text)
    stats = SourceStats()
    first, typed = iter_documents([str(path)], stats=stats)
    assert (first.line, first.column, first.item, first.raw["kind"]) == (4, 3, 0, "Sidecar")
    assert stats.not_objects == [(str(path), 7)]
    # Items of a typed list take their kind and apiVersion from it.
    assert (typed.raw["kind"], typed.raw["apiVersion"]) == ("ServiceEntry", "networking.istio.io/v1")
    assert (typed.line, typed.index, typed.item) == (12, 1, 0)
    assert typed.position(("spec", "hosts", 0)) == (15, 13)


def test_stdin(tmp_path: Path) -> None:
    stats = SourceStats()
    docs = list(iter_documents(["-"], stdin=io.BytesIO(SE.format(name="s").encode()), stats=stats))
    assert names(docs) == ["s"] and docs[0].file == STDIN_NAME
    assert docs[0].position(("spec", "ports", 0, "number")) == (8, 5)


def test_json_files_have_positions(tmp_path: Path) -> None:
    path = write(
        tmp_path / "vs.json",
        '{\n\t"apiVersion": "networking.istio.io/v1",\n\t"kind": "VirtualService",\n'
        '\t"metadata": {"name": "j"},\n\t"spec": {"hosts": ["j"], "http": [{"timeout": "1s"}]}\n}\n',
    )
    [doc] = iter_documents([str(path)])
    assert doc.raw["spec"]["http"][0]["timeout"] == "1s"
    assert doc.position(("spec", "http", 0, "timeout")) == (5, 37)


def test_values_read_as_kubernetes_reads_them(tmp_path: Path) -> None:
    text = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: m
  labels: &labels {app: x, tier: web}
data:
  date: 2027-03-31
  80: port
  true: yes-key
  flag: yes
  hex: 0x1F
  float: 1.5
  nothing: ~
  merged:
    <<: *labels
    tier: api
"""
    [doc] = read_text("m.yaml", text)
    data = doc.raw["data"]
    assert data["date"] == "2027-03-31"  # timestamps stay text
    assert data["80"] == "port" and data["true"] == "yes-key"
    assert data["flag"] is True and data["hex"] == 31 and data["float"] == 1.5 and data["nothing"] is None
    assert data["merged"] == {"app": "x", "tier": "api"}
    assert doc.position(("data", "merged", "app")) == (5, 20)  # found through the merge key


def test_compose_text_gives_one_node_per_document() -> None:
    roots = compose_text("x.yaml", "a: 1\n---\nb: 2\n")
    assert [r.start_mark.line for r in roots] == [0, 2]


@pytest.mark.parametrize(
    ("content", "problem", "line"),
    [
        (b"apiVersion: v1\nkind: [\n", "invalid YAML", 3),
        (b"apiVersion: v1\nkind: A\nmetadata:\n  name: x\n  name: y\n", "duplicate key 'name'", 5),
        (b"a: 1\nb: \x00\n", "binary file (NUL byte)", 2),
        (b"\xff\xfea\x00", "UTF-16", None),
        (b"a: 1\nb: caf\xe9\n", "not UTF-8 text (byte 0xe9)", 2),
        (b"a: 1\nb: \x07\n", "character U+0007 is not allowed", 2),
        (b"a: !custom x\n", "unsupported tag !custom", 1),
        (b"a: &x [*x]\n", "nested deeper than", 1),
        (b"a: " + b"[" * 200_000 + b"]" * 200_000 + b"\n", "nested deeper than 128 levels", 1),
        (b"- " * 60_000 + b"x\n", "nested deeper than", 1),
        (b"{" * 3000 + b"}" * 3000, "nested deeper than", 1),
    ],
)
def test_bad_input_is_a_source_error_with_file_and_line(
    tmp_path: Path, content: bytes, problem: str, line: int | None
) -> None:
    path = write(tmp_path / "bad.yaml", content)
    with pytest.raises(SourceError) as info:
        list(iter_documents([str(path)]))
    err = info.value
    assert problem in err.problem
    assert (err.file, err.line) == (str(path), line)
    assert str(err).startswith(f"{path}:{line}: " if line else f"{path}: ")


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefghi", "bcdefghij", strict=True):
        lines.append(f"{cur}: &{cur} [{','.join(['*' + prev] * 10)}]")
    path = write(tmp_path / "bomb.yaml", "\n".join(lines) + "\n")
    with pytest.raises(SourceError, match="aliases expand to too many nodes"):
        list(iter_documents([str(path)]))


def test_aliases_within_budget_are_expanded(tmp_path: Path) -> None:
    text = "apiVersion: v1\nkind: A\nx: &p [1, 2]\ny: [*p, *p]\n"
    [doc] = read_text("ok.yaml", text)
    assert doc.raw["y"] == [[1, 2], [1, 2]] and doc.raw["y"][0] is not doc.raw["y"][1]


def test_size_limit(tmp_path: Path) -> None:
    path = write(tmp_path / "big.yaml", SE.format(name="b"))
    with pytest.raises(SourceError, match="larger than the limit of 50 bytes"):
        list(iter_documents([str(path)], limits=Limits(max_file_bytes=50)))
    stdin = io.BytesIO(b"a: 1\n" * 100)
    with pytest.raises(SourceError, match="larger than the limit"):
        list(iter_documents(["-"], stdin=stdin, limits=Limits(max_file_bytes=50)))


def test_missing_and_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or directory"):
        list(iter_documents([str(tmp_path / "absent.yaml")]))
    folder = write(tmp_path / "dir.yaml" / "inner.yaml", SE.format(name="in")).parent
    assert names(list(iter_documents([str(folder)]))) == ["in"]


def test_on_error_reports_and_goes_on_with_the_next_file(tmp_path: Path) -> None:
    write(tmp_path / "1-bad.yaml", "a: [\n")
    write(tmp_path / "2-good.yaml", SE.format(name="good"))
    errors: list[SourceError] = []
    stats = SourceStats()
    docs = list(iter_documents([str(tmp_path), str(tmp_path / "nope")], stats=stats, on_error=errors.append))
    assert names(docs) == ["good"]
    assert [Path(e.file).name for e in errors] == ["1-bad.yaml", "nope"]
    assert stats.files == 3

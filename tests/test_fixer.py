"""webhook.fixer: patches written into manifest text by inserting lines, checked by
reading the result back; on real files through the real engine and as units."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from webhook.cli.check import review
from webhook.fixer import Fix, FixError, fix_file, fix_text
from webhook.policy import load
from webhook.sources import iter_documents, read_text

FIXTURE = Path(__file__).parent / "fixtures" / "check" / "defaults" / "reviews.yaml"


def fix_for(text: str, patch: list[dict[str, Any]], index: int = 0, item: int | None = None) -> Fix:
    docs = [d for d in read_text("t.yaml", text) if d.index == index and d.item == item]
    expected = jsonpatch.apply_patch(docs[0].raw, patch)
    return Fix(index, item, patch, expected)


def added_only(before: str, after: str) -> list[str]:
    """The lines `after` adds; fails if it removes or changes any."""
    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    assert not [d for d in diff if d.startswith("- ")], "\n".join(diff)
    return [d[2:] for d in diff if d.startswith("+ ")]


def engine_fixes(path: Path) -> list[Fix]:
    docs = list(iter_documents([str(path)]))
    decisions = review(load(), docs, mutate=True)
    return [
        Fix(doc.index, doc.item, d.patch, d.mutated)
        for doc, d in zip(docs, decisions, strict=True)
        if d.patch and d.mutated is not None
    ]


def test_engine_defaults_written_into_a_real_file_keep_everything_else(tmp_path: Path) -> None:
    target = tmp_path / "reviews.yaml"
    target.write_text(FIXTURE.read_text())
    before = target.read_text()
    fixes = engine_fixes(target)
    assert len(fixes) == 2
    assert fix_file(str(target), fixes) is True
    after = target.read_text()
    changed = [ln for ln in before.splitlines() if ln not in after.splitlines()]
    assert changed == ["  annotations: {team: books}"]  # a flow mapping gains an entry in place
    for line in before.splitlines():
        if line != "  annotations: {team: books}":
            assert line in after.splitlines()
    lines = after.splitlines()
    # The timeout of the first route goes after its last entry, before the comment that
    # introduces the next route.
    canary = lines.index("            subset: v2   # canary")
    assert lines[canary + 1] == "      timeout: 10s"
    assert lines[canary + 2] == "      # the default route follows"
    assert lines[-1] == "# end"
    # Every object reads back as the engine's object with defaults, and a second pass has
    # nothing left to do.
    reread = list(iter_documents([str(target)]))
    assert [d.raw for d in reread] == [f.expected for f in fixes]
    assert engine_fixes(target) == []


def test_block_mapping_gets_new_keys_at_its_indentation() -> None:
    text = "apiVersion: v1\nkind: A\nmetadata:\n    name: x   # four-space indent\nspec:\n    a: 1\n"
    patch = [
        {"op": "add", "path": "/spec/b", "value": {"c": {"d": 2}, "e": [1, 2]}},
        {"op": "add", "path": "/metadata/annotations", "value": {"k/v": "s"}},
    ]
    out = fix_text("t.yaml", text, [fix_for(text, patch)])
    assert added_only(text, out) == [
        "    annotations:",
        "        k/v: s",
        "    b:",
        "        c:",
        "            d: 2",
        "        e:",
        "        - 1",
        "        - 2",
    ]


def test_scalar_values_are_quoted_when_needed() -> None:
    text = "apiVersion: v1\nkind: A\nspec:\n  a: 1\n"
    patch = [
        {"op": "add", "path": "/spec/flag", "value": "true"},
        {"op": "add", "path": "/spec/n", "value": 3},
        {"op": "add", "path": "/spec/t", "value": "10s"},
    ]
    out = fix_text("t.yaml", text, [fix_for(text, patch)])
    assert added_only(text, out) == ["  flag: 'true'", "  n: 3", "  t: 10s"]


def test_null_value_and_flow_collections() -> None:
    text = "apiVersion: v1\nkind: A\nmetadata:\n  annotations:\nspec:\n  hosts: [a]\n  tp: {}\n"
    patch = [
        {"op": "add", "path": "/metadata/annotations", "value": {"x": "y"}},
        {"op": "add", "path": "/spec/hosts/1", "value": "b"},
        {"op": "add", "path": "/spec/tp/od", "value": {"i": "10s"}},
    ]
    out = fix_text("t.yaml", text, [fix_for(text, patch)])
    assert "  annotations:\n    x: y\n" in out
    assert "  hosts: [a, b]\n" in out
    assert "  tp: {od: {i: 10s}}\n" in out


def test_replace_an_existing_scalar() -> None:
    text = "apiVersion: v1\nkind: A\nmetadata:\n  annotations:\n    applied: one  # keep\n"
    patch = [{"op": "replace", "path": "/metadata/annotations/applied", "value": "one,two"}]
    out = fix_text("t.yaml", text, [fix_for(text, patch)])
    assert "    applied: one,two  # keep\n" in out


def test_append_to_a_block_list() -> None:
    text = "apiVersion: v1\nkind: A\nspec:\n  ports:\n  - number: 80\n    name: http\n# tail\n"
    patch = [{"op": "add", "path": "/spec/ports/-", "value": {"number": 443, "name": "https"}}]
    out = fix_text("t.yaml", text, [fix_for(text, patch)])
    assert added_only(text, out) == ["  - number: 443", "    name: https"]
    assert out.endswith("    name: https\n# tail\n")


def test_multi_document_file_and_list_items() -> None:
    text = (
        "apiVersion: v1\nkind: A\nmetadata: {name: one}\n---\n"
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: B\n  spec:\n    x: 1\n"
    )
    patch = [{"op": "add", "path": "/spec/y", "value": 2}]
    out = fix_text("t.yaml", text, [fix_for(text, patch, index=1, item=0)])
    assert added_only(text, out) == ["    y: 2"]
    assert read_text("t.yaml", out)[1].raw["spec"] == {"x": 1, "y": 2}


def test_file_without_trailing_newline() -> None:
    text = "apiVersion: v1\nkind: A\nspec:\n  a: 1"
    out = fix_text("t.yaml", text, [fix_for(text, [{"op": "add", "path": "/spec/b", "value": 2}])])
    assert out == "apiVersion: v1\nkind: A\nspec:\n  a: 1\n  b: 2\n"


def test_block_scalar_before_the_insertion() -> None:
    text = "apiVersion: v1\nkind: A\nspec:\n  script: |\n    echo hi\n    echo there\n\nother: 1\n"
    patch = [{"op": "add", "path": "/spec/b", "value": 2}]
    out = fix_text("t.yaml", text, [fix_for(text, patch)])
    assert read_text("t.yaml", out)[0].raw["spec"] == {"script": "echo hi\necho there\n", "b": 2}


def test_json_file_stays_json_with_its_indentation(tmp_path: Path) -> None:
    path = tmp_path / "vs.json"
    doc = {"apiVersion": "v1", "kind": "A", "spec": {"a": 1}}
    path.write_text(json.dumps(doc, indent=4) + "\n")
    patch = [{"op": "add", "path": "/spec/b", "value": "x"}]
    fix = Fix(0, None, patch, {**doc, "spec": {"a": 1, "b": "x"}})
    assert fix_file(str(path), [fix]) is True
    assert path.read_text() == json.dumps(fix.expected, indent=4) + "\n"


def test_no_patch_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("apiVersion: v1\nkind: A\n")
    stat = path.stat()
    assert fix_file(str(path), [Fix(0, None, [], {})]) is False
    assert path.stat().st_mtime_ns == stat.st_mtime_ns


@pytest.mark.parametrize(
    ("patch", "problem"),
    [
        ([{"op": "remove", "path": "/spec/a"}], "cannot write patch operation remove"),
        ([{"op": "add", "path": "/spec/missing/b", "value": 1}], "no 'missing' here"),
        ([{"op": "add", "path": "/spec/list/0", "value": 0}], "middle of a list"),
        ([{"op": "add", "path": "/spec/block", "value": {"z": 1}}], "will not rewrite the block"),
    ],
)
def test_unsafe_fixes_are_refused(patch: list[dict[str, Any]], problem: str) -> None:
    text = "apiVersion: v1\nkind: A\nspec:\n  a: 1\n  list:\n  - 1\n  block:\n    y: 2\n"
    with pytest.raises(FixError, match=problem):
        fix_text("t.yaml", text, [Fix(0, None, patch, {})])


def test_a_fix_that_would_not_read_back_is_refused() -> None:
    text = "apiVersion: v1\nkind: A\nspec:\n  a: 1\n"
    wrong = Fix(0, None, [{"op": "add", "path": "/spec/b", "value": 2}], {"apiVersion": "v1", "kind": "A"})
    with pytest.raises(FixError, match="would not read back as intended"):
        fix_text("t.yaml", text, [wrong])


def test_stale_document_index_is_refused() -> None:
    text = "apiVersion: v1\nkind: A\n"
    with pytest.raises(FixError, match="document 3 is gone"):
        fix_text("t.yaml", text, [Fix(2, None, [{"op": "add", "path": "/x", "value": 1}], {})])

"""audit_query: chain verification (edited, removed, reordered, torn records; rotated
files), filters, summary, table."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from webhook.audit import GENESIS, AuditLog, build_record, record_hash, rotated_files
from webhook.audit_query import (
    AuditReadError,
    Filters,
    order_files,
    parse_time,
    query,
    read_lines,
    summarise,
    summary_text,
    table,
    verify,
)
from webhook.findings import Action, Finding, Outcome

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _write(path: Path, n: int, **audit_kwargs: Any) -> list[str]:
    with AuditLog(path, **audit_kwargs) as audit:
        return [audit.write(_record(i)) or "" for i in range(n)]


def _record(
    i: int,
    *,
    verdict: str = "allowed",
    user: str = "alice",
    namespace: str = "shop",
    kind: str = "ServiceEntry",
    rules: tuple[tuple[str, Action], ...] = (),
    minutes: int | None = None,
) -> dict[str, Any]:
    rec = build_record(
        request={
            "uid": f"uid-{i}",
            "operation": "CREATE",
            "kind": {"group": "networking.istio.io", "version": "v1", "kind": kind},
            "namespace": namespace,
            "name": f"obj-{i}",
            "userInfo": {"username": user, "groups": ["dev"]},
        },
        webhook="validate",
        verdict=verdict,
        outcomes=[Outcome(Finding(rule, ("spec",), "msg"), action) for rule, action in rules],
        policy_hash="p" * 64,
        latency_seconds=0.002,
        replica="r0",
    )
    rec["time"] = (T0 + dt.timedelta(minutes=i if minutes is None else minutes)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )
    return rec


def _rewrite(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


@pytest.fixture
def log10(tmp_path: Path) -> tuple[Path, list[str]]:
    path = tmp_path / "audit.log"
    return path, _write(path, 10)


def test_intact_log_verifies_with_count_and_head(log10: tuple[Path, list[str]]) -> None:
    path, hashes = log10
    result = verify(read_lines([path]))
    assert result.ok
    assert result.records == 10
    assert result.head == hashes[-1]
    assert result.first_prev == GENESIS
    assert result.to_dict()["ok"] is True


def test_empty_log_is_intact(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_text("")
    result = verify(read_lines([path]))
    assert result.ok and result.records == 0


def test_edited_record_is_named(log10: tuple[Path, list[str]]) -> None:
    path, _ = log10
    lines = path.read_text().splitlines()
    lines[4] = lines[4].replace('"verdict":"allowed"', '"verdict":"denied"')
    _rewrite(path, lines)
    result = verify(read_lines([path]))
    assert result.broken is not None
    assert (result.broken.line, result.broken.problem, result.broken.uid) == (5, "edited", "uid-4")
    assert result.records == 4
    assert "audit.log:5" in result.broken.describe()


def test_edited_and_rehashed_record_breaks_at_the_next_one(log10: tuple[Path, list[str]]) -> None:
    path, _ = log10
    lines = path.read_text().splitlines()
    forged = json.loads(lines[4])
    forged["verdict"] = "denied"
    forged["hash"] = record_hash(forged)
    lines[4] = json.dumps(forged)
    _rewrite(path, lines)
    result = verify(read_lines([path]))
    assert result.broken is not None
    assert (result.broken.line, result.broken.problem) == (6, "removed")


def test_removed_record_is_named_at_the_gap(log10: tuple[Path, list[str]]) -> None:
    path, hashes = log10
    lines = path.read_text().splitlines()
    del lines[6]
    _rewrite(path, lines)
    result = verify(read_lines([path]))
    assert result.broken is not None
    assert (result.broken.line, result.broken.problem, result.broken.uid) == (7, "removed", "uid-7")
    assert hashes[6][:16] in result.broken.detail


def test_removed_first_record_needs_an_anchor(log10: tuple[Path, list[str]]) -> None:
    path, hashes = log10
    lines = path.read_text().splitlines()
    _rewrite(path, lines[1:])
    result = verify(read_lines([path]))
    assert result.broken is not None
    assert (result.broken.line, result.broken.problem) == (1, "unanchored")
    assert verify(read_lines([path]), anchor=hashes[0]).ok
    partial = verify(read_lines([path]), partial=True)
    assert partial.ok and partial.first_prev == hashes[0] and partial.records == 9
    wrong = verify(read_lines([path]), anchor=hashes[3])
    assert wrong.broken is not None and wrong.broken.problem == "removed"


def test_swapped_records_are_reported_as_reordered(log10: tuple[Path, list[str]]) -> None:
    path, _ = log10
    lines = path.read_text().splitlines()
    lines[3], lines[4] = lines[4], lines[3]
    _rewrite(path, lines)
    result = verify(read_lines([path]))
    assert result.broken is not None
    assert (result.broken.line, result.broken.problem, result.broken.uid) == (4, "reordered", "uid-4")
    assert "audit.log:5" in result.broken.detail


def test_swapped_first_records_are_reordered_not_unanchored(log10: tuple[Path, list[str]]) -> None:
    path, _ = log10
    lines = path.read_text().splitlines()
    lines[0], lines[1] = lines[1], lines[0]
    _rewrite(path, lines)
    result = verify(read_lines([path]))
    assert result.broken is not None
    assert (result.broken.line, result.broken.problem) == (1, "reordered")


def test_duplicated_record_is_reported(log10: tuple[Path, list[str]]) -> None:
    path, _ = log10
    lines = path.read_text().splitlines()
    lines.insert(3, lines[2])
    _rewrite(path, lines)
    result = verify(read_lines([path]))
    assert result.broken is not None
    assert (result.broken.line, result.broken.problem) == (4, "reordered")
    assert "audit.log:2" in result.broken.detail


@pytest.mark.parametrize(
    ("damage", "detail"),
    [
        (lambda line: line[: len(line) // 2], "not JSON"),
        (lambda line: "", "empty line"),
        (lambda line: "[1, 2]", "not a JSON object"),
        (lambda line: json.dumps({**json.loads(line), "prev": "nope"}), "no valid 'prev'"),
    ],
)
def test_malformed_lines_are_named(log10: tuple[Path, list[str]], damage: Any, detail: str) -> None:
    path, _ = log10
    lines = path.read_text().splitlines()
    lines[2] = damage(lines[2])
    _rewrite(path, lines)
    result = verify(read_lines([path]))
    assert result.broken is not None
    assert (result.broken.line, result.broken.problem) == (3, "malformed")
    assert detail in result.broken.detail


def test_rotated_files_verify_in_rotation_order_whatever_order_they_are_given(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _write(path, 50, max_bytes=3000, backups=100)
    files = [path, *rotated_files(path)]
    assert len(files) >= 4
    assert order_files(list(reversed(files))) == [*rotated_files(path), path]
    result = verify(read_lines(files))
    assert result.ok and result.records == 50
    assert result.sources == [str(p) for p in order_files(files)]


def test_a_missing_rotated_file_is_a_break_at_the_next_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _write(path, 50, max_bytes=3000, backups=100)
    older = rotated_files(path)
    middle = older[len(older) // 2]
    given = [p for p in [*older, path] if p != middle]
    result = verify(read_lines(given))
    assert result.broken is not None
    after = order_files(given)[order_files(given).index(older[len(older) // 2 + 1])]
    assert (result.broken.source, result.broken.line, result.broken.problem) == (str(after), 1, "removed")


def test_order_files_keeps_distinct_logs_in_given_order() -> None:
    got = order_files(["b.log", "a.log.1", "a.log", "b.log.2", "a.log.2", "plain"])
    assert [str(p) for p in got] == ["b.log.2", "b.log", "a.log.2", "a.log.1", "a.log", "plain"]


def test_read_lines_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(AuditReadError, match=r"missing\.log"):
        list(read_lines([tmp_path / "missing.log"]))
    with pytest.raises(AuditReadError, match="is a directory"):
        list(read_lines([tmp_path]))


# -- query -------------------------------------------------------------------------


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    path = tmp_path / "audit.log"
    records = [
        _record(0),
        _record(1, verdict="denied", rules=(("external-tls-origination", Action.DENY),)),
        _record(
            2,
            verdict="denied",
            user="bob",
            namespace="payments",
            rules=(("external-tls-origination", Action.DENY), ("no-allow-any-outbound", Action.WARN)),
        ),
        _record(3, verdict="mutated", kind="DestinationRule"),
        _record(4, verdict="error", user="", namespace=""),
        _record(5, user="bob", kind="VirtualService", rules=(("istio-schema", Action.EXCEPTED),)),
    ]
    with AuditLog(path) as audit:
        for r in records:
            audit.write(r)
    return path


def _uids(path: Path, filters: Filters) -> list[str]:
    return [r["uid"] for r in query(read_lines([path]), filters).records]


def test_query_without_filters_returns_everything(mixed: Path) -> None:
    assert _uids(mixed, Filters()) == [f"uid-{i}" for i in range(6)]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (Filters(verdicts=frozenset({"denied"})), [1, 2]),
        (Filters(verdicts=frozenset({"mutated", "error"})), [3, 4]),
        (Filters(rules=("external-tls-*",)), [1, 2]),
        (Filters(rules=("no-allow-any-outbound", "istio-schema")), [2, 5]),
        (Filters(users=("bob",)), [2, 5]),
        (Filters(namespaces=("pay*",)), [2]),
        (Filters(kinds=("destinationrule",)), [3]),
        (Filters(kinds=("*Service*",)), [0, 1, 2, 4, 5]),
        (Filters(since=T0 + dt.timedelta(minutes=2), until=T0 + dt.timedelta(minutes=4)), [2, 3]),
        (Filters(users=("bob",), verdicts=frozenset({"denied"})), [2]),
    ],
)
def test_query_filters(mixed: Path, filters: Filters, expected: list[int]) -> None:
    assert _uids(mixed, filters) == [f"uid-{i}" for i in expected]


def test_query_skips_and_reports_lines_that_are_not_records(mixed: Path) -> None:
    with mixed.open("a") as f:
        f.write("garbage\n\n")
    result = query(read_lines([mixed]), Filters())
    assert len(result.records) == 6
    assert result.skipped == [f"{mixed}:7"]


def test_time_filter_leaves_out_records_without_a_time(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_text('{"uid":"x"}\n{"uid":"y","time":"yesterday"}\n')
    assert _uids(path, Filters(since=T0)) == []
    assert _uids(path, Filters()) == ["x", "y"]


def test_unknown_verdict_is_refused() -> None:
    with pytest.raises(AuditReadError, match="unknown verdict maybe"):
        Filters(verdicts=frozenset({"maybe"}))


def test_parse_time_forms() -> None:
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert parse_time("2h", now) == now - dt.timedelta(hours=2)
    assert parse_time("7d", now) == now - dt.timedelta(days=7)
    assert parse_time("90s", now) == now - dt.timedelta(seconds=90)
    assert parse_time("2026-01-01T10:00:00Z") == dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)
    assert parse_time("2026-01-01T12:00:00+02:00") == dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)
    assert parse_time("2026-01-01") == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(AuditReadError, match="invalid time 'last tuesday'"):
        parse_time("last tuesday")


def test_summary_counts(mixed: Path) -> None:
    summary = summarise(query(read_lines([mixed]), Filters()).records)
    assert summary["records"] == 6
    assert summary["verdict"] == {"allowed": 2, "denied": 2, "error": 1, "mutated": 1}
    assert summary["user"] == {"alice": 3, "bob": 2, "": 1}
    assert summary["namespace"] == {"shop": 4, "": 1, "payments": 1}
    assert summary["rule"] == {
        "external-tls-origination": {"total": 2, "actions": {"deny": 2}},
        "istio-schema": {"total": 1, "actions": {"excepted": 1}},
        "no-allow-any-outbound": {"total": 1, "actions": {"warn": 1}},
    }
    text = summary_text(summary)
    assert "records: 6" in text
    assert "2  external-tls-origination  deny=2" in text


def test_table_has_a_row_per_record_with_rules_and_dry_run(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    rec = _record(0, verdict="denied", rules=(("b-rule", Action.DENY), ("a-rule", Action.WARN)))
    rec["dryRun"] = True
    with AuditLog(path) as audit:
        audit.write(rec)
    lines = table(query(read_lines([path]), Filters()).records).splitlines()
    assert lines[0].split() == [
        "TIME",
        "VERDICT",
        "OPERATION",
        "KIND",
        "NAMESPACE/NAME",
        "USER",
        "RULES",
        "LATENCY",
    ]
    assert len(lines) == 2
    row = lines[1]
    for cell in (
        "denied",
        "CREATE (dry-run)",
        "ServiceEntry",
        "shop/obj-0",
        "alice",
        "a-rule,b-rule",
        "2.0ms",
    ):
        assert cell in row

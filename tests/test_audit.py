"""AuditLog: the hash chain, its canonical encoding, rotation, restart, sinks, failures;
and build_record."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from webhook.audit import (
    GENESIS,
    AuditLog,
    build_record,
    canonical,
    last_hash,
    replica_name,
    rfc3339,
    rotated_files,
)
from webhook.audit_query import read_lines, verify
from webhook.findings import Action, Finding, Outcome


def _record(i: int, **extra: Any) -> dict[str, Any]:
    rec = build_record(
        request={
            "uid": f"uid-{i}",
            "operation": "CREATE",
            "kind": {"group": "networking.istio.io", "version": "v1", "kind": "ServiceEntry"},
            "namespace": "shop",
            "name": f"se-{i}",
            "userInfo": {"username": "alice", "uid": "u1", "groups": ["dev"]},
        },
        webhook="validate",
        verdict="allowed",
        policy_hash="p" * 64,
        latency_seconds=0.0012,
        replica="meshwarden-0",
    )
    rec.update(extra)
    return rec


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _independent_hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _assert_chain(records: list[dict[str, Any]], start: str = GENESIS) -> None:
    prev = start
    for rec in records:
        assert rec["prev"] == prev
        assert rec["hash"] == _independent_hash(rec)
        prev = rec["hash"]


def test_records_chain_from_genesis_and_hash_their_canonical_form(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path) as audit:
        hashes = [audit.write(_record(i)) for i in range(5)]
    records = _lines(path)
    assert [r["uid"] for r in records] == [f"uid-{i}" for i in range(5)]
    assert [r["hash"] for r in records] == hashes
    _assert_chain(records)
    assert records[0]["prev"] == GENESIS


def test_canonical_encoding_is_sorted_compact_ascii() -> None:
    rec = {"b": "café", "a": [1, {"z": None, "y": True}], "hash": "ignored"}
    assert canonical(rec) == b'{"a":[1,{"y":true,"z":null}],"b":"caf\\u00e9"}'


def test_non_ascii_values_round_trip_through_the_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path) as audit:
        audit.write(_record(0, note="名前 is not valid ✗"))
    raw = path.read_bytes()
    assert raw.isascii()
    (rec,) = _lines(path)
    assert rec["note"] == "名前 is not valid ✗"
    _assert_chain([rec])


def test_rotation_keeps_the_chain_across_files_and_bounds_their_size(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path, max_bytes=4000, backups=50) as audit:
        written = [audit.write(_record(i)) for i in range(60)]
    files = [*rotated_files(path), path]
    assert len(files) > 3
    records: list[dict[str, Any]] = []
    for f in files:
        assert f.stat().st_size <= 4000
        records.extend(_lines(f))
    assert [r["hash"] for r in records] == written
    _assert_chain(records)


def test_rotation_deletes_files_past_the_backup_count(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path, max_bytes=2000, backups=2) as audit:
        written = [audit.write(_record(i)) for i in range(40)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.log", "audit.log.1", "audit.log.2"]
    kept = [r for f in (tmp_path / "audit.log.2", tmp_path / "audit.log.1", path) for r in _lines(f)]
    assert [r["hash"] for r in kept] == written[-len(kept) :]
    _assert_chain(kept, start=kept[0]["prev"])
    assert kept[0]["prev"] == written[-len(kept) - 1]


def test_a_record_larger_than_max_bytes_still_gets_written(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path, max_bytes=100, backups=3) as audit:
        audit.write(_record(0))
        audit.write(_record(1))
    assert len(_lines(path)) == 1
    assert len(_lines(tmp_path / "audit.log.1")) == 1


def test_restart_continues_the_chain_from_the_newest_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path, max_bytes=3000, backups=10) as audit:
        for i in range(20):
            audit.write(_record(i))
        head = audit.prev
    with AuditLog(path, max_bytes=3000, backups=10) as again:
        assert again.prev == head
        again.write(_record(99))
    result = verify(read_lines([*rotated_files(path), path]))
    assert result.ok, result.broken
    assert result.records == 21


def test_last_hash_reads_the_previous_file_when_the_live_one_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path) as audit:
        audit.write(_record(0))
        head = audit.write(_record(1))
    path.rename(tmp_path / "audit.log.1")
    path.write_bytes(b"")
    assert last_hash(path) == head
    with AuditLog(path) as again:
        again.write(_record(2))
    (rec,) = _lines(path)
    assert rec["prev"] == head


def test_last_hash_of_a_large_file_spans_read_chunks(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path) as audit:
        for i in range(600):  # ~ 400 KB: several 64 KiB tail chunks
            head = audit.write(_record(i, padding="x" * 300))
    assert path.stat().st_size > 3 * 64 * 1024
    assert last_hash(path) == head
    assert last_hash(tmp_path / "missing.log") is None


def test_a_torn_last_line_is_closed_and_the_chain_resumes_from_the_last_good_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path) as audit:
        good = audit.write(_record(0))
    with path.open("ab") as f:
        f.write(b'{"uid":"torn","prev":"')
    with caplog.at_level(logging.WARNING, "meshwarden.audit"), AuditLog(path) as again:
        assert again.prev == good
        again.write(_record(1))
    assert "partial record" in caplog.text
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    assert json.loads(lines[2])["prev"] == good
    result = verify(read_lines([path]))
    assert result.broken is not None
    assert (result.broken.line, result.broken.problem) == (2, "malformed")


def test_concurrent_writers_produce_whole_lines_in_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    threads_n, per_thread = 8, 250
    with AuditLog(path, max_bytes=64 * 1024, backups=100) as audit:
        barrier = threading.Barrier(threads_n)

        def work(t: int) -> None:
            barrier.wait()
            for i in range(per_thread):
                audit.write(_record(t * 1000 + i))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    files = [*rotated_files(path), path]
    result = verify(read_lines(files))
    assert result.ok, result.broken
    assert result.records == threads_n * per_thread
    uids = {r["uid"] for f in files for r in _lines(f)}
    assert len(uids) == threads_n * per_thread


def test_stream_sink_gets_the_same_lines_as_the_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    text, binary = io.StringIO(), io.BytesIO()
    with AuditLog(path, stream=text) as a:
        for i in range(3):
            a.write(_record(i))
    with AuditLog(stream=binary) as b:
        b.write(_record(0))
    assert text.getvalue() == path.read_text()
    (rec,) = [json.loads(line) for line in binary.getvalue().splitlines()]
    _assert_chain([rec])


def test_stdout_like_stream_is_written_through_its_buffer() -> None:
    buffer = io.BytesIO()
    stdout = io.TextIOWrapper(buffer, encoding="utf-8")
    with AuditLog(stream=stdout) as audit:
        audit.write(_record(0))
    assert json.loads(buffer.getvalue())["uid"] == "uid-0"


def test_unwritable_path_fails_visibly_then_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the log directory should be")
    failures: list[str] = []
    path = blocker / "audit.log"
    with caplog.at_level(logging.ERROR, "meshwarden.audit"):
        audit = AuditLog(path, on_failure=failures.append)
        assert not audit.healthy
        assert audit.write(_record(0)) is None
    assert failures == ["file"]
    assert audit.failures == 1
    assert '"uid":"uid-0"' in caplog.text  # the decision itself is in the process log

    blocker.unlink()
    digest = audit.write(_record(1))
    assert digest is not None
    assert audit.healthy
    (rec,) = _lines(path)
    assert rec["uid"] == "uid-1"
    assert rec["prev"] == GENESIS  # the failed record is not part of the chain
    audit.close()


def test_check_recovers_without_a_write(tmp_path: Path) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("not a directory")
    with AuditLog(blocker / "audit.log") as audit:
        assert not audit.check()
        blocker.unlink()
        assert audit.check()
        assert audit.healthy
        assert (blocker / "audit.log").exists()
        audit.write(_record(0))
    _assert_chain(_lines(blocker / "audit.log"))


def test_check_keeps_a_failing_stream_unhealthy() -> None:
    stream = io.StringIO()
    with AuditLog(stream=stream) as audit:
        assert audit.check()
        stream.close()
        audit.write(_record(0))
        assert not audit.healthy
        assert not audit.check()


def test_a_file_removed_behind_the_writer_is_recreated(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path) as audit:
        first = audit.write(_record(0))
        path.unlink()
        audit.write(_record(1))
    (rec,) = _lines(path)
    assert rec["uid"] == "uid-1"
    assert rec["prev"] == first


def test_runtime_write_failure_and_recovery(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    path = folder / "audit.log"
    failures: list[str] = []
    with AuditLog(path, on_failure=failures.append) as audit:
        first = audit.write(_record(0))
        path.unlink()
        folder.rmdir()
        folder.write_text("blocks the directory")
        assert audit.write(_record(1)) is None
        assert not audit.healthy
        folder.unlink()
        assert audit.write(_record(2)) is not None
        assert audit.healthy
    assert failures == ["file"]
    (rec,) = _lines(path)
    assert (rec["uid"], rec["prev"]) == ("uid-2", first)


def test_a_failing_stream_is_counted_but_the_file_keeps_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    stream = io.StringIO()
    failures: list[str] = []
    with AuditLog(path, stream=stream, on_failure=failures.append) as audit:
        audit.write(_record(0))
        stream.close()
        assert audit.write(_record(1)) is not None
        assert not audit.healthy
    assert failures == ["stream"]
    _assert_chain(_lines(path))


def test_fsync_option_writes_the_same_records(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path, fsync=True) as audit:
        audit.write(_record(0))
    _assert_chain(_lines(path))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs a file path, a stream"),
        ({"path": "x.log", "max_bytes": -1}, "max_bytes must be >= 0"),
        ({"path": "x.log", "max_bytes": 100, "backups": 0}, "at least one backup"),
    ],
)
def test_bad_configuration_is_refused(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    if "path" in kwargs:
        kwargs["path"] = tmp_path / kwargs["path"]
    with pytest.raises(ValueError, match=message):
        AuditLog(**kwargs)


def test_build_record_takes_every_field_from_the_request_and_decision() -> None:
    finding = Finding("external-tls-origination", ("spec", "ports", 0), "plaintext to example.com")
    outcomes = [
        Outcome(finding, Action.DENY),
        Outcome(Finding("no-allow-any-outbound", ("spec",), "m"), Action.EXCEPTED, "exception T-1"),
    ]
    patch = [{"op": "add", "path": "/spec/x", "value": 1}]
    rec = build_record(
        request={
            "uid": "u-7",
            "operation": "UPDATE",
            "dryRun": True,
            "kind": {"group": "networking.istio.io", "version": "v1beta1", "kind": "ServiceEntry"},
            "namespace": "shop",
            "name": "ext",
            "userInfo": {"username": "bob", "uid": "42", "groups": ["a", "b"]},
        },
        webhook="validate",
        verdict="denied",
        outcomes=outcomes,
        patch=patch,
        policy_hash="f" * 64,
        latency_seconds=0.0025,
        replica="pod-a",
        status="reviewed",
    )
    moment = dt.datetime.fromisoformat(rec.pop("time"))
    assert moment.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.UTC) - moment).total_seconds()) < 60
    assert rec == {
        "uid": "u-7",
        "webhook": "validate",
        "user": {"username": "bob", "uid": "42", "groups": ["a", "b"]},
        "operation": "UPDATE",
        "dryRun": True,
        "resource": {
            "group": "networking.istio.io",
            "version": "v1beta1",
            "kind": "ServiceEntry",
            "namespace": "shop",
            "name": "ext",
        },
        "verdict": "denied",
        "status": "reviewed",
        "findings": [
            {
                "rule": "external-tls-origination",
                "action": "deny",
                "path": "spec.ports[0]",
                "message": "plaintext to example.com",
            },
            {
                "rule": "no-allow-any-outbound",
                "action": "excepted",
                "path": "spec",
                "message": "m",
                "note": "exception T-1",
            },
        ],
        "patch": patch,
        "policy": "f" * 64,
        "latencyUs": 2500,
        "replica": "pod-a",
    }


def test_build_record_of_a_malformed_request_keeps_every_field() -> None:
    rec = build_record(
        request={"uid": 12, "userInfo": "nobody", "kind": None},
        webhook="mutate",
        verdict="error",
        policy_hash="a" * 64,
        latency_seconds=0.0001,
        replica="r",
        kind="VirtualService",
        namespace="ns",
        name="generated-abc",
        error="request.operation must be CREATE, UPDATE, DELETE or CONNECT",
        error_code=400,
    )
    assert rec["uid"] == ""
    assert rec["user"] == {"username": "", "uid": "", "groups": []}
    assert rec["resource"] == {
        "group": "",
        "version": "",
        "kind": "VirtualService",
        "namespace": "ns",
        "name": "generated-abc",
    }
    assert rec["findings"] == [] and rec["patch"] is None
    assert rec["error"]["code"] == 400
    assert rec["error"]["message"].startswith("request.operation")
    bare = build_record(
        request=None, webhook="validate", verdict="error", policy_hash="", latency_seconds=0, replica="r"
    )
    assert bare["uid"] == "" and bare["operation"] == "" and bare["dryRun"] is False


def test_build_record_refuses_an_unknown_verdict() -> None:
    with pytest.raises(ValueError, match="unknown verdict 'maybe'"):
        build_record(
            request={}, webhook="validate", verdict="maybe", policy_hash="", latency_seconds=0, replica=""
        )


def test_replica_name_prefers_the_pod_name() -> None:
    assert replica_name({"POD_NAME": "mw-1", "HOSTNAME": "host"}) == "mw-1"
    assert replica_name({"HOSTNAME": "host"}) == "host"
    assert replica_name({}) != ""


def test_rfc3339_is_utc_with_microseconds() -> None:
    moment = dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert rfc3339(moment) == "2024-01-02T01:04:05.000006Z"
    before = dt.datetime.now(dt.UTC)
    now = rfc3339()
    after = dt.datetime.now(dt.UTC)
    assert len(now) == len("2024-01-02T01:04:05.000006Z") and now.endswith("Z")
    assert before - dt.timedelta(microseconds=1) <= dt.datetime.fromisoformat(now) <= after

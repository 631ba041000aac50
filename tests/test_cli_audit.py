"""`meshwarden audit verify|query`: output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from webhook.audit import AuditLog, build_record, read_key, record_hash, rotated_files
from webhook.cli import main
from webhook.findings import Action, Finding, Outcome


def _fill(path: Path, n: int, **kwargs: Any) -> list[str]:
    hashes: list[str] = []
    with AuditLog(path, **kwargs) as audit:
        for i in range(n):
            denied = i % 3 == 0
            hashes.append(
                audit.write(
                    build_record(
                        request={
                            "uid": f"uid-{i}",
                            "operation": "CREATE",
                            "kind": {"group": "networking.istio.io", "version": "v1", "kind": "ServiceEntry"},
                            "namespace": "shop" if i % 2 else "payments",
                            "name": f"se-{i}",
                            "userInfo": {"username": "alice" if i % 2 else "bob"},
                        },
                        webhook="validate",
                        verdict="denied" if denied else "allowed",
                        outcomes=[Outcome(Finding("external-tls-origination", ("spec",), "m"), Action.DENY)]
                        if denied
                        else [],
                        policy_hash="p" * 64,
                        latency_seconds=0.001,
                        replica="r",
                    )
                )
                or ""
            )
    return hashes


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_verify_intact_rotated_log_exits_0_with_count(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    hashes = _fill(path, 30, max_bytes=2500, backups=100)
    files = [str(p) for p in [path, *rotated_files(path)]]
    code, out, _ = _run("audit", "verify", *files)
    assert code == 0
    assert out.startswith(f"OK: 30 records in {len(files)} files, chain intact from the start")
    assert hashes[-1] in out


def test_verify_names_the_first_broken_record_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _fill(path, 10)
    lines = path.read_text().splitlines()
    del lines[4]
    path.write_text("\n".join(lines) + "\n")
    code, _, err = _run("audit", "verify", str(path))
    assert code == 1
    assert f"{path}:5: record (uid uid-5) removed" in err
    assert "after 4 good records" in err


def test_verify_json_output(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _fill(path, 5)
    lines = path.read_text().splitlines()
    lines[1], lines[2] = lines[2], lines[1]
    path.write_text("\n".join(lines) + "\n")
    code, out, _ = _run("audit", "verify", "--format", "json", str(path))
    assert code == 1
    doc = json.loads(out)
    assert doc["ok"] is False
    assert doc["records"] == 1
    assert doc["broken"]["line"] == 2 and doc["broken"]["problem"] == "reordered"


def test_verify_after_pruned_rotation_needs_partial_or_anchor(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    hashes = _fill(path, 40, max_bytes=2000, backups=2)
    files = [str(p) for p in [*rotated_files(path), path]]
    code, _, err = _run("audit", "verify", *files)
    assert code == 1 and "unanchored" in err and "--partial" in err
    code, out, _ = _run("audit", "verify", "--partial", *files)
    assert code == 0
    first_prev = json.loads((tmp_path / "audit.log.2").read_text().splitlines()[0])["prev"]
    assert f"after {first_prev}" in out
    assert first_prev in hashes
    code, out, _ = _run("audit", "verify", "--anchor", first_prev, *files)
    assert code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--anchor", "xyz"], "--anchor must be 64 lowercase hex digits"),
        (["--anchor", "0" * 64, "--partial"], "exclude each other"),
    ],
)
def test_verify_bad_options_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    path = tmp_path / "audit.log"
    _fill(path, 1)
    code, _, err = _run("audit", "verify", *args, str(path))
    assert code == 2
    assert message in err


def test_verify_missing_file_exits_2(tmp_path: Path) -> None:
    code, _, err = _run("audit", "verify", str(tmp_path / "nope.log"))
    assert code == 2
    assert "nope.log" in err


def test_query_table_with_filters(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _fill(path, 12)
    code, out, _ = _run("audit", "query", "--verdict", "denied", "--user", "bob", str(path))
    assert code == 0
    rows = out.splitlines()
    assert rows[0].startswith("TIME")
    # denied: i % 3 == 0; bob: i even -> 0, 6
    assert [r.split()[4] for r in rows[1:]] == ["payments/se-0", "payments/se-6"]


def test_query_json_and_rule_and_kind_filters(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _fill(path, 9)
    code, out, _ = _run(
        "audit",
        "query",
        "--format",
        "json",
        "--rule",
        "external-tls-origination",
        "--kind",
        "serviceentry",
        str(path),
    )
    assert code == 0
    records = json.loads(out)
    assert [r["uid"] for r in records] == ["uid-0", "uid-3", "uid-6"]
    assert all(r["hash"] and r["prev"] for r in records)


def test_query_summary(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _fill(path, 6)
    code, out, _ = _run("audit", "query", "--summary", "--format", "json", str(path))
    assert code == 0
    doc = json.loads(out)
    assert doc["records"] == 6
    assert doc["verdict"] == {"allowed": 4, "denied": 2}
    assert doc["namespace"] == {"payments": 3, "shop": 3}
    assert doc["rule"]["external-tls-origination"] == {"total": 2, "actions": {"deny": 2}}
    code, out, _ = _run("audit", "query", "--summary", "--namespace", "shop", str(path))
    assert code == 0 and "records: 3" in out


def test_query_time_window_and_bad_time(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _fill(path, 3)
    code, out, _ = _run("audit", "query", "--format", "json", "--since", "1h", str(path))
    assert code == 0 and len(json.loads(out)) == 3
    code, out, _ = _run("audit", "query", "--format", "json", "--until", "2000-01-01", str(path))
    assert code == 0 and json.loads(out) == []
    code, _, err = _run("audit", "query", "--since", "soon", str(path))
    assert code == 2 and "invalid time 'soon'" in err


def test_query_reports_skipped_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _fill(path, 2)
    with path.open("a") as f:
        f.write("not json\n")
    code, out, err = _run("audit", "query", str(path))
    assert code == 0
    assert f"{path}:3: not an audit record, skipped" in err
    assert len(out.splitlines()) == 3


def test_console_script_runs_verify(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _fill(path, 4)
    done = subprocess.run(
        [sys.executable, "-m", "webhook", "audit", "verify", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK: 4 records in 1 file,")


# --- a keyed chain -------------------------------------------------------------------------


def test_a_keyed_log_verifies_only_with_its_key(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_bytes(b"0123456789abcdef0123456789abcdef\n")
    path = tmp_path / "audit.log"
    _fill(path, 5, key=read_key(key))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert {r["alg"] for r in records} == {"hmac-sha256"}

    code, out, _ = _run("audit", "verify", "--key-file", str(key), str(path))
    assert code == 0 and "OK: 5 records in 1 file, chain intact from the start, every record keyed" in out

    code, _, err = _run("audit", "verify", str(path))
    assert code == 1 and "audit.log:1: record (uid uid-0) keyed: " in err and "--key-file" in err

    other = tmp_path / "other"
    other.write_bytes(b"another key, long enough to use")
    code, _, err = _run("audit", "verify", "--key-file", str(other), str(path))
    assert code == 1 and "edited: its content does not match its hash (with this key)" in err


def test_a_rewritten_keyed_log_is_caught_even_with_hashes_recomputed(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(b"0123456789abcdef0123456789abcdef")
    path = tmp_path / "audit.log"
    _fill(path, 4, key=read_key(key_file))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    # Whoever rewrites the log without the key can recompute plain hashes, or keep the
    # keyed marker and guess: both are refused.
    forged = dict(records[2], verdict="allowed", findings=[])
    for label, mangle in (
        ("unkeyed", lambda r: {k: v for k, v in r.items() if k != "alg"}),
        ("edited", lambda r: r),
    ):
        chain, prev = [], records[0]["prev"]
        for r in [records[0], records[1], forged, records[3]]:
            r = mangle(dict(r, prev=prev))
            r["hash"] = record_hash(r)  # a plain sha256 over the record, as one could compute
            chain.append(r)
            prev = r["hash"]
        copy = tmp_path / f"{label}.log"
        copy.write_text("".join(json.dumps(r) + "\n" for r in chain))
        code, _, err = _run("audit", "verify", "--key-file", str(key_file), str(copy))
        assert code == 1 and f"record (uid uid-0) {label}:" in err, err


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "No such file"), (b"short\n", "holds 5 bytes; use at least 16 random bytes")],
)
def test_an_unusable_key_file_exits_2(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "audit.log"
    _fill(path, 1)
    key = tmp_path / "key"
    if content is not None:
        key.write_bytes(content)
    code, _, err = _run("audit", "verify", "--key-file", str(key), str(path))
    assert code == 2 and message in err

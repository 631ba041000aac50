"""The audit log and metrics through the real `meshwarden serve` (uvicorn, TLS): one record
per request with every field right, a chain that `audit verify` accepts and that breaks
where a copy was tampered with, rotation and concurrency under load, restart, a failing
audit path, and /metrics."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.reviews import review
from tests.serving import Server, serve, wait_for
from webhook.audit import GENESIS, rotated_files
from webhook.audit_query import read_lines, verify

POLICY = "maxRequestBytes: 65536\n"
SIDECAR_ALLOW_ANY = {
    "apiVersion": "networking.istio.io/v1beta1",
    "kind": "Sidecar",
    "metadata": {"name": "default", "namespace": "shop"},
    "spec": {"outboundTrafficPolicy": {"mode": "ALLOW_ANY"}},
}
SIDECAR_OK = {**SIDECAR_ALLOW_ANY, "spec": {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}}
VS = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "reviews", "namespace": "shop"},
    "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]},
}
CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app", "namespace": "shop"}}
FIELDS = {
    "time",
    "uid",
    "webhook",
    "user",
    "operation",
    "dryRun",
    "resource",
    "verdict",
    "status",
    "findings",
    "patch",
    "policy",
    "latencyUs",
    "replica",
    "prev",
    "hash",
}
# What the API server accepts as `<webhook name>/<key>` (a qualified name's name part).
_QUALIFIED_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")


@dataclass
class Sent:
    endpoint: str
    doc: dict[str, Any] | None  # None: the body was not an AdmissionReview at all
    status: int
    answer: dict[str, Any]
    before: dt.datetime
    after: dt.datetime


def _post(client: httpx.Client, endpoint: str, doc: Any = None, content: bytes | None = None) -> Sent:
    before = dt.datetime.now(dt.UTC)
    if content is not None:
        r = client.post(f"/{endpoint}", content=content, headers={"content-type": "application/json"})
    else:
        r = client.post(f"/{endpoint}", json=doc)
    return Sent(
        endpoint, doc if content is None else None, r.status_code, r.json(), before, dt.datetime.now(dt.UTC)
    )


def _records(*paths: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for p in paths for line in p.read_text().splitlines()]


def _verify_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook", "audit", "verify", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def _metrics(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _sum(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(
        v for (n, lbls), v in samples.items() if n == name and all((k, labels[k]) in lbls for k in labels)
    )


def _expected_verdict(sent: Sent) -> str:
    if sent.status != 200:
        return "error"
    resp = sent.answer["response"]
    if not resp["allowed"]:
        return "denied" if resp["status"]["code"] == 403 else "error"
    return "mutated" if "patch" in resp else "allowed"


# -- a mix of requests, then the audit file ----------------------------------------


@dataclass
class Mix:
    server: Server
    audit: Path
    policy_sha: str
    sent: list[Sent]
    tmp: Path


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mix]:
    tmp = tmp_path_factory.mktemp("audit-mix")
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    audit = tmp / "logs" / "audit.log"
    seeds = Path(__file__).parent / "fixtures" / "seeds"
    args = ["--policy", str(policy), "--audit-log", str(audit), "--replica", "meshwarden-test-0"]
    with serve(tmp, *args, "--inventory-from", str(seeds)) as server, server.client() as c:
        vs_with_timeout = json.loads(json.dumps(VS))
        vs_with_timeout["spec"]["http"][0]["timeout"] = "5s"
        bad_operation = review(SIDECAR_ALLOW_ANY, username="mallory", groups=["ops"])
        bad_operation["request"]["operation"] = "PATCH"
        oversized = review(json.loads(json.dumps(SIDECAR_ALLOW_ANY)))  # a copy: review() keeps the object
        oversized["request"]["object"]["metadata"]["annotations"] = {"pad": "x" * 70_000}
        sent = [
            _post(c, "validate", review(SIDECAR_OK)),
            _post(c, "validate", review(SIDECAR_ALLOW_ANY, username="bob", groups=["team-a"])),
            _post(c, "mutate", review(VS)),
            _post(c, "validate", review(SIDECAR_ALLOW_ANY, dry_run=True)),
            _post(c, "mutate", review(vs_with_timeout, dry_run=True)),
            _post(c, "validate", review(SIDECAR_ALLOW_ANY, operation="UPDATE", old=SIDECAR_ALLOW_ANY)),
            _post(c, "validate", review(None, operation="DELETE", old=SIDECAR_ALLOW_ANY)),
            _post(c, "validate", review(CONFIGMAP)),
            _post(c, "validate", bad_operation),
            _post(c, "validate", content=b"{not json"),
            _post(c, "mutate", content=b'{"apiVersion": "v1", "kind": "Pod"}'),
        ]
        before = dt.datetime.now(dt.UTC)
        r = c.post("/validate", json=oversized)
        sent.append(Sent("validate", None, r.status_code, r.json(), before, dt.datetime.now(dt.UTC)))
        yield Mix(server, audit, hashlib.sha256(policy.read_bytes()).hexdigest(), sent, tmp)


def test_the_mix_covers_every_verdict(mix: Mix) -> None:
    assert Counter(_expected_verdict(s) for s in mix.sent) == {
        "allowed": 5,
        "denied": 2,
        "mutated": 1,
        "error": 4,
    }
    assert [s.status for s in mix.sent][-4:] == [200, 400, 400, 413]


def test_one_record_per_request_in_order_with_every_field(mix: Mix) -> None:
    records = _records(mix.audit)
    assert len(records) == len(mix.sent)
    for sent, rec in zip(mix.sent, records, strict=True):
        assert set(rec) - {"error"} == FIELDS
        assert rec["webhook"] == sent.endpoint
        assert rec["verdict"] == _expected_verdict(sent)
        assert rec["policy"] == mix.policy_sha
        assert rec["replica"] == "meshwarden-test-0"
        assert 0 < rec["latencyUs"] < 10_000_000
        moment = dt.datetime.fromisoformat(rec["time"])
        assert rec["time"].endswith("Z")
        assert sent.before <= moment <= sent.after
        if sent.doc is None:
            assert rec["uid"] == "" and rec["user"] == {"username": "", "uid": "", "groups": []}
            assert rec["error"]["code"] == sent.status and rec["error"]["message"] == sent.answer["error"]
            continue
        req = sent.doc["request"]
        assert rec["uid"] == req["uid"] == sent.answer["response"]["uid"]
        assert rec["user"] == req["userInfo"]
        assert rec["operation"] == req["operation"]
        assert rec["dryRun"] is req["dryRun"]
        target = req["object"] or req["oldObject"]
        assert rec["resource"] == {
            **req["kind"],
            "namespace": target["metadata"]["namespace"],
            "name": target["metadata"]["name"],
        }


def test_findings_and_patch_match_the_response(mix: Mix) -> None:
    for sent, rec in zip(mix.sent, _records(mix.audit), strict=True):
        if sent.status != 200:
            continue
        resp = sent.answer["response"]
        denied = sorted({f["rule"] for f in rec["findings"] if f["action"] == "deny"})
        warned = sorted({f["rule"] for f in rec["findings"] if f["action"] in ("warn", "downgraded")})
        notes = resp.get("auditAnnotations", {})
        assert denied == sorted(filter(None, notes.get("denied-rules", "").split(",")))
        assert warned == sorted(filter(None, notes.get("warned-rules", "").split(",")))
        assert len(resp.get("warnings", [])) == sum(
            f["action"] in ("warn", "downgraded") for f in rec["findings"]
        )
        for f in rec["findings"]:
            assert set(f) >= {"rule", "action", "path", "message"}
        if "patch" in resp:
            assert rec["patch"] == json.loads(base64.b64decode(resp["patch"]))
        else:
            assert rec["patch"] is None


def test_specific_records(mix: Mix) -> None:
    records = _records(mix.audit)
    denied = records[1]
    assert denied["user"] == {"username": "bob", "uid": "u-1", "groups": ["team-a"]}
    assert denied["findings"][0]["rule"] == "no-allow-any-outbound"
    assert denied["findings"][0]["path"] == "spec.outboundTrafficPolicy.mode"
    assert records[3]["dryRun"] is True and records[3]["verdict"] == "denied"
    assert records[5]["operation"] == "UPDATE"
    assert [f["action"] for f in records[5]["findings"]] == ["downgraded"]
    assert records[5]["verdict"] == "allowed"
    assert records[7]["status"] == "skipped"
    malformed = records[8]
    assert malformed["verdict"] == "error" and malformed["error"]["code"] == 400
    assert "request.operation must be" in malformed["error"]["message"]
    assert malformed["user"]["username"] == "mallory" and malformed["operation"] == "PATCH"
    assert records[-1]["error"]["code"] == 413


def test_audit_annotations_are_valid_and_agree_with_the_record(mix: Mix) -> None:
    for sent, rec in zip(mix.sent, _records(mix.audit), strict=True):
        if sent.status != 200:
            continue
        notes = sent.answer["response"]["auditAnnotations"]
        assert notes["verdict"] == rec["verdict"]
        for key, value in notes.items():
            assert isinstance(value, str)
            assert "/" not in key and len(key) <= 63 and _QUALIFIED_NAME.fullmatch(key), key


def test_the_chain_verifies(mix: Mix) -> None:
    records = _records(mix.audit)
    assert records[0]["prev"] == GENESIS
    done = _verify_cli(mix.audit)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"OK: {len(mix.sent)} records in 1 file, chain intact")


@pytest.mark.parametrize(
    ("tamper", "line", "problem"),
    [
        (
            lambda ls: ls.__setitem__(2, ls[2].replace('"verdict":"mutated"', '"verdict":"allowed"')),
            3,
            "edited",
        ),
        (lambda ls: ls.__setitem__(1, ls[1].replace('"username":"bob"', '"username":"eve"')), 2, "edited"),
        (lambda ls: ls.pop(4), 5, "removed"),
        (lambda ls: ls.insert(6, ls.pop(5)), 6, "reordered"),
        (lambda ls: ls.pop(0), 1, "unanchored"),
    ],
)
def test_verify_names_the_break_in_a_tampered_copy(
    mix: Mix, tmp_path: Path, tamper: Callable[[list[str]], Any], line: int, problem: str
) -> None:
    copy = tmp_path / "audit.log"
    lines = mix.audit.read_text().splitlines()
    tamper(lines)
    copy.write_text("".join(f"{x}\n" for x in lines))
    done = _verify_cli(copy)
    assert done.returncode == 1
    assert f"{copy}:{line}: record" in done.stderr
    assert f" {problem}: " in done.stderr


def test_metrics_count_what_the_audit_log_records(mix: Mix) -> None:
    records = _records(mix.audit)
    with mix.server.client() as c:
        samples = _metrics(c)
    name = "meshwarden_admission_decisions_total"
    assert _sum(samples, name) == len(records)
    for verdict, n in Counter(r["verdict"] for r in records).items():
        assert _sum(samples, name, verdict=verdict) == n
    for webhook, n in Counter(r["webhook"] for r in records).items():
        assert _sum(samples, name, webhook=webhook) == n
        assert _sum(samples, "meshwarden_admission_request_duration_seconds_count", webhook=webhook) == n
    assert _sum(samples, name, kind="Sidecar", operation="CREATE", verdict="denied") == 2
    findings = Counter((f["rule"], f["action"]) for r in records for f in r["findings"])
    for (rule, action), n in findings.items():
        assert _sum(samples, "meshwarden_admission_findings_total", rule=rule, action=action) == n
    assert _sum(samples, "meshwarden_audit_write_failures_total") == 0
    assert _sum(samples, "meshwarden_audit_healthy") == 1
    assert _sum(samples, "meshwarden_policy_info", hash=mix.policy_sha) == 1
    loaded = re.search(r"inventory: (\d+) objects", mix.server.log_text())
    assert loaded is not None and int(loaded.group(1)) > 0
    assert _sum(samples, "meshwarden_inventory_objects") == int(loaded.group(1))
    assert _sum(samples, "meshwarden_inventory_synced") == 1


# -- load ----------------------------------------------------------------------------


def _hammer(server: Server, total: int, connections: int) -> dict[str, tuple[str, str]]:
    """`total` requests over `connections` keep-alive connections at once; uid ->
    (endpoint, verdict as answered)."""
    answers: dict[str, tuple[str, str]] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []
    docs = [("validate", SIDECAR_ALLOW_ANY), ("validate", SIDECAR_OK), ("mutate", VS)]

    def work(worker: int) -> None:
        try:
            with server.client() as c:
                for i in range(worker, total, connections):
                    endpoint, obj = docs[i % len(docs)]
                    uid = str(uuid.uuid4())
                    r = c.post(f"/{endpoint}", json=review(obj, uid=uid))
                    verdict = r.json()["response"]["auditAnnotations"]["verdict"]
                    with lock:
                        answers[uid] = (endpoint, verdict)
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert len(answers) == total
    return answers


def test_2000_concurrent_requests_make_exactly_2000_whole_records(tmp_path: Path) -> None:
    audit = tmp_path / "audit.log"
    with serve(tmp_path, "--audit-log", str(audit)) as server:
        answers = _hammer(server, 2000, 24)
    raw = audit.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.split(b"\n")[:-1]
    assert len(lines) == 2000
    records = [json.loads(line) for line in lines]  # a torn or interleaved line fails here
    assert {r["uid"]: (r["webhook"], r["verdict"]) for r in records} == answers
    result = verify(read_lines([audit]))
    assert result.ok, result.broken
    assert result.records == 2000


def test_rotation_under_load_keeps_the_chain_whole(tmp_path: Path) -> None:
    audit = tmp_path / "audit.log"
    args = ("--audit-log", str(audit), "--audit-max-bytes", "16384", "--audit-backups", "1000")
    with serve(tmp_path, *args) as server:
        answers = _hammer(server, 500, 8)
    files = [*rotated_files(audit), audit]
    assert len(files) > 5
    assert all(f.stat().st_size <= 16384 for f in files)
    done = _verify_cli(*reversed(files))  # any order on the command line
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"OK: 500 records in {len(files)} files, chain intact from the start")
    assert {r["uid"] for r in _records(*files)} == set(answers)


def test_restart_continues_the_chain(tmp_path: Path) -> None:
    audit = tmp_path / "audit.log"
    for _ in range(2):
        with serve(tmp_path, "--audit-log", str(audit)) as server, server.client() as c:
            for obj in (SIDECAR_OK, SIDECAR_ALLOW_ANY, VS):
                assert c.post("/validate", json=review(obj)).status_code == 200
    records = _records(audit)
    assert len(records) == 6
    assert records[3]["prev"] == records[2]["hash"]
    assert verify(read_lines([audit])).ok


def test_stdout_destination_carries_the_same_chain(tmp_path: Path) -> None:
    with serve(tmp_path, "--audit-stdout") as server, server.client() as c:
        uids = [str(uuid.uuid4()) for _ in range(3)]
        for uid in uids:
            c.post("/validate", json=review(SIDECAR_ALLOW_ANY, uid=uid))
        assert wait_for(lambda: server.log_text().count('"uid":') >= 3)
    lines = [line.rstrip("\n") for line in server.output if line.startswith('{"dryRun"')]
    assert [json.loads(line)["uid"] for line in lines] == uids
    result = verify(("stdout", i, line) for i, line in enumerate(lines, start=1))
    assert result.ok and result.records == 3


# -- failure -------------------------------------------------------------------------


def test_unwritable_audit_path_fails_readiness_counts_and_recovers(tmp_path: Path) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the audit directory should be")
    audit = blocker / "audit.log"
    with serve(tmp_path, "--audit-log", str(audit)) as server, server.client() as c:
        ready = c.get("/readyz")
        assert ready.status_code == 503 and "audit log writes are failing" in ready.text

        uid = str(uuid.uuid4())
        resp = c.post("/validate", json=review(SIDECAR_ALLOW_ANY, uid=uid)).json()["response"]
        assert resp["allowed"] is False  # the decision is still made and answered
        samples = _metrics(c)
        assert _sum(samples, "meshwarden_audit_write_failures_total", sink="file") == 1
        assert _sum(samples, "meshwarden_audit_healthy") == 0
        assert wait_for(lambda: uid in server.log_text())  # the record is in the process log
        assert "audit file write failed" in server.log_text()

        blocker.unlink()
        assert c.get("/readyz").status_code == 200
        later = str(uuid.uuid4())
        c.post("/validate", json=review(SIDECAR_OK, uid=later))
        (rec,) = _records(audit)
        assert rec["uid"] == later and rec["prev"] == GENESIS
        samples = _metrics(c)
        assert _sum(samples, "meshwarden_audit_healthy") == 1
        assert _sum(samples, "meshwarden_audit_write_failures_total", sink="file") == 1

        # Broken again while running: the next write fails, readiness follows, then recovers.
        shutil.rmtree(blocker)
        blocker.write_text("blocked again")
        c.post("/validate", json=review(SIDECAR_OK))
        assert c.get("/readyz").status_code == 503
        assert _sum(_metrics(c), "meshwarden_audit_write_failures_total", sink="file") == 2
        blocker.unlink()
        assert c.get("/readyz").status_code == 200
        c.post("/validate", json=review(SIDECAR_OK))
    done = _verify_cli(audit)
    assert done.returncode == 1 and "unanchored" in done.stderr  # its predecessor went with the folder
    first = _records(audit)[0]
    assert first["prev"] == rec["hash"]


def test_policy_reload_is_counted_and_recorded(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    audit = tmp_path / "audit.log"
    with serve(tmp_path, "--policy", str(policy), "--audit-log", str(audit)) as server, server.client() as c:
        c.post("/validate", json=review(SIDECAR_OK))
        policy.write_text(POLICY + "rules:\n  no-allow-any-outbound: {action: warn}\n")
        new_sha = hashlib.sha256(policy.read_bytes()).hexdigest()
        assert wait_for(
            lambda: _sum(_metrics(c), "meshwarden_policy_reloads_total", result="success") == 1, timeout=15
        )
        assert _sum(_metrics(c), "meshwarden_policy_info", hash=new_sha) == 1
        policy.write_text("rules:\n  no-such-rule: {action: deny}\n")
        assert wait_for(
            lambda: _sum(_metrics(c), "meshwarden_policy_reloads_total", result="failure") == 1, timeout=15
        )
        resp = c.post("/validate", json=review(SIDECAR_ALLOW_ANY)).json()["response"]
        assert resp["allowed"] is True  # the reloaded policy only warns
    old, new = _records(audit)
    assert old["policy"] != new["policy"] == new_sha
    assert [f["action"] for f in new["findings"]] == ["warn"]


def test_a_reload_that_moves_the_root_namespace_is_refused_until_a_restart(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    mesh_config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "istio", "namespace": "istio-system"},
        "data": {"mesh": "outboundTrafficPolicy:\n  mode: ALLOW_ANY\n"},
    }
    with serve(tmp_path, "--policy", str(policy)) as server, server.client() as c:
        policy.write_text(POLICY + "mesh: {rootNamespace: mesh-root}\n")
        assert wait_for(
            lambda: _sum(_metrics(c), "meshwarden_policy_reloads_total", result="failure") == 1, timeout=15
        )
        assert "mesh.rootNamespace changes from 'istio-system' to 'mesh-root'" in server.log_text()
        assert "restart meshwarden to apply them" in server.log_text()
        # istio-system is still the root: its mesh config is still reviewed.
        resp = c.post("/validate", json=review(mesh_config)).json()["response"]
        assert resp["allowed"] is False and "no-allow-any-outbound" in resp["status"]["message"]


# --- a keyed chain, written by the real server ------------------------------------------------


def test_serve_with_a_key_writes_a_chain_only_the_key_verifies(tmp_path: Path) -> None:
    audit, key = tmp_path / "audit.log", tmp_path / "audit-key"
    key.write_bytes(b"a key from a mounted Secret, 32+ bytes\n")
    with serve(tmp_path, "--audit-log", str(audit), "--audit-key-file", str(key)) as server:
        answers = _hammer(server, 60, 4)
    records = _records(audit)
    assert len(records) == len(answers) == 60 and {r["alg"] for r in records} == {"hmac-sha256"}
    assert verify(read_lines([audit]), key=key.read_bytes().rstrip(b"\n")).ok
    assert verify(read_lines([audit])).broken.problem == "keyed"  # type: ignore[union-attr]
    keyed = _verify_cli(audit, "--key-file", str(key))
    assert keyed.returncode == 0 and "every record keyed" in keyed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--audit-key-file", "{key}"), "--audit-key-file keys the audit log: give --audit-log"),
        (("--audit-log", "{log}", "--audit-key-file", "{tmp}/missing"), "audit key"),
        (("--audit-log", "{log}", "--audit-key-file", "{short}"), "use at least 16 random bytes"),
    ],
)
def test_serve_refuses_an_unusable_audit_key(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    (tmp_path / "key").write_bytes(b"0123456789abcdef0123")
    (tmp_path / "short").write_bytes(b"tiny")
    values = {"key": tmp_path / "key", "log": tmp_path / "audit.log", "tmp": tmp_path}
    values["short"] = tmp_path / "short"
    with (
        pytest.raises(RuntimeError, match=re.escape(message)),
        serve(tmp_path, *(a.format(**values) for a in args)),
    ):
        pass

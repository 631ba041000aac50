"""One engine, one answer: `meshwarden check` on the seed examples reports exactly what
the webhook answers for the same objects, seen against the same inventory.

Both sides run for real: the `meshwarden` entry point on the files, and `meshwarden serve
--inventory-from` the same files over TLS, whose audit records hold each decision's
findings (rule, action, path, message) without the formatting of the response text.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from tests.reviews import review
from tests.serving import serve
from webhook.sources import iter_documents

SEEDS = Path(__file__).parent / "fixtures" / "seeds"

Key = tuple[str, str, str]  # kind, namespace, name
Found = frozenset[tuple[str, str, str, str]]  # rule, action, path, message


def _check(paths: list[str]) -> dict[Key, Found]:
    proc = subprocess.run(
        [sys.executable, "-m", "webhook", "check", "--format", "json", *paths],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    found: dict[Key, set[tuple[str, str, str, str]]] = defaultdict(set)
    for f in json.loads(proc.stdout)["findings"]:
        found[(f["kind"], f["namespace"], f["name"])].add((f["rule"], f["action"], f["path"], f["message"]))
    return {k: frozenset(v) for k, v in found.items()}


def test_check_json_agrees_with_validate_on_the_seed_examples(tmp_path: Path) -> None:
    docs = [d.raw for d in iter_documents([str(SEEDS)])]
    # Alternative examples in the seeds reuse names; one copy of each keeps both sides
    # reviewing the same object against the same inventory.
    seen: set[Key] = set()
    unique = []
    for raw in docs:
        meta = raw.get("metadata", {})
        key = (raw["kind"], meta.get("namespace", "default"), meta.get("name", ""))
        if key not in seen:
            seen.add(key)
            unique.append(raw)
    tree = tmp_path / "seeds"
    tree.mkdir()
    for i, raw in enumerate(unique):
        (tree / f"{i:03d}.json").write_text(json.dumps(raw))

    from_check = _check([str(tree)])

    audit = tmp_path / "audit.log"
    uids: dict[str, Key] = {}
    with (
        serve(tmp_path, "--inventory-from", str(tree), "--audit-log", str(audit)) as server,
        server.client() as client,
    ):
        for i, raw in enumerate(unique):
            meta = raw.get("metadata", {})
            key = (raw["kind"], meta.get("namespace", "default"), meta.get("name", ""))
            uid = f"seed-{i}"
            uids[uid] = key
            resp = client.post("/validate", json=review(raw, uid=uid)).json()["response"]
            denied_by_check = any(a == "deny" for _, a, _, _ in from_check.get(key, frozenset()))
            assert resp["allowed"] is (not denied_by_check), key

    from_validate: dict[Key, Found] = {}
    for line in audit.read_text().splitlines():
        record = json.loads(line)
        key = uids[record["uid"]]
        from_validate[key] = frozenset(
            (f["rule"], f["action"], f["path"], f["message"]) for f in record.get("findings", [])
        )
    assert len(from_validate) == len(unique)
    for key in from_validate:
        assert from_check.get(key, frozenset()) == from_validate[key], key
    # The comparison is not vacuous: the seeds hold real violations of several rules.
    rules = {rule for found in from_check.values() for rule, *_ in found}
    assert {"external-tls-origination", "wildcard-host-egress-gateway"} <= rules

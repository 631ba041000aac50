"""Reading the audit log back: verify its hash chain, filter its records, summarise them.

Everything here works on lines (`(source, line number, text)`) so it is the same over one
file, rotated files in order, or a pipe; `read_lines` and `order_files` do the file part.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webhook.audit import GENESIS, KEYED, VERDICTS, record_hash

Line = tuple[str, int, str]  # source, 1-based line number, text without the newline

_HEX64 = re.compile(r"[0-9a-f]{64}")
_RELATIVE = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class AuditReadError(ValueError):
    """An audit file cannot be read, or a command-line value cannot be understood."""


# -- files -------------------------------------------------------------------------


def order_files(paths: Sequence[str | Path]) -> list[Path]:
    """Rotated files in chain order: `audit.log.3`, `audit.log.2`, `audit.log.1`,
    `audit.log` (oldest first). Files of different logs keep the order they were given in."""
    first_seen: dict[str, int] = {}
    keyed: list[tuple[int, int, Path]] = []
    for raw in paths:
        path = Path(raw)
        base, number = _rotation_key(path)
        index = first_seen.setdefault(base, len(first_seen))
        keyed.append((index, -number, path))
    return [p for _, _, p in sorted(keyed, key=lambda t: (t[0], t[1]))]


def _rotation_key(path: Path) -> tuple[str, int]:
    stem, dot, suffix = path.name.rpartition(".")
    if dot and suffix.isdigit() and stem:
        return str(path.with_name(stem)), int(suffix)
    return str(path), 0


def read_lines(paths: Sequence[str | Path]) -> Iterator[Line]:
    """Lines of the files in chain order. AuditReadError for a missing or unreadable file."""
    for path in order_files(paths):
        if path.is_dir():
            raise AuditReadError(f"{path}: is a directory; pass the audit files themselves")
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise AuditReadError(f"{path}: {exc.strerror or exc}") from exc
        with f:
            for number, raw in enumerate(f, start=1):
                yield str(path), number, raw.rstrip(b"\n").decode("utf-8", errors="replace")


# -- verify ------------------------------------------------------------------------


@dataclass(frozen=True)
class Break:
    """The first record where the chain does not hold."""

    source: str
    line: int
    problem: str  # edited | removed | reordered | malformed | unanchored | keyed | unkeyed
    detail: str
    uid: str = ""

    def describe(self) -> str:
        who = f" (uid {self.uid})" if self.uid else ""
        return f"{self.source}:{self.line}: record{who} {self.problem}: {self.detail}"


@dataclass
class Verification:
    records: int = 0
    sources: list[str] = field(default_factory=list)
    first_prev: str = ""  # where the chain was anchored
    head: str = ""  # hash of the last good record
    broken: Break | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": self.ok,
            "records": self.records,
            "files": self.sources,
            "anchor": self.first_prev,
            "head": self.head,
        }
        if self.broken is not None:
            b = self.broken
            out["broken"] = {
                "file": b.source,
                "line": b.line,
                "problem": b.problem,
                "detail": b.detail,
                "uid": b.uid,
            }
        return out


def verify(
    lines: Iterable[Line], anchor: str | None = None, *, partial: bool = False, key: bytes | None = None
) -> Verification:
    """Check the chain over `lines` (in chain order). The first record must follow
    `anchor` (default: the genesis hash, i.e. the log is complete from its start); with
    `partial` it may follow any record (older files were rotated away), and
    `first_prev` says which. With `key`, every record must be keyed and its HMAC right;
    without, a keyed record cannot be checked and stops the verification."""
    expected = anchor if anchor is not None else GENESIS
    result = Verification(first_prev=expected)
    seen: dict[str, tuple[str, int]] = {}
    it = iter(lines)
    for source, number, text in it:
        if not result.sources or result.sources[-1] != source:
            result.sources.append(source)
        record, problem = _parse_record(text)
        if record is None:
            result.broken = Break(source, number, "malformed", problem)
            return result
        uid = record.get("uid") if isinstance(record.get("uid"), str) else ""
        keyed = record.get("alg") == KEYED
        if keyed != (key is not None):
            result.broken = _key_mismatch(source, number, uid, keyed)
            return result
        if record_hash(record, key) != record["hash"]:
            what = "its hash (with this key)" if key is not None else "its hash"
            result.broken = Break(source, number, "edited", f"its content does not match {what}", uid)
            return result
        prev = record["prev"]
        if partial and result.records == 0 and not seen:
            expected = result.first_prev = prev
        if prev != expected:
            result.broken = _chain_break(source, number, uid, prev, expected, seen, result, it, anchor)
            return result
        seen[record["hash"]] = (source, number)
        expected = record["hash"]
        result.head = expected
        result.records += 1
    return result


def _key_mismatch(source: str, number: int, uid: str, keyed: bool) -> Break:
    if keyed:
        detail = "the record is keyed (hmac-sha256): verify with --key-file"
        return Break(source, number, "keyed", detail, uid)
    return Break(
        source,
        number,
        "unkeyed",
        "the record has a plain sha256 hash where the log is keyed: anyone could have written it",
        uid,
    )


def _parse_record(text: str) -> tuple[dict[str, Any] | None, str]:
    if not text.strip():
        return None, "empty line where a record should be"
    try:
        record = json.loads(text)
    except ValueError as exc:
        return None, f"not JSON ({exc.msg} at column {exc.colno}): a torn or edited line"
    if not isinstance(record, dict):
        return None, "not a JSON object"
    for key in ("prev", "hash"):
        value = record.get(key)
        if not isinstance(value, str) or not _HEX64.fullmatch(value):
            return None, f"no valid {key!r} field (64 hex digits)"
    return record, ""


def _chain_break(
    source: str,
    number: int,
    uid: str,
    prev: str,
    expected: str,
    seen: dict[str, tuple[str, int]],
    result: Verification,
    rest: Iterator[Line],
    anchor: str | None,
) -> Break:
    if prev in seen:
        where = f"{seen[prev][0]}:{seen[prev][1]}"
        return Break(
            source,
            number,
            "reordered",
            f"it follows the record at {where} in the chain, not the record just before it "
            "(records were moved, inserted or duplicated)",
            uid,
        )
    later = _find_later(prev, rest)
    if later is not None:
        return Break(
            source,
            number,
            "reordered",
            f"the record it follows in the chain comes later, at {later[0]}:{later[1]}",
            uid,
        )
    if result.records == 0 and anchor is None:
        return Break(
            source,
            number,
            "unanchored",
            f"the first record does not start the chain (prev {prev[:16]}…, not the genesis hash): "
            "records before it are missing; if older files were rotated away, pass --partial, or "
            "--anchor with the head hash of an earlier verification",
            uid,
        )
    if result.records == 0:
        return Break(
            source, number, "removed", f"the first record does not follow the anchor {expected[:16]}…", uid
        )
    return Break(
        source,
        number,
        "removed",
        f"the record before it in the chain (hash {prev[:16]}…) is missing: a record was removed or replaced",
        uid,
    )


def _find_later(digest: str, rest: Iterator[Line]) -> tuple[str, int] | None:
    for source, number, text in rest:
        try:
            record = json.loads(text)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("hash") == digest:
            return source, number
    return None


# -- query -------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    verdicts: frozenset[str] = frozenset()
    rules: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = self.verdicts - set(VERDICTS)
        if unknown:
            raise AuditReadError(
                f"unknown verdict {', '.join(sorted(unknown))}; expected one of {', '.join(VERDICTS)}"
            )

    def match(self, record: dict[str, Any]) -> bool:
        if self.since is not None or self.until is not None:
            moment = record_time(record)
            if moment is None:
                return False
            if self.since is not None and moment < self.since:
                return False
            if self.until is not None and moment >= self.until:
                return False
        if self.verdicts and record.get("verdict") not in self.verdicts:
            return False
        resource = _dict(record.get("resource"))
        if self.namespaces and not _any_glob(str(resource.get("namespace", "")), self.namespaces):
            return False
        if self.kinds and not _any_glob(
            str(resource.get("kind", "")).lower(), [k.lower() for k in self.kinds]
        ):
            return False
        if self.users and not _any_glob(str(_dict(record.get("user")).get("username", "")), self.users):
            return False
        return not self.rules or any(_any_glob(rule, self.rules) for rule in record_rules(record))


@dataclass
class QueryResult:
    records: list[dict[str, Any]]
    skipped: list[str]  # `source:line` of lines that are not records


def query(lines: Iterable[Line], filters: Filters) -> QueryResult:
    out = QueryResult([], [])
    for source, number, text in lines:
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            if text.strip():
                out.skipped.append(f"{source}:{number}")
            continue
        if filters.match(record):
            out.records.append(record)
    return out


def summarise(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Counts by verdict, rule (findings, split by action), namespace and user."""
    verdicts: Counter[str] = Counter()
    namespaces: Counter[str] = Counter()
    users: Counter[str] = Counter()
    rules: dict[str, Counter[str]] = {}
    total = 0
    for record in records:
        total += 1
        verdicts[str(record.get("verdict", ""))] += 1
        namespaces[str(_dict(record.get("resource")).get("namespace", ""))] += 1
        users[str(_dict(record.get("user")).get("username", ""))] += 1
        for finding in _findings(record):
            rules.setdefault(str(finding.get("rule", "")), Counter())[str(finding.get("action", ""))] += 1
    return {
        "records": total,
        "verdict": _ranked(verdicts),
        "rule": {
            rule: {"total": sum(c.values()), "actions": dict(sorted(c.items()))}
            for rule, c in sorted(rules.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
        },
        "namespace": _ranked(namespaces),
        "user": _ranked(users),
    }


def record_rules(record: dict[str, Any]) -> list[str]:
    return [str(f.get("rule", "")) for f in _findings(record)]


def record_time(record: dict[str, Any]) -> dt.datetime | None:
    value = record.get("time")
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def parse_time(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """An RFC 3339 time, a date (`2024-05-01`, midnight UTC), or an age (`90s`, `15m`,
    `2h`, `7d`: that long before now)."""
    text = text.strip()
    rel = _RELATIVE.fullmatch(text)
    if rel:
        now = now or dt.datetime.now(dt.UTC)
        return now - dt.timedelta(seconds=int(rel.group(1)) * _UNIT_SECONDS[rel.group(2)])
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise AuditReadError(
            f"invalid time {text!r}: use RFC 3339 (2024-05-01T12:00:00Z), a date (2024-05-01) "
            "or an age (15m, 2h, 7d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _findings(record: dict[str, Any]) -> list[dict[str, Any]]:
    found = record.get("findings")
    return [f for f in found if isinstance(f, dict)] if isinstance(found, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _any_glob(value: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


def _ranked(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


# -- table -------------------------------------------------------------------------

_COLUMNS = ("TIME", "VERDICT", "OPERATION", "KIND", "NAMESPACE/NAME", "USER", "RULES", "LATENCY")


def table(records: Iterable[dict[str, Any]]) -> str:
    rows = [_COLUMNS]
    for r in records:
        res = _dict(r.get("resource"))
        op = str(r.get("operation", ""))
        if r.get("dryRun") is True:
            op += " (dry-run)"
        latency = r.get("latencyUs")
        rows.append(
            (
                str(r.get("time", "")),
                str(r.get("verdict", "")),
                op,
                str(res.get("kind", "")),
                f"{res.get('namespace', '')}/{res.get('name', '')}",
                str(_dict(r.get("user")).get("username", "")),
                ",".join(sorted(set(record_rules(r)))) or "-",
                f"{latency / 1000:.1f}ms" if isinstance(latency, int) else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def summary_text(summary: dict[str, Any]) -> str:
    lines = [f"records: {summary['records']}"]
    for title, key in (("verdict", "verdict"), ("namespace", "namespace"), ("user", "user")):
        lines.append(f"\nby {title}:")
        lines.extend(f"  {count:>8}  {name or '-'}" for name, count in summary[key].items())
    lines.append("\nby rule (findings):")
    if not summary["rule"]:
        lines.append("  (none)")
    for rule, data in summary["rule"].items():
        actions = " ".join(f"{a}={n}" for a, n in data["actions"].items())
        lines.append(f"  {data['total']:>8}  {rule}  {actions}")
    return "\n".join(lines)

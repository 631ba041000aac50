"""The audit log: one JSON line per admission decision, hash-chained so that an edited,
removed or reordered record is detected by `meshwarden audit verify`.

Chain. Every record carries `prev` (the `hash` of the record written before it, or
`GENESIS` for the first record of a log) and `hash` = sha256 hex of the record's canonical
encoding without its `hash` field. The canonical encoding is JSON with sorted keys, no
whitespace (`,` and `:` separators) and ASCII only (`\\uXXXX` escapes), as
`json.dumps(record, sort_keys=True, separators=(",", ":"))` writes it; all numbers in a
record are integers, so any JSON library can reproduce it. The chain continues across
rotated files and across restarts (the head is read back from the newest file at start).

Keyed chain. A plain hash chain shows edits to anyone who kept a later head hash, but
someone who can rewrite the whole file can also recompute every hash. With a key
(`serve --audit-key-file`, from a Secret the writer of the log files cannot read back),
every record carries `"alg": "hmac-sha256"` and its `hash` is HMAC-SHA256 with that key over
the same canonical encoding: without the key a rewritten record cannot be given a hash
that `meshwarden audit verify --key-file` accepts.

Destinations. A file, rotated by size (`audit.log` -> `audit.log.1` -> ... like logrotate,
the chain running from the highest-numbered file to the live one), and/or a stream
(stdout, for a cluster log pipeline). A failed write is logged with the record itself,
counted, and turns `healthy` false until a write succeeds again; the record is then not
part of the chain (the file keeps no gap) and the next write retries the file.

One process writes one audit file: replicas each have their own file (or stream).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from webhook.findings import Outcome

GENESIS = "0" * 64
VERDICTS = ("allowed", "denied", "mutated", "error")
KEYED = "hmac-sha256"  # the `alg` of records hashed with a key
MIN_KEY_BYTES = 16
log = logging.getLogger("meshwarden.audit")

_TAIL_CHUNK = 64 * 1024


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes a record's hash is computed over (`hash` itself left out)."""
    body = {k: v for k, v in record.items() if k != "hash"} if "hash" in record else record
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("ascii")


def record_hash(record: Mapping[str, Any], key: bytes | None = None) -> str:
    """sha256 of the canonical encoding, or HMAC-SHA256 with `key` (keyed records)."""
    if key is not None:
        return hmac.new(key, canonical(record), hashlib.sha256).hexdigest()
    return hashlib.sha256(canonical(record)).hexdigest()


class AuditKeyError(ValueError):
    """The audit key file cannot be used."""


def read_key(path: str | os.PathLike[str]) -> bytes:
    """An audit key from a file (a mounted Secret): its bytes, a trailing newline left out."""
    try:
        key = Path(path).read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise AuditKeyError(f"audit key {path}: {exc.strerror or exc}") from None
    if len(key) < MIN_KEY_BYTES:
        raise AuditKeyError(
            f"audit key {path} holds {len(key)} bytes; use at least {MIN_KEY_BYTES} random bytes "
            "(e.g. head -c 32 /dev/urandom | base64)"
        )
    return key


def rfc3339(moment: dt.datetime | None = None) -> str:
    """UTC time as RFC 3339 with microseconds and a `Z` suffix (now, by default)."""
    if moment is not None:
        return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    global _second
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    cached = _second
    if cached[0] != seconds:
        # strftime is the dearest part of a record; the date and time change once a second.
        cached = _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{cached[1]}.{nanos // 1000:06d}Z"


_second: tuple[int, str] = (-1, "")


class AuditLog:
    """Thread-safe, hash-chained audit writer.

    `path`: the live file (None = no file). `stream`: a text or binary stream written after
    the file (None = none). `max_bytes`: rotate when the live file would grow past it
    (0 = never). `backups`: rotated files kept (`path.1` ... `path.N`); older ones are
    deleted, so a verifier of what is left anchors at the oldest kept record.
    `on_failure(sink)` is called once per failed write (the server counts it in a metric).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        stream: IO[Any] | None = None,
        max_bytes: int = 0,
        backups: int = 10,
        fsync: bool = False,
        on_failure: Callable[[str], None] | None = None,
        key: bytes | None = None,
    ) -> None:
        if path is None and stream is None:
            raise ValueError("an audit log needs a file path, a stream, or both")
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        if max_bytes and backups < 1:
            raise ValueError(f"rotation needs at least one backup file, got backups={backups}")
        self.path = Path(path) if path is not None else None
        self.max_bytes = max_bytes
        self.backups = backups
        self._stream = stream
        self._fsync = fsync
        self._on_failure = on_failure
        self._key = key
        self._lock = threading.Lock()
        self._file: Any = None  # raw (unbuffered) file: one write() per record
        self._ident: tuple[int, int] | None = None
        self._size = 0
        self.records = 0  # records written to every destination by this process
        self.failures = 0
        self.healthy = True
        self.prev = GENESIS
        if self.path is not None:
            self.prev = last_hash(self.path) or GENESIS
            try:
                self._open()
            except OSError as exc:
                # Start anyway: /readyz reports the problem and every write retries.
                self.healthy = False
                log.error("audit log %s cannot be opened: %s", self.path, exc)

    # -- writing -------------------------------------------------------------------

    def write(self, record: dict[str, Any]) -> str | None:
        """Chain and write one record; returns its hash, or None when the write failed
        (logged, counted, `healthy` false). The record gains `prev` and `hash`."""
        with self._lock:
            record["prev"] = self.prev
            if self._key is not None:
                record["alg"] = KEYED
            body = json.dumps(record, sort_keys=True, separators=(",", ":"))
            if self._key is not None:
                digest = hmac.new(self._key, body.encode("ascii"), hashlib.sha256).hexdigest()
            else:
                digest = hashlib.sha256(body.encode("ascii")).hexdigest()
            record["hash"] = digest
            # `hash` is appended last rather than re-sorting: one dumps per record, and
            # a verifier re-canonicalises anyway.
            line = f'{body[:-1]},"hash":"{digest}"}}\n'.encode("ascii")
            if self.path is not None:
                try:
                    self._write_file(line)
                except OSError as exc:
                    self._failed("file", exc, line)
                    return None
            self.prev = digest
            if self._stream is not None:
                try:
                    self._write_stream(line)
                except (OSError, ValueError) as exc:  # ValueError: write to a closed stream
                    self._failed("stream", exc, line)
                    return digest
            self.records += 1
            if not self.healthy:
                log.warning("audit log writes succeed again")
            self.healthy = True
            return digest

    def check(self) -> bool:
        """Readiness: `healthy`, after trying the destinations again when writes have been
        failing. An unready replica gets no requests, so recovery cannot wait for a write."""
        with self._lock:
            if self.healthy:
                return True
            try:
                if self.path is not None and (self._file is None or not self._still_ours()):
                    self._close()
                    self._open()
                if self._stream is not None:
                    if getattr(self._stream, "closed", False):
                        raise ValueError("the audit stream is closed")
                    self._stream.flush()
            except (OSError, ValueError) as exc:
                log.debug("audit log still not writable: %s", exc)
                return False
            self.healthy = True
            log.warning("audit log destinations are writable again")
            return True

    def close(self) -> None:
        with self._lock:
            self._close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _failed(self, sink: str, exc: Exception, line: bytes) -> None:
        self.failures += 1
        self.healthy = False
        if sink == "file":
            self._close()  # reopen on the next write
        # The decision is not lost: it goes to the process log with the failure.
        log.error("audit %s write failed: %s; record: %s", sink, exc, line.decode("ascii").rstrip())
        if self._on_failure is not None:
            self._on_failure(sink)

    def _write_stream(self, line: bytes) -> None:
        stream = self._stream
        assert stream is not None
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:  # sys.stdout: bypass the text layer
            buffer.write(line)
            buffer.flush()
        elif isinstance(stream, io.TextIOBase):
            stream.write(line.decode("ascii"))
            stream.flush()
        else:
            stream.write(line)
            stream.flush()

    def _write_file(self, line: bytes) -> None:
        if self._file is None or not self._still_ours():
            self._close()
            self._open()
        if self.max_bytes and self._size and self._size + len(line) > self.max_bytes:
            self._rotate()
        view = memoryview(line)
        while view:
            n = self._file.write(view)
            view = view[n:]
            self._size += n
        if self._fsync:
            os.fsync(self._file.fileno())

    def _still_ours(self) -> bool:
        # The file was moved or deleted behind our back (an external rotation, an operator):
        # records written to the old inode would be lost to readers of `path`.
        assert self.path is not None
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._ident

    def _open(self) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "ab+", buffering=0)  # noqa: SIM115 - kept open across writes
        try:
            st = os.fstat(f.fileno())
            if st.st_size:
                f.seek(st.st_size - 1)
                if f.read(1) != b"\n":
                    # A torn last line (crash mid-write): end it so the next record stands
                    # on its own line; verify reports the torn one.
                    f.write(b"\n")
                    log.warning("audit log %s ended in a partial record", self.path)
            self._size = os.fstat(f.fileno()).st_size
            self._ident = (st.st_dev, st.st_ino)
        except OSError:
            f.close()
            raise
        self._file = f

    def _close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                log.warning("closing audit log %s: %s", self.path, exc)
            self._file = None
            self._ident = None

    def _rotate(self) -> None:
        assert self.path is not None
        self._close()
        for path in rotated_files(self.path, self.backups):
            os.replace(path, _numbered(self.path, _suffix_number(path) + 1))
        overflow = _numbered(self.path, self.backups + 1)
        if overflow.exists():
            overflow.unlink()
        os.replace(self.path, _numbered(self.path, 1))
        self._open()


def rotated_files(path: str | os.PathLike[str], limit: int | None = None) -> list[Path]:
    """`path.N` files that exist, highest number (oldest) first."""
    path = Path(path)
    found: list[tuple[int, Path]] = []
    prefix = path.name + "."
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return []
    for entry in entries:
        if entry.name.startswith(prefix):
            suffix = entry.name[len(prefix) :]
            if suffix.isdigit() and (limit is None or int(suffix) <= limit):
                found.append((int(suffix), entry))
    return [p for _, p in sorted(found, reverse=True)]


def _numbered(path: Path, n: int) -> Path:
    return path.with_name(f"{path.name}.{n}")


def _suffix_number(path: Path) -> int:
    return int(path.name.rsplit(".", 1)[1])


def last_hash(path: str | os.PathLike[str]) -> str | None:
    """The `hash` of the last complete record of the log whose live file is `path` (looking
    into `path.1` when the live file is empty or missing, as right after a rotation)."""
    path = Path(path)
    for candidate in (path, _numbered(path, 1)):
        digest = _last_hash_of_file(candidate)
        if digest is not None:
            return digest
    return None


def _last_hash_of_file(path: Path) -> str | None:
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError:
        return None
    with f:
        end = f.seek(0, os.SEEK_END)
        pos, tail = end, b""
        while pos > 0:
            step = min(_TAIL_CHUNK, pos)
            pos -= step
            f.seek(pos)
            tail = f.read(step) + tail
            lines = tail.split(b"\n")
            # lines[0] may be cut by the chunk boundary unless we reached the start.
            complete = lines if pos == 0 else lines[1:]
            for raw in reversed(complete):
                digest = _hash_field(raw)
                if digest is not None:
                    return digest
            tail = lines[0]
    return None


def _hash_field(raw: bytes) -> str | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    digest = obj.get("hash") if isinstance(obj, dict) else None
    return digest if isinstance(digest, str) else None


# -- building records --------------------------------------------------------------


def build_record(
    *,
    request: Mapping[str, Any] | None,
    webhook: str,
    verdict: str,
    outcomes: Iterable[Outcome] = (),
    patch: Sequence[Mapping[str, Any]] | None = None,
    policy_hash: str,
    latency_seconds: float,
    replica: str,
    status: str = "",
    kind: str = "",
    namespace: str = "",
    name: str = "",
    error: str = "",
    error_code: int = 0,
) -> dict[str, Any]:
    """The audit record of one admission decision.

    `request` is the AdmissionReview `request` object as received (None or partial for a
    malformed review); `kind`/`namespace`/`name` fill in what the request does not say
    (the engine reads them from the object, e.g. a name from `generateName` is empty in the
    request). `webhook` is the endpoint (`validate` / `mutate`); `status` the engine's
    (reviewed / skipped / exempt); `error` and `error_code` what went wrong (verdict error).
    """
    if verdict not in VERDICTS:
        raise ValueError(f"unknown verdict {verdict!r}; expected one of {', '.join(VERDICTS)}")
    req: Mapping[str, Any] = request if isinstance(request, Mapping) else {}
    user = _mapping(req.get("userInfo"))
    gvk = _mapping(req.get("kind"))
    groups = user.get("groups")
    record: dict[str, Any] = {
        "time": rfc3339(),
        "uid": _text(req.get("uid")),
        "webhook": webhook,
        "user": {
            "username": _text(user.get("username")),
            "uid": _text(user.get("uid")),
            "groups": [str(g) for g in groups] if isinstance(groups, list) else [],
        },
        "operation": _text(req.get("operation")),
        "dryRun": req.get("dryRun") is True,
        "resource": {
            "group": _text(gvk.get("group")),
            "version": _text(gvk.get("version")),
            "kind": _text(gvk.get("kind")) or kind,
            "namespace": _text(req.get("namespace")) or namespace,
            "name": _text(req.get("name")) or name,
        },
        "verdict": verdict,
        "status": status,
        "findings": [_finding(o) for o in outcomes],
        "patch": list(patch) if patch else None,
        "policy": policy_hash,
        "latencyUs": max(0, round(latency_seconds * 1_000_000)),
        "replica": replica,
    }
    if error or error_code:
        record["error"] = {"code": error_code, "message": error}
    return record


def _finding(outcome: Outcome) -> dict[str, Any]:
    f = outcome.finding
    out: dict[str, Any] = {
        "rule": f.rule,
        "action": str(outcome.action),
        "path": f.path_text,
        "message": f.message,
    }
    if outcome.note:
        out["note"] = outcome.note
    return out


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def replica_name(environ: Mapping[str, str] | None = None) -> str:
    """This webhook replica's name: the pod name (downward API `POD_NAME`), else the host."""
    environ = os.environ if environ is None else environ
    return environ.get("POD_NAME") or environ.get("HOSTNAME") or os.uname().nodename

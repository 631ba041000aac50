"""`meshwarden audit verify|query`: check the audit log's hash chain; filter and summarise it.

Exit codes: 0 success (verify: the chain is intact), 1 verify found a break, 2 unreadable
input or a bad option value.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import NoReturn

import click

from webhook.audit import GENESIS, VERDICTS, AuditKeyError, read_key
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

_HEX64 = re.compile(r"[0-9a-f]{64}")
_USAGE = 2


@click.group("audit")
def command() -> None:
    """Check and read the audit log (files as written by `serve --audit-log`)."""


_paths = click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))


@command.command("verify")
@_paths
@click.option(
    "--anchor",
    metavar="HASH",
    help="The hash the first record must follow, when older records were rotated away "
    "(default: the first record must start the chain).",
)
@click.option(
    "--partial",
    is_flag=True,
    help="Accept a first record that follows a record no longer present (older files rotated "
    "away); the anchor it follows is printed.",
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The key the log was written with (serve --audit-key-file): every record must carry its HMAC.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def verify_command(
    paths: tuple[Path, ...], anchor: str | None, partial: bool, key_file: Path | None, fmt: str
) -> None:
    """Check the hash chain over PATHS (rotated files are put in order: audit.log.2,
    audit.log.1, audit.log). Exit 0 when intact, 1 at the first broken record."""
    if anchor is not None and not _HEX64.fullmatch(anchor):
        _fail(f"--anchor must be 64 lowercase hex digits, got {anchor!r}")
    if anchor is not None and partial:
        _fail("--anchor and --partial exclude each other")
    try:
        key = read_key(key_file) if key_file is not None else None
        result = verify(read_lines(paths), anchor=anchor, partial=partial, key=key)
    except (AuditReadError, AuditKeyError) as exc:
        _fail(str(exc))
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
    elif result.broken is None:
        files = len(result.sources)
        start = "from the start" if result.first_prev == GENESIS else f"after {result.first_prev}"
        keyed = ", every record keyed" if key is not None else ""
        click.echo(
            f"OK: {result.records} records in {files} file{'s' if files != 1 else ''}, chain intact "
            f"{start}{keyed}; head {result.head or result.first_prev}"
        )
    else:
        click.echo(f"BROKEN after {result.records} good records: {result.broken.describe()}", err=True)
    sys.exit(0 if result.ok else 1)


@command.command("query")
@_paths
@click.option("--since", help="Records at or after: RFC 3339 time, a date, or an age (15m, 2h, 7d).")
@click.option("--until", help="Records before: RFC 3339 time, a date, or an age.")
@click.option("--verdict", "verdicts", multiple=True, type=click.Choice(VERDICTS), help="Repeatable.")
@click.option("--rule", "rules", multiple=True, help="A rule with a finding (glob; repeatable).")
@click.option("--user", "users", multiple=True, help="Requesting username (glob; repeatable).")
@click.option("--namespace", "namespaces", multiple=True, help="Object namespace (glob; repeatable).")
@click.option("--kind", "kinds", multiple=True, help="Object kind, case-insensitive (glob; repeatable).")
@click.option("--summary", is_flag=True, help="Counts by verdict, rule, namespace, user.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def query_command(
    paths: tuple[Path, ...],
    since: str | None,
    until: str | None,
    verdicts: tuple[str, ...],
    rules: tuple[str, ...],
    users: tuple[str, ...],
    namespaces: tuple[str, ...],
    kinds: tuple[str, ...],
    summary: bool,
    fmt: str,
) -> None:
    """Print the records of PATHS that match every filter given (values of one repeated
    filter are alternatives)."""
    try:
        filters = Filters(
            since=parse_time(since) if since else None,
            until=parse_time(until) if until else None,
            verdicts=frozenset(verdicts),
            rules=rules,
            users=users,
            namespaces=namespaces,
            kinds=kinds,
        )
        result = query(read_lines(order_files(paths)), filters)
    except AuditReadError as exc:
        _fail(str(exc))
    for where in result.skipped:
        click.echo(f"{where}: not an audit record, skipped", err=True)
    if summary:
        counts = summarise(result.records)
        click.echo(json.dumps(counts, indent=2) if fmt == "json" else summary_text(counts))
    elif fmt == "json":
        click.echo(json.dumps(result.records, indent=2))
    else:
        click.echo(table(result.records))


def _fail(message: str) -> NoReturn:
    click.echo(f"meshwarden audit: {message}", err=True)
    sys.exit(_USAGE)

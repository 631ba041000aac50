"""Admission throughput and latency: `meshwarden serve` against a bare Starlette endpoint.

Both servers run side by side as subprocesses on 127.0.0.1, over TLS with the same
generated certificates and the same uvicorn settings (one worker, the default event loop
and HTTP implementation). wrk drives each with a realistic ~3 KB AdmissionReview over
keep-alive connections. The runs alternate (bare, meshwarden, then meshwarden, bare, ...)
so both see the same machine conditions, and the table reports medians over the rounds.

DESIGN.md section 9 sets the targets: throughput at least 0.7 of the bare endpoint's, and
p99 within 1.5x of the bare endpoint's p99, at 16 connections. Absolute figures on a shared
machine are noise; the ratios are the result.

    apt-get install -y wrk
    .venv/bin/python bench/admission_throughput.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from webhook.certs import DEV_NAMES, ensure_dev_certs  # noqa: E402

START_TIMEOUT = 60.0
THROUGHPUT_TARGET = 0.7
P99_TARGET = 1.5
_RUNNING = re.compile(r"Uvicorn running on https://[^:]+:(\d+)")
_LATENCY_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    review: str  # file name under bench/reviews/


SCENARIOS = (
    Scenario("validate-virtualservice", "/validate", "virtualservice.json"),
    Scenario("mutate-virtualservice", "/mutate", "virtualservice.json"),
    Scenario("validate-serviceentry", "/validate", "serviceentry.json"),
)


@dataclass
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors plus non-2xx answers
    # The server's own CPU time per request, and the share of the run it was busy: on a
    # shared machine these say whether the server or something else set the pace.
    server_cpu_us: float = 0.0
    server_busy: float = 0.0

    @property
    def valid(self) -> bool:
        return self.errors == 0 and self.requests > 0


@dataclass
class Row:
    scenario: str
    server: str
    runs: list[WrkResult] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.runs)


class BenchError(Exception):
    pass


# --- servers ------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def http_stack(self) -> str:
        """The event loop and HTTP parser the process actually loaded (from its memory map)."""
        maps = Path(f"/proc/{self.process.pid}/maps").read_text()
        loop = "uvloop" if "/uvloop/" in maps else "asyncio"
        http = "httptools" if "/httptools/" in maps else "h11"
        return f"{loop}+{http}"


@contextmanager
def _server(name: str, cmd: Sequence[str], log: Path, cpus: str | None) -> Iterator[Server]:
    full = [*(["taskset", "-c", cpus] if cpus else []), *cmd]
    with log.open("wb") as out:
        proc = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        port = None
        while port is None:
            if (m := _RUNNING.search(log.read_text(errors="replace"))) is not None:
                port = int(m.group(1))
            elif proc.poll() is not None:
                raise BenchError(f"{name} exited with {proc.returncode} at start:\n{log.read_text()}")
            elif time.monotonic() > deadline:
                raise BenchError(f"{name} did not start within {START_TIMEOUT:.0f}s:\n{log.read_text()}")
            else:
                time.sleep(0.1)  # polling the log for uvicorn's start line
        yield Server(name, proc, port, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _check_answer(server: Server, ca: Path, scenario: Scenario, body: bytes) -> str:
    """POST the review once and check the answer is a well-formed AdmissionReview for it;
    returns a short description of the verdict (what the benchmark is measuring)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=10)
    try:
        conn.request("POST", scenario.path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        payload = resp.read()
    finally:
        conn.close()
    if resp.status != 200:
        raise BenchError(f"{server.name} {scenario.path}: HTTP {resp.status}: {payload[:500]!r}")
    answer = json.loads(payload).get("response", {})
    uid = json.loads(body)["request"]["uid"]
    if answer.get("uid") != uid:
        raise BenchError(f"{server.name} {scenario.path}: answered uid {answer.get('uid')!r}, sent {uid!r}")
    verdict = "allowed" if answer.get("allowed") else "denied: " + answer.get("status", {}).get("message", "")
    if "patch" in answer:
        import base64

        ops = json.loads(base64.b64decode(answer["patch"]))
        verdict += f", patch of {len(ops)} operations"
    if answer.get("warnings"):
        verdict += f", {len(answer['warnings'])} warnings"
    return verdict


# --- wrk ----------------------------------------------------------------------------------


def _latency_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if m is None:
        raise BenchError(f"unreadable wrk latency {text!r}")
    return float(m.group(1)) * _LATENCY_UNITS[m.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """The figures of `wrk --latency` output."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    total = re.search(r"^\s*(\d+) requests in ", output, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    if not (rps and total and p50 and p99):
        raise BenchError(f"unreadable wrk output:\n{output}")
    errors = 0
    if (
        sock := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    ) is not None:
        errors += sum(int(g) for g in sock.groups())
    if (non2xx := re.search(r"Non-2xx or 3xx responses: (\d+)", output)) is not None:
        errors += int(non2xx.group(1))
    return WrkResult(
        float(rps.group(1)), _latency_ms(p50.group(1)), _latency_ms(p99.group(1)), int(total.group(1)), errors
    )


def _wrk(url: str, body_file: Path, args: argparse.Namespace, seconds: float, cpus: str | None) -> WrkResult:
    cmd = [
        *(["taskset", "-c", cpus] if cpus else []),
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds:g}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(BENCH / "post.lua"),
        url,
        "--",
        str(body_file),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def _measure(
    server: Server, path: str, body_file: Path, args: argparse.Namespace, cpus: str | None
) -> WrkResult:
    cpu, wall = server.cpu_seconds(), time.monotonic()
    result = _wrk(server.url(path), body_file, args, args.duration, cpus)
    cpu, wall = server.cpu_seconds() - cpu, time.monotonic() - wall
    result.server_cpu_us = cpu / max(result.requests, 1) * 1e6
    result.server_busy = cpu / wall
    return result


# --- the run ------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _pinning(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(server cpus, wrk cpus): on two or more cores the servers get their own core, so the
    load generator's TLS work does not compete with the server under test."""
    cores = os.cpu_count() or 1
    if args.no_pin or cores < 2 or shutil.which("taskset") is None:
        return None, None
    return str(cores - 1), ",".join(str(c) for c in range(cores - 1))


def _compact(src: Path, dst: Path) -> bytes:
    # The API server sends compact JSON; the files under reviews/ are indented for reading.
    body = json.dumps(json.loads(src.read_text()), separators=(",", ":")).encode()
    dst.write_bytes(body)
    return body


def run(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed: apt-get install -y wrk")
    scenarios = [s for s in SCENARIOS if not args.only or s.name in args.only]
    server_cpus, wrk_cpus = _pinning(args)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="meshwarden-bench-")))
        cert_dir = work / "certs"
        paths, _ = ensure_dev_certs(cert_dir, DEV_NAMES)
        bodies: dict[str, tuple[Path, bytes]] = {}
        for s in scenarios:
            if s.review not in bodies:
                dst = work / s.review
                bodies[s.review] = (dst, _compact(BENCH / "reviews" / s.review, dst))

        python = sys.executable
        mw_cmd = [
            python,
            "-m",
            "webhook",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--cert-dir",
            str(cert_dir),
        ]
        for inv in args.inventory:
            mw_cmd += ["--inventory-from", str(inv)]
        if args.audit_log:
            mw_cmd += ["--audit-log", str(work / "audit.log")]
        bare_cmd = [python, str(BENCH / "bare_app.py"), "--port", "0", "--cert-dir", str(cert_dir)]
        bare = stack.enter_context(_server("bare", bare_cmd, work / "bare.log", server_cpus))
        mw = stack.enter_context(_server("meshwarden", mw_cmd, work / "meshwarden.log", server_cpus))
        servers = {"bare": bare, "meshwarden": mw}

        stacks = {name: srv.http_stack() for name, srv in servers.items()}
        print(f"machine: {os.cpu_count()} cpus, {_cpu_model()}; Python {platform.python_version()}")
        print(
            f"servers: one uvicorn worker each, TLS; bare {stacks['bare']}, meshwarden {stacks['meshwarden']}"
        )
        if len(set(stacks.values())) != 1:
            raise BenchError(f"the servers run different HTTP stacks: {stacks}")
        print(
            f"load: wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s --latency, keep-alive; "
            + (f"servers on cpu {server_cpus}, wrk on cpu {wrk_cpus}" if server_cpus else "no cpu pinning")
        )
        inventory = ", ".join(str(p) for p in args.inventory) or "none"
        print(f"inventory: {inventory}; audit log: {'on' if args.audit_log else 'off'}")
        for s in scenarios:
            body_file, body = bodies[s.review]
            verdict = _check_answer(mw, paths.ca, s, body)
            _check_answer(bare, paths.ca, s, body)
            print(f"  {s.name}: {s.path} with {s.review} ({len(body)} bytes) -> meshwarden {verdict}")
            for srv in servers.values():
                _wrk(srv.url(s.path), body_file, args, args.warmup, wrk_cpus)
        sys.stdout.flush()

        rows = {(s.name, name): Row(s.name, name) for s in scenarios for name in servers}
        for i in range(args.rounds):
            order = ("bare", "meshwarden") if i % 2 == 0 else ("meshwarden", "bare")
            for s in scenarios:
                for name in order:
                    result = _measure(servers[name], s.path, bodies[s.review][0], args, wrk_cpus)
                    rows[(s.name, name)].runs.append(result)
                    print(
                        f"  round {i + 1} {s.name:<24} {name:<10} {result.requests_per_second:9.1f} req/s "
                        f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  "
                        f"server {result.server_cpu_us:6.0f} us cpu/request, busy {result.server_busy:4.0%}"
                        + ("" if result.valid else f"  ({result.errors} errors)"),
                        flush=True,
                    )
        for name, srv in servers.items():
            if srv.process.poll() is not None:
                raise BenchError(f"{name} died during the run:\n{srv.log.read_text()}")

    ok = _report(scenarios, rows, args)
    return 0 if ok else 1


def _report(scenarios: list[Scenario], rows: dict[tuple[str, str], Row], args: argparse.Namespace) -> bool:
    print()
    print(f"medians over {args.rounds} rounds of {args.duration:g}s, {args.connections} connections")
    print("ratios: median over the rounds of meshwarden / bare, each pair measured back to back")
    print("cpu/req: the server's CPU time per request; cpu ratio: bare's over meshwarden's, the req/s")
    print("ratio a server-bound run would show (a check on the wrk figures, not the target)")
    header = (
        f"{'scenario':<24} {'server':<10} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'rps ratio':>9} {'p99 ratio':>9} {'cpu/req':>8} {'busy':>5} {'cpu ratio':>9}"
    )
    print(header)
    print("-" * len(header))
    ok = True
    summary = []
    for s in scenarios:
        bare, mw = rows[(s.name, "bare")], rows[(s.name, "meshwarden")]
        for row in (bare, mw):
            rps, p50, p99 = row.median("requests_per_second"), row.median("p50_ms"), row.median("p99_ms")
            rps_ratio = _paired_ratio(row, bare, "requests_per_second")
            p99_ratio = _paired_ratio(row, bare, "p99_ms")
            cpu_us, busy = row.median("server_cpu_us"), row.median("server_busy")
            cpu_ratio = 1 / _paired_ratio(row, bare, "server_cpu_us")
            verdict = ""
            if row is mw:
                met = rps_ratio >= THROUGHPUT_TARGET and p99_ratio <= P99_TARGET
                ok &= met
                verdict = "  target met" if met else "  TARGET MISSED"
            invalid = sum(not r.valid for r in row.runs)
            if invalid:
                ok = False
                verdict += f"  ({invalid} runs with errors)"
            print(
                f"{s.name:<24} {row.server:<10} {rps:8.0f} {p50:7.2f} {p99:7.2f}"
                f" {rps_ratio:9.2f} {p99_ratio:9.2f} {cpu_us:6.0f}us {busy:5.0%} {cpu_ratio:9.2f}{verdict}"
            )
            summary.append(
                {
                    "scenario": s.name,
                    "server": row.server,
                    "rps": rps,
                    "p50_ms": p50,
                    "p99_ms": p99,
                    "rps_ratio": rps_ratio,
                    "p99_ratio": p99_ratio,
                    "server_cpu_us": cpu_us,
                    "server_busy": busy,
                    "cpu_ratio": cpu_ratio,
                    "runs": [asdict(r) for r in row.runs],
                }
            )
    print(f"targets: req/s ratio >= {THROUGHPUT_TARGET}, p99 ratio <= {P99_TARGET} (DESIGN.md section 9)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "cpus": os.cpu_count(),
                    "cpu_model": _cpu_model(),
                    "connections": args.connections,
                    "threads": args.threads,
                    "duration_s": args.duration,
                    "rounds": args.rounds,
                    "results": summary,
                },
                indent=2,
            )
            + "\n"
        )
        print(f"results written to {args.json}")
    return ok


def _paired_ratio(row: Row, bare: Row, attr: str) -> float:
    """The median of the per-round ratios: each pair ran back to back, so a slow spell on a
    shared machine moves both sides of a ratio, where it would skew a ratio of medians."""
    return statistics.median(
        getattr(a, attr) / getattr(b, attr) for a, b in zip(row.runs, bare.runs, strict=True)
    )


def _args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=6.0, help="seconds per measured wrk run (default 6)")
    p.add_argument("--rounds", type=int, default=5, help="measured runs per server and scenario (default 5)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured load first (default 3)")
    p.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument(
        "--inventory",
        type=Path,
        action="append",
        help="meshwarden --inventory-from (default: bench/inventory/)",
    )
    p.add_argument("--audit-log", action="store_true", help="run meshwarden with an audit log file")
    p.add_argument(
        "--only", action="append", choices=[s.name for s in SCENARIOS], help="run only this scenario"
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin the servers and wrk to separate cpus")
    p.add_argument("--json", type=Path, help="also write the results as JSON (e.g. bench/results/run.json)")
    args = p.parse_args(argv)
    if args.inventory is None:
        args.inventory = [BENCH / "inventory"]
    if args.rounds < 1 or args.duration <= 0 or args.connections < args.threads:
        p.error("need --rounds >= 1, --duration > 0 and --connections >= --threads")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _args(argv)
    try:
        return run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

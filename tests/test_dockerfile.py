"""Static checks of the Dockerfile (no container engine here): a pinned base, locked and
hash-checked dependencies, a non-root numeric user, `meshwarden serve` as entrypoint, OCI
labels, nothing but the application environment in the final image, and a build context
(.dockerignore) that holds every file the Dockerfile copies."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
from packaging.requirements import Requirement

from webhook.cli import main as cli_main
from webhook.cli.serve import command as serve_command

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
LOCK = ROOT / "deploy" / "requirements.lock"


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def _instructions(text: str) -> list[Instruction]:
    """Logical instructions: comments dropped, backslash continuations joined."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def _parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for ins in _instructions(text):
        if ins.keyword == "FROM":
            parts = ins.args.split()
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m.group(1) or m.group(2)], parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(image, name))
        elif not stages:
            assert ins.keyword == "ARG", f"only ARG may come before the first FROM, not {ins.keyword}"
            key, _, value = ins.args.partition("=")
            global_args[key] = value
        else:
            stages[-1].instructions.append(ins)
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return _parse(DOCKERFILE.read_text())[1]


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


# --- base image ------------------------------------------------------------------------


def test_parser_rejects_what_it_should() -> None:
    with pytest.raises(AssertionError, match="before the first FROM"):
        _parse("RUN true\nFROM python:3.11.11-slim\n")
    with pytest.raises(AssertionError, match="continued line"):
        _parse("FROM python:3.11.11-slim\nRUN true \\\n")


def test_every_stage_uses_a_base_pinned_to_a_patch_version(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "a multi-stage build: build tools stay out of the final image"
    for stage in stages:
        repo, _, tag = stage.image.partition(":")
        assert repo == "python", stage.image
        assert re.fullmatch(r"3\.\d+\.\d+-slim(-\w+)?", tag.split("@")[0]), (
            f"{stage.image}: pin the slim base to a full Python version"
        )
    assert len({s.image for s in stages}) == 1, "the virtualenv is built on the base it runs on"


def test_base_python_satisfies_requires_python(final: Stage) -> None:
    version = re.match(r"python:(\d+)\.(\d+)", final.image)
    assert version is not None
    minimum = re.match(r">=\s*(\d+)\.(\d+)", _project()["requires-python"])
    assert minimum is not None
    assert tuple(map(int, version.groups())) >= tuple(map(int, minimum.groups()))


# --- final stage -----------------------------------------------------------------------


def test_final_stage_runs_as_a_numeric_non_root_user(final: Stage) -> None:
    users = final.all("USER")
    assert users, "the final stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, "a numeric uid lets the kubelet check runAsNonRoot"
    assert gid.isdigit() and int(gid) != 0
    last_user = max(i for i, ins in enumerate(final.instructions) if ins.keyword == "USER")
    assert all(ins.keyword != "RUN" for ins in final.instructions[last_user:]), "nothing runs after USER"


def test_final_stage_matches_the_deployment_user(final: Stage) -> None:
    uid = int(final.all("USER")[-1].split(":")[0])
    deployment = (ROOT / "deploy" / "base" / "deployment.yaml").read_text()
    assert f"runAsUser: {uid}" in deployment


def test_entrypoint_is_meshwarden_serve(final: Stage) -> None:
    entrypoint = json.loads(final.all("ENTRYPOINT")[-1])
    assert entrypoint == ["meshwarden", "serve"], "exec form, so SIGTERM reaches the server"
    assert _project()["scripts"]["meshwarden"] == "webhook.cli:main"
    assert cli_main.get_command(click.Context(cli_main), "serve") is serve_command


def test_default_arguments_are_options_of_serve(final: Stage) -> None:
    args = json.loads(final.all("CMD")[-1])
    ctx = serve_command.make_context("serve", list(args), resilient_parsing=False)
    assert ctx.params["host"] == "0.0.0.0"
    assert str(ctx.params["cert_dir"]) == "/etc/meshwarden/tls"
    # The check is only as good as the parser's refusal of options serve does not have.
    with pytest.raises(click.NoSuchOption):
        serve_command.make_context("serve", [*args, "--no-such-option"])


def test_no_healthcheck(final: Stage, stages: list[Stage]) -> None:
    assert all(not s.all("HEALTHCHECK") for s in stages), "Kubernetes probes check health"


def test_oci_labels(final: Stage) -> None:
    labels = " ".join(final.all("LABEL"))
    keys = set(re.findall(r"(org\.opencontainers\.image\.[a-z.]+)=", labels))
    assert {
        "org.opencontainers.image.title",
        "org.opencontainers.image.description",
        "org.opencontainers.image.version",
        "org.opencontainers.image.revision",
        "org.opencontainers.image.licenses",
    } <= keys
    assert f'org.opencontainers.image.licenses="{_project()["license"]}"' in labels


def test_final_stage_holds_only_the_application_environment(final: Stage) -> None:
    for run in final.all("RUN"):
        assert not re.search(r"\b(apt-get|apt|pip|gcc|make|cc)\b", run), f"final stage installs: {run}"
    copies = final.all("COPY")
    assert copies, "the final stage copies the virtualenv"
    for copy in copies:
        assert copy.startswith("--from="), f"the final stage copies only from the build stage: {copy}"


def test_dependencies_come_from_the_lock_with_hashes(stages: list[Stage]) -> None:
    runs = " ".join(r for s in stages[:-1] for r in s.all("RUN"))
    assert "--require-hashes" in runs and "-r requirements.lock" in runs
    assert "--only-binary=:all:" in runs, "wheels only: no compiler in any stage"
    assert "PIP_NO_CACHE_DIR=1" in " ".join(e for s in stages for e in s.all("ENV"))


# --- the lock --------------------------------------------------------------------------


def _lock() -> dict[str, tuple[str, int]]:
    """name -> (pinned version, number of hashes)."""
    text = LOCK.read_text().replace("\\\n", " ")
    pins: dict[str, tuple[str, int]] = {}
    for line in text.splitlines():
        m = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)(.*)", line)
        if m:
            name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
            pins[name] = (m.group(2), m.group(3).count("--hash=sha256:"))
    return pins


def test_lock_pins_every_runtime_dependency_with_hashes() -> None:
    pins = _lock()
    assert pins, "the lock is empty"
    for name, (version, hashes) in pins.items():
        assert hashes >= 1, f"{name}=={version} has no hash"
    for spec in _project()["dependencies"]:
        req = Requirement(spec)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"{req.name} is a dependency but not in {LOCK.name}"
        assert req.specifier.contains(pins[name][0]), f"{name}=={pins[name][0]} does not satisfy {spec}"


def test_lock_installs_the_uvicorn_standard_extras() -> None:
    # uvicorn[standard] in pyproject: the lock must carry the extras' packages (it is
    # installed with --no-deps, so a missing one would silently be absent).
    assert {"uvloop", "httptools", "websockets", "watchfiles"} <= _lock().keys()


# --- build context ---------------------------------------------------------------------


def _ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    patterns: list[tuple[bool, re.Pattern[str]]] = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = line.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(line):
            if line.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif line.startswith("**", i):
                regex += ".*"
                i += 2
            elif line[i] == "*":
                regex += "[^/]*"
                i += 1
            elif line[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(line[i])
                i += 1
        patterns.append((negate, re.compile(regex)))
    return patterns


def _in_context(path: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, regex in patterns:
        if any(regex.fullmatch(p) for p in prefixes):
            excluded = not negate
    return not excluded


def _tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_ignore_matcher_follows_docker_rules() -> None:
    patterns = [
        (False, re.compile("[^/]*")),
        (True, re.compile("webhook")),
        (False, re.compile(r"(?:.*/)?x\.pyc")),
    ]
    assert _in_context("webhook/cli/serve.py", patterns)
    assert not _in_context("tests/test_x.py", patterns)
    assert not _in_context("webhook/x.pyc", patterns)


def test_build_context_holds_what_the_dockerfile_copies(stages: list[Stage]) -> None:
    patterns = _ignore_patterns()
    tracked = _tracked()
    for stage in stages:
        for copy in stage.all("COPY"):
            if copy.startswith("--from="):
                continue
            *sources, _dest = copy.split()
            for source in sources:
                under = [f for f in tracked if f == source or f.startswith(source.rstrip("/") + "/")]
                assert under, f"COPY {source}: nothing tracked there"
                dropped = [f for f in under if not _in_context(f, patterns)]
                assert not dropped, f"COPY {source}: .dockerignore drops {dropped[:3]}"


def test_build_context_leaves_out_tests_and_local_state() -> None:
    patterns = _ignore_patterns()
    for path in ("tests/test_dockerfile.py", ".git/HEAD", ".venv/bin/python", "certs/tls.key", "bench/x.py"):
        assert not _in_context(path, patterns), path
    assert not _in_context("webhook/__pycache__/engine.cpython-311.pyc", patterns)

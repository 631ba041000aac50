"""The policy configuration: which rules run, how strictly, with which parameters.

`policies/policy.yaml` is embedded as the default; `--policy FILE` (or the ConfigMap
mounted in the cluster) replaces it. It is validated when loaded, with errors that name the
field, and its sha256 goes into every audit record so each decision can be tied to the
exact policy that made it.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from webhook import durations
from webhook.findings import Action
from webhook.objects import SCHEMA_RULE
from webhook.registry import DEFAULTERS, RULES, RuleSpec, load_all
from webhook.sources import SourceError, load_yaml


class EnforcementPoint(StrEnum):
    ADMISSION = "admission"
    CHECK = "check"
    SCAN = "scan"


def _check_duration(value: str) -> str:
    problem = durations.istio_problem(value)
    if problem:
        raise ValueError(problem)
    return value


Duration = Annotated[str, AfterValidator(_check_duration)]


def _to_action(value: str) -> Action:
    # A function, not the Action class itself: pydantic reads a validator's signature, and
    # an Enum class has none it can read on Python 3.12 and later.
    return Action(value)


ConfiguredAction = Annotated[Literal["deny", "warn", "audit"], AfterValidator(_to_action)]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


class EgressGateway(_Config):
    hosts: list[str] = Field(
        default_factory=lambda: ["istio-egressgateway.istio-system.svc.cluster.local"], min_length=1
    )
    selector: dict[str, str] = Field(default_factory=lambda: {"istio": "egressgateway"}, min_length=1)


class MeshSettings(_Config):
    root_namespace: str = "istio-system"
    cluster_domain: str = "cluster.local"
    egress_gateway: EgressGateway = Field(default_factory=EgressGateway)


class PerPoint(_Config):
    admission: ConfiguredAction | None = None
    check: ConfiguredAction | None = None
    scan: ConfiguredAction | None = None


class RuleConfig(_Config):
    enabled: bool = True
    action: Action | PerPoint | None = None
    downgrade_existing: bool = True
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("action", mode="before")
    @classmethod
    def _action(cls, v: Any) -> Any:
        # One clear message instead of pydantic's per-member union errors.
        if v is None or isinstance(v, PerPoint):
            return v
        if isinstance(v, Mapping):
            return PerPoint.model_validate(v)
        if v in ("deny", "warn", "audit"):
            return Action(v)
        raise ValueError(
            f"action must be deny, warn, audit or a mapping of enforcement point "
            f"(admission, check, scan) to one of them; got {v!r}"
        )


class DefaulterConfig(_Config):
    enabled: bool = True
    params: dict[str, Any] = Field(default_factory=dict)


class Exception_(_Config):
    rule: str
    namespace: str
    name: str = "*"
    reason: str = Field(min_length=1)
    ticket: str = Field(min_length=1)
    expires: dt.date

    def covers(self, rule: str, namespace: str, name: str) -> bool:
        return (
            self.rule in (rule, "*")
            and fnmatch.fnmatchcase(namespace, self.namespace)
            and fnmatch.fnmatchcase(name, self.name)
        )

    def active(self, today: dt.date) -> bool:
        return today <= self.expires


class PolicyFile(_Config):
    api_version: str = Field(default="meshwarden.io/v1alpha1")
    kind: str = Field(default="Policy")
    mesh: MeshSettings = Field(default_factory=MeshSettings)
    exempt_namespaces: list[str] = Field(default_factory=lambda: ["kube-system", "meshwarden"])
    allow_skip_defaults_annotation: bool = True
    max_request_bytes: int = Field(default=3 * 1024 * 1024, gt=0)
    rules: dict[str, RuleConfig] = Field(default_factory=dict)
    defaults: dict[str, DefaulterConfig] = Field(default_factory=dict)
    exceptions: list[Exception_] = Field(default_factory=list)

    @field_validator("api_version")
    @classmethod
    def _api_version(cls, v: str) -> str:
        if v != "meshwarden.io/v1alpha1":
            raise ValueError("apiVersion must be meshwarden.io/v1alpha1")
        return v

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v != "Policy":
            raise ValueError("kind must be Policy")
        return v


class PolicyError(ValueError):
    """The policy file is unusable; the message names every problem and where it is."""


@dataclass(frozen=True)
class Policy:
    """A validated policy: the file, each rule's and defaulter's typed parameters, and the
    content hash."""

    file: PolicyFile
    rule_params: Mapping[str, BaseModel]
    defaulter_params: Mapping[str, BaseModel]
    sha256: str
    source: str

    @property
    def mesh(self) -> MeshSettings:
        return self.file.mesh

    def rule_enabled(self, rule_id: str) -> bool:
        cfg = self.file.rules.get(rule_id)
        return cfg is None or cfg.enabled

    def rules_for(self, kind: str) -> tuple[RuleSpec, ...]:
        """The enabled rules that review `kind`: `istio-schema` first (the engine stops at
        its denials), then the others in registration order. Asked on every review; a Policy
        never changes, so the answer is kept per kind."""
        found = self._rules_by_kind.get(kind)
        if found is None:
            enabled = [s for rid, s in RULES.items() if kind in s.kinds and self.rule_enabled(rid)]
            found = tuple(sorted(enabled, key=lambda s: s.id != SCHEMA_RULE))  # a stable sort
            self._rules_by_kind[kind] = found
        return found

    @cached_property
    def _rules_by_kind(self) -> dict[str, tuple[RuleSpec, ...]]:
        return {}

    def defaulter_enabled(self, defaulter_id: str) -> bool:
        cfg = self.file.defaults.get(defaulter_id)
        return cfg is None or cfg.enabled

    def action(self, rule_id: str, point: EnforcementPoint) -> Action:
        cfg = self.file.rules.get(rule_id)
        action = cfg.action if cfg is not None else None
        if isinstance(action, PerPoint):
            action = getattr(action, point.value)
        return action if action is not None else RULES[rule_id].default_action

    def downgrade_existing(self, rule_id: str) -> bool:
        cfg = self.file.rules.get(rule_id)
        return cfg is None or cfg.downgrade_existing

    def exception_for(self, rule_id: str, namespace: str, name: str, today: dt.date) -> Exception_ | None:
        for exc in self.file.exceptions:
            if exc.active(today) and exc.covers(rule_id, namespace, name):
                return exc
        return None

    def is_exempt(self, namespace: str) -> bool:
        return namespace in self.file.exempt_namespaces


DEFAULT_POLICY_NAME = "policy.yaml"


def default_policy_text() -> bytes:
    return resources.files("policies").joinpath(DEFAULT_POLICY_NAME).read_bytes()


def load(path: str | Path | None = None) -> Policy:
    """Load and validate a policy file, or the embedded default when `path` is None."""
    if path is None:
        return parse(default_policy_text(), source="embedded policies/policy.yaml")
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise PolicyError(f"{p}: cannot read policy: {exc.strerror or exc}") from exc
    return parse(data, source=str(p))


def parse(data: bytes, *, source: str) -> Policy:
    load_all()
    try:
        doc = load_yaml(source, data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{source}: not UTF-8 text: {exc}") from exc
    except SourceError as exc:
        raise PolicyError(str(exc)) from exc
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise PolicyError(f"{source}: a policy is a mapping (apiVersion, kind, rules, ...)")
    try:
        file = PolicyFile.model_validate(doc)
    except ValidationError as exc:
        raise PolicyError(_describe(source, exc)) from exc

    problems: list[str] = []
    rule_params: dict[str, BaseModel] = {}
    for rule_id, spec in RULES.items():
        cfg = file.rules.get(rule_id)
        rule_params[rule_id] = _params(
            spec.params, cfg.params if cfg else {}, f"rules.{rule_id}.params", problems
        )
    for rule_id in file.rules:
        if rule_id not in RULES:
            problems.append(f"rules.{rule_id}: unknown rule id (known: {', '.join(sorted(RULES))})")
    defaulter_params: dict[str, BaseModel] = {}
    for did, dspec in DEFAULTERS.items():
        dcfg = file.defaults.get(did)
        defaulter_params[did] = _params(
            dspec.params, dcfg.params if dcfg else {}, f"defaults.{did}.params", problems
        )
    for did in defaulter_params.keys() & rule_params.keys():
        # A defaulter's companion rule (same id, e.g. a timeout above the maximum) reads
        # the defaulter's parameters.
        rule_params[did] = defaulter_params[did]
    for did in file.defaults:
        if did not in DEFAULTERS:
            problems.append(f"defaults.{did}: unknown defaulter id (known: {', '.join(sorted(DEFAULTERS))})")
    for i, exc_ in enumerate(file.exceptions):
        if exc_.rule != "*" and exc_.rule not in RULES:
            problems.append(f"exceptions[{i}].rule: unknown rule id {exc_.rule!r}")
    if problems:
        raise PolicyError(f"{source}: invalid policy:\n  " + "\n  ".join(problems))
    return Policy(
        file=file,
        rule_params=rule_params,
        defaulter_params=defaulter_params,
        sha256=hashlib.sha256(data).hexdigest(),
        source=source,
    )


def _params(model: type[BaseModel], data: dict[str, Any], where: str, problems: list[str]) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems.extend(_lines(where, exc))
        return model.model_construct()


def _describe(source: str, exc: ValidationError) -> str:
    return f"{source}: invalid policy:\n  " + "\n  ".join(_lines("", exc))


def _lines(prefix: str, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
        where = ".".join(p for p in (prefix, loc) if p)
        msg = str(err["msg"]).removeprefix("Value error, ")
        out.append(f"{where or '(top level)'}: {msg}")
    return out

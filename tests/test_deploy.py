"""The manifests in deploy/, as kustomize renders them: valid against the Kubernetes schemas
(offline), and safe — the webhooks can never lock the cluster, the pods are hardened and
highly available, and every identity holds exactly the permissions it uses."""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from webhook.certs import service_names
from webhook.cli.certs import command as certs_command
from webhook.cli.serve import command as serve_command
from webhook.cluster import kinds_in_scope
from webhook.objects import ISTIO_OPERATOR, MESH_CONFIG, NETWORKING_GROUP, NETWORKING_VERSIONS
from webhook.policy import load as load_policy
from webhook.registry import DEFAULTERS, RULES, load_all

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CERT_MANAGER = DEPLOY / "overlays" / "cert-manager"
# The oldest release the manifests support: matchConditions are GA from 1.30.
K8S_VERSIONS = ("1.30", "1.33")
NAMESPACE = "meshwarden"
SERVICE = "meshwarden"
PLURALS = {
    "ServiceEntry": "serviceentries",
    "DestinationRule": "destinationrules",
    "VirtualService": "virtualservices",
    "Gateway": "gateways",
    "Sidecar": "sidecars",
    "WorkloadEntry": "workloadentries",
}

Obj = dict[str, Any]


def _render(path: Path) -> list[Obj]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail(
            "kubectl is required to render deploy/ with kustomize and was not found on PATH "
            "(install the kubectl package, e.g. to /usr/bin/kubectl)"
        )
    result = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@pytest.fixture(scope="module")
def base() -> list[Obj]:
    return _render(DEPLOY)


@pytest.fixture(scope="module")
def cert_manager() -> list[Obj]:
    return _render(CERT_MANAGER)


@pytest.fixture(params=["bootstrap", "cert-manager"], scope="module")
def rendered(request: pytest.FixtureRequest, base: list[Obj], cert_manager: list[Obj]) -> list[Obj]:
    return base if request.param == "bootstrap" else cert_manager


def _one(objs: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _all(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def _pod_specs(objs: list[Obj]) -> Iterator[tuple[str, Obj]]:
    for o in objs:
        name = f"{o['kind']}/{o['metadata']['name']}"
        if o["kind"] in ("Deployment", "Job"):
            yield name, o["spec"]["template"]["spec"]
        elif o["kind"] == "CronJob":
            yield name, o["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def _selects(selector: Obj | None, labels: dict[str, str]) -> bool:
    """A Kubernetes LabelSelector applied to a label set (absent selector = everything)."""
    if not selector:
        return True
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _ns_labels(name: str) -> dict[str, str]:
    # The API server sets this label on every namespace.
    return {"kubernetes.io/metadata.name": name}


def _webhooks(objs: list[Obj]) -> Iterator[tuple[str, Obj]]:
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        for cfg in _all(objs, kind):
            for hook in cfg["webhooks"]:
                yield kind, hook


def _serve_params(args: list[str]) -> dict[str, Any]:
    return serve_command.make_context("serve", list(args)).params


def _server(objs: list[Obj]) -> Obj:
    return _one(objs, "Deployment", "meshwarden")


def _server_container(objs: list[Obj]) -> Obj:
    return _server(objs)["spec"]["template"]["spec"]["containers"][0]


# --- rendering and schemas -------------------------------------------------------------


def test_kustomize_renders_both_variants(base: list[Obj], cert_manager: list[Obj]) -> None:
    assert {o["kind"] for o in base} >= {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "Role",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ConfigMap",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "Job",
        "CronJob",
    }
    assert {"Certificate", "Issuer"} <= {o["kind"] for o in cert_manager}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_objects_validate_against_the_kubernetes_schemas(rendered: list[Obj], version: str) -> None:
    unschemaed = set()
    for obj in rendered:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            unschemaed.add(obj["apiVersion"].split("/")[0])
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} at {list(exc.path)}: {exc.message}")
    # Only cert-manager's custom resources have no built-in schema.
    assert unschemaed <= {"cert-manager.io"}


def test_strict_validation_catches_unknown_fields(base: list[Obj]) -> None:
    broken = copy.deepcopy(_server(base))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)


def test_namespaced_objects_live_in_meshwarden_except_the_root_namespace_role(rendered: list[Obj]) -> None:
    root = load_policy().mesh.root_namespace
    for obj in rendered:
        ns = obj["metadata"].get("namespace")
        if obj["kind"] in ("Role", "RoleBinding") and ns == root:
            continue
        if obj["kind"] in (
            "Namespace",
            "ClusterRole",
            "ClusterRoleBinding",
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
        ):
            assert ns is None
        else:
            assert ns == NAMESPACE, f"{obj['kind']}/{obj['metadata']['name']} in {ns}"
    assert _one(rendered, "Namespace")["metadata"]["name"] == NAMESPACE


def test_one_image_for_every_container(rendered: list[Obj]) -> None:
    from webhook import __version__

    images = {c["image"] for _, spec in _pod_specs(rendered) for c in spec["containers"]}
    assert images == {f"meshwarden:{__version__}"}


# --- the webhook configurations --------------------------------------------------------


def test_every_webhook_is_side_effect_free_v1_and_equivalent(rendered: list[Obj]) -> None:
    hooks = list(_webhooks(rendered))
    assert len(hooks) >= 3
    for kind, hook in hooks:
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["sideEffects"] == "None"
        assert hook["matchPolicy"] == "Equivalent"
        assert hook["failurePolicy"] in ("Fail", "Ignore"), "set deliberately, never left to the default"
        assert 1 <= hook["timeoutSeconds"] <= 10
        if kind == "MutatingWebhookConfiguration":
            assert hook["reinvocationPolicy"] == "IfNeeded"


def test_webhooks_call_the_service_on_the_right_path(rendered: list[Obj]) -> None:
    service = _one(rendered, "Service", SERVICE)
    port = service["spec"]["ports"][0]
    assert port["port"] == 443
    for kind, hook in _webhooks(rendered):
        target = hook["clientConfig"]["service"]
        assert (target["namespace"], target["name"], target["port"]) == (NAMESPACE, SERVICE, 443)
        assert target["path"] == ("/mutate" if kind.startswith("Mutating") else "/validate")
        assert "url" not in hook["clientConfig"]


def test_webhooks_never_see_kube_system_or_meshwarden(rendered: list[Obj]) -> None:
    exempt = set(load_policy().file.exempt_namespaces)
    assert {"kube-system", NAMESPACE} <= exempt
    for _, hook in _webhooks(rendered):
        for ns in exempt:
            assert not _selects(hook.get("namespaceSelector"), _ns_labels(ns)), f"{hook['name']} selects {ns}"


def test_selector_evaluation_is_not_vacuous() -> None:
    selector = {
        "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["a"]}]
    }
    assert _selects(selector, _ns_labels("b"))
    assert not _selects(selector, _ns_labels("a"))
    assert not _selects({"matchLabels": {"x": "y"}}, _ns_labels("b"))


def test_validating_webhook_covers_every_kind_the_rules_review(rendered: list[Obj]) -> None:
    load_all()
    cfg = _one(rendered, "ValidatingWebhookConfiguration")
    covered: dict[tuple[str, str, str], set[str]] = {}
    for hook in cfg["webhooks"]:
        assert _selects(hook.get("namespaceSelector"), _ns_labels(load_policy().mesh.root_namespace))
        for r in hook["rules"]:
            for group in r["apiGroups"]:
                for version in r["apiVersions"]:
                    for resource in r["resources"]:
                        covered.setdefault((group, version, resource), set()).update(r["operations"])
    kinds = set().union(*(spec.kinds for spec in RULES.values()))
    for kind in kinds & PLURALS.keys():
        for version in NETWORKING_VERSIONS:
            ops = covered.get((NETWORKING_GROUP, version, PLURALS[kind]), set())
            # DELETE: removing a DestinationRule can leave an external port without TLS.
            assert ops == {"CREATE", "UPDATE", "DELETE"}, f"{kind} {version}: {ops}"
    if ISTIO_OPERATOR in kinds:
        assert {"CREATE", "UPDATE"} <= covered[("install.istio.io", "v1alpha1", "istiooperators")]
    if MESH_CONFIG in kinds:
        assert {"CREATE", "UPDATE"} <= covered[("", "v1", "configmaps")]


def test_mesh_config_webhook_is_narrowed_to_the_root_namespace_and_names(rendered: list[Obj]) -> None:
    root = load_policy().mesh.root_namespace
    cfg = _one(rendered, "ValidatingWebhookConfiguration")
    hooks = [h for h in cfg["webhooks"] if any("configmaps" in r["resources"] for r in h["rules"])]
    assert len(hooks) == 1
    hook = hooks[0]
    assert all(r["resources"] == ["configmaps"] for r in hook["rules"]), (
        "ConfigMaps in a webhook of their own"
    )
    assert _selects(hook["namespaceSelector"], _ns_labels(root))
    for other in ("default", "shop", "kube-system", NAMESPACE):
        assert not _selects(hook["namespaceSelector"], _ns_labels(other))
    (condition,) = hook["matchConditions"]
    expression = " ".join(condition["expression"].split())
    assert "object.metadata.name == 'istio'" in expression
    assert "object.metadata.name.startsWith('istio-')" in expression
    assert "'mesh' in object.data" in expression


def test_mutating_webhook_covers_exactly_the_defaulted_kinds(rendered: list[Obj]) -> None:
    load_all()
    cfg = _one(rendered, "MutatingWebhookConfiguration")
    defaulted = {PLURALS[k] for spec in DEFAULTERS.values() for k in spec.kinds}
    resources: set[str] = set()
    for hook in cfg["webhooks"]:
        for r in hook["rules"]:
            assert r["apiGroups"] == [NETWORKING_GROUP]
            assert set(r["apiVersions"]) == NETWORKING_VERSIONS
            assert set(r["operations"]) == {"CREATE", "UPDATE"}
            resources.update(r["resources"])
    assert resources == defaulted


def test_failure_policy_fail_only_where_the_scope_is_istio_config(rendered: list[Obj]) -> None:
    # Fail is safe only because nothing a workload or the control plane needs to start is
    # matched: the rules name Istio config objects and ConfigMaps only.
    allowed = {NETWORKING_GROUP, "install.istio.io", ""}
    for _, hook in _webhooks(rendered):
        for r in hook["rules"]:
            assert set(r["apiGroups"]) <= allowed
            assert "*" not in r["resources"]
            if "" in r["apiGroups"]:
                assert r["resources"] == ["configmaps"] and hook.get("matchConditions")


# --- the server Deployment -------------------------------------------------------------


def test_two_replicas_spread_across_nodes(rendered: list[Obj]) -> None:
    deployment = _server(rendered)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = deployment["spec"]["template"]
    spreads = pod["spec"]["topologySpreadConstraints"]
    by_node = [s for s in spreads if s["topologyKey"] == "kubernetes.io/hostname"]
    assert by_node and by_node[0]["whenUnsatisfiable"] == "DoNotSchedule" and by_node[0]["maxSkew"] == 1
    assert _selects(by_node[0]["labelSelector"], pod["metadata"]["labels"])


def test_probes_on_readyz_and_healthz_over_https(rendered: list[Obj]) -> None:
    container = _server_container(rendered)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    params = _serve_params(container["args"])
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path and get["scheme"] == "HTTPS"
        assert ports.get(get["port"], get["port"]) == params["port"] == 8443


def test_server_arguments_are_valid_serve_options(rendered: list[Obj]) -> None:
    container = _server_container(rendered)
    params = _serve_params(container["args"])
    assert params["host"] == "0.0.0.0"
    spec = _server(rendered)["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    # The cert dir is the mounted Secret, as a directory (a subPath mount never updates).
    tls = mounts[str(params["cert_dir"])]
    assert tls["readOnly"] and "subPath" not in tls
    assert volumes[tls["name"]]["secret"]["secretName"] == "meshwarden-tls"
    # The policy is the generated ConfigMap's key, mounted as a directory.
    policy = Path(params["policy_path"])
    pmount = mounts[str(policy.parent)]
    assert "subPath" not in pmount
    cm_name = volumes[pmount["name"]]["configMap"]["name"]
    assert policy.name in _one(rendered, "ConfigMap", cm_name)["data"]
    # The audit log is written to a writable volume (the root filesystem is read-only).
    audit = Path(params["audit_log"])
    (volume,) = [volumes[m["name"]] for path, m in mounts.items() if audit.is_relative_to(path)]
    # The live file and its rotations fit the volume: past its sizeLimit the pod is evicted.
    limit = _quantity(volume["emptyDir"]["sizeLimit"])
    assert (params["audit_backups"] + 1) * params["audit_max_bytes"] < limit
    assert params["audit_max_bytes"] > 0 and params["audit_stdout"]


def _quantity(text: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(text[: -len(suffix)]) * factor
    return int(text)


def test_grace_period_covers_shutdown_delay_and_drain(rendered: list[Obj]) -> None:
    params = _serve_params(_server_container(rendered)["args"])
    grace = _server(rendered)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert params["shutdown_delay"] > 0
    assert grace >= params["shutdown_delay"] + 10


def test_resources_requested_and_limited(rendered: list[Obj]) -> None:
    for name, spec in _pod_specs(rendered):
        for c in spec["containers"]:
            res = c["resources"]
            assert {"cpu", "memory"} <= res["requests"].keys(), name
            assert "memory" in res["limits"], name


def test_every_pod_is_hardened(rendered: list[Obj]) -> None:
    specs = list(_pod_specs(rendered))
    assert specs
    for name, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] != 0, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), name
        for c in [*spec["containers"], *spec.get("initContainers", [])]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in sc["capabilities"], name
            assert not sc.get("privileged"), name
            assert sc.get("runAsUser", pod["runAsUser"]) != 0, name


def test_namespace_enforces_the_restricted_pod_security_level(rendered: list[Obj]) -> None:
    labels = _one(rendered, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_service_reaches_the_server_port(rendered: list[Obj]) -> None:
    service = _one(rendered, "Service", SERVICE)
    pod = _server(rendered)["spec"]["template"]
    assert _selects({"matchLabels": service["spec"]["selector"]}, pod["metadata"]["labels"])
    (port,) = service["spec"]["ports"]
    ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    assert ports.get(port["targetPort"], port["targetPort"]) == 8443


def test_disruption_budget_keeps_one_replica(rendered: list[Obj]) -> None:
    pdb = _one(rendered, "PodDisruptionBudget")
    deployment = _server(rendered)
    assert _selects(pdb["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])
    assert pdb["spec"]["minAvailable"] == 1 < deployment["spec"]["replicas"]


def test_policy_configmap_is_policies_policy_yaml(rendered: list[Obj]) -> None:
    source = (ROOT / "policies" / "policy.yaml").read_text()
    cms = [c for c in _all(rendered, "ConfigMap") if c["metadata"]["name"].startswith("meshwarden-policy")]
    assert len(cms) == 1
    assert cms[0]["data"]["policy.yaml"] == source, (
        "deploy/base/policy.yaml differs from policies/policy.yaml: "
        "cp policies/policy.yaml deploy/base/policy.yaml"
    )


# --- RBAC ------------------------------------------------------------------------------


def _grants(objs: list[Obj], sa: str) -> set[tuple[str | None, str, str, str, tuple[str, ...]]]:
    """(namespace or None for cluster-wide, group, resource, verb, resourceNames) granted to
    the ServiceAccount `sa` in meshwarden's namespace."""
    out: set[tuple[str | None, str, str, str, tuple[str, ...]]] = set()
    for binding in [*_all(objs, "RoleBinding"), *_all(objs, "ClusterRoleBinding")]:
        if not any(
            s["kind"] == "ServiceAccount" and s["name"] == sa and s["namespace"] == NAMESPACE
            for s in binding["subjects"]
        ):
            continue
        ref = binding["roleRef"]
        role_ns = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        role = _one([o for o in objs if o["metadata"].get("namespace") == role_ns], ref["kind"], ref["name"])
        scope = binding["metadata"].get("namespace")
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        out.add((scope, group, resource, verb, tuple(rule.get("resourceNames", ()))))
    return out


def test_no_wildcards_in_any_role(rendered: list[Obj]) -> None:
    for role in [*_all(rendered, "Role"), *_all(rendered, "ClusterRole")]:
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], f"{role['metadata']['name']}: {key}"


def test_server_reads_exactly_the_inventory(rendered: list[Obj]) -> None:
    root = load_policy().mesh.root_namespace
    expected = {
        (k.namespace, k.group, k.plural, verb, ())
        for k in kinds_in_scope(root)
        for verb in ("get", "list", "watch")
    }
    assert _grants(rendered, "meshwarden") == expected


def test_certificate_job_writes_one_secret_and_patches_two_webhook_configurations(base: list[Obj]) -> None:
    vwc = _one(base, "ValidatingWebhookConfiguration")["metadata"]["name"]
    mwc = _one(base, "MutatingWebhookConfiguration")["metadata"]["name"]
    assert vwc == mwc
    assert _grants(base, "meshwarden-certs") == {
        (NAMESPACE, "", "secrets", "get", ("meshwarden-tls",)),
        (NAMESPACE, "", "secrets", "update", ("meshwarden-tls",)),
        # `create` cannot be limited by name; it stays in meshwarden's namespace.
        (NAMESPACE, "", "secrets", "create", ()),
        (None, "admissionregistration.k8s.io", "validatingwebhookconfigurations", "get", (vwc,)),
        (None, "admissionregistration.k8s.io", "validatingwebhookconfigurations", "patch", (vwc,)),
        (None, "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "get", (mwc,)),
        (None, "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "patch", (mwc,)),
    }


# --- certificates ----------------------------------------------------------------------


def test_certificate_jobs_run_meshwarden_certs_for_this_deployment(base: list[Obj]) -> None:
    jobs = [(n, s) for n, s in _pod_specs(base) if not n.startswith("Deployment/")]
    assert {n for n, _ in jobs} == {"Job/meshwarden-certs", "CronJob/meshwarden-certs"}
    vwc = _one(base, "ValidatingWebhookConfiguration")["metadata"]["name"]
    for name, spec in jobs:
        assert spec["serviceAccountName"] == "meshwarden-certs", name
        (container,) = spec["containers"]
        assert container["command"] == ["meshwarden", "certs"]
        params = certs_command.make_context("certs", list(container["args"])).params
        assert params["namespace"] == NAMESPACE and params["service"] == SERVICE
        assert params["secret"] == "meshwarden-tls"
        assert list(params["webhook_config"]) == [vwc]


def test_cert_manager_replaces_the_bootstrap(cert_manager: list[Obj]) -> None:
    assert not _all(cert_manager, "Job") and not _all(cert_manager, "CronJob")
    assert not [o for o in cert_manager if o["metadata"]["name"] == "meshwarden-certs"]
    tls_secret = "meshwarden-tls"
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        ref = _one(cert_manager, kind)["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        ns, name = ref.split("/")
        cert = _one([c for c in cert_manager if c["metadata"].get("namespace") == ns], "Certificate", name)
        assert cert["spec"]["secretName"] == tls_secret
        assert set(service_names(SERVICE, NAMESPACE)) <= set(cert["spec"]["dnsNames"])
        issuer = _one(cert_manager, cert["spec"]["issuerRef"]["kind"], cert["spec"]["issuerRef"]["name"])
        ca_secret = issuer["spec"]["ca"]["secretName"]
        ca_cert = [c for c in _all(cert_manager, "Certificate") if c["spec"]["secretName"] == ca_secret]
        assert len(ca_cert) == 1 and ca_cert[0]["spec"]["isCA"] is True


def test_deployment_mounts_the_secret_either_variant_provides(
    base: list[Obj], cert_manager: list[Obj]
) -> None:
    assert _server(base)["spec"] == _server(cert_manager)["spec"]

"""deploy/k8s: every manifest validated offline against KubeRay's own CRD schemas (the
files vendored in deploy/k8s/schemas, v1.7.0), plus what a schema cannot say: GCS fault
tolerance on Redis with its password from the Secret, the autoscaler on, one image, the
reconnect timeout and the shared memory on every Ray container, and a ``serveConfigV2``
that Ray Serve accepts and whose import path builds fleetlearn's app.

A broken copy of each manifest must fail: that proves the validator bites.
"""

from __future__ import annotations

import copy
import hashlib
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml
from ray._common.utils import import_attr
from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
from ray.serve.schema import ServeDeploySchema

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = K8S / "schemas"
CRDS = {"RayCluster": "ray.io_rayclusters.yaml", "RayService": "ray.io_rayservices.yaml"}
IMAGE = "fleetlearn:latest"
RECONNECT = ("RAY_gcs_rpc_server_reconnect_timeout_s", "180")
SECRET = "fleetlearn-secrets"
NAME_LIMITS = {"RayCluster": 53, "RayService": 47}  # KubeRay's utils/constant.go
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader) if doc]


def _closed(schema: Any) -> Any:
    """``schema`` with unknown fields refused wherever the CRD declares its properties, as
    ``kubectl apply`` (strict field validation) does, except under
    ``x-kubernetes-preserve-unknown-fields``."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _closed(value) for key, value in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@cache
def _validator(kind: str) -> jsonschema.Draft7Validator:
    (crd,) = _load(SCHEMAS / CRDS[kind])
    assert crd["spec"]["names"]["kind"] == kind
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = _closed(version["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _errors(doc: dict[str, Any]) -> list[str]:
    """Every schema error of one ray.io/v1 document, as ``path: message``."""
    assert doc["apiVersion"] == "ray.io/v1", doc["apiVersion"]
    found = _validator(doc["kind"]).iter_errors(doc)
    return sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in found)


def _kustomization() -> dict[str, Any]:
    (doc,) = _load(K8S / "kustomization.yaml")
    return doc


def _manifests() -> dict[str, list[dict[str, Any]]]:
    return {name: _load(K8S / name) for name in _kustomization()["resources"]}


def _ray_docs() -> list[dict[str, Any]]:
    return [d for docs in _manifests().values() for d in docs if d["kind"] in CRDS]


def _doc(kind: str) -> dict[str, Any]:
    (doc,) = [d for d in _ray_docs() if d["kind"] == kind]
    return doc


def _cluster_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["rayClusterConfig"] if doc["kind"] == "RayService" else doc["spec"]


def _groups(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(group name, group spec)`` of the head and every worker group."""
    return [("head", spec["headGroupSpec"])] + [
        (g["groupName"], g) for g in spec["workerGroupSpecs"]]


def _containers(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{group}/{c['name']}", c) for group, g in _groups(spec)
            for c in g["template"]["spec"]["containers"]]


def _serve_config() -> dict[str, Any]:
    return yaml.safe_load(_doc("RayService")["spec"]["serveConfigV2"])


ALL_RAY = pytest.mark.parametrize("kind", sorted(CRDS))


# ------------------------------------------------------------------ schemas


#: Every vendored file and the path it was copied from in KubeRay's repository.
VENDORED = {**{name: f"helm-chart/kuberay-operator/crds/{name}" for name in CRDS.values()},
            "kuberay-operator.values.yaml": "helm-chart/kuberay-operator/values.yaml",
            "wait-for-tls-ip-san.sh": "ray-operator/controllers/ray/common/pod.go"}


def test_the_vendored_files_are_the_ones_recorded_with_their_version() -> None:
    record = (SCHEMAS / "README.md").read_text()
    for name, source in VENDORED.items():
        digest = hashlib.sha256((SCHEMAS / name).read_bytes()).hexdigest()
        (row,) = [line for line in record.splitlines() if line.startswith(f"| {name} |")]
        assert "| v1.7.0 |" in row
        assert f"`{source}`" in row
        assert row.rstrip(" |").endswith(digest), f"{name}: sha256 {digest} not recorded"
    assert {p.name for p in SCHEMAS.iterdir()} == {*VENDORED, "README.md"}


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(_kustomization()["resources"]) == on_disk - {"secret.example.yaml"}
    assert _kustomization()["namespace"] == "fleetlearn"


@ALL_RAY
def test_every_ray_manifest_validates_against_kuberays_schema(kind: str) -> None:
    assert _errors(_doc(kind)) == []


BREAKAGES = {
    "a misspelt field": (
        lambda s: s.__setitem__("enableInTreeAutoscalling", True), "enableInTreeAutoscalling"),
    "a count as a word": (
        lambda s: s["workerGroupSpecs"][0].__setitem__("maxReplicas", "six"), "maxReplicas"),
    "an unknown GCS backend": (
        lambda s: s["gcsFaultToleranceOptions"].__setitem__("backend", "etcd"), "backend"),
    "a container with no name": (
        lambda s: s["headGroupSpec"]["template"]["spec"]["containers"][0].pop("name"),
        "'name' is a required property"),
    "an unknown container field": (
        lambda s: s["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
        .__setitem__("enviroment", []), "enviroment"),
    "no head": (lambda s: s.pop("headGroupSpec"), "'headGroupSpec' is a required property"),
}


@ALL_RAY
@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_broken_copy_fails_validation(kind: str, breakage: str) -> None:
    broken = copy.deepcopy(_doc(kind))
    damage, expected = BREAKAGES[breakage]
    damage(_cluster_spec(broken))
    errors = _errors(broken)
    assert errors, f"{breakage} in the {kind} passed validation"
    assert any(expected in e for e in errors), errors


def test_a_rayservice_without_its_cluster_fails_validation() -> None:
    broken = copy.deepcopy(_doc("RayService"))
    broken["spec"]["serveConfigV2"] = {"applications": []}  # a mapping, not YAML text
    assert any(e.startswith("spec.serveConfigV2:") for e in _errors(broken))


# ------------------------------------- what the schema cannot say (the operator's rules)


@ALL_RAY
def test_names_are_what_kuberay_accepts(kind: str) -> None:
    name = _doc(kind)["metadata"]["name"]
    assert DNS1035.match(name), name
    assert len(name) <= NAME_LIMITS[kind]
    groups = [g for g, _ in _groups(_cluster_spec(_doc(kind)))]
    assert len(set(groups)) == len(groups)
    assert all(DNS1035.match(g) for g in groups), groups


@ALL_RAY
def test_gcs_fault_tolerance_keeps_the_head_state_in_redis_with_the_secret_password(
        kind: str) -> None:
    spec = _cluster_spec(_doc(kind))
    ft = spec["gcsFaultToleranceOptions"]
    assert ft.get("backend", "redis") == "redis"
    host, _, port = ft["redisAddress"].rpartition(":")
    assert host
    assert port.isdigit()
    ref = ft["redisPassword"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == SECRET
    assert ref["key"] in _example_secret_keys()
    assert "value" not in ft["redisPassword"]  # never a password in the manifest
    # What KubeRay refuses next to gcsFaultToleranceOptions (validation.go).
    head = spec["headGroupSpec"]
    assert "redis-password" not in head["rayStartParams"]
    for _, container in _containers(spec):
        names = {e["name"] for e in container.get("env", [])}
        assert not names & {"RAY_REDIS_ADDRESS", "REDIS_PASSWORD"}
    assert "ray.io/ft-enabled" not in _doc(kind)["metadata"].get("annotations", {})


@ALL_RAY
def test_ray_token_authentication_is_on_and_no_container_turns_it_off(kind: str) -> None:
    spec = _cluster_spec(_doc(kind))
    assert spec["authOptions"] == {"mode": "token"}
    for name, container in _containers(spec):
        env = {e["name"]: e for e in container.get("env", [])}
        # KubeRay sets both from its own Secret; a value here would override it.
        assert not env.keys() & {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"}, name
    for env in spec.get("autoscalerOptions", {}).get("env", []):
        assert env["name"] != "RAY_AUTH_MODE"


#: What KubeRay's operator sets itself when ``tlsOptions.enabled`` (SetContainerTLSConfig
#: in pod.go) and refuses to find set by hand (validateTLSOptions in validation.go).
TLS_ENV = {"RAY_USE_TLS", "RAY_TLS_SERVER_CERT", "RAY_TLS_SERVER_KEY", "RAY_TLS_CA_CERT"}
TLS_VOLUME, TLS_PATH = "ray-tls", "/etc/ray/tls"


def _tls_conflicts(spec: dict[str, Any]) -> list[str]:
    """What in a cluster spec the operator refuses next to ``tlsOptions`` (or what would
    override what it injects): TLS variables, the ``ray-tls`` volume or its mount path."""
    found = []
    for group, g in _groups(spec):
        pod = g["template"]["spec"]
        if any(v["name"] == TLS_VOLUME for v in pod.get("volumes", [])):
            found.append(f"{group}: a volume named {TLS_VOLUME}")
        for c in pod["containers"] + pod.get("initContainers", []):
            names = {e["name"] for e in c.get("env", [])} & TLS_ENV
            found += [f"{group}/{c['name']}: {n}" for n in sorted(names)]
            found += [f"{group}/{c['name']}: a mount at {m['mountPath']}"
                      for m in c.get("volumeMounts", [])
                      if m["name"] == TLS_VOLUME or m["mountPath"] == TLS_PATH]
    scaler = spec.get("autoscalerOptions", {})
    found += [f"autoscaler: {e['name']}" for e in scaler.get("env", []) if e["name"] in TLS_ENV]
    found += [f"autoscaler: a mount at {m['mountPath']}" for m in scaler.get("volumeMounts", [])
              if m["name"] == TLS_VOLUME or m["mountPath"] == TLS_PATH]
    return found


@ALL_RAY
def test_ray_mutual_tls_is_on_and_left_to_the_operator(kind: str) -> None:
    spec = _cluster_spec(_doc(kind))
    assert spec["tlsOptions"] == {"enabled": True}
    assert _tls_conflicts(spec) == []


TLS_BREAKAGES = {
    "RAY_USE_TLS on a worker": (
        lambda s: s["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["env"]
        .append({"name": "RAY_USE_TLS", "value": "0"}), "RAY_USE_TLS"),
    "the ray-tls volume on the head": (
        lambda s: s["headGroupSpec"]["template"]["spec"]["volumes"]
        .append({"name": "ray-tls", "emptyDir": {}}), "a volume named ray-tls"),
    "a mount at /etc/ray/tls": (
        lambda s: s["headGroupSpec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        .append({"name": "shm", "mountPath": "/etc/ray/tls"}), "a mount at /etc/ray/tls"),
    "a CA in the autoscaler's env": (
        lambda s: s["autoscalerOptions"]["env"].append(
            {"name": "RAY_TLS_CA_CERT", "value": "/ca.crt"}), "autoscaler: RAY_TLS_CA_CERT"),
}


@ALL_RAY
@pytest.mark.parametrize("breakage", sorted(TLS_BREAKAGES))
def test_a_copy_that_sets_tls_by_hand_is_caught(kind: str, breakage: str) -> None:
    broken = copy.deepcopy(_doc(kind))
    damage, expected = TLS_BREAKAGES[breakage]
    damage(_cluster_spec(broken))
    assert any(expected in c for c in _tls_conflicts(_cluster_spec(broken)))


def test_the_operator_values_turn_on_mtls_and_keep_the_charts_other_gates() -> None:
    (ours,) = _load(K8S / "helm" / "kuberay-operator.values.yaml")
    (chart,) = _load(SCHEMAS / "kuberay-operator.values.yaml")
    assert set(ours) == {"featureGates"}  # nothing else of the chart's defaults changed
    expected = [dict(g, enabled=True) if g["name"] == "RayClusterMTLS" else g
                for g in chart["featureGates"]]
    assert ours["featureGates"] == expected


def _example_secret_keys() -> set[str]:
    (secret,) = _load(K8S / "secret.example.yaml")
    assert (secret["kind"], secret["metadata"]["name"]) == ("Secret", SECRET)
    return set(secret["stringData"])


@ALL_RAY
def test_every_secret_reference_names_a_key_of_the_example_secret(kind: str) -> None:
    refs = list(_secret_refs(_doc(kind)))
    assert refs
    assert {ref["name"] for ref in refs} == {SECRET}
    assert {ref["key"] for ref in refs} <= _example_secret_keys()


def _secret_refs(node: Any) -> Any:
    """Every ``secretKeyRef`` under ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "secretKeyRef":
                yield value
            else:
                yield from _secret_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _secret_refs(item)


@ALL_RAY
def test_the_autoscaler_is_on_and_every_worker_group_can_grow(kind: str) -> None:
    spec = _cluster_spec(_doc(kind))
    assert spec["enableInTreeAutoscaling"] is True
    for group in spec["workerGroupSpecs"]:
        low, start, high = group["minReplicas"], group["replicas"], group["maxReplicas"]
        assert 0 <= low <= start <= high, group["groupName"]
        assert high > low, f"{group['groupName']}: nothing to autoscale"


@ALL_RAY
def test_every_container_runs_the_fleetlearn_image(kind: str) -> None:
    spec = _cluster_spec(_doc(kind))
    images = {name: c["image"] for name, c in _containers(spec)}
    assert set(images.values()) == {IMAGE}, images
    # The autoscaler sidecar defaults to the head's image: not overridden elsewhere.
    assert "image" not in spec.get("autoscalerOptions", {})
    # kustomize's `images:` rewrites exactly this name.
    assert {i["name"] for i in _kustomization()["images"]} == {IMAGE.split(":")[0]}


@ALL_RAY
def test_every_container_has_the_reconnect_timeout_and_the_shared_settings(kind: str) -> None:
    spec = _cluster_spec(_doc(kind))
    envs = {name: c.get("env", []) for name, c in _containers(spec)}
    envs["autoscaler"] = spec["autoscalerOptions"]["env"]
    for name, env in envs.items():
        values = {e["name"]: e.get("value") for e in env}
        assert values.get(RECONNECT[0]) == RECONNECT[1], f"{name}: {RECONNECT[0]} missing"
    for name, c in _containers(spec):
        values = {e["name"]: e for e in c["env"]}
        url = values["FLEETLEARN_REGISTRY_URL"]["valueFrom"]["secretKeyRef"]
        assert (url["name"], url["key"]) == (SECRET, "registry-url"), name
        assert values["FLEETLEARN_ARTIFACTS"]["value"] == "/data/artifacts"


@ALL_RAY
def test_every_ray_container_has_shared_memory_and_the_shared_artifacts(kind: str) -> None:
    spec = _cluster_spec(_doc(kind))
    (pvc,) = _load(K8S / "artifacts-pvc.yaml")
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]
    for group, g in _groups(spec):
        pod = g["template"]["spec"]
        assert pod["securityContext"]["fsGroup"] == 1000, group  # deploy/Dockerfile's user
        volumes = {v["name"]: v for v in pod["volumes"]}
        for c in pod["containers"]:
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            shm = volumes[mounts["/dev/shm"]]
            assert shm["emptyDir"]["medium"] == "Memory", f"{group}/{c['name']}"
            artifacts = volumes[mounts["/data/artifacts"]]
            assert artifacts["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
            assert c["resources"]["limits"]["memory"]
            assert c["resources"]["limits"]["cpu"]


def test_ray_versions_agree_with_the_ray_fleetlearn_installs() -> None:
    versions = {_cluster_spec(d)["rayVersion"] for d in _ray_docs()}
    assert len(versions) == 1, versions
    (version,) = versions
    assert version.split(".")[:2] == ray.__version__.split(".")[:2], (
        f"rayVersion {version} but fleetlearn runs Ray {ray.__version__}")


# ---------------------------------------------------------------- serveConfigV2


def test_serve_config_is_one_ray_serve_accepts() -> None:
    config = ServeDeploySchema.model_validate(_serve_config())
    assert config.proxy_location.value == "EveryNode"
    (app,) = config.applications
    assert (app.name, app.route_prefix) == ("fleetlearn", "/")


def test_the_serve_import_path_builds_fleetlearns_app_from_the_config_args() -> None:
    (app,) = _serve_config()["applications"]
    built = call_user_app_builder_with_args_if_necessary(import_attr(app["import_path"]),
                                                         app["args"])
    deployment = built._bound_deployment
    scaling = deployment._deployment_config.autoscaling_config
    assert (scaling.min_replicas, scaling.max_replicas) == (app["args"]["replicas"],
                                                            app["args"]["max_replicas"])
    assert deployment.init_args[0]["host"] == "0.0.0.0"  # off loopback: keys required


def test_serve_listens_where_the_head_publishes_it() -> None:
    config = _serve_config()
    (app,) = config["applications"]
    port = config["http_options"]["port"]
    assert app["args"]["port"] == port
    for name, c in _containers(_cluster_spec(_doc("RayService"))):
        serve_ports = [p["containerPort"] for p in c["ports"] if p["name"] == "serve"]
        assert serve_ports == [port], name

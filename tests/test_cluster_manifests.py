"""The cluster/ folder: KubeRay manifests, Ray cluster launcher configs and the Dockerfile.

KubeRay objects are validated against the KubeRay CRDs' OpenAPI schemas, made strict (an
unknown field is an error, as `kubectl apply --validate=strict` would make it); the plain
Kubernetes objects and every pod template against Kubernetes' own schemas
(kubernetes-validate, offline, strict); the launcher configs against the schema shipped in
the ray package. Then the rules the manifests promise: non-root containers with requests and
limits, GPU workers that tolerate GPU taints, no dashboard outside the cluster, token auth
never off, a RayJob that resumes the same run on the shared volume.

The CRDs are not part of the repository: they are read from $GRIDRUN_KUBERAY_CRDS, else from
shared/kuberay-crds beside the repository; without either, the CRD tests skip.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shlex
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
KUBERAY = CLUSTER / "kuberay"
MOUNT = "/mnt/gridrun"
K8S_VERSION = "1.30"  # the oldest Kubernetes the manifests are meant for
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_all(path: Path) -> list[dict]:
    return [d for d in yaml.load_all(path.read_text(), Loader=Loader) if d]


def _docs() -> list[tuple[str, dict]]:
    return [(p.name, d) for p in sorted(KUBERAY.glob("*.yaml")) for d in _load_all(p)]


def _one(kind: str) -> dict:
    found = [d for _, d in _docs() if d.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind} in cluster/kuberay, found {len(found)}"
    return found[0]


def _pin(name: str) -> str:
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.split("==")[0].strip().lower() == name:
            return line.split("==")[1].strip()
    raise AssertionError(f"{name} is not pinned in constraints.txt")


def _cluster_specs() -> list[tuple[str, dict]]:
    """(label, RayCluster spec) for the RayCluster and the RayJob's own cluster."""
    out = []
    for _, d in _docs():
        if d.get("kind") == "RayCluster":
            out.append((f"RayCluster {d['metadata']['name']}", d["spec"]))
        elif d.get("kind") == "RayJob":
            out.append((f"RayJob {d['metadata']['name']}", d["spec"]["rayClusterSpec"]))
    return out


def _pod_templates() -> list[tuple[str, dict]]:
    """(label, PodTemplateSpec) of every pod the Ray objects make: heads, workers, submitter."""
    out = []
    for label, spec in _cluster_specs():
        out.append((f"{label} head", spec["headGroupSpec"]["template"]))
        for g in spec.get("workerGroupSpecs", []):
            out.append((f"{label} worker group {g['groupName']}", g["template"]))
    for _, d in _docs():
        if d.get("kind") == "RayJob" and "submitterPodTemplate" in d["spec"]:
            out.append((f"RayJob {d['metadata']['name']} submitter",
                        d["spec"]["submitterPodTemplate"]))
    return out


def _containers(template: dict) -> list[dict]:
    spec = template["spec"]
    return spec.get("initContainers", []) + spec["containers"]


# --- KubeRay objects against the CRDs -------------------------------------------------------

def _crd_dir() -> Path | None:
    candidates = [REPO.parent / "shared" / "kuberay-crds"]
    if os.environ.get("GRIDRUN_KUBERAY_CRDS"):
        candidates.insert(0, Path(os.environ["GRIDRUN_KUBERAY_CRDS"]))
    return next((c for c in candidates if c.is_dir()), None)


def _strict(node):
    """Make a CRD's structural schema reject unknown fields, in place.

    Every object schema with `properties` and no `additionalProperties` (and not marked
    x-kubernetes-preserve-unknown-fields) gets additionalProperties: false; int-or-string
    fields accept an int or a string; nullable fields accept null."""
    if not isinstance(node, dict):
        return node
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in node and "oneOf" not in node:
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    if ("properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        node["additionalProperties"] = False
    for sub in node.get("properties", {}).values():
        _strict(sub)
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), dict):
            _strict(node[key])
    for key in ("anyOf", "allOf", "oneOf"):
        for sub in node.get(key, []):
            _strict(sub)
    return node


@pytest.fixture(scope="module")
def crd_validators() -> dict[str, jsonschema.Validator]:
    folder = _crd_dir()
    if folder is None:
        pytest.skip("KubeRay CRDs not found: set GRIDRUN_KUBERAY_CRDS to a folder holding "
                    "ray.io_rayclusters.yaml and ray.io_rayjobs.yaml, or put them in "
                    "shared/kuberay-crds beside the repository")
    validators = {}
    for name in ("ray.io_rayclusters.yaml", "ray.io_rayjobs.yaml"):
        crd = _load_all(folder / name)[0]
        v1 = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
        assert v1, f"{name} has no v1 version"
        schema = _strict(copy.deepcopy(v1[0]["schema"]["openAPIV3Schema"]))
        jsonschema.Draft7Validator.check_schema(schema)
        validators[crd["spec"]["names"]["kind"]] = jsonschema.Draft7Validator(schema)
    return validators


def _crd_errors(validators, obj: dict) -> list[str]:
    errors = validators[obj["kind"]].iter_errors(obj)
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


def test_every_kuberay_object_is_ray_io_v1_and_validates(crd_validators):
    ray_objects = [(f, d) for f, d in _docs() if d["apiVersion"].startswith("ray.io/")]
    assert {d["kind"] for _, d in ray_objects} == {"RayCluster", "RayJob"}
    errors = {}
    for filename, obj in ray_objects:
        assert obj["apiVersion"] == "ray.io/v1", filename
        assert obj["metadata"].get("name"), filename
        errors[filename] = _crd_errors(crd_validators, obj)
    assert errors == {filename: [] for filename, _ in ray_objects}


@pytest.mark.parametrize("where, field", [
    (("spec", "headGroupSpec"), "notAField"),
    (("spec",), "enableInTreeAutoScaling"),  # a wrong capital
    (("spec", "headGroupSpec", "template", "spec", "containers", 0), "resource"),
    (("spec", "workerGroupSpecs", 0), "maxReplica"),
])
def test_crd_validation_rejects_unknown_fields(crd_validators, where, field):
    broken = copy.deepcopy(_one("RayCluster"))
    node = broken
    for key in where:
        node = node[key]
    node[field] = 1
    errors = _crd_errors(crd_validators, broken)
    assert errors and any(field in e for e in errors), errors


def test_crd_validation_rejects_wrong_types_and_accepts_int_or_string(crd_validators):
    cluster = _one("RayCluster")
    broken = copy.deepcopy(cluster)
    broken["spec"]["workerGroupSpecs"][0]["maxReplicas"] = "eight"
    assert _crd_errors(crd_validators, broken)
    broken = copy.deepcopy(cluster)
    broken["spec"]["authOptions"]["mode"] = "none"  # not in the enum
    assert _crd_errors(crd_validators, broken)
    as_int = copy.deepcopy(cluster)  # quantities are int-or-string
    as_int["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"][
        "limits"]["cpu"] = 4
    assert _crd_errors(crd_validators, as_int) == []


# --- plain Kubernetes objects and pod templates (kubernetes-validate) -------------------------

def _k8s_validate(obj: dict) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def _as_pod_template(label: str, template: dict) -> dict:
    return {"apiVersion": "v1", "kind": "PodTemplate",
            "metadata": {"name": re.sub(r"[^a-z0-9-]+", "-", label.lower())},
            "template": template}


def test_kubernetes_objects_validate_against_kubernetes_schemas():
    plain = [(f, d) for f, d in _docs() if not d["apiVersion"].startswith("ray.io/")]
    assert {d["kind"] for _, d in plain} == {"PersistentVolumeClaim", "Secret"}
    for filename, obj in plain:
        try:
            _k8s_validate(obj)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{filename}: {'.'.join(map(str, e.path))}: {e.message}")


def test_pod_templates_validate_against_kubernetes_schemas():
    templates = _pod_templates()
    assert any(label.endswith("submitter") for label, _ in templates)
    for label, template in templates:
        try:
            _k8s_validate(_as_pod_template(label, template))
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{label}: {'.'.join(map(str, e.path))}: {e.message}")


def test_autoscaler_container_settings_validate_against_kubernetes_schemas():
    for label, spec in _cluster_specs():
        opts = spec["autoscalerOptions"]
        container = {"name": "autoscaler", "image": "autoscaler",
                     "resources": opts["resources"], "securityContext": opts["securityContext"]}
        _k8s_validate(_as_pod_template(label, {"spec": {"containers": [container]}}))


def test_kubernetes_validation_is_strict():
    label, template = _pod_templates()[0]
    broken = copy.deepcopy(template)
    broken["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="resource"):
        _k8s_validate(_as_pod_template(label, broken))
    claim = copy.deepcopy(_one("PersistentVolumeClaim"))
    claim["spec"]["accessMode"] = ["ReadWriteMany"]
    with pytest.raises(kubernetes_validate.ValidationError, match="accessMode"):
        _k8s_validate(claim)


# --- what the manifests promise ----------------------------------------------------------

def test_every_container_runs_non_root_without_privilege_escalation():
    for label, template in _pod_templates():
        pod_sc = template["spec"].get("securityContext", {})
        for c in _containers(template):
            sc = c.get("securityContext", {})
            where = f"{label}, container {c['name']}"
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, where
            uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
            assert isinstance(uid, int) and uid > 0, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("privileged", False) is False, where
    for label, spec in _cluster_specs():  # the autoscaler sidecar KubeRay adds to the head
        assert spec.get("enableInTreeAutoscaling") is True, label
        sc = spec["autoscalerOptions"]["securityContext"]
        assert sc.get("runAsNonRoot") is True and sc.get("runAsUser", 0) > 0, label
        assert sc.get("allowPrivilegeEscalation") is False, label


def _has_cpu_and_memory(resources: dict) -> bool:
    return all(k in resources.get(kind, {})
               for kind in ("requests", "limits") for k in ("cpu", "memory"))


def test_every_container_has_cpu_and_memory_requests_and_limits():
    for label, template in _pod_templates():
        for c in _containers(template):
            assert _has_cpu_and_memory(c.get("resources", {})), f"{label}, {c['name']}"
    for label, spec in _cluster_specs():
        assert _has_cpu_and_memory(spec["autoscalerOptions"]["resources"]), label


def test_head_is_cpu_only_and_gpu_workers_tolerate_gpu_taints():
    for label, spec in _cluster_specs():
        head = spec["headGroupSpec"]["template"]["spec"]
        for c in head["containers"]:
            res = c["resources"]
            assert "nvidia.com/gpu" not in {**res.get("requests", {}), **res["limits"]}, label
        groups = spec["workerGroupSpecs"]
        assert groups, f"{label} has no worker group"
        for g in groups:
            where = f"{label} worker group {g['groupName']}"
            ray = g["template"]["spec"]["containers"][0]
            assert int(ray["resources"]["limits"]["nvidia.com/gpu"]) >= 1, where
            tolerations = g["template"]["spec"].get("tolerations", [])
            assert any(t.get("key") == "nvidia.com/gpu" and t.get("effect", "NoSchedule")
                       in ("NoSchedule", "") for t in tolerations), where
            assert 0 <= g["minReplicas"] <= g.get("replicas", 0) <= g["maxReplicas"], where
            assert g["maxReplicas"] >= 1, where


def test_every_ray_pod_mounts_the_shared_claim():
    claim = _one("PersistentVolumeClaim")
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    for label, spec in _cluster_specs():
        templates = [spec["headGroupSpec"]["template"]]
        templates += [g["template"] for g in spec["workerGroupSpecs"]]
        for template in templates:
            volumes = {v["name"]: v for v in template["spec"]["volumes"]}
            shared = [n for n, v in volumes.items() if v.get("persistentVolumeClaim", {})
                      .get("claimName") == claim["metadata"]["name"]]
            assert len(shared) == 1, label
            for c in template["spec"]["containers"]:
                mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
                assert mounts.get(MOUNT) == shared[0], f"{label}, {c['name']}"


def test_dashboard_is_not_exposed_outside_the_cluster():
    for path in sorted(CLUSTER.rglob("*.yaml")):
        for d in _load_all(path):
            if d.get("kind") == "Service":
                assert d["spec"].get("type", "ClusterIP") == "ClusterIP", path.name
    for label, spec in _cluster_specs():
        head = spec["headGroupSpec"]
        assert head.get("serviceType", "ClusterIP") == "ClusterIP", label
        assert head.get("headService", {}).get("spec", {}).get("type", "ClusterIP") \
            == "ClusterIP", label
        assert not head.get("enableIngress", False), label


def _env_settings(node):
    """Every (name, value) of an env list anywhere in a parsed YAML document."""
    if isinstance(node, dict):
        if "name" in node and "value" in node and isinstance(node["name"], str):
            yield node["name"], node["value"]
        for v in node.values():
            yield from _env_settings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _env_settings(v)


def test_token_auth_is_never_turned_off():
    disabled = re.compile(r"RAY_AUTH_MODE\W{0,3}(?:=|:)\W{0,3}disabled", re.IGNORECASE)
    for path in sorted(p for p in CLUSTER.rglob("*") if p.is_file()):
        text = path.read_text()
        assert not disabled.search(text), f"{path.relative_to(REPO)} turns Ray auth off"
        if path.suffix == ".yaml":
            for d in _load_all(path):
                for name, value in _env_settings(d):
                    assert not (name == "RAY_AUTH_MODE" and str(value).lower() != "token"), \
                        f"{path.name} sets RAY_AUTH_MODE={value}"
    secret = _one("Secret")
    for label, spec in _cluster_specs():
        assert spec["authOptions"]["mode"] == "token", label
        assert spec["authOptions"]["secretName"] == secret["metadata"]["name"], label


def test_example_secret_has_the_key_kuberay_reads_and_no_real_token():
    secret = _one("Secret")
    values = {**secret.get("stringData", {}), **secret.get("data", {})}
    assert set(values) == {"auth_token"}
    token = values["auth_token"]
    assert not re.fullmatch(r"[0-9a-fA-F]{32,}|[A-Za-z0-9+/=]{40,}", token), \
        "secret.example.yaml must hold a placeholder, not a token"


def test_rayjob_resumes_the_same_run_on_the_shared_volume():
    job = _one("RayJob")["spec"]
    argv = shlex.split(job["entrypoint"])
    assert argv[:2] == ["gridrun", "launch"]
    assert argv[2].startswith("ablations/") and (REPO / argv[2]).is_file()
    assert "--storage" in argv and "--overwrite" not in argv
    storage = argv[argv.index("--storage") + 1]
    assert storage.startswith(MOUNT + "/")
    assert job["shutdownAfterJobFinishes"] is True
    assert isinstance(job["ttlSecondsAfterFinished"], int)
    assert isinstance(job["backoffLimit"], int) and job["backoffLimit"] >= 0
    assert isinstance(job["activeDeadlineSeconds"], int) and job["activeDeadlineSeconds"] > 0
    # The job's cluster is the long-lived one: one place to change the shape.
    assert job["rayClusterSpec"] == _one("RayCluster")["spec"]


def test_images_and_ray_version_are_pinned():
    ray = _pin("ray")
    images = set()
    for label, spec in _cluster_specs():
        assert spec["rayVersion"] == ray, label
    for label, template in _pod_templates():
        images |= {c["image"] for c in _containers(template)}
    assert len(images) == 1, images  # the image of cluster/Dockerfile, everywhere
    (image,) = images
    name, _, tag = image.rpartition(":")
    assert name and "/" not in tag and tag not in ("", "latest"), image


# --- Ray cluster launcher configs ----------------------------------------------------------

@pytest.fixture(scope="module")
def launcher_schema() -> dict:
    spec = importlib.util.find_spec("ray")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("ray is not installed (the torch or tensorflow extra brings it)")
    path = Path(list(spec.submodule_search_locations)[0]) / "autoscaler" / "ray-schema.json"
    assert path.is_file(), path
    return json.loads(path.read_text())


LAUNCHER = ["aws.yaml", "gcp.yaml"]


def _launcher(name: str) -> dict:
    (config,) = _load_all(CLUSTER / name)
    return config


@pytest.mark.parametrize("name", LAUNCHER)
def test_launcher_config_validates_against_rays_schema(launcher_schema, name):
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
              for e in jsonschema.Draft7Validator(launcher_schema).iter_errors(_launcher(name))]
    assert errors == []


def test_launcher_schema_rejects_unknown_fields(launcher_schema):
    broken = copy.deepcopy(_launcher("aws.yaml"))
    broken["setup_command"] = []
    assert not jsonschema.Draft7Validator(launcher_schema).is_valid(broken)
    broken = copy.deepcopy(_launcher("aws.yaml"))
    broken["available_node_types"]["gpu_spot"]["max_worker"] = 2
    assert not jsonschema.Draft7Validator(launcher_schema).is_valid(broken)


def _gpu_types(config: dict) -> dict:
    return {n: t for n, t in config["available_node_types"].items()
            if t["resources"].get("GPU", 0) >= 1}


@pytest.mark.parametrize("name", LAUNCHER)
def test_launcher_config_has_a_cpu_head_and_spot_gpu_workers(name):
    config = _launcher(name)
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"].get("CPU") == 0
    assert "guestAccelerators" not in head["node_config"]
    assert "InstanceMarketOptions" not in head["node_config"]
    gpu = _gpu_types(config)
    assert gpu, f"{name} has no GPU worker type"
    for type_name, t in gpu.items():
        assert 0 <= t["min_workers"] <= t["max_workers"] <= config["max_workers"], type_name
        node = t["node_config"]
        if config["provider"]["type"] == "aws":
            assert re.match(r"(g\d|p\d)", node["InstanceType"]), type_name
            assert node["InstanceMarketOptions"]["MarketType"] == "spot", type_name
        else:
            assert node["guestAccelerators"][0]["acceleratorType"].startswith("nvidia-")
            assert node["scheduling"]["preemptible"] is True, type_name  # a dict, not a list
            assert node["scheduling"]["onHostMaintenance"] == "TERMINATE", type_name


@pytest.mark.parametrize("name", LAUNCHER)
def test_launcher_config_installs_gridrun_and_keeps_auth_on(name):
    config = _launcher(name)
    assert config["docker"]["image"].startswith(f"rayproject/ray:{_pin('ray')}-")
    mounts = config["file_mounts"]
    project = [remote for remote, local in mounts.items() if local in (".", "./")]
    assert project == ["~/gridrun"]
    setup = " ".join(config["setup_commands"])
    assert f"torch=={_pin('torch')}" in setup
    assert re.search(r'pip install -c gridrun/constraints\.txt "\./gridrun\[torch\]"', setup)
    assert mounts.get("~/.ray/auth_token") == "~/.ray/auth_token"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = [c for c in config[key] if "ray start" in c]
        assert start and all("RAY_AUTH_MODE=token ray start" in c for c in start), key
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=0.0.0.0" not in head_start


# --- Dockerfile ---------------------------------------------------------------------------

def test_dockerfile_is_pinned_and_runs_as_non_root():
    text = (CLUSTER / "Dockerfile").read_text()
    lines = [ln.strip() for ln in re.sub(r"\\\n", " ", text).splitlines()
             if ln.strip() and not ln.strip().startswith("#")]
    froms = [ln.split()[1] for ln in lines if ln.upper().startswith("FROM ")]
    assert froms
    for image in froms:
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest" and "/" not in tag, image
        assert name in ("rayproject/ray", "nvidia/cuda"), image
    if froms[-1].startswith("rayproject/ray:"):
        assert froms[-1].split(":")[1].startswith(_pin("ray") + "-py311"), froms[-1]
    body = " ".join(lines)
    assert f"torch=={_pin('torch')}" in body
    assert re.search(r"--index-url \S*download\.pytorch\.org/whl/cu12\d", body)
    assert f'"tensorflow[and-cuda]=={_pin("tensorflow")}"' in body
    assert f'"ray[tune]=={_pin("ray")}"' in body
    assert "-c constraints.txt" in body and '".[torch]"' in body
    users = [ln.split()[1] for ln in lines if ln.upper().startswith("USER ")]
    assert users, "the Dockerfile sets no USER"
    assert users[-1].split(":")[0] not in ("root", "0"), users[-1]

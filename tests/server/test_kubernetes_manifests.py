"""deploy/kubernetes/ against Kubernetes' own schemas (kubernetes-validate, offline), and against maas.

kubernetes-validate carries the schemas of Kubernetes' built-in kinds only: KubeRay's RayService
(a custom resource) has none there, so its pod templates are checked as the PodTemplates they are,
its serveConfigV2 against Ray Serve's own schema, and its application is built from the config it
names. Building the image or applying the manifests needs a cluster and Docker, which CI lacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from maas_server.settings import load_settings

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="the test extra is not installed")
yaml = pytest.importorskip("yaml")

KUBERNETES = "1.37.0"  # the newest schemas kubernetes-validate 1.37 carries
MANIFESTS = Path(__file__).parents[2] / "deploy" / "kubernetes"


def _documents() -> list[dict[str, Any]]:
    return [doc for path in sorted(MANIFESTS.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in _documents() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(_one("ConfigMap", "maas-config")["data"]["config.toml"])
    return path


@pytest.mark.parametrize("document", [d for d in _documents() if d["apiVersion"] != "ray.io/v1"],
                         ids=lambda d: f"{d['kind']}-{d['metadata']['name']}")
def test_each_built_in_resource_follows_the_kubernetes_schema(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES, strict=True)  # strict: an unknown field is an error


def test_the_rayservice_is_beyond_kubernetes_validate_so_its_pod_templates_are_checked_as_such() -> None:
    service = _one("RayService")
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(service, KUBERNETES, strict=True)
    cluster = service["spec"]["rayClusterConfig"]
    templates = [cluster["headGroupSpec"]["template"], *(g["template"] for g in cluster["workerGroupSpecs"])]
    for template in templates:
        pod_template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "check"}, "template": template}
        kubernetes_validate.validate(pod_template, KUBERNETES, strict=True)
    import ray

    assert cluster["rayVersion"] == ray.__version__  # the cluster runs the Ray that maas was tested with


def test_the_rayservice_deploys_maas_own_application_from_the_shared_config(tmp_path: Path) -> None:
    from ray.serve.schema import ServeDeploySchema

    from maas_server.runtime import ray_replica

    serve_config = ServeDeploySchema.model_validate(yaml.safe_load(_one("RayService")["spec"]["serveConfigV2"]))
    (app,) = serve_config.applications
    module, _, function = app.import_path.partition(":")
    assert (module, function) == (ray_replica.__name__, "app_builder")
    mounted = {m["mountPath"] for c in _containers(_one("RayService")) for m in c.get("volumeMounts", [])}
    assert str(Path(app.args["config"]).parent) in mounted
    built = ray_replica.app_builder({"config": str(_config_file(tmp_path))})  # builds the graph; deploys nothing
    settings = load_settings({"ray_address": "auto", "config": _config_file(tmp_path)})
    assert app.name == settings.ray_app and built is not None


def test_the_http_tier_attaches_with_the_same_config_and_probes_health_and_readiness(tmp_path: Path) -> None:
    deployment = _one("Deployment", "maas-http")
    (container,) = _containers(deployment)
    command = " ".join(container["args"])
    assert "--ray-address auto" in command and "--config /etc/maas/config.toml" in command
    assert "maas-models-head-svc:6379" in command  # KubeRay names the head's Service after the RayService
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    settings = load_settings({"ray_address": "auto", "config": _config_file(tmp_path)})
    assert settings.ray_models(), "the shared config puts models on Ray"
    assert _one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert _one("Service", "maas-http")["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_the_store_urls_come_from_the_secret_and_never_from_the_config(tmp_path: Path) -> None:
    secret = _one("Secret", "maas-secrets")
    assert {"MAAS_DATABASE_URL", "MAAS_REDIS_URL"} <= set(secret["stringData"])
    (container,) = _containers(_one("Deployment", "maas-http"))
    assert {"secretRef": {"name": "maas-secrets"}} in container["envFrom"]
    assert "database_url" not in _config_file(tmp_path).read_text()  # maas refuses it there anyway


def _containers(resource: dict[str, Any]) -> list[dict[str, Any]]:
    spec = resource["spec"]
    if resource["kind"] == "RayService":
        cluster = spec["rayClusterConfig"]
        pods = [cluster["headGroupSpec"]["template"], *(g["template"] for g in cluster["workerGroupSpecs"])]
        return [c for pod in pods for c in pod["spec"]["containers"]]
    return list(spec["template"]["spec"]["containers"])

"""The Helm chart rendered offline (helm-python-sdk: Helm's own Go SDK in-process) and every manifest validated
against the Kubernetes 1.33 schema (kubernetes-validate, strict: unknown fields fail)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.tools import REPO_ROOT, checkov

CHART = REPO_ROOT / "infra" / "helm" / "skyrelay"
KUBE_VERSION = "1.33.0"
IRSA_ROLE = "arn:aws:iam::111111111111:role/skyrelay-gateway"
EKS_VALUES: dict[str, Any] = {
    "command": ["python", "-m", "handlers.aws.server"],
    "serviceAccount": {"roleArn": IRSA_ROLE},
    "redis": {"url": "rediss://master.skyrelay.cache.amazonaws.com:6380/0",
              "passwordSecret": {"name": "skyrelay-redis", "key": "password"}},
    "logs": {"sink": "s3://skyrelay-logs-111111111111-us-east-1/logs", "kmsKeyId": "arn:aws:kms:us-east-1:1:key/k"},
}


def render(values: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    import helm_python

    chart = helm_python.Chart.load(str(CHART))
    rendered = chart.render(values or {}, name="skyrelay", namespace="skyrelay")
    manifests: dict[str, dict[str, Any]] = {}
    for path, text in rendered.items():
        if path.endswith(".yaml"):
            for doc in yaml.safe_load_all(text):
                if doc:
                    manifests[doc["kind"]] = doc
    return manifests


@pytest.fixture(scope="module")
def eks_manifests() -> dict[str, dict[str, Any]]:
    return render(EKS_VALUES)


def test_chart_lints_clean_in_strict_mode() -> None:
    import helm_python

    report = helm_python.lint(str(CHART), strict=True, kube_version=f"v{KUBE_VERSION}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("values", [None, EKS_VALUES, {"autoscaling": {"enabled": False},
                                                       "config": {"uri": "gs://b/skyrelay.yaml"},
                                                       "networkPolicy": {"enabled": False}}],
                         ids=["defaults", "eks", "no-hpa-bucket-config"])
def test_every_rendered_manifest_matches_the_kubernetes_schema(values: dict[str, Any] | None) -> None:
    import kubernetes_validate

    manifests = render(values)
    assert {"Deployment", "Service"} <= set(manifests)
    for manifest in manifests.values():
        kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)


def test_schema_validation_rejects_a_typo_in_values() -> None:
    import helm_python

    with pytest.raises(helm_python.HelmValuesError, match="replicas"):
        render({"replicas": 3})


def test_three_replicas_spread_across_zones_with_a_disruption_budget(eks_manifests: dict[str, Any]) -> None:
    spec = eks_manifests["Deployment"]["spec"]
    assert eks_manifests["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 3
    assert render({"autoscaling": {"enabled": False}})["Deployment"]["spec"]["replicas"] == 3
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    zone = spec["template"]["spec"]["topologySpreadConstraints"][0]
    assert (zone["topologyKey"], zone["whenUnsatisfiable"], zone["maxSkew"]) == (
        "topology.kubernetes.io/zone", "DoNotSchedule", 1)
    assert eks_manifests["PodDisruptionBudget"]["spec"]["minAvailable"] == 2


def test_probes_resources_and_a_read_only_non_root_container(eks_manifests: dict[str, Any]) -> None:
    pod = eks_manifests["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/v1/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/ready"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert pod["terminationGracePeriodSeconds"] >= 60  # streams finish and the log queue flushes


def test_irsa_annotation_config_map_and_secret_wiring(eks_manifests: dict[str, Any]) -> None:
    account = eks_manifests["ServiceAccount"]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == IRSA_ROLE
    assert account["automountServiceAccountToken"] is False
    (container,) = eks_manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["SKYRELAY_CONFIG"]["value"] == "/etc/skyrelay/skyrelay.yaml"
    assert env["SKYRELAY_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "skyrelay-redis",
                                                                          "key": "password"}
    assert env["SKYRELAY_LOG_SINK"]["value"].startswith("s3://")
    assert "SKYRELAY_ALLOW_UNAUTHENTICATED" not in env
    assert container["command"] == ["python", "-m", "handlers.aws.server"]
    assert "skyrelay.yaml" in eks_manifests["ConfigMap"]["data"]


def test_every_value_is_documented() -> None:
    """Each top-level key in values.yaml has a comment directly above it."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = [line.split(":")[0] for index, line in enumerate(lines)
                    if re.match(r"^[A-Za-z]\w*:", line) and not lines[index - 1].startswith("#")]
    assert undocumented == []


def test_checkov_accepts_the_rendered_manifests(tmp_path: Path, eks_manifests: dict[str, Any]) -> None:
    rendered = tmp_path / "skyrelay.yaml"
    rendered.write_text(yaml.safe_dump_all([{**m, "metadata": {**m["metadata"], "namespace": "skyrelay"}}
                                            for m in eks_manifests.values()]))
    accepted = {
        "CKV_K8S_43": "images are pinned by tag; set image.digest to pin by digest",
        "CKV_K8S_35": "settings are environment variables (SKYRELAY_REDIS_PASSWORD from a secretKeyRef)",
    }
    result = subprocess.run([checkov(), "-f", str(rendered), "--framework", "kubernetes", "--compact", "--quiet",
                             "--skip-download", "--skip-check", ",".join(accepted)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:]

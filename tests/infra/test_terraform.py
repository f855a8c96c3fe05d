"""Terraform for GCP and Azure, validated offline: checkov finds nothing unreasoned, and the parsed HCL
(python-hcl2) carries the properties the design depends on. ``terraform init/validate`` need the provider registry
and cannot run here; ``terraform fmt -check`` runs when a terraform binary is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra.tools import REPO_ROOT, checkov

GCP, AZURE = REPO_ROOT / "infra" / "gcp", REPO_ROOT / "infra" / "azure"


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items() if k not in ("__is_block__", "__comments__")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def load(directory: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """``{resource_type: {name: body}}`` over every .tf file, quotes stripped from python-hcl2 8's output."""
    import hcl2

    resources: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as handle:
            document = _clean(hcl2.load(handle))
        for block in document.get("resource", []):
            for kind, named in block.items():
                resources.setdefault(kind, {}).update(named)
    return resources


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body[name]
    return value[0] if isinstance(value, list) else value


@pytest.fixture(scope="module")
def gcp() -> dict[str, dict[str, dict[str, Any]]]:
    return load(GCP)


@pytest.fixture(scope="module")
def azure() -> dict[str, dict[str, dict[str, Any]]]:
    return load(AZURE)


@pytest.mark.parametrize("directory", [GCP, AZURE], ids=["gcp", "azure"])
def test_checkov_passes_with_reasoned_skips_only(directory: Path) -> None:
    result = subprocess.run([checkov(), "-d", str(directory), "--framework", "terraform", "--skip-download",
                             "-o", "json"], capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)
    summary = report["summary"]
    assert summary["failed"] == 0 and result.returncode == 0, json.dumps(report["results"]["failed_checks"])[:3000]
    assert summary["passed"] >= 15
    assert report["results"]["skipped_checks"], "the reasoned skips in the .tf files should be reported"
    for skip in report["results"]["skipped_checks"]:
        assert len(skip["check_result"].get("suppress_comment", "")) >= 20, skip["check_id"]
    text = "".join(p.read_text() for p in directory.glob("*.tf"))
    assert all(len(reason) >= 20 for reason in re.findall(r"checkov:skip=\w+:(.*)", text))


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installable from the registries")
@pytest.mark.parametrize("directory", [GCP, AZURE], ids=["gcp", "azure"])
def test_terraform_fmt_is_clean(directory: Path) -> None:
    result = subprocess.run(["terraform", "fmt", "-check", "-recursive", "-diff", str(directory)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_gcp_identity_has_one_project_role(gcp: dict[str, Any]) -> None:
    project_roles = [m["role"] for m in gcp["google_project_iam_member"].values()]
    assert project_roles == ["roles/aiplatform.user"]
    scoped = {m["role"] for kind in ("google_storage_bucket_iam_member", "google_secret_manager_secret_iam_member")
              for m in gcp[kind].values()}
    assert scoped == {"roles/storage.objectCreator", "roles/storage.objectViewer",
                      "roles/secretmanager.secretAccessor"}


def test_gcp_buckets_are_private_cmek_and_versioned(gcp: dict[str, Any]) -> None:
    buckets = gcp["google_storage_bucket"]
    assert set(buckets) == {"access_logs", "logs", "config", "source"}
    for name, bucket in buckets.items():
        assert bucket["public_access_prevention"] == "enforced", name
        assert bucket["uniform_bucket_level_access"] is True, name
        assert block(bucket, "versioning")["enabled"] is True, name
        assert "google_kms_crypto_key.storage.id" in block(bucket, "encryption")["default_kms_key_name"], name
    rules = buckets["logs"]["lifecycle_rule"]
    assert any(block(r, "condition").get("matches_prefix") == ["logs/"] for r in rules)
    assert gcp["google_kms_crypto_key"]["storage"]["rotation_period"] == "7776000s"


def test_gcp_memorystore_is_ha_with_tls_and_auth(gcp: dict[str, Any]) -> None:
    redis = gcp["google_redis_instance"]["this"]
    assert (redis["tier"], redis["auth_enabled"], redis["transit_encryption_mode"]) == (
        "STANDARD_HA", True, "SERVER_AUTHENTICATION")


def test_gcp_function_streams_from_the_bundle_with_secrets_from_secret_manager(gcp: dict[str, Any]) -> None:
    function = gcp["google_cloudfunctions2_function"]["gateway"]
    build = block(function, "build_config")
    assert (build["runtime"], build["entry_point"]) == ("python312", "gateway")
    service = block(function, "service_config")
    assert service["timeout_seconds"] == 3600
    assert "google_service_account.gateway.email" in service["service_account_email"]
    env = block(service, "environment_variables") if isinstance(service["environment_variables"], list) \
        else service["environment_variables"]
    assert env["SKYRELAY_LOG_SINK"].startswith("gs://") and env["SKYRELAY_REDIS_URL"].startswith("rediss://")
    assert "SKYRELAY_REDIS_PASSWORD" not in env
    assert block(service, "secret_environment_variables")["key"] == "SKYRELAY_REDIS_PASSWORD"
    public_invoker = gcp["google_cloud_run_service_iam_member"]["public"]
    assert public_invoker["member"] == "allUsers"
    assert public_invoker["count"].startswith("${var.allow_unauthenticated ?")


def test_azure_identity_holds_openai_user_and_container_scoped_data_roles(azure: dict[str, Any]) -> None:
    assignments = azure["azurerm_role_assignment"].values()
    roles = {a["role_definition_name"]: a["scope"] for a in assignments}
    assert roles.pop("Cognitive Services OpenAI User") == "${var.openai_account_id}"
    assert roles == {
        "Storage Blob Data Owner": "${azurerm_storage_container.package.id}",
        "Storage Blob Data Contributor": "${azurerm_storage_container.logs.id}",
        "Storage Blob Data Reader": "${azurerm_storage_container.config.id}",
    }
    assert all("azurerm_user_assigned_identity.gateway.principal_id" in a["principal_id"] for a in assignments)


def test_azure_storage_is_tls_only_private_and_keyless(azure: dict[str, Any]) -> None:
    account = azure["azurerm_storage_account"]["this"]
    assert account["min_tls_version"] == "TLS1_2"
    assert account["https_traffic_only_enabled"] is True
    assert account["allow_nested_items_to_be_public"] is False
    assert account["shared_access_key_enabled"] is False
    assert all(c["container_access_type"] == "private" for c in azure["azurerm_storage_container"].values())


def test_azure_function_is_flex_consumption_with_the_managed_identity(azure: dict[str, Any]) -> None:
    assert azure["azurerm_service_plan"]["this"]["sku_name"] == "FC1"
    app = azure["azurerm_function_app_flex_consumption"]["gateway"]
    assert (app["runtime_name"], app["storage_authentication_type"], app["https_only"]) == (
        "python", "UserAssignedIdentity", True)
    assert block(app, "identity")["type"] == "UserAssigned"
    settings = app["app_settings"] if isinstance(app["app_settings"], dict) else app["app_settings"][0]
    assert settings["SKYRELAY_REDIS_URL"].startswith("rediss://") and ":10000/" in settings["SKYRELAY_REDIS_URL"]
    assert settings["SKYRELAY_LOG_SINK"].startswith("${azurerm_storage_account.this.primary_blob_endpoint}")
    assert settings["PYTHON_ENABLE_INIT_INDEXING"] == "1"


def test_azure_managed_redis_is_tls_only_and_highly_available(azure: dict[str, Any]) -> None:
    redis = azure["azurerm_managed_redis"]["this"]
    assert redis["high_availability_enabled"] is True
    assert block(redis, "default_database")["client_protocol"] == "Encrypted"

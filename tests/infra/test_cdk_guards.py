"""The guards around synthesis: placeholder lookups, the cdk-nag gate, and deployment choices that must fail
loudly. These run without a full gateway synth where they can."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import ACCOUNT, base_context


def test_a_missing_availability_zone_lookup_fails_the_synth(lambda_bundle: Path, tmp_path: Path) -> None:
    from skyrelay_infra.app_builder import PlaceholderContextError, build_app, synth_checked

    context = base_context(lambda_bundle, pattern="regional", region="ap-southeast-2")  # not in the fixture
    app = build_app(context, outdir=str(tmp_path), nag=False)
    with pytest.raises(PlaceholderContextError, match="availability-zones:account=111111111111:region=ap-southeast-2"):
        synth_checked(app)


def test_the_nag_gate_rejects_an_unreasoned_insecure_bucket(tmp_path: Path) -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_s3 as s3
    from skyrelay_infra.nag import add_aws_solutions_checks

    app = cdk.App(outdir=str(tmp_path))
    add_aws_solutions_checks(app)
    stack = cdk.Stack(app, "Insecure", env=cdk.Environment(account=ACCOUNT, region="us-east-1"))
    s3.Bucket(stack, "Bucket")
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p.get("violations", [])}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= rules


def test_an_acknowledgment_needs_a_reason() -> None:
    import aws_cdk as cdk
    from skyrelay_infra.nag import acknowledge

    with pytest.raises(ValueError, match="real reason"):
        acknowledge(cdk.App(), "AwsSolutions-S1", "because")


@pytest.mark.parametrize(("overrides", "message"), [
    ({"account": "not-an-account"}, "12-digit"),
    ({"bedrockModels": [], "bedrockInferenceProfiles": []}, "bedrockModels"),
    ({"pattern": "active-passive"}, "domainName"),
    ({"frontDoor": "alb"}, "frontDoor"),
    ({"lambdaEntry": "runtime-stream", "lambdaExecWrapper": " "}, "lambdaExecWrapper"),
    ({"eksClusterName": "prod"}, "eksOidcProviderArn"),
])
def test_bad_deployment_choices_are_refused_by_name(lambda_bundle: Path, overrides: dict[str, Any],
                                                     message: str) -> None:
    from skyrelay_infra.context import ContextError, DeploymentContext

    context = base_context(lambda_bundle, **overrides)
    with pytest.raises(ContextError, match=message):
        DeploymentContext.from_mapping(context)


def test_a_missing_bundle_names_the_command_that_builds_it(tmp_path: Path) -> None:
    from skyrelay_infra.app_builder import build_app

    context = base_context(tmp_path / "absent.zip", pattern="regional")
    with pytest.raises(FileNotFoundError, match="skyrelay bundle --cloud aws"):
        build_app(context, outdir=str(tmp_path / "out"), nag=False)


@pytest.mark.parametrize(("entry", "missing"), [("runtime-stream", "handlers/aws/stream_bootstrap"),
                                               ("buffered", "handlers/aws/handler.py")])
def test_a_bundle_that_cannot_start_the_entry_fails_the_synth(tmp_path: Path, entry: str, missing: str) -> None:
    import zipfile

    from skyrelay_infra.app_builder import build_app

    bundle = tmp_path / "other.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("run.sh", "#!/bin/sh\n")
    context = base_context(bundle, pattern="regional", lambdaEntry=entry)
    with pytest.raises(ValueError, match=missing):
        build_app(context, outdir=str(tmp_path / "out"), nag=False)


def test_bedrock_statement_refuses_wildcards() -> None:
    from skyrelay_infra.bedrock import bedrock_invoke_statement

    with pytest.raises(ValueError, match="name models"):
        bedrock_invoke_statement(models=["anthropic.*"], inference_profiles=[], region="us-east-1", account=ACCOUNT)


@pytest.mark.slow
def test_app_entry_synthesizes_under_the_cli_protocol(lambda_bundle: Path, tmp_path: Path) -> None:
    """``cdk synth`` runs ``python app.py`` with CDK_CONTEXT_JSON and CDK_OUTDIR; the same must work here."""
    import os
    import subprocess
    import sys

    from tests.infra.conftest import REPO_ROOT

    context = base_context(lambda_bundle, pattern="regional", frontDoor="rest-api")
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(tmp_path)}
    result = subprocess.run([sys.executable, str(REPO_ROOT / "infra" / "aws" / "app.py")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    template = json.loads((tmp_path / "skyrelay-regional-us-east-1.template.json").read_text())
    kinds = {r["Type"] for r in template["Resources"].values()}
    assert {"AWS::ApiGateway::RestApi", "AWS::Lambda::Function"} <= kinds and "AWS::Lambda::Url" not in kinds

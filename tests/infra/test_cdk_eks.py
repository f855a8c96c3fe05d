"""EKS single gateway: private, logged, secret-encrypted cluster; an IRSA service account holding the same
least-privilege Bedrock policy; the Helm chart from infra/helm installed by CDK with values wired to the stack."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.conftest import ACCOUNT, MODEL, PROFILE, Synthesized

pytestmark = pytest.mark.slow

STACK = "skyrelay-eks-us-east-1"


@pytest.fixture(scope="module")
def eks(synth: Any) -> Synthesized:
    return synth("eks")


def test_cluster_is_private_logged_and_encrypts_secrets(eks: Synthesized) -> None:
    from aws_cdk.assertions import Match

    eks.template(STACK).has_resource_properties("AWS::EKS::Cluster", {
        "Version": "1.33",
        "ResourcesVpcConfig": Match.object_like({"EndpointPrivateAccess": True, "EndpointPublicAccess": False}),
        "EncryptionConfig": [{"Provider": {"KeyArn": Match.any_value()}, "Resources": ["secrets"]}],
        "Logging": {"ClusterLogging": {"EnabledTypes": [{"Type": t} for t in (
            "api", "audit", "authenticator", "controllerManager", "scheduler")]}},
        "ComputeConfig": Match.object_like({"Enabled": True}),
    })
    assert not eks.manifest.get("missing")


def test_service_account_role_trusts_the_cluster_oidc_provider(eks: Synthesized) -> None:
    template = eks.template(STACK)
    roles = template.find_resources("AWS::IAM::Role")
    irsa = next(r for name, r in roles.items() if name.startswith("ClusterGatewayServiceAccountRole"))
    statement = irsa["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert "Federated" in statement["Principal"]
    template.resource_count_is("AWS::IAM::OIDCProvider", 1)


def test_service_account_holds_least_privilege_bedrock_and_log_writes(eks: Synthesized) -> None:
    policies = eks.template(STACK).find_resources("AWS::IAM::Policy")
    policy = next(p for name, p in policies.items() if name.startswith("ClusterGatewayServiceAccountRoleDefault"))
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    bedrock = next(s for s in statements if s.get("Sid") == "InvokeConfiguredBedrockModels")
    assert sorted(bedrock["Action"]) == ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
    assert f"arn:aws:bedrock:us-east-1::foundation-model/{MODEL}" in bedrock["Resource"]
    assert f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/{PROFILE}" in bedrock["Resource"]
    assert "*" not in json.dumps(bedrock["Resource"])
    puts = [s for s in statements if s["Action"] == "s3:PutObject"]
    assert len(puts) == 1 and '"/logs/*"' in json.dumps(puts[0]["Resource"])


def test_helm_chart_from_the_repository_is_installed_with_stack_values(eks: Synthesized) -> None:
    charts = eks.template(STACK).find_resources("Custom::AWSCDK-EKS-HelmChart")
    (chart,) = charts.values()
    props = chart["Properties"]
    assert props["Release"] == "skyrelay" and props["Namespace"] == "skyrelay"
    assert str(props["ChartAssetURL"]).startswith(f"s3://cdk-hnb659fds-assets-{ACCOUNT}-us-east-1/")
    values = json.dumps(props["Values"])
    for expected in ('\\"command\\":[\\"python\\",\\"-m\\",\\"handlers.aws.server\\"]',
                     '\\"serviceAccount\\":{\\"create\\":false,\\"name\\":\\"skyrelay\\"}',
                     '\\"passwordSecret\\":{\\"name\\":\\"skyrelay-redis\\",\\"key\\":\\"password\\"}',
                     "rediss://", "PrimaryEndPoint.Address", '/logs\\"'):
        assert expected in values, expected
    assets = eks.manifest["artifacts"][f"{STACK}.assets"]
    assert assets["type"] == "cdk:asset-manifest"


def test_redis_admits_only_the_cluster(eks: Synthesized) -> None:
    template = eks.template(STACK)
    template.has_resource_properties("AWS::ElastiCache::ReplicationGroup", {
        "TransitEncryptionEnabled": True, "AtRestEncryptionEnabled": True, "MultiAZEnabled": True})
    redis_sg = next(g for g in template.find_resources("AWS::EC2::SecurityGroup").values()
                    if "Redis" in g["Properties"]["GroupDescription"])
    (rule,) = redis_sg["Properties"]["SecurityGroupIngress"]
    assert rule["FromPort"] == 6380 and "ClusterSecurityGroupId" in json.dumps(rule["SourceSecurityGroupId"])

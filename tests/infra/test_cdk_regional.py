"""Regional gateway stack: the security-relevant properties of the synthesized template, asserted with
aws_cdk.assertions. Each synthesis also passed cdk-nag's AwsSolutions pack (the synth raises otherwise)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.conftest import ACCOUNT, MODEL, PROFILE, Synthesized

pytestmark = pytest.mark.slow

STACK = "skyrelay-regional-us-east-1"


@pytest.fixture(scope="module")
def regional(synth: Any) -> Synthesized:
    return synth("regional", frontDoor="both")


@pytest.fixture(scope="module")
def template(regional: Synthesized) -> Any:
    return regional.template(STACK)


def resources(template: Any, kind: str) -> dict[str, Any]:
    return dict(template.find_resources(kind))


def test_no_context_lookup_fell_back_to_placeholders(regional: Synthesized) -> None:
    assert not regional.manifest.get("missing")
    text = json.dumps(regional.templates[STACK])
    assert "dummy" not in text.lower()
    subnets = resources(regional.template(STACK), "AWS::EC2::Subnet")
    assert {s["Properties"]["AvailabilityZone"] for s in subnets.values()} == {"us-east-1a", "us-east-1b"}


def test_function_url_streams_and_requires_iam(template: Any) -> None:
    from aws_cdk.assertions import Match

    template.has_resource_properties("AWS::Lambda::Url", {"AuthType": "AWS_IAM", "InvokeMode": "RESPONSE_STREAM"})
    template.has_resource_properties("AWS::Lambda::Function", {
        "Architectures": ["arm64"],
        "Runtime": "python3.12",
        "Timeout": 900,
        "Layers": Match.absent(),
        "Environment": {"Variables": Match.object_like({
            "AWS_LAMBDA_EXEC_WRAPPER": "/var/task/handlers/aws/stream_bootstrap",
            "SKYRELAY_ALLOW_UNAUTHENTICATED": "true",
            "SKYRELAY_REDIS_CLUSTER": "false",
        })},
    })


def test_web_adapter_entry_attaches_the_layer_for_the_architecture(synth: Any) -> None:
    from aws_cdk.assertions import Match

    template = synth("regional", lambdaEntry="web-adapter").template(STACK)
    template.has_resource_properties("AWS::Lambda::Function", {
        "Handler": "run.sh",
        "Layers": [Match.string_like_regexp(
            r"^arn:aws:lambda:us-east-1:753240598075:layer:LambdaAdapterLayerArm64:\d+$")],
        "Environment": {"Variables": Match.object_like({
            "AWS_LAMBDA_EXEC_WRAPPER": "/opt/bootstrap",
            "AWS_LWA_INVOKE_MODE": "response_stream",
            "AWS_LWA_READINESS_CHECK_PATH": "/v1/health",
        })},
    })
    template.has_resource_properties("AWS::Lambda::Url", {"InvokeMode": "RESPONSE_STREAM"})


def test_rest_api_streams_with_a_long_timeout_and_an_open_health_route(template: Any) -> None:
    methods = resources(template, "AWS::ApiGateway::Method")
    assert len(methods) == 3
    for method in methods.values():
        integration = method["Properties"]["Integration"]
        assert integration["Type"] == "AWS_PROXY"
        assert integration["ResponseTransferMode"] == "STREAM"
        assert integration["TimeoutInMillis"] == 900000
        assert "/response-streaming-invocations" in json.dumps(integration["Uri"])
    auth = {m["Properties"]["HttpMethod"]: m["Properties"]["AuthorizationType"] for m in methods.values()}
    assert auth == {"ANY": "AWS_IAM", "GET": "NONE"}  # GET is only /v1/health
    template.has_resource_properties("AWS::ApiGateway::Resource", {"PathPart": "health"})
    template.has_resource_properties("AWS::ApiGateway::Stage", {
        "StageName": "prod",
        "MethodSettings": [{"DataTraceEnabled": False, "HttpMethod": "*", "LoggingLevel": "ERROR",
                            "MetricsEnabled": True, "ResourcePath": "/*", "ThrottlingBurstLimit": 2000,
                            "ThrottlingRateLimit": 1000}],
    })


def test_log_bucket_is_kms_encrypted_private_versioned_and_expiring(template: Any) -> None:
    from aws_cdk.assertions import Match

    template.has_resource_properties("AWS::S3::Bucket", {
        "BucketName": f"skyrelay-logs-{ACCOUNT}-us-east-1",
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [{
            "BucketKeyEnabled": True,
            "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": Match.any_value()}}]},
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                           "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
        "VersioningConfiguration": {"Status": "Enabled"},
        "LifecycleConfiguration": {"Rules": Match.array_with([Match.object_like(
            {"Prefix": "logs/", "ExpirationInDays": 90, "Status": "Enabled"})])},
        "LoggingConfiguration": Match.object_like({"DestinationBucketName": Match.any_value()}),
    })
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    template.has_resource_properties("AWS::KMS::Alias", {"AliasName": "alias/skyrelay-logs"})


def test_every_bucket_policy_denies_plain_http(template: Any) -> None:
    policies = resources(template, "AWS::S3::BucketPolicy")
    assert len(policies) == 2  # the log bucket and its access-log bucket
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   and s["Principal"] == {"AWS": "*"} and s["Action"] == "s3:*" for s in statements)


def test_bedrock_permissions_name_the_configured_models_only(template: Any) -> None:
    statements = [s for p in resources(template, "AWS::IAM::Policy").values()
                  for s in p["Properties"]["PolicyDocument"]["Statement"]
                  if any(str(a).startswith("bedrock:") for a in _as_list(s["Action"]))]
    assert len(statements) == 1
    statement = statements[0]
    assert sorted(_as_list(statement["Action"])) == ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
    assert sorted(statement["Resource"]) == sorted(
        [f"arn:aws:bedrock:{region}::foundation-model/{MODEL}" for region in ("us-east-1", "us-east-2", "us-west-2")]
        + [f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/{PROFILE}"])
    assert "*" not in json.dumps(statement["Resource"])


def test_gateway_role_writes_logs_and_reads_the_config_object_only(template: Any) -> None:
    role_policies = [p for p in resources(template, "AWS::IAM::Policy").values()
                     if "GatewayRole" in json.dumps(p["Properties"]["Roles"])]
    statements = role_policies[0]["Properties"]["PolicyDocument"]["Statement"]
    s3 = {a: json.dumps(s["Resource"]) for s in statements for a in _as_list(s["Action"]) if a.startswith("s3:")}
    assert set(s3) == {"s3:PutObject", "s3:GetObject"}
    assert '"/logs/*"' in s3["s3:PutObject"] and '"/config/skyrelay.yaml"' in s3["s3:GetObject"]


def test_redis_is_encrypted_authenticated_multi_az_on_a_non_default_port(template: Any) -> None:
    from aws_cdk.assertions import Match

    template.has_resource_properties("AWS::ElastiCache::ReplicationGroup", {
        "AtRestEncryptionEnabled": True, "TransitEncryptionEnabled": True, "TransitEncryptionMode": "required",
        "MultiAZEnabled": True, "AutomaticFailoverEnabled": True, "NumCacheClusters": 2, "Port": 6380,
        "AuthToken": {"Fn::Join": ["", ["{{resolve:secretsmanager:", Match.any_value(), ":SecretString:::}}"]]},
        "KmsKeyId": Match.any_value(),
    })
    redis_sg = next(g for g in resources(template, "AWS::EC2::SecurityGroup").values()
                    if "Redis" in g["Properties"]["GroupDescription"])
    rules = redis_sg["Properties"]["SecurityGroupIngress"]
    assert [(r["FromPort"], r["ToPort"]) for r in rules] == [(6380, 6380)]
    assert "SourceSecurityGroupId" in rules[0] and "CidrIp" not in rules[0]  # only the gateway's security group


def test_secrets_reach_the_function_as_references_never_values(template: Any) -> None:
    function = gateway_function(template)
    env = function["Properties"]["Environment"]["Variables"]
    assert "{{resolve:secretsmanager:" in json.dumps(env["SKYRELAY_REDIS_PASSWORD"])
    assert "KmsKeyArn" in function["Properties"]  # the environment is encrypted with the CMK
    assert json.dumps(env["SKYRELAY_LOG_SINK"]).count("/logs") == 1


def test_alarms_page_on_errors_throttles_and_latency(template: Any) -> None:
    alarms = resources(template, "AWS::CloudWatch::Alarm").values()
    metrics = sorted((a["Properties"]["MetricName"], a["Properties"].get("ExtendedStatistic") or
                      a["Properties"].get("Statistic")) for a in alarms)
    assert metrics == [("5XXError", "Sum"), ("Duration", "p99"), ("Errors", "Sum"), ("Latency", "p99"),
                       ("Throttles", "Sum")]
    assert all(a["Properties"]["AlarmActions"] for a in alarms)
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": _any()})


def test_no_deprecated_log_retention_custom_resource(template: Any) -> None:
    assert not resources(template, "Custom::LogRetention")


def test_every_nag_acknowledgment_carries_a_reason(regional: Synthesized) -> None:
    acknowledged = regional.acknowledgments()
    assert acknowledged, "expected the stack's reasoned acknowledgments to be recorded"
    for path, rule, reason in acknowledged:
        assert rule.removeprefix("Annotation::").startswith(("AwsSolutions-", "CloudFormation")), (path, rule)
        assert len(reason) >= 20, (path, rule, reason)


def test_gateway_keys_mode_opens_the_url_and_keeps_the_keys_check(synth: Any) -> None:
    result = synth("regional", auth="gateway-keys", frontDoor="function-url", redis="serverless")
    template = result.template(STACK)
    template.has_resource_properties("AWS::Lambda::Url", {"AuthType": "NONE", "InvokeMode": "RESPONSE_STREAM"})
    function = gateway_function(template)
    env = function["Properties"]["Environment"]["Variables"]
    assert "SKYRELAY_ALLOW_UNAUTHENTICATED" not in env
    assert env["SKYRELAY_REDIS_CLUSTER"] == "true"
    assert not resources(template, "AWS::ApiGateway::RestApi")
    template.has_resource_properties("AWS::ElastiCache::ServerlessCache", {"Engine": "redis", "KmsKeyId": _any()})
    template.has_resource_properties("AWS::ElastiCache::User", {"UserName": "default", "AccessString": "off -@all"})


def test_buffered_entry_uses_buffered_front_doors(synth: Any) -> None:
    template = synth("regional", lambdaEntry="buffered", frontDoor="both", configStore="ssm").template(STACK)
    template.has_resource_properties("AWS::Lambda::Url", {"InvokeMode": "BUFFERED"})
    template.has_resource_properties("AWS::Lambda::Function", {"Handler": "handlers.aws.handler.handler"})
    for method in resources(template, "AWS::ApiGateway::Method").values():
        assert method["Properties"]["Integration"]["ResponseTransferMode"] == "BUFFERED"
        assert method["Properties"]["Integration"]["TimeoutInMillis"] == 29000
    template.has_resource_properties("AWS::SSM::Parameter", {"Name": "/skyrelay/config", "Type": "String"})
    ssm = [s for p in resources(template, "AWS::IAM::Policy").values()
           for s in p["Properties"]["PolicyDocument"]["Statement"] if "ssm:GetParameter" in _as_list(s["Action"])]
    assert ssm[0]["Resource"] == f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/skyrelay/config"


def gateway_function(template: Any) -> Any:
    (function,) = [f for f in resources(template, "AWS::Lambda::Function").values()
                   if "SKYRELAY_LOG_SINK" in f["Properties"].get("Environment", {}).get("Variables", {})]
    return function


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _any() -> Any:
    from aws_cdk.assertions import Match

    return Match.any_value()

"""Active-passive: Route53 failover on GET /v1/health (30 s, 3 failures), PRIMARY/SECONDARY alias records, S3 CRR of
the KMS-encrypted logs into the standby's bucket and key, and the deploy order (standby first)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import ACCOUNT, Synthesized

pytestmark = pytest.mark.slow

PRIMARY, STANDBY = "skyrelay-primary-us-east-1", "skyrelay-standby-us-west-2"
DOMAIN = "llm.example.com"


@pytest.fixture(scope="module")
def pair(synth: Any) -> Synthesized:
    return synth("active-passive", domainName=DOMAIN, hostedZoneId="Z0123456789ABC", hostedZoneName="example.com",
                 primaryRegion="us-east-1", secondaryRegion="us-west-2")


@pytest.mark.parametrize(("stack", "region"), [(PRIMARY, "us-east-1"), (STANDBY, "us-west-2")])
def test_each_region_health_checks_its_own_endpoint(pair: Synthesized, stack: str, region: str) -> None:
    pair.template(stack).has_resource_properties("AWS::Route53::HealthCheck", {"HealthCheckConfig": {
        "Type": "HTTPS", "FullyQualifiedDomainName": f"{region}.{DOMAIN}", "Port": 443,
        "ResourcePath": "/v1/health", "RequestInterval": 30, "FailureThreshold": 3,
        "EnableSNI": True, "MeasureLatency": True}})


@pytest.mark.parametrize(("stack", "role", "region"),
                         [(PRIMARY, "PRIMARY", "us-east-1"), (STANDBY, "SECONDARY", "us-west-2")])
def test_failover_alias_records(pair: Synthesized, stack: str, role: str, region: str) -> None:
    from aws_cdk.assertions import Match

    template = pair.template(stack)
    template.has_resource_properties("AWS::Route53::RecordSet", {
        "Name": DOMAIN, "Type": "A", "Failover": role, "SetIdentifier": f"{role.lower()}-{region}",
        "HostedZoneId": "Z0123456789ABC",
        "HealthCheckId": {"Fn::GetAtt": [Match.string_like_regexp("^FailoverHealthCheck"), "HealthCheckId"]},
        "AliasTarget": Match.object_like({"EvaluateTargetHealth": True}),
    })
    template.has_resource_properties("AWS::ApiGateway::DomainName", {
        "DomainName": DOMAIN, "EndpointConfiguration": {"Types": ["REGIONAL"]}, "SecurityPolicy": "TLS_1_2"})
    template.has_resource_properties("AWS::CertificateManager::Certificate", {
        "DomainName": DOMAIN, "SubjectAlternativeNames": [f"{region}.{DOMAIN}"], "ValidationMethod": "DNS"})
    # the health route stays reachable without SigV4, the rest does not
    methods = template.find_resources("AWS::ApiGateway::Method")
    assert {m["Properties"]["HttpMethod"]: m["Properties"]["AuthorizationType"] for m in methods.values()} == {
        "ANY": "AWS_IAM", "GET": "NONE"}


def test_primary_replicates_kms_encrypted_logs_to_the_standby(pair: Synthesized) -> None:
    from aws_cdk.assertions import Match

    pair.template(PRIMARY).has_resource_properties("AWS::S3::Bucket", {
        "BucketName": f"skyrelay-logs-{ACCOUNT}-us-east-1",
        "VersioningConfiguration": {"Status": "Enabled"},
        "ReplicationConfiguration": {"Role": Match.any_value(), "Rules": [Match.object_like({
            "Status": "Enabled",
            "SourceSelectionCriteria": {"SseKmsEncryptedObjects": {"Status": "Enabled"}},
            "Destination": {
                "Bucket": f"arn:aws:s3:::skyrelay-logs-{ACCOUNT}-us-west-2",
                "EncryptionConfiguration": {"ReplicaKmsKeyID": f"arn:aws:kms:us-west-2:{ACCOUNT}:alias/skyrelay-logs"},
            },
        })]},
    })
    standby = pair.template(STANDBY)
    standby.has_resource_properties("AWS::S3::Bucket", {
        "BucketName": f"skyrelay-logs-{ACCOUNT}-us-west-2", "VersioningConfiguration": {"Status": "Enabled"}})
    standby.has_resource_properties("AWS::KMS::Alias", {"AliasName": "alias/skyrelay-logs"})
    assert not any("ReplicationConfiguration" in b["Properties"]
                   for b in standby.find_resources("AWS::S3::Bucket").values())


def test_replication_role_may_only_encrypt_with_the_standby_alias(pair: Synthesized) -> None:
    policies = pair.template(PRIMARY).find_resources("AWS::IAM::Policy")
    statements = [s for p in policies.values() if "ReplicationRole" in str(p["Properties"]["Roles"])
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    encrypt = next(s for s in statements if "kms:Encrypt" in s["Action"])
    assert encrypt["Resource"] == f"arn:aws:kms:us-west-2:{ACCOUNT}:key/*"
    assert encrypt["Condition"]["ForAnyValue:StringEquals"] == {"kms:ResourceAliases": "alias/skyrelay-logs"}
    assert encrypt["Condition"]["StringLike"] == {"kms:ViaService": "s3.us-west-2.amazonaws.com"}


def test_standby_is_deployed_before_the_primary(pair: Synthesized) -> None:
    artifacts = pair.manifest["artifacts"]
    assert STANDBY in artifacts[PRIMARY]["dependencies"]
    assert PRIMARY not in (artifacts[STANDBY].get("dependencies") or [])
    assert artifacts[PRIMARY]["environment"] == f"aws://{ACCOUNT}/us-east-1"
    assert artifacts[STANDBY]["environment"] == f"aws://{ACCOUNT}/us-west-2"

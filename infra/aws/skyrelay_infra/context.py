"""Deployment choices, read once from CDK context (``cdk.json``, ``-c key=value`` or a test's ``context=``).

Every key is ``skyrelay:<name>``. Values given on the command line arrive as strings, so lists accept either a JSON
list or a comma-separated string and booleans accept ``true``/``false``. Parsing fails with the key's name: a typo in
a deployment choice must stop the synth, not deploy a default.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Pattern = Literal["regional", "multi-regional", "active-passive", "eks"]
FrontDoor = Literal["function-url", "rest-api", "both"]
Auth = Literal["iam", "gateway-keys"]
RedisKind = Literal["replication-group", "serverless"]
ConfigStoreKind = Literal["s3", "ssm"]
EntryKind = Literal["web-adapter", "runtime-stream", "buffered"]

PREFIX = "skyrelay:"
REPO_ROOT = Path(__file__).resolve().parents[3]


class ContextError(ValueError):
    """A context value is missing or malformed; the message names the key."""


def _as_list(key: str, value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(item) for item in value]
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            parsed = json.loads(text)
            if not isinstance(parsed, list):
                raise ContextError(f"{PREFIX}{key}: expected a list")
            return [str(item) for item in parsed]
        return [item.strip() for item in text.split(",") if item.strip()]
    raise ContextError(f"{PREFIX}{key}: expected a list or a comma-separated string, got {type(value).__name__}")


def _as_bool(key: str, value: object, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ContextError(f"{PREFIX}{key}: expected true or false, got {value!r}")


def _choice(key: str, value: object, allowed: tuple[str, ...], default: str) -> Any:
    text = default if value is None else str(value)
    if text not in allowed:
        raise ContextError(f"{PREFIX}{key}: {text!r} is not one of {', '.join(allowed)}")
    return text


@dataclass(frozen=True)
class DomainSettings:
    """The public name of an active-passive gateway and the hosted zone that holds it (no lookup needed)."""

    name: str
    hosted_zone_id: str
    hosted_zone_name: str

    def regional_name(self, region: str) -> str:
        """A per-region name on the same API: what Route53 health-checks, and a direct address per region."""
        return f"{region}.{self.name}"


@dataclass(frozen=True)
class DeploymentContext:
    """Everything a synth needs to know; no value here is looked up from a live account."""

    account: str
    pattern: Pattern = "regional"
    name: str = "skyrelay"
    region: str = "us-east-1"
    regions: list[str] = field(default_factory=list)
    primary_region: str = "us-east-1"
    secondary_region: str = "us-west-2"
    lambda_bundle: str | None = None
    lambda_entry: EntryKind = "runtime-stream"
    lambda_handler: str | None = None
    lambda_exec_wrapper: str = "handlers/aws/stream_bootstrap"
    lambda_architecture: Literal["arm64", "x86_64"] = "arm64"
    python_version: str = "3.12"
    lambda_memory_mb: int = 1024
    front_door: FrontDoor = "function-url"
    auth: Auth = "iam"
    bedrock_models: list[str] = field(default_factory=list)
    bedrock_inference_profiles: list[str] = field(default_factory=list)
    bedrock_model_regions: list[str] = field(default_factory=list)
    redis: RedisKind = "replication-group"
    redis_node_type: str = "cache.t4g.small"
    config_store: ConfigStoreKind = "s3"
    config_file: str | None = None
    log_retention_days: int = 90
    alarm_email: str | None = None
    domain: DomainSettings | None = None
    eks_cluster_name: str | None = None
    eks_oidc_provider_arn: str | None = None
    eks_kubectl_role_arn: str | None = None
    eks_vpc_id: str | None = None
    eks_security_group_id: str | None = None
    eks_public_access_cidrs: list[str] = field(default_factory=list)
    image: str = "ghcr.io/skyrelay/skyrelay:0.1.0"
    namespace: str = "skyrelay"

    @property
    def bundle_path(self) -> Path:
        """The zip ``skyrelay bundle --cloud aws --arch <arch> --out build`` writes, unless one is named."""
        name = self.lambda_bundle or f"build/aws/skyrelay-lambda-{self.lambda_architecture}-py{self.python_version}.zip"
        path = Path(name)
        return path if path.is_absolute() else REPO_ROOT / path

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> DeploymentContext:
        """Build from a flat ``{"skyrelay:key": value}`` mapping (the shape of CDK context)."""

        def get(key: str) -> Any:
            return values.get(PREFIX + key)

        account = get("account")
        if not account or not str(account).isdigit() or len(str(account)) != 12:
            raise ContextError(f"{PREFIX}account: a 12-digit AWS account id is required (no env-agnostic stacks)")
        domain = None
        if get("domainName"):
            zone_id, zone_name = get("hostedZoneId"), get("hostedZoneName")
            if not zone_id or not zone_name:
                raise ContextError(f"{PREFIX}domainName needs {PREFIX}hostedZoneId and {PREFIX}hostedZoneName")
            domain = DomainSettings(str(get("domainName")), str(zone_id), str(zone_name))
        region = str(get("region") or "us-east-1")
        context = cls(
            account=str(account),
            pattern=_choice("pattern", get("pattern"), ("regional", "multi-regional", "active-passive", "eks"),
                            "regional"),
            name=str(get("name") or "skyrelay"),
            region=region,
            regions=_as_list("regions", get("regions")) or [region],
            primary_region=str(get("primaryRegion") or "us-east-1"),
            secondary_region=str(get("secondaryRegion") or "us-west-2"),
            lambda_bundle=get("lambdaBundle"),
            lambda_entry=_choice("lambdaEntry", get("lambdaEntry"), ("web-adapter", "runtime-stream", "buffered"),
                                 "runtime-stream"),
            lambda_handler=get("lambdaHandler"),
            lambda_exec_wrapper=str(get("lambdaExecWrapper") or "handlers/aws/stream_bootstrap"),
            lambda_architecture=_choice("lambdaArchitecture", get("lambdaArchitecture"), ("arm64", "x86_64"),
                                        "arm64"),
            python_version=str(get("pythonVersion") or "3.12"),
            lambda_memory_mb=int(get("lambdaMemoryMb") or 1024),
            front_door=_choice("frontDoor", get("frontDoor"), ("function-url", "rest-api", "both"), "function-url"),
            auth=_choice("auth", get("auth"), ("iam", "gateway-keys"), "iam"),
            bedrock_models=_as_list("bedrockModels", get("bedrockModels")),
            bedrock_inference_profiles=_as_list("bedrockInferenceProfiles", get("bedrockInferenceProfiles")),
            bedrock_model_regions=_as_list("bedrockModelRegions", get("bedrockModelRegions")),
            redis=_choice("redis", get("redis"), ("replication-group", "serverless"), "replication-group"),
            redis_node_type=str(get("redisNodeType") or "cache.t4g.small"),
            config_store=_choice("configStore", get("configStore"), ("s3", "ssm"), "s3"),
            config_file=get("configFile"),
            log_retention_days=int(get("logRetentionDays") or 90),
            alarm_email=get("alarmEmail"),
            domain=domain,
            eks_cluster_name=get("eksClusterName"),
            eks_oidc_provider_arn=get("eksOidcProviderArn"),
            eks_kubectl_role_arn=get("eksKubectlRoleArn"),
            eks_vpc_id=get("eksVpcId"),
            eks_security_group_id=get("eksSecurityGroupId"),
            eks_public_access_cidrs=_as_list("eksPublicAccessCidrs", get("eksPublicAccessCidrs")),
            image=str(get("image") or "ghcr.io/skyrelay/skyrelay:0.1.0"),
            namespace=str(get("namespace") or "skyrelay"),
        )
        context.validate()
        return context

    def validate(self) -> None:
        if not self.bedrock_models and not self.bedrock_inference_profiles:
            raise ContextError(
                f"{PREFIX}bedrockModels or {PREFIX}bedrockInferenceProfiles: name the models the gateway may invoke "
                "(the role is granted exactly those, never foundation-model/*)"
            )
        if self.pattern == "active-passive":
            if self.domain is None:
                raise ContextError(f"{PREFIX}domainName: active-passive needs a DNS name for Route53 failover")
            if self.primary_region == self.secondary_region:
                raise ContextError(f"{PREFIX}secondaryRegion must differ from {PREFIX}primaryRegion")
        needed = ("eks_oidc_provider_arn", "eks_kubectl_role_arn", "eks_vpc_id", "eks_security_group_id")
        if self.eks_cluster_name and not all(getattr(self, attr) for attr in needed):
            raise ContextError(
                f"{PREFIX}eksClusterName (an existing cluster) needs {PREFIX}eksOidcProviderArn and "
                f"{PREFIX}eksKubectlRoleArn (IRSA, Helm install), {PREFIX}eksVpcId and {PREFIX}eksSecurityGroupId "
                "(Redis is placed in the cluster's VPC and admits the cluster security group)"
            )
        if self.lambda_entry == "runtime-stream" and not self.lambda_exec_wrapper.strip():
            raise ContextError(
                f"{PREFIX}lambdaExecWrapper: the runtime-stream entry needs the bundle's exec wrapper script "
                "(it replaces the Python runtime client with the streaming one)"
            )

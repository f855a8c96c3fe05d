"""A regional gateway stack: network, log bucket, Redis, config store, the gateway function, alarms — and, for an
active-passive pair, this region's custom domains, health check and failover record plus log replication."""

from __future__ import annotations

from typing import Literal

from aws_cdk import CfnOutput, Environment, Stack
from constructs import Construct

from skyrelay_infra.alarms import GatewayAlarms
from skyrelay_infra.config_store import ConfigStore
from skyrelay_infra.context import DeploymentContext
from skyrelay_infra.failover import RegionalFailover
from skyrelay_infra.gateway import SkyrelayGateway
from skyrelay_infra.lambda_entry import LambdaEntry
from skyrelay_infra.log_storage import LogStorage
from skyrelay_infra.nag import acknowledge
from skyrelay_infra.network import GatewayNetwork
from skyrelay_infra.redis_cache import GatewayRedis


class RegionalGatewayStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        context: DeploymentContext,
        region: str,
        failover_role: Literal["PRIMARY", "SECONDARY"] | None = None,
        replicate_logs_to: str | None = None,
    ) -> None:
        super().__init__(
            scope, construct_id, env=Environment(account=context.account, region=region),
            description=f"Skyrelay regional gateway ({context.name}, {region}"
                        f"{', ' + failover_role.lower() if failover_role else ''})",
        )
        self.storage = LogStorage(self, "LogStorage", name=context.name, retention_days=context.log_retention_days,
                                  replicate_to_region=replicate_logs_to)
        self.network = GatewayNetwork(self, "Network", ssm_endpoint=context.config_store == "ssm")
        self.redis = GatewayRedis(
            self, "Redis", name=context.name, vpc=self.network.vpc, subnets=self.network.private_subnets,
            key=self.storage.key, serverless=context.redis == "serverless", node_type=context.redis_node_type)
        self.config = ConfigStore(self, "ConfigStore", name=context.name, kind=context.config_store,
                                  storage=self.storage, config_file=context.config_file)
        rest_api = context.front_door in ("rest-api", "both") or failover_role is not None
        function_url = context.front_door in ("function-url", "both")
        self.gateway = SkyrelayGateway(
            self, "Gateway", context=context, entry=LambdaEntry.from_context(context), storage=self.storage,
            network=self.network, redis=self.redis, config=self.config, rest_api=rest_api,
            function_url=function_url)
        self.alarms = GatewayAlarms(self, "Alarms", name=context.name, function=self.gateway.function,
                                    api=self.gateway.api, key=self.storage.key, email=context.alarm_email)
        self.failover: RegionalFailover | None = None
        if failover_role is not None:
            assert context.domain is not None and self.gateway.api is not None
            self.failover = RegionalFailover(self, "Failover", domain=context.domain, api=self.gateway.api,
                                             role=failover_role)
        CfnOutput(self, "Region", value=region)
        CfnOutput(self, "LogBucket", value=self.storage.bucket.bucket_name)
        CfnOutput(self, "RedisEndpoint", value=self.redis.connection.url)
        self._acknowledge(context)

    def _acknowledge(self, context: DeploymentContext) -> None:
        acknowledge(
            self.storage.access_logs, "AwsSolutions-S1",
            "this bucket is the server-access-log destination; logging it into itself would loop")
        acknowledge(
            self.redis.secret, "AwsSolutions-SMG4",
            "rotating a Redis AUTH token is an ElastiCache ModifyReplicationGroup with AuthTokenUpdateStrategy "
            "ROTATE then SET, run as a change (README: rotate the Redis token), not a Lambda rotation schedule")
        bucket_id = self.get_logical_id(self.storage.bucket.node.default_child)  # type: ignore[arg-type]
        acknowledge(
            self.gateway.role, "AwsSolutions-IAM5",
            "the S3 sink writes one object per batch under logs/ with generated names; the prefix is the "
            "narrowest resource that allows it",
            f"Resource::<{bucket_id}.Arn>/logs/*")
        if self.storage.replication_role is not None:
            acknowledge(
                self.storage.replication_role, "AwsSolutions-IAM5",
                "S3 replication reads every object version of this bucket and writes into the standby bucket; "
                "the standby key is unknown here and is pinned by its alias condition",
                f"Resource::<{bucket_id}.Arn>/*",
                f"Resource::arn:aws:s3:::{context.name}-logs-{context.account}-{context.secondary_region}/*",
                f"Resource::arn:aws:kms:{context.secondary_region}:{context.account}:key/*")

"""Shared state for every replica: ElastiCache with TLS, AUTH and Multi-AZ, reachable only from the gateway.

Two shapes: a replication group (primary + replica in two AZs, automatic failover, KMS at rest, non-default port,
an AUTH token) or ElastiCache Serverless (always TLS and multi-AZ; a user group whose ``skyrelay`` user has the
token as password, the ``default`` user switched off; cluster-mode endpoint). The token is generated in Secrets
Manager; the template carries only a ``{{resolve:secretsmanager:...}}`` reference, resolved by CloudFormation.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

REDIS_PORT = 6380  # not the default 6379: scanners probing the default port find nothing
REDIS_USER = "skyrelay"


@dataclass(frozen=True)
class RedisConnection:
    """What the gateway's settings need: ``SKYRELAY_REDIS_URL``, ``_PASSWORD`` and ``_CLUSTER``."""

    url: str
    password: str
    cluster: bool


class GatewayRedis(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        key: kms.IKey,
        serverless: bool,
        node_type: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, description=f"{name}: Redis, reachable from the gateway only",
            allow_all_outbound=False)
        self.secret = secretsmanager.Secret(
            self,
            "AuthToken",
            description=f"{name}: Redis AUTH token",
            encryption_key=key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True, include_space=False),
            removal_policy=RemovalPolicy.DESTROY,
        )
        token = self.secret.secret_value.unsafe_unwrap()  # a {{resolve:...}} reference, never the value
        subnet_ids = vpc.select_subnets(subnet_type=subnets.subnet_type).subnet_ids
        if serverless:
            self.connection = self._serverless(name, subnet_ids, key, token)
        else:
            self.connection = self._replication_group(name, subnet_ids, key, token, node_type)

    def allow_from(self, peer: ec2.IConnectable) -> None:
        port = 6379 if self.connection.cluster else REDIS_PORT
        self.security_group.add_ingress_rule(
            ec2.Peer.security_group_id(peer.connections.security_groups[0].security_group_id),
            ec2.Port.tcp(port), "gateway to Redis")
        if self.connection.cluster:  # serverless also serves a read-replica port
            self.security_group.add_ingress_rule(
                ec2.Peer.security_group_id(peer.connections.security_groups[0].security_group_id),
                ec2.Port.tcp(6380), "gateway to Redis readers")

    def _replication_group(self, name: str, subnet_ids: list[str], key: kms.IKey, token: str,
                           node_type: str) -> RedisConnection:
        subnet_group = elasticache.CfnSubnetGroup(
            self, "Subnets", description=f"{name}: Redis subnets", subnet_ids=subnet_ids)
        group = elasticache.CfnReplicationGroup(
            self,
            "ReplicationGroup",
            replication_group_description=f"{name}: cache, rate limits, breaker, config cache",
            engine="redis",
            engine_version="7.1",
            cache_node_type=node_type,
            num_cache_clusters=2,
            multi_az_enabled=True,
            automatic_failover_enabled=True,
            at_rest_encryption_enabled=True,
            kms_key_id=key.key_arn,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            auth_token=token,
            port=REDIS_PORT,
            cache_subnet_group_name=subnet_group.ref,
            security_group_ids=[self.security_group.security_group_id],
            snapshot_retention_limit=1,
            auto_minor_version_upgrade=True,
        )
        endpoint = group.attr_primary_end_point_address
        return RedisConnection(url=f"rediss://{endpoint}:{REDIS_PORT}/0", password=token, cluster=False)

    def _serverless(self, name: str, subnet_ids: list[str], key: kms.IKey, token: str) -> RedisConnection:
        stack = Stack.of(self)
        default_user = elasticache.CfnUser(
            self, "DefaultUser", engine="redis", user_id=f"{name}-default-off", user_name="default",
            access_string="off -@all", authentication_mode={"Type": "password", "Passwords": [token]})
        gateway_user = elasticache.CfnUser(
            self, "GatewayUser", engine="redis", user_id=f"{name}-gateway", user_name=REDIS_USER,
            access_string="on ~* &* +@all -@dangerous +info",
            authentication_mode={"Type": "password", "Passwords": [token]})
        user_group = elasticache.CfnUserGroup(
            self, "Users", engine="redis", user_group_id=f"{name}-users",
            user_ids=[default_user.user_id, gateway_user.user_id])
        user_group.node.add_dependency(default_user)
        user_group.node.add_dependency(gateway_user)
        cache = elasticache.CfnServerlessCache(
            self,
            "Serverless",
            engine="redis",
            serverless_cache_name=f"{name}-{stack.region}",
            description=f"{name}: cache, rate limits, breaker, config cache",
            kms_key_id=key.key_arn,
            security_group_ids=[self.security_group.security_group_id],
            subnet_ids=subnet_ids,
            user_group_id=user_group.user_group_id,
            snapshot_retention_limit=1,
        )
        cache.node.add_dependency(user_group)
        endpoint = cache.attr_endpoint_address
        return RedisConnection(url=f"rediss://{REDIS_USER}@{endpoint}:6379/0", password=token, cluster=True)

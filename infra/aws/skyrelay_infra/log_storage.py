"""The request-log bucket: KMS (CMK, rotated), TLS only, no public access, versioned, expiring, access-logged.

Names are deterministic (``<name>-logs-<account>-<region>``, key alias ``alias/<name>-logs``) so that an
active-passive pair can replicate into the standby's bucket and key without a cross-region stack reference: the
standby is deployed first and the primary names it. The same bucket holds the config store object under
``config/``; the log lifecycle only touches ``logs/``.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

LOG_PREFIX = "logs/"
CONFIG_PREFIX = "config/"


def log_bucket_name(name: str, account: str, region: str) -> str:
    return f"{name}-logs-{account}-{region}"


def log_key_alias(name: str) -> str:
    return f"alias/{name}-logs"


class LogStorage(Construct):
    """KMS key + access-log bucket + log bucket; ``replicate_to`` adds S3 CRR into another region's bucket."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        retention_days: int,
        replicate_to_region: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.key = kms.Key(
            self,
            "Key",
            alias=log_key_alias(name),
            description=f"{name}: request logs and config store",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # the S3 log delivery service cannot write SSE-KMS
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(retention_days))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=log_bucket_name(name, stack.account, stack.region),
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="log-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-request-logs",
                    prefix=LOG_PREFIX,
                    expiration=Duration.days(retention_days),
                    noncurrent_version_expiration=Duration.days(7),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                    transitions=[
                        s3.Transition(storage_class=s3.StorageClass.INTELLIGENT_TIERING,
                                      transition_after=Duration.days(30))
                    ] if retention_days > 30 else None,
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.replication_role: iam.Role | None = None
        if replicate_to_region:
            self._replicate(name, replicate_to_region)

    def _replicate(self, name: str, region: str) -> None:
        """CRR of KMS-encrypted objects into the standby bucket, re-encrypted with the standby's own key."""
        stack = Stack.of(self)
        destination_bucket = f"arn:aws:s3:::{log_bucket_name(name, stack.account, region)}"
        replica_key_alias = f"arn:aws:kms:{region}:{stack.account}:{log_key_alias(name)}"
        role = iam.Role(
            self,
            "ReplicationRole",
            assumed_by=iam.ServicePrincipal("s3.amazonaws.com"),
            description=f"{name}: replicate request logs to {region}",
        )
        role.add_to_policy(iam.PolicyStatement(
            actions=["s3:GetReplicationConfiguration", "s3:ListBucket"], resources=[self.bucket.bucket_arn]))
        role.add_to_policy(iam.PolicyStatement(
            actions=["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"],
            resources=[self.bucket.arn_for_objects("*")]))
        role.add_to_policy(iam.PolicyStatement(
            actions=["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
            resources=[f"{destination_bucket}/*"]))
        role.add_to_policy(iam.PolicyStatement(
            actions=["kms:Decrypt"], resources=[self.key.key_arn],
            conditions={"StringLike": {"kms:ViaService": f"s3.{stack.region}.amazonaws.com"}}))
        # The standby key is addressed by its alias: its id is unknown here (no cross-region reference).
        role.add_to_policy(iam.PolicyStatement(
            actions=["kms:Encrypt", "kms:GenerateDataKey"],
            resources=[f"arn:aws:kms:{region}:{stack.account}:key/*"],
            conditions={
                "StringLike": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
                "ForAnyValue:StringEquals": {"kms:ResourceAliases": log_key_alias(name)},
            }))
        cfn = self.bucket.node.default_child
        assert isinstance(cfn, s3.CfnBucket)
        cfn.replication_configuration = s3.CfnBucket.ReplicationConfigurationProperty(
            role=role.role_arn,
            rules=[
                s3.CfnBucket.ReplicationRuleProperty(
                    id="replicate-logs-to-standby",
                    status="Enabled",
                    priority=1,
                    filter=s3.CfnBucket.ReplicationRuleFilterProperty(prefix=""),
                    delete_marker_replication=s3.CfnBucket.DeleteMarkerReplicationProperty(status="Disabled"),
                    source_selection_criteria=s3.CfnBucket.SourceSelectionCriteriaProperty(
                        sse_kms_encrypted_objects=s3.CfnBucket.SseKmsEncryptedObjectsProperty(status="Enabled")),
                    destination=s3.CfnBucket.ReplicationDestinationProperty(
                        bucket=destination_bucket,
                        encryption_configuration=s3.CfnBucket.EncryptionConfigurationProperty(
                            replica_kms_key_id=replica_key_alias),
                    ),
                )
            ],
        )
        self.replication_role = role

    def grant_log_writes(self, grantee: iam.IGrantable) -> None:
        """Put under ``logs/`` and encrypt with the key: what the S3 sink does, nothing more."""
        iam.Grant.add_to_principal(
            grantee=grantee, actions=["s3:PutObject"], resource_arns=[self.bucket.arn_for_objects(f"{LOG_PREFIX}*")])
        iam.Grant.add_to_principal(
            grantee=grantee, actions=["kms:GenerateDataKey", "kms:Encrypt"], resource_arns=[self.key.key_arn])

    def grant_config_read(self, grantee: iam.IGrantable, key: str) -> None:
        """Read one config store object (ETag polling uses GetObject with If-None-Match)."""
        iam.Grant.add_to_principal(
            grantee=grantee, actions=["s3:GetObject"], resource_arns=[self.bucket.arn_for_objects(key)])
        iam.Grant.add_to_principal(grantee=grantee, actions=["kms:Decrypt"], resource_arns=[self.key.key_arn])

"""Single gateway on EKS: a cluster (or an existing one by name), an IRSA service account holding the same
least-privilege policy as the Lambda role, ElastiCache, the KMS-encrypted log bucket, and the Helm chart from
``infra/helm/skyrelay`` installed by CDK (chart shipped as an S3 asset; no chart repository).

A new cluster uses EKS Auto Mode, all control-plane log types, KMS envelope encryption of Kubernetes secrets, and an
API endpoint that is private unless ``skyrelay:eksPublicAccessCidrs`` names who may reach it. The Redis AUTH token
stays in Secrets Manager: CloudFormation does not resolve secret references inside custom resources, so the chart
reads it from a Kubernetes Secret that the deploy guide creates from Secrets Manager (the stack prints the command).
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk.lambda_layer_kubectl_v33 import KubectlV33Layer
from constructs import Construct

from skyrelay_infra.bedrock import bedrock_invoke_statement
from skyrelay_infra.context import REPO_ROOT, DeploymentContext
from skyrelay_infra.log_storage import LOG_PREFIX, LogStorage
from skyrelay_infra.nag import acknowledge
from skyrelay_infra.network import GatewayNetwork
from skyrelay_infra.redis_cache import GatewayRedis

CHART_DIR = REPO_ROOT / "infra" / "helm" / "skyrelay"
REDIS_SECRET_NAME = "skyrelay-redis"


class EksGatewayStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, context: DeploymentContext) -> None:
        super().__init__(scope, construct_id, env=Environment(account=context.account, region=context.region),
                         description=f"Skyrelay single gateway on EKS ({context.name}, {context.region})")
        self.storage = LogStorage(self, "LogStorage", name=context.name, retention_days=context.log_retention_days)
        kubectl_layer = KubectlV33Layer(self, "KubectlLayer")
        self.cluster: eks.ICluster | eks.Cluster
        if context.eks_cluster_name:
            vpc = ec2.Vpc.from_lookup(self, "ClusterVpc", vpc_id=str(context.eks_vpc_id))
            subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
            self.cluster = eks.Cluster.from_cluster_attributes(
                self, "Cluster", cluster_name=context.eks_cluster_name, vpc=vpc,
                security_group_ids=[str(context.eks_security_group_id)],
                open_id_connect_provider=iam.OpenIdConnectProvider.from_open_id_connect_provider_arn(
                    self, "ClusterOidc", str(context.eks_oidc_provider_arn)),
                kubectl_provider_options=eks.KubectlProviderOptions(
                    kubectl_layer=kubectl_layer,
                    role=iam.Role.from_role_arn(self, "KubectlRole", str(context.eks_kubectl_role_arn))))
        else:
            network = GatewayNetwork(self, "Network")
            vpc, subnets = network.vpc, network.private_subnets
            endpoint = (eks.EndpointAccess.PUBLIC_AND_PRIVATE.only_from(*context.eks_public_access_cidrs)
                        if context.eks_public_access_cidrs else eks.EndpointAccess.PRIVATE)
            self.cluster = eks.Cluster(
                self,
                "Cluster",
                cluster_name=f"{context.name}-{context.region}",
                version=eks.KubernetesVersion.V1_33,
                vpc=vpc,
                vpc_subnets=[subnets],
                endpoint_access=endpoint,
                secrets_encryption_key=self.storage.key,
                cluster_logging=[eks.ClusterLoggingTypes.API, eks.ClusterLoggingTypes.AUDIT,
                                 eks.ClusterLoggingTypes.AUTHENTICATOR, eks.ClusterLoggingTypes.CONTROLLER_MANAGER,
                                 eks.ClusterLoggingTypes.SCHEDULER],
                kubectl_provider_options=eks.KubectlProviderOptions(kubectl_layer=kubectl_layer),
            )
        self.redis = GatewayRedis(
            self, "Redis", name=context.name, vpc=vpc, subnets=subnets, key=self.storage.key,
            serverless=context.redis == "serverless", node_type=context.redis_node_type)
        self.redis.allow_from(self.cluster)

        namespace = self.cluster.add_manifest("Namespace", {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": context.namespace, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
        })
        self.service_account = self.cluster.add_service_account(
            "GatewayServiceAccount", name=context.name, namespace=context.namespace,
            identity_type=eks.IdentityType.IRSA)
        self.service_account.node.add_dependency(namespace)
        self.service_account.add_to_principal_policy(bedrock_invoke_statement(
            models=context.bedrock_models, inference_profiles=context.bedrock_inference_profiles,
            region=self.region, account=self.account, model_regions=context.bedrock_model_regions))
        self.storage.grant_log_writes(self.service_account)

        chart = s3_assets.Asset(self, "Chart", path=str(CHART_DIR))
        self.chart = self.cluster.add_helm_chart(
            "Gateway",
            chart_asset=chart,
            release=context.name,
            namespace=context.namespace,
            wait=False,  # pods start once the Redis secret exists (deploy guide step 3)
            values=self.chart_values(context),
        )
        self.chart.node.add_dependency(self.service_account)

        CfnOutput(self, "ClusterName", value=self.cluster.cluster_name)
        CfnOutput(self, "ServiceAccountRole", value=self.service_account.role.role_arn)
        CfnOutput(self, "LogBucket", value=self.storage.bucket.bucket_name)
        CfnOutput(self, "RedisEndpoint", value=self.redis.connection.url)
        CfnOutput(
            self, "CreateRedisSecret",
            description="run once after deploy: copies the Redis AUTH token into the namespace",
            value=(f"kubectl -n {context.namespace} create secret generic {REDIS_SECRET_NAME} --from-literal="
                   f"password=\"$(aws secretsmanager get-secret-value --region {self.region} --secret-id "
                   f"{self.redis.secret.secret_arn} --query SecretString --output text)\""))
        self._acknowledge()

    def chart_values(self, context: DeploymentContext) -> dict[str, object]:
        """Chart values wired to this stack's resources (tokens resolve at deploy time)."""
        return {
            "image": {"repository": context.image.rsplit(":", 1)[0], "tag": context.image.rsplit(":", 1)[1]},
            "command": ["python", "-m", "handlers.aws.server"],
            "serviceAccount": {"create": False, "name": self.service_account.service_account_name},
            "redis": {
                "url": self.redis.connection.url,
                "cluster": self.redis.connection.cluster,
                "passwordSecret": {"name": REDIS_SECRET_NAME, "key": "password"},
            },
            "logs": {
                "sink": f"s3://{self.storage.bucket.bucket_name}/{LOG_PREFIX.rstrip('/')}",
                "kmsKeyId": self.storage.key.key_arn,
            },
            "env": {"AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region},
        }

    def _acknowledge_cdk_eks_internals(self) -> None:
        """Findings on roles and functions that aws-cdk-lib's EKS constructs create, not on the gateway's own."""
        if isinstance(self.cluster, eks.Cluster):
            acknowledge(
                self.cluster, "AwsSolutions-IAM4",
                "EKS Auto Mode requires these AWS-managed policies on the cluster and node roles; AWS versions them "
                "with the service",
                *(f"Policy::arn:<AWS::Partition>:iam::aws:policy/{name}" for name in (
                    "AmazonEKSClusterPolicy", "AmazonEKSComputePolicy", "AmazonEKSBlockStoragePolicy",
                    "AmazonEKSLoadBalancingPolicy", "AmazonEKSNetworkingPolicy", "AmazonEKSWorkerNodePolicy",
                    "AmazonEC2ContainerRegistryReadOnly")))
        provider = self.cluster.node.try_find_child("KubectlProvider")
        if provider is None:
            return
        ecr_public = ('{"Fn::If":["' + self.get_logical_id(
            provider.node.find_child("Handler").node.find_child("HasEcrPublic"))  # type: ignore[arg-type]
            + '",{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":iam::aws:policy/'
            'AmazonElasticContainerRegistryPublicReadOnly"]]},{"Ref":"AWS::NoValue"}]}')
        acknowledge(
            provider, "AwsSolutions-IAM4",
            "CDK's kubectl provider runs only at deploy time (helm/kubectl apply) with the AWS-managed Lambda "
            "execution, VPC and ECR read policies that aws-cdk-lib attaches",
            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
            "Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
            f"Policy::{ecr_public}")
        handler = provider.node.find_child("Handler").node.default_child
        acknowledge(
            provider, "AwsSolutions-IAM5",
            "CDK's kubectl provider reads the chart asset from the CDK asset bucket and invokes versions of its own "
            "handler; aws-cdk-lib scopes these, the wildcards are its object and version suffixes",
            "Action::s3:GetBucket*", "Action::s3:GetObject*", "Action::s3:List*",
            f"Resource::arn:aws:s3:::cdk-hnb659fds-assets-{self.account}-{self.region}/*",
            f"Resource::<{self.get_logical_id(handler)}.Arn>:*")  # type: ignore[arg-type]
        acknowledge(
            provider, "AwsSolutions-L1",
            "the kubectl handler's runtime is pinned by aws-cdk-lib's KubectlProvider to match its kubectl layer")

    def _acknowledge(self) -> None:
        self._acknowledge_cdk_eks_internals()
        bucket_id = self.get_logical_id(self.storage.bucket.node.default_child)  # type: ignore[arg-type]
        acknowledge(self.storage.access_logs, "AwsSolutions-S1",
                    "this bucket is the server-access-log destination; logging it into itself would loop")
        acknowledge(self.redis.secret, "AwsSolutions-SMG4",
                    "rotating a Redis AUTH token is an ElastiCache ModifyReplicationGroup with AuthTokenUpdateStrategy "
                    "ROTATE then SET, run as a change (README: rotate the Redis token), not a rotation Lambda")
        acknowledge(self.service_account, "AwsSolutions-IAM5",
                    "the S3 sink writes one object per batch under logs/ with generated names; the prefix is the "
                    "narrowest resource that allows it",
                    f"Resource::<{bucket_id}.Arn>/logs/*")


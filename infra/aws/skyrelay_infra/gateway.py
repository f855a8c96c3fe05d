"""``SkyrelayGateway``: the Lambda from the AWS bundle and its front doors, wired to logs, config, Redis and Bedrock.

Front doors: a Function URL (RESPONSE_STREAM when the entry streams; AWS_IAM or NONE with gateway keys) and/or a
regional API Gateway REST API whose integration streams (``responseTransferMode: STREAM``, 15 minute timeout). With
``auth="iam"`` both front doors require SigV4 except ``GET /v1/health`` (Route53 and load balancers must reach it
unauthenticated), and the gateway is told so with ``SKYRELAY_ALLOW_UNAUTHENTICATED``; with ``"gateway-keys"`` the
gateway's own keys (config store) authenticate every ``/v1`` route.

The role is least privilege: Bedrock invoke on the configured model and inference-profile ARNs only, ``PutObject``
under ``logs/``, ``GetObject`` on the config object (or ``GetParameter`` on the parameter), the KMS calls those need,
and the ENI permissions of a VPC function.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from skyrelay_infra.bedrock import bedrock_invoke_statement
from skyrelay_infra.config_store import ConfigStore
from skyrelay_infra.context import DeploymentContext
from skyrelay_infra.lambda_entry import LambdaEntry
from skyrelay_infra.log_storage import LOG_PREFIX, LogStorage
from skyrelay_infra.nag import acknowledge
from skyrelay_infra.network import GatewayNetwork
from skyrelay_infra.redis_cache import GatewayRedis

STREAM_TIMEOUT = Duration.minutes(15)
BUFFERED_TIMEOUT = Duration.seconds(29)
STAGE = "prod"
PYTHON_RUNTIMES = {
    "3.11": lambda_.Runtime.PYTHON_3_11,
    "3.12": lambda_.Runtime.PYTHON_3_12,
    "3.13": lambda_.Runtime.PYTHON_3_13,
    "3.14": lambda_.Runtime.PYTHON_3_14,
}


class SkyrelayGateway(Construct):
    """One regional gateway function with its front doors; storage, network, Redis and config are passed in."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        context: DeploymentContext,
        entry: LambdaEntry,
        storage: LogStorage,
        network: GatewayNetwork,
        redis: GatewayRedis,
        config: ConfigStore,
        rest_api: bool,
        function_url: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.context = context
        self.entry = entry
        if not context.bundle_path.is_file():
            raise FileNotFoundError(
                f"Lambda bundle {context.bundle_path} not found: build it with `skyrelay bundle --cloud aws "
                f"--arch {context.lambda_architecture} --out build` or point -c skyrelay:lambdaBundle=PATH at the zip")
        entry.check_bundle(context.bundle_path)
        if context.python_version not in PYTHON_RUNTIMES:
            raise ValueError(f"skyrelay:pythonVersion {context.python_version} is not one of {list(PYTHON_RUNTIMES)}")
        architecture = (lambda_.Architecture.ARM_64 if context.lambda_architecture == "arm64"
                        else lambda_.Architecture.X86_64)

        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{context.name}: gateway function in {stack.region}",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(
                "service-role/AWSLambdaVPCAccessExecutionRole")])
        self.role.add_to_policy(bedrock_invoke_statement(
            models=context.bedrock_models, inference_profiles=context.bedrock_inference_profiles,
            region=stack.region, account=stack.account, model_regions=context.bedrock_model_regions))
        storage.grant_log_writes(self.role)
        config.grant_read(self.role)

        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=network.vpc, description=f"{context.name}: gateway function",
            allow_all_outbound=True)
        redis.allow_from(self.security_group)

        environment = {
            "SKYRELAY_LOG_SINK": f"s3://{storage.bucket.bucket_name}/{LOG_PREFIX.rstrip('/')}",
            "SKYRELAY_LOG_S3_KMS_KEY_ID": storage.key.key_arn,
            "SKYRELAY_CONFIG": config.uri,
            "SKYRELAY_REDIS_URL": redis.connection.url,
            "SKYRELAY_REDIS_PASSWORD": redis.connection.password,
            "SKYRELAY_REDIS_CLUSTER": "true" if redis.connection.cluster else "false",
            **entry.environment,
        }
        if context.auth == "iam":
            environment["SKYRELAY_ALLOW_UNAUTHENTICATED"] = "true"

        self.log_group = logs.LogGroup(self, "Logs", retention=logs.RetentionDays.THREE_MONTHS,
                                       removal_policy=RemovalPolicy.DESTROY)
        self.function = lambda_.Function(
            self,
            "Function",
            description=f"{context.name} gateway ({entry.kind})",
            code=lambda_.Code.from_asset(str(context.bundle_path)),
            handler=entry.handler,
            runtime=PYTHON_RUNTIMES[context.python_version],
            architecture=architecture,
            layers=entry.layers(self, context.lambda_architecture),
            memory_size=context.lambda_memory_mb,
            timeout=STREAM_TIMEOUT if entry.streams else Duration.seconds(60),
            environment=environment,
            environment_encryption=storage.key,
            role=self.role,
            vpc=network.vpc,
            vpc_subnets=network.private_subnets,
            security_groups=[self.security_group],
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
        )

        self.url: lambda_.FunctionUrl | None = None
        if function_url:
            self.url = self.function.add_function_url(
                auth_type=(lambda_.FunctionUrlAuthType.AWS_IAM if context.auth == "iam"
                           else lambda_.FunctionUrlAuthType.NONE),
                invoke_mode=lambda_.InvokeMode.RESPONSE_STREAM if entry.streams else lambda_.InvokeMode.BUFFERED,
            )
            CfnOutput(self, "FunctionUrl", value=self.url.url, description="Function URL (OpenAI base: <url>v1)")

        self.api: apigateway.RestApi | None = None
        if rest_api:
            self.api = self._rest_api(context)
            CfnOutput(self, "RestApiUrl", value=self.api.url, description="REST API stage URL (base: <url>v1)")

        CfnOutput(self, "ConfigStore", value=config.uri, description="upload the config store here")
        CfnOutput(self, "LogSink", value=environment["SKYRELAY_LOG_SINK"])
        self._acknowledge(context)

    def _rest_api(self, context: DeploymentContext) -> apigateway.RestApi:
        access_logs = logs.LogGroup(self, "ApiAccessLogs", retention=logs.RetentionDays.THREE_MONTHS,
                                    removal_policy=RemovalPolicy.DESTROY)
        integration = apigateway.LambdaIntegration(
            self.function,
            proxy=True,
            allow_test_invoke=False,
            response_transfer_mode=(apigateway.ResponseTransferMode.STREAM if self.entry.streams
                                    else apigateway.ResponseTransferMode.BUFFERED),
            timeout=STREAM_TIMEOUT if self.entry.streams else BUFFERED_TIMEOUT,
        )
        authorization = (apigateway.AuthorizationType.IAM if context.auth == "iam"
                         else apigateway.AuthorizationType.NONE)
        api = apigateway.RestApi(
            self,
            "Api",
            rest_api_name=f"{context.name}-gateway",
            description="Skyrelay: OpenAI-compatible LLM gateway",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.DESTROY,
            deploy_options=apigateway.StageOptions(
                stage_name=STAGE,
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # full request logging would write provider and gateway keys to logs
                metrics_enabled=True,
                access_log_destination=apigateway.LogGroupLogDestination(access_logs),
                access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
                    caller=False, http_method=True, ip=True, protocol=True, request_time=True,
                    resource_path=True, response_length=True, status=True, user=False),
                throttling_rate_limit=1000,
                throttling_burst_limit=2000,
            ),
        )
        api.root.add_method("ANY", integration, authorization_type=authorization)
        api.root.add_resource("{proxy+}").add_method("ANY", integration, authorization_type=authorization)
        health = api.root.add_resource("v1").add_resource("health")
        health.add_method("GET", integration, authorization_type=apigateway.AuthorizationType.NONE)
        return api

    def _acknowledge(self, context: DeploymentContext) -> None:
        acknowledge(
            self.role, "AwsSolutions-IAM4",
            "AWSLambdaVPCAccessExecutionRole is the AWS-maintained minimum for a VPC function (ENIs, its own logs)",
            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole")
        if context.python_version != "3.14":
            acknowledge(
                self.function, "AwsSolutions-L1",
                f"the runtime must match the CPython ABI of the bundle's compiled wheels (built for "
                f"{context.python_version}); raise skyrelay:pythonVersion together with the bundle")
        if self.api is not None:
            reason_auth = ("callers authenticate with SigV4 (IAM) on every route but GET /v1/health, which Route53 "
                           "health checks must reach unauthenticated" if context.auth == "iam" else
                           "the gateway authenticates every /v1 route itself with gateway API keys (SHA-256 "
                           "digests in the config store); /v1/health is deliberately public")
            acknowledge(self.api, "AwsSolutions-APIG4", reason_auth)
            acknowledge(self.api, "AwsSolutions-COG4", reason_auth)
            acknowledge(
                self.api, "AwsSolutions-APIG2",
                "a proxy integration carries arbitrary OpenAI-shaped JSON; the gateway validates every body "
                "against its own schema and answers 400 in OpenAI's error shape")
            acknowledge(
                self.api, "AwsSolutions-APIG3",
                "WAF is an organisation-level choice (associate a web ACL with the stage); the gateway enforces "
                "per-key rate limits and the stage has throttling")
            acknowledge(
                self.api, "AwsSolutions-IAM4",
                "AmazonAPIGatewayPushToCloudWatchLogs is the AWS-maintained policy API Gateway needs for the "
                "account-level execution-logging role",
                "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs")

"""Alarms a gateway operator is paged for: function errors and throttles, p99 duration, REST 5xx and p99 latency.

They publish to an SNS topic encrypted with the gateway's CMK and reachable over TLS only; ``skyrelay:alarmEmail``
subscribes an address. p99 rather than average: a slow provider shows up in the tail first.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

PERIOD = Duration.minutes(5)


class GatewayAlarms(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        function: lambda_.Function,
        api: apigateway.RestApi | None,
        key: kms.Key,
        email: str | None,
        latency_p99_ms: int = 30_000,
    ) -> None:
        super().__init__(scope, construct_id)
        key.add_to_resource_policy(iam.PolicyStatement(
            sid="CloudWatchAlarmsPublishToEncryptedTopic",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],  # in a key policy "*" means this key
        ))
        self.topic = sns.Topic(self, "Topic", display_name=f"{name} gateway alarms", master_key=key,
                               enforce_ssl=True)
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        action = actions.SnsAction(self.topic)
        alarms = [
            cloudwatch.Alarm(
                self, "FunctionErrors", metric=function.metric_errors(period=PERIOD, statistic="Sum"),
                threshold=5, evaluation_periods=1, alarm_description=f"{name}: gateway function errors",
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING),
            cloudwatch.Alarm(
                self, "FunctionThrottles", metric=function.metric_throttles(period=PERIOD, statistic="Sum"),
                threshold=1, evaluation_periods=1, alarm_description=f"{name}: gateway function throttled",
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING),
            cloudwatch.Alarm(
                self, "FunctionDurationP99", metric=function.metric_duration(period=PERIOD, statistic="p99"),
                threshold=latency_p99_ms, evaluation_periods=3, datapoints_to_alarm=2,
                alarm_description=f"{name}: p99 invocation duration",
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING),
        ]
        if api is not None:
            alarms += [
                cloudwatch.Alarm(
                    self, "Api5xx", metric=api.metric_server_error(period=PERIOD, statistic="Sum"),
                    threshold=5, evaluation_periods=1, alarm_description=f"{name}: REST API 5xx",
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING),
                cloudwatch.Alarm(
                    self, "ApiLatencyP99", metric=api.metric_latency(period=PERIOD, statistic="p99"),
                    threshold=latency_p99_ms, evaluation_periods=3, datapoints_to_alarm=2,
                    alarm_description=f"{name}: REST API p99 latency",
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING),
            ]
        for alarm in alarms:
            alarm.add_alarm_action(action)
        self.alarms = alarms

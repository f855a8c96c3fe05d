"""The VPC a regional gateway runs in: two AZs, private subnets with one NAT (OpenAI, Vertex and Azure are on the
internet), flow logs, and the endpoints that keep AWS traffic off the NAT: S3 (gateway endpoint) and Bedrock
runtime (interface endpoint), plus SSM when the config store is a parameter.

The AZ names come from the ``availability-zones`` context lookup; ``python app.py`` loads ``cdk.context.json`` and
the synth fails if that lookup is missing instead of deploying the ``dummy1a`` placeholder.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from skyrelay_infra.nag import acknowledge


class GatewayNetwork(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, ssm_endpoint: bool = False) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=1,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS,
                                        cidr_mask=22),
            ],
            restrict_default_security_group=True,
        )
        flow_logs = logs.LogGroup(self, "FlowLogs", retention=logs.RetentionDays.THREE_MONTHS,
                                  removal_policy=RemovalPolicy.DESTROY)
        self.vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs))
        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
        endpoints = [self.vpc.add_interface_endpoint(
            "BedrockRuntime", service=ec2.InterfaceVpcEndpointAwsService.BEDROCK_RUNTIME)]
        if ssm_endpoint:
            endpoints.append(self.vpc.add_interface_endpoint("Ssm", service=ec2.InterfaceVpcEndpointAwsService.SSM))
        for endpoint in endpoints:
            acknowledge(endpoint, "AwsSolutions-EC23",
                        "interface endpoints admit HTTPS from the VPC's own CIDR (an Fn::GetAtt the rule cannot "
                        "evaluate), not from 0.0.0.0/0")

    @property
    def private_subnets(self) -> ec2.SubnetSelection:
        return ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)

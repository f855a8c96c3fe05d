"""One region's half of an active-passive pair: custom domains, a Route53 health check and a failover record.

A Function URL cannot carry a custom domain, so failover goes through the regional REST API. Each regional stack
owns its own records in the shared hosted zone (same name, its own ``SetIdentifier``), so no stack references
another region:
- ``<domain>``: failover alias A record, PRIMARY or SECONDARY, ``EvaluateTargetHealth``, tied to this region's
  health check;
- ``<region>.<domain>``: a plain alias to the same API — what the health check probes (``GET /v1/health`` over
  HTTPS, 30 s interval, 3 failures, as the seed specifies) and a direct per-region address for clients.
Certificates are ACM, per region, DNS-validated in the same zone.
"""

from __future__ import annotations

from typing import Literal

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_route53 as route53
from constructs import Construct

from skyrelay_infra.context import DomainSettings

HEALTH_PATH = "/v1/health"
HEALTH_INTERVAL_S = 30
HEALTH_FAILURE_THRESHOLD = 3


class RegionalFailover(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        domain: DomainSettings,
        api: apigateway.RestApi,
        role: Literal["PRIMARY", "SECONDARY"],
    ) -> None:
        super().__init__(scope, construct_id)
        region = Stack.of(self).region
        regional_name = domain.regional_name(region)
        zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "Zone", hosted_zone_id=domain.hosted_zone_id, zone_name=domain.hosted_zone_name)
        certificate = acm.Certificate(
            self, "Certificate", domain_name=domain.name, subject_alternative_names=[regional_name],
            validation=acm.CertificateValidation.from_dns(zone))

        shared = apigateway.DomainName(
            self, "Domain", domain_name=domain.name, certificate=certificate,
            endpoint_type=apigateway.EndpointType.REGIONAL, security_policy=apigateway.SecurityPolicy.TLS_1_2)
        shared.add_base_path_mapping(api, stage=api.deployment_stage)
        direct = apigateway.DomainName(
            self, "RegionalDomain", domain_name=regional_name, certificate=certificate,
            endpoint_type=apigateway.EndpointType.REGIONAL, security_policy=apigateway.SecurityPolicy.TLS_1_2)
        direct.add_base_path_mapping(api, stage=api.deployment_stage)

        route53.CfnRecordSet(
            self, "RegionalRecord", hosted_zone_id=domain.hosted_zone_id, name=regional_name, type="A",
            alias_target=route53.CfnRecordSet.AliasTargetProperty(
                dns_name=direct.domain_name_alias_domain_name,
                hosted_zone_id=direct.domain_name_alias_hosted_zone_id,
                evaluate_target_health=False))
        self.health_check = route53.CfnHealthCheck(
            self, "HealthCheck",
            health_check_config=route53.CfnHealthCheck.HealthCheckConfigProperty(
                type="HTTPS",
                fully_qualified_domain_name=regional_name,
                port=443,
                resource_path=HEALTH_PATH,
                request_interval=HEALTH_INTERVAL_S,
                failure_threshold=HEALTH_FAILURE_THRESHOLD,
                enable_sni=True,
                measure_latency=True,
            ),
            health_check_tags=[route53.CfnHealthCheck.HealthCheckTagProperty(key="Name",
                                                                             value=f"{regional_name}{HEALTH_PATH}")],
        )
        self.record = route53.CfnRecordSet(
            self, "FailoverRecord", hosted_zone_id=domain.hosted_zone_id, name=domain.name, type="A",
            set_identifier=f"{role.lower()}-{region}", failover=role,
            health_check_id=self.health_check.attr_health_check_id,
            alias_target=route53.CfnRecordSet.AliasTargetProperty(
                dns_name=shared.domain_name_alias_domain_name,
                hosted_zone_id=shared.domain_name_alias_hosted_zone_id,
                evaluate_target_health=True))
        CfnOutput(self, "RegionalEndpoint", value=f"https://{regional_name}/v1",
                  description="this region's gateway, bypassing failover")
        CfnOutput(self, "FailoverEndpoint", value=f"https://{domain.name}/v1", description="the failover name")

"""Multi-gateway regional: one complete, independent regional stack per configured region, with the outputs a
client routing layer (or an edge Skyrelay) needs to pick a gateway by provider affinity."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import ACCOUNT

pytestmark = pytest.mark.slow


def test_one_stack_per_region_with_routing_outputs(synth: Any) -> None:
    result = synth("multi-regional", regions="us-east-1,eu-west-1", frontDoor="both")
    assert sorted(result.templates) == ["skyrelay-regional-eu-west-1", "skyrelay-regional-us-east-1"]
    for region in ("us-east-1", "eu-west-1"):
        template = result.template(f"skyrelay-regional-{region}")
        outputs = template.find_outputs("*")
        names = {name.rstrip("0123456789ABCDEF") for name in outputs}
        assert {"Region", "LogBucket", "GatewayFunctionUrl", "GatewayRestApiUrl", "GatewayConfigStore"} <= names
        template.has_output("Region", {"Value": region})
        template.has_resource_properties("AWS::S3::Bucket", {"BucketName": f"skyrelay-logs-{ACCOUNT}-{region}"})
        # each region's role invokes that region's foundation models (plus the configured model regions)
        statements = [s for p in template.find_resources("AWS::IAM::Policy").values()
                      for s in p["Properties"]["PolicyDocument"]["Statement"] if s.get("Sid", "").startswith("Invoke")]
        assert f"arn:aws:bedrock:{region}:{ACCOUNT}:inference-profile/" in str(statements[0]["Resource"])
    assert not result.manifest.get("missing")

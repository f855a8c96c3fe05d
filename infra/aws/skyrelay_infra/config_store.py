"""Where a regional gateway reads its config store (gateway key digests, saved configs, virtual keys).

``s3``: the object ``config/skyrelay.yaml`` in the gateway's own KMS-encrypted bucket (``SKYRELAY_CONFIG=s3://...``,
polled by ETag). Upload it with ``aws s3 cp``; the stack outputs the exact target.
``ssm``: an SSM String parameter ``/<name>/config`` created from ``skyrelay:configFile`` (the document holds only
digests and secret *references*, never secrets) and read as ``SKYRELAY_CONFIG=ssm://<parameter>``.
Either way the gateway's role may read exactly that one object or parameter.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from skyrelay_infra.log_storage import CONFIG_PREFIX, LogStorage

CONFIG_OBJECT_KEY = f"{CONFIG_PREFIX}skyrelay.yaml"
EMPTY_CONFIG = "gateway_keys: []\nconfigs: {}\nvirtual_keys: {}\n"


class ConfigStore(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, name: str, kind: str, storage: LogStorage,
                 config_file: str | None) -> None:
        super().__init__(scope, construct_id)
        self._storage = storage
        self.kind = kind
        self.parameter: ssm.StringParameter | None = None
        self.parameter_name = f"/{name}/config"
        if kind == "ssm":
            text = Path(config_file).read_text(encoding="utf-8") if config_file else EMPTY_CONFIG
            self.parameter = ssm.StringParameter(
                self, "Parameter", parameter_name=self.parameter_name, string_value=text,
                tier=ssm.ParameterTier.ADVANCED if len(text.encode()) > 4096 else ssm.ParameterTier.STANDARD,
                description=f"{name}: config store (digests and secret references only)")
            self.uri = f"ssm://{self.parameter_name}"
        else:
            self.uri = f"s3://{storage.bucket.bucket_name}/{CONFIG_OBJECT_KEY}"

    def grant_read(self, grantee: iam.IGrantable) -> None:
        if self.parameter is not None:
            stack = Stack.of(self)
            iam.Grant.add_to_principal(
                grantee=grantee, actions=["ssm:GetParameter"],
                resource_arns=[f"arn:aws:ssm:{stack.region}:{stack.account}:parameter/"
                               f"{self.parameter_name.lstrip('/')}"])
        else:
            self._storage.grant_config_read(grantee, CONFIG_OBJECT_KEY)

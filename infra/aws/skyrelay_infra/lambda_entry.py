"""How the Lambda zip from ``skyrelay bundle --cloud aws`` is started — three entries, one parameter.

- ``runtime-stream`` (default, what handlers/aws ships): the zip's own runtime loop (``handlers/aws/streaming.py``)
  speaks the Lambda Runtime API's streaming response mode; the exec wrapper ``handlers/aws/stream_bootstrap``
  replaces the managed runtime's client with it. Streams to Function URLs in RESPONSE_STREAM mode and to API
  Gateway REST with ``responseTransferMode: STREAM``; no layer.
- ``web-adapter``: the Lambda Web Adapter layer runs the ASGI app under uvicorn from a run script in the zip
  (``AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap``); streams the same way.
- ``buffered``: ``handlers/aws/handler.py`` function ``handler`` through Mangum; every response arrives whole, so
  front doors are configured BUFFERED.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from skyrelay_infra.context import DeploymentContext

# The Lambda Web Adapter's published layer (account 753240598075), version pinned: a new adapter is a deliberate
# upgrade, not something a redeploy picks up.
LWA_LAYER_ACCOUNT = "753240598075"
LWA_LAYER_VERSION = 26
LWA_PORT = "8080"


@dataclass(frozen=True)
class LambdaEntry:
    kind: str
    handler: str
    streams: bool
    environment: dict[str, str] = field(default_factory=dict)
    uses_web_adapter: bool = False

    @classmethod
    def web_adapter(cls, run_script: str = "run.sh") -> LambdaEntry:
        return cls(
            kind="web-adapter",
            handler=run_script,
            streams=True,
            uses_web_adapter=True,
            environment={
                "AWS_LAMBDA_EXEC_WRAPPER": "/opt/bootstrap",
                "AWS_LWA_INVOKE_MODE": "response_stream",
                "AWS_LWA_PORT": LWA_PORT,
                "PORT": LWA_PORT,
                "AWS_LWA_READINESS_CHECK_PATH": "/v1/health",
            },
        )

    @classmethod
    def runtime_stream(cls, handler: str, exec_wrapper: str) -> LambdaEntry:
        """``handler`` is only declared (CloudFormation requires one); the wrapper never starts the runtime client."""
        wrapper = exec_wrapper if exec_wrapper.startswith("/") else f"/var/task/{exec_wrapper}"
        return cls(kind="runtime-stream", handler=handler, streams=True,
                   environment={"AWS_LAMBDA_EXEC_WRAPPER": wrapper})

    @classmethod
    def buffered(cls, handler: str = "handlers.aws.handler.handler") -> LambdaEntry:
        return cls(kind="buffered", handler=handler, streams=False)

    @classmethod
    def from_context(cls, context: DeploymentContext) -> LambdaEntry:
        if context.lambda_entry == "web-adapter":
            return cls.web_adapter(context.lambda_handler or "run.sh")
        if context.lambda_entry == "runtime-stream":
            return cls.runtime_stream(context.lambda_handler or "handlers.aws.handler.handler",
                                      context.lambda_exec_wrapper)
        return cls.buffered(context.lambda_handler or "handlers.aws.handler.handler")

    def layers(self, scope: Construct, architecture: str) -> list[lambda_.ILayerVersion]:
        """The adapter layer for ``architecture`` ("arm64" | "x86_64"); a mismatch would fail at cold start."""
        if not self.uses_web_adapter:
            return []
        region = Stack.of(scope).region
        suffix = "Arm64" if architecture == "arm64" else "X86"
        arn = f"arn:aws:lambda:{region}:{LWA_LAYER_ACCOUNT}:layer:LambdaAdapterLayer{suffix}:{LWA_LAYER_VERSION}"
        return [lambda_.LayerVersion.from_layer_version_arn(scope, "WebAdapterLayer", arn)]

    def required_files(self) -> dict[str, bool]:
        """Paths the zip must contain for this entry to start, and whether each must be executable."""
        if self.kind == "runtime-stream":
            wrapper = self.environment["AWS_LAMBDA_EXEC_WRAPPER"].removeprefix("/var/task/")
            return {wrapper: True, "handlers/aws/streaming.py": False}
        if self.kind == "web-adapter":
            return {self.handler: True}
        return {self.handler.rsplit(".", 1)[0].replace(".", "/") + ".py": False}

    def check_bundle(self, path: Path) -> None:
        """Fail the synth, not the first cold start, when the zip cannot start this entry."""
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
        for name, executable in self.required_files().items():
            info = members.get(name)
            if info is None:
                raise ValueError(f"{path} has no {name}: the {self.kind} entry cannot start (rebuild it with "
                                 "`skyrelay bundle --cloud aws` or choose skyrelay:lambdaEntry)")
            if executable and not (info.external_attr >> 16) & 0o111:
                raise ValueError(f"{path}: {name} is not executable; Lambda could not run it")

"""Fixtures for the infrastructure suite: CDK apps synthesized in process (no CDK CLI), one per pattern and per
session, with the AZ lookups answered by a committed ``cdk.context.json`` fixture, never by placeholders."""

from __future__ import annotations

import json
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "infra" / "aws"))

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ACCOUNT = "111111111111"
MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"
PROFILE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
MODEL_REGIONS = ["us-east-1", "us-east-2", "us-west-2"]


@pytest.fixture(scope="session")
def lambda_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for `skyrelay bundle --cloud aws`: CDK only hashes and uploads the zip, it never runs it."""
    path = tmp_path_factory.mktemp("bundle") / "skyrelay-lambda-arm64-py3.12.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text, mode in [
            ("handlers/aws/stream_bootstrap", "#!/bin/sh\nexec python3 -m handlers.aws.streaming\n", 0o755),
            ("handlers/aws/streaming.py", "", 0o644),
            ("handlers/aws/handler.py", "def handler(event, context):\n    return {}\n", 0o644),
            ("run.sh", "#!/bin/sh\nexec python -m uvicorn --factory core.asgi:create_app_from_env\n", 0o755),
        ]:
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o100000 | mode) << 16
            archive.writestr(info, text)
    return path


def base_context(lambda_bundle: Path, **overrides: Any) -> dict[str, Any]:
    context: dict[str, Any] = json.loads((FIXTURES / "cdk.context.json").read_text())
    context.update({
        "skyrelay:account": ACCOUNT,
        "skyrelay:lambdaBundle": str(lambda_bundle),
        "skyrelay:bedrockModels": [MODEL],
        "skyrelay:bedrockInferenceProfiles": [PROFILE],
        "skyrelay:bedrockModelRegions": MODEL_REGIONS,
    })
    context.update({f"skyrelay:{key}": value for key, value in overrides.items()})
    return context


class Synthesized:
    """One synthesized app: templates by stack name, plus the construct tree for acknowledgment checks."""

    def __init__(self, app: Any, assembly: Any) -> None:
        self.app = app
        self.assembly = assembly
        self.templates: dict[str, dict[str, Any]] = {s.stack_name: s.template for s in assembly.stacks}
        self.manifest = json.loads((Path(assembly.directory) / "manifest.json").read_text())

    def template(self, stack_name: str) -> Any:
        from aws_cdk.assertions import Template

        return Template.from_json(self.templates[stack_name])

    def acknowledgments(self) -> list[tuple[str, str, str]]:
        """(construct path, rule id, reason) for every cdk-nag/validation acknowledgment in the app."""
        found = []
        for construct in self.app.node.find_all():
            for entry in construct.node.metadata:
                if entry.type == "aws:cdk:acknowledged-rules":
                    for rule, reason in entry.data.items():
                        found.append((construct.node.path, rule, reason))
        return found


@pytest.fixture(scope="session")
def synth(lambda_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Synthesized]]:
    """``synth(pattern, **context)`` → a cached, nag-checked synthesis of that app."""
    from skyrelay_infra.app_builder import build_app, synth_checked

    cache: dict[str, Synthesized] = {}

    def run(pattern: str, **overrides: Any) -> Synthesized:
        key = json.dumps([pattern, overrides], sort_keys=True)
        if key not in cache:
            context = base_context(lambda_bundle, pattern=pattern, **overrides)
            app = build_app(context, outdir=str(tmp_path_factory.mktemp("cdk.out")))
            cache[key] = Synthesized(app, synth_checked(app))
        return cache[key]

    yield run

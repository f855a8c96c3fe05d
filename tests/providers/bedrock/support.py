"""Shared helpers for Bedrock tests: test credentials, an isolated AWS environment, targets and requests."""

from __future__ import annotations

from typing import Any

import pytest

from core.config.target import Target
from core.providers.base import Operation, ProviderRequest
from tests.fakes.bedrock_upstream import FakeBedrock

ACCESS_KEY = "AKIAFAKEBEDROCK00001"
SECRET_KEY = "fake-secret-key-never-logged-0001"
#: Every way the default credential chain could find something on this machine, switched off.
CHAIN_ENV_OFF = {
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}
CHAIN_ENV_UNSET = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL_STS", "AWS_REGION", "AWS_DEFAULT_REGION",
)


def isolate_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CHAIN_ENV_UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in CHAIN_ENV_OFF.items():
        monkeypatch.setenv(name, value)


def bedrock_target(fake: FakeBedrock, **options: Any) -> Target:
    base = {"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY, "aws_region": "us-west-2"}
    return Target(provider="bedrock", custom_host=fake.url,
                  options={k: v for k, v in {**base, **options}.items() if v is not None})


def chat_request(target: Target, body: dict[str, Any], operation: Operation = Operation.CHAT,
                 client_headers: dict[str, str] | None = None) -> ProviderRequest:
    return ProviderRequest(operation=operation, body=body, target=target, client_headers=client_headers or {},
                           trace_id="trace-test")

"""Request translation: where an Azure OpenAI call goes, and the body it carries.

    deployments API  {base}/openai/deployments/{deployment_id}/{operation}?api-version={api_version}
    v1 API           {base}/openai/v1/{operation}          (api_version "v1"; the body's model := deployment_id)

``base`` is ``https://{resource_name}.openai.azure.com`` or the target's custom host (API Management, a private
endpoint, a test fake); a custom host that already ends in ``/openai`` is taken as the ``/openai`` root. The caller's
query parameters are carried over; the target's api_version replaces a caller's ``api-version``.

Resource and deployment names become part of the URL, so they are checked against Azure's naming rules: a
``resource_name`` of ``evil.example/x#`` must not turn into a request to evil.example.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from core.config.target import Target
from core.errors import InvalidRequestError
from core.providers.base import Operation

V1 = "v1"

_RESOURCE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?")
_DEPLOYMENT_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
_API_VERSION = re.compile(r"[A-Za-z0-9._-]{1,40}")


@dataclass(frozen=True, slots=True)
class AzureEndpoint:
    """The resolved call: URL, and for the v1 API the model the body must name (else None: body unchanged)."""

    url: str
    body_model: str | None = None


def _required(target: Target, option: str, header: str, pattern: re.Pattern[str], what: str) -> str:
    value = target.option(option)
    if value is None:
        raise InvalidRequestError(f"azure-openai needs {option} (header {header})", param=header)
    value = str(value).strip()
    if not pattern.fullmatch(value):
        raise InvalidRequestError(f"azure-openai {option} {value[:80]!r} is not a valid {what}", param=header)
    return value


def openai_root(target: Target) -> str:
    """``https://{resource}.openai.azure.com/openai``, or the custom host's ``/openai`` root."""
    if target.custom_host:
        base = target.custom_host.rstrip("/")
        return base if base.endswith("/openai") else f"{base}/openai"
    resource = _required(target, "resource_name", "x-portkey-azure-resource-name", _RESOURCE_NAME,
                         "Azure resource name")
    return f"https://{resource}.openai.azure.com/openai"


def resolve_endpoint(target: Target, operation: Operation, query: str) -> AzureEndpoint:
    params = parse_qsl(query, keep_blank_values=True) if query else []
    root = openai_root(target)
    api_version = target.option("api_version")
    if str(api_version).strip().lower() == V1:
        deployment = target.option("deployment_id")
        if deployment is not None:
            deployment = _required(target, "deployment_id", "x-portkey-azure-deployment-id", _DEPLOYMENT_ID,
                                   "deployment name")
        return AzureEndpoint(_with_query(f"{root}/v1/{operation.path}", params), deployment)
    if api_version is None:
        api_version = next((v for k, v in params if k == "api-version"), None)
        if api_version is None:
            raise InvalidRequestError("azure-openai needs api_version (header x-portkey-azure-api-version)",
                                      param="x-portkey-azure-api-version")
    if not _API_VERSION.fullmatch(str(api_version)):
        raise InvalidRequestError(f"azure-openai api_version {str(api_version)[:80]!r} is not a valid API version",
                                  param="x-portkey-azure-api-version")
    deployment = _required(target, "deployment_id", "x-portkey-azure-deployment-id", _DEPLOYMENT_ID,
                           "deployment name")
    carried = [(k, v) for k, v in params if k != "api-version"]
    url = f"{root}/deployments/{quote(deployment, safe='')}/{operation.path}"
    return AzureEndpoint(_with_query(url, [("api-version", str(api_version)), *carried]))


def _with_query(url: str, params: list[tuple[str, str]]) -> str:
    return f"{url}?{urlencode(params)}" if params else url


def v1_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The v1 API routes by the body's model, which must be the deployment's name."""
    return {**body, "model": model}

"""AWS Bedrock: chat through Converse / ConverseStream, embeddings through InvokeModel, signed with SigV4.

The provider owns the endpoint, the credentials and the HTTP exchange; translation lives in
:mod:`~core.providers.bedrock.converse_request`, :mod:`~core.providers.bedrock.converse_response`,
:mod:`~core.providers.bedrock.stream` and :mod:`~core.providers.bedrock.embeddings`, error mapping in
:mod:`~core.providers.bedrock.errors`.

Endpoint: the target's ``custom_host`` when set, else botocore's standard ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` /
``AWS_ENDPOINT_URL`` (unless ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS``), else
``https://bedrock-runtime.{region}.amazonaws.com`` (``.com.cn`` in China). The region (also the SigV4 signing
region) is the target's ``aws_region`` (config field or ``x-portkey-aws-region``), else ``AWS_REGION`` /
``AWS_DEFAULT_REGION``, else ``us-east-1``; it must look like a region name, since it becomes part of a host name.

Model ids (foundation models, inference profile ids like ``us.anthropic...``, ARNs) go in the path percent-encoded
except for the characters a path segment may hold as they are (``:`` stays, ``/`` becomes ``%2F``): that form
is sent byte for byte by every HTTP client (aiohttp's URL normalisation would turn ``%3A`` back into ``:``), so
the path SigV4 signs is the path on the wire.

Credentials: ``aws_auth_type: apiKey`` sends the caller's key as a Bedrock API key (bearer); otherwise SigV4 with
the target's keys or the gateway's own AWS identity, with an optional assumed role (:mod:`core.credentials.aws`).
A 403 that says the credentials themselves are stale (expired token, unknown key) refreshes them once and retries.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

from core.config.target import Target
from core.credentials.aws import AwsCredentialError, AwsIdentityCache, AwsIdentityParams, SigV4Signer
from core.credentials.base import CredentialSource
from core.credentials.static import StaticHeaderCredential
from core.errors import InvalidRequestError
from core.providers.base import ProviderBase, ProviderRequest, ProviderResult
from core.providers.bedrock.content import remote_image_urls
from core.providers.bedrock.converse_request import converse_body
from core.providers.bedrock.converse_response import chat_completion
from core.providers.bedrock.embeddings import TOKEN_COUNT_HEADER, EmbeddingJob, InvokeAnswer, embedding_job
from core.providers.bedrock.errors import (
    CREDENTIAL_REJECTIONS,
    BedrockAuthenticationError,
    BedrockUpstreamError,
    credential_failure,
    exception_name,
    map_http_error,
)
from core.providers.bedrock.images import fetch_images
from core.providers.bedrock.stream import ConverseStreamTranslator, openai_sse
from core.providers.http import forwarded_headers, passthrough_headers, streamed_result
from core.providers.registry import ProviderDeps
from core.transport.base import UpstreamResponse

SIGNING_NAME = "bedrock"
EVENT_STREAM = "application/vnd.amazon.eventstream"
_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+){2,3}")
#: Characters a path segment may carry unencoded (RFC 3986 pchar minus the ones HTTP clients re-encode).
_SEGMENT_SAFE = ":@!$&'()*+,;=-._~"
#: Client headers never forwarded: they would break or forge the signature.
_UNFORWARDABLE = ("host", "authorization", "x-amz-")
_EMBED_CONCURRENCY = 8


def model_path(model: str) -> str:
    return quote(model, safe=_SEGMENT_SAFE)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


class BedrockProvider(ProviderBase):
    def __init__(self, *, provider_id: str, deps: ProviderDeps, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.id = provider_id
        self._upstream = deps.upstream
        self._guard = deps.guard
        self.default_region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        endpoint = None
        if not _truthy(env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")):
            endpoint = env.get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME") or env.get("AWS_ENDPOINT_URL")
        self._endpoint = endpoint.rstrip("/") if endpoint else None
        self.identities = AwsIdentityCache(default_region=self.default_region)

    # --- where and as whom ---------------------------------------------------------------------------------
    def region(self, target: Target) -> str:
        region = str(target.option("aws_region") or self.default_region).strip().lower()
        if not _REGION.fullmatch(region):
            raise InvalidRequestError(f"aws_region {region!r} is not an AWS region name", param="aws_region")
        return region

    def base_url(self, target: Target, region: str) -> str:
        if target.custom_host:
            return target.custom_host.rstrip("/")
        domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        return self._endpoint or f"https://bedrock-runtime.{region}.{domain}"

    def credential(self, target: Target, region: str) -> CredentialSource:
        auth_type = target.option("aws_auth_type")
        if auth_type == "apiKey":
            if not target.api_key:
                raise BedrockAuthenticationError("bedrock error: aws_auth_type apiKey needs a Bedrock API key in "
                                                 "the Authorization header", code="bedrock_api_key_missing")
            return StaticHeaderCredential.bearer(target.api_key)
        access_key, secret = target.option("aws_access_key_id"), target.option("aws_secret_access_key")
        if bool(access_key) != bool(secret):
            raise InvalidRequestError("aws_access_key_id and aws_secret_access_key must be given together",
                                      param="aws_secret_access_key")
        role_arn = target.option("aws_role_arn")
        if auth_type == "assumedRole" and not role_arn:
            raise InvalidRequestError("aws_auth_type assumedRole needs aws_role_arn", param="aws_role_arn")
        params = AwsIdentityParams(
            access_key_id=access_key,
            secret_access_key=secret,
            session_token=target.option("aws_session_token"),
            role_arn=role_arn,
            external_id=target.option("aws_external_id"),
            sts_region=region,
        )
        return SigV4Signer(self.identities.identity(params), service=SIGNING_NAME, region=region)

    # --- the exchange --------------------------------------------------------------------------------------
    async def _post(self, request: ProviderRequest, model: str, action: str, payload: bytes, accept: str
                    ) -> UpstreamResponse:
        target = request.target
        region = self.region(target)
        url = f"{self.base_url(target, region)}/model/{model_path(model)}/{action}"
        credential = self.credential(target, region)
        forwarded = {k: v for k, v in forwarded_headers(target.forward_headers, request.client_headers).items()
                     if not k.startswith(_UNFORWARDABLE)}
        headers = {**forwarded, "content-type": "application/json", "accept": accept}
        response = await self._send_signed(credential, url, headers, payload)
        if (response.status == 403 and isinstance(credential, SigV4Signer) and credential.refreshable
                and exception_name(response.header("x-amzn-errortype")) in CREDENTIAL_REJECTIONS):
            await response.aclose()
            credential.invalidate()
            response = await self._send_signed(credential, url, headers, payload)
        return response

    async def _send_signed(self, credential: CredentialSource, url: str, headers: dict[str, str], payload: bytes
                           ) -> UpstreamResponse:
        try:
            auth = await credential.authorize("POST", url, headers, payload)
        except AwsCredentialError as exc:
            raise credential_failure(exc) from None
        return await self._upstream.send("POST", url, headers={**headers, **auth}, body=payload)

    async def _error(self, response: UpstreamResponse) -> ProviderResult:
        raw = await response.read()
        status, body = map_http_error(response.status, response.header("x-amzn-errortype"), raw)
        return ProviderResult(status=status, headers=passthrough_headers(response.headers), provider=self.id,
                              body=body)

    # --- operations ----------------------------------------------------------------------------------------
    async def chat(self, request: ProviderRequest) -> ProviderResult:
        body = request.body
        model = str(body["model"])
        stream = request.stream
        urls = remote_image_urls(body.get("messages"))
        fetched = await fetch_images(urls, self._upstream, self._guard) if urls else {}
        payload = orjson.dumps(converse_body(body, stream=stream, fetched=fetched))
        response_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if stream:
            response = await self._post(request, model, "converse-stream", payload, EVENT_STREAM)
            if not 200 <= response.status < 300:
                return await self._error(response)
            options = body.get("stream_options") or {}
            translator = ConverseStreamTranslator(model=model, response_id=response_id, created=created,
                                                  include_usage=bool(options.get("include_usage")))
            return streamed_result(self.id, response, openai_sse(response.iter_chunks(), translator))
        response = await self._post(request, model, "converse", payload, "application/json")
        if not 200 <= response.status < 300:
            return await self._error(response)
        data = _json_answer(await response.read())
        completion = chat_completion(data, model=model, response_id=response_id, created=created)
        return ProviderResult(status=200, headers=passthrough_headers(response.headers), provider=self.id,
                              body=orjson.dumps(completion))

    async def embed(self, request: ProviderRequest) -> ProviderResult:
        job = embedding_job(request.body)
        limit = asyncio.Semaphore(_EMBED_CONCURRENCY)

        async def invoke(body: dict[str, Any]) -> InvokeAnswer | ProviderResult:
            async with limit:
                response = await self._post(request, job.model, "invoke", orjson.dumps(body), "application/json")
                if not 200 <= response.status < 300:
                    return await self._error(response)
                count = response.header(TOKEN_COUNT_HEADER)
                return InvokeAnswer(_json_answer(await response.read()),
                                    int(count) if count and count.isdigit() else None)

        answers = await asyncio.gather(*(invoke(body) for body in job.bodies), return_exceptions=True)
        raised = next((a for a in answers if isinstance(a, BaseException)), None)
        if raised is not None:
            raise raised
        failed = next((a for a in answers if isinstance(a, ProviderResult)), None)
        if failed is not None:
            return failed
        return ProviderResult(status=200, headers=[], provider=self.id, body=orjson.dumps(_combine(job, answers)))


def _combine(job: EmbeddingJob, answers: list[Any]) -> dict[str, Any]:
    try:
        return job.combine([a for a in answers if isinstance(a, InvokeAnswer)])
    except ValueError as exc:
        raise BedrockUpstreamError(f"unexpected embeddings answer: {exc}", code="bad_upstream_answer") from None


def _json_answer(raw: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BedrockUpstreamError("the answer is not JSON", code="bad_upstream_answer") from None
    if not isinstance(data, dict):
        raise BedrockUpstreamError("the answer is not a JSON object", code="bad_upstream_answer")
    return data

"""The azure-openai provider's endpoints, errors and streams against the fake Azure resource (real HTTP), and the
stream failure modes against scripted upstream bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.errors import InvalidRequestError, UnsupportedOperationError
from core.providers.azure_openai.stream import AzureStreamError
from core.providers.base import Operation
from core.transport.aiohttp_client import AiohttpUpstreamClient
from tests.fakes.azure_openai_upstream import FakeAzureOpenAI, Scripted
from tests.providers.azure_openai.support import (
    CannedResponse,
    RecordingUpstream,
    body_of,
    collect,
    events,
    make_provider,
    make_request,
    make_target,
)

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
DEPLOYMENT = {"deployment_id": "gpt-4o", "api_version": "2024-10-21"}


def azure_target(azure: FakeAzureOpenAI, **options: Any) -> Any:
    return make_target({**DEPLOYMENT, **options}, api_key=azure.api_key, custom_host=azure.url)


async def test_chat_completions_and_embeddings_reach_their_deployment(upstream, fake_azure) -> None:
    provider = make_provider(upstream)
    chat = await provider.chat(make_request(azure_target(fake_azure), CHAT))
    completion = await provider.completion(make_request(
        azure_target(fake_azure, deployment_id="instruct"), {"model": "x", "prompt": "Say"},
        operation=Operation.COMPLETION))
    embedding = await provider.embed(make_request(
        azure_target(fake_azure, deployment_id="embed"), {"model": "x", "input": ["a", "b"]},
        operation=Operation.EMBEDDING))

    assert body_of(chat)["choices"][0]["message"]["content"] == "Hello from Azure."
    assert body_of(completion)["choices"][0]["text"] == " world"
    assert [d["index"] for d in body_of(embedding)["data"]] == [0, 1]
    assert [r.path for r in fake_azure.received] == [
        "/openai/deployments/gpt-4o/chat/completions", "/openai/deployments/instruct/completions",
        "/openai/deployments/embed/embeddings"]
    assert {r.query["api-version"] for r in fake_azure.received} == {"2024-10-21"}


async def test_v1_api_routes_by_the_deployment_name_in_the_body(upstream, fake_azure) -> None:
    provider = make_provider(upstream)
    target = azure_target(fake_azure, api_version="v1", deployment_id="gpt-4o-async")

    result = await provider.chat(make_request(target, {**CHAT, "model": "whatever-the-client-said"}))

    assert result.status == 200
    sent = fake_azure.received[-1]
    assert sent.path == "/openai/v1/chat/completions" and sent.query == {}
    assert sent.body["model"] == "gpt-4o-async"


async def test_unknown_deployment_is_azures_404(upstream, fake_azure) -> None:
    result = await make_provider(upstream).chat(make_request(azure_target(fake_azure, deployment_id="nope"), CHAT))

    assert result.status == 404
    body = body_of(result)
    assert body["error"]["code"] == "DeploymentNotFound"
    assert body["error"]["message"].startswith("azure-openai error: The API deployment for this resource")


async def test_prompt_refused_by_the_content_filter_keeps_azures_verdict(upstream, fake_azure) -> None:
    request = make_request(azure_target(fake_azure), {**CHAT, "messages": [{"role": "user", "content": "jailbreak"}]})

    result = await make_provider(upstream).chat(request)

    assert result.status == 400
    error = body_of(result)["error"]
    assert (error["code"], error["param"]) == ("content_filter", "prompt")
    assert error["innererror"]["content_filter_result"]["jailbreak"] == {"filtered": True, "detected": True}


async def test_rate_limit_keeps_status_and_retry_after(upstream, fake_azure) -> None:
    fake_azure.enqueue(Scripted(status=429, headers={"retry-after": "6", "x-ratelimit-remaining-tokens": "0"}, body={
        "error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation have exceeded token "
                  "rate limit. Please retry after 6 seconds."}}))

    result = await make_provider(upstream).chat(make_request(azure_target(fake_azure), CHAT))

    assert result.status == 429
    assert result.header("retry-after") == "6"
    assert body_of(result)["error"]["code"] == "429"


async def test_buffered_output_filter_maps_to_content_filter(upstream, fake_azure) -> None:
    request = make_request(azure_target(fake_azure), {**CHAT, "messages": [{"role": "user", "content": "violent"}]})

    body = body_of(await make_provider(upstream).chat(request))

    assert body["choices"][0]["finish_reason"] == "content_filter"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": None}


@pytest.mark.parametrize("deployment", ["gpt-4o", "gpt-4o-async"])
async def test_streamed_output_filter_ends_with_content_filter(
    upstream: AiohttpUpstreamClient, fake_azure: FakeAzureOpenAI, deployment: str
) -> None:
    request = make_request(azure_target(fake_azure, deployment_id=deployment),
                           {**CHAT, "stream": True, "messages": [{"role": "user", "content": "violent"}]})

    result = await make_provider(upstream).chat(request)
    chunks = events(await collect(result.chunks))

    assert chunks[-1] == "[DONE]"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks[:-1] if c["choices"]]
    assert finishes[-1] == "content_filter"
    assert all("delta" in choice for c in chunks[:-1] for choice in c["choices"])
    assert {c["id"] for c in chunks[1:-1]} == {"chatcmpl-azure-stream"}


@pytest.mark.parametrize(("options", "param"), [
    ({"deployment_id": None}, "x-portkey-azure-deployment-id"),
    ({"deployment_id": "../../admin"}, "x-portkey-azure-deployment-id"),
    ({"api_version": None}, "x-portkey-azure-api-version"),
    ({"api_version": "2024-10-21&x=1"}, "x-portkey-azure-api-version"),
])
async def test_invalid_endpoint_options_are_a_400(options: dict[str, Any], param: str) -> None:
    upstream = RecordingUpstream()
    target = make_target({**DEPLOYMENT, **options}, api_key="k", custom_host="http://127.0.0.1:1")

    with pytest.raises(InvalidRequestError) as caught:
        await make_provider(upstream).chat(make_request(target, CHAT))

    assert caught.value.param == param
    assert upstream.sent == []


@pytest.mark.parametrize("resource", [None, "evil.example/x#", "a.b", "-lead"])
async def test_resource_name_must_be_an_azure_resource_name(resource: str | None) -> None:
    upstream = RecordingUpstream()
    target = make_target({**DEPLOYMENT, "resource_name": resource}, api_key="k")

    with pytest.raises(InvalidRequestError) as caught:
        await make_provider(upstream).chat(make_request(target, CHAT))

    assert caught.value.param == "x-portkey-azure-resource-name"
    assert upstream.sent == []


async def test_listing_models_is_a_clear_400() -> None:
    with pytest.raises(UnsupportedOperationError):
        await make_provider(RecordingUpstream()).list_models(
            make_request(make_target(DEPLOYMENT, api_key="k"), {}, operation=Operation.MODELS))


def scripted_stream(*parts: bytes) -> CannedResponse:
    return CannedResponse(parts=list(parts), headers=[("content-type", "text/event-stream")])


CHUNK = b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,' \
        b'"delta":{"content":"Hel"},"finish_reason":null}]}\n\n'


async def stream_of(*parts: bytes) -> tuple[list[bytes], BaseException | None]:
    provider = make_provider(RecordingUpstream(scripted_stream(*parts)))
    target = make_target(DEPLOYMENT, api_key="k", custom_host="http://127.0.0.1:1")
    result = await provider.chat(make_request(target, {**CHAT, "stream": True}))
    received: list[bytes] = []
    assert result.chunks is not None
    try:
        async for chunk in result.chunks:
            received.append(chunk)
    except AzureStreamError as exc:
        return received, exc
    return received, None


async def test_an_error_event_mid_stream_raises_after_the_chunks_before_it() -> None:
    received, error = await stream_of(CHUNK, b'data: {"error":{"code":"server_error","message":"The server had an '
                                             b'error while processing your request."}}\n\n')

    assert len(received) == 1
    assert isinstance(error, AzureStreamError)
    assert error.message == "azure-openai error: The server had an error while processing your request."
    assert error.body()["provider"] == "azure-openai"


@pytest.mark.parametrize(("parts", "code"), [
    ((CHUNK,), "upstream_stream_truncated"),
    ((CHUNK, b"data: {not json\n\n"), "upstream_stream_malformed"),
])
async def test_a_broken_stream_never_looks_finished(parts: tuple[bytes, ...], code: str) -> None:
    received, error = await stream_of(*parts)

    assert b"[DONE]" not in b"".join(received)
    assert isinstance(error, AzureStreamError) and error.code == code


async def test_each_event_is_forwarded_before_the_next_arrives() -> None:
    release = asyncio.Event()

    async def parts() -> AsyncIterator[bytes]:
        yield CHUNK
        await release.wait()
        yield b"data: [DONE]\n\n"

    response = CannedResponse(headers=[("content-type", "text/event-stream")])
    response.iter_chunks = parts  # type: ignore[method-assign]
    provider = make_provider(RecordingUpstream(response))
    target = make_target(DEPLOYMENT, api_key="k", custom_host="http://127.0.0.1:1")
    result = await provider.chat(make_request(target, {**CHAT, "stream": True}))
    assert result.chunks is not None
    iterator = aiter(result.chunks)

    first = await asyncio.wait_for(anext(iterator), timeout=2)

    assert events([first])[0]["choices"][0]["delta"] == {"content": "Hel"}
    release.set()
    assert events([await anext(iterator)]) == ["[DONE]"]

"""BedrockProvider against the fake Bedrock runtime on loopback: every call's SigV4 signature is recomputed with
botocore and every Converse body validated against botocore's service model by the fake."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from core.config.target import Target
from core.errors import InvalidRequestError, SkyrelayError
from core.providers.base import Operation, ProviderResult
from core.providers.bedrock import images
from core.security.ssrf import SsrfGuard
from tests.fakes.bedrock_upstream import (
    FakeBedrock,
    Scripted,
    converse_tool_call,
    event_frame,
    exception_frame,
    frames_for,
    text_stream_events,
)
from tests.fakes.server import ThreadedServer
from tests.providers.bedrock.conftest import ProviderFactory
from tests.providers.bedrock.support import ACCESS_KEY, SECRET_KEY, bedrock_target, chat_request, isolate_aws_env

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
HELLO = [{"role": "user", "content": "Hello"}]
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def _json(result: ProviderResult) -> Any:
    assert result.body is not None
    return orjson.loads(result.body)


async def _drain(result: ProviderResult) -> list[Any]:
    assert result.chunks is not None
    out: list[Any] = []
    async for event in result.chunks:
        payload = event[len(b"data: ") : -2]
        out.append("[DONE]" if payload == b"[DONE]" else orjson.loads(payload))
    return out


async def test_chat_is_signed_with_sigv4_and_translated(make_provider: ProviderFactory, fake_bedrock: FakeBedrock
                                                        ) -> None:
    result = await make_provider().chat(chat_request(bedrock_target(fake_bedrock), {"model": MODEL, "messages": HELLO}))

    assert result.status == 200, result.body
    body = _json(result)
    assert body["choices"][0]["message"]["content"] == "Hello from the fake Bedrock."
    assert body["usage"] == {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18,
                             "prompt_tokens_details": {"cached_tokens": 0}}
    sent = fake_bedrock.received[-1]
    assert fake_bedrock.rejected == []
    assert sent.operation == "Converse" and sent.model_id == MODEL and sent.region == "us-west-2"
    assert sent.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
    assert "/us-west-2/bedrock/aws4_request" in sent.headers["authorization"]
    assert sent.body == {"messages": [{"role": "user", "content": [{"text": "Hello"}]}]}
    assert not any(name.startswith("x-portkey-") for name in sent.headers)
    assert result.header("x-amzn-requestid") == "fake-request-id"


async def test_session_token_is_sent_and_signed(make_provider: ProviderFactory, fake_bedrock: FakeBedrock) -> None:
    fake_bedrock.allow("ASIATEMPORARY0000001", "temp-secret", "temp-session-token")
    target = bedrock_target(fake_bedrock, aws_access_key_id="ASIATEMPORARY0000001",
                            aws_secret_access_key="temp-secret", aws_session_token="temp-session-token")

    result = await make_provider().chat(chat_request(target, {"model": MODEL, "messages": HELLO}))

    assert result.status == 200, result.body
    assert fake_bedrock.received[-1].headers["x-amz-security-token"] == "temp-session-token"
    assert "x-amz-security-token" in fake_bedrock.received[-1].headers["authorization"]


async def test_a_wrong_secret_is_rejected_by_bedrock_and_never_echoed(make_provider: ProviderFactory,
                                                                      fake_bedrock: FakeBedrock) -> None:
    target = bedrock_target(fake_bedrock, aws_secret_access_key="not-the-right-secret-0001")

    result = await make_provider().chat(chat_request(target, {"model": MODEL, "messages": HELLO}))

    assert result.status == 403
    error = _json(result)
    assert error["provider"] == "bedrock"
    assert error["error"]["code"] == "InvalidSignatureException"
    assert error["error"]["message"].startswith("bedrock error: The request signature we calculated")
    assert b"not-the-right-secret" not in result.body  # type: ignore[operator]
    assert len(fake_bedrock.rejected) == 1, "fixed keys are not retried: new ones cannot come from anywhere"


@pytest.mark.parametrize("model", [
    "us.anthropic.claude-3-5-haiku-20241022-v1:0",
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
    "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456",
])
async def test_model_ids_and_inference_profiles_are_encoded_in_the_signed_path(
    make_provider: ProviderFactory, fake_bedrock: FakeBedrock, model: str
) -> None:
    result = await make_provider().chat(chat_request(bedrock_target(fake_bedrock), {"model": model,
                                                                                    "messages": HELLO}))

    assert result.status == 200, result.body
    sent = fake_bedrock.received[-1]
    assert sent.model_id == model
    assert sent.raw_path == f"/model/{model.replace('/', '%2F')}/converse"


def test_endpoint_and_region_resolution(make_provider: ProviderFactory, fake_bedrock: FakeBedrock) -> None:
    plain = bedrock_target(fake_bedrock, aws_region=None)
    no_host = Target(provider="bedrock", options={})
    provider = make_provider()
    assert provider.region(no_host) == "us-east-1"
    assert provider.base_url(no_host, "us-east-1") == "https://bedrock-runtime.us-east-1.amazonaws.com"
    regional = Target(provider="bedrock", options={"aws_region": "eu-central-1"})
    assert provider.region(regional) == "eu-central-1"
    assert provider.base_url(plain, "eu-central-1") == fake_bedrock.url
    assert provider.base_url(no_host, "cn-north-1") == "https://bedrock-runtime.cn-north-1.amazonaws.com.cn"

    from_env = make_provider({"AWS_DEFAULT_REGION": "ap-southeast-2"})
    assert from_env.region(no_host) == "ap-southeast-2"
    assert make_provider({"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "x"}).region(no_host) == "us-west-2"
    endpoint = make_provider({"AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "https://vpce-1.bedrock-runtime.example/",
                              "AWS_ENDPOINT_URL": "https://generic.example"})
    assert endpoint.base_url(no_host, "us-east-1") == "https://vpce-1.bedrock-runtime.example"
    assert make_provider({"AWS_ENDPOINT_URL": "https://generic.example"}).base_url(no_host, "x") == \
        "https://generic.example"
    ignored = make_provider({"AWS_ENDPOINT_URL": "https://generic.example",
                             "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"})
    assert ignored.base_url(no_host, "us-east-1") == "https://bedrock-runtime.us-east-1.amazonaws.com"


@pytest.mark.parametrize("region", ["evil.example.com/x", "us-east-1.attacker", "US EAST"])
def test_a_region_that_could_redirect_the_call_is_refused(make_provider: ProviderFactory, region: str) -> None:
    with pytest.raises(InvalidRequestError, match="aws_region"):
        make_provider().region(Target(provider="bedrock", options={"aws_region": region}))


@pytest.mark.parametrize(("status", "error_type", "expected_status", "openai_type"), [
    (429, "ThrottlingException", 429, "rate_limit_error"),
    (408, "ModelTimeoutException", 504, "api_error"),
    (503, "ServiceUnavailableException", 503, "api_error"),
    (429, "ModelNotReadyException", 503, "api_error"),
    (424, "ModelErrorException", 502, "api_error"),
    (500, "InternalServerException", 500, "api_error"),
    (400, "ValidationException", 400, "invalid_request_error"),
    (403, "AccessDeniedException", 403, "permission_error"),
    (404, "ResourceNotFoundException", 404, "not_found_error"),
])
async def test_bedrock_errors_keep_bedrocks_message_in_the_openai_shape(
    make_provider: ProviderFactory, fake_bedrock: FakeBedrock, status: int, error_type: str, expected_status: int,
    openai_type: str,
) -> None:
    fake_bedrock.enqueue(Scripted(status=status, error_type=error_type, message=f"{error_type} happened"))

    result = await make_provider().chat(chat_request(bedrock_target(fake_bedrock), {"model": MODEL,
                                                                                    "messages": HELLO}))

    assert result.status == expected_status
    assert _json(result) == {"error": {"message": f"bedrock error: {error_type} happened", "type": openai_type,
                                       "param": None, "code": error_type}, "provider": "bedrock"}


async def test_a_body_bedrock_would_refuse_is_caught_by_the_service_model(make_provider: ProviderFactory,
                                                                          fake_bedrock: FakeBedrock) -> None:
    body = {"model": MODEL, "messages": HELLO, "max_tokens": 0}

    result = await make_provider().chat(chat_request(bedrock_target(fake_bedrock), body))

    assert result.status == 400
    assert "inferenceConfig.maxTokens" in _json(result)["error"]["message"]


async def test_stream_chunks_arrive_as_frames_are_decoded(make_provider: ProviderFactory, fake_bedrock: FakeBedrock
                                                          ) -> None:
    fake_bedrock.split_frames = True  # frames cut into 7-byte writes: reassembled by the decoder
    body = {"model": MODEL, "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}

    result = await make_provider().chat(chat_request(bedrock_target(fake_bedrock), body))
    chunks = await _drain(result)

    assert result.status == 200 and result.media_type == "text/event-stream"
    assert fake_bedrock.received[-1].operation == "ConverseStream"
    assert fake_bedrock.received[-1].headers["accept"] == "application/vnd.amazon.eventstream"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1] if c["choices"])
    assert text == "Hello from the fake Bedrock."
    assert chunks[-3]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"]["completion_tokens"] == 6
    assert chunks[-1] == "[DONE]"


async def test_an_exception_frame_mid_stream_raises_instead_of_finishing(make_provider: ProviderFactory,
                                                                         fake_bedrock: FakeBedrock) -> None:
    frames = frames_for(text_stream_events(["Partial"])[:2])
    fake_bedrock.enqueue(Scripted(frames=[*frames, exception_frame("throttlingException", "Too many requests")]))
    result = await make_provider().chat(chat_request(bedrock_target(fake_bedrock),
                                                     {"model": MODEL, "messages": HELLO, "stream": True}))
    assert result.chunks is not None
    seen: list[bytes] = []

    with pytest.raises(SkyrelayError) as raised:
        async for chunk in result.chunks:
            seen.append(chunk)

    assert raised.value.status == 429 and raised.value.retryable
    assert raised.value.body()["error"]["message"] == "bedrock error: Too many requests"
    assert not any(b"finish_reason\":\"stop" in chunk or chunk == b"data: [DONE]\n\n" for chunk in seen)
    await result.aclose()


async def test_a_corrupt_frame_fails_its_crc_check(make_provider: ProviderFactory, fake_bedrock: FakeBedrock) -> None:
    good = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hello"}})
    corrupt = good[:-8] + bytes([good[-8] ^ 0x01]) + good[-7:]
    fake_bedrock.enqueue(Scripted(frames=[event_frame("messageStart", {"role": "assistant"}), corrupt]))
    result = await make_provider().chat(chat_request(bedrock_target(fake_bedrock),
                                                     {"model": MODEL, "messages": HELLO, "stream": True}))

    with pytest.raises(SkyrelayError) as raised:
        await _drain(result)

    assert raised.value.status == 502 and raised.value.code == "malformed_event_stream"
    assert "Checksum" in raised.value.message or "checksum" in raised.value.message
    await result.aclose()


async def test_a_stream_cut_inside_a_frame_is_an_error(make_provider: ProviderFactory, fake_bedrock: FakeBedrock
                                                       ) -> None:
    frames = frames_for(text_stream_events(["Hi"]))
    fake_bedrock.enqueue(Scripted(frames=[*frames[:-1], frames[-1][:10]]))
    result = await make_provider().chat(chat_request(bedrock_target(fake_bedrock),
                                                     {"model": MODEL, "messages": HELLO, "stream": True}))

    with pytest.raises(SkyrelayError) as raised:
        await _drain(result)

    assert raised.value.code == "truncated_event_stream"
    await result.aclose()


async def test_a_stream_that_fails_before_starting_is_an_error_result(make_provider: ProviderFactory,
                                                                      fake_bedrock: FakeBedrock) -> None:
    fake_bedrock.enqueue(Scripted(status=429, error_type="ThrottlingException", message="Rate exceeded"))

    result = await make_provider().chat(chat_request(bedrock_target(fake_bedrock),
                                                     {"model": MODEL, "messages": HELLO, "stream": True}))

    assert result.status == 429 and result.chunks is None
    assert _json(result)["error"]["message"] == "bedrock error: Rate exceeded"


async def test_tool_calls_round_trip_through_converse(make_provider: ProviderFactory, fake_bedrock: FakeBedrock
                                                      ) -> None:
    fake_bedrock.enqueue(Scripted(body=converse_tool_call("tooluse_1", "get_weather", {"city": "Paris"})))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    provider = make_provider()

    first = _json(await provider.chat(chat_request(bedrock_target(fake_bedrock),
                                                   {"model": MODEL, "messages": HELLO, "tools": tools})))
    call = first["choices"][0]["message"]["tool_calls"][0]
    messages = [*HELLO, first["choices"][0]["message"],
                {"role": "tool", "tool_call_id": call["id"], "content": "18C"}]
    second = await provider.chat(chat_request(bedrock_target(fake_bedrock),
                                              {"model": MODEL, "messages": messages, "tools": tools}))

    assert first["choices"][0]["finish_reason"] == "tool_calls"
    assert call == {"id": "tooluse_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    assert second.status == 200, second.body
    assert fake_bedrock.received[-1].body["messages"][1:] == [
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather",
                                                       "input": {"city": "Paris"}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "18C"}]}}]},
    ]


async def test_forwarded_headers_cannot_touch_the_signature(make_provider: ProviderFactory,
                                                            fake_bedrock: FakeBedrock) -> None:
    target = Target(provider="bedrock", custom_host=fake_bedrock.url,
                    forward_headers=("x-team", "authorization", "x-amz-date", "host"),
                    options={"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY})
    client_headers = {"x-team": "search", "authorization": "Bearer sk-client", "x-amz-date": "20000101T000000Z",
                      "host": "evil.example"}

    result = await make_provider().chat(chat_request(target, {"model": MODEL, "messages": HELLO},
                                                     client_headers=client_headers))

    assert result.status == 200, result.body
    sent = fake_bedrock.received[-1].headers
    assert sent["x-team"] == "search" and "x-team" in sent["authorization"]
    assert sent["x-amz-date"] != "20000101T000000Z" and sent["host"] != "evil.example"


async def test_bedrock_api_key_auth_sends_a_bearer_token_unsigned(make_provider: ProviderFactory,
                                                                  fake_bedrock: FakeBedrock) -> None:
    fake_bedrock.api_keys.add("bedrock-api-key-123")
    target = Target(provider="bedrock", custom_host=fake_bedrock.url, api_key="bedrock-api-key-123",
                    options={"aws_auth_type": "apiKey"})

    result = await make_provider().chat(chat_request(target, {"model": MODEL, "messages": HELLO}))

    assert result.status == 200, result.body
    sent = fake_bedrock.received[-1].headers
    assert sent["authorization"] == "Bearer bedrock-api-key-123" and "x-amz-date" not in sent


async def test_without_any_aws_identity_the_error_is_a_clear_401(make_provider: ProviderFactory,
                                                                 fake_bedrock: FakeBedrock,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_aws_env(monkeypatch)
    target = bedrock_target(fake_bedrock, aws_access_key_id=None, aws_secret_access_key=None)

    with pytest.raises(SkyrelayError) as raised:
        await make_provider().chat(chat_request(target, {"model": MODEL, "messages": HELLO}))

    assert raised.value.status == 401
    body = raised.value.body()
    assert body["provider"] == "bedrock" and body["error"]["type"] == "authentication_error"
    assert "no AWS credentials found" in body["error"]["message"]
    assert fake_bedrock.received == []


async def test_environment_credentials_come_from_the_default_chain(make_provider: ProviderFactory,
                                                                   fake_bedrock: FakeBedrock,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_aws_env(monkeypatch)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIALAMBDAROLE000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "lambda-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "lambda-token")
    fake_bedrock.allow("ASIALAMBDAROLE000001", "lambda-secret", "lambda-token")
    target = bedrock_target(fake_bedrock, aws_access_key_id=None, aws_secret_access_key=None)
    provider = make_provider()

    for _ in range(3):
        result = await provider.chat(chat_request(target, {"model": MODEL, "messages": HELLO}))
        assert result.status == 200, result.body

    assert fake_bedrock.received[-1].headers["x-amz-security-token"] == "lambda-token"
    assert len(provider.identities) == 1


@pytest.mark.parametrize(("body", "param"), [
    ({"n": 2}, "n"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    ({"messages": [{"role": "user", "content": [{"type": "video_url", "video_url": "x"}]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]}]}, "messages[0].content[0]"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format.json_schema"),
    ({"tool_choice": "required"}, "tool_choice"),
])
async def test_requests_bedrock_cannot_serve_are_a_400_before_any_call(
    make_provider: ProviderFactory, fake_bedrock: FakeBedrock, body: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        await make_provider().chat(chat_request(bedrock_target(fake_bedrock),
                                                {"model": MODEL, "messages": HELLO, **body}))

    assert raised.value.param == param
    assert fake_bedrock.received == []


# --- remote images ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image_server() -> Iterator[ThreadedServer]:
    async def cat(_: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def untyped(_: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="application/octet-stream")

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG\r\n\x1a\n" + b"\0" * 5000, content_type="image/png")

    async def page(_: web.Request) -> web.Response:
        return web.Response(text="<html></html>", content_type="text/html")

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    app = web.Application()
    for path, handler in {"/cat.png": cat, "/untyped": untyped, "/big.png": big, "/page.html": page,
                          "/moved": moved}.items():
        app.router.add_get(path, handler)
    server = ThreadedServer(app).start()
    yield server
    server.stop()


def _image_message(url: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                         {"type": "image_url", "image_url": {"url": url}}]}]


@pytest.mark.parametrize("path", ["/cat.png", "/untyped"])
async def test_http_image_urls_are_fetched_and_inlined(make_provider: ProviderFactory, fake_bedrock: FakeBedrock,
                                                       image_server: ThreadedServer, path: str) -> None:
    body = {"model": MODEL, "messages": _image_message(f"{image_server.url}{path}")}

    result = await make_provider().chat(chat_request(bedrock_target(fake_bedrock), body))

    assert result.status == 200, result.body
    image = fake_bedrock.received[-1].body["messages"][0]["content"][1]["image"]
    assert image == {"format": "png", "source": {"bytes": base64.b64encode(PNG).decode()}}


@pytest.mark.parametrize(("path", "reason"), [
    ("/big.png", "larger than"),
    ("/page.html", "not a png, jpeg, gif or webp"),
    ("/missing.png", "answered HTTP 404"),
    ("/moved", "answered HTTP 302"),
])
async def test_unusable_image_urls_are_a_clear_400(make_provider: ProviderFactory, fake_bedrock: FakeBedrock,
                                                   image_server: ThreadedServer, monkeypatch: pytest.MonkeyPatch,
                                                   path: str, reason: str) -> None:
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 4096)
    body = {"model": MODEL, "messages": _image_message(f"{image_server.url}{path}")}

    with pytest.raises(InvalidRequestError, match=reason):
        await make_provider().chat(chat_request(bedrock_target(fake_bedrock), body))
    assert fake_bedrock.received == []


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/iam", "http://10.0.0.7/cat.png",
                                 "file:///etc/passwd"])
async def test_image_urls_pass_the_ssrf_guard_first(make_provider: ProviderFactory, fake_bedrock: FakeBedrock,
                                                    url: str) -> None:
    provider = make_provider(guard=SsrfGuard([]))
    body = {"model": MODEL, "messages": _image_message(url)}

    with pytest.raises(InvalidRequestError):
        await provider.chat(chat_request(bedrock_target(fake_bedrock), body))
    assert fake_bedrock.received == []


async def test_a_loopback_image_is_refused_when_loopback_is_not_allowed(
    make_provider: ProviderFactory, fake_bedrock: FakeBedrock, image_server: ThreadedServer
) -> None:
    provider = make_provider(guard=SsrfGuard([]))

    with pytest.raises(InvalidRequestError, match="not allowed"):
        await provider.chat(chat_request(bedrock_target(fake_bedrock),
                                         {"model": MODEL, "messages": _image_message(f"{image_server.url}/cat.png")}))


# --- embeddings -----------------------------------------------------------------------------------------------
async def test_titan_embeddings_one_invoke_per_input(make_provider: ProviderFactory, fake_bedrock: FakeBedrock
                                                     ) -> None:
    body = {"model": "amazon.titan-embed-text-v2:0", "input": ["a", "bb", "ccc"], "dimensions": 4}

    result = await make_provider().embed(chat_request(bedrock_target(fake_bedrock), body, Operation.EMBEDDING))

    assert result.status == 200, result.body
    data = _json(result)
    assert [d["embedding"][0] for d in data["data"]] == [1.0, 2.0, 3.0]
    assert all(len(d["embedding"]) == 4 for d in data["data"])
    assert data["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    invokes = [r for r in fake_bedrock.received if r.operation == "InvokeModel"]
    assert sorted(r.body["inputText"] for r in invokes) == ["a", "bb", "ccc"]
    assert all(r.raw_path == "/model/amazon.titan-embed-text-v2:0/invoke" for r in invokes)


async def test_cohere_embeddings_in_base64_with_usage_from_the_header(make_provider: ProviderFactory,
                                                                      fake_bedrock: FakeBedrock) -> None:
    body = {"model": "cohere.embed-multilingual-v3", "input": ["one two", "three"], "encoding_format": "base64"}

    result = await make_provider().embed(chat_request(bedrock_target(fake_bedrock), body, Operation.EMBEDDING))

    assert result.status == 200, result.body
    data = _json(result)
    first = struct.unpack("<8f", base64.b64decode(data["data"][0]["embedding"]))
    assert first[0] == 7.0 and data["usage"]["prompt_tokens"] == 3
    assert fake_bedrock.received[-1].body == {"texts": ["one two", "three"], "input_type": "search_document",
                                              "embedding_types": ["float"]}


async def test_an_embeddings_error_keeps_bedrocks_status(make_provider: ProviderFactory, fake_bedrock: FakeBedrock
                                                         ) -> None:
    fake_bedrock.enqueue(Scripted(status=400, error_type="ValidationException", message="Input too long"))

    result = await make_provider().embed(chat_request(
        bedrock_target(fake_bedrock), {"model": "amazon.titan-embed-text-v2:0", "input": "x"}, Operation.EMBEDDING))

    assert result.status == 400 and _json(result)["error"]["message"] == "bedrock error: Input too long"


async def test_unknown_embedding_models_are_a_400(make_provider: ProviderFactory, fake_bedrock: FakeBedrock) -> None:
    with pytest.raises(InvalidRequestError, match="Titan Text Embeddings"):
        await make_provider().embed(chat_request(
            bedrock_target(fake_bedrock), {"model": "meta.llama3-8b-instruct-v1:0", "input": "x"},
            Operation.EMBEDDING))

"""The official openai SDK → a real `skyrelay serve` → the fake Bedrock runtime (SigV4 verified, bodies validated
against botocore's service model): chat, streaming, tool calls, embeddings, errors, and the gateway's own AWS
identity (IRSA web identity through moto's STS)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fakes.bedrock_upstream import (
    FakeBedrock,
    Scripted,
    converse_tool_call,
    exception_frame,
    frames_for,
    text_stream_events,
    tool_stream_events,
)
from tests.identity.sts import CountingStsProxy, IssuedCredentials, moto_sts
from tests.providers.bedrock.support import CHAIN_ENV_OFF, CHAIN_ENV_UNSET
from tests.support.gateway_process import GatewayProcess

MODEL = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
ACCESS_KEY, SECRET_KEY = "AKIAE2EBEDROCK000001", "e2e-secret-never-logged"
MESSAGES: list[Any] = [{"role": "user", "content": "Say hello"}]
WEATHER_TOOL: Any = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeBedrock]:
    fake = FakeBedrock().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(fake_server: FakeBedrock) -> FakeBedrock:
    fake_server.reset()
    fake_server.allow(ACCESS_KEY, SECRET_KEY)
    return fake_server


def client(gateway: GatewayProcess, fake: FakeBedrock, keys: bool = True) -> openai.OpenAI:
    headers = {"x-portkey-provider": "bedrock", "x-portkey-custom-host": fake.url,
               "x-portkey-aws-region": "eu-west-1"}
    if keys:
        headers |= {"x-portkey-aws-access-key-id": ACCESS_KEY, "x-portkey-aws-secret-access-key": SECRET_KEY}
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0, default_headers=headers)


def test_chat_completion_through_converse(gateway: GatewayProcess, fake: FakeBedrock) -> None:
    raw = client(gateway, fake).chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "system", "content": "Be kind."}, *MESSAGES], max_tokens=64)
    response = raw.parse()

    assert response.choices[0].message.content == "Hello from the fake Bedrock."
    assert response.choices[0].finish_reason == "stop"
    assert response.usage is not None and response.usage.total_tokens == 18
    assert raw.headers["x-portkey-provider"] == "bedrock"
    sent = fake.received[-1]
    assert fake.rejected == [] and sent.region == "eu-west-1"
    assert sent.body == {"messages": [{"role": "user", "content": [{"text": "Say hello"}]}],
                         "system": [{"text": "Be kind."}], "inferenceConfig": {"maxTokens": 64}}
    assert not any(name.startswith("x-portkey-") for name in sent.headers)
    assert SECRET_KEY not in gateway.stderr()


def test_streaming_text_with_usage(gateway: GatewayProcess, fake: FakeBedrock) -> None:
    stream = client(gateway, fake).chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the fake Bedrock."
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6


def _assemble_tool_calls(chunks: list[Any]) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += delta.id or ""
            if delta.function is not None:
                call["name"] += delta.function.name or ""
                call["arguments"] += delta.function.arguments or ""
    return calls


def test_streamed_tool_call_then_tool_result_round_trip(gateway: GatewayProcess, fake: FakeBedrock) -> None:
    fake.enqueue(Scripted(frames=frames_for(tool_stream_events("tooluse_e2e1", "get_weather",
                                                               ['{"ci', 'ty": "Par', 'is"}']))))
    sdk = client(gateway, fake)

    chunks = list(sdk.chat.completions.create(model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL],
                                              tool_choice="required", stream=True))
    calls = _assemble_tool_calls(chunks)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]

    assert calls == {0: {"id": "tooluse_e2e1", "name": "get_weather", "arguments": '{"city": "Paris"}'}}
    assert finish == ["tool_calls"]
    assert fake.received[-1].body["toolConfig"]["toolChoice"] == {"any": {}}

    followup = sdk.chat.completions.create(model=MODEL, tools=[WEATHER_TOOL], messages=[
        *MESSAGES,
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "tooluse_e2e1", "type": "function", "function": {"name": "get_weather",
                                                                    "arguments": calls[0]["arguments"]}}]},
        {"role": "tool", "tool_call_id": "tooluse_e2e1", "content": "18C, sunny"}])

    assert followup.choices[0].message.content == "Hello from the fake Bedrock."
    assert fake.received[-1].body["messages"][1:] == [
        {"role": "assistant", "content": [{"text": "Let me check."}, {"toolUse": {
            "toolUseId": "tooluse_e2e1", "name": "get_weather", "input": {"city": "Paris"}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_e2e1",
                                                     "content": [{"text": "18C, sunny"}]}}]},
    ]


def test_tool_call_without_streaming(gateway: GatewayProcess, fake: FakeBedrock) -> None:
    fake.enqueue(Scripted(body=converse_tool_call("tooluse_e2e2", "get_weather", {"city": "Oslo"})))

    response = client(gateway, fake).chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}})

    call = response.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert response.choices[0].finish_reason == "tool_calls"
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (  # type: ignore[union-attr]
        "tooluse_e2e2", "get_weather", {"city": "Oslo"})


def test_throttling_is_a_rate_limit_error_with_bedrocks_message(gateway: GatewayProcess, fake: FakeBedrock) -> None:
    fake.enqueue(Scripted(status=429, error_type="ThrottlingException", message="Too many requests, slow down."))

    with pytest.raises(openai.RateLimitError) as raised:
        client(gateway, fake).chat.completions.create(model=MODEL, messages=MESSAGES)

    body: Any = raised.value.body
    assert raised.value.status_code == 429
    assert body["message"] == "bedrock error: Too many requests, slow down."
    assert body["code"] == "ThrottlingException"


def test_an_exception_mid_stream_reaches_the_client_as_an_error(gateway: GatewayProcess, fake: FakeBedrock) -> None:
    frames = frames_for(text_stream_events(["Part", "ial"])[:3])
    fake.enqueue(Scripted(frames=[*frames, exception_frame("serviceUnavailableException", "Bedrock is busy")]))
    received: list[str] = []

    with pytest.raises(openai.APIError, match="Bedrock is busy"):
        for chunk in client(gateway, fake).chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
            received.extend(c.delta.content or "" for c in chunk.choices)

    assert "".join(received) == "Partial"


def test_embeddings_through_invoke_model(gateway: GatewayProcess, fake: FakeBedrock) -> None:
    sdk = client(gateway, fake)

    titan = sdk.embeddings.create(model="amazon.titan-embed-text-v2:0", input=["hi", "there"], dimensions=4)
    cohere = sdk.embeddings.create(model="cohere.embed-english-v3", input="hello world", encoding_format="float")

    assert [d.embedding for d in titan.data] == [[2.0, 0.0, 0.125, 0.25], [5.0, 0.0, 0.125, 0.25]]
    assert titan.usage.prompt_tokens == 2
    assert cohere.data[0].embedding[0] == 11.0 and cohere.usage.prompt_tokens == 2


# --- the gateway's own identity --------------------------------------------------------------------------------
@pytest.fixture
def sts(fake: FakeBedrock) -> Iterator[CountingStsProxy]:
    def allow(issued: IssuedCredentials) -> None:
        fake.allow(issued.access_key_id, issued.secret_access_key, issued.session_token)

    with moto_sts() as moto_url:
        proxy = CountingStsProxy(moto_url, allow).start()
        yield proxy
        proxy.stop()


def test_the_gateway_signs_with_its_irsa_identity_and_one_sts_call(
    start_gateway: Callable[..., GatewayProcess], fake: FakeBedrock, sts: CountingStsProxy, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in CHAIN_ENV_UNSET:
        monkeypatch.delenv(name, raising=False)
    token_file = tmp_path / "token"
    token_file.write_text("projected-service-account-jwt")
    gateway = start_gateway(env={**CHAIN_ENV_OFF, "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/gw",
                                 "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file), "AWS_ENDPOINT_URL_STS": sts.url,
                                 "AWS_REGION": "eu-west-1"})
    sdk = client(gateway, fake, keys=False)

    for _ in range(5):
        assert sdk.chat.completions.create(model=MODEL, messages=MESSAGES).choices[0].message.content
    streamed = list(sdk.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))

    assert streamed[-1].choices[0].finish_reason == "stop"
    assert [call.action for call in sts.calls] == ["AssumeRoleWithWebIdentity"]
    assert sts.calls[0].params["WebIdentityToken"] == "projected-service-account-jwt"
    issued = sts.issued[0]
    assert len(fake.received) == 6 and fake.rejected == []
    assert all(r.headers["x-amz-security-token"] == issued.session_token for r in fake.received)
    assert issued.secret_access_key not in gateway.stderr()

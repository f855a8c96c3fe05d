"""The openai SDK → a real `skyrelay serve` → fake Vertex, with the gateway's identity from a fake metadata server.

The gateway process finds its Google identity as it would on Cloud Run or GKE: ``GCE_METADATA_HOST`` /
``GCE_METADATA_IP`` point google-auth at the fake metadata server, and nothing else (no key file, no gcloud
credentials) is available. The fake Vertex only accepts tokens the fake identities issued and validates every body
with google-genai's types (Gemini) or the Messages shape (Claude).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.fakes.gcp_identity import FakeGoogleOAuth, FakeMetadataServer, IssuedTokens, make_service_account_key
from tests.fakes.vertex_upstream import (
    FakeVertex,
    Scripted,
    claude_message,
    claude_stream_events,
    gemini_response,
    google_error,
)
from tests.support.gateway_process import GatewayProcess

GEMINI = "gemini-2.0-flash"
CLAUDE = "anthropic.claude-sonnet-4@20250514"
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "additionalProperties": False,
                   "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}},
                   "required": ["city"]}}}
QUESTION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}]


@pytest.fixture(scope="module")
def tokens() -> IssuedTokens:
    return IssuedTokens()


@pytest.fixture(scope="module")
def metadata(tokens: IssuedTokens) -> Iterator[FakeMetadataServer]:
    fake = FakeMetadataServer(tokens).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def oauth(tokens: IssuedTokens) -> Iterator[FakeGoogleOAuth]:
    fake = FakeGoogleOAuth(tokens).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def vertex_server(tokens: IssuedTokens) -> Iterator[FakeVertex]:
    fake = FakeVertex(tokens).start()
    yield fake
    fake.stop()


@pytest.fixture
def vertex(vertex_server: FakeVertex) -> Iterator[FakeVertex]:
    vertex_server.reset()
    yield vertex_server
    assert vertex_server.rejected == [], "the gateway sent a body Vertex would reject"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, metadata: FakeMetadataServer) -> Iterator[GatewayProcess]:
    root = tmp_path_factory.mktemp("vertex-gateway")
    env = {
        "GCE_METADATA_HOST": metadata.host, "GCE_METADATA_IP": metadata.host,
        "GOOGLE_APPLICATION_CREDENTIALS": "", "GOOGLE_CLOUD_PROJECT": "", "CLOUDSDK_CONFIG": str(root / "gcloud"),
    }
    process = GatewayProcess(root / "logs", env=env).start()
    yield process
    process.stop()


def client(gateway: GatewayProcess, vertex: FakeVertex, **headers: str) -> openai.OpenAI:
    """An ordinary OpenAI SDK client: its placeholder api_key is no Google token, so the gateway's identity is used."""
    return openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key="sk-placeholder", max_retries=0,
        default_headers={"x-portkey-provider": "vertex-ai", "x-portkey-custom-host": vertex.url,
                         "x-portkey-vertex-region": "us-central1", **headers},
    )


def test_gemini_chat_with_the_metadata_server_identity(
    gateway: GatewayProcess, vertex: FakeVertex, metadata: FakeMetadataServer,
) -> None:
    response = client(gateway, vertex).chat.completions.create(model=GEMINI, messages=QUESTION, temperature=0.2)

    assert response.choices[0].message.content == "Hello from fake Gemini."
    assert response.usage is not None and response.usage.total_tokens == 12
    sent = vertex.received[-1]
    assert sent.path == ("/v1/projects/metadata-project/locations/us-central1/publishers/google/models/"
                         f"{GEMINI}:generateContent")
    assert sent.headers["authorization"].startswith("Bearer ya29.fake-metadata-")
    assert sent.body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent.body["generationConfig"] == {"temperature": 0.2}
    assert not any(name.startswith("x-portkey-") for name in sent.headers)


def test_gemini_streaming(gateway: GatewayProcess, vertex: FakeVertex) -> None:
    stream = client(gateway, vertex).chat.completions.create(model=GEMINI, messages=QUESTION, stream=True)
    chunks = list(stream)

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the fake stream."
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_gemini_stream_ends_with_done_for_openai_clients(gateway: GatewayProcess, vertex: FakeVertex) -> None:
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", timeout=10, json={
        "model": GEMINI, "messages": QUESTION, "stream": True,
    }, headers={"x-portkey-provider": "vertex-ai", "x-portkey-custom-host": vertex.url,
                "x-portkey-vertex-region": "us-central1"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]

    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)


def test_gemini_stream_is_not_buffered(gateway: GatewayProcess, vertex: FakeVertex) -> None:
    gate = threading.Event()
    vertex.chunk_gate = gate
    iterator = iter(client(gateway, vertex).chat.completions.create(model=GEMINI, messages=QUESTION, stream=True))
    first = next(iterator)

    assert first.choices[0].delta.content == "Hello"
    assert not gate.is_set(), "the first chunk arrived only after the upstream was allowed to continue"
    gate.set()
    assert "".join(c.choices[0].delta.content or "" for c in iterator if c.choices) == " from the fake stream."


def test_gemini_tool_calls_round_trip(gateway: GatewayProcess, vertex: FakeVertex) -> None:
    vertex.enqueue(Scripted(body=gemini_response(GEMINI, [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris", "unit": "C"}}}])))
    c = client(gateway, vertex)
    first = c.chat.completions.create(model=GEMINI, messages=QUESTION, tools=[WEATHER_TOOL], tool_choice="required")

    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "C"}  # type: ignore[union-attr]
    declared = vertex.received[-1].body["tools"][0]["functionDeclarations"][0]
    assert declared["parameters"]["properties"]["unit"] == {"type": "STRING", "enum": ["C", "F"]}
    assert vertex.received[-1].body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}

    vertex.enqueue(Scripted(body=gemini_response(GEMINI, [{"text": "21C and sunny."}])))
    second = c.chat.completions.create(model=GEMINI, tools=[WEATHER_TOOL], messages=[
        *QUESTION, first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "21C, sunny"}])

    assert second.choices[0].message.content == "21C and sunny."
    turns = vertex.received[-1].body["contents"]
    assert turns[-2]["parts"][0]["functionCall"]["name"] == "get_weather"
    assert turns[-1]["parts"] == [{"functionResponse": {"name": "get_weather", "response": {"output": "21C, sunny"}}}]


def test_gemini_streaming_tool_call(gateway: GatewayProcess, vertex: FakeVertex) -> None:
    vertex.enqueue(Scripted(events=[
        {"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]}}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP"}],
         "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4, "totalTokenCount": 13}},
    ]))
    chunks = list(client(gateway, vertex).chat.completions.create(model=GEMINI, messages=QUESTION,
                                                                 tools=[WEATHER_TOOL], stream=True))

    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1 and calls[0].id and calls[0].function is not None
    assert json.loads(calls[0].function.arguments or "") == {"city": "Rome"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_claude_on_vertex_chat(gateway: GatewayProcess, vertex: FakeVertex) -> None:
    response = client(gateway, vertex).chat.completions.create(model=CLAUDE, messages=QUESTION, stop="END")

    assert response.choices[0].message.content == "Hello from fake Claude."
    sent = vertex.received[-1]
    assert sent.path.endswith("/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict")
    assert sent.body["anthropic_version"] == "vertex-2023-10-16"
    assert sent.body["stop_sequences"] == ["END"]
    assert sent.body["system"] == [{"type": "text", "text": "Be brief."}]
    assert "model" not in sent.body


def test_claude_on_vertex_streaming_tool_call(gateway: GatewayProcess, vertex: FakeVertex) -> None:
    events = claude_stream_events("claude-sonnet-4-20250514", ["Checking."])
    events[-2:-2] = [
        {"type": "content_block_start", "index": 1,
         "content_block": {"type": "tool_use", "id": "toolu_e2e", "name": "get_weather", "input": {}}},
        *({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": piece}}
          for piece in ('{"ci', 'ty":"Oslo"}')),
        {"type": "content_block_stop", "index": 1},
    ]
    events[-2]["delta"]["stop_reason"] = "tool_use"
    vertex.enqueue(Scripted(events=events))
    chunks = list(client(gateway, vertex).chat.completions.create(model=CLAUDE, messages=QUESTION,
                                                                 tools=[WEATHER_TOOL], stream=True))

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    arguments = "".join(tc.function.arguments or "" for c in chunks if c.choices
                        for tc in (c.choices[0].delta.tool_calls or []) if tc.function)
    ids = [tc.id for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or []) if tc.id]
    assert text == "Checking."
    assert (ids, json.loads(arguments)) == (["toolu_e2e"], {"city": "Oslo"})
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert vertex.received[-1].body["stream"] is True


def test_claude_tool_result_round_trip(gateway: GatewayProcess, vertex: FakeVertex) -> None:
    vertex.enqueue(Scripted(body=claude_message("claude-sonnet-4", [{"type": "text", "text": "It is 4C in Oslo."}])))
    response = client(gateway, vertex).chat.completions.create(model=CLAUDE, tools=[WEATHER_TOOL], messages=[
        *QUESTION,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "toolu_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "4C"}])

    assert response.choices[0].message.content == "It is 4C in Oslo."
    assert vertex.received[-1].body["messages"][-1] == {
        "role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "4C"}]}


def test_an_error_event_in_a_claude_stream_reaches_the_client(gateway: GatewayProcess, vertex: FakeVertex) -> None:
    events = claude_stream_events("claude-sonnet-4", ["Par"])[:4]
    events.append({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    vertex.enqueue(Scripted(events=events))

    with pytest.raises(openai.APIError, match="vertex-ai error: Overloaded"):
        list(client(gateway, vertex).chat.completions.create(model=CLAUDE, messages=QUESTION, stream=True))


def test_embeddings(gateway: GatewayProcess, vertex: FakeVertex) -> None:
    result = client(gateway, vertex).embeddings.create(model="text-embedding-005", input=["a b", "c"], dimensions=3)

    # the SDK asks for base64 (little-endian float32) and decodes it
    assert [d.embedding for d in result.data] == [pytest.approx([0.1] * 3), pytest.approx([0.2] * 3)]
    assert result.usage.prompt_tokens == 3
    assert vertex.received[-1].body["parameters"] == {"outputDimensionality": 3}


def test_quota_errors_are_retryable_429s_in_openai_shape(gateway: GatewayProcess, vertex: FakeVertex) -> None:
    vertex.enqueue(Scripted(status=429, body=google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.")))

    with pytest.raises(openai.RateLimitError) as caught:
        client(gateway, vertex).chat.completions.create(model=GEMINI, messages=QUESTION)
    assert caught.value.body == {"message": "vertex-ai error: Quota exceeded.", "type": "RESOURCE_EXHAUSTED",
                                 "param": None, "code": "429"}
    assert caught.value.response.json()["provider"] == "vertex-ai"


def test_a_callers_service_account_key(
    gateway: GatewayProcess, vertex: FakeVertex, oauth: FakeGoogleOAuth, tmp_path: Path,
) -> None:
    info, public_key = make_service_account_key(oauth.token_uri)
    oauth.register(info["client_email"], public_key)
    grants = oauth.jwt_grants
    c = client(gateway, vertex, **{"x-portkey-vertex-service-account-json": json.dumps(info)})
    for _ in range(4):
        c.chat.completions.create(model=GEMINI, messages=QUESTION)

    assert oauth.jwt_grants - grants == 1
    assert vertex.received[-1].headers["authorization"].startswith("Bearer ya29.fake-sa-")
    assert "/projects/key-project/" in vertex.received[-1].path
    records = gateway.wait_for_records(1)
    assert records and info["private_key"] not in json.dumps(records)


def test_one_metadata_token_serves_every_request(
    gateway: GatewayProcess, vertex: FakeVertex, metadata: FakeMetadataServer,
) -> None:
    c = client(gateway, vertex)
    threads = [threading.Thread(target=c.chat.completions.create, kwargs={"model": GEMINI, "messages": QUESTION})
               for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    for _ in range(8):
        c.chat.completions.create(model=GEMINI, messages=QUESTION)

    assert len([r for r in vertex.received if r.method == "generateContent"]) == 20
    assert metadata.token_requests == 1
    assert metadata.refused == 0




def test_a_fallback_config_moves_past_an_unavailable_vertex_target(
    gateway: GatewayProcess, vertex: FakeVertex, oauth: FakeGoogleOAuth,
) -> None:
    """UNAVAILABLE is a 503 the router acts on; the second target's key comes from the config as an object."""
    info, public_key = make_service_account_key(oauth.token_uri, project_id="config-project")
    oauth.register(info["client_email"], public_key)
    config = {"strategy": {"mode": "fallback"}, "targets": [
        {"provider": "vertex-ai", "vertex_region": "us-central1", "custom_host": vertex.url},
        {"provider": "vertex-ai", "vertex_region": "global", "custom_host": vertex.url,
         "vertex_service_account_json": info, "override_params": {"model": CLAUDE}},
    ]}
    vertex.enqueue(Scripted(status=503, body=google_error(503, "UNAVAILABLE", "The service is currently unavailable.")))
    c = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-placeholder", max_retries=0,
                      default_headers={"x-portkey-config": json.dumps(config)})
    raw = c.chat.completions.with_raw_response.create(model=GEMINI, messages=QUESTION)

    assert raw.parse().choices[0].message.content == "Hello from fake Claude."
    assert raw.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    first, second = vertex.received[-2:]
    assert first.headers["authorization"].startswith("Bearer ya29.fake-metadata-")
    assert second.path == ("/v1/projects/config-project/locations/global/publishers/anthropic/models/"
                           "claude-sonnet-4@20250514:rawPredict")
    assert second.headers["authorization"].startswith("Bearer ya29.fake-sa-")

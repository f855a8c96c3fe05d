"""The official openai SDK (sync, async, streaming) against a real `skyrelay serve` and a fake OpenAI upstream."""

from __future__ import annotations

import threading
import time

import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Scripted
from tests.support.gateway_process import GatewayProcess

MESSAGES = [{"role": "user", "content": "Say hello"}]


def client(gateway: GatewayProcess, fake: FakeOpenAI, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{gateway.url}/v1",
        api_key="sk-provider-secret-1234",
        max_retries=0,
        default_headers={"x-portkey-provider": "openai", "x-portkey-custom-host": fake.url, **headers},
    )


def test_chat_completion_round_trip(gateway: GatewayProcess, fake_openai: FakeOpenAI) -> None:
    response = client(gateway, fake_openai).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert response.choices[0].message.content == "Hello from the fake upstream."
    assert response.usage is not None and response.usage.total_tokens == 16
    sent = fake_openai.received[-1]
    assert sent.headers["authorization"] == "Bearer sk-provider-secret-1234"
    assert not any(name.startswith("x-portkey-") for name in sent.headers)
    assert sent.body == {"model": "gpt-4o-mini", "messages": MESSAGES}


def test_portkey_response_headers_and_upstream_headers_pass_through(
    gateway: GatewayProcess, fake_openai: FakeOpenAI
) -> None:
    raw = client(gateway, fake_openai, **{"x-portkey-trace-id": "trace-abc"}).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )

    assert raw.headers["x-portkey-provider"] == "openai"
    assert raw.headers["x-portkey-trace-id"] == "trace-abc"
    assert raw.headers["x-portkey-retry-attempt-count"] == "0"
    assert raw.headers["x-portkey-last-used-option-index"] == "config"
    assert raw.headers["x-portkey-cache-status"] == "DISABLED"
    assert raw.headers["x-request-id"] == "req_fake"
    assert raw.headers["openai-processing-ms"] == "1"


def test_unknown_body_params_are_passed_through(gateway: GatewayProcess, fake_openai: FakeOpenAI) -> None:
    client(gateway, fake_openai).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_body={"brand_new_param": {"x": 1}, "reasoning_effort": "low"}
    )

    assert fake_openai.received[-1].body["brand_new_param"] == {"x": 1}
    assert fake_openai.received[-1].body["reasoning_effort"] == "low"


def test_streaming_yields_every_chunk_and_usage(gateway: GatewayProcess, fake_openai: FakeOpenAI) -> None:
    stream = client(gateway, fake_openai).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the fake stream."
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6


def test_stream_is_not_buffered(gateway: GatewayProcess, fake_openai: FakeOpenAI) -> None:
    """The client holds the first chunk while the upstream still withholds the second."""
    gate = threading.Event()
    fake_openai.chunk_gate = gate
    stream = client(gateway, fake_openai).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                                  stream=True)
    iterator = iter(stream)
    first = next(iterator)
    assert first.choices[0].delta.role == "assistant"
    assert not gate.is_set(), "the first chunk arrived only after the upstream was allowed to continue"
    gate.set()
    rest = list(iterator)
    assert "".join(c.choices[0].delta.content or "" for c in rest if c.choices) == "Hello from the fake stream."


def test_client_disconnect_cancels_the_upstream_stream(gateway: GatewayProcess, fake_openai: FakeOpenAI) -> None:
    fake_openai.chunk_delay_s = 0.5
    stream = client(gateway, fake_openai).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                                  stream=True)
    next(iter(stream))
    stream.close()
    assert fake_openai.stream_cancelled.wait(timeout=5), "upstream kept streaming after the client left"


async def test_async_client_and_async_streaming(gateway: GatewayProcess, fake_openai: FakeOpenAI) -> None:
    async_client = openai.AsyncOpenAI(
        base_url=f"{gateway.url}/v1", api_key="sk-provider-secret-1234", max_retries=0,
        default_headers={"x-portkey-provider": "openai", "x-portkey-custom-host": fake_openai.url},
    )
    response = await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert response.choices[0].message.content == "Hello from the fake upstream."

    stream = await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hello from the fake stream."
    await async_client.close()


def test_completions_embeddings_and_models(gateway: GatewayProcess, fake_openai: FakeOpenAI) -> None:
    c = client(gateway, fake_openai)
    assert c.completions.create(model="gpt-3.5-turbo-instruct", prompt="Hello").choices[0].text == " world"
    embedding = c.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert [d.index for d in embedding.data] == [0, 1]
    assert [m.id for m in c.models.list()] == ["gpt-4o-mini"]


def test_upstream_error_keeps_status_and_names_the_provider(
    gateway: GatewayProcess, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Scripted(status=429, body={"error": {"message": "Rate limit reached", "type": "requests",
                                                             "param": None, "code": "rate_limit_exceeded"}},
                                 headers={"retry-after": "3"}))
    with pytest.raises(openai.RateLimitError) as caught:
        client(gateway, fake_openai).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert caught.value.status_code == 429
    assert caught.value.body["message"] == "openai error: Rate limit reached"
    assert caught.value.body["code"] == "rate_limit_exceeded"
    assert caught.value.response.json()["provider"] == "openai"
    assert caught.value.response.headers["retry-after"] == "3"


def test_forward_headers_copies_only_the_named_client_headers(
    gateway: GatewayProcess, fake_openai: FakeOpenAI
) -> None:
    client(gateway, fake_openai, **{"x-portkey-forward-headers": "x-tenant", "x-tenant": "blue",
                                    "x-other": "nope"}).chat.completions.create(model="m", messages=MESSAGES)

    sent = fake_openai.received[-1].headers
    assert sent["x-tenant"] == "blue"
    assert "x-other" not in sent


def test_slow_upstream_hits_request_timeout(gateway: GatewayProcess, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Scripted(delay_s=1.0, body={"never": "seen"}))
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        client(gateway, fake_openai, **{"x-portkey-request-timeout": "200"}).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES)

    assert caught.value.status_code == 408
    assert caught.value.body["type"] == "timeout_error"
    assert caught.value.body["message"] == "Request exceeded the timeout sent in the request: 200ms"
    assert time.monotonic() - started < 0.9

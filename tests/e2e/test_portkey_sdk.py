"""The portkey-ai SDK pointed at Skyrelay with base_url, unchanged."""

from __future__ import annotations

from portkey_ai import AsyncPortkey, Portkey

from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.gateway_process import GatewayProcess

MESSAGES = [{"role": "user", "content": "Say hello"}]


def test_portkey_sdk_chat_and_stream(gateway: GatewayProcess, fake_openai: FakeOpenAI) -> None:
    portkey = Portkey(base_url=f"{gateway.url}/v1", provider="openai", Authorization="sk-provider-secret-99",
                      custom_host=fake_openai.url, trace_id="pk-trace-1", metadata={"team": "search"})

    response = portkey.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert response.choices[0].message.content == "Hello from the fake upstream."
    assert fake_openai.received[-1].headers["authorization"] == "Bearer sk-provider-secret-99"

    stream = portkey.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Hello from the fake stream."

    records = gateway.wait_for_records(2)
    traced = [r for r in records if r["trace_id"] == "pk-trace-1"]
    assert len(traced) == 2 and traced[0]["metadata"] == {"team": "search"}


async def test_async_portkey_sdk(gateway: GatewayProcess, fake_openai: FakeOpenAI) -> None:
    portkey = AsyncPortkey(base_url=f"{gateway.url}/v1", provider="openai", Authorization="sk-provider-secret-99",
                           custom_host=fake_openai.url)
    response = await portkey.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert response.choices[0].message.content == "Hello from the fake upstream."
    embedding = await portkey.embeddings.create(model="text-embedding-3-small", input="hello")
    assert embedding.data[0].embedding == [0.1, 0.2, 0.3]

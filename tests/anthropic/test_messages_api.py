"""The anthropic provider and the Anthropic-format ingress (/v1/messages), driven by the real SDKs."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.fakes.anthropic_upstream import API_KEY, FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support.gateway_process import GatewayProcess

WEATHER_TOOL = {"name": "get_weather", "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                 "required": ["city"]}}


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic().start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _reset(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reset()


def claude_via_gateway(gateway: GatewayProcess, fake: FakeAnthropic) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=API_KEY, max_retries=0, default_headers={
        "x-portkey-provider": "anthropic", "x-portkey-custom-host": fake.url})


def test_openai_sdk_reaches_anthropic(gateway: GatewayProcess, fake_anthropic: FakeAnthropic) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=API_KEY, max_retries=0, default_headers={
        "x-portkey-provider": "anthropic", "x-portkey-custom-host": fake_anthropic.url,
        "anthropic-beta": "prompt-caching-2024-07-31"})
    reply = client.chat.completions.create(model="claude-test-model", max_tokens=100, stop="END",
                                           messages=[{"role": "system", "content": "Be brief."},
                                                     {"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "Hello from Claude."
    assert reply.usage is not None and reply.usage.prompt_tokens == 12
    sent = fake_anthropic.received[-1]
    assert sent["system"] == [{"type": "text", "text": "Be brief."}] or sent["system"] == "Be brief."
    assert sent["stop_sequences"] == ["END"] and sent["max_tokens"] == 100
    assert fake_anthropic.headers[-1]["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert fake_anthropic.headers[-1]["anthropic-version"] == "2023-06-01"

    stream = client.chat.completions.create(model="claude-test-model", messages=[{"role": "user", "content": "hi"}],
                                            stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello from Claude."


def test_anthropic_sdk_messages_to_anthropic(gateway: GatewayProcess, fake_anthropic: FakeAnthropic) -> None:
    client = claude_via_gateway(gateway, fake_anthropic)
    message = client.messages.create(model="claude-test-model", max_tokens=64, system="Be brief.",
                                     messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].type == "text" and message.content[0].text == "Hello from Claude."
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 12 and message.usage.output_tokens == 5

    with client.messages.stream(model="claude-test-model", max_tokens=64,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from Claude."
    assert final.stop_reason == "end_turn"


def test_anthropic_sdk_tools_round_trip(gateway: GatewayProcess, fake_anthropic: FakeAnthropic) -> None:
    client = claude_via_gateway(gateway, fake_anthropic)
    first = client.messages.create(model="claude-test-model", max_tokens=64, tools=[WEATHER_TOOL],
                                   tool_choice={"type": "auto"},
                                   messages=[{"role": "user", "content": "What is the weather in Paris?"}])
    assert first.stop_reason == "tool_use"
    call = first.content[0]
    assert call.type == "tool_use" and call.name == "get_weather" and call.input == {"city": "Paris"}

    follow_up = client.messages.create(model="claude-test-model", max_tokens=64, tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": call.id, "name": call.name,
                                           "input": call.input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C, sunny"}]},
    ])
    assert follow_up.content[0].text == "Hello from Claude."
    sent = fake_anthropic.received[-1]["messages"]
    assert sent[1]["content"][0]["type"] == "tool_use" and sent[1]["content"][0]["id"] == call.id
    assert sent[2]["content"][0] == {"type": "tool_result", "tool_use_id": call.id, "content": "18C, sunny"}

    with client.messages.stream(model="claude-test-model", max_tokens=64, tools=[WEATHER_TOOL],
                                messages=[{"role": "user", "content": "weather in Paris?"}]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use" and final.content[0].input == {"city": "Paris"}


def test_anthropic_sdk_to_an_openai_backend(gateway: GatewayProcess, fake_openai: FakeOpenAI) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key="sk-openai-key", max_retries=0, default_headers={
        "x-portkey-provider": "openai", "x-portkey-custom-host": fake_openai.url})
    message = client.messages.create(model="gpt-4o-mini", max_tokens=64, system="Be brief.",
                                     messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].text == "Hello from the fake upstream."
    assert message.usage.output_tokens == 7
    sent = fake_openai.received[-1]
    assert sent.body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent.headers["authorization"] == "Bearer sk-openai-key"

    with client.messages.stream(model="gpt-4o-mini", max_tokens=64,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from the fake stream."
    assert final.usage.output_tokens == 6


def test_count_tokens_where_the_target_supports_it(gateway: GatewayProcess, fake_anthropic: FakeAnthropic,
                                                   fake_openai: FakeOpenAI) -> None:
    count = claude_via_gateway(gateway, fake_anthropic).messages.count_tokens(
        model="claude-test-model", messages=[{"role": "user", "content": "hello there"}])
    assert count.input_tokens > 0
    unsupported = anthropic.Anthropic(base_url=gateway.url, api_key="k", max_retries=0, default_headers={
        "x-portkey-provider": "openai", "x-portkey-custom-host": fake_openai.url})
    with pytest.raises(anthropic.BadRequestError) as caught:
        unsupported.messages.count_tokens(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert "not supported by openai" in str(caught.value)


def test_bad_messages_requests_get_anthropic_errors(gateway: GatewayProcess, fake_anthropic: FakeAnthropic) -> None:
    client = claude_via_gateway(gateway, fake_anthropic)
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="claude-test-model", max_tokens=64, messages=[])
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    wrong_key = anthropic.Anthropic(base_url=gateway.url, api_key="wrong", max_retries=0, default_headers={
        "x-portkey-provider": "anthropic", "x-portkey-custom-host": fake_anthropic.url})
    with pytest.raises(anthropic.AuthenticationError):
        wrong_key.messages.create(model="claude-test-model", max_tokens=8, messages=[{"role": "user", "content": "x"}])

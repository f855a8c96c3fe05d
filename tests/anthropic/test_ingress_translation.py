"""Anthropic Messages ingress ↔ OpenAI chat: exact translations both ways."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from core.api.anthropic_request import messages_request_to_chat
from core.api.anthropic_response import anthropic_error, chat_to_messages_response
from core.api.anthropic_stream import chat_stream_to_messages
from core.errors import InvalidRequestError


def test_request_translation() -> None:
    body = {
        "model": "claude-sonnet-4-5", "max_tokens": 256, "system": [{"type": "text", "text": "Be brief."}],
        "stop_sequences": ["END"], "temperature": 0.2, "top_k": 5, "stream": True,
        "metadata": {"user_id": "u-1"}, "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Look"},
                                         {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                      "data": "iVBOR"}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                                              {"type": "text", "text": "Checking."},
                                              {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                               "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                          "content": [{"type": "text", "text": "18C"}]},
                                         {"type": "text", "text": "And tomorrow?"}]},
        ],
    }
    assert messages_request_to_chat(body) == {
        "model": "claude-sonnet-4-5", "max_tokens": 256, "stop": ["END"], "temperature": 0.2, "top_k": 5,
        "stream": True, "stream_options": {"include_usage": True}, "user": "u-1",
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"},
                                                    "description": "Weather"}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}}, "parallel_tool_calls": False,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Look"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "get_weather",
                                                                   "arguments": '{"city":"Paris"}'}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]},
        ],
    }


@pytest.mark.parametrize(("body", "param"), [
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"model": "m", "max_tokens": 5, "messages": []}, "messages"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "messages[0]"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "video"}]}]},
     "messages[0].content[0]"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "x"}},
     "tool_choice"),
])
def test_bad_requests_name_the_field(body: dict, param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        messages_request_to_chat(body)
    assert caught.value.param == param


def test_response_translation() -> None:
    completion = {"id": "chatcmpl-1", "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "tool_calls",
                  "message": {"role": "assistant", "content": "Let me check.", "tool_calls": [
                      {"id": "call_1", "type": "function",
                       "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}}],
                  "usage": {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28,
                            "prompt_tokens_details": {"cached_tokens": 5}}}
    assert chat_to_messages_response(completion, "gpt-4o") == {
        "id": "chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt-4o",
        "content": [{"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 15, "output_tokens": 8, "cache_read_input_tokens": 5},
    }
    assert anthropic_error(429, {"error": {"message": "slow down"}}) == {
        "type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    assert anthropic_error(503, {})["error"]["type"] == "api_error"


def _sse(*chunks: dict) -> list[bytes]:
    return [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]


async def _collect(chunks: list[bytes]) -> list[tuple[str, dict]]:
    async def source() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    events = []
    async for raw in chat_stream_to_messages(source(), "gpt-4o"):
        head, data = raw.decode().split("\n", 1)
        events.append((head.removeprefix("event: "), orjson.loads(data.removeprefix("data: ").strip())))
    return events


def test_stream_translation_text_then_tool_call() -> None:
    base = {"id": "c1", "model": "gpt-4o"}
    chunks = _sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
                  {**base, "choices": [{"index": 0, "delta": {"content": "Hi"}}]},
                  {**base, "choices": [{"index": 0, "delta": {"tool_calls": [
                      {"index": 0, "id": "call_9", "function": {"name": "f", "arguments": "{\"a\""}}]}}]},
                  {**base, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0,
                                                                               "function": {"arguments": ":1}"}}]}}]},
                  {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
                  {**base, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}})
    events = asyncio.run(_collect(chunks))
    assert [name for name, _ in events] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_stop", "content_block_start",
        "content_block_delta", "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    assert events[2][1]["delta"] == {"type": "text_delta", "text": "Hi"}
    assert events[4][1]["content_block"] == {"type": "tool_use", "id": "call_9", "name": "f", "input": {}}
    assert events[6][1]["delta"] == {"type": "input_json_delta", "partial_json": ":1}"}
    assert events[8][1]["delta"]["stop_reason"] == "tool_use"
    assert events[8][1]["usage"] == {"input_tokens": 3, "output_tokens": 4}


def test_stream_error_chunk_becomes_an_error_event() -> None:
    chunks = [b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"x"}}]}\n\n',
              b'data: {"error":{"message":"upstream broke"}}\n\n']
    events = asyncio.run(_collect(chunks))
    assert events[-1] == ("error", {"type": "error", "error": {"type": "api_error", "message": "upstream broke"}})
    assert "message_stop" not in [name for name, _ in events]

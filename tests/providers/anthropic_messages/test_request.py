"""OpenAI → Messages request translation: the rules every host relies on, one test each."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import InvalidRequestError
from core.providers.anthropic_messages.request import DEFAULT_MAX_TOKENS, chat_to_messages


def _body(**fields: Any) -> dict[str, Any]:
    return {"model": "claude", "messages": [{"role": "user", "content": "Hi"}], **fields}


@pytest.mark.parametrize(("stop", "expected"), [("END", ["END"]), (["A", "B"], ["A", "B"])])
def test_stop_is_always_a_list(stop: Any, expected: list[str]) -> None:
    assert chat_to_messages(_body(stop=stop))["stop_sequences"] == expected


def test_max_tokens_default_and_precedence() -> None:
    assert chat_to_messages(_body())["max_tokens"] == DEFAULT_MAX_TOKENS
    assert chat_to_messages(_body(), default_max_tokens=1024)["max_tokens"] == 1024
    assert chat_to_messages(_body(max_tokens=10, max_completion_tokens=20))["max_tokens"] == 20


def test_the_envelope_is_only_what_the_host_asks_for() -> None:
    plain = chat_to_messages(_body(stream=True, anthropic_version="vertex-2023-10-16"))

    assert not {"model", "stream", "anthropic_version", "anthropic_beta"} & set(plain)
    full = chat_to_messages(_body(), model="claude-x", anthropic_version="v", stream=False, anthropic_beta=["b1"])
    assert (full["model"], full["anthropic_version"], full["stream"], full["anthropic_beta"]) == (
        "claude-x", "v", False, ["b1"])


@pytest.mark.parametrize(("choice", "parallel", "expected"), [
    ("auto", None, {"type": "auto"}),
    ("required", None, {"type": "any"}),
    ("none", False, {"type": "none"}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ({"type": "function", "function": {"name": "f"}}, False,
     {"type": "tool", "name": "f", "disable_parallel_tool_use": True}),
])
def test_tool_choice(choice: Any, parallel: Any, expected: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"tools": [{"type": "function", "function": {"name": "f"}}]}
    if choice is not None:
        fields["tool_choice"] = choice
    if parallel is not None:
        fields["parallel_tool_calls"] = parallel

    assert chat_to_messages(_body(**fields))["tool_choice"] == expected


def test_tool_choice_without_tools_is_left_out() -> None:
    assert "tool_choice" not in chat_to_messages(_body(tool_choice="required"))


@pytest.mark.parametrize(("message", "error"), [
    ({"role": "function", "name": "f", "content": "x"}, "role 'function' is not supported"),
    ({"role": "tool", "content": "x"}, "tool_call_id is required"),
    ({"role": "assistant", "tool_calls": [{"id": "t", "type": "function",
                                           "function": {"name": "f", "arguments": "nope"}}]}, "must be a JSON object"),
    ({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}]},
     "images"),
    ({"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]},
     "'input_audio' are not supported"),
])
def test_refused_inputs(message: dict[str, Any], error: str) -> None:
    with pytest.raises(InvalidRequestError, match=error):
        chat_to_messages({"model": "claude", "messages": [message]})


def test_consecutive_turns_merge_with_tool_results_first() -> None:
    body = chat_to_messages({"model": "claude", "messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "user", "content": "typed before the result arrived"},
        {"role": "tool", "tool_call_id": "t1", "content": "done"},
    ]})

    assert body["messages"][-1] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": "done"},
        {"type": "text", "text": "typed before the result arrived"}]}
    assert body["messages"][1]["content"] == [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]

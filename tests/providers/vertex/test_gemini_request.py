"""Gemini request translation: the inputs it refuses with a clear 400, and the tool_choice forms."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import InvalidRequestError
from core.providers.vertex.gemini_request import chat_to_gemini

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
                                                                       "properties": {"x": {"type": "string"}}}}}]


def _user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"model": "gemini-2.0-flash", "messages": [{"role": "user", "content": list(parts)}]}


@pytest.mark.parametrize(("body", "message"), [
    (_user({"type": "image_url", "image_url": {"url": "ftp://host/cat.png"}}), "only data:, gs:// and https://"),
    (_user({"type": "image_url", "image_url": {"url": "data:image/png,not-base64"}}), "base64 encoded"),
    (_user({"type": "video_url", "video_url": {"url": "gs://b/v.mp4"}}), "'video_url' are not supported"),
    ({"model": "m", "messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "system messages may only hold text"),
    ({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{broken"}}]}]},
     "must be a JSON object"),
    ({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "[1, 2]"}}]}]},
     "must be a JSON object"),
    ({"model": "m", "messages": [{"role": "tool", "tool_call_id": "nobody", "content": "x"}]},
     "does not match a tool call"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "file_search"}]},
     "only function tools"),
])
def test_refused_inputs(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        chat_to_gemini(body)


@pytest.mark.parametrize(("choice", "config"), [
    ("auto", {"mode": "AUTO"}),
    ("none", {"mode": "NONE"}),
    ("required", {"mode": "ANY"}),
    ({"type": "function", "function": {"name": "f"}}, {"mode": "ANY", "allowedFunctionNames": ["f"]}),
])
def test_tool_choice(choice: Any, config: dict[str, Any]) -> None:
    body = chat_to_gemini({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": TOOLS,
                           "tool_choice": choice})

    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_tool_choice_without_function_tools_is_left_out() -> None:
    body = chat_to_gemini({"model": "m", "messages": [{"role": "user", "content": "x"}],
                           "tools": [{"type": "googleSearch"}], "tool_choice": "required"})

    assert body["tools"] == [{"googleSearch": {}}]
    assert "toolConfig" not in body


def test_empty_messages_are_dropped_rather_than_sent_empty() -> None:
    body = chat_to_gemini({"model": "m", "messages": [{"role": "user", "content": ""},
                                                      {"role": "assistant", "content": None},
                                                      {"role": "user", "content": "real"}]})

    assert body["contents"] == [{"role": "user", "parts": [{"text": "real"}]}]


def test_disabled_thinking_is_a_zero_budget() -> None:
    body = chat_to_gemini({"model": "m", "messages": [{"role": "user", "content": "x"}],
                           "thinking": {"type": "disabled"}})

    assert body["generationConfig"] == {"thinkingConfig": {"thinkingBudget": 0}}

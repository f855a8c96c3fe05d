"""Anthropic Messages requests (``POST /v1/messages``) → OpenAI chat bodies, so the one routing engine serves both.

The Anthropic SDK and Claude-Code-style clients talk to the gateway in Anthropic's format; every provider adapter
speaks OpenAI's. System prompts, text, images, tool definitions, ``tool_choice``, tool calls and tool results,
stop sequences, sampling parameters, ``metadata.user_id`` and ``thinking`` are carried over; Claude targets turn
the result back into the same Messages body. Prompt-caching markers (``cache_control``) and thinking blocks of
earlier turns have no OpenAI form and are dropped.
"""

from __future__ import annotations

from typing import Any

import orjson

from core.errors import InvalidRequestError

_TOOL_CHOICE = {"auto": "auto", "any": "required", "none": "none"}


def _text(block: Any, where: str) -> str:
    if isinstance(block, str):
        return block
    if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
        return block["text"]
    raise InvalidRequestError(f"{where} must be a string or a list of text blocks", param=where)


def _system(system: Any) -> list[dict[str, Any]]:
    if system is None:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if isinstance(system, list):
        return [{"role": "system", "content": "".join(_text(b, "system") for b in system)}]
    raise InvalidRequestError("'system' must be a string or a list of text blocks", param="system")


def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        source = {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise InvalidRequestError(f"{where}.source must be a base64 or url image source", param=where)
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result_content(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return orjson.dumps(content).decode()


def _message(message: Any, i: int) -> list[dict[str, Any]]:
    where = f"messages[{i}]"
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise InvalidRequestError(f"{where} must be an object with role 'user' or 'assistant'", param=where)
    role, content = message["role"], message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise InvalidRequestError(f"{where}.content must be a string or a list of content blocks", param=where)
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        here = f"{where}.content[{j}]"
        if kind == "text":
            parts.append({"type": "text", "text": _text(block, here)})
        elif kind == "image":
            parts.append(_image_part(block, here))
        elif kind == "tool_use" and role == "assistant":
            calls.append({"id": block.get("id"), "type": "function", "function": {
                "name": block.get("name"), "arguments": orjson.dumps(block.get("input") or {}).decode()}})
        elif kind == "tool_result" and role == "user":
            results.append({"role": "tool", "tool_call_id": block.get("tool_use_id"),
                            "content": _tool_result_content(block.get("content"))})
        elif kind in ("thinking", "redacted_thinking", "document", "search_result"):
            continue
        else:
            raise InvalidRequestError(f"{here} has an unsupported block type {kind!r}", param=here)
    out: list[dict[str, Any]] = list(results)
    if role == "assistant":
        text = "".join(p["text"] for p in parts if p["type"] == "text")
        reply: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            reply["tool_calls"] = calls
        if text or calls:
            out.append(reply)
    elif parts:
        out.append({"role": "user", "content": parts})
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequestError("'tools' must be a list", param="tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise InvalidRequestError(f"tools[{i}] needs a name", param=f"tools[{i}]")
        function: dict[str, Any] = {"name": tool["name"],
                                    "parameters": tool.get("input_schema") or {"type": "object"}}
        if tool.get("description"):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "none", "tool"):
        raise InvalidRequestError("'tool_choice' must have type auto, any, none or tool", param="tool_choice")
    if choice["type"] == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return _TOOL_CHOICE[choice["type"]]


def messages_request_to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI chat body for an Anthropic Messages body; malformed input is a 400 naming the field."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequestError("'model' is required", param="model")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, float) and max_tokens.is_integer() and -(2**63) <= max_tokens < 2**63:
        max_tokens = int(max_tokens)  # JSON Schema (and Anthropic's API) count 2.0 as an integer
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise InvalidRequestError("'max_tokens' is required and must be an integer", param="max_tokens")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("'messages' must be a non-empty list", param="messages")
    chat: dict[str, Any] = {"model": body["model"], "max_tokens": max_tokens}
    chat["messages"] = [*_system(body.get("system")),
                        *(m for i, message in enumerate(messages) for m in _message(message, i))]
    if body.get("stop_sequences"):
        chat["stop"] = body["stop_sequences"]
    for name in ("temperature", "top_p", "top_k", "stream"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if chat.get("stream") is True:
        chat["stream_options"] = {"include_usage": True}
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
        if body["tool_choice"].get("disable_parallel_tool_use"):
            chat["parallel_tool_calls"] = False
    metadata = body.get("metadata")
    user = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user, str):
        chat["user"] = user
    if isinstance(body.get("thinking"), dict):
        chat["thinking"] = body["thinking"]
    return chat

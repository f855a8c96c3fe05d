"""OpenAI chat request → Anthropic Messages request body.

Host specifics are parameters: the direct API puts ``model`` (and ``stream``) in the body, Vertex puts
``anthropic_version: vertex-2023-10-16`` and ``stream`` there, Bedrock ``anthropic_version: bedrock-2023-05-31`` and
no ``stream``. Whatever the host, ``stop`` always becomes a *list* of ``stop_sequences`` (Portkey's B7 sent a bare
string), every system/developer message is kept, consecutive turns of one role are merged (tool results first, as the
API requires), and ``max_tokens`` — required by the API — gets a default when the client sent none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.api.openai import tool_call_arguments
from core.errors import InvalidRequestError

#: Used when the client sends neither max_tokens nor max_completion_tokens; within every Claude model's output cap.
DEFAULT_MAX_TOKENS = 4096
_TOOL_CHOICES = {"auto": "auto", "required": "any", "none": "none"}
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def chat_to_messages(
    body: Mapping[str, Any],
    *,
    model: str | None = None,
    anthropic_version: str | None = None,
    stream: bool | None = None,
    anthropic_beta: Sequence[str] | None = None,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
) -> dict[str, Any]:
    """The Messages body; ``model``, ``anthropic_version``, ``stream`` and ``anthropic_beta`` are included only
    when given (each host decides which of them belong in its body)."""
    system, messages = _messages(body.get("messages") or [])
    out: dict[str, Any] = {}
    if anthropic_version:
        out["anthropic_version"] = anthropic_version
    if model:
        out["model"] = model
    if system:
        out["system"] = system
    out["messages"] = messages
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    out["max_tokens"] = max_tokens if isinstance(max_tokens, int) else default_max_tokens
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice:
            out["tool_choice"] = choice
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    if isinstance(body.get("thinking"), dict):
        out["thinking"] = body["thinking"]
    if stream is not None:
        out["stream"] = stream
    if anthropic_beta:
        out["anthropic_beta"] = list(anthropic_beta)
    return out


def _messages(messages: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_blocks(message.get("content"), i, allowed=("text",)))
            continue
        if role == "assistant":
            role, blocks = "assistant", _assistant_blocks(message, i)
        elif role == "tool":
            role, blocks = "user", [_tool_result(message, i)]
        elif role == "user":
            blocks = _blocks(message.get("content"), i, allowed=("text", "image_url", "file"))
        else:
            raise InvalidRequestError(f"messages[{i}]: role {role!r} is not supported for Claude; use tools",
                                      param=f"messages[{i}].role")
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            merged = out[-1]["content"] + blocks
            # The API wants a user turn's tool_result blocks before anything else in it.
            merged.sort(key=lambda b: b.get("type") != "tool_result")
            out[-1]["content"] = merged
        else:
            out.append({"role": role, "content": blocks})
    return system, out


def _parts(content: Any) -> list[Any]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content)


def _blocks(content: Any, i: int, *, allowed: tuple[str, ...]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(_parts(content)):
        where = f"messages[{i}].content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in allowed:
            raise InvalidRequestError(f"{where}: content parts of type {kind!r} are not supported here for Claude",
                                      param=where)
        if kind == "text":
            if not part.get("text"):
                continue
            block: dict[str, Any] = {"type": "text", "text": part["text"]}
        elif kind == "image_url":
            image = part.get("image_url")
            block = {"type": "image", "source": _source(image.get("url") if isinstance(image, dict) else image,
                                                        where, image=True)}
        else:
            file = part.get("file") or {}
            block = {"type": "document", "source": _source(file.get("file_data") or file.get("file_url"), where,
                                                           image=False)}
        if isinstance(part.get("cache_control"), dict):
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def _source(url: Any, where: str, *, image: bool) -> dict[str, Any]:
    if not isinstance(url, str) or not url:
        raise InvalidRequestError(f"{where}: a URL or data URI is required", param=where)
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64":
            raise InvalidRequestError(f"{where}: data URIs must be base64 encoded", param=where)
        if image and media_type not in _IMAGE_TYPES:
            raise InvalidRequestError(f"{where}: Claude accepts {', '.join(sorted(_IMAGE_TYPES))} images",
                                      param=where)
        return {"type": "base64", "media_type": media_type, "data": data}
    if url.startswith(("https://", "http://")):
        return {"type": "url", "url": url}
    raise InvalidRequestError(f"{where}: only data: and https:// URLs are supported for Claude", param=where)


def _assistant_blocks(message: Mapping[str, Any], i: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in _parts(message.get("content")):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and part.get("text"):
            blocks.append({"type": "text", "text": part["text"]})
        elif kind == "thinking":
            blocks.append({"type": "thinking", "thinking": part.get("thinking", ""),
                           "signature": part.get("signature", "")})
        elif kind == "redacted_thinking":
            blocks.append({"type": "redacted_thinking", "data": part.get("data", "")})
    for j, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        where = f"messages[{i}].tool_calls[{j}]"
        if not isinstance(call.get("id"), str) or not isinstance(function.get("name"), str):
            raise InvalidRequestError(f"{where} needs an id and a function name", param=where)
        blocks.append({"type": "tool_use", "id": call["id"], "name": function["name"],
                       "input": tool_call_arguments(function.get("arguments"), f"{where}.function.arguments")})
    return blocks


def _tool_result(message: Mapping[str, Any], i: int) -> dict[str, Any]:
    tool_use_id = message.get("tool_call_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise InvalidRequestError(f"messages[{i}].tool_call_id is required", param=f"messages[{i}].tool_call_id")
    content = message.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id}
    if isinstance(content, str):
        block["content"] = content
    elif content:
        block["content"] = _blocks(content, i, allowed=("text", "image_url"))
    return block


def _tools(tools: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for j, tool in enumerate(tools or []):
        if tool.get("type") != "function":
            out.append(dict(tool))  # Anthropic's own tool types (web search, bash, ...) pass through
            continue
        function = tool.get("function") or {}
        if not isinstance(function.get("name"), str):
            raise InvalidRequestError(f"tools[{j}].function.name is required", param="tools")
        parameters = function.get("parameters")
        converted: dict[str, Any] = {"name": function["name"]}
        if function.get("description"):
            converted["description"] = function["description"]
        converted["input_schema"] = (
            parameters if isinstance(parameters, dict) and parameters else {"type": "object", "properties": {}}
        )
        cache_control = tool.get("cache_control") or function.get("cache_control")
        if isinstance(cache_control, dict):
            converted["cache_control"] = cache_control
        out.append(converted)
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    out: dict[str, Any] | None = None
    if isinstance(choice, str) and choice in _TOOL_CHOICES:
        out = {"type": _TOOL_CHOICES[choice]}
    elif isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        out = {"type": "tool", "name": choice["function"]["name"]}
    if parallel is False:
        out = out or {"type": "auto"}
        if out["type"] != "none":
            out["disable_parallel_tool_use"] = True
    return out

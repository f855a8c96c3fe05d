"""OpenAI chat request → Gemini ``generateContent`` request body (Vertex's camelCase JSON).

Differences from Portkey 1.15.2, on purpose: every system/developer message goes into ``systemInstruction`` (not
only the first, B10); tool results are matched to their call's function name through ``tool_call_id``; JSON Schema
is reduced to what Gemini accepts (:mod:`core.providers.vertex.schema`) for tools and ``response_format`` alike.
The model is not part of the body: Vertex takes it from the URL.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from typing import Any

from core.api.openai import tool_call_arguments
from core.errors import InvalidRequestError
from core.providers.vertex.schema import to_gemini_schema

#: Gemini's built-in tools, by the names clients use for them (Portkey accepts both spellings as function names).
BUILTIN_TOOLS = {
    "googleSearch": "googleSearch", "google_search": "googleSearch",
    "googleSearchRetrieval": "googleSearchRetrieval", "google_search_retrieval": "googleSearchRetrieval",
    "codeExecution": "codeExecution", "code_execution": "codeExecution",
    "urlContext": "urlContext", "url_context": "urlContext",
}
_TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
_THINKING_LEVELS = {"minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH"}
_ROLES = {"user": "user", "assistant": "model", "tool": "user", "function": "user"}


def chat_to_gemini(body: Mapping[str, Any]) -> dict[str, Any]:
    """The Gemini request for an OpenAI chat body (already validated by :mod:`core.api.openai`)."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for i, message in enumerate(body.get("messages") or []):
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_only(message.get("content"), i))
            continue
        if role == "assistant":
            parts = _assistant_parts(message, i, call_names)
        elif role in ("tool", "function"):
            parts = [_function_response(message, i, call_names)]
        else:
            parts = _content_parts(message.get("content"), i)
        if not parts:
            continue
        gemini_role = _ROLES[str(role)]
        if contents and contents[-1]["role"] == gemini_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": gemini_role, "parts": parts})

    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        tool_config = _tool_config(body.get("tool_choice"))
        if tool_config and any("functionDeclarations" in t for t in tools):
            out["toolConfig"] = tool_config
    generation = _generation_config(body)
    if generation:
        out["generationConfig"] = generation
    if isinstance(body.get("safety_settings"), list):
        out["safetySettings"] = body["safety_settings"]
    if isinstance(body.get("labels"), dict):
        out["labels"] = body["labels"]
    return out


def _parts_of(content: Any) -> list[Any]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content)


def _text_only(content: Any, i: int) -> list[dict[str, Any]]:
    parts = []
    for j, part in enumerate(_parts_of(content)):
        if not isinstance(part, dict) or part.get("type") != "text":
            raise InvalidRequestError(f"messages[{i}].content[{j}]: system messages may only hold text",
                                      param=f"messages[{i}].content")
        if part.get("text"):
            parts.append({"text": part["text"]})
    return parts


def _content_parts(content: Any, i: int) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(_parts_of(content)):
        where = f"messages[{i}].content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            mime = image.get("mime_type") if isinstance(image, dict) else None
            parts.append(media_part(url, mime, where, default_mime="image/jpeg"))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            if not isinstance(audio.get("data"), str):
                raise InvalidRequestError(f"{where}.input_audio.data must be base64 text", param=where)
            parts.append({"inlineData": {"mimeType": f"audio/{audio.get('format') or 'wav'}", "data": audio["data"]}})
        elif kind == "file":
            file = part.get("file") or {}
            url = file.get("file_data") or file.get("file_url") or file.get("file_id")
            parts.append(media_part(url, file.get("mime_type"), where, default_mime="application/pdf"))
        else:
            raise InvalidRequestError(f"{where}: content parts of type {kind!r} are not supported by vertex-ai",
                                      param=where)
    return parts


def media_part(url: Any, mime: str | None, where: str, *, default_mime: str) -> dict[str, Any]:
    """A data URI inline; ``gs://`` and ``http(s)://`` URIs by reference (Vertex fetches them)."""
    if not isinstance(url, str) or not url:
        raise InvalidRequestError(f"{where}: a URL or data URI is required", param=where)
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64":
            raise InvalidRequestError(f"{where}: data URIs must be base64 encoded", param=where)
        return {"inlineData": {"mimeType": mime or media_type or default_mime, "data": data}}
    if url.startswith(("gs://", "https://", "http://")):
        guessed = mimetypes.guess_type(url.split("?", 1)[0])[0]
        return {"fileData": {"mimeType": mime or guessed or default_mime, "fileUri": url}}
    raise InvalidRequestError(f"{where}: only data:, gs:// and https:// URLs are supported", param=where)


def _assistant_parts(message: Mapping[str, Any], i: int, call_names: dict[str, str]) -> list[dict[str, Any]]:
    # Assistant turns carry text; reasoning and refusal parts are the model's own and not sent back.
    parts = [{"text": p["text"]} for p in _parts_of(message.get("content"))
             if isinstance(p, dict) and p.get("type") == "text" and p.get("text")]
    for j, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequestError(f"messages[{i}].tool_calls[{j}].function.name is required",
                                      param=f"messages[{i}].tool_calls")
        args = tool_call_arguments(function.get("arguments"), f"messages[{i}].tool_calls[{j}].function.arguments")
        part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
        signature = function.get("thought_signature") or call.get("thought_signature")
        if isinstance(signature, str) and signature:
            part["thoughtSignature"] = signature
        parts.append(part)
        if isinstance(call.get("id"), str):
            call_names[call["id"]] = name
    return parts


def _function_response(message: Mapping[str, Any], i: int, call_names: Mapping[str, str]) -> dict[str, Any]:
    name = call_names.get(str(message.get("tool_call_id"))) or message.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(
            f"messages[{i}]: tool_call_id does not match a tool call of an earlier assistant message",
            param=f"messages[{i}].tool_call_id",
        )
    content = message.get("content")
    if not isinstance(content, str):
        content = "".join(p.get("text", "") for p in _parts_of(content) if isinstance(p, dict))
    return {"functionResponse": {"name": name, "response": {"output": content}}}


def _tools(tools: Any) -> list[dict[str, Any]]:
    declarations: list[dict[str, Any]] = []
    builtins: list[dict[str, Any]] = []
    for j, tool in enumerate(tools or []):
        function = tool.get("function") if tool.get("type") == "function" else None
        name = function.get("name") if isinstance(function, dict) else tool.get("type")
        if name in BUILTIN_TOOLS:
            builtins.append({BUILTIN_TOOLS[name]: {}})
            continue
        if not isinstance(function, dict) or not isinstance(name, str):
            raise InvalidRequestError(f"tools[{j}]: only function tools are supported by vertex-ai", param="tools")
        declaration: dict[str, Any] = {"name": name}
        if function.get("description"):
            declaration["description"] = function["description"]
        parameters = function.get("parameters")
        if isinstance(parameters, dict):
            schema = to_gemini_schema(parameters)
            if schema.get("properties") or schema.get("type", "OBJECT") != "OBJECT":
                declaration["parameters"] = schema
        declarations.append(declaration)
    return ([{"functionDeclarations": declarations}] if declarations else []) + builtins


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if isinstance(choice, str) and choice in _TOOL_MODES:
        return {"functionCallingConfig": {"mode": _TOOL_MODES[choice]}}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if isinstance(name, str) and name:
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    return None


def _generation_config(body: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for source, target in (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"), ("seed", "seed"),
                           ("n", "candidateCount"), ("presence_penalty", "presencePenalty"),
                           ("frequency_penalty", "frequencyPenalty")):
        if body.get(source) is not None:
            config[target] = body[source]
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        if response_format.get("type") in ("json_object", "json_schema"):
            config["responseMimeType"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema")
        if response_format.get("type") == "json_schema" and isinstance(schema, dict):
            config["responseSchema"] = to_gemini_schema(schema)
    thinking = _thinking_config(body)
    if thinking:
        config["thinkingConfig"] = thinking
    return config


def _thinking_config(body: Mapping[str, Any]) -> dict[str, Any] | None:
    thinking = body.get("thinking")
    if isinstance(thinking, dict):
        if thinking.get("type") == "disabled":
            return {"thinkingBudget": 0}
        config: dict[str, Any] = {"includeThoughts": True}
        if isinstance(thinking.get("budget_tokens"), int):
            config["thinkingBudget"] = thinking["budget_tokens"]
        return config
    level = _THINKING_LEVELS.get(str(body.get("reasoning_effort")))
    return {"thinkingLevel": level} if level else None
